/**
 * `trustpile relay-off --config FILE`: drives the contactor relay line inactive and reads it back. systemd runs it
 * before every start (ExecStartPre) and after every stop, crash, SIGKILL or watchdog abort (ExecStopPost, see
 * systemd/trustpile.service), so a dead agent never leaves the contactor closed: sysfs GPIO keeps an output's level
 * when the process that drove it dies.
 *
 * It touches nothing but the relay output: no chain, keystore, journal or meter (it runs after a crash, maybe with
 * the network down), and none of the input lines. The line is left exported and driven inactive rather than
 * unexported: on a Raspberry Pi unexporting turns the pin back into a floating input, which an active-low relay
 * board may read as "on".
 */
import type { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import { RuntimeError, describeError } from "../errors.ts";
import type { Config } from "../config/schema.ts";
import { openOnoffOutput } from "../../drivers/gpio/onoff.ts";
import { DEFAULT_SYSFS_ROOT, sysfsNumberOf } from "../../drivers/gpio/sysfs-lines.ts";

/** Drives the configured relay line inactive and returns the line to print; throws RuntimeError if it cannot. */
export async function relayOff(gpio: Config["gpio"]): Promise<string> {
  if (gpio.driver === "sim") {
    return "gpio.driver is sim: there is no relay line to switch (the simulated contactor lives inside the agent process)";
  }
  const relay = gpio.relay;
  // The config schema requires gpio.relay with driver onoff; this guards a config built by hand.
  if (!relay) throw new RuntimeError("cannot drive the relay off: gpio.relay.line is not set");
  const sysfsRoot = gpio.sysfsRoot ?? DEFAULT_SYSFS_ROOT;
  const activeLow = relay.activeLow ?? false;
  try {
    const sysfsNumber = sysfsNumberOf(relay.line, { sysfsRoot });
    // Opening an output drives it electrically inactive, writes logical 0 and checks direction, polarity and the
    // value read back (drivers/gpio/onoff.ts); the read below checks it once more through the same handle.
    const output = await openOnoffOutput({ line: relay.line, activeLow }, { sysfsRoot });
    await output.write(false);
    if (await output.read()) {
      throw new RuntimeError(`relay line ${relay.line} (sysfs gpio${sysfsNumber}) still reads on after being driven off`);
    }
    const polarity = activeLow ? " (active low: output held high)" : "";
    return `relay line ${relay.line} (sysfs gpio${sysfsNumber}) driven off${polarity}`;
  } catch (error) {
    if (error instanceof RuntimeError) throw error;
    throw new RuntimeError(`cannot drive relay line ${relay.line} off: ${describeError(error)}`, { cause: error });
  }
}

export function registerRelayOffCommand(program: Command): void {
  program
    .command("relay-off")
    .description("drive the contactor relay line off and read it back (systemd runs it before start and after stop)")
    .requiredOption("--config <file>", "the agent config (only its gpio section is used)")
    .action(async (options: { config: string }) => {
      const config = loadConfig(options.config);
      process.stdout.write(`${await relayOff(config.gpio)}\n`);
    });
}

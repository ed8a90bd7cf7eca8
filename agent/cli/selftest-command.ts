import type { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { createMeter } from "../../drivers/meters/index.ts";
import { createModbusMeter } from "../../drivers/meters/modbus-meter.ts";
import { meterModel } from "../../drivers/meters/models/index.ts";
import type { Meter } from "../../drivers/meters/types.ts";
import { openGpio } from "../../drivers/gpio/index.ts";
import { createSimGpio, type SimGpio } from "../../drivers/gpio/sim.ts";
import { startHwSim, type HwSim } from "../../hw-sim/index.ts";
import { describeError } from "../errors.ts";
import {
  allPassed,
  checkChain,
  checkKeyFiles,
  checkMeter,
  checkMqtt,
  checkOcpp,
  checkRelay,
  renderTable,
  skip,
  type CheckResult,
} from "../selftest/checks.ts";

interface SelftestOptions {
  config: string;
  relay?: boolean;
}

const progress = (line: string): void => void process.stderr.write(`${line}\n`);

export function registerSelftestCommand(program: Command): void {
  program
    .command("selftest")
    .description("installer check of meter, relay (+feedback), chain, OCPP and MQTT; exit 0 only if nothing fails")
    .requiredOption("--config <file>", "the agent config")
    .option("--relay", "also toggle the relay and check its feedback contact (only with no EV present)")
    .action(async (options: SelftestOptions) => {
      const config = loadConfig(options.config);
      const results = await runSelftest(config, { relay: options.relay === true });
      process.stdout.write(`${renderTable(results)}\n`);
      const failed = results.filter((r) => r.status === "fail").length;
      process.stdout.write(allPassed(results) ? "selftest passed\n" : `selftest FAILED: ${failed} check(s) failed\n`);
      process.stdout.write(`${nextStep(results, options.config)}\n`);
      if (!allPassed(results)) process.exitCode = 1;
    });
}

/**
 * The owner's next step (issue 10: keys new → fund → chain register → selftest --relay → systemctl enable). On a
 * failure, the first failing row in table order: the meter and relay come first because a pile that cannot measure
 * or switch must not charge, whatever the network says.
 */
export function nextStep(results: CheckResult[], configPath: string): string {
  const firstFailure = results.find((r) => r.status === "fail");
  if (firstFailure) {
    return `next: fix the ${firstFailure.name} check first (${firstFailure.detail}), then run selftest again`;
  }
  const relay = results.find((r) => r.name === "relay");
  if (relay?.status === "skip") {
    return (
      `next: trustpile selftest --config ${configPath} --relay (with no EV plugged in) to check the contactor, ` +
      "then: sudo systemctl enable --now trustpile"
    );
  }
  return "next: sudo systemctl enable --now trustpile";
}

function describeMeter(meter: Config["meter"]): string {
  if (meter.transport === "rtu") {
    const parity = { none: "N", even: "E", odd: "O" }[meter.parity];
    return `${meter.driver} over rtu ${meter.device} (${meter.baudRate} 8${parity}1) unit ${meter.unitId}`;
  }
  return `${meter.driver} over ${meter.transport} ${meter.host}:${meter.port} unit ${meter.unitId}`;
}

export async function runSelftest(config: Config, options: { relay: boolean }): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  // `sim` drivers mean hw-sim in this process: the meter is still read through the real Modbus driver over TCP.
  const usesSim = config.meter.driver === "sim" || config.gpio.driver === "sim";
  const simGpio: SimGpio | undefined = usesSim ? createSimGpio() : undefined;
  let hwSim: HwSim | undefined;
  let meter: Meter | undefined;
  try {
    if (usesSim) {
      progress("starting hw-sim in-process for the sim drivers");
      hwSim = await startHwSim({ meterTcpPort: 0, ...(simGpio ? { gpio: simGpio } : {}), gpioLines: config.gpio });
    }
    let meterDescription = describeMeter(config.meter);
    try {
      if (config.meter.driver === "sim") {
        if (!hwSim?.meterTcpPort) throw new Error("hw-sim did not start its Modbus TCP meter");
        meterDescription = `sim sdm630 (hw-sim) over tcp 127.0.0.1:${hwSim.meterTcpPort}`;
        meter = createModbusMeter({
          model: meterModel("sdm630"),
          transport: "tcp",
          host: "127.0.0.1",
          port: hwSim.meterTcpPort,
          unitId: 1,
          timeoutMs: config.meter.timeoutMs,
        });
      } else {
        meter = createMeter(config.meter);
      }
      progress(`reading the meter: ${meterDescription}`);
      results.push(await checkMeter(meter, meterDescription, config.meter.pollIntervalMs));
    } catch (error) {
      results.push({ name: "meter", status: "fail", detail: `${meterDescription}: ${describeError(error)}` });
    }

    if (options.relay) {
      progress("toggling the relay");
      results.push(await relayCheck(config, simGpio, meter));
    } else {
      results.push(skip("relay", "not toggled (add --relay, with no EV plugged in, to check the contactor and its feedback)"));
    }

    results.push(checkKeyFiles(config));
    progress(`checking the chain at ${config.chain.rpcUrl}`);
    results.push(await checkChain(config));
    if (config.ocpp) progress(`connecting to the CSMS at ${config.ocpp.url}`);
    results.push(await checkOcpp(config));
    if (config.mqtt) progress(`connecting to the broker at ${config.mqtt.url}`);
    results.push(await checkMqtt(config));
    return results;
  } finally {
    await meter?.close().catch(() => undefined);
    await hwSim?.stop().catch(() => undefined);
  }
}

async function relayCheck(config: Config, simGpio: SimGpio | undefined, meter: Meter | undefined): Promise<CheckResult> {
  let io;
  try {
    io = await openGpio(config.gpio, simGpio ? { sim: simGpio } : {});
  } catch (error) {
    return { name: "relay", status: "fail", detail: describeError(error) };
  }
  try {
    const powerNowW = async (): Promise<number | undefined> => (meter ? (await meter.read().catch(() => undefined))?.powerW : undefined);
    return await checkRelay(io, config.gpio.feedbackTimeoutMs, powerNowW);
  } finally {
    await io.close();
  }
}

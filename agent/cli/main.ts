import { Command, CommanderError } from "commander";
import { TrustpileError, describeError } from "../errors.ts";
const program = new Command()
  .name("trustpile")
  .description("Firmware agent of a shared EV charge point and the contracts it settles on")
  .option("--verbose", "print stack traces with errors")
  .exitOverride()
  .configureOutput({ outputError: (text, write) => write(text) });

type Register = (program: Command) => void;

// Each command's module is loaded only when that command runs: `relay-off` (systemd runs it after every stop,
// also after a crash) and `start` then do not pay for ethers, the Modbus stack or the sim they do not use.
// Help, an unknown command or no command load them all, so commander can list and check every one.
const COMMANDS: Record<string, () => Promise<Register>> = {
  config: async () => (await import("./config-commands.ts")).registerConfigCommands,
  keys: async () => (await import("./keys-commands.ts")).registerKeysCommands,
  chain: async () => (await import("./chain-commands.ts")).registerChainCommands,
  ev: async () => (await import("./ev-commands.ts")).registerEvCommands,
  query: async () => (await import("./query-commands.ts")).registerQueryCommands,
  selftest: async () => (await import("./selftest-command.ts")).registerSelftestCommand,
  "hw-sim": async () => (await import("./hw-sim-command.ts")).registerHwSimCommand,
  sim: async () => (await import("./sim-command.ts")).registerSimCommand,
  start: async () => (await import("./start-command.ts")).registerStartCommand,
  "relay-off": async () => (await import("./relay-off-command.ts")).registerRelayOffCommand,
  watch: async () => (await import("./watch-command.ts")).registerWatchCommand,
};

const requested = process.argv.slice(2).find((arg) => !arg.startsWith("-"));
const load = requested !== undefined ? COMMANDS[requested] : undefined;
for (const loadCommand of load ? [load] : Object.values(COMMANDS)) (await loadCommand())(program);

function verbose(): boolean {
  return process.argv.includes("--verbose");
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version are "errors" to commander; everything else it reports is bad usage.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else if (error instanceof TrustpileError) {
    process.stderr.write(`trustpile: ${error.message}\n`);
    if (verbose() && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`trustpile: ${describeError(error)}\n`);
    if (verbose() && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  }
}

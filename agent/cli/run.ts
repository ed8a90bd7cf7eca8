/**
 * The CLI without the process around it: parses `argv` (the arguments after `trustpile`), runs the command and
 * returns the exit code (DESIGN §5.1: 0 ok, 1 runtime failure, 2 bad usage or config). main.ts is the process
 * shell; tests call this directly to try thousands of command lines without spawning a process for each.
 */
import { Command, CommanderError } from "commander";
import { TrustpileError, describeError } from "../errors.ts";

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

/** Where the CLI reports errors; process.stderr in main.ts. */
export interface CliErrorOutput {
  write(text: string): unknown;
}

const MAX_SHOWN_VALUE_CHARS = 60;

/**
 * Quoted values longer than a screen line are cut: an error echoing a 60,000-character argument back would bury the
 * sentence that says what was wrong.
 */
export function shortenQuotedValues(text: string): string {
  return text.replace(/(["'])([^"'\n]{81,}?)\1/g, (_match, quote: string, value: string) =>
    `${quote}${value.slice(0, MAX_SHOWN_VALUE_CHARS)}…${quote} (${value.length} characters)`,
  );
}

/** Runs the CLI on `argv` and returns its exit code; errors go to `stderr` as one line each. */
export async function runCli(argv: readonly string[], stderr: CliErrorOutput = process.stderr): Promise<number> {
  const program = new Command()
    .name("trustpile")
    .description("Firmware agent of a shared EV charge point and the contracts it settles on")
    .option("--verbose", "print stack traces with errors")
    .exitOverride()
    // Commander words some errors over two lines ("unknown command 'strat'" / "(Did you mean start?)"); a
    // usage error is one line, like every other error the CLI reports.
    .configureOutput({ outputError: (text) => void stderr.write(`${shortenQuotedValues(text.trim().replace(/\s*\n\s*/g, " "))}\n`) });
  const requested = argv.find((arg) => !arg.startsWith("-"));
  const load = requested !== undefined && Object.hasOwn(COMMANDS, requested) ? COMMANDS[requested] : undefined;
  for (const loadCommand of load ? [load] : Object.values(COMMANDS)) (await loadCommand())(program);
  const verbose = argv.includes("--verbose");

  try {
    await program.parseAsync([...argv], { from: "user" });
    // Commands that report problems themselves (config check) leave their code in process.exitCode.
    return Number(process.exitCode ?? 0);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are "errors" to commander; everything else it reports is bad usage.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof TrustpileError) {
      stderr.write(`trustpile: ${shortenQuotedValues(error.message)}\n`);
      if (verbose && error.stack) stderr.write(`${error.stack}\n`);
      return error.exitCode;
    }
    stderr.write(`trustpile: ${shortenQuotedValues(describeError(error))}\n`);
    if (verbose && error instanceof Error && error.stack) stderr.write(`${error.stack}\n`);
    return 1;
  }
}

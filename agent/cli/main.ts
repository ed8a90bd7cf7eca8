import { Command, CommanderError } from "commander";
import { TrustpileError, describeError } from "../errors.ts";
import { registerChainCommands } from "./chain-commands.ts";
import { registerConfigCommands } from "./config-commands.ts";
import { registerEvCommands } from "./ev-commands.ts";
import { registerHwSimCommand } from "./hw-sim-command.ts";
import { registerKeysCommands } from "./keys-commands.ts";
import { registerQueryCommands } from "./query-commands.ts";
import { registerSelftestCommand } from "./selftest-command.ts";
import { registerSimCommand } from "./sim-command.ts";
import { registerStartCommand } from "./start-command.ts";
import { registerWatchCommand } from "./watch-command.ts";

const program = new Command()
  .name("trustpile")
  .description("Firmware agent of a shared EV charge point and the contracts it settles on")
  .option("--verbose", "print stack traces with errors")
  .exitOverride()
  .configureOutput({ outputError: (text, write) => write(text) });

registerConfigCommands(program);
registerKeysCommands(program);
registerChainCommands(program);
registerEvCommands(program);
registerQueryCommands(program);
registerSelftestCommand(program);
registerHwSimCommand(program);
registerSimCommand(program);
registerStartCommand(program);
registerWatchCommand(program);

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

// The process shell around the CLI (run.ts): arguments in, exit code out.
import { runCli } from "./run.ts";

process.exitCode = await runCli(process.argv.slice(2));

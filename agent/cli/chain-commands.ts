import type { Command } from "commander";

export function registerChainCommands(program: Command): void {
  void program;
}

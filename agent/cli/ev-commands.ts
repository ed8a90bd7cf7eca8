import type { Command } from "commander";

export function registerEvCommands(program: Command): void {
  void program;
}

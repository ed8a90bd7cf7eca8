import type { Command } from "commander";
import { checkConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";

export function registerConfigCommands(program: Command): void {
  const config = program.command("config").description("work with the agent's config file (DESIGN §5.2)");

  config
    .command("check")
    .description("validate a config with its TRUSTPILE_* env overrides; each problem names the key path and what it expects")
    .argument("<file>", "config file, YAML or JSON")
    .action((file: string) => {
      const check = checkConfig(file, process.env);
      if (!check.ok) {
        // One line per problem and nothing else, so scripts can count and grep them.
        for (const problem of check.problems) process.stderr.write(`${problem}\n`);
        process.exitCode = 2;
        return;
      }
      process.stdout.write(`${file}: ok (${describeConfig(check.config, check.envOverrides)})\n`);
    });
}

function describeConfig(config: Config, envOverrides: readonly string[]): string {
  const { meter } = config;
  const parts = [
    `chargePointId ${config.chargePointId}`,
    meter.driver === "sim" ? "meter sim" : `meter ${meter.driver}/${meter.transport}`,
    `gpio ${config.gpio.driver}`,
    config.ocpp ? `ocpp ${config.ocpp.version}` : "ocpp off",
    `mqtt ${config.mqtt ? "on" : "off"}`,
    `bidding ${config.bidding?.enabled ? "on" : "off"}`,
  ];
  if (envOverrides.length > 0) parts.push(`env overrides ${envOverrides.join(" ")}`);
  return parts.join(", ");
}

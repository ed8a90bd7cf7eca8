import type { Command } from "commander";
import { formatEther } from "ethers";
import { DEFAULT_AUCTION_EVERY, runSim, type SimSessionReport } from "../sim/run-sim.ts";
import { fromSd59x18 } from "../reputation/eq2.ts";
import { UsageError } from "../errors.ts";
import { createLogger } from "../logging.ts";

interface SimCommandOptions {
  sessions: string;
  speedup: string;
  auctionEvery: string;
  mqttUrl?: string;
  /** Commander's `--no-ocpp` makes this false. */
  ocpp: boolean;
  ocppVersion: string;
}

export function registerSimCommand(program: Command): void {
  program
    .command("sim")
    .description("everything on this machine: anvil, contracts, hw-sim, the agent and an EV wallet running N sessions")
    .option("--sessions <n>", "sessions to run end to end (the 4th is stopped by the operator from the CSMS)", "4")
    .option(
      "--auction-every <k>",
      "every k-th session the EV first runs a pricing auction among cp-sim-1 and two bidder-only neighbours (0: never)",
      String(DEFAULT_AUCTION_EVERY),
    )
    .option("--speedup <x>", "how much faster the simulated EV and meter run than real time (1..6)", "5")
    .option("--mqtt-url <url>", "publish the agent's telemetry to this broker instead of an embedded one on a free port")
    .option("--ocpp-version <version>", "OCPP version between the pile and hw-sim's CSMS simulator: 1.6 or 2.0.1", "1.6")
    .option("--no-ocpp", "run without the CSMS simulator and the pile's OCPP link")
    .action(async (options: SimCommandOptions) => {
      const sessions = Number(options.sessions);
      if (!Number.isInteger(sessions) || sessions < 1 || sessions > 100) {
        throw new UsageError(`--sessions: expected a whole number 1..100, got "${options.sessions}"`);
      }
      const auctionEvery = Number(options.auctionEvery);
      if (!Number.isInteger(auctionEvery) || auctionEvery < 0 || auctionEvery > 100) {
        throw new UsageError(`--auction-every: expected a whole number 0..100 (0: no auctions), got "${options.auctionEvery}"`);
      }
      const speedup = Number(options.speedup);
      // 11 kW × 6 = 66 kW stays below what an SDM630 can plausibly measure (69 kW); faster physics would be
      // (rightly) refused by the driver's plausibility guard as an impossible energy jump.
      if (!Number.isFinite(speedup) || speedup < 1 || speedup > 6) {
        throw new UsageError(`--speedup: expected a number 1..6, got "${options.speedup}"`);
      }
      if (options.mqttUrl !== undefined && !/^(mqtts?|wss?):\/\/[^/]+/.test(options.mqttUrl)) {
        throw new UsageError(`--mqtt-url: expected an mqtt(s):// or ws(s):// URL, got "${options.mqttUrl}"`);
      }
      if (options.ocppVersion !== "1.6" && options.ocppVersion !== "2.0.1") {
        throw new UsageError(`--ocpp-version: expected 1.6 or 2.0.1, got "${options.ocppVersion}"`);
      }
      const ocppVersion: "1.6" | "2.0.1" = options.ocppVersion;
      const abort = new AbortController();
      const interrupt = (): void => {
        process.stderr.write("trustpile: sim interrupted; stopping the agent, hw-sim, anvil and the telemetry broker\n");
        abort.abort();
      };
      process.once("SIGINT", interrupt);
      process.once("SIGTERM", interrupt);
      try {
        const log = createLogger({ destination: process.stderr, level: process.env.LOG_LEVEL ?? "silent" });
        const run = await runSim({
          sessions,
          auctionEvery,
          speedup,
          log,
          progress: (line) => process.stdout.write(`${line}\n`),
          signal: abort.signal,
          telemetry: options.mqttUrl !== undefined ? { mqttUrl: options.mqttUrl } : {},
          ocpp: options.ocpp ? { version: ocppVersion } : false,
        });
        const reports = run.sessions;
        process.stdout.write(`\n${summaryTable(reports)}\n`);
        for (const skipped of run.skippedAuctions) {
          process.stdout.write(`session slot ${skipped.slot}: auction ${skipped.auction.invitationId} ${skipped.reason}\n`);
        }
        const failed = reports.filter((r) => !r.ok);
        if (failed.length > 0) {
          process.stdout.write(`sim FAILED: ${failed.length} of ${reports.length} session(s) not exact\n`);
          process.exitCode = 1;
        } else {
          process.stdout.write(`sim passed: ${reports.length} session(s) settled with exact balances and Wh\n`);
        }
      } finally {
        process.off("SIGINT", interrupt);
        process.off("SIGTERM", interrupt);
      }
    });
}

function summaryTable(reports: SimSessionReport[]): string {
  const header = ["session", "price", "ended by", "Wh signed", "meter Wh", "deposit", "cost", "refund", "rating", "R_cp after", "check"];
  const rows = reports.map((r) => [
    r.sessionId.toString(),
    `${r.pricing} ${formatEther(r.priceWeiPerKWh)} ETH/kWh`,
    r.stopReason,
    r.energyWh.toString(),
    r.meterDeltaWh.toString(),
    `${formatEther(r.depositWei)} ETH`,
    `${r.costWei} wei`,
    `${r.refundWei} wei`,
    r.rating ? `${r.rating.score}/3` : "-",
    r.rating ? fromSd59x18(r.rating.reputationAfter).toFixed(3) : "-",
    r.ok ? "exact" : r.problems.join("; "),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const render = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  return [render(header), ...rows.map(render)].join("\n");
}

/**
 * A bidder-only pile as its own process, for the kill -9 test (restart.test.ts), started as
 *
 *   node --import tsx test/integration/bidder/bidder-process.ts '<BidderProcessConfig as JSON>'
 *
 * It runs the real `startBidder` on its own journal file and the dev account `deviceAccount` (anvil's well-known
 * keys: no secret on the command line). The bidder's structured log (pino, one JSON object per line) goes to
 * stdout; `{"ready":true}` follows once the bidder has started. SIGTERM stops it cleanly; the test uses SIGKILL.
 */
import { startBidder } from "../../../agent/bidder/index.ts";
import { connectProvider } from "../../../agent/chain/provider.ts";
import { devAccount } from "../../../agent/chain/dev-accounts.ts";
import type { Deployment } from "../../../agent/chain/deployment.ts";
import { openJournal } from "../../../agent/journal/journal.ts";
import { createLogger } from "../../../agent/logging.ts";

export interface BidderProcessConfig {
  rpcUrl: string;
  deployment: Deployment;
  deviceAccount: number;
  cpId: string;
  journalPath: string;
  floorPricePerKWh: string;
  undercutStep: string;
  pollIntervalMs: number;
}

const config = JSON.parse(process.argv[2] ?? "{}") as BidderProcessConfig;
const provider = await connectProvider(config.rpcUrl);
const journal = openJournal(config.journalPath);
const bidder = startBidder({
  provider,
  wallet: devAccount(config.deviceAccount, provider),
  deployment: config.deployment,
  cpId: config.cpId,
  journal,
  policy: { enabled: true, floorPricePerKWh: BigInt(config.floorPricePerKWh), undercutStep: BigInt(config.undercutStep) },
  log: createLogger({ name: "bidder", level: "debug" }),
  pollIntervalMs: config.pollIntervalMs,
});
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.once("SIGTERM", () => {
  void bidder.stop().then(() => {
    journal.close();
    provider.destroy();
    process.exit(0);
  });
});

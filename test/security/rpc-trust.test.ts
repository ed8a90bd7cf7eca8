/**
 * docs/SECURITY.md, "RPC endpoint trust": the pile believes its RPC about deposits, so the little it can check, it
 * checks before it runs. Regression: `trustpile start` used to run against an RPC of another chain than its address
 * book; it then energized for deposits on that chain and signed totals (EIP-712 domain = the address book's chain id)
 * that the ledger there rejects with InvalidSignature, so the energy was never paid.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deployLedgerFixture } from "../helpers/chain.ts";
import { runCli, stderrLines } from "../helpers/cli.ts";
import { writePileDir } from "../helpers/pile-dir.ts";

const CLI_TIMEOUT_MS = 60_000;

describe("trustpile start and its RPC endpoint", () => {
  let dir: string;
  let deploymentPath: string;
  let config: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "trustpile-rpc-trust-"));
    const fixture = await deployLedgerFixture();
    deploymentPath = join(dir, "deployment.json");
    ({ config } = await writePileDir(dir, {
      chargePointId: "cp-rpc-trust",
      rpcUrl: fixture.provider._getConnection().url,
      // The same contracts' addresses, but the address book of chain 1 (a mainnet book next to a dev/test RPC).
      deployment: { ...fixture.deployment, chainId: 1 },
      keystorePassword: "pile password",
      moreConfig: ["meter: { driver: sim }", "gpio: { driver: sim }"],
    }));
    fixture.provider.destroy();
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    "refuses an RPC whose chain id differs from the address book's, exit 2, without printing the RPC URL",
    async () => {
      const result = await runCli(["start", "--config", config], { timeoutMs: CLI_TIMEOUT_MS });
      expect(stderrLines(result)).toEqual([
        `trustpile: chain.rpcUrl answers as chain 31337, but the address book ${deploymentPath} is for chain 1; refusing to start (point chain.rpcUrl at chain 1 or use that chain's address book)`,
      ]);
      expect(result.status).toBe(2);
      // Nothing ran: no journal replay, no relay line, no "agent ready".
      expect(result.stdout).toBe("");
    },
    CLI_TIMEOUT_MS,
  );
});

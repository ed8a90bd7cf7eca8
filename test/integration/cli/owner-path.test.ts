import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatEther } from "ethers";
import { freePort } from "../../../agent/net.ts";
import { rpc, testChainUrl, testProvider } from "../../helpers/chain.ts";
import { runCli, stderrLines } from "../../helpers/cli.ts";
import { sessionGasCostWei } from "../../../agent/cli/keys-commands.ts";

// Each run starts node + tsx; the keystore itself is cheap thanks to the small scrypt N below.
const CLI_TIMEOUT_MS = 60_000;
const FAST_SCRYPT = ["--insecure-scrypt-n", "1024"];

let dir: string;
let keystore: string;
let address: string;
let keysNewStdout = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trustpile-owner-path-"));
  keystore = join(dir, "device-key.json");
  writeFileSync(join(dir, "pw"), "pile password\n", { mode: 0o600 });
  const result = await runCli(["keys", "new", "--keystore", keystore, "--password-file", join(dir, "pw"), ...FAST_SCRYPT]);
  expect(result.status).toBe(0);
  address = /^address: (0x[0-9a-fA-F]{40})$/m.exec(result.stdout)?.[1] ?? "";
  expect(address).not.toBe("");
  // keys new's output is checked in the first test; keeping it avoids creating a second keystore.
  keysNewStdout = result.stdout;
}, CLI_TIMEOUT_MS);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function setBalance(wei: bigint): Promise<void> {
  const provider = await testProvider();
  try {
    await rpc(provider, "anvil_setBalance", [address, `0x${wei.toString(16)}`]);
  } finally {
    provider.destroy();
  }
}

describe("the owner's path: each step says what to do next", () => {
  it("keys new tells the owner to fund the printed address, then register", () => {
    expect(keysNewStdout).toContain(
      `next: send some gas money (e.g. 0.05 ether on your network) to ${address}, then run: trustpile chain register --config `,
    );
  });

  it(
    "keys show --rpc prints the exact balance and no warning when it pays for many sessions",
    async () => {
      const wei = 10n ** 18n + 123n;
      await setBalance(wei);
      const result = await runCli(["keys", "show", "--keystore", keystore, "--rpc", testChainUrl()]);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe(`address: ${address}\nbalance: ${formatEther(wei)} ether (${wei} wei) on chain 31337\n`);
      expect(result.stderr).toBe("");
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys show warns when the balance cannot pay for the next authorize + settle at the current gas price",
    async () => {
      await setBalance(1000n);
      const provider = await testProvider();
      const needed = await sessionGasCostWei(provider).finally(() => provider.destroy());
      expect(needed).toBeGreaterThan(1000n);
      const result = await runCli(["keys", "show", "--keystore", keystore, "--rpc", testChainUrl()]);
      expect(result.status).toBe(0);
      expect(result.stdout).toContain("balance: 0.000000000000001 ether (1000 wei) on chain 31337\n");
      expect(stderrLines(result)).toEqual([
        expect.stringMatching(
          new RegExp(
            `^trustpile: warning: balance 0\\.000000000000001 ether cannot pay for the next session's authorize \\+ settle ` +
              `\\(about \\d+\\.\\d+ ether at the current gas price\\); fund ${address}$`,
          ),
        ),
      ]);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys show --config reads the keystore and the chain from the config",
    async () => {
      await setBalance(5n * 10n ** 16n);
      const config = join(dir, "config.yaml");
      writeFileSync(
        config,
        ["chargePointId: cp-owner", `chain: { rpcUrl: "${testChainUrl()}", keystore: ./device-key.json }`, "gpio: { driver: sim }", ""].join("\n"),
      );
      const result = await runCli(["keys", "show", "--config", config]);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe(`address: ${address}\nbalance: 0.05 ether (50000000000000000 wei) on chain 31337\n`);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys show with an unreachable chain still prints the address, says so in one line and exits 0",
    async () => {
      const closedPort = await freePort();
      const result = await runCli(["keys", "show", "--keystore", keystore, "--rpc", `http://127.0.0.1:${closedPort}`]);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe(`address: ${address}\n`);
      expect(stderrLines(result)).toEqual([
        expect.stringMatching(new RegExp(`^trustpile: warning: balance not checked: chain RPC http://127\\.0\\.0\\.1:${closedPort} is unreachable: `)),
      ]);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys show without --keystore or --config is a usage error",
    async () => {
      const result = await runCli(["keys", "show"]);
      expect(result.status).toBe(2);
      expect(result.stderr).toBe("trustpile: keys show: give --keystore FILE or --config FILE\n");
    },
    CLI_TIMEOUT_MS,
  );
});

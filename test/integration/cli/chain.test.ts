import { mkdtempSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { connectProvider } from "../../../agent/chain/provider.ts";
import { connectLedger, connectRegistry, SessionStatus } from "../../../agent/chain/contracts.ts";
import { readDeployment } from "../../../agent/chain/deployment.ts";
import { deviceEncryptionKey, loadKeystore } from "../../../agent/crypto/keystore.ts";
import { openSealed } from "../../../agent/crypto/seal.ts";
import { authorizeSession, signAndSettle } from "../../../agent/chain/operations.ts";
import { cpIdOf, ledgerDomain } from "../../../agent/chain/session-total.ts";
import { freePort } from "../../../agent/net.ts";
import { testChainUrl } from "../../helpers/chain.ts";
import { runCli, stderrLines } from "../../helpers/cli.ts";

const FAST_SCRYPT = ["--insecure-scrypt-n", "1024"];

describe("trustpile chain / ev / query on a real anvil", () => {
  let dir: string;
  let rpcUrl: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "trustpile-cli-"));
    rpcUrl = testChainUrl();
  });

  it("chain deploy to an unreachable RPC fails in under 10 s with one clear line and exit 1", async () => {
    const closedPort = await freePort();
    const result = await runCli(["chain", "deploy", "--rpc", `http://127.0.0.1:${closedPort}`, "--out", join(dir, "x.json")]);
    expect(result.status).toBe(1);
    expect(result.elapsedMs).toBeLessThan(10_000);
    expect(stderrLines(result)).toEqual([expect.stringMatching(/^trustpile: chain RPC http:\/\/127\.0\.0\.1:\d+ is unreachable: /)]);
  });

  it("deploys, registers a pile with its sealed contact, opens a session, and queries history by pointers", async () => {
    const deploymentPath = join(dir, "deployment.json");
    const deployed = await runCli(["chain", "deploy", "--rpc", rpcUrl, "--out", deploymentPath]);
    expect(deployed.stderr).toContain("deploying ChargingLedger");
    expect(deployed.status).toBe(0);
    const deployment = readDeployment(deploymentPath);
    expect(deployment.chainId).toBe(31337);

    writeFileSync(join(dir, "pw"), "correct horse\n");
    chmodSync(join(dir, "pw"), 0o600);
    const keys = await runCli(["keys", "new", "--keystore", "device-key.json", "--password-file", "pw", ...FAST_SCRYPT], { cwd: dir });
    expect(keys.status).toBe(0);
    writeFileSync(
      join(dir, "config.yaml"),
      [
        "chargePointId: cp-cli-1",
        "dataDir: ./data",
        `chain: { rpcUrl: "${rpcUrl}", deployment: ./deployment.json, keystore: ./device-key.json, passwordFile: ./pw }`,
        "gpio: { driver: sim }",
        'owner: { contact: "Ana Ruiz, +34 600 000 000" }',
        "",
      ].join("\n"),
    );

    const registered = await runCli(["chain", "register", "--config", "config.yaml", "--price", "0.0003ether", "--area", "42"], { cwd: dir });
    expect(registered.status).toBe(0);
    // On a dev chain the pile's device key gets gas money from the owner, so it can authorize and settle.
    expect(registered.stderr).toContain("dev chain: funding the pile signer");
    expect(registered.stdout).toContain(cpIdOf("cp-cli-1"));
    expect(registered.stdout).toContain("next: trustpile selftest --config config.yaml --relay (with no EV plugged in)\n");

    const provider = await connectProvider(rpcUrl);
    const registry = connectRegistry(deployment.Registry, provider);
    const cp = await registry.chargePoint(cpIdOf("cp-cli-1"));
    const device = await loadKeystore(join(dir, "device-key.json"), "correct horse");
    expect(cp.signer).toBe(device.address);
    expect(cp.areaId).toBe(42n);
    expect(cp.pricePerKWh).toBe(300_000_000_000_000n);
    expect(cp.active).toBe(true);
    // The contact is on chain only sealed, and the pile can open it with the key derived from its device key.
    expect(Buffer.from(cp.ownerContactSealed.slice(2), "hex").toString("utf8")).not.toContain("Ana");
    expect(openSealed(deviceEncryptionKey(device).privateKey, Buffer.from(cp.ownerContactSealed.slice(2), "hex"))).toBe(
      "Ana Ruiz, +34 600 000 000",
    );

    const opened = await runCli(["ev", "open", "--config", "config.yaml", "--cp", "cp-cli-1", "--deposit", "0.003ether", "--max-energy-wh", "8000"], { cwd: dir });
    expect(opened.status).toBe(0);
    // 0.003 ether at 0.0003 ether/kWh covers 10 kWh; the EV's own limit of 8 kWh is lower.
    expect(opened.stdout).toContain("up to 8000 Wh (deposit covers 10000 Wh, limit 8000 Wh)");
    const sessionId = BigInt(/session (\d+) opened/.exec(opened.stdout)?.[1] ?? "0");
    expect(sessionId).toBe(1n);

    // The pile's side (the agent does this in later issues): authorize and settle 6,500 Wh.
    const pile = device.connect(provider);
    const ledger = connectLedger(deployment.ChargingLedger, pile);
    await authorizeSession(ledger, sessionId);
    await signAndSettle(ledger, pile, ledgerDomain(31337n, deployment.ChargingLedger), {
      sessionId,
      cpId: cpIdOf("cp-cli-1"),
      meterStartWh: 100_000n,
      meterStopWh: 106_500n,
      startedAt: 1_000n,
      stoppedAt: 4_600n,
      evBehaviour: 0,
    });
    expect((await ledger.session(sessionId)).status).toBe(SessionStatus.Settled);

    const query = await runCli(["query", "cp", "cp-cli-1", "--config", "config.yaml", "--json"], { cwd: dir });
    expect(query.status).toBe(0);
    const history = JSON.parse(query.stdout) as { chargingRecords: { energyWh: string; costWei: string; sessionId: string; evScore: number }[] };
    expect(history.chargingRecords).toEqual([
      expect.objectContaining({ sessionId: "1", energyWh: "6500", costWei: "1950000000000000", evScore: 1 }),
    ]);
    provider.destroy();
    expect(JSON.parse(readFileSync(deploymentPath, "utf8")).Registry).toBe(deployment.Registry);
  });
});

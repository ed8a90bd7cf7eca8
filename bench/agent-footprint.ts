/**
 * The agent's footprint, measured side by side in one run: resident memory of a real `trustpile start` process
 * after 10 sessions, divided by the resident memory of a bare `node -e` process (target ≤ 2.0), and its
 * start-up-to-ready time. The agent runs with hw-sim in its own process (`meter.driver: sim`, `gpio.driver: sim`),
 * so the figure includes the simulator, which a real pile does not carry.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NonceManager } from "ethers";
import { startDevChain } from "../agent/chain/dev-chain.ts";
import { connectProvider } from "../agent/chain/provider.ts";
import { devAccount } from "../agent/chain/dev-accounts.ts";
import { deployContracts } from "../agent/chain/deploy.ts";
import { writeDeployment } from "../agent/chain/deployment.ts";
import { connectLedger, connectRegistry, Role, SessionStatus } from "../agent/chain/contracts.ts";
import { attest, openSession, registerChargePoint } from "../agent/chain/operations.ts";
import { cpIdOf } from "../agent/chain/session-total.ts";
import { createKeystore } from "../agent/crypto/keystore.ts";
import { freePort } from "../agent/net.ts";
import { waitUntil } from "../agent/sim/world.ts";

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? "10");
const PRICE = 300_000_000_000_000n;

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0);
}

async function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = pattern.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), "trustpile-footprint-"));
const chain = await startDevChain({ port: await freePort(), blockTimeS: 1 });
let agent: ChildProcess | undefined;
let bare: ChildProcess | undefined;
try {
  const provider = await connectProvider(chain.rpcUrl);
  const authority = devAccount(0, provider);
  const ev = devAccount(1, provider);
  const owner = devAccount(2, provider);
  const { deployment } = await deployContracts(new NonceManager(authority));
  writeDeployment(join(dir, "deployment.json"), deployment);
  writeFileSync(join(dir, "pw"), "bench password\n", { mode: 0o600 });
  const device = await createKeystore(join(dir, "device-key.json"), "bench password", { scryptN: 1024 });
  const validUntil = BigInt(Math.floor(Date.now() / 1000) + 3600);
  await attest(connectRegistry(deployment.Registry, authority), owner.address, Role.Owner, validUntil);
  await attest(connectRegistry(deployment.Registry, authority), ev.address, Role.EV, validUntil);
  await (await owner.sendTransaction({ to: device.address, value: 10n ** 18n })).wait();
  await registerChargePoint(connectRegistry(deployment.Registry, owner), {
    chargePointId: "cp-bench", kind: "Private", areaId: 1n, signer: device.address, pricePerKWh: PRICE, maxPowerW: 11_000, ownerContactSealed: new Uint8Array([1]),
  });
  writeFileSync(
    join(dir, "config.yaml"),
    [
      "chargePointId: cp-bench",
      "dataDir: ./data",
      `chain: { rpcUrl: "${chain.rpcUrl}", deployment: ./deployment.json, keystore: ./device-key.json, passwordFile: ./pw, confirmations: 1 }`,
      "meter: { driver: sim, pollIntervalMs: 250 }",
      "gpio: { driver: sim, relay: { line: 17 }, feedback: { line: 27 } }",
      "session: { stopMarginWh: 5 }",
    ].join("\n"),
  );

  const spawnedAt = Date.now();
  agent = spawn(process.execPath, [join(import.meta.dirname, "../bin/trustpile.js"), "start", "--config", join(dir, "config.yaml")], { stdio: ["ignore", "pipe", "inherit"] });
  const ready = await waitForLine(agent, /"hwSimControl":"(http:\/\/127\.0\.0\.1:\d+)".*"msg":"agent ready"/, 30_000);
  const readyMs = Date.now() - spawnedAt;
  const control = ready[1];
  const rssAtReady = rssKiB(agent.pid ?? 0);

  const ledger = connectLedger(deployment.ChargingLedger, ev);
  for (let i = 0; i < SESSIONS; i++) {
    await fetch(`${control}/ev/plug`, { method: "POST" });
    // 30 Wh covered − 5 Wh margin: a few seconds at 11 kW.
    const { sessionId } = await openSession(ledger, cpIdOf("cp-bench"), 1_000, (30n * PRICE) / 1000n);
    await waitUntil(`session ${sessionId} settled`, async () => (await ledger.session(sessionId)).status === SessionStatus.Settled, 120_000);
    await fetch(`${control}/ev/unplug`, { method: "POST" });
    process.stderr.write(`session ${sessionId} settled\n`);
  }
  const rssAfter = rssKiB(agent.pid ?? 0);

  bare = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const rssBare = rssKiB(bare.pid ?? 0);
  const ratio = rssAfter / rssBare;
  console.log(`agent start-up to ready: ${readyMs} ms (journal open, keystore decrypt, chain connect, hw-sim, relay forced open)`);
  console.log(`RSS: agent at ready ${(rssAtReady / 1024).toFixed(1)} MiB, after ${SESSIONS} sessions ${(rssAfter / 1024).toFixed(1)} MiB; bare node -e ${(rssBare / 1024).toFixed(1)} MiB`);
  console.log(`ratio agent / bare node: ${ratio.toFixed(2)} (target <= 2.0): ${ratio <= 2 ? "ok" : "OVER"}`);
  provider.destroy();
} finally {
  agent?.kill("SIGTERM");
  bare?.kill("SIGKILL");
  await chain.stop();
}

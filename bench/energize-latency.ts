/**
 * Energize latency, measured side by side in one run: from the block that makes a session energizable (its
 * `authorize` mined, the deposit already confirmed) to the agent's relay-close command, divided by the latency of a
 * bare ethers block subscription (same 250 ms polling as the agent) seeing that same block. Block arrival is
 * timed by a 5 ms `eth_blockNumber` poller. Target ≤ 1.5.
 */
import { JsonRpcProvider, Network } from "ethers";
import { connectLedger } from "../agent/chain/contracts.ts";
import { openSession } from "../agent/chain/operations.ts";
import { cpIdOf } from "../agent/chain/session-total.ts";
import { SIM_CHARGE_POINT_ID, SIM_PRICE_WEI_PER_KWH, startSimWorld, waitUntil } from "../agent/sim/world.ts";
import { SessionStatus } from "../agent/chain/contracts.ts";

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? "5");
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
};

const world = await startSimWorld({ speedup: 6 });
const blockSeenAt = new Map<number, number>();
const bareSeenAt = new Map<number, number>();
let polling = true;
try {
  const network = Network.from(BigInt(world.deployment.chainId));
  const fast = new JsonRpcProvider(world.chain.rpcUrl, network, { staticNetwork: network, cacheTimeout: -1, batchMaxCount: 1 });
  void (async () => {
    while (polling) {
      const number = await fast.getBlockNumber().catch(() => -1);
      if (number >= 0 && !blockSeenAt.has(number)) blockSeenAt.set(number, Date.now());
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  const bare = new JsonRpcProvider(world.chain.rpcUrl, network, { staticNetwork: network, cacheTimeout: -1, pollingInterval: 250 });
  await bare.on("block", (number: number) => {
    if (!bareSeenAt.has(number)) bareSeenAt.set(number, Date.now());
  });

  const ledgerAsEv = connectLedger(world.deployment.ChargingLedger, world.evWallet);
  const agentMs: number[] = [];
  const bareMs: number[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    world.hwSim.board.ev.plug();
    const closesBefore = world.agent.relay.history().filter((edge) => edge.closed).length;
    const { sessionId } = await openSession(ledgerAsEv, cpIdOf(SIM_CHARGE_POINT_ID), 60, (100n * SIM_PRICE_WEI_PER_KWH) / 1000n);
    await waitUntil("settled", async () => (await world.ledger.session(sessionId)).status === SessionStatus.Settled, 120_000);
    world.hwSim.board.ev.unplug();
    await waitUntil("idle", () => world.agent.state().phase === "idle", 30_000);
    const authorized = (await world.ledger.queryFilter(world.ledger.getEvent("SessionAuthorized"))).find(
      (log) => world.ledger.interface.parseLog(log)?.args[0] === sessionId,
    );
    const close = world.agent.relay.history().filter((edge) => edge.closed)[closesBefore];
    const block = authorized?.blockNumber;
    const t0 = block === undefined ? undefined : blockSeenAt.get(block);
    const tBare = block === undefined ? undefined : bareSeenAt.get(block);
    if (t0 === undefined || tBare === undefined || !close) throw new Error(`session ${sessionId}: missing timings`);
    agentMs.push(close.atMs - t0);
    bareMs.push(tBare - t0);
    console.log(`session ${sessionId}: block ${block}, agent closed the relay after ${close.atMs - t0} ms, bare subscription saw it after ${tBare - t0} ms`);
  }
  await bare.removeAllListeners();
  bare.destroy();
  polling = false;
  fast.destroy();
  const ratio = median(agentMs) / Math.max(1, median(bareMs));
  console.log("");
  console.log(`energize latency (median of ${SESSIONS}): agent ${median(agentMs)} ms, bare ethers subscription ${median(bareMs)} ms`);
  console.log(`ratio agent / bare: ${ratio.toFixed(2)} (target <= 1.5): ${ratio <= 1.5 ? "ok" : "OVER"}`);
} finally {
  polling = false;
  await world.stop();
}

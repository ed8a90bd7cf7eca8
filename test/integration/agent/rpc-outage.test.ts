/**
 * The chain RPC goes away for 30 s in the middle of an energized session (DESIGN §3, Chain: "the agent keeps
 * charging within the deposit's budget while the RPC is down"). The agent process reaches anvil only through a TCP
 * proxy the test cuts (open connections dropped, new ones refused) and restores:
 *
 * - while cut, the session keeps delivering and stops on its budget, not for lack of a chain: the meter and the
 *   interlock need no RPC;
 * - the signed total waits in the outbox: nothing reaches the chain while the proxy is cut;
 * - after the restore the settlement goes out and is mined once, for exactly the Wh the meter register moved,
 *   with the owner paid ceil(Wh × price / 1000) and the rest refunded to the EV.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionStatus } from "../../../agent/chain/contracts.ts";
import { testChainUrl } from "../../helpers/chain.ts";
import {
  costOf,
  readJournal,
  settledView,
  sleep,
  startAgentWorld,
  startTcpProxy,
  waitUntil,
  type AgentWorld,
  type Pile,
  type TcpProxy,
} from "../../helpers/agent-world.ts";

const OUTAGE_MS = 30_000;

let world: AgentWorld;
let pile: Pile;
let proxy: TcpProxy;

beforeAll(async () => {
  world = await startAgentWorld();
  pile = await world.registerPile("cp-rpc-outage");
  proxy = await startTcpProxy(testChainUrl());
  await world.intervalMining();
}, 120_000);

afterAll(async () => {
  await world?.close();
  await proxy?.close();
});

describe("chain RPC outage of 30 s in the middle of a session", () => {
  it(
    "keeps charging within the budget, holds the settlement in the outbox while cut, settles once after the restore",
    async () => {
      // The watcher's own timer as a slow fallback only: its polls are the ones each new block triggers.
      const agent = world.startAgent(pile, { rpcUrl: proxy.url, chainPollIntervalMs: 30_000 });
      await agent.waitForLine("the agent to be ready", (line) => line.ready === true, 30_000);

      const coversWh = 120;
      const stopAtWh = coversWh - pile.core.stopMarginWh;
      const registerBeforeWh = world.registerWh();
      const ownerBefore = await world.ledger.withdrawable(world.owner.address);
      const evBefore = await world.ledger.withdrawable(world.ev.address);
      world.hwSim.board.ev.plug();
      const { sessionId, depositWei } = await world.openDeposit(pile, coversWh);
      const id = sessionId.toString();

      await agent.waitForLine("energized", (line) => line.phase === "energized" && line.sessionId === id, 30_000);
      // Cut in the middle of the chain poll the next block triggers (its first call reads the latest block).
      await proxy.cutAtRequest(/eth_getBlockByNumber/);
      const cutAtMs = Date.now();
      const registerAtCutWh = world.registerWh();
      const linesAtCut = agent.lines.length;

      // The session runs on without the chain and ends on its budget.
      const stopping = await agent.waitForLine("stopping while the RPC is cut", (line) => line.phase === "stopping" && line.sessionId === id, 20_000, linesAtCut);
      expect(proxy.isCut()).toBe(true);
      expect(stopping.stopReason).toBe("budget");
      expect(world.registerWh() - registerAtCutWh, "Wh delivered while the RPC was cut").toBeGreaterThan(20);
      const settling = await agent.waitForLine("settling while the RPC is cut", (line) => line.phase === "settling" && line.sessionId === id, 15_000, linesAtCut);
      expect(proxy.isCut()).toBe(true);
      const signed = (await agent.waitForLine("the signed total", (line) => line.settle?.sessionId === id, 5_000, linesAtCut)).settle;
      expect(signed).toBeDefined();
      expect(signed!.meterStopWh - signed!.meterStartWh).toBeGreaterThanOrEqual(stopAtWh);
      // No other stop than the budget: the relay closed once (energize) and opened once (budget), no fault.
      expect(agent.lines.filter((line) => line.relay === true)).toHaveLength(1);
      expect(agent.lines.some((line) => (line.fault ?? null) !== null)).toBe(false);

      // The rest of the outage: the settlement waits, the chain hears nothing from the pile.
      await sleep(Math.max(0, cutAtMs + OUTAGE_MS - Date.now()));
      expect(proxy.refused(), "the agent kept trying the RPC").toBeGreaterThan(0);
      expect((await world.ledger.session(sessionId)).status, "settled during the outage").toBe(SessionStatus.Authorized);
      expect(await world.fixture.provider.getTransactionCount(pile.device.address, "pending"), "device transactions during the outage").toBe(1);
      expect(agent.lines.slice(agent.lines.indexOf(settling)).every((line) => line.phase === undefined || line.phase === "settling")).toBe(true);

      proxy.restore();
      const restoredAtMs = Date.now();
      await waitUntil("the session to settle after the restore", async () => (await world.ledger.session(sessionId)).status === SessionStatus.Settled, 30_000, 200);
      await agent.waitForLine("idle after the settlement", (line) => line.phase === "idle" && (line.receivedAtMs ?? 0) >= restoredAtMs, 15_000, linesAtCut);
      const registerAfterWh = world.registerWh();
      world.hwSim.board.ev.unplug();

      const view = await settledView(world, pile, sessionId);
      expect(view.settledEvents).toBe(1);
      expect(view.records).toBe(1);
      expect(await world.fixture.provider.getTransactionCount(pile.device.address, "latest")).toBe(2);
      expect(view.energyWh, "signed Wh vs meter register delta").toBe(BigInt(registerAfterWh - registerBeforeWh));
      expect(view.energyWh).toBe(BigInt(signed!.meterStopWh - signed!.meterStartWh));
      const cost = costOf(view.energyWh);
      expect(cost).toBeLessThanOrEqual(depositWei);
      expect((await world.ledger.withdrawable(world.owner.address)) - ownerBefore).toBe(cost);
      expect((await world.ledger.withdrawable(world.ev.address)) - evBefore).toBe(depositWei - cost);
      await agent.terminate();

      // The outbox row: enqueued while the RPC was cut, completed only after the restore, by a mined transaction.
      const { settle } = readJournal(pile, sessionId);
      expect(settle?.status).toBe("done");
      expect(settle!.createdAt).toBeGreaterThanOrEqual(cutAtMs);
      expect(settle!.createdAt).toBeLessThan(restoredAtMs);
      expect(settle!.completedAt!).toBeGreaterThanOrEqual(restoredAtMs);
      expect(settle!.result).toMatchObject({ outcome: "mined" });
      expect(agent.stderr()).toContain("transactions stay queued");
      expect(agent.stderr().split("\n").filter((text) => text.includes('"level":"error"')), "errors logged").toEqual([]);
    },
    90_000,
  );
});

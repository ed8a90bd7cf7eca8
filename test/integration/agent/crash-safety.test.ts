/**
 * "A kill -9 at any point loses no energy and never settles twice" (DESIGN §3, Journal), shown on the real agent
 * in its own process: for each phase of a session — deposit pending, authorized, energized, stopping, settle sent
 * but not mined — the agent process is SIGKILLed in that phase (the replayed journal proves it was) and started
 * again on the same journal, while the meter, the contactor, the EV and the chain live on in the test process
 * (test/helpers/agent-world.ts). For every restart and every session:
 *
 * - the restarted agent writes the relay open before it does anything else (its first line is {"relay":false}),
 *   and a contactor left closed by the dead process (sysfs keeps the level) is opened before it is closed again;
 * - the session ends Settled on chain exactly once: one SessionSettled event, one charging record in the pile's
 *   chain of records, and the device key sent exactly two transactions (authorize, settle) — nothing was re-sent;
 * - the settled energy equals the meter register's delta over the session (before the EV plugged in, after the
 *   settlement), energy drawn while the agent was dead included;
 * - the owner's withdrawable grew by exactly ceil(Wh × price / 1000) and the EV's by deposit − cost.
 *
 * One more energized case: the agent dies near the end of the budget and the EV draws past the stop point through
 * the contactor the dead process left closed. The restarted agent must stop that session at once (it can never be
 * energized again) and settle the Wh the meter shows; it used to leave it "authorized" for ever, unsettled.
 *
 * Each pile has its own chargePointId, device key and journal, so the scenarios do not depend on each other; they
 * share the chain, the hw-sim board and the sysfs tree, one agent process at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionStatus } from "../../../agent/chain/contracts.ts";
import type { Phase } from "../../../agent/core/types.ts";
import {
  costOf,
  readJournal,
  settledView,
  sleep,
  startAgentWorld,
  waitUntil,
  type AgentLine,
  type AgentProcess,
  type AgentWorld,
  type Pile,
} from "../../helpers/agent-world.ts";

const TEST_TIMEOUT_MS = 75_000;

let world: AgentWorld;
const piles = new Map<string, Pile>();

beforeAll(async () => {
  world = await startAgentWorld();
  piles.set("depositPending", await world.registerPile("cp-crash-deposit-pending"));
  piles.set("authorized", await world.registerPile("cp-crash-authorized"));
  piles.set("energized", await world.registerPile("cp-crash-energized"));
  // A wider stop margin: the EV keeps drawing through the closed contactor while this agent is dead.
  piles.set("energizedOverBudget", await world.registerPile("cp-crash-energized-over-budget", { stopMarginWh: 60 }));
  piles.set("stopping", await world.registerPile("cp-crash-stopping"));
  piles.set("settling", await world.registerPile("cp-crash-settling"));
  await world.intervalMining();
}, 120_000);

afterAll(async () => {
  await world?.close();
});

function pileFor(name: string): Pile {
  const pile = piles.get(name);
  if (!pile) throw new Error(`no pile ${name}`);
  return pile;
}

// ---------------------------------------------------------------- steps shared by the scenarios

interface Running {
  pile: Pile;
  runs: AgentProcess[];
  agent: AgentProcess;
}

/** Starts the pile's agent and waits until it is up (relay forced open, journal replayed, loops running). */
async function startAgent(pile: Pile, runs: AgentProcess[] = []): Promise<Running> {
  const agent = world.startAgent(pile);
  runs.push(agent);
  await agent.waitForLine("the agent to be ready", (line) => line.ready === true, 30_000);
  return { pile, runs, agent };
}

function isPhase(sessionId: bigint, phase: Phase): (line: AgentLine) => boolean {
  return (line) => line.phase === phase && line.sessionId === sessionId.toString();
}

/** SIGKILLs the agent as soon as it reports `phase` for the session; returns what its journal says afterwards. */
async function killIn(running: Running, sessionId: bigint, phase: Phase, timeoutMs = 30_000): Promise<ReturnType<typeof readJournal>> {
  await running.agent.waitForLine(`phase ${phase} of session ${sessionId}`, isPhase(sessionId, phase), timeoutMs);
  await running.agent.kill9();
  const journal = readJournal(running.pile, sessionId);
  // The kill landed in that phase: the state rebuilt from the journal is the one the process died in.
  expect(journal.state.phase, `phase at the kill, per the journal of ${running.pile.chargePointId}`).toBe(phase);
  expect(journal.state.session?.sessionId).toBe(sessionId);
  return journal;
}

/** Starts the agent again on the same journal and checks that its very first act is to open the relay. */
async function restart(running: Running): Promise<{ startedAtMs: number }> {
  const startedAtMs = Date.now();
  const next = await startAgent(running.pile, running.runs);
  running.agent = next.agent;
  const first = running.agent.lines.find((line) => line.relay !== undefined || line.phase !== undefined);
  expect(first, "first relay write or state change after the restart").toMatchObject({ relay: false });
  return { startedAtMs };
}

interface Money {
  owner: bigint;
  ev: bigint;
}

async function money(): Promise<Money> {
  return {
    owner: await world.ledger.withdrawable(world.owner.address),
    ev: await world.ledger.withdrawable(world.ev.address),
  };
}

interface Opened {
  sessionId: bigint;
  depositWei: bigint;
  registerBeforeWh: number;
  before: Money;
}

async function plugAndOpen(pile: Pile, coversWh: number, plug = true): Promise<Opened> {
  const registerBeforeWh = world.registerWh();
  const before = await money();
  if (plug) world.hwSim.board.ev.plug();
  const { sessionId, depositWei } = await world.openDeposit(pile, coversWh);
  return { sessionId, depositWei, registerBeforeWh, before };
}

/**
 * Waits for the session to settle and the agent to go idle, then checks it against the chain and the meter. Also
 * checks that every run of the agent process began with the relay opened. Ends with the EV unplugged and the
 * agent stopped cleanly.
 */
async function expectSettledOnce(running: Running, opened: Opened, options: { energized: boolean }): Promise<bigint> {
  const { pile } = running;
  const { sessionId } = opened;
  await waitUntil(
    `session ${sessionId} to be settled on chain`,
    async () => (await world.ledger.session(sessionId)).status === SessionStatus.Settled,
    45_000,
    200,
  );
  await running.agent.waitForLine(`the agent to finish session ${sessionId}`, (line) => line.phase === "idle", 15_000);
  // The relay is open (idle): the register no longer moves.
  const registerAfterWh = world.registerWh();
  world.hwSim.board.ev.unplug();

  const view = await settledView(world, pile, sessionId);
  expect(view.status).toBe(SessionStatus.Settled);
  expect(view.settledEvents, "SessionSettled events").toBe(1);
  expect(view.records, "charging records of the pile for this session").toBe(1);
  expect(await world.fixture.provider.getTransactionCount(pile.device.address, "latest"), "transactions sent by the device key").toBe(2);

  const meterDeltaWh = registerAfterWh - opened.registerBeforeWh;
  expect(view.energyWh, "signed Wh vs meter register delta").toBe(BigInt(meterDeltaWh));
  if (options.energized) expect(meterDeltaWh).toBeGreaterThan(0);
  else expect(meterDeltaWh).toBe(0);

  const cost = costOf(view.energyWh);
  expect(cost, "cost within the deposit").toBeLessThanOrEqual(opened.depositWei);
  const after = await money();
  expect(after.owner - opened.before.owner, "owner credited").toBe(cost);
  expect(after.ev - opened.before.ev, "EV refunded").toBe(opened.depositWei - cost);

  for (const [index, run] of running.runs.entries()) {
    const first = run.lines.find((line) => line.relay !== undefined || line.phase !== undefined);
    expect(first, `run ${index + 1}: first relay write or state change`).toMatchObject({ relay: false });
    // No fault (a feedback mismatch, an implausible meter) and nothing the agent logged as an error.
    expect(run.lines.filter((line) => (line.fault ?? null) !== null), `run ${index + 1}: faults`).toEqual([]);
    expect(run.stderr().split("\n").filter((text) => text.includes('"level":"error"')), `run ${index + 1}: errors logged`).toEqual([]);
  }
  await running.agent.terminate();
  return view.energyWh;
}

/** The relay value file's edges from `sinceMs` on. */
function relayEdgesSince(sinceMs: number): boolean[] {
  return world.bridge.relayEdges.filter((edge) => edge.atMs >= sinceMs).map((edge) => edge.closed);
}

// ---------------------------------------------------------------- scenarios

describe("agent process killed with SIGKILL and restarted on its journal", () => {
  it(
    "deposit pending: the restarted agent keeps counting confirmations, authorizes, charges and settles once",
    async () => {
      const pile = pileFor("depositPending");
      const running = await startAgent(pile);
      const opened = await plugAndOpen(pile, 80);
      const journal = await killIn(running, opened.sessionId, "depositPending");
      expect(journal.authorize).toBeUndefined();
      expect(world.bridge.relayFileLevel()).toBe(false);

      await restart(running);
      await running.agent.waitForLine("energized after the restart", isPhase(opened.sessionId, "energized"), 30_000);
      await expectSettledOnce(running, opened, { energized: true });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "authorized (EV not plugged in yet): after the restart the EV plugs in, the session charges and settles once",
    async () => {
      const pile = pileFor("authorized");
      const running = await startAgent(pile);
      const opened = await plugAndOpen(pile, 80, false);
      const journal = await killIn(running, opened.sessionId, "authorized");
      // The ledger's SessionAuthorized log may reach the core before the sender's receipt marks the outbox item
      // done, so at the kill the item is done or still pending with its transaction mined; either way the
      // restarted sender must not authorize again (expectSettledOnce counts the device key's transactions).
      expect(["done", "pending"]).toContain(journal.authorize?.status);
      expect(journal.state.session?.meterStartWh).toBeUndefined();
      expect(world.bridge.relayFileLevel()).toBe(false);
      expect((await world.ledger.session(opened.sessionId)).status).toBe(SessionStatus.Authorized);

      await restart(running);
      await running.agent.waitForLine("authorized after the restart", isPhase(opened.sessionId, "authorized"), 15_000);
      world.hwSim.board.ev.plug();
      await running.agent.waitForLine("energized once the EV is plugged in", isPhase(opened.sessionId, "energized"), 15_000);
      await expectSettledOnce(running, opened, { energized: true });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "energized: the contactor the dead agent left closed is opened first, then the session resumes and bills every Wh",
    async () => {
      const pile = pileFor("energized");
      const running = await startAgent(pile);
      const opened = await plugAndOpen(pile, 100);
      const journal = await killIn(running, opened.sessionId, "energized");
      expect(journal.state.relayCommandedClosed).toBe(true);
      const meterStartWh = journal.state.session?.meterStartWh;
      expect(meterStartWh).toBe(opened.registerBeforeWh);

      // Like a Pi whose process died: sysfs keeps the output level, the contactor stays closed, energy flows.
      await sleep(500);
      expect(world.bridge.relayFileLevel()).toBe(true);
      expect(world.hwSim.board.relay.contactsClosed()).toBe(true);
      const registerAtRestartWh = world.registerWh();
      expect(registerAtRestartWh).toBeGreaterThan(opened.registerBeforeWh);

      const { startedAtMs } = await restart(running);
      const edges = relayEdgesSince(startedAtMs);
      expect(edges[0], "first relay edge after the restart").toBe(false);
      const resumed = await running.agent.waitForLine("energized again", isPhase(opened.sessionId, "energized"), 15_000);
      expect(resumed.meterStartWh, "the session keeps its start reading").toBe(meterStartWh);
      // The agent reports "energized" in the step that commands the close; the file bridge shows it a poll later.
      await waitUntil("the relay closed again", () => relayEdgesSince(startedAtMs).length >= 2, 5_000, 10);
      expect(relayEdgesSince(startedAtMs).slice(0, 2)).toEqual([false, true]);

      const energyWh = await expectSettledOnce(running, opened, { energized: true });
      expect(Number(energyWh)).toBeGreaterThan(registerAtRestartWh - opened.registerBeforeWh);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "energized, and the EV uses up the budget while the agent is dead: the restarted agent stops at once and settles what the meter shows",
    async () => {
      const pile = pileFor("energizedOverBudget");
      const coversWh = 150;
      const stopAtWh = coversWh - pile.core.stopMarginWh;
      const running = await startAgent(pile);
      const opened = await plugAndOpen(pile, coversWh);
      await running.agent.waitForLine("energized", isPhase(opened.sessionId, "energized"), 30_000);
      await waitUntil("half the budget delivered", () => world.registerWh() - opened.registerBeforeWh >= stopAtWh - 30, 20_000, 20);
      const journal = await killIn(running, opened.sessionId, "energized");
      expect(journal.state.session?.stopAtWh).toBe(stopAtWh);

      // The contactor stays closed while the agent is dead: the EV draws past the point the agent would stop at.
      await waitUntil("the budget used up through the closed contactor", () => world.registerWh() - opened.registerBeforeWh >= stopAtWh + 2, 20_000, 20);
      expect(world.hwSim.board.relay.contactsClosed()).toBe(true);

      const { startedAtMs } = await restart(running);
      const stopped = await running.agent.waitForLine("stopping after the restart", isPhase(opened.sessionId, "stopping"), 15_000);
      expect(stopped.stopReason).toBe("budget");
      const energyWh = await expectSettledOnce(running, opened, { energized: true });
      expect(Number(energyWh)).toBeGreaterThanOrEqual(stopAtWh + 2);
      // Opened at start-up and never closed again.
      expect(relayEdgesSince(startedAtMs)).toEqual([false]);
      expect(running.agent.lines.filter((line) => line.relay === true)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "stopping (relay open, waiting for the stop reading): the restarted agent takes a fresh reading and settles once",
    async () => {
      const pile = pileFor("stopping");
      const running = await startAgent(pile);
      const opened = await plugAndOpen(pile, 80);
      const journal = await killIn(running, opened.sessionId, "stopping");
      expect(journal.state.session?.stopReason).toBe("budget");
      expect(journal.state.session?.meterStopWh).toBeUndefined();
      expect(journal.settle).toBeUndefined();

      const { startedAtMs } = await restart(running);
      await running.agent.waitForLine("settling after the restart", isPhase(opened.sessionId, "settling"), 15_000);
      await expectSettledOnce(running, opened, { energized: true });
      expect(relayEdgesSince(startedAtMs)).toEqual([]);
      expect(running.agent.lines.filter((line) => line.relay === true)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "settle sent but not mined: after the restart the pooled transaction is found, not sent again",
    async () => {
      const pile = pileFor("settling");
      const running = await startAgent(pile);
      const opened = await plugAndOpen(pile, 80);
      await running.agent.waitForLine("energized", isPhase(opened.sessionId, "energized"), 30_000);
      await world.pauseMining();
      try {
        await running.agent.waitForLine("settling", isPhase(opened.sessionId, "settling"), 30_000);
        const provider = world.fixture.provider;
        await waitUntil(
          "the settle transaction in the mempool",
          async () => (await provider.getTransactionCount(pile.device.address, "pending")) === 2,
          15_000,
        );
        expect(await provider.getTransactionCount(pile.device.address, "latest")).toBe(1);
        await running.agent.kill9();
        const journal = readJournal(pile, opened.sessionId);
        expect(journal.state.phase).toBe("settling");
        expect(journal.settle).toMatchObject({ status: "pending", nonce: 1 });
        const pooled = await provider.getTransaction(journal.settle!.txHash!);
        expect(pooled?.blockNumber ?? null, "the settle transaction is not mined").toBeNull();
        expect((await world.ledger.session(opened.sessionId)).status).toBe(SessionStatus.Authorized);
      } finally {
        await world.intervalMining();
      }

      await restart(running);
      await expectSettledOnce(running, opened, { energized: true });
    },
    TEST_TIMEOUT_MS,
  );
});

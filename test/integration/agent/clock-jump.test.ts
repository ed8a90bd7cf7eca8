/**
 * Wall-clock steps of ±1 h in the middle of a session (issue 11 fault "clock jump": an NTP correction, an RTC-less
 * board syncing after boot, an operator's `date -s`). The in-process agent of agent.test.ts, with its wall clock
 * (agent and meter driver, as on a pile where both read the system clock) stepped by the test while the control
 * clock stays monotonic. What must hold: the interlock still opens on a dead meter within staleAfterMs, a live meter
 * is not declared lost, and the session settles once with the signed Wh equal to the meter's delta.
 */
import { afterEach, describe, expect, it } from "vitest";
import { connectLedger, SessionStatus } from "../../../agent/chain/contracts.ts";
import { openSession } from "../../../agent/chain/operations.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import { txKey, type SettlePayload } from "../../../agent/chain/tx-sender.ts";
import {
  SIM_CHARGE_POINT_ID,
  SIM_POLL_INTERVAL_MS,
  SIM_PRICE_WEI_PER_KWH,
  startSimWorld,
  waitUntil,
  type SimWorld,
} from "../../../agent/sim/world.ts";

const CP_ID = cpIdOf(SIM_CHARGE_POINT_ID);
const HOUR_MS = 3_600_000;
const STALE_AFTER_MS = 2_000;
const depositFor = (wh: number): bigint => (BigInt(wh) * SIM_PRICE_WEI_PER_KWH) / 1000n;

let world: SimWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

/**
 * A wall clock the test can step, as `date -s` steps the system clock: at once, or (`stepDuringNextPoll`) while
 * the agent's meter poll is under way, between the request going out and the loop timing its next poll.
 */
function steppableClock(): { now: () => number; step: (ms: number) => void; stepDuringNextPoll: (ms: number) => Promise<void>; onSample: () => void } {
  let offsetMs = 0;
  let due: { ms: number; done: () => void } | undefined;
  return {
    now: () => Date.now() + offsetMs,
    step: (ms) => void (offsetMs += ms),
    stepDuringNextPoll: (ms) => new Promise((resolve) => (due = { ms, done: resolve })),
    onSample: () => {
      if (!due) return;
      offsetMs += due.ms;
      due.done();
      due = undefined;
    },
  };
}

async function open(w: SimWorld, coversWh: number): Promise<bigint> {
  w.hwSim.board.ev.plug();
  const { sessionId } = await openSession(connectLedger(w.deployment.ChargingLedger, w.evWallet), CP_ID, 20_000, depositFor(coversWh));
  return sessionId;
}

async function settled(w: SimWorld, sessionId: bigint): Promise<void> {
  await waitUntil(`session ${sessionId} settled`, async () => (await w.ledger.session(sessionId)).status === SessionStatus.Settled, 90_000);
}

/** Waits `ms` while asserting, every poll, that the relay stays closed and the session keeps delivering. */
async function staysEnergized(w: SimWorld, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    expect(w.agent.relay.isClosed(), `relay open after the clock step (phase ${w.agent.state().phase}, stop ${w.agent.state().session?.stopReason})`).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The total the agent signed and the ledger accepted (the ledger's SessionSettled log may beat our receipt). */
async function signedTotal(w: SimWorld, sessionId: bigint): Promise<SettlePayload["total"]> {
  const key = txKey("settle", sessionId);
  await waitUntil(`${key} done`, () => w.journal.get(key)?.status === "done", 30_000);
  return (w.journal.get(key)?.payload as SettlePayload).total;
}

describe("agent under wall-clock steps", () => {
  it("a clock set back 1 h keeps a live meter fresh, still opens the relay within staleAfterMs of the meter dying, and settles the meter delta", async () => {
    const clock = steppableClock();
    const w = (world = await startSimWorld({ staleAfterMs: STALE_AFTER_MS, clock: clock.now, onSample: clock.onSample }));
    const registerBefore = w.registerWh();
    const sessionId = await open(w, 2_000);
    await waitUntil("energy flowing", () => w.registerWh() - registerBefore >= 30, 60_000);
    const startedAtS = Math.floor(clock.now() / 1000);

    // Mid-poll: a poll loop timing its wait on the wall clock would then sleep an hour and lose the meter.
    await clock.stepDuringNextPoll(-HOUR_MS);
    // Longer than staleAfterMs: with staleness on the wall clock the fresh readings (dated an hour "ago") would
    // have opened the relay at once.
    await staysEnergized(w, STALE_AFTER_MS + 1_000);

    w.hwSim.board.faults.meterOffline(true);
    const cutAt = performance.now();
    await waitUntil("relay open after the meter died", () => !w.agent.relay.isClosed(), 10_000);
    expect(performance.now() - cutAt).toBeLessThanOrEqual(STALE_AFTER_MS + SIM_POLL_INTERVAL_MS + 1_000);
    expect(w.agent.relay.history().at(-1)?.reason).toBe("meterLost");
    w.hwSim.board.faults.meterOffline(false);

    await settled(w, sessionId);
    const session = await w.ledger.session(sessionId);
    expect(BigInt(w.registerWh() - registerBefore)).toBe(session.energyWh);
    const total = await signedTotal(w, sessionId);
    expect(total.meterStopWh - total.meterStartWh).toBe(session.energyWh);
    // Wall time as the pile's clock told it: the start before the step; the stop after it, but never before the
    // start (the ledger would revert StopBeforeStart).
    expect(Number(total.startedAt)).toBeLessThanOrEqual(startedAtS);
    expect(total.stoppedAt).toBe(total.startedAt);
  }, 120_000);

  it("a clock set forward 1 h stops nothing early: the session runs to its budget and settles the meter delta", async () => {
    const clock = steppableClock();
    const w = (world = await startSimWorld({ staleAfterMs: STALE_AFTER_MS, clock: clock.now }));
    const registerBefore = w.registerWh();
    const sessionId = await open(w, 400);
    await waitUntil("energy flowing", () => w.registerWh() - registerBefore >= 30, 60_000);
    const startedAtS = Math.floor(clock.now() / 1000);

    clock.step(HOUR_MS);
    await staysEnergized(w, STALE_AFTER_MS + 1_000);

    await settled(w, sessionId);
    expect(w.agent.relay.history().at(-1)?.reason).toBe("budget");
    const session = await w.ledger.session(sessionId);
    // Budget: 400 Wh covered − 20 Wh stop margin.
    expect(Number(session.energyWh)).toBeGreaterThanOrEqual(380);
    expect(Number(session.energyWh)).toBeLessThan(400);
    expect(BigInt(w.registerWh() - registerBefore)).toBe(session.energyWh);
    const total = await signedTotal(w, sessionId);
    expect(total.meterStopWh - total.meterStartWh).toBe(session.energyWh);
    expect(Number(total.startedAt)).toBeLessThanOrEqual(startedAtS);
    expect(Number(total.stoppedAt)).toBeGreaterThanOrEqual(startedAtS + HOUR_MS / 1000);
  }, 120_000);
});

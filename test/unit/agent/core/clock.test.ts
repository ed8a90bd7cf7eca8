/**
 * The core's two clocks (agent/core/types.ts): timing rules measure control time, timestamps that leave the pile
 * are wall time. Each test steps the wall clock ±1 h mid-session while control time runs on, or starts a new
 * control epoch behind the journaled one, and checks the interlock and the signed total.
 */
import { describe, expect, it } from "vitest";
import { elapsedMs, initialState, meterFresh, step } from "../../../../agent/core/step.ts";
import type { CoreCommand, CoreEvent, CoreState, SignedTotalRequest } from "../../../../agent/core/types.ts";
import { coreConfig, sessionTerms } from "../../../helpers/core-fixtures.ts";

const config = coreConfig();

const HOUR_MS = 3_600_000;
/** 2026-12-03T00:00:00Z: a wall time far from control time, so a mix-up between the two cannot pass unseen. */
const WALL_T0 = 1_796_256_000_000;

type EventInput = CoreEvent extends infer E ? (E extends CoreEvent ? Omit<E, "atMs" | "controlMs"> : never) : never;

/** A pile whose wall clock the test can step, while control time only ever advances. */
class Run {
  state: CoreState = initialState();
  commands: CoreCommand[] = [];
  controlMs = 50_000;
  wallOffsetMs = WALL_T0 - 50_000;

  send(event: EventInput): CoreCommand[] {
    const result = step(config, this.state, { ...event, atMs: this.controlMs + this.wallOffsetMs, controlMs: this.controlMs } as CoreEvent);
    this.state = result.state;
    this.commands.push(...result.commands);
    return result.commands;
  }

  advance(ms: number): this {
    this.controlMs += ms;
    return this;
  }

  stepWall(ms: number): this {
    this.wallOffsetMs += ms;
    return this;
  }

  relayReasons(): string[] {
    return this.commands.flatMap((c) => (c.type === "setRelay" ? [`${c.closed ? "close" : "open"}:${c.reason}`] : []));
  }

  settle(): SignedTotalRequest | undefined {
    const command = this.commands.find((c) => c.type === "sendSettle");
    return command?.type === "sendSettle" ? command.total : undefined;
  }

  /** Startup to energized at register 100,000 Wh; ends 1 s after the relay closed. */
  energize(): void {
    this.send({ type: "startup" });
    this.send({ type: "evPresence", present: true });
    this.send({ type: "meterSample", energyWh: 100_000, powerW: 0 });
    // Deposit 0.003 ether at 0.0003 ether/kWh: 10,000 Wh.
    this.send({ type: "depositSeen", ...sessionTerms(1n) });
    this.send({ type: "chainHead", blockNumber: 11 });
    this.send({ type: "authorizeMined", sessionId: 1n, txHash: "0xauth" });
    this.send({ type: "relayFeedback", closed: true });
    this.advance(1_000).send({ type: "meterSample", energyWh: 100_002, powerW: 7_000 });
  }

  /** One meter poll a second for `seconds`, 2 Wh each. */
  charge(seconds: number): void {
    for (let i = 0; i < seconds; i++) {
      const last = this.state.meter.lastEnergyWh ?? 0;
      this.advance(1_000).send({ type: "meterSample", energyWh: last + 2, powerW: 7_000 });
    }
  }
}

describe("session core: meter freshness on control time", () => {
  const withSample = (nowMs: number, lastSampleAtMs: number): CoreState => ({ ...initialState(), nowMs, meter: { lastSampleAtMs, lastEnergyWh: 1 } });

  it("a reading is fresh from age 0 to staleAfterMs inclusive, and stale beyond", () => {
    expect(meterFresh(config, withSample(10_000, 10_000))).toBe(true);
    expect(meterFresh(config, withSample(13_000, 10_000))).toBe(true);
    expect(meterFresh(config, withSample(13_001, 10_000))).toBe(false);
  });

  it("a reading dated after now (negative age: the clock moved under it) is stale, however small the gap", () => {
    expect(meterFresh(config, withSample(10_000, 10_001))).toBe(false);
    expect(meterFresh(config, withSample(10_000, 10_000 + HOUR_MS))).toBe(false);
    expect(elapsedMs(withSample(10_000, 0), 10_001)).toBeUndefined();
    expect(elapsedMs(withSample(10_000, 0), 9_000)).toBe(1_000);
  });

  it("a feedback mismatch dated after now counts as timed out: the weld is reported, not hidden", () => {
    const state: CoreState = { ...initialState(), nowMs: 10_000, relayCommandedClosed: false, relayFeedbackClosed: true, relayMismatchSinceMs: 10_000 + HOUR_MS };
    const result = step(config, state, { type: "tick", atMs: WALL_T0, controlMs: 10_000 });
    expect(result.state.fault).toBe("welded contactor: feedback stayed closed for 500 ms after opening");
  });
});

describe("session core: wall clock stepped mid-session", () => {
  it("set back 1 h: the session keeps delivering, and a meter that dies after the step opens the relay at staleAfterMs", () => {
    const run = new Run();
    run.energize();
    run.charge(5);
    run.stepWall(-HOUR_MS);
    run.charge(5);
    expect(run.state.phase).toBe("energized");
    expect(run.relayReasons()).toEqual(["open:startup", "close:energize"]);

    // The meter dies: its last reading was polled at controlMs; ticks every 250 ms.
    const lastSampleAt = run.controlMs;
    for (let t = 250; t <= 3_000; t += 250) run.advance(250).send({ type: "tick" });
    expect(run.controlMs - lastSampleAt).toBe(3_000);
    expect(run.relayReasons()).toEqual(["open:startup", "close:energize"]);
    run.advance(1).send({ type: "tick" });
    expect(run.relayReasons()).toEqual(["open:startup", "close:energize", "open:meterLost"]);

    // The meter answers again after the stop-reading delay: that register is the stop reading.
    run.advance(1_000).send({ type: "meterSample", energyWh: 100_022, powerW: 0 });
    const total = run.settle();
    // The relay closed on the authorize, at WALL_T0.
    const startedAtS = WALL_T0 / 1000;
    // Wall time: the start before the step; the stop an hour "earlier" is clamped to the start, never before it.
    expect(total).toEqual({ sessionId: 1n, meterStartWh: 100_000, meterStopWh: 100_022, startedAtS, stoppedAtS: startedAtS, evBehaviour: 0 });
  });

  it("set forward 1 h: nothing goes stale, and the signed stop carries the wall time after the step", () => {
    const run = new Run();
    run.energize();
    run.charge(5);
    run.stepWall(HOUR_MS);
    run.send({ type: "tick" });
    run.charge(5);
    expect(run.state.phase).toBe("energized");
    run.advance(100).send({ type: "remoteStop" });
    expect(run.relayReasons()).toEqual(["open:startup", "close:energize", "open:remoteStop"]);
    run.advance(1_000).send({ type: "meterSample", energyWh: 100_022, powerW: 0 });
    const total = run.settle();
    expect(total).toEqual({
      sessionId: 1n,
      meterStartWh: 100_000,
      meterStopWh: 100_022,
      startedAtS: WALL_T0 / 1000,
      // 12.1 s of control time after the start, plus the hour the wall clock jumped.
      stoppedAtS: Math.floor((WALL_T0 + 12_100 + HOUR_MS) / 1000),
      evBehaviour: 0,
    });
  });

  it("a stop reading must come from a poll that began after the relay opened, even when it arrives later", () => {
    const run = new Run();
    run.energize();
    run.charge(2);
    run.advance(10).send({ type: "remoteStop" });
    const openedAt = run.controlMs;
    // Polled before the open command plus the delay: not a stop reading, though stepped in after it.
    run.send({ type: "meterSample", energyWh: 100_010, powerW: 7_000 });
    expect(run.state.phase).toBe("stopping");
    run.controlMs = openedAt + 1_000;
    run.send({ type: "meterSample", energyWh: 100_011, powerW: 0 });
    expect(run.state.phase).toBe("settling");
    expect(run.settle()?.meterStopWh).toBe(100_011);
  });
});

describe("session core: a restart in a control epoch behind the journaled one", () => {
  it("start-up adopts the new epoch: fresh readings count as fresh and the session energizes again", () => {
    const run = new Run();
    run.energize();
    run.charge(3);
    // The next process's control clock starts 10 h behind (the wall clock was set back while the pile was off).
    run.controlMs -= 10 * HOUR_MS;
    run.send({ type: "startup" });
    expect(run.state.nowMs).toBe(run.controlMs);
    expect(run.state.phase).toBe("authorized");
    run.send({ type: "evPresence", present: true });
    run.send({ type: "relayFeedback", closed: false });
    run.advance(250).send({ type: "meterSample", energyWh: 100_008, powerW: 0 });
    expect(run.state.phase).toBe("energized");
    run.send({ type: "relayFeedback", closed: true });
    expect(run.relayReasons()).toEqual(["open:startup", "close:energize", "open:startup", "close:energize"]);
    // …and a meter that dies in the new epoch still opens the relay at staleAfterMs.
    run.advance(3_001).send({ type: "tick" });
    expect(run.relayReasons().at(-1)).toBe("open:meterLost");
  });

  it("a session stopping at the restart times its stop reading from the new epoch, not from the journaled open", () => {
    const run = new Run();
    run.energize();
    run.advance(10).send({ type: "remoteStop" });
    expect(run.state.phase).toBe("stopping");
    run.controlMs -= 10 * HOUR_MS;
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    // The meter stays silent: the timeout runs out 10 s after this start-up, not 10 h later.
    run.advance(9_999).send({ type: "tick" });
    expect(run.state.phase).toBe("stopping");
    run.advance(1).send({ type: "tick" });
    expect(run.state.phase).toBe("settling");
    expect(run.settle()?.meterStopWh).toBe(100_002);
  });
});

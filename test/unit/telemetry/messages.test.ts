import { describe, expect, it } from "vitest";
import { initialState, step } from "../../../agent/core/step.ts";
import type { CoreConfig, CoreEvent, CoreState } from "../../../agent/core/types.ts";
import { createMessageBuilder, type MessageBuilder } from "../../../agent/telemetry/messages.ts";
import type { TelemetryMessage } from "../../../agent/telemetry/types.ts";
import type { MeterSample } from "../../../drivers/meters/types.ts";

const config: CoreConfig = {
  chargePointId: "cp-007",
  confirmations: 1,
  stopMarginWh: 20,
  staleAfterMs: 3_000,
  feedbackTimeoutMs: 500,
  hasEvPresentInput: false,
  hasFeedbackInput: false,
  stopReadingDelayMs: 1_000,
  stopReadingTimeoutMs: 10_000,
};

const EV = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const DEPOSIT_TX = `0x${"d".repeat(64)}`;
const AUTHORIZE_TX = `0x${"a".repeat(64)}`;
const SETTLE_TX = `0x${"5".repeat(64)}`;
const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
const iso = (ms: number): string => new Date(ms).toISOString();

/** The real core, with every step handed to a message builder as the agent's onStep would. */
class Script {
  state: CoreState = initialState();
  readonly messages: TelemetryMessage[] = [];

  constructor(readonly builder: MessageBuilder) {}

  send(event: CoreEvent): TelemetryMessage[] {
    const result = step(config, this.state, event);
    this.state = result.state;
    const out = this.builder.fromStep(result.state, event, result.commands);
    this.messages.push(...out);
    return out;
  }

  sample(atMs: number, energyWh: number, powerW: number): TelemetryMessage[] {
    return this.send({ type: "meterSample", atMs, energyWh, powerW });
  }
}

const builder = (meterIntervalMs = 0): MessageBuilder => createMessageBuilder({ topicPrefix: "trustpile", chargePointId: "cp-007", meterIntervalMs });
const ofTopic = (messages: TelemetryMessage[], name: string): Record<string, unknown>[] =>
  messages.filter((m) => m.topic === `trustpile/cp-007/${name}`).map((m) => JSON.parse(m.payload) as Record<string, unknown>);

describe("telemetry messages from core steps", () => {
  it("follows a whole session: exact session payloads with the deposit, authorize and settle hashes", () => {
    const run = new Script(builder());
    run.send({ type: "startup", atMs: T0 });
    run.sample(T0 + 1_000, 5_000, 0);
    // 0.0001 ether at 0.001 ether/kWh covers 100 Wh; less the 20 Wh margin: a budget of 80 Wh.
    run.send({
      type: "depositSeen",
      atMs: T0 + 2_000,
      sessionId: 7n,
      ev: EV,
      depositWei: 100_000_000_000_000n,
      priceWeiPerKWh: 1_000_000_000_000_000n,
      maxEnergyWh: 50_000,
      depositBlock: 10,
      depositBlockHash: "0x01",
      depositTxHash: DEPOSIT_TX,
    });
    run.send({ type: "chainHead", atMs: T0 + 2_500, blockNumber: 10 });
    run.sample(T0 + 3_000, 5_000, 0);
    run.send({ type: "authorizeMined", atMs: T0 + 3_500, sessionId: 7n, txHash: AUTHORIZE_TX });
    run.sample(T0 + 4_000, 5_050, 7_000);
    run.sample(T0 + 5_000, 5_080, 7_000); // budget reached: stop
    run.sample(T0 + 6_500, 5_081, 0); // the reading after the contacts opened
    run.send({ type: "settleMined", atMs: T0 + 8_000, sessionId: 7n, txHash: SETTLE_TX });

    const base = { sessionId: "7", ev: EV, depositWei: "100000000000000", priceWeiPerKWh: "1000000000000000", budgetWh: 80, depositTxHash: DEPOSIT_TX };
    expect(ofTopic(run.messages, "session")).toEqual([
      { ...base, ts: iso(T0 + 2_000), phase: "depositPending", previousPhase: "idle", meterStartWh: null, energyWh: 0, stopReason: null, authorizeTxHash: null, settleTxHash: null },
      { ...base, ts: iso(T0 + 2_500), phase: "authorizing", previousPhase: "depositPending", meterStartWh: null, energyWh: 0, stopReason: null, authorizeTxHash: null, settleTxHash: null },
      // authorized and energized in one step: the meter was fresh when the authorize tx was mined. No "suspended"
      // blip: the reading that let the contacts close was taken with them open.
      { ...base, ts: iso(T0 + 3_500), phase: "energized", previousPhase: "authorizing", meterStartWh: 5_000, energyWh: 0, stopReason: null, authorizeTxHash: AUTHORIZE_TX, settleTxHash: null },
      { ...base, ts: iso(T0 + 5_000), phase: "stopping", previousPhase: "energized", meterStartWh: 5_000, energyWh: 80, stopReason: "budget", authorizeTxHash: AUTHORIZE_TX, settleTxHash: null },
      { ...base, ts: iso(T0 + 6_500), phase: "settling", previousPhase: "stopping", meterStartWh: 5_000, energyWh: 81, stopReason: "budget", authorizeTxHash: AUTHORIZE_TX, settleTxHash: null },
      { ...base, ts: iso(T0 + 8_000), phase: "idle", previousPhase: "settling", meterStartWh: 5_000, energyWh: 81, stopReason: "budget", authorizeTxHash: AUTHORIZE_TX, settleTxHash: SETTLE_TX },
    ]);
    for (const m of run.messages) {
      expect(m.retain, m.topic).toBe(m.kind === "state");
      expect(m.topic).toBe(`trustpile/cp-007/${m.kind}`);
    }
  });

  it("takes the settle hash from a SessionSettled log that closes the session before the tx receipt is reported", () => {
    const run = new Script(builder());
    run.send({ type: "startup", atMs: T0 });
    run.sample(T0 + 1_000, 5_000, 0);
    run.send({
      type: "depositSeen",
      atMs: T0 + 2_000,
      sessionId: 8n,
      ev: EV,
      depositWei: 100_000_000_000_000n,
      priceWeiPerKWh: 1_000_000_000_000_000n,
      maxEnergyWh: 50_000,
      depositBlock: 10,
      depositBlockHash: "0x01",
      depositTxHash: DEPOSIT_TX,
    });
    run.send({ type: "chainHead", atMs: T0 + 2_500, blockNumber: 10 });
    run.send({ type: "authorizeMined", atMs: T0 + 2_600, sessionId: 8n, txHash: AUTHORIZE_TX });
    run.sample(T0 + 3_000, 5_090, 7_000);
    run.sample(T0 + 4_500, 5_090, 0);
    expect(run.state.phase).toBe("settling");
    // The shell passes the log's transaction hash along (an extra field the core ignores).
    const closed = run.send({ type: "sessionClosedOnChain", atMs: T0 + 6_000, sessionId: 8n, how: "settled", txHash: SETTLE_TX } as CoreEvent);
    expect(ofTopic(closed, "session")).toEqual([
      expect.objectContaining({ sessionId: "8", phase: "idle", previousPhase: "settling", energyWh: 90, authorizeTxHash: AUTHORIZE_TX, settleTxHash: SETTLE_TX }),
    ]);
  });

  it("publishes the retained state when what it shows changes, not on every step", () => {
    const run = new Script(builder());
    expect(run.send({ type: "startup", atMs: T0 })).toEqual([
      {
        topic: "trustpile/cp-007/state",
        retain: true,
        kind: "state",
        payload: JSON.stringify({ ts: iso(T0), phase: "idle", sessionId: null, relayClosed: false, evPresent: false, fault: null, meterFault: null, energyWh: null, powerW: null }),
      },
    ]);
    expect(run.send({ type: "tick", atMs: T0 + 500 })).toEqual([]);
    expect(ofTopic(run.sample(T0 + 1_000, 5_000, 12), "state")).toEqual([
      { ts: iso(T0 + 1_000), phase: "idle", sessionId: null, relayClosed: false, evPresent: false, fault: null, meterFault: null, energyWh: null, powerW: 12 },
    ]);
    expect(run.sample(T0 + 2_000, 5_000, 12)).toEqual([]);
    expect(run.send({ type: "chainHead", atMs: T0 + 2_100, blockNumber: 5 })).toEqual([]);
  });

  it("limits energy/power-only state changes to one per meterIntervalMs, but not phase changes", () => {
    const run = new Script(builder(5_000));
    run.send({ type: "startup", atMs: T0 });
    expect(ofTopic(run.sample(T0 + 1_000, 5_000, 10), "state")).toHaveLength(0); // 1 s after the last state
    expect(ofTopic(run.sample(T0 + 5_000, 5_000, 11), "state")).toHaveLength(1);
    expect(ofTopic(run.sample(T0 + 6_000, 5_000, 12), "state")).toHaveLength(0);
    expect(ofTopic(run.send({ type: "meterFault", atMs: T0 + 6_500, kind: "timeout", message: "no reply" }), "state")).toEqual([
      expect.objectContaining({ meterFault: "timeout", powerW: 12 }),
    ]);
  });

  it("reports a meter fault once per outage as a warning, its recovery as info, and an implausible one as a fault (once)", () => {
    const run = new Script(builder());
    run.send({ type: "startup", atMs: T0 });
    const fault1 = run.send({ type: "meterFault", atMs: T0 + 1_000, kind: "timeout", message: "no reply within 500 ms" });
    const fault2 = run.send({ type: "meterFault", atMs: T0 + 2_000, kind: "timeout", message: "no reply within 500 ms" });
    const crc = run.send({ type: "meterFault", atMs: T0 + 3_000, kind: "crc", message: "CRC mismatch" });
    const back = run.sample(T0 + 4_000, 5_000, 0);
    const implausible = run.send({ type: "meterFault", atMs: T0 + 5_000, kind: "implausible", message: "energy went backwards" });
    expect(ofTopic(fault1, "event")).toEqual([{ ts: iso(T0 + 1_000), level: "warning", message: "meter timeout: no reply within 500 ms", sessionId: null }]);
    expect(ofTopic(fault2, "event")).toEqual([]);
    expect(ofTopic(crc, "event")).toEqual([{ ts: iso(T0 + 3_000), level: "warning", message: "meter crc: CRC mismatch", sessionId: null }]);
    expect(ofTopic(back, "event")).toEqual([{ ts: iso(T0 + 4_000), level: "info", message: "meter readings are back after a crc fault", sessionId: null }]);
    // The core's own fault notice; no second event for the same fault.
    expect(ofTopic(implausible, "event")).toEqual([{ ts: iso(T0 + 5_000), level: "fault", message: "meter: energy went backwards", sessionId: null }]);
  });

  it("turns notify commands into events with their level and session, and reports a cleared relay fault", () => {
    const b = builder();
    const state = initialState();
    const out = b.fromStep(state, { type: "tick", atMs: T0 }, [
      { type: "notify", kind: "fault", message: "welded contactor: feedback stayed closed for 500 ms after opening", sessionId: 3n },
      { type: "notify", kind: "warning", message: "low deposit" },
      { type: "notify", kind: "session", message: "session 3: energized", sessionId: 3n },
    ]);
    expect(ofTopic(out, "event")).toEqual([
      { ts: iso(T0), level: "fault", message: "welded contactor: feedback stayed closed for 500 ms after opening", sessionId: "3" },
      { ts: iso(T0), level: "warning", message: "low deposit", sessionId: null },
      { ts: iso(T0), level: "info", message: "session 3: energized", sessionId: "3" },
    ]);
    const faulted: CoreState = { ...state, phase: "faulted", fault: "welded contactor", relayFeedbackClosed: true };
    expect(ofTopic(b.fromStep(faulted, { type: "relayFeedback", atMs: T0 + 1, closed: true }, []), "state")).toEqual([
      expect.objectContaining({ phase: "faulted", fault: "welded contactor", relayClosed: true }),
    ]);
    const cleared = b.fromStep(state, { type: "clearFault", atMs: T0 + 2 }, []);
    expect(ofTopic(cleared, "event")).toEqual([{ ts: iso(T0 + 2), level: "info", message: "fault cleared: welded contactor", sessionId: null }]);
  });

  it("announces a session found at start-up once, and closes a session that the chain cancelled", () => {
    const run = new Script(builder());
    run.send({ type: "startup", atMs: T0 });
    run.send({
      type: "depositSeen",
      atMs: T0 + 1,
      sessionId: 9n,
      ev: EV,
      depositWei: 100_000_000_000_000n,
      priceWeiPerKWh: 1_000_000_000_000_000n,
      maxEnergyWh: 50_000,
      depositBlock: 10,
      depositBlockHash: "0x01",
      depositTxHash: DEPOSIT_TX,
    });
    // A fresh builder sees the running session for the first time, as after a restart.
    const fresh = builder();
    const first = fresh.fromStep(run.state, { type: "tick", atMs: T0 + 2 }, []);
    expect(ofTopic(first, "session")).toEqual([expect.objectContaining({ sessionId: "9", phase: "depositPending", previousPhase: "depositPending" })]);
    const cancelled = run.send({ type: "sessionClosedOnChain", atMs: T0 + 3, sessionId: 9n, how: "cancelled" });
    expect(ofTopic(cancelled, "session")).toEqual([expect.objectContaining({ sessionId: "9", phase: "idle", previousPhase: "depositPending", settleTxHash: null })]);
    expect(ofTopic(cancelled, "event").map((e) => e.level)).toEqual(["info", "info"]);
  });
});

describe("telemetry meter messages", () => {
  const sample = (readAtMs: number, energyWh = 1_234): MeterSample => ({
    readAtMs,
    importEnergyWh: energyWh,
    powerW: 6_900.5,
    frequencyHz: 50.01,
    phases: [
      { voltageV: 230.1, currentA: 10, powerW: 2_300 },
      { voltageV: 229.9, currentA: 10.1, powerW: 2_300.5 },
      { voltageV: 231, currentA: 9.9, powerW: 2_300 },
    ],
  });

  it("carries energy, power, frequency and per-phase V/A/W", () => {
    const [m] = builder().fromSample(sample(T0));
    expect(m).toEqual({
      topic: "trustpile/cp-007/meter",
      retain: false,
      kind: "meter",
      payload: JSON.stringify({
        ts: iso(T0),
        energyWh: 1_234,
        powerW: 6_900.5,
        frequencyHz: 50.01,
        phases: [
          { voltageV: 230.1, currentA: 10, powerW: 2_300 },
          { voltageV: 229.9, currentA: 10.1, powerW: 2_300.5 },
          { voltageV: 231, currentA: 9.9, powerW: 2_300 },
        ],
      }),
    });
    const single = builder().fromSample({ readAtMs: T0, importEnergyWh: 5, powerW: 0, phases: [{ voltageV: 230, currentA: 0, powerW: 0 }] });
    expect(JSON.parse(single[0]!.payload)).toEqual({ ts: iso(T0), energyWh: 5, powerW: 0, phases: [{ voltageV: 230, currentA: 0, powerW: 0 }] });
  });

  it("publishes every sample with meterIntervalMs 0, else at most one per interval", () => {
    const every = builder(0);
    const times = [0, 300, 600, 900, 1_200, 1_500, 1_800, 2_100, 2_400, 2_700, 3_000];
    expect(times.filter((t) => every.fromSample(sample(T0 + t)).length === 1)).toEqual(times);
    const down = builder(1_000);
    expect(times.filter((t) => down.fromSample(sample(T0 + t)).length === 1)).toEqual([0, 1_200, 2_400]);
  });
});

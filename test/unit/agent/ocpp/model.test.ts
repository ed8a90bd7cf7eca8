import { describe, expect, it } from "vitest";
import { coreConfig, sessionTerms } from "../../../helpers/core-fixtures.ts";
import { initialState, step } from "../../../../agent/core/step.ts";
import type { CoreConfig, CoreEvent, CoreState, SessionTerms } from "../../../../agent/core/types.ts";
import type { MeterReading, OcppIntent } from "../../../../agent/ocpp/intents.ts";
import {
  authorizeDue,
  connectorStatusOf,
  initialModelState,
  observeCore,
  observeReading,
  remoteStartTarget,
  stopReasonOf,
  type OcppModelConfig,
  type OcppModelInputs,
  type OcppModelState,
} from "../../../../agent/ocpp/model.ts";

const core: CoreConfig = coreConfig({ hasFeedbackInput: false });

const modelConfig: OcppModelConfig = { connectorId: 1, meterValueSampleIntervalS: 10, clockAlignedDataIntervalS: 0 };


const phases = [
  { voltageV: 230.1, currentA: 10.12, powerW: 2_328 },
  { voltageV: 229.8, currentA: 10.05, powerW: 2_310 },
  { voltageV: 231.0, currentA: 10.2, powerW: 2_356 },
];

type EventInput = CoreEvent extends infer E ? (E extends CoreEvent ? Omit<E, "atMs"> : never) : never;

/** Drives the real core and the model together, as agent/ocpp/observer.ts does. */
class Harness {
  state: CoreState = initialState();
  model: OcppModelState = initialModelState();
  intents: OcppIntent[] = [];
  t = 1_000_000;
  inputs: OcppModelInputs = { chargePointInoperative: false };

  constructor(readonly config: OcppModelConfig = modelConfig) {}

  send(event: EventInput, reading?: MeterReading): OcppIntent[] {
    this.state = step(core, this.state, { ...event, atMs: this.t } as CoreEvent).state;
    if (reading) this.model = { ...this.model, lastReading: reading };
    const observed = observeCore(this.config, this.model, this.state, this.inputs, this.t);
    this.model = observed.state;
    const out = [...observed.intents];
    if (reading) {
      const values = observeReading(this.config, this.model, reading);
      this.model = values.state;
      out.push(...values.intents);
    }
    this.intents.push(...out);
    return out;
  }

  sample(energyWh: number, powerW = 7_000): OcppIntent[] {
    const reading: MeterReading = { atMs: this.t, energyWh, powerW, phases: powerW > 0 ? phases : [] };
    return this.send({ type: "meterSample", energyWh, powerW }, reading);
  }

  after(ms: number): this {
    this.t += ms;
    return this;
  }

  statuses(connectorId = 1): string[] {
    return this.intents.flatMap((intent) => (intent.type === "status" && intent.connectorId === connectorId ? [intent.status] : []));
  }

  kinds(): string[] {
    return this.intents.map((intent) =>
      intent.type === "status" ? `status ${intent.connectorId} ${intent.status}` : intent.type === "meterValues" ? `meterValues ${intent.context}` : intent.type,
    );
  }
}

/** Deposit confirmed and authorize mined, EV plugged in, meter fresh at `startWh`: the relay closes at once. */
function authorized(h: Harness, startWh = 5_000): void {
  h.send({ type: "startup" });
  h.sample(startWh, 0);
  h.send({ type: "evPresence", present: true });
  h.send({ type: "depositSeen", ...sessionTerms(7n) });
  h.send({ type: "chainHead", blockNumber: 11 });
  h.send({ type: "authorizeMined", sessionId: 7n, txHash: "0xa1" });
}

describe("observeCore: one session", () => {
  it("reports Available, Preparing, StartTransaction(meterStart), Charging, StopTransaction(meterStop), Finishing, Available", () => {
    const h = new Harness();
    h.send({ type: "startup" });
    expect(h.kinds()).toEqual(["status 0 Available", "status 1 Available"]);
    h.after(1000).sample(5_000, 0);
    h.send({ type: "evPresence", present: true });
    h.send({ type: "depositSeen", ...sessionTerms(7n) });
    h.send({ type: "chainHead", blockNumber: 11 });
    h.send({ type: "authorizeMined", sessionId: 7n, txHash: "0xa1" });
    // The reading is fresh, the EV present: the relay closes as soon as authorize is mined.
    expect(h.state.phase).toBe("energized");
    h.after(1000).sample(5_002, 7_000);
    h.after(1000).send({ type: "evPresence", present: false });
    h.after(1500).sample(5_004, 0); // the stop reading, taken after the contacts opened
    expect(h.state.phase).toBe("settling");
    h.send({ type: "settleMined", sessionId: 7n, txHash: "0x5e" });
    expect(h.state.phase).toBe("idle");

    expect(h.statuses(1)).toEqual(["Available", "Preparing", "Charging", "Finishing", "Available"]);
    const start = h.intents.find((intent) => intent.type === "transactionStarted");
    expect(start).toMatchObject({ sessionId: 7n, connectorId: 1, idTag: "7", meterStartWh: 5_000, atMs: 1_001_000 });
    const stop = h.intents.find((intent) => intent.type === "transactionStopped");
    expect(stop).toMatchObject({ sessionId: 7n, connectorId: 1, meterStopWh: 5_004, reason: "EVDisconnected", atMs: 1_004_500 });
    // The start precedes the Charging status it explains; the stop precedes Finishing.
    const kinds = h.kinds();
    expect(kinds.indexOf("transactionStarted")).toBe(kinds.indexOf("status 1 Charging") - 1);
    expect(kinds.indexOf("transactionStopped")).toBe(kinds.indexOf("status 1 Finishing") - 1);
  });

  it("reports SuspendedEV while the EV draws nothing, and Finishing until the EV leaves after a budget stop", () => {
    const h = new Harness();
    authorized(h);
    expect(h.state.phase).toBe("energized");
    h.after(1000).sample(5_000, 0); // relay closed, EV draws nothing
    expect(h.state.phase).toBe("suspended");
    h.after(1000).sample(5_100, 7_000);
    h.after(1000).sample(14_980, 7_000); // budget 10,000 − 20 Wh reached
    h.after(1500).sample(14_981, 0);
    expect(h.state.phase).toBe("settling");
    h.send({ type: "settleMined", sessionId: 7n, txHash: "0x5e" });
    expect(h.statuses(1)).toEqual(["Available", "Preparing", "Charging", "SuspendedEV", "Charging", "Finishing"]);
    expect(h.intents.find((intent) => intent.type === "transactionStopped")).toMatchObject({ meterStopWh: 14_981, reason: "Local" });
    h.send({ type: "evPresence", present: false });
    expect(h.statuses(1).at(-1)).toBe("Available");
  });

  it("reports SuspendedEVSE when a resumed session waits for the interlock, and a fault as Faulted PowerSwitchFailure", () => {
    const h = new Harness();
    authorized(h);
    h.after(1000).sample(5_050, 7_000);
    h.send({ type: "startup" }); // restart: relay forced open, the session waits in authorized with its start register
    expect(h.state.phase).toBe("authorized");
    expect(h.statuses(1).at(-1)).toBe("SuspendedEVSE");
    const faulted: CoreState = { ...h.state, fault: "welded contactor: feedback stayed closed for 500 ms after opening" };
    expect(connectorStatusOf(faulted, false)).toEqual({ status: "Faulted", errorCode: "PowerSwitchFailure", info: "welded contactor: feedback stayed closed for 500 m" });
    const meterDown: CoreState = { ...initialState(), meter: { faultKind: "timeout" } };
    expect(connectorStatusOf(meterDown, false)).toEqual({ status: "Faulted", errorCode: "PowerMeterFailure", info: "meter timeout" });
    // One timed-out poll 1 s after a good reading is not a meter failure yet; 3 s without one is.
    const onePollMissed: CoreState = { ...initialState(), nowMs: 11_000, meter: { lastSampleAtMs: 10_000, faultKind: "timeout" } };
    expect(connectorStatusOf(onePollMissed, false, 3_000)).toEqual({ status: "Available", errorCode: "NoError" });
    expect(connectorStatusOf({ ...onePollMissed, nowMs: 13_000 }, false, 3_000)).toMatchObject({ status: "Faulted", errorCode: "PowerMeterFailure" });
  });

  it("names the Reset in the stop reason when the adapter stopped the session for it", () => {
    const h = new Harness();
    authorized(h);
    h.after(1000).sample(5_010, 7_000);
    h.inputs = { chargePointInoperative: false, stopReasonOverride: "SoftReset" };
    h.send({ type: "remoteStop", sessionId: 7n });
    h.after(1500).sample(5_011, 0);
    expect(h.intents.find((intent) => intent.type === "transactionStopped")).toMatchObject({ meterStopWh: 5_011, reason: "SoftReset" });
  });

  it("stops a transaction whose session vanished without settling at the last register, reason Other", () => {
    const h = new Harness();
    authorized(h);
    h.after(1000).sample(5_030, 7_000);
    h.send({ type: "sessionClosedOnChain", sessionId: 7n, how: "cancelled" });
    expect(h.intents.find((intent) => intent.type === "transactionStopped")).toMatchObject({ meterStopWh: 5_030, reason: "Other" });
  });

  it("emits start and stop in one observation when the model first sees a session already settling", () => {
    const h = new Harness();
    authorized(h);
    h.after(1000).sample(5_030, 7_000);
    h.send({ type: "remoteStop", sessionId: 7n });
    h.after(1500).sample(5_031, 0);
    const fresh = observeCore(modelConfig, initialModelState(), h.state, h.inputs, h.t);
    expect(fresh.intents.filter((intent) => intent.type.startsWith("transaction")).map((intent) => intent.type)).toEqual([
      "transactionStarted",
      "transactionStopped",
    ]);
    expect(fresh.intents.find((intent) => intent.type === "transactionStopped")).toMatchObject({ meterStopWh: 5_031, reason: "Remote" });
  });

  it("stops a reorged session's transaction before the deposit that took its id (generation 1) starts its own", () => {
    const h = new Harness();
    authorized(h);
    h.after(1000).sample(5_030, 7_000);
    h.send({ type: "depositReorged", sessionId: 7n });
    // Still stopping (no stop reading yet) when a different deposit gets id 7 from the rewound ledger counter.
    h.send({ type: "depositSeen", ...sessionTerms(7n, { depositBlock: 20, depositBlockHash: "0xcc", depositTxHash: "0xdd" }) });
    expect(h.state.session).toMatchObject({ sessionId: 7n, generation: 1 });
    h.send({ type: "chainHead", blockNumber: 21 });
    h.send({ type: "authorizeMined", sessionId: 7n, txHash: "0xa2", generation: 1 });
    h.after(1000).sample(5_040, 7_000);
    const transactions = h.intents.filter((intent) => intent.type === "transactionStarted" || intent.type === "transactionStopped");
    expect(transactions.map((intent) => [intent.type, intent.type === "transactionStarted" ? intent.meterStartWh : intent.meterStopWh])).toEqual([
      ["transactionStarted", 5_000],
      ["transactionStopped", 5_030],
      ["transactionStarted", 5_030],
    ]);
    expect(h.model.transaction).toMatchObject({ sessionId: "7", generation: 1 });
  });
});

describe("observeReading: meter values", () => {
  it("sends Sample.Periodic every MeterValueSampleInterval during a transaction only", () => {
    const h = new Harness();
    authorized(h);
    expect(h.state.phase).toBe("energized");
    const periodic: number[] = [];
    for (let second = 1; second <= 25; second++) {
      for (const intent of h.after(1000).sample(5_000 + second * 2, 7_000)) {
        if (intent.type === "meterValues") {
          expect(intent.context).toBe("Sample.Periodic");
          expect(intent.sessionId).toBe(7n);
          periodic.push(intent.reading.energyWh);
        }
      }
    }
    // Started at t0; 10 s and 20 s later.
    expect(periodic).toEqual([5_020, 5_040]);
  });

  it("sends Sample.Clock at ClockAlignedDataInterval boundaries, with or without a transaction", () => {
    const config = { ...modelConfig, meterValueSampleIntervalS: 0, clockAlignedDataIntervalS: 900 };
    let model = initialModelState();
    const contexts: Array<[number, string]> = [];
    for (const atMs of [899_000, 899_500, 900_100, 1_799_999, 1_800_000, 1_800_500]) {
      const result = observeReading(config, model, { atMs, energyWh: 100, powerW: 0, phases: [] });
      model = result.state;
      for (const intent of result.intents) contexts.push([atMs, intent.type === "meterValues" ? intent.context : intent.type]);
    }
    expect(contexts).toEqual([
      [900_100, "Sample.Clock"],
      [1_800_000, "Sample.Clock"],
    ]);
  });
});

describe("stop reasons", () => {
  it("maps every core stop reason to an OCPP 1.6 Reason", () => {
    expect(stopReasonOf("evUnplugged")).toBe("EVDisconnected");
    expect(stopReasonOf("remoteStop")).toBe("Remote");
    expect(stopReasonOf("budget")).toBe("Local");
    expect(stopReasonOf("maxEnergy")).toBe("Local");
    expect(stopReasonOf("shutdown")).toBe("Reboot");
    expect(stopReasonOf("meterLost")).toBe("Other");
    expect(stopReasonOf("fault")).toBe("Other");
    expect(stopReasonOf("reorged")).toBe("Other");
  });
});

describe("remoteStartTarget: the deposit rule", () => {
  it("rejects without a confirmed deposit, accepts the waiting one by session id or any idTag", () => {
    const h = new Harness();
    h.send({ type: "startup" });
    expect(remoteStartTarget(h.state, "7", 2)).toBeUndefined();
    h.send({ type: "depositSeen", ...sessionTerms(7n) });
    expect(h.state.phase).toBe("depositPending");
    expect(remoteStartTarget(h.state, "7", 2)).toBeUndefined(); // one confirmation of two
    h.send({ type: "chainHead", blockNumber: 11 });
    expect(h.state.phase).toBe("authorizing");
    expect(remoteStartTarget(h.state, "7", 2)).toBe(7n);
    expect(remoteStartTarget(h.state, "8", 2)).toBeUndefined();
    expect(remoteStartTarget(h.state, "RFID-0042", 2)).toBe(7n);
  });

  it("counts a confirmed queued deposit, not an unconfirmed one, and nothing once energized", () => {
    const h = new Harness();
    authorized(h);
    expect(h.state.phase).toBe("energized");
    expect(remoteStartTarget(h.state, "7", 2)).toBeUndefined();
    h.send({ type: "depositSeen", ...sessionTerms(8n, { depositBlock: 12 }) });
    expect(remoteStartTarget(h.state, "8", 2)).toBeUndefined();
    h.send({ type: "chainHead", blockNumber: 13 });
    expect(remoteStartTarget(h.state, "8", 2)).toBe(8n);
  });

  it("announces the session's idTag for Authorize once, when its deposit is confirmed", () => {
    const h = new Harness();
    h.send({ type: "startup" });
    const before = h.state;
    h.send({ type: "depositSeen", ...sessionTerms(7n) });
    expect(authorizeDue(before, h.state)).toBeUndefined();
    const pending = h.state;
    h.send({ type: "chainHead", blockNumber: 11 });
    expect(authorizeDue(pending, h.state)).toBe(7n);
    const authorizing = h.state;
    h.send({ type: "authorizeMined", sessionId: 7n, txHash: "0xa1" });
    expect(authorizeDue(authorizing, h.state)).toBeUndefined();
  });
});

describe("availability", () => {
  it("holds a new deposit before authorize while inoperative, reports Unavailable, and resumes when operative", () => {
    const h = new Harness();
    h.inputs = { chargePointInoperative: true };
    h.send({ type: "startup" });
    h.send({ type: "availability", operative: false });
    expect(h.statuses(0).at(-1)).toBe("Unavailable");
    expect(h.statuses(1).at(-1)).toBe("Unavailable");
    h.send({ type: "depositSeen", ...sessionTerms(7n) });
    h.send({ type: "chainHead", blockNumber: 20 });
    expect(h.state.phase).toBe("depositPending");
    expect(remoteStartTarget(h.state, "7", 2)).toBeUndefined();
    h.inputs = { chargePointInoperative: false };
    h.send({ type: "availability", operative: true });
    expect(h.state.phase).toBe("authorizing");
  });

  it("lets a running session finish when made inoperative", () => {
    const h = new Harness();
    authorized(h);
    h.send({ type: "availability", operative: false });
    expect(h.state.phase).toBe("energized");
    expect(h.statuses(1).at(-1)).toBe("Charging");
  });
});

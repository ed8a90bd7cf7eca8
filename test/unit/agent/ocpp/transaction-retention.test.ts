/**
 * The OCPP per-transaction settings stay bounded (issue 11 soak: the journal must not grow with the sessions run).
 * Sessions go through the real session core, the real OCPP observer and the real transaction queue, journaled the
 * way the agent does it (event + observation in one transaction, a snapshot every 100 events with the older events
 * pruned, outbox compaction every 1,000 events), against a CSMS stub that can be taken offline. Checked: exact
 * settings counts after thousands of sessions, the keys of a transaction with messages still pending survive, a
 * Stop whose Start row was compacted still reports its Transaction.Begin reading, and replay equals live state.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { MeterSample } from "../../../../drivers/meters/types.ts";
import { initialState, step } from "../../../../agent/core/step.ts";
import type { CoreCommand, CoreEvent, CoreState } from "../../../../agent/core/types.ts";
import type { Journal, RetentionPolicy } from "../../../../agent/journal/journal.ts";
import { silentLogger } from "../../../../agent/logging.ts";
import type { MeterReading } from "../../../../agent/ocpp/intents.ts";
import { createOcppObserver, type OcppObserver } from "../../../../agent/ocpp/observer.ts";
import {
  FINISHED_TRANSACTIONS_KEY,
  createTransactionQueue,
  type DeliveryOutcome,
  type QueuedMessage,
  type TransactionIntent,
  type TransactionQueue,
} from "../../../../agent/ocpp/queue.ts";
import { stopTransactionRequest } from "../../../../agent/ocpp/v16.ts";
import { replayJournal } from "../../../../agent/runtime/agent.ts";
import { coreConfig, sessionTerms } from "../../../helpers/core-fixtures.ts";
import { tempJournals } from "../../../helpers/temp-journals.ts";

const config = coreConfig();

const RETENTION: RetentionPolicy = { keepCompletedForMs: 30 * 24 * 3_600_000, keepCompletedRows: 200, keepTombstones: 1_000 };
const KEEP_FINISHED = 50;
/** Settings not tied to a transaction: the OCPP model's state and the list of finished transactions. */
const FIXED_SETTINGS = 2;
/** transactionId, sessionOfTransaction and depositTx of a transaction whose Start was confirmed (1.6: no 2.0.1 record). */
const SETTINGS_PER_TRANSACTION = 3;

let nowMs: number;
beforeEach(() => {
  nowMs = 1_796_256_000_000;
});
const journals = tempJournals("ocpp-retention-", () => nowMs);
const openAt = (): Journal => journals.open();

/** A CSMS stub: starts get transactionId 5000 + session id; every Stop is recorded with what it carried. */
class Csms {
  online = true;
  readonly stops: QueuedMessage[] = [];
  readonly startReadings = new Map<bigint, MeterReading>();

  readonly deliver = async (message: QueuedMessage): Promise<DeliveryOutcome> => {
    if (!this.online) return { kind: "offline" };
    const intent = message.intent;
    if (intent.type === "transactionStarted") {
      this.startReadings.set(intent.sessionId, intent.reading);
      return { kind: "confirmed", transactionId: String(5_000n + intent.sessionId) };
    }
    if (intent.type === "transactionStopped") this.stops.push(message);
    return { kind: "confirmed" };
  };
}

function observerOn(journal: Journal): { queue: TransactionQueue; observer: OcppObserver } {
  const queue = createTransactionQueue({
    journal,
    log: silentLogger(),
    retry: () => ({ attempts: 3, retryIntervalMs: 0 }),
    keepFinishedTransactions: KEEP_FINISHED,
  });
  const observer = createOcppObserver({
    journal,
    queue,
    log: silentLogger(),
    modelConfig: () => ({ connectorId: 1, meterValueSampleIntervalS: 1, clockAlignedDataIntervalS: 0 }),
    inputs: () => ({ chargePointInoperative: false }),
    onObserved: () => undefined,
  });
  return { queue, observer };
}

/** The agent's write path (agent/runtime/agent.ts) without its I/O, with the OCPP observer and queue attached. */
class Pile {
  state: CoreState = initialState();
  readonly queue: TransactionQueue;
  readonly observer: OcppObserver;
  private controlMs = 0;

  constructor(
    readonly journal: Journal,
    readonly csms: Csms,
  ) {
    ({ queue: this.queue, observer: this.observer } = observerOn(journal));
  }

  send(event: Omit<CoreEvent, "atMs" | "controlMs"> & { type: CoreEvent["type"] }): void {
    this.controlMs += 250;
    nowMs += 250;
    const full = { ...event, atMs: nowMs, controlMs: this.controlMs } as CoreEvent;
    if (full.type === "meterSample") {
      // Three phases, so a Transaction.Begin reading that went missing could not be mistaken for an empty one.
      const phase = { voltageV: 230, currentA: full.powerW / 690, powerW: full.powerW / 3 };
      const sample: MeterSample = { readAtMs: nowMs, importEnergyWh: full.energyWh, powerW: full.powerW, phases: [phase, phase, phase] };
      this.observer.stepObserver.onSample?.(sample);
    }
    const previous = this.state;
    const result = step(config, previous, full);
    const seq = this.journal.transaction(() => {
      const appended = this.journal.append(full as unknown as { type: string });
      this.observer.stepObserver.onJournaled?.(previous, full, result.state);
      return appended;
    });
    if (seq % 100 === 0) {
      this.journal.saveSnapshot(seq, result.state);
      this.journal.pruneEventsBefore(seq);
      if (seq % 1_000 === 0) this.journal.compact(RETENTION);
    }
    this.state = result.state;
    for (const command of result.commands) this.execute(command);
    this.observer.stepObserver.onStep?.(result.state, full, result.commands);
  }

  /** The chain's outbox rows, mined at once: they keep completing while the CSMS is away, as on a real pile. */
  execute(command: CoreCommand): void {
    if (command.type !== "sendAuthorize" && command.type !== "sendSettle") return;
    const sessionId = command.type === "sendAuthorize" ? command.sessionId : command.total.sessionId;
    const key = `${command.type === "sendAuthorize" ? "authorize" : "settle"}:${sessionId}`;
    this.journal.enqueue({ key, kind: key.split(":")[0] as string, payload: { sessionId } });
    this.journal.markDone(key, { outcome: "mined" });
  }

  start(): void {
    this.send({ type: "startup" } as never);
    this.send({ type: "evPresence", present: true } as never);
    this.send({ type: "meterSample", energyWh: 100_000, powerW: 0 } as never);
  }

  /** Deposit to energized: the transaction starts. */
  energize(sessionId: bigint): void {
    this.send({ type: "depositSeen", ...sessionTerms(sessionId, { depositTxHash: `0xdeposit${sessionId}` }) } as never);
    this.send({ type: "chainHead", blockNumber: 11 } as never);
    this.send({ type: "authorizeMined", sessionId, txHash: "0xauth" } as never);
    this.send({ type: "relayFeedback", closed: true } as never);
  }

  /** Charging (with periodic MeterValues) to settled: the transaction stops. */
  finish(sessionId: bigint): void {
    for (let i = 0; i < 8; i++) this.send({ type: "meterSample", energyWh: (this.state.meter.lastEnergyWh ?? 0) + 3, powerW: 6_900 } as never);
    this.send({ type: "remoteStop" } as never);
    this.send({ type: "relayFeedback", closed: false } as never);
    for (let i = 0; i < 5; i++) this.send({ type: "meterSample", energyWh: this.state.meter.lastEnergyWh ?? 0, powerW: 0 } as never);
    this.send({ type: "settleMined", sessionId, txHash: "0xsettle" } as never);
  }

  async session(sessionId: bigint): Promise<void> {
    this.energize(sessionId);
    await this.drain();
    this.finish(sessionId);
    await this.drain();
  }

  drain(): Promise<void> {
    return this.queue.drain(this.csms.deliver);
  }
}

function settingsOf(journal: Journal, sessionId: bigint): unknown[] {
  const transactionId = String(5_000n + sessionId);
  return [
    journal.getValue(`ocpp.transactionId.${sessionId}`),
    journal.getValue(`ocpp.sessionOfTransaction.${transactionId}`),
    journal.getValue(`ocpp.depositTx.${sessionId}`),
  ];
}

function keptSettingsOf(sessionId: bigint): unknown[] {
  return [String(5_000n + sessionId), sessionId.toString(), `0xdeposit${sessionId}`];
}

describe("OCPP per-transaction settings retention", () => {
  it("keeps the settings of the newest finished transactions only: the same exact row count after 1,000, 2,000 and 3,000 sessions", async () => {
    const csms = new Csms();
    const journal = openAt();
    const pile = new Pile(journal, csms);
    pile.start();
    const settingsAt: number[] = [];
    for (const upTo of [1_000, 2_000, 3_000]) {
      for (let id = upTo - 999; id <= upTo; id++) await pile.session(BigInt(id));
      journal.compact(RETENTION);
      settingsAt.push(journal.stats().rows.settings);
    }
    expect(pile.state.phase).toBe("idle");
    expect(csms.stops).toHaveLength(3_000);
    expect(pile.queue.pending()).toEqual([]);
    // 3,000 sessions wrote 9,000 per-transaction settings; what is left does not depend on how many ran.
    expect(settingsAt).toEqual([1, 2, 3].map(() => FIXED_SETTINGS + KEEP_FINISHED * SETTINGS_PER_TRANSACTION));
    expect(journal.getValue(FINISHED_TRANSACTIONS_KEY)).toEqual(Array.from({ length: KEEP_FINISHED }, (_, i) => String(2_951 + i)));
    // The newest 50 answer DataTransfer sessionInfo and RemoteStop lookups; the 51st newest is forgotten entirely.
    expect(settingsOf(journal, 2_951n)).toEqual(keptSettingsOf(2_951n));
    expect(settingsOf(journal, 3_000n)).toEqual(keptSettingsOf(3_000n));
    expect(pile.queue.sessionIdOfTransaction("8000")).toBe(3_000n);
    expect(settingsOf(journal, 2_950n)).toEqual([undefined, undefined, undefined]);
    expect(pile.queue.transactionIdOf(2_950n)).toBeUndefined();
    expect(journal.stats().rows.outbox).toBe(RETENTION.keepCompletedRows);

    // Replay (snapshot + events) rebuilds the live core state, and a restarted observer resumes the live model.
    expect(replayJournal(journal, config).state).toEqual(pile.state);
    const liveModel = pile.observer.model();
    journal.close();
    const reopened = openAt();
    expect(replayJournal(reopened, config).state).toEqual(pile.state);
    expect(observerOn(reopened).observer.model()).toEqual(liveModel);
  }, 180_000);

  it("keeps the keys of a transaction whose Stop is pending, and sends that Stop with its Begin reading after its Start row was compacted", async () => {
    const csms = new Csms();
    const journal = openAt();
    const pile = new Pile(journal, csms);
    pile.start();
    for (let id = 1n; id <= 60n; id++) await pile.session(id);
    expect(journal.stats().rows.settings).toBe(FIXED_SETTINGS + KEEP_FINISHED * SETTINGS_PER_TRANSACTION);

    // Session 61's Start reaches the CSMS, then the CSMS goes away for 100 sessions while compaction keeps running.
    pile.energize(61n);
    await pile.drain();
    const beginReading = csms.startReadings.get(61n);
    expect(beginReading).toMatchObject({ energyWh: pile.state.session?.meterStartWh, powerW: 0 });
    csms.online = false;
    pile.finish(61n);
    for (let id = 62n; id <= 161n; id++) {
      pile.energize(id);
      pile.finish(id);
    }
    // The chain's rows of those 100 sessions completed meanwhile: the Start's row is among the oldest now.
    journal.compact(RETENTION);
    expect(journal.get("ocpp:start:61")).toMatchObject({ status: "done", compacted: true, payload: undefined });
    const pendingStop = pile.queue.pending().find((message) => message.key === "ocpp:stop:61");
    expect(pendingStop).toMatchObject({ transactionId: "5061", beginReading });
    // Nothing finished while offline: 61's keys (its Stop pending) stay, next to the 50 finished transactions' and the
    // deposit hashes of the 100 transactions whose Start is still pending.
    expect(settingsOf(journal, 61n)).toEqual(keptSettingsOf(61n));
    expect(journal.stats().rows.settings).toBe(FIXED_SETTINGS + KEEP_FINISHED * SETTINGS_PER_TRANSACTION + SETTINGS_PER_TRANSACTION + 100);

    csms.online = true;
    await pile.drain();
    expect(pile.queue.pending()).toEqual([]);
    const sent = csms.stops.find((message) => message.intent.sessionId === 61n);
    expect(sent).toMatchObject({ transactionId: "5061", beginReading });
    if (sent?.intent.type !== "transactionStopped") throw new Error("expected session 61's Stop to have been sent");
    // What the 1.6 adapter sends for it: the Begin value is the register the Start reported, not a gap.
    expect(stopTransactionRequest(sent.intent, sent.transactionId, sent.beginReading, ["Energy.Active.Import.Register"])).toEqual({
      transactionId: 5061,
      idTag: "61",
      meterStop: sent.intent.meterStopWh,
      timestamp: new Date(sent.intent.atMs).toISOString(),
      reason: "Remote",
      transactionData: [
        { timestamp: new Date(beginReading!.atMs).toISOString(), sampledValue: [{ value: String(beginReading!.energyWh), context: "Transaction.Begin", measurand: "Energy.Active.Import.Register", unit: "Wh" }] },
        { timestamp: new Date(sent.intent.reading.atMs).toISOString(), sampledValue: [{ value: String(sent.intent.meterStopWh), context: "Transaction.End", measurand: "Energy.Active.Import.Register", unit: "Wh" }] },
      ],
    });
    // All final now: back to the newest 50.
    expect(journal.stats().rows.settings).toBe(FIXED_SETTINGS + KEEP_FINISHED * SETTINGS_PER_TRANSACTION);
    expect(settingsOf(journal, 61n)).toEqual([undefined, undefined, undefined]);
    expect(settingsOf(journal, 112n)).toEqual(keptSettingsOf(112n));
    expect(replayJournal(journal, config).state).toEqual(pile.state);
  }, 120_000);
});

describe("OCPP transaction retirement in the queue", () => {
  const reading = (atMs: number, energyWh: number): MeterReading => ({ atMs, energyWh, powerW: 7_000, phases: [] });
  const start = (sessionId: bigint): TransactionIntent => ({ type: "transactionStarted", sessionId, connectorId: 1, idTag: sessionId.toString(), meterStartWh: 1_000, atMs: 1_000, reading: reading(1_000, 1_000) });
  const stop = (sessionId: bigint): TransactionIntent => ({ type: "transactionStopped", sessionId, connectorId: 1, meterStopWh: 2_000, atMs: 9_000, reason: "Local", reading: reading(9_000, 2_000) });

  it("retires a transaction whose Stop was dropped, and leaves a reused transactionId's reverse entry to its new session", async () => {
    const journal = openAt();
    const queue = createTransactionQueue({ journal, log: silentLogger(), retry: () => ({ attempts: 2, retryIntervalMs: 0 }), keepFinishedTransactions: 1 });
    // A CSMS that restarted its counter: both transactions are "7"; it refuses every Stop of session 1.
    const deliver = async (message: QueuedMessage): Promise<DeliveryOutcome> => {
      if (message.intent.type === "transactionStarted") return { kind: "confirmed", transactionId: "7" };
      if (message.intent.sessionId === 1n) return { kind: "failed", error: "CallError InternalError" };
      return { kind: "confirmed" };
    };
    queue.enqueue(start(1n));
    queue.enqueue(stop(1n));
    await queue.drain(deliver);
    expect(journal.get("ocpp:stop:1")).toMatchObject({ status: "failed", failure: "2 attempts failed, the last: CallError InternalError" });
    expect(journal.getValue(FINISHED_TRANSACTIONS_KEY)).toEqual(["1"]);
    expect(queue.sessionIdOfTransaction("7")).toBe(1n);

    queue.enqueue(start(2n));
    queue.enqueue(stop(2n));
    await queue.drain(deliver);
    expect(journal.getValue(FINISHED_TRANSACTIONS_KEY)).toEqual(["2"]);
    expect(queue.transactionIdOf(1n)).toBeUndefined();
    expect(queue.transactionIdOf(2n)).toBe("7");
    expect(queue.sessionIdOfTransaction("7")).toBe(2n);
    expect(journal.stats().rows.settings).toBe(3);
  });

  it("gives a Stop its Begin reading even when the Start's row was compacted before the Stop was queued (a long session)", async () => {
    const journal = openAt();
    const queue = createTransactionQueue({ journal, log: silentLogger(), retry: () => ({ attempts: 3, retryIntervalMs: 0 }) });
    const confirm = async (message: QueuedMessage): Promise<DeliveryOutcome> =>
      message.intent.type === "transactionStarted" ? { kind: "confirmed", transactionId: "41" } : { kind: "confirmed" };
    const begin = { atMs: 1_000, energyWh: 1_000, powerW: 11_000, phases: [{ voltageV: 231, currentA: 16, powerW: 3_700 }] };
    queue.enqueue({ ...start(4n), reading: begin });
    await queue.drain(confirm);
    // Hours of confirmed MeterValues: the Start's row is among the oldest completed rows and compacted.
    for (let i = 1; i <= 30; i++) queue.enqueue({ type: "meterValues", sessionId: 4n, connectorId: 1, context: "Sample.Periodic", reading: reading(1_000 + i * 60_000, 1_000 + i) });
    await queue.drain(confirm);
    journal.compact({ keepCompletedRows: 10 });
    expect(journal.get("ocpp:start:4")).toMatchObject({ compacted: true, payload: undefined });
    expect(journal.getValue("ocpp.beginReading.4")).toEqual(begin);

    queue.enqueue(stop(4n));
    // Taken over by the Stop: the setting lives only while the transaction runs.
    expect(journal.getValue("ocpp.beginReading.4")).toBeUndefined();
    expect(queue.pending()).toEqual([{ key: "ocpp:stop:4", intent: stop(4n), transactionId: "41", attempts: 0, beginReading: begin }]);
    // A replayed step re-enqueues the same Stop: nothing changes.
    queue.enqueue(stop(4n));
    expect(queue.pending()).toHaveLength(1);
  });

  it("refuses a retention that is not a count, naming it", () => {
    const journal = openAt();
    expect(() => createTransactionQueue({ journal, log: silentLogger(), retry: () => ({ attempts: 1, retryIntervalMs: 0 }), keepFinishedTransactions: 1.5 })).toThrow(
      "keepFinishedTransactions must be an integer >= 0, got 1.5",
    );
  });
});

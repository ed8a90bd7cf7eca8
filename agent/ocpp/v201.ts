/**
 * The OCPP 2.0.1 charge point (`ocpp.version: "2.0.1"`): the same contract as the 1.6 adapter (agent/ocpp/v16.ts),
 * spoken in 2.0.1. The model (model.ts, through observer.ts) decides what to say; ./v201-messages.ts spells it;
 * this file sends it and answers the CSMS. The CSMS is told about sessions and never replaces the deposit
 * (DESIGN §3): RequestStartTransaction is accepted only for a confirmed deposit that waits, and every stop goes
 * through the session core.
 *
 * 2.0.1 specifics, and why:
 * - `transactionId` is the on-chain session id: 2.0.1 lets the station pick it, so the CSMS's records and the
 *   chain's share one key, and a RequestStopTransaction names the session directly.
 * - `seqNo` counts per transaction and is fixed per message the first time it is sent, in the journal: a retried
 *   or restarted delivery repeats its number, and a message dropped after MessageAttempts leaves the gap 2.0.1
 *   uses to show a loss.
 * - The charging state (Charging, SuspendedEV, SuspendedEVSE) rides on TransactionEvent, not on the connector
 *   status (Preparing … Finishing are all `Occupied`): a change goes out as `Updated/ChargingStateChanged`.
 * - Errors go to the device model (NotifyEvent on a component's `Problem`): StatusNotification has no error code.
 * - Nothing but BootNotification is sent before the CSMS accepted the boot (2.0.1 B02/B03); a reconnect does not
 *   boot again (B01: once per start), it re-sends the status and drains the queue.
 * - One send chain, and live messages (status, Authorize, charging state) kept in order with the queued
 *   transaction messages around them: online, the CSMS hears a session exactly in the order it happened.
 */
import type { CoreState, Phase } from "../core/types.ts";
import { describeError } from "../errors.ts";
import { OfflineError } from "./connection.ts";
import type { OcppIntent } from "./intents.ts";
import { remoteStartTarget, type OcppModelInputs, type StatusReport } from "./model.ts";
import { modelConfigOf, openOcppLink } from "./link.ts";
import { createOcppObserver, type ObservedStep } from "./observer.ts";
import type { DeliveryOutcome, QueuedMessage } from "./queue.ts";
import { TRANSACTION_RECORD_201_PREFIX } from "./transaction-keys.ts";
import { openV16Configuration, type Measurand } from "./v16-configuration.ts";
import type { ResetKind, RunningOcpp, StartOcppOptions } from "./index.ts";
import {
  bootNotification201,
  chargingStateChanged201,
  chargingStateOf,
  meterValue201,
  meterValues201,
  problemComponentOf,
  problemNotification201,
  sessionIdOf,
  sessionIdToken,
  statusNotification201,
  transactionEnded201,
  transactionMeterValues201,
  transactionStarted201,
  type BootReason201,
  type ChargingState201,
  type ConnectorStatus201,
  type IdToken201,
  type TransactionEventRequest201,
} from "./v201-messages.ts";
import { getVariable, setVariable, type GetVariableData201, type OcppSettingsStore, type SetVariableData201 } from "./v201-variables.ts";

/** Phases in which a session holds the connector and a CSMS stop or reset has something to stop. */
const STOPPABLE: readonly Phase[] = ["authorized", "energized", "suspended"];
const EVENT_ID_KEY = "ocpp201.nextEventId";

/**
 * Per-transaction bookkeeping in the journal, deleted once the transaction's Ended was confirmed (and, whatever
 * became of the Ended, with the transaction's other settings when the queue retires it).
 */
interface TransactionRecord {
  nextSeqNo: number;
  seqNoByKey: Record<string, number>;
  remoteStart?: { remoteStartId: number; idToken: IdToken201 };
  /** This station stopped the transaction to carry out a CSMS Reset (reported as ImmediateReset). */
  resetRequested?: boolean;
  /** The charging state the CSMS last heard for it. */
  chargingState?: ChargingState201;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A session that delivered energy, or is about to settle some: a reset waits until it settled. */
export function sessionNeedsSettling(state: CoreState): boolean {
  const session = state.session;
  if (!session) return false;
  return state.phase === "energized" || state.phase === "suspended" || state.phase === "stopping" || state.phase === "settling" || session.meterStartWh !== undefined;
}

/** 2.0.1 Reset types in the host's terms: OnIdle waits for the session to end (1.6 Soft), Immediate stops it (Hard). */
export function resetKindOf(type: "Immediate" | "OnIdle"): ResetKind {
  return type === "Immediate" ? "Hard" : "Soft";
}

export function startV201(options: StartOcppOptions): RunningOcpp {
  const { config, journal, agent, chargePointId } = options;
  const log = options.log.child({ component: "ocpp", ocppVersion: "2.0.1" });
  const clock = options.clock ?? Date.now;
  const connectorId = config.connectorId;
  // The 1.6 configuration keys are the settings; 2.0.1 reaches them under its own names (./v201-variables.ts).
  const configuration = openV16Configuration(journal);
  const settings: OcppSettingsStore = { get: (key) => configuration.get(key), change: (key, value) => configuration.change(key, value) };
  const inputs: OcppModelInputs = { chargePointInoperative: false };

  const { queue, connection } = openOcppLink(options, "2.0.1", configuration, log);

  let stopped = false;
  let accepted = false;
  let connectedSinceMs = Number.POSITIVE_INFINITY;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let bootTimer: NodeJS.Timeout | undefined;
  let sendChain: Promise<void> = Promise.resolve();
  /** The latest Reset request; a waiting OnIdle reset yields to a later Immediate one, so the host resets once. */
  let resetGeneration = 0;
  let resetPending: "Immediate" | "OnIdle" | undefined;
  let reportedProblem: string | undefined;
  /** What the CSMS last heard per EVSE on this connection. */
  const lastSentStatus = new Map<number, ConnectorStatus201>();

  const ready = (): boolean => accepted && !stopped && connection.isOnline();

  function later(task: () => Promise<unknown>): Promise<void> {
    sendChain = sendChain
      .then(task)
      .then(() => undefined)
      .catch((error: unknown) => log.error({ err: error }, "ocpp send failed"));
    return sendChain;
  }

  /** A call whose failure is only logged: statuses, heartbeats and Authorize are re-derived, not retried. */
  async function callLogged(method: string, params: object): Promise<Record<string, unknown> | undefined> {
    try {
      return await connection.call(method, params as Record<string, unknown>);
    } catch (error) {
      if (!(error instanceof OfflineError)) log.warn({ method, error: describeError(error) }, "ocpp call failed");
      return undefined;
    }
  }

  // ---- journal bookkeeping ----

  function readRecord(sessionId: bigint): TransactionRecord {
    const stored = journal.getValue(TRANSACTION_RECORD_201_PREFIX + sessionId.toString());
    if (isRecord(stored) && typeof stored.nextSeqNo === "number" && isRecord(stored.seqNoByKey)) return stored as unknown as TransactionRecord;
    return { nextSeqNo: 0, seqNoByKey: {} };
  }

  function writeRecord(sessionId: bigint, record: TransactionRecord | undefined): void {
    journal.setValue(TRANSACTION_RECORD_201_PREFIX + sessionId.toString(), record);
  }

  function updateRecord(sessionId: bigint, change: Partial<TransactionRecord>): void {
    writeRecord(sessionId, { ...readRecord(sessionId), ...change });
  }

  function seqNoFor(sessionId: bigint, messageKey: string): { seqNo: number; record: TransactionRecord } {
    const record = readRecord(sessionId);
    const known = record.seqNoByKey[messageKey];
    if (known !== undefined) return { seqNo: known, record };
    const seqNo = record.nextSeqNo;
    const next = { ...record, nextSeqNo: seqNo + 1, seqNoByKey: { ...record.seqNoByKey, [messageKey]: seqNo } };
    writeRecord(sessionId, next);
    return { seqNo, record: next };
  }

  function nextEventId(): number {
    const stored = journal.getValue(EVENT_ID_KEY);
    const eventId = typeof stored === "number" ? stored : 1;
    journal.setValue(EVENT_ID_KEY, eventId + 1);
    return eventId;
  }

  function measurandsOf(key: "MeterValuesSampledData" | "MeterValuesAlignedData" | "StopTxnSampledData"): readonly Measurand[] {
    return configuration.measurands(key);
  }

  // ---- sending what the model observed ----

  function statusIntent(connector: number, report: StatusReport, atMs: number): Extract<OcppIntent, { type: "status" }> {
    return { type: "status", connectorId: connector, ...report, atMs };
  }

  /**
   * Live messages (statuses, Authorize, charging-state changes, idle meter values) wait in order behind the
   * transaction messages queued before them, and go out before those queued after them: the queue's drain sends
   * whatever is pending, so without this a fast session would reach the CSMS as Started before its Authorize, or
   * Ended before the Faulted status that caused it. Dropped when the connection goes: a reconnect re-sends the
   * current status instead of a stale history.
   */
  let liveSeq = 0;
  const pendingLive: { seq: number; task: () => Promise<unknown> }[] = [];
  /** Transaction intent → how many live messages were created before it. */
  const liveBefore = new Map<string, number>();

  function live(task: () => Promise<unknown>): void {
    if (!ready()) return; // nobody listens; the next (re)registration sends the current status
    liveSeq += 1;
    pendingLive.push({ seq: liveSeq, task });
    void later(() => runLive());
  }

  function intentKey(intent: QueuedMessage["intent"]): string {
    const at = intent.type === "meterValues" ? `${intent.reading.atMs}:${intent.context}` : String(intent.atMs);
    return `${intent.type}:${intent.sessionId.toString()}:${at}`;
  }

  /** Runs live messages up to `upTo`, never past one created after a transaction message still waiting. */
  async function runLive(upTo = Number.POSITIVE_INFINITY): Promise<void> {
    let limit = upTo;
    for (const message of queue.pending()) limit = Math.min(limit, liveBefore.get(intentKey(message.intent)) ?? limit);
    while (pendingLive.length > 0 && (pendingLive[0]?.seq ?? Number.POSITIVE_INFINITY) <= limit) {
      const next = pendingLive.shift();
      if (next && ready()) await next.task();
    }
  }

  /** `transactionId`: the transaction running when the status arose (a problem report names it). */
  async function sendStatusNow(intent: Extract<OcppIntent, { type: "status" }>, transactionId?: string): Promise<void> {
    if (!ready()) return;
    const request = statusNotification201(intent);
    // Preparing, Charging, Finishing … are all Occupied in 2.0.1: the CSMS hears a change, not a repeat.
    if (request && lastSentStatus.get(request.evseId) !== request.connectorStatus) {
      const reply = await callLogged("StatusNotification", request);
      if (reply !== undefined) lastSentStatus.set(request.evseId, request.connectorStatus);
      log.info({ evseId: request.evseId, connectorStatus: request.connectorStatus, status: intent.status }, "ocpp status");
    }
    await syncProblem(intent, transactionId);
  }

  function sendCurrentStatus(): Promise<void> {
    const model = observer.model();
    const atMs = clock();
    return later(async () => {
      // Connector 0 (the whole pile) has no 2.0.1 status, but its fault is a Problem to report.
      const transactionId = model.transaction?.sessionId;
      if (model.chargePoint?.status === "Faulted") await sendStatusNow(statusIntent(0, model.chargePoint, atMs), transactionId);
      if (model.connector) await sendStatusNow(statusIntent(connectorId, model.connector, atMs), transactionId);
    });
  }

  /** Raises, moves or clears the device-model Problem a status implies (runs inside the send chain). */
  async function syncProblem(intent: Extract<OcppIntent, { type: "status" }>, transactionId: string | undefined): Promise<void> {
    if (intent.connectorId !== connectorId && intent.status !== "Faulted") return;
    const wanted = intent.status === "Faulted" ? (problemComponentOf(intent.errorCode) ?? "ChargingStation") : undefined;
    if (wanted === reportedProblem) return;
    const base = { seqNo: 0, atMs: intent.atMs, connectorId, ...(transactionId === undefined ? {} : { transactionId }) };
    if (reportedProblem !== undefined) {
      await callLogged("NotifyEvent", problemNotification201({ ...base, eventId: nextEventId(), errorCode: "NoError", component: reportedProblem, cleared: true }));
    }
    if (wanted !== undefined) {
      const info = intent.info === undefined ? {} : { info: intent.info };
      await callLogged("NotifyEvent", problemNotification201({ ...base, eventId: nextEventId(), errorCode: intent.errorCode, component: wanted, cleared: false, ...info }));
    }
    log.info({ raised: wanted, cleared: reportedProblem }, "ocpp problem report");
    reportedProblem = wanted;
  }

  /** The charging state the CSMS will have heard once everything already handed over is out. */
  const announcedChargingState = new Map<string, ChargingState201>();

  function noteChargingState(intent: Extract<OcppIntent, { type: "status" }>): void {
    const transaction = observer.model().transaction;
    const chargingState = chargingStateOf(intent.status);
    // Only changes while the transaction runs: its start says Charging and its Ended says EVConnected or Idle.
    if (!transaction || (chargingState !== "Charging" && chargingState !== "SuspendedEV" && chargingState !== "SuspendedEVSE")) return;
    const sessionId = BigInt(transaction.sessionId);
    const last = announcedChargingState.get(transaction.sessionId) ?? readRecord(sessionId).chargingState ?? "Charging";
    if (chargingState === last) return;
    announcedChargingState.set(transaction.sessionId, chargingState);
    live(async () => {
      if (queue.transactionIdOf(sessionId) === undefined) return; // its Started never reached the CSMS
      const { seqNo } = seqNoFor(sessionId, `chargingState:${intent.atMs}:${chargingState}`);
      const reply = await callLogged("TransactionEvent", chargingStateChanged201(sessionId, chargingState, intent.atMs, { seqNo }));
      if (reply !== undefined) updateRecord(sessionId, { chargingState });
    });
  }

  function drainQueue(): Promise<void> {
    return later(async () => {
      await queue.drain(deliver);
      await runLive();
    });
  }

  function onObserved(step: ObservedStep): void {
    if (step.authorizeSessionId !== undefined) {
      const idToken = sessionIdToken(step.authorizeSessionId);
      live(async () => {
        const reply = await callLogged("Authorize", { idToken });
        const status = isRecord(reply?.idTokenInfo) ? reply.idTokenInfo.status : undefined;
        // Informational only: the confirmed deposit authorizes the session, whatever the CSMS's token list says.
        if (status !== undefined && status !== "Accepted") log.warn({ sessionId: idToken.idToken, status }, "the CSMS did not accept the session's idToken; the deposit authorizes it");
      });
    }
    const transactionId = observer.model().transaction?.sessionId;
    for (const intent of step.intents) {
      if (intent.type === "transactionStopped") delete inputs.stopReasonOverride;
      switch (intent.type) {
        case "status":
          live(() => sendStatusNow(intent, transactionId));
          if (intent.connectorId === connectorId) noteChargingState(intent);
          break;
        case "meterValues":
          if (intent.sessionId !== undefined) {
            liveBefore.set(intentKey({ ...intent, sessionId: intent.sessionId }), liveSeq);
            break;
          }
          live(async () => {
            const request = meterValues201(intent, measurandsOf(intent.context === "Sample.Clock" ? "MeterValuesAlignedData" : "MeterValuesSampledData"));
            if (request) await callLogged("MeterValues", request);
          });
          break;
        case "transactionStarted":
        case "transactionStopped":
          liveBefore.set(intentKey(intent), liveSeq);
          if (intent.type === "transactionStopped") announcedChargingState.delete(intent.sessionId.toString());
          break;
      }
    }
    void drainQueue();
  }

  // ---- the queue's delivery ----

  function transactionEventOf(message: QueuedMessage): TransactionEventRequest201 | undefined {
    const intent = message.intent;
    const { seqNo, record } = seqNoFor(intent.sessionId, message.key);
    // An event from before the current connection opened happened while the CSMS could not hear it.
    const atMs = intent.type === "meterValues" ? intent.reading.atMs : intent.atMs;
    const context = { seqNo, ...(atMs < connectedSinceMs ? { offline: true } : {}) };
    switch (intent.type) {
      case "transactionStarted":
        return transactionStarted201(intent, { ...context, ...(record.remoteStart ? { remoteStart: record.remoteStart } : {}) });
      case "meterValues":
        return transactionMeterValues201(intent, {
          ...context,
          measurands: measurandsOf(intent.context === "Sample.Clock" ? "MeterValuesAlignedData" : "MeterValuesSampledData"),
        });
      case "transactionStopped":
        return transactionEnded201(intent, { ...context, measurands: measurandsOf("StopTxnSampledData"), ...(record.resetRequested ? { resetRequested: true } : {}) });
    }
  }

  async function deliver(message: QueuedMessage): Promise<DeliveryOutcome> {
    if (!ready()) return { kind: "offline" };
    const intent = message.intent;
    const key = intentKey(intent);
    await runLive(liveBefore.get(key) ?? 0);
    if (!ready()) return { kind: "offline" };
    const request = transactionEventOf(message);
    if (!request) return { kind: "confirmed" }; // no measurands configured: nothing to say
    const fields = { sessionId: intent.sessionId.toString(), eventType: request.eventType, seqNo: request.seqNo };
    let reply: Record<string, unknown>;
    try {
      reply = await connection.call("TransactionEvent", request as unknown as Record<string, unknown>);
    } catch (error) {
      if (error instanceof OfflineError || !connection.isOnline()) return { kind: "offline" };
      return { kind: "failed", error: describeError(error) };
    }
    const tokenStatus = isRecord(reply.idTokenInfo) ? reply.idTokenInfo.status : undefined;
    if (tokenStatus !== undefined && tokenStatus !== "Accepted") {
      // The deposit on chain authorizes the session; the CSMS's view of the token does not stop paid-for energy.
      log.warn({ ...fields, tokenStatus }, "the CSMS did not accept the transaction's idToken; charging continues on the deposit");
    }
    switch (intent.type) {
      case "transactionStarted":
        liveBefore.delete(key);
        log.info({ ...fields, meterStartWh: intent.meterStartWh }, "ocpp TransactionEvent Started");
        return { kind: "confirmed", transactionId: request.transactionInfo.transactionId };
      case "transactionStopped":
        liveBefore.delete(key);
        log.info({ ...fields, meterStopWh: intent.meterStopWh, stoppedReason: request.transactionInfo.stoppedReason }, "ocpp TransactionEvent Ended");
        writeRecord(intent.sessionId, undefined);
        return { kind: "confirmed" };
      case "meterValues":
        liveBefore.delete(key);
        return { kind: "confirmed" };
    }
  }

  // ---- boot and heartbeat ----

  function startHeartbeat(intervalS: number): void {
    if (heartbeatTimer) clearInterval(heartbeatTimer);
    heartbeatTimer = undefined;
    if (intervalS <= 0 || stopped) return;
    heartbeatTimer = setInterval(() => void later(async () => (ready() ? callLogged("Heartbeat", {}) : undefined)), intervalS * 1000);
    heartbeatTimer.unref?.();
  }

  async function boot(reason: BootReason201): Promise<void> {
    if (stopped || !connection.isOnline()) return;
    let reply: Record<string, unknown>;
    try {
      reply = await connection.call(
        "BootNotification",
        bootNotification201({ model: config.model, vendorName: config.vendor, ...(options.firmwareVersion === undefined ? {} : { firmwareVersion: options.firmwareVersion }) }, reason) as unknown as Record<string, unknown>,
      );
    } catch (error) {
      if (!connection.isOnline()) return;
      log.warn({ error: describeError(error) }, "BootNotification failed; retrying in 30 s");
      scheduleBoot(30, reason);
      return;
    }
    const status = reply.status as "Accepted" | "Pending" | "Rejected";
    const intervalS = typeof reply.interval === "number" ? reply.interval : 0;
    log.info({ status, intervalS, reason }, "ocpp BootNotification");
    if (status === "Accepted") {
      accepted = true;
      // An accepted boot's interval is the heartbeat interval the CSMS wants (2.0.1 B01.FR.04).
      if (intervalS > 0) configuration.change("HeartbeatInterval", String(intervalS));
      startHeartbeat(configuration.getInteger("HeartbeatInterval"));
      // Queued behind this boot on the send chain (awaiting them here, inside the chain, would wait for ourselves).
      void sendCurrentStatus();
      void drainQueue();
      return;
    }
    accepted = false;
    scheduleBoot(intervalS > 0 ? intervalS : 30, reason);
  }

  function scheduleBoot(afterS: number, reason: BootReason201): void {
    if (bootTimer) clearTimeout(bootTimer);
    bootTimer = setTimeout(() => {
      bootTimer = undefined;
      void later(() => boot(reason));
    }, afterS * 1000);
    bootTimer.unref?.();
  }

  let bootedOnce = false;
  connection.onOpen(() => {
    connectedSinceMs = clock();
    lastSentStatus.clear();
    if (bootedOnce && accepted) {
      startHeartbeat(configuration.getInteger("HeartbeatInterval"));
      void sendCurrentStatus();
      void drainQueue();
      return;
    }
    bootedOnce = true;
    void later(() => boot("PowerUp"));
  });
  connection.onClose(() => {
    connectedSinceMs = Number.POSITIVE_INFINITY;
    pendingLive.length = 0;
    if (heartbeatTimer) clearInterval(heartbeatTimer);
    heartbeatTimer = undefined;
    if (bootTimer) clearTimeout(bootTimer);
    bootTimer = undefined;
  });

  // ---- the agent ----

  const observer = createOcppObserver({
    journal,
    queue,
    log,
    modelConfig: () => modelConfigOf(options, configuration, connectorId),
    inputs: () => inputs,
    onObserved,
  });
  const unobserve = agent.observe(observer.stepObserver);
  observer.reconcile(agent.state(), clock());

  async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = clock() + timeoutMs;
    while (!condition()) {
      if (stopped || clock() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return true;
  }

  async function reset(type: "Immediate" | "OnIdle", generation: number): Promise<void> {
    const state = agent.state();
    const sessionId = state.session?.sessionId;
    let stoppedSession = false;
    if (type === "Immediate" && sessionId !== undefined && STOPPABLE.includes(state.phase)) {
      updateRecord(sessionId, { resetRequested: true });
      inputs.stopReasonOverride = "HardReset";
      await agent.dispatch({ type: "remoteStop", atMs: clock(), sessionId });
      stoppedSession = true;
    }
    // "Settled first": Immediate waits for the stop reading and the signed total (bounded; the journal resumes
    // anything unfinished after the restart); OnIdle waits for the session to end on its own, however long.
    const settled = await waitUntil(
      () => generation !== resetGeneration || !sessionNeedsSettling(agent.state()) || agent.state().phase === "settling",
      type === "Immediate" ? 60_000 : Number.POSITIVE_INFINITY,
    );
    if (stopped || generation !== resetGeneration) return;
    if (!settled) log.warn("reset: the session did not reach settling within 60 s; resetting anyway (the journal resumes it)");
    // Give the Ended event a moment to leave; the queue keeps it across the reset either way.
    await Promise.race([drainQueue(), new Promise((resolve) => setTimeout(resolve, 5_000))]);
    if (generation !== resetGeneration) return;
    log.info({ type, sessionStopped: stoppedSession }, "ocpp reset");
    await options.onReset(resetKindOf(type));
  }

  // ---- CSMS-initiated calls ----

  connection.handle("RequestStartTransaction", (params) => {
    const idToken = params.idToken as IdToken201;
    const remoteStartId = params.remoteStartId as number;
    const evseId = params.evseId as number | undefined;
    const sessionId = evseId !== undefined && evseId !== connectorId ? undefined : remoteStartTarget(agent.state(), idToken.idToken, options.confirmations);
    log.info({ remoteStartId, sessionId: sessionId?.toString(), status: sessionId === undefined ? "Rejected" : "Accepted" }, "ocpp RequestStartTransaction");
    if (sessionId === undefined) {
      return {
        status: "Rejected",
        statusInfo: { reasonCode: "NoDeposit", additionalInfo: `no confirmed deposit for this charge point waits${evseId === undefined ? "" : ` on EVSE ${evseId}`}; a session starts with a deposit on chain` },
      };
    }
    // Started carries the CSMS's remoteStartId and idToken, so it can match the transaction to its request.
    updateRecord(sessionId, { remoteStart: { remoteStartId, idToken: { idToken: idToken.idToken, type: idToken.type } } });
    return { status: "Accepted" };
  });

  connection.handle("RequestStopTransaction", async (params) => {
    const transactionId = params.transactionId as string;
    const sessionId = sessionIdOf(transactionId) ?? queue.sessionIdOfTransaction(transactionId);
    const state = agent.state();
    if (sessionId === undefined || state.session?.sessionId !== sessionId || !STOPPABLE.includes(state.phase)) {
      log.info({ transactionId }, "ocpp RequestStopTransaction rejected: no such running transaction");
      return { status: "Rejected", statusInfo: { reasonCode: "UnknownTransaction", additionalInfo: `no running transaction ${transactionId}`.slice(0, 512) } };
    }
    await agent.dispatch({ type: "remoteStop", atMs: clock(), sessionId });
    log.info({ transactionId, sessionId: sessionId.toString() }, "ocpp RequestStopTransaction");
    return { status: "Accepted" };
  });

  connection.handle("GetVariables", (params) => {
    const data = params.getVariableData as GetVariableData201[];
    return { getVariableResult: data.map((item) => getVariable(item, settings, { chargePointId })) };
  });

  connection.handle("SetVariables", (params) => {
    const data = params.setVariableData as SetVariableData201[];
    const results = data.map((item) => {
      const outcome = setVariable(item, settings);
      log.info({ component: item.component.name, variable: item.variable.name, value: item.attributeValue, status: outcome.result.attributeStatus }, "ocpp SetVariables");
      if (outcome.changed?.settingKey === "HeartbeatInterval" && accepted) startHeartbeat(configuration.getInteger("HeartbeatInterval"));
      return outcome.result;
    });
    return { setVariableResult: results };
  });

  connection.handle("Reset", (params) => {
    const type = params.type === "Immediate" ? "Immediate" : "OnIdle";
    if (params.evseId !== undefined) {
      // One EVSE is the whole station here: "reset only the EVSE" would still restart everything.
      return { status: "Rejected", statusInfo: { reasonCode: "EvseReset", additionalInfo: "reset the whole station (no evseId)" } };
    }
    const busy = sessionNeedsSettling(agent.state());
    // A second OnIdle while one waits changes nothing; an Immediate takes over from a waiting OnIdle.
    if (resetPending === undefined || (type === "Immediate" && resetPending === "OnIdle")) {
      resetGeneration += 1;
      const generation = resetGeneration;
      resetPending = type;
      // After the reply is on its way: the CSMS hears Accepted before the Ended it causes.
      setTimeout(() => {
        void reset(type, generation)
          .catch((error: unknown) => log.error({ err: error }, "reset failed"))
          .finally(() => {
            if (generation === resetGeneration) resetPending = undefined;
          });
      }, 0);
    }
    return { status: busy && type === "OnIdle" ? "Scheduled" : "Accepted" };
  });

  connection.handle("TriggerMessage", (params) => {
    const requested = params.requestedMessage as string;
    const evse = params.evse as { id: number } | undefined;
    if (evse !== undefined && evse.id !== connectorId) {
      return { status: "Rejected", statusInfo: { reasonCode: "UnknownEvse", additionalInfo: `this station has EVSE ${connectorId} only` } };
    }
    const after = (task: () => Promise<unknown>): Record<string, unknown> => {
      setTimeout(() => void later(task), 0);
      return { status: "Accepted" };
    };
    switch (requested) {
      case "BootNotification":
        // 2.0.1 F06.FR.17: once the boot was accepted, a triggered boot is refused.
        return accepted ? { status: "Rejected" } : after(() => boot("Triggered"));
      case "Heartbeat":
        return after(() => callLogged("Heartbeat", {}));
      case "StatusNotification": {
        const report = observer.model().connector;
        if (!report) return { status: "Rejected", statusInfo: { reasonCode: "NoStatusYet" } };
        return after(async () => {
          const request = statusNotification201(statusIntent(connectorId, report, clock()));
          if (request) await callLogged("StatusNotification", request);
        });
      }
      case "MeterValues": {
        const reading = observer.lastReading();
        if (!reading) return { status: "Rejected", statusInfo: { reasonCode: "NoMeterReading" } };
        return after(async () => {
          const value = meterValue201(reading, "Trigger", { measurands: measurandsOf("MeterValuesSampledData") });
          if (value) await callLogged("MeterValues", { evseId: connectorId, meterValue: [value] });
        });
      }
      case "TransactionEvent": {
        const transaction = observer.model().transaction;
        const reading = observer.lastReading();
        const sessionId = transaction ? BigInt(transaction.sessionId) : undefined;
        if (sessionId === undefined || !reading || queue.transactionIdOf(sessionId) === undefined) {
          return { status: "Rejected", statusInfo: { reasonCode: "NoTransaction" } };
        }
        return after(async () => {
          const { seqNo, record } = seqNoFor(sessionId, `trigger:${clock()}`);
          const request = transactionMeterValues201(
            { type: "meterValues", sessionId, connectorId, context: "Trigger", reading },
            { seqNo, chargingState: record.chargingState ?? "Charging", measurands: measurandsOf("MeterValuesSampledData") },
          );
          if (request) await callLogged("TransactionEvent", request);
        });
      }
      default:
        return { status: "NotImplemented" };
    }
  });

  connection.handle("ChangeAvailability", async (params) => {
    const evse = params.evse as { id: number } | undefined;
    if (evse !== undefined && evse.id !== connectorId) {
      return { status: "Rejected", statusInfo: { reasonCode: "UnknownEvse", additionalInfo: `this station has EVSE ${connectorId} only` } };
    }
    const operative = params.operationalStatus === "Operative";
    const busy = agent.state().session !== undefined;
    await agent.dispatch({ type: "availability", atMs: clock(), operative });
    log.info({ evseId: evse?.id, operative, busy }, "ocpp ChangeAvailability");
    // A running session finishes first (the core only holds back new deposits): the change is scheduled.
    return { status: !operative && busy ? "Scheduled" : "Accepted" };
  });

  return {
    isAccepted: () => ready(),
    pendingTransactionMessages: () => queue.pending().length,
    transactionIdOf: (sessionId) => queue.transactionIdOf(sessionId),
    async stop() {
      if (stopped) return;
      stopped = true;
      unobserve();
      queue.close();
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      if (bootTimer) clearTimeout(bootTimer);
      await connection.close();
      await Promise.race([sendChain, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    },
  };
}

/**
 * The OCPP 1.6J charge point (Core + RemoteTrigger profiles). The model (model.ts) decides what to say; this file
 * only says it in 1.6 and answers the CSMS. Nothing here ever drives the relay: a CSMS can stop a session (through
 * the core's `remoteStop`) and hold new ones back (`availability`), but only a confirmed deposit starts one.
 *
 * Send order: one chain of sends. Transaction messages come from the persisted queue and everything else
 * (statuses, Authorize, idle meter values, heartbeats) is chained behind whatever is being sent, so online the CSMS
 * hears a session in the order it happened (Preparing, Authorize, StartTransaction, Charging, MeterValues, …).
 */
import type { CoreState, Phase } from "../core/types.ts";
import { describeError } from "../errors.ts";
import type { MeterReading, OcppIntent, ReadingContext, TransactionStopReason } from "./intents.ts";
import { remoteStartTarget, type OcppModelInputs, type StatusReport } from "./model.ts";
import { OCPP_DEFAULTS, OfflineError, type CallParams } from "./connection.ts";
import { modelConfigOf, openOcppLink } from "./link.ts";
import { createOcppObserver, depositTxOf, type ObservedStep } from "./observer.ts";
import { startKeyOf, type DeliveryOutcome, type QueuedMessage } from "./queue.ts";
import { openV16Configuration, type Measurand } from "./v16-configuration.ts";
import type { ResetKind, RunningOcpp, StartOcppOptions } from "./index.ts";

const AVAILABILITY_KEY = "ocpp.availability";
/** Phases in which a session holds the connector and a CSMS stop, reset or unlock has something to stop. */
const STOPPABLE: readonly Phase[] = ["authorized", "energized", "suspended"];
const PHASE_NAMES = ["L1", "L2", "L3"] as const;
const VOLTAGE_PHASE_NAMES = ["L1-N", "L2-N", "L3-N"] as const;

export interface SampledValue {
  value: string;
  context: ReadingContext;
  measurand: Measurand;
  unit: "Wh" | "W" | "A" | "V";
  phase?: string;
}

export interface MeterValue {
  timestamp: string;
  sampledValue: SampledValue[];
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A decimal without float noise (0.1 + 0.2 must not reach the CSMS as 0.30000000000000004). */
function decimal(value: number, digits: number): string {
  return String(Number(value.toFixed(digits)));
}

/** One 1.6 MeterValue: energy and power as totals, current and voltage per phase where the meter has them. */
export function meterValueOf(reading: MeterReading, context: ReadingContext, measurands: readonly Measurand[]): MeterValue {
  const sampledValue: SampledValue[] = [];
  for (const measurand of measurands) {
    switch (measurand) {
      case "Energy.Active.Import.Register":
        sampledValue.push({ value: String(Math.round(reading.energyWh)), context, measurand, unit: "Wh" });
        break;
      case "Power.Active.Import":
        sampledValue.push({ value: decimal(reading.powerW, 1), context, measurand, unit: "W" });
        break;
      case "Current.Import":
        reading.phases.slice(0, 3).forEach((phase, index) =>
          sampledValue.push({ value: decimal(phase.currentA, 2), context, measurand, unit: "A", phase: PHASE_NAMES[index] as string }),
        );
        break;
      case "Voltage":
        reading.phases.slice(0, 3).forEach((phase, index) =>
          sampledValue.push({ value: decimal(phase.voltageV, 1), context, measurand, unit: "V", phase: VOLTAGE_PHASE_NAMES[index] as string }),
        );
        break;
    }
  }
  return { timestamp: iso(reading.atMs), sampledValue };
}

/**
 * A StopTransaction request; `transactionData` carries the StopTxnSampledData measurands at Transaction.Begin
 * (`beginReading`, the Start's reading, where known) and Transaction.End.
 */
export function stopTransactionRequest(
  intent: Extract<OcppIntent, { type: "transactionStopped" }>,
  transactionId: string | undefined,
  beginReading: MeterReading | undefined,
  measurands: readonly Measurand[],
): Record<string, unknown> {
  const transactionData: MeterValue[] = [];
  if (measurands.length > 0) {
    if (beginReading) transactionData.push(meterValueOf(beginReading, "Transaction.Begin", measurands));
    transactionData.push(meterValueOf(intent.reading, "Transaction.End", measurands));
  }
  return {
    transactionId: Number(transactionId),
    idTag: intent.sessionId.toString(),
    meterStop: intent.meterStopWh,
    timestamp: iso(intent.atMs),
    reason: intent.reason,
    ...(transactionData.length > 0 ? { transactionData } : {}),
  };
}

function statusParams(connectorId: number, report: StatusReport, atMs: number): Record<string, unknown> {
  return {
    connectorId,
    status: report.status,
    errorCode: report.errorCode,
    ...(report.info === undefined ? {} : { info: report.info }),
    timestamp: iso(atMs),
  };
}

function stringParam(params: CallParams, name: string): string | undefined {
  const value = params[name];
  return typeof value === "string" ? value : undefined;
}

function integerParam(params: CallParams, name: string): number | undefined {
  const value = params[name];
  return typeof value === "number" && Number.isInteger(value) ? value : undefined;
}

export function startV16(options: StartOcppOptions): RunningOcpp {
  const { config, journal, agent, chargePointId } = options;
  const log = options.log.child({ component: "ocpp", ocppVersion: "1.6" });
  const clock = options.clock ?? Date.now;
  const connectorId = config.connectorId;
  const configuration = openV16Configuration(journal);

  const storedAvailability = journal.getValue(AVAILABILITY_KEY) as { chargePointInoperative?: boolean } | undefined;
  const inputs: OcppModelInputs = { chargePointInoperative: storedAvailability?.chargePointInoperative === true };

  const { queue, connection } = openOcppLink(options, "1.6", configuration, log);

  let stopped = false;
  let accepted = false;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let bootTimer: NodeJS.Timeout | undefined;
  let sendChain: Promise<void> = Promise.resolve();

  function later(task: () => Promise<void>): Promise<void> {
    sendChain = sendChain.then(task).catch((error: unknown) => log.error({ err: error }, "ocpp send failed"));
    return sendChain;
  }

  /** A call whose failure is only logged: statuses, heartbeats and Authorize are not retried (they are re-derived). */
  async function callLogged(method: string, params: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
    try {
      return await connection.call(method, params);
    } catch (error) {
      if (!(error instanceof OfflineError)) log.warn({ method, error: describeError(error) }, "ocpp call failed");
      return undefined;
    }
  }

  // ---- sending what the model observed ----

  function sendStatus(connector: number, report: StatusReport, atMs: number): Promise<void> {
    return later(async () => {
      if (!accepted) return;
      await callLogged("StatusNotification", statusParams(connector, report, atMs));
      log.info({ connectorId: connector, status: report.status, errorCode: report.errorCode }, "ocpp status");
    });
  }

  function drainQueue(): Promise<void> {
    return later(() => queue.drain(deliver));
  }

  function onObserved(step: ObservedStep): void {
    if (step.authorizeSessionId !== undefined) {
      const idTag = step.authorizeSessionId.toString();
      void later(async () => {
        if (!accepted) return;
        const reply = await callLogged("Authorize", { idTag });
        const status = (reply?.idTagInfo as { status?: string } | undefined)?.status;
        // Informational only: the confirmed deposit authorizes the session, whatever the CSMS's idTag list says.
        if (status !== undefined && status !== "Accepted") log.warn({ sessionId: idTag, status }, "the CSMS did not accept the session's idTag; the deposit authorizes it");
      });
    }
    for (const intent of step.intents) {
      if (intent.type === "transactionStopped") delete inputs.stopReasonOverride;
      dispatchIntent(intent);
    }
  }

  function dispatchIntent(intent: OcppIntent): void {
    switch (intent.type) {
      case "status":
        void sendStatus(intent.connectorId, intent, intent.atMs);
        return;
      case "meterValues":
        if (intent.sessionId !== undefined) {
          void drainQueue();
          return;
        }
        void later(async () => {
          if (!accepted) return;
          const measurands = configuration.measurands(intent.context === "Sample.Clock" ? "MeterValuesAlignedData" : "MeterValuesSampledData");
          if (measurands.length === 0) return;
          await callLogged("MeterValues", { connectorId: intent.connectorId, meterValue: [meterValueOf(intent.reading, intent.context, measurands)] });
        });
        return;
      case "transactionStarted":
      case "transactionStopped":
        void drainQueue();
        return;
    }
  }

  /** Delivers one queued transaction message (the queue counts attempts and keeps order). */
  async function deliver(message: QueuedMessage): Promise<DeliveryOutcome> {
    if (!accepted || !connection.isOnline()) return { kind: "offline" };
    const intent = message.intent;
    try {
      switch (intent.type) {
        case "transactionStarted": {
          const reply = await connection.call("StartTransaction", {
            connectorId: intent.connectorId,
            idTag: intent.idTag,
            meterStart: intent.meterStartWh,
            timestamp: iso(intent.atMs),
          });
          const transactionId = reply.transactionId;
          const status = (reply.idTagInfo as { status?: string } | undefined)?.status;
          if (status !== "Accepted") {
            // StopTransactionOnInvalidId is false: the deposit, not the idTag, authorizes the energy.
            log.warn({ sessionId: intent.sessionId.toString(), transactionId, status }, "the CSMS did not accept the transaction's idTag; charging continues on the deposit");
          }
          log.info({ sessionId: intent.sessionId.toString(), transactionId, meterStartWh: intent.meterStartWh }, "ocpp StartTransaction");
          return { kind: "confirmed", transactionId: String(transactionId) };
        }
        case "meterValues": {
          const measurands = configuration.measurands(intent.context === "Sample.Clock" ? "MeterValuesAlignedData" : "MeterValuesSampledData");
          if (measurands.length === 0) return { kind: "confirmed" };
          await connection.call("MeterValues", {
            connectorId: intent.connectorId,
            transactionId: Number(message.transactionId),
            meterValue: [meterValueOf(intent.reading, intent.context, measurands)],
          });
          return { kind: "confirmed" };
        }
        case "transactionStopped": {
          // A Stop queued before Stops carried their Start's reading finds it in the Start's row, if still whole.
          const legacyStart = journal.get(startKeyOf(intent.sessionId))?.payload as Extract<OcppIntent, { type: "transactionStarted" }> | undefined;
          const beginReading = message.beginReading ?? legacyStart?.reading;
          await connection.call(
            "StopTransaction",
            stopTransactionRequest(intent, message.transactionId, beginReading, configuration.measurands("StopTxnSampledData")),
          );
          log.info({ sessionId: intent.sessionId.toString(), transactionId: message.transactionId, meterStopWh: intent.meterStopWh, reason: intent.reason }, "ocpp StopTransaction");
          return { kind: "confirmed" };
        }
      }
    } catch (error) {
      if (error instanceof OfflineError || !connection.isOnline()) return { kind: "offline" };
      return { kind: "failed", error: describeError(error) };
    }
  }

  // ---- boot and heartbeat ----

  function startHeartbeat(intervalS: number): void {
    if (heartbeatTimer) clearInterval(heartbeatTimer);
    heartbeatTimer = undefined;
    if (intervalS <= 0 || stopped) return;
    heartbeatTimer = setInterval(() => void heartbeat(), intervalS * 1000);
    heartbeatTimer.unref?.();
  }

  function heartbeat(): Promise<void> {
    return later(async () => {
      if (accepted) await callLogged("Heartbeat", {});
    });
  }

  async function boot(): Promise<void> {
    if (stopped || !connection.isOnline()) return;
    let reply: Record<string, unknown> | undefined;
    try {
      reply = await connection.call("BootNotification", {
        chargePointVendor: config.vendor ?? OCPP_DEFAULTS.vendor,
        chargePointModel: config.model ?? OCPP_DEFAULTS.model,
        ...(options.firmwareVersion === undefined ? {} : { firmwareVersion: options.firmwareVersion.slice(0, 50) }),
        ...(options.meterType === undefined ? {} : { meterType: options.meterType.slice(0, 25) }),
      });
    } catch (error) {
      if (!connection.isOnline()) return;
      log.warn({ error: describeError(error) }, "BootNotification failed; retrying in 30 s");
      scheduleBoot(30);
      return;
    }
    const status = reply.status as "Accepted" | "Pending" | "Rejected";
    const intervalS = typeof reply.interval === "number" ? reply.interval : 0;
    log.info({ status, intervalS }, "ocpp BootNotification");
    if (status === "Accepted") {
      accepted = true;
      if (intervalS > 0) configuration.change("HeartbeatInterval", String(intervalS));
      startHeartbeat(configuration.getInteger("HeartbeatInterval"));
      // Already on the send chain: call directly (chaining here would wait on this very task).
      await queue.drain(deliver);
      const model = observer.model();
      const atMs = clock();
      for (const [connector, report] of [[0, model.chargePoint], [connectorId, model.connector]] as const) {
        if (!report || !accepted) continue;
        await callLogged("StatusNotification", statusParams(connector, report, atMs));
        log.info({ connectorId: connector, status: report.status, errorCode: report.errorCode }, "ocpp status");
      }
      return;
    }
    // Pending/Rejected: nothing but the boot (and answers to the CSMS) until it accepts; 1.6 §4.2.
    accepted = false;
    if (heartbeatTimer) clearInterval(heartbeatTimer);
    heartbeatTimer = undefined;
    scheduleBoot(intervalS > 0 ? intervalS : 30);
  }

  function scheduleBoot(afterS: number): void {
    if (bootTimer) clearTimeout(bootTimer);
    bootTimer = setTimeout(() => {
      bootTimer = undefined;
      void later(boot);
    }, afterS * 1000);
    bootTimer.unref?.();
  }

  connection.onOpen(() => {
    accepted = false;
    void later(boot);
  });
  connection.onClose(() => {
    accepted = false;
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

  function runningSession(state: CoreState): bigint | undefined {
    return state.session && STOPPABLE.includes(state.phase) ? state.session.sessionId : undefined;
  }

  /** Stops the running session through the core, naming `reason` in its StopTransaction. */
  async function stopSession(reason: TransactionStopReason): Promise<boolean> {
    const sessionId = runningSession(agent.state());
    if (sessionId === undefined) return false;
    inputs.stopReasonOverride = reason;
    await agent.dispatch({ type: "remoteStop", atMs: clock(), sessionId });
    return true;
  }

  async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = clock() + timeoutMs;
    while (!condition()) {
      if (stopped || clock() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return true;
  }

  async function reset(kind: ResetKind): Promise<void> {
    const stoppedSession = await stopSession(kind === "Hard" ? "HardReset" : "SoftReset");
    if (stoppedSession) {
      // "Settled first": the stop reading is taken and the signed total is in the chain outbox before the reset.
      const settled = await waitUntil(() => agent.state().phase !== "stopping", 60_000);
      if (!settled) log.warn("reset: the session did not reach settling within 60 s; resetting anyway (the journal resumes it)");
      // Give the StopTransaction a moment to leave; the queue keeps it across the reset either way.
      await Promise.race([drainQueue(), new Promise((resolve) => setTimeout(resolve, 5_000))]);
    }
    log.info({ kind, sessionStopped: stoppedSession }, "ocpp reset");
    await options.onReset(kind);
  }

  // ---- CSMS-initiated calls ----

  connection.handle("GetConfiguration", (params) => {
    const keys = Array.isArray(params.key) ? params.key.filter((key): key is string => typeof key === "string") : undefined;
    const { entries, unknown } = configuration.list(keys);
    return { configurationKey: entries, ...(unknown.length > 0 ? { unknownKey: unknown } : {}) };
  });

  connection.handle("ChangeConfiguration", (params) => {
    const key = stringParam(params, "key") ?? "";
    const value = stringParam(params, "value") ?? "";
    const status = configuration.change(key, value);
    log.info({ key, value, status }, "ocpp ChangeConfiguration");
    if (status === "Accepted" && key === "HeartbeatInterval" && accepted) startHeartbeat(configuration.getInteger("HeartbeatInterval"));
    return { status };
  });

  connection.handle("TriggerMessage", (params) => {
    const requested = stringParam(params, "requestedMessage");
    const connector = integerParam(params, "connectorId");
    if (connector !== undefined && connector !== 0 && connector !== connectorId) return { status: "Rejected" };
    const after = (task: () => Promise<void>): void => void setTimeout(() => void later(task), 0);
    switch (requested) {
      case "BootNotification":
        after(boot);
        return { status: "Accepted" };
      case "Heartbeat":
        after(async () => {
          if (connection.isOnline()) await callLogged("Heartbeat", {});
        });
        return { status: "Accepted" };
      case "StatusNotification":
        after(async () => {
          const model = observer.model();
          const atMs = clock();
          if (model.chargePoint && (connector === undefined || connector === 0)) await callLogged("StatusNotification", statusParams(0, model.chargePoint, atMs));
          if (model.connector && (connector === undefined || connector === connectorId)) await callLogged("StatusNotification", statusParams(connectorId, model.connector, atMs));
        });
        return { status: "Accepted" };
      case "MeterValues":
        after(async () => {
          const reading = observer.lastReading();
          const measurands = configuration.measurands("MeterValuesSampledData");
          if (!reading || measurands.length === 0) return;
          const sessionId = observer.model().transaction?.sessionId;
          const transactionId = sessionId === undefined ? undefined : queue.transactionIdOf(BigInt(sessionId));
          await callLogged("MeterValues", {
            connectorId,
            ...(transactionId === undefined ? {} : { transactionId: Number(transactionId) }),
            meterValue: [meterValueOf(reading, "Trigger", measurands)],
          });
        });
        return { status: "Accepted" };
      default:
        return { status: "NotImplemented" };
    }
  });

  connection.handle("Reset", (params) => {
    const kind: ResetKind = params.type === "Hard" ? "Hard" : "Soft";
    setTimeout(() => void reset(kind).catch((error: unknown) => log.error({ err: error }, "reset failed")), 0);
    return { status: "Accepted" };
  });

  connection.handle("RemoteStartTransaction", (params) => {
    const idTag = stringParam(params, "idTag") ?? "";
    const connector = integerParam(params, "connectorId");
    const target = connector !== undefined && connector !== connectorId ? undefined : remoteStartTarget(agent.state(), idTag, options.confirmations);
    log.info({ idTag, sessionId: target?.toString(), status: target === undefined ? "Rejected" : "Accepted" }, "ocpp RemoteStartTransaction");
    return { status: target === undefined ? "Rejected" : "Accepted" };
  });

  connection.handle("RemoteStopTransaction", async (params) => {
    const transactionId = integerParam(params, "transactionId");
    const sessionId = transactionId === undefined ? undefined : queue.sessionIdOfTransaction(String(transactionId));
    const state = agent.state();
    if (sessionId === undefined || state.session?.sessionId !== sessionId || !STOPPABLE.includes(state.phase)) {
      log.info({ transactionId, sessionId: sessionId?.toString() }, "ocpp RemoteStopTransaction rejected: no such running transaction");
      return { status: "Rejected" };
    }
    await agent.dispatch({ type: "remoteStop", atMs: clock(), sessionId });
    log.info({ transactionId, sessionId: sessionId.toString() }, "ocpp RemoteStopTransaction");
    return { status: "Accepted" };
  });

  // No lock actuator on this pile: with a session running, "unlock" means stop it so the cable can be pulled.
  connection.handle("UnlockConnector", async (params) => {
    if (integerParam(params, "connectorId") !== connectorId) return { status: "NotSupported" };
    const stoppedSession = await stopSession("UnlockCommand");
    return { status: stoppedSession ? "Unlocked" : "NotSupported" };
  });

  connection.handle("ChangeAvailability", async (params) => {
    const connector = integerParam(params, "connectorId");
    if (connector !== 0 && connector !== connectorId) return { status: "Rejected" };
    const operative = params.type === "Operative";
    inputs.chargePointInoperative = !operative && connector === 0;
    journal.setValue(AVAILABILITY_KEY, { chargePointInoperative: inputs.chargePointInoperative });
    const busy = agent.state().session !== undefined;
    await agent.dispatch({ type: "availability", atMs: clock(), operative });
    log.info({ connectorId: connector, operative, busy }, "ocpp ChangeAvailability");
    return { status: !operative && busy ? "Scheduled" : "Accepted" };
  });

  connection.handle("ClearCache", () => ({ status: "Accepted" }));

  connection.handle("DataTransfer", (params) => {
    if (stringParam(params, "vendorId") !== "trustpile") return { status: "UnknownVendorId" };
    if (stringParam(params, "messageId") !== "sessionInfo") return { status: "UnknownMessageId" };
    const transactionId = stringParam(params, "data")?.trim() ?? "";
    const sessionId = /^[0-9]+$/.test(transactionId) ? queue.sessionIdOfTransaction(transactionId) : undefined;
    if (sessionId === undefined) return { status: "Rejected" };
    const id = sessionId.toString();
    const info = {
      transactionId: Number(transactionId),
      sessionId: id,
      depositTxHash: depositTxOf(journal, sessionId) ?? null,
      authorizeTxHash: journal.get(`authorize:${id}`)?.txHash ?? null,
      settleTxHash: journal.get(`settle:${id}`)?.txHash ?? null,
    };
    return { status: "Accepted", data: JSON.stringify(info) };
  });

  return {
    isAccepted: () => accepted && connection.isOnline(),
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

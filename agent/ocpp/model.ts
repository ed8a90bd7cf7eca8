/**
 * The OCPP model (pure): what the CSMS should be told, derived from the session core's state after each step and
 * from meter samples. No I/O and no clock (time arrives in the inputs), so every status transition, every meter
 * value and every stop reason is unit-testable; both version adapters (v16.ts, v201.ts) consume its intents.
 *
 * The model diffs states rather than interpreting events: whatever path the core took (replay, restart, a reorg),
 * the connector status and the transaction boundaries follow from what the core says now.
 */
import type { CoreState, Phase, StopReason } from "../core/types.ts";
import type { MeterSample } from "../../drivers/meters/types.ts";
import type {
  ConnectorErrorCode,
  ConnectorStatus,
  MeterReading,
  OcppIntent,
  TransactionStopReason,
} from "./intents.ts";

export interface StatusReport {
  status: ConnectorStatus;
  errorCode: ConnectorErrorCode;
  info?: string;
}

export interface OcppModelConfig {
  connectorId: number;
  /** `MeterValueSampleInterval` in s; 0 sends no periodic values during a transaction. */
  meterValueSampleIntervalS: number;
  /** `ClockAlignedDataInterval` in s; 0 sends no clock-aligned values. */
  clockAlignedDataIntervalS: number;
  /**
   * `meter.staleAfterMs`: a meter fault is reported (Faulted, PowerMeterFailure) only once no good reading came for
   * this long, the same rule the core uses, so one timed-out poll does not flap the connector. Default 3 000.
   */
  meterStaleAfterMs?: number;
}

/** What the adapter knows that the core does not (availability scope, why it asked the core to stop). */
export interface OcppModelInputs {
  /** ChangeAvailability Inoperative was addressed to connector 0 (the whole pile), not only to the connector. */
  chargePointInoperative: boolean;
  /** Set by the adapter before it stops a session for Reset or UnlockConnector, so the stop names that cause. */
  stopReasonOverride?: TransactionStopReason;
}

export interface OcppModelState {
  chargePoint?: StatusReport;
  connector?: StatusReport;
  /** The transaction this model has started and not yet stopped. */
  transaction?: {
    sessionId: string;
    /** The session's deposit generation (core SessionTerms.generation; absent for 0): a deep reorg reuses ids. */
    generation?: number;
    lastEnergyWh: number;
    lastPeriodicAtMs: number;
    stopReasonOverride?: TransactionStopReason;
  };
  /** The index of the last clock-aligned interval a value was sent for. */
  lastClockSlot?: number;
  /** A transaction ended with the EV still plugged in: Finishing until it leaves. */
  finishingUntilUnplug: boolean;
  lastReading?: MeterReading;
}

export function initialModelState(): OcppModelState {
  return { finishingUntilUnplug: false };
}

export function readingOf(sample: MeterSample): MeterReading {
  return {
    atMs: sample.readAtMs,
    energyWh: sample.importEnergyWh,
    powerW: sample.powerW,
    phases: sample.phases.map((phase) => ({ voltageV: phase.voltageV, currentA: phase.currentA, powerW: phase.powerW })),
  };
}

/**
 * The core's stop reasons in OCPP 1.6 `Reason` names.
 * - budget / maxEnergy → Local: the pile itself ended the transaction at a limit it enforces (the energy the deposit
 *   pays for, or the EV's own maximum); 1.6 has no "energy limit" reason and Local is "stopped locally by the CP".
 * - meterLost / fault / reorged → Other: none is an emergency-stop button (EmergencyStop would mislead an operator
 *   into looking for one), and the status notification that follows carries the fault's error code.
 * - shutdown → Reboot unless the adapter knows it is a Soft/Hard Reset (stopReasonOverride).
 */
export function stopReasonOf(reason: StopReason | undefined): TransactionStopReason {
  switch (reason) {
    case "evUnplugged":
      return "EVDisconnected";
    case "remoteStop":
      return "Remote";
    case "budget":
    case "maxEnergy":
      return "Local";
    case "shutdown":
      return "Reboot";
    case "meterLost":
    case "fault":
    case "reorged":
    case undefined:
      return "Other";
  }
}

const SESSION_WAITING_PHASES: readonly Phase[] = ["depositPending", "authorizing", "authorized"];

const DEFAULT_METER_STALE_AFTER_MS = 3_000;

function faultReport(state: CoreState, meterStaleAfterMs = DEFAULT_METER_STALE_AFTER_MS): StatusReport | undefined {
  if (state.fault !== undefined) {
    const switchFault = /contactor|relay|feedback/i.test(state.fault);
    return { status: "Faulted", errorCode: switchFault ? "PowerSwitchFailure" : "OtherError", info: state.fault.slice(0, 50) };
  }
  const lastGoodAtMs = state.meter.lastSampleAtMs;
  const stale = lastGoodAtMs === undefined || state.nowMs - lastGoodAtMs >= meterStaleAfterMs;
  if (state.meter.faultKind !== undefined && stale) {
    return { status: "Faulted", errorCode: "PowerMeterFailure", info: `meter ${state.meter.faultKind}`.slice(0, 50) };
  }
  return undefined;
}

/** The charge point as a whole (connector 0): Faulted on a pile fault, Unavailable when made inoperative. */
export function chargePointStatusOf(state: CoreState, inputs: OcppModelInputs): StatusReport {
  if (state.fault !== undefined) return faultReport(state) as StatusReport;
  if (state.inoperative === true && inputs.chargePointInoperative && state.session === undefined) {
    return { status: "Unavailable", errorCode: "NoError" };
  }
  return { status: "Available", errorCode: "NoError" };
}

/** The connector's status (OCPP 1.6 §4.9 state machine) as the core's phase and inputs imply it. */
export function connectorStatusOf(state: CoreState, finishingUntilUnplug: boolean, meterStaleAfterMs?: number): StatusReport {
  const session = state.session;
  if (state.fault !== undefined || state.phase === "faulted") return faultReport(state) ?? { status: "Faulted", errorCode: "InternalError" };
  // During a session a silent meter ends it through the core (meterLost) and the stop explains it; one missed
  // poll must not flap the connector between Faulted and Charging.
  const delivering = session !== undefined && !SESSION_WAITING_PHASES.includes(state.phase);
  const meterFault = faultReport(state, meterStaleAfterMs);
  if (meterFault && !delivering) return meterFault;
  if (session) {
    switch (state.phase) {
      case "depositPending":
      case "authorizing":
        return { status: "Preparing", errorCode: "NoError" };
      case "authorized":
        // Energized before (a restart, or the interlock reopened the relay): the pile, not the EV, holds it open.
        return session.meterStartWh === undefined ? { status: "Preparing", errorCode: "NoError" } : { status: "SuspendedEVSE", errorCode: "NoError" };
      case "energized":
        return { status: "Charging", errorCode: "NoError" };
      case "suspended":
        return { status: "SuspendedEV", errorCode: "NoError" };
      case "stopping":
      case "settling":
        return { status: "Finishing", errorCode: "NoError" };
      default:
        break;
    }
  }
  if (state.inoperative === true) return { status: "Unavailable", errorCode: "NoError" };
  if (state.evPresent) return { status: finishingUntilUnplug ? "Finishing" : "Preparing", errorCode: "NoError" };
  return { status: "Available", errorCode: "NoError" };
}

function sameReport(a: StatusReport | undefined, b: StatusReport): boolean {
  return a !== undefined && a.status === b.status && a.errorCode === b.errorCode && a.info === b.info;
}

/** The transaction the core is running: started once the session first energized, with its start register. */
function runningTransaction(state: CoreState): { sessionId: bigint; meterStartWh: number; startedAtMs: number } | undefined {
  const session = state.session;
  if (!session || session.meterStartWh === undefined || session.startedAtMs === undefined) return undefined;
  // A session stopped before it ever energized gets a start register only when its zero total is written.
  if (session.energizedAtMs === undefined) return undefined;
  return { sessionId: session.sessionId, meterStartWh: session.meterStartWh, startedAtMs: session.startedAtMs };
}

export interface ModelStepResult {
  state: OcppModelState;
  intents: OcppIntent[];
}

/**
 * Everything the CSMS should hear after the core reached `core` at `atMs`: transaction boundaries first (so a
 * StartTransaction precedes the Charging status it explains, and a StopTransaction precedes Finishing → Available),
 * then status changes of connector 0 and of the connector.
 */
export function observeCore(
  config: OcppModelConfig,
  previous: OcppModelState,
  core: CoreState,
  inputs: OcppModelInputs,
  atMs: number,
): ModelStepResult {
  const state: OcppModelState = structuredClone(previous);
  const intents: OcppIntent[] = [];
  const connectorId = config.connectorId;
  const reading = (energyWh: number): MeterReading => ({
    atMs,
    energyWh,
    powerW: state.lastReading?.powerW ?? 0,
    phases: state.lastReading?.phases ?? [],
    ...(state.lastReading && state.lastReading.energyWh === energyWh ? { atMs: state.lastReading.atMs } : {}),
  });

  const running = runningTransaction(core);
  const session = core.session;
  const current = state.transaction;
  // A deposit that took the id of one a deep reorg removed is another session: same id, later generation.
  const isCurrentTransaction = (candidate: typeof session): candidate is NonNullable<typeof session> =>
    candidate !== undefined && current !== undefined && candidate.sessionId.toString() === current.sessionId && (candidate.generation ?? 0) === (current.generation ?? 0);
  if (current && isCurrentTransaction(session) && session.meterLastWh !== undefined) {
    current.lastEnergyWh = Math.max(current.lastEnergyWh, session.meterLastWh);
  }
  // The stop register is final once the core has taken its stop reading (phase settling).
  const finalStopWh = session?.meterStopWh !== undefined && core.phase === "settling" ? session.meterStopWh : undefined;

  const stopTransaction = (sessionId: string, meterStopWh: number, reason: TransactionStopReason, stoppedAtMs: number): void => {
    intents.push({
      type: "transactionStopped",
      sessionId: BigInt(sessionId),
      connectorId,
      meterStopWh,
      atMs: stoppedAtMs,
      reason,
      reading: reading(meterStopWh),
    });
    state.transaction = undefined;
    state.finishingUntilUnplug = core.evPresent;
  };

  let stoppedNow: string | undefined;
  if (current) {
    const sameSession = isCurrentTransaction(session);
    if (!sameSession) {
      // Dropped without settling (closed on chain, reorged): the last register seen ends it.
      stopTransaction(current.sessionId, current.lastEnergyWh, inputs.stopReasonOverride ?? current.stopReasonOverride ?? "Other", atMs);
      stoppedNow = current.sessionId;
    } else if (finalStopWh !== undefined) {
      stopTransaction(current.sessionId, finalStopWh, inputs.stopReasonOverride ?? current.stopReasonOverride ?? stopReasonOf(session.stopReason), session.stoppedAtMs ?? atMs);
      stoppedNow = current.sessionId;
    }
  }

  if (running && state.transaction === undefined && running.sessionId.toString() !== stoppedNow) {
    intents.push({
      type: "transactionStarted",
      sessionId: running.sessionId,
      connectorId,
      idTag: running.sessionId.toString(),
      meterStartWh: running.meterStartWh,
      atMs: running.startedAtMs,
      reading: { ...reading(running.meterStartWh), atMs: running.startedAtMs },
    });
    state.transaction = {
      sessionId: running.sessionId.toString(),
      ...(session?.generation ? { generation: session.generation } : {}),
      lastEnergyWh: session?.meterLastWh ?? running.meterStartWh,
      lastPeriodicAtMs: running.startedAtMs,
      ...(inputs.stopReasonOverride !== undefined ? { stopReasonOverride: inputs.stopReasonOverride } : {}),
    };
    state.finishingUntilUnplug = false;
    if (finalStopWh !== undefined && session) {
      // Start and stop seen in one observation (a restart after a whole session): both go out, in order.
      stopTransaction(running.sessionId.toString(), finalStopWh, inputs.stopReasonOverride ?? stopReasonOf(session.stopReason), session.stoppedAtMs ?? atMs);
    }
  }

  if (!core.evPresent) state.finishingUntilUnplug = false;

  const chargePoint = chargePointStatusOf(core, inputs);
  if (!sameReport(state.chargePoint, chargePoint)) {
    state.chargePoint = chargePoint;
    intents.push({ type: "status", connectorId: 0, ...chargePoint, atMs });
  }
  const connector = connectorStatusOf(core, state.finishingUntilUnplug, config.meterStaleAfterMs);
  // Finishing means "the transaction has stopped" (1.6 §4.9): while the core waits for its stop reading the
  // transaction is still open, so the connector keeps its status until the StopTransaction is out.
  const awaitingStop = state.transaction !== undefined && core.phase === "stopping" && connector.status === "Finishing";
  if (!awaitingStop && !sameReport(state.connector, connector)) {
    state.connector = connector;
    intents.push({ type: "status", connectorId, ...connector, atMs });
  }
  return { state, intents };
}

/**
 * Meter values due for a new reading: Sample.Periodic every `meterValueSampleIntervalS` during a transaction, and
 * Sample.Clock when the reading falls into a new `clockAlignedDataIntervalS` interval (counted from the epoch, so
 * 900 s gives :00, :15, :30, :45), with or without a transaction.
 */
export function observeReading(config: OcppModelConfig, previous: OcppModelState, reading: MeterReading): ModelStepResult {
  const state: OcppModelState = structuredClone(previous);
  state.lastReading = reading;
  const intents: OcppIntent[] = [];
  const transaction = state.transaction;
  const connectorId = config.connectorId;
  if (transaction) transaction.lastEnergyWh = Math.max(transaction.lastEnergyWh, reading.energyWh);

  if (config.clockAlignedDataIntervalS > 0) {
    const slot = Math.floor(reading.atMs / (config.clockAlignedDataIntervalS * 1000));
    if (state.lastClockSlot === undefined) {
      state.lastClockSlot = slot;
    } else if (slot > state.lastClockSlot) {
      state.lastClockSlot = slot;
      intents.push({
        type: "meterValues",
        ...(transaction ? { sessionId: BigInt(transaction.sessionId) } : {}),
        connectorId,
        context: "Sample.Clock",
        reading,
      });
    }
  }
  if (transaction && config.meterValueSampleIntervalS > 0 && reading.atMs - transaction.lastPeriodicAtMs >= config.meterValueSampleIntervalS * 1000) {
    transaction.lastPeriodicAtMs = reading.atMs;
    intents.push({ type: "meterValues", sessionId: BigInt(transaction.sessionId), connectorId, context: "Sample.Periodic", reading });
  }
  return { state, intents };
}

/**
 * The deposit rule for CSMS-initiated starts, shared by both adapters (DESIGN §3): a RemoteStart is accepted only
 * when a confirmed deposit for this pile is waiting — the core's session is confirmed but not yet energized
 * (authorizing/authorized without a start register), or a deposit is queued behind it — and, when the idTag is a
 * decimal session id, only for that session. It never energizes anything by itself: the deposit does.
 * Returns the session the start refers to, or undefined (Rejected).
 */
export function remoteStartTarget(state: CoreState, idTag: string, confirmations: number): bigint | undefined {
  const wanted = /^[0-9]{1,20}$/.test(idTag) ? BigInt(idTag) : undefined;
  const candidates: bigint[] = [];
  const session = state.session;
  if (session && (state.phase === "authorizing" || state.phase === "authorized") && session.meterStartWh === undefined) {
    candidates.push(session.sessionId);
  }
  for (const queued of state.queue) {
    const depth = state.headBlock >= queued.depositBlock ? state.headBlock - queued.depositBlock + 1 : 0;
    if (depth >= confirmations) candidates.push(queued.sessionId);
  }
  if (state.inoperative === true) return undefined;
  if (wanted === undefined) return candidates[0];
  return candidates.find((id) => id === wanted);
}

/** True when the core is in a phase where a deposit is waiting to energize (for logs and tests). */
export function depositWaiting(state: CoreState): boolean {
  return state.session !== undefined && SESSION_WAITING_PHASES.includes(state.phase);
}

/**
 * The session whose idTag should be sent in an Authorize now: its deposit just became confirmed (the core moved it
 * to authorizing or straight to authorized). Informational for the CSMS; the session never waits for the answer.
 */
export function authorizeDue(previous: CoreState, next: CoreState): bigint | undefined {
  const session = next.session;
  if (!session || (next.phase !== "authorizing" && next.phase !== "authorized") || session.meterStartWh !== undefined) return undefined;
  const before = previous.session;
  const wasConfirmed = before?.sessionId === session.sessionId && (previous.phase === "authorizing" || previous.phase === "authorized");
  return wasConfirmed ? undefined : session.sessionId;
}

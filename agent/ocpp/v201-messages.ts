/**
 * OCPP 2.0.1 payloads built from the version-neutral intents (agent/ocpp/intents.ts). Pure: no clock, no socket.
 * Every builder returns exactly what goes on the wire; the unit tests check each one against the official 2.0.1
 * JSON schemas that ocpp-rpc enforces in strict mode, so a strict CSMS never answers one with a FormatViolation.
 *
 * How the pile's model maps onto 2.0.1's:
 * - A 1.6 connector N is 2.0.1's EVSE N with its single connector 1.
 * - The on-chain session id (decimal) is the `transactionId`: 2.0.1 lets the station choose it, so, unlike 1.6,
 *   no id from the CSMS has to be mapped back.
 * - The connector statuses 1.6 uses to tell the charging state (Preparing, Charging, Suspended*, Finishing) are all
 *   `Occupied` in 2.0.1; the charging state itself travels in `TransactionEvent.transactionInfo.chargingState`.
 * - Energy is the meter's import register in Wh (never kWh), as the chain settles it.
 */
import type {
  ConnectorErrorCode,
  ConnectorStatus,
  MeterReading,
  OcppIntent,
  ReadingContext,
  TransactionStopReason,
} from "./intents.ts";

export const OCPP201_PROTOCOL = "ocpp2.0.1";

// ------------------------------------------------------------------ wire types (the subset of 2.0.1 the pile sends)

export type ConnectorStatus201 = "Available" | "Occupied" | "Reserved" | "Unavailable" | "Faulted";
export type ChargingState201 = "Charging" | "EVConnected" | "SuspendedEV" | "SuspendedEVSE" | "Idle";
export type StoppedReason201 =
  | "DeAuthorized" | "EmergencyStop" | "EnergyLimitReached" | "EVDisconnected" | "GroundFault" | "ImmediateReset"
  | "Local" | "LocalOutOfCredit" | "MasterPass" | "Other" | "OvercurrentFault" | "PowerLoss" | "PowerQuality"
  | "Reboot" | "Remote" | "SOCLimitReached" | "StoppedByEV" | "TimeLimitReached" | "Timeout";
export type TriggerReason201 =
  | "Authorized" | "CablePluggedIn" | "ChargingRateChanged" | "ChargingStateChanged" | "Deauthorized"
  | "EnergyLimitReached" | "EVCommunicationLost" | "EVConnectTimeout" | "MeterValueClock" | "MeterValuePeriodic"
  | "TimeLimitReached" | "Trigger" | "UnlockCommand" | "StopAuthorized" | "EVDeparted" | "EVDetected" | "RemoteStop"
  | "RemoteStart" | "AbnormalCondition" | "SignedDataReceived" | "ResetCommand";
export type ReadingContext201 = ReadingContext | "Interruption.Begin" | "Interruption.End" | "Other";
export type Measurand201 = "Energy.Active.Import.Register" | "Power.Active.Import" | "Voltage" | "Current.Import";
export type Phase201 = "L1" | "L2" | "L3" | "L1-N" | "L2-N" | "L3-N";
export type IdTokenType201 = "Central" | "eMAID" | "ISO14443" | "ISO15693" | "KeyCode" | "Local" | "MacAddress" | "NoAuthorization";
export type BootReason201 =
  | "ApplicationReset" | "FirmwareUpdate" | "LocalReset" | "PowerUp" | "RemoteReset" | "ScheduledReset" | "Triggered"
  | "Unknown" | "Watchdog";

export interface IdToken201 {
  idToken: string;
  type: IdTokenType201;
}

export interface SampledValue201 {
  value: number;
  measurand: Measurand201;
  context: ReadingContext201;
  phase?: Phase201;
  unitOfMeasure: { unit: "Wh" | "W" | "V" | "A" };
}

export interface MeterValue201 {
  timestamp: string;
  sampledValue: SampledValue201[];
}

export interface Evse201 {
  id: number;
  connectorId?: number;
}

export interface BootNotificationRequest201 {
  reason: BootReason201;
  chargingStation: { model: string; vendorName: string; firmwareVersion?: string; serialNumber?: string };
}

export interface StatusNotificationRequest201 {
  timestamp: string;
  connectorStatus: ConnectorStatus201;
  evseId: number;
  connectorId: number;
}

export interface TransactionEventRequest201 {
  eventType: "Started" | "Updated" | "Ended";
  timestamp: string;
  triggerReason: TriggerReason201;
  seqNo: number;
  /** True for an event that happened while the CSMS was unreachable and is delivered late from the queue. */
  offline?: boolean;
  transactionInfo: {
    transactionId: string;
    chargingState?: ChargingState201;
    stoppedReason?: StoppedReason201;
    remoteStartId?: number;
  };
  evse?: Evse201;
  idToken?: IdToken201;
  meterValue?: MeterValue201[];
}

export interface MeterValuesRequest201 {
  evseId: number;
  meterValue: MeterValue201[];
}

export interface NotifyEventRequest201 {
  generatedAt: string;
  seqNo: number;
  eventData: {
    eventId: number;
    timestamp: string;
    trigger: "Alerting" | "Delta" | "Periodic";
    actualValue: string;
    techCode?: string;
    techInfo?: string;
    cleared?: boolean;
    transactionId?: string;
    eventNotificationType: "HardWiredNotification";
    component: { name: string; evse?: Evse201 };
    variable: { name: string };
  }[];
}

// ------------------------------------------------------------------ identity and limits

/** The schema's limit on `transactionId` and `idToken` (CiString36). */
export const MAX_ID_LENGTH = 36;

/** The pile's transaction id for a session: the on-chain session id in decimal. */
export function transactionIdOf(sessionId: bigint): string {
  const id = sessionId.toString();
  if (id.length > MAX_ID_LENGTH) {
    throw new RangeError(`session id ${id} has ${id.length} digits; an OCPP 2.0.1 transactionId holds at most ${MAX_ID_LENGTH}`);
  }
  return id;
}

/** The session a CSMS transactionId names, or undefined when it is not one of ours (not a plain decimal). */
export function sessionIdOf(transactionId: string): bigint | undefined {
  return /^(0|[1-9][0-9]*)$/.test(transactionId) ? BigInt(transactionId) : undefined;
}

/** The idToken a deposit-authorized transaction carries: the session itself, vouched for by the chain (Central). */
export function sessionIdToken(sessionId: bigint): IdToken201 {
  return { idToken: transactionIdOf(sessionId), type: "Central" };
}

/** 1.6 connector N is EVSE N with one connector. */
export function evseOf(connectorId: number): Required<Evse201> {
  return { id: connectorId, connectorId: 1 };
}

export function isoTime(atMs: number): string {
  return new Date(atMs).toISOString();
}

// ------------------------------------------------------------------ mappings

export function connectorStatus201(status: ConnectorStatus): ConnectorStatus201 {
  switch (status) {
    case "Available":
    case "Faulted":
    case "Unavailable":
      return status;
    case "Preparing":
    case "Charging":
    case "SuspendedEV":
    case "SuspendedEVSE":
    case "Finishing":
      return "Occupied";
  }
}

/** The charging state a 1.6 connector status implies, where it implies one. */
export function chargingStateOf(status: ConnectorStatus): ChargingState201 | undefined {
  switch (status) {
    case "Charging":
    case "SuspendedEV":
    case "SuspendedEVSE":
      return status;
    case "Preparing":
    case "Finishing":
      return "EVConnected";
    case "Available":
      return "Idle";
    case "Faulted":
    case "Unavailable":
      return undefined;
  }
}

export function stoppedReason201(reason: TransactionStopReason): StoppedReason201 {
  switch (reason) {
    case "HardReset":
    case "SoftReset":
      // 2.0.1 has one reset that ends transactions; OnIdle never interrupts one.
      return "ImmediateReset";
    case "UnlockCommand":
      // No stop reason of that name in 2.0.1; the trigger reason keeps it (triggerReasonOfStop).
      return "Other";
    case "DeAuthorized":
    case "EmergencyStop":
    case "EVDisconnected":
    case "Local":
    case "Other":
    case "PowerLoss":
    case "Reboot":
    case "Remote":
      return reason;
  }
}

/** What made the station end the transaction, for `TransactionEvent(Ended).triggerReason`. */
export function triggerReasonOfStop(reason: TransactionStopReason): TriggerReason201 {
  switch (reason) {
    case "Remote":
      return "RemoteStop";
    case "EVDisconnected":
      // 2.0.1 names an unplugged cable "EVCommunicationLost"; "EVDeparted" is a parking-bay detector's.
      return "EVCommunicationLost";
    case "HardReset":
    case "SoftReset":
      return "ResetCommand";
    case "DeAuthorized":
      return "Deauthorized";
    case "UnlockCommand":
      return "UnlockCommand";
    case "Local":
      return "StopAuthorized";
    case "EmergencyStop":
    case "PowerLoss":
    case "Reboot":
    case "Other":
      return "AbnormalCondition";
  }
}

function triggerReasonOfReading(context: ReadingContext): TriggerReason201 {
  switch (context) {
    case "Sample.Clock":
      return "MeterValueClock";
    case "Trigger":
      return "Trigger";
    case "Transaction.Begin":
    case "Transaction.End":
    case "Sample.Periodic":
      return "MeterValuePeriodic";
  }
}

// ------------------------------------------------------------------ meter values

const PHASES = ["L1", "L2", "L3"] as const;
const PHASE_VOLTAGES = ["L1-N", "L2-N", "L3-N"] as const;

export const ALL_MEASURANDS: readonly Measurand201[] = Object.freeze([
  "Energy.Active.Import.Register",
  "Power.Active.Import",
  "Voltage",
  "Current.Import",
]);

export interface MeterValueOptions {
  /** Overrides the reading's register where it must equal the settled meterStart/meterStop exactly. */
  registerWh?: number;
  /** What to report (the CSMS's TxUpdatedMeasurands, …); all four by default. */
  measurands?: readonly Measurand201[];
  /** Report the register even when `measurands` leaves it out: Started and Ended carry the settled bounds. */
  alwaysRegister?: boolean;
}

/**
 * One reading as a 2.0.1 MeterValue: the import register (Wh), total active power (W), and voltage (phase to
 * neutral), current and power per phase where the meter measures them; undefined when nothing is left to report
 * (the schema wants at least one sampled value).
 */
export function meterValue201(reading: MeterReading, context: ReadingContext, options: MeterValueOptions = {}): MeterValue201 | undefined {
  const wanted = new Set(options.measurands ?? ALL_MEASURANDS);
  if (options.alwaysRegister) wanted.add("Energy.Active.Import.Register");
  const sampledValue: SampledValue201[] = [];
  if (wanted.has("Energy.Active.Import.Register")) {
    sampledValue.push({ value: options.registerWh ?? reading.energyWh, measurand: "Energy.Active.Import.Register", context, unitOfMeasure: { unit: "Wh" } });
  }
  if (wanted.has("Power.Active.Import")) {
    sampledValue.push({ value: reading.powerW, measurand: "Power.Active.Import", context, unitOfMeasure: { unit: "W" } });
  }
  reading.phases.slice(0, PHASES.length).forEach((phase, index) => {
    const line = PHASES[index] as (typeof PHASES)[number];
    const lineToNeutral = PHASE_VOLTAGES[index] as (typeof PHASE_VOLTAGES)[number];
    if (wanted.has("Voltage")) sampledValue.push({ value: phase.voltageV, measurand: "Voltage", phase: lineToNeutral, context, unitOfMeasure: { unit: "V" } });
    if (wanted.has("Current.Import")) sampledValue.push({ value: phase.currentA, measurand: "Current.Import", phase: line, context, unitOfMeasure: { unit: "A" } });
    if (wanted.has("Power.Active.Import")) sampledValue.push({ value: phase.powerW, measurand: "Power.Active.Import", phase: line, context, unitOfMeasure: { unit: "W" } });
  });
  return sampledValue.length === 0 ? undefined : { timestamp: isoTime(reading.atMs), sampledValue };
}

// ------------------------------------------------------------------ station messages

export interface StationIdentity {
  /** ChargingStationType.model: at most 20 characters. */
  model: string;
  /** At most 50 characters. */
  vendorName: string;
  /** At most 50 characters. */
  firmwareVersion?: string;
}

export function bootNotification201(station: StationIdentity, reason: BootReason201 = "PowerUp"): BootNotificationRequest201 {
  return {
    reason,
    chargingStation: {
      model: station.model.slice(0, 20),
      vendorName: station.vendorName.slice(0, 50),
      ...(station.firmwareVersion === undefined ? {} : { firmwareVersion: station.firmwareVersion.slice(0, 50) }),
    },
  };
}

/** 2.0.1 has no status for the whole station (1.6 connector 0): such intents have no StatusNotification. */
export function statusNotification201(intent: Extract<OcppIntent, { type: "status" }>): StatusNotificationRequest201 | undefined {
  if (intent.connectorId < 1) return undefined;
  return {
    timestamp: isoTime(intent.atMs),
    connectorStatus: connectorStatus201(intent.status),
    evseId: intent.connectorId,
    connectorId: 1,
  };
}

/** Meter values outside a transaction (idle, clock-aligned or triggered); inside one they ride on TransactionEvent. */
export function meterValues201(
  intent: Extract<OcppIntent, { type: "meterValues" }>,
  measurands: readonly Measurand201[] = ALL_MEASURANDS,
): MeterValuesRequest201 | undefined {
  const value = meterValue201(intent.reading, intent.context, { measurands });
  return value === undefined ? undefined : { evseId: intent.connectorId, meterValue: [value] };
}

/**
 * A component/variable pair that reports a hardware problem (2.0.1 reports errors through the device model:
 * NotifyEvent on the standardized `Problem` variable, where 1.6 put an errorCode into StatusNotification).
 */
export function problemComponentOf(errorCode: ConnectorErrorCode): string | undefined {
  switch (errorCode) {
    case "NoError":
      return undefined;
    case "PowerMeterFailure":
      return "FiscalMetering";
    case "PowerSwitchFailure":
      return "PowerContactor";
    case "InternalError":
    case "OtherError":
      return "ChargingStation";
  }
}

export interface ProblemReport {
  eventId: number;
  seqNo: number;
  atMs: number;
  connectorId: number;
  errorCode: ConnectorErrorCode;
  /** The component whose problem this report raises (when `cleared` is false) or clears. */
  component: string;
  cleared: boolean;
  info?: string;
  transactionId?: string;
}

export function problemNotification201(report: ProblemReport): NotifyEventRequest201 {
  const evseScoped = report.component !== "ChargingStation";
  return {
    generatedAt: isoTime(report.atMs),
    seqNo: report.seqNo,
    eventData: [
      {
        eventId: report.eventId,
        timestamp: isoTime(report.atMs),
        trigger: "Delta",
        actualValue: report.cleared ? "false" : "true",
        ...(report.errorCode === "NoError" ? {} : { techCode: report.errorCode }),
        ...(report.info === undefined ? {} : { techInfo: report.info.slice(0, 500) }),
        cleared: report.cleared,
        ...(report.transactionId === undefined ? {} : { transactionId: report.transactionId }),
        eventNotificationType: "HardWiredNotification",
        component: { name: report.component, ...(evseScoped ? { evse: { id: report.connectorId } } : {}) },
        variable: { name: "Problem" },
      },
    ],
  };
}

// ------------------------------------------------------------------ transaction events

/** What the adapter knows about a transaction besides the intent: its sequence and how it was started. */
export interface TransactionContext {
  seqNo: number;
  /** The measurands the CSMS asked for (TxUpdatedMeasurands / TxEndedMeasurands); all by default. */
  measurands?: readonly Measurand201[];
  /** Set when the CSMS's RequestStartTransaction was accepted for this session. */
  remoteStart?: { remoteStartId: number; idToken: IdToken201 };
  /** The event is delivered after an offline period (sent from the queue, not live). */
  offline?: boolean;
}

function offlineFlag(context: TransactionContext): { offline?: true } {
  return context.offline ? { offline: true } : {};
}

export function transactionStarted201(
  intent: Extract<OcppIntent, { type: "transactionStarted" }>,
  context: TransactionContext,
): TransactionEventRequest201 {
  const transactionId = transactionIdOf(intent.sessionId);
  const remote = context.remoteStart;
  return {
    eventType: "Started",
    timestamp: isoTime(intent.atMs),
    // The deposit, confirmed and authorized on chain, is the authorization; a remote start only announced it.
    triggerReason: remote ? "RemoteStart" : "Authorized",
    seqNo: context.seqNo,
    ...offlineFlag(context),
    transactionInfo: {
      transactionId,
      chargingState: "Charging",
      ...(remote ? { remoteStartId: remote.remoteStartId } : {}),
    },
    evse: evseOf(intent.connectorId),
    idToken: remote ? remote.idToken : sessionIdToken(intent.sessionId),
    // Always everything, with the register equal to the settled meterStart.
    meterValue: [meterValue201(intent.reading, "Transaction.Begin", { registerWh: intent.meterStartWh }) as MeterValue201],
  };
}

/** Undefined when the CSMS configured no measurands to sample: there is nothing to send. */
export function transactionMeterValues201(
  intent: Extract<OcppIntent, { type: "meterValues" }> & { sessionId: bigint },
  context: TransactionContext & { chargingState?: ChargingState201 },
): TransactionEventRequest201 | undefined {
  const value = meterValue201(intent.reading, intent.context, context.measurands === undefined ? {} : { measurands: context.measurands });
  if (value === undefined) return undefined;
  return {
    eventType: "Updated",
    timestamp: isoTime(intent.reading.atMs),
    triggerReason: triggerReasonOfReading(intent.context),
    seqNo: context.seqNo,
    ...offlineFlag(context),
    transactionInfo: {
      transactionId: transactionIdOf(intent.sessionId),
      ...(context.chargingState === undefined ? {} : { chargingState: context.chargingState }),
    },
    meterValue: [value],
  };
}

/** The charging state changed within a transaction (EV paused, resumed, full): no meter value required. */
export function chargingStateChanged201(
  sessionId: bigint,
  chargingState: ChargingState201,
  atMs: number,
  context: TransactionContext,
): TransactionEventRequest201 {
  return {
    eventType: "Updated",
    timestamp: isoTime(atMs),
    triggerReason: "ChargingStateChanged",
    seqNo: context.seqNo,
    ...offlineFlag(context),
    transactionInfo: { transactionId: transactionIdOf(sessionId), chargingState },
  };
}

export function transactionEnded201(
  intent: Extract<OcppIntent, { type: "transactionStopped" }>,
  context: TransactionContext & { resetRequested?: boolean },
): TransactionEventRequest201 {
  // A stop this station made to honour a CSMS Reset is reported as the reset, whatever the core called it.
  const reason: TransactionStopReason = context.resetRequested ? "HardReset" : intent.reason;
  return {
    eventType: "Ended",
    timestamp: isoTime(intent.atMs),
    triggerReason: triggerReasonOfStop(reason),
    seqNo: context.seqNo,
    ...offlineFlag(context),
    transactionInfo: {
      transactionId: transactionIdOf(intent.sessionId),
      chargingState: reason === "EVDisconnected" ? "Idle" : "EVConnected",
      stoppedReason: stoppedReason201(reason),
    },
    evse: evseOf(intent.connectorId),
    // The register is always there: Ended − Started is the energy settled on chain.
    meterValue: [
      meterValue201(intent.reading, "Transaction.End", {
        registerWh: intent.meterStopWh,
        alwaysRegister: true,
        ...(context.measurands === undefined ? {} : { measurands: context.measurands }),
      }) as MeterValue201,
    ],
  };
}

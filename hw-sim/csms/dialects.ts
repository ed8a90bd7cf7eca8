/**
 * The two OCPP versions the CSMS simulator speaks, as data: how it answers each call a charge point makes, and how
 * each operator action is spelled. Payloads follow the official JSON schemas ocpp-rpc validates in strict mode.
 */
import type { OcppProtocol } from "./conversation.ts";

export type RegistrationStatus = "Accepted" | "Pending" | "Rejected";
export type ResetKind = "Soft" | "Hard";
export type Availability = "Operative" | "Inoperative";

/** Answer of the CSMS to a DataTransfer from a pile. */
export interface DataTransferAnswer {
  status: "Accepted" | "Rejected" | "UnknownMessageId" | "UnknownVendorId";
  data?: string;
}

export interface DataTransferRequest {
  vendorId: string;
  messageId?: string;
  data?: string;
}

/** What the answers depend on: the CSMS's settings and its transaction counter, for the charge point at hand. */
export interface AnswerContext {
  identity: string;
  nowIso(): string;
  boot(): { status: RegistrationStatus; intervalS: number };
  nextTransactionId(): number;
  dataTransfer(identity: string, request: DataTransferRequest): DataTransferAnswer;
}

type Params = Record<string, unknown>;
type Answer = (context: AnswerContext, params: Params) => Params;

export interface OperatorCall {
  action: string;
  params: Params;
}

export interface Dialect {
  /** The calls a charge point may make that this CSMS answers; others get the spec's NotImplemented. */
  answers: Readonly<Record<string, Answer>>;
  remoteStart(idTag: string, connectorId: number | undefined, remoteStartId: number): OperatorCall;
  remoteStop(transactionId: number | string): OperatorCall;
  changeConfiguration(key: string, value: string): OperatorCall;
  getConfiguration(keys: readonly string[]): OperatorCall;
  trigger(message: string, connectorId: number | undefined): OperatorCall;
  reset(kind: ResetKind): OperatorCall;
  changeAvailability(availability: Availability, connectorId: number): OperatorCall;
  dataTransfer(request: DataTransferRequest): OperatorCall;
}

const accepted = { status: "Accepted" } as const;

function dataTransferRequest(params: Params): DataTransferRequest {
  return {
    vendorId: String(params.vendorId),
    ...(typeof params.messageId === "string" ? { messageId: params.messageId } : {}),
    ...(typeof params.data === "string" ? { data: params.data } : {}),
  };
}

const TRIGGERS_16 = [
  "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat", "MeterValues",
  "StatusNotification",
] as const;

const TRIGGERS_201 = [
  "BootNotification", "LogStatusNotification", "FirmwareStatusNotification", "Heartbeat", "MeterValues",
  "SignChargingStationCertificate", "SignV2GCertificate", "StatusNotification", "TransactionEvent",
  "SignCombinedCertificate", "PublishFirmwareStatusNotification",
] as const;

function checkTrigger(message: string, allowed: readonly string[], protocol: OcppProtocol): void {
  if (!allowed.includes(message)) {
    throw new RangeError(`trigger: ${protocol} cannot trigger "${message}"; expected one of ${allowed.join(", ")}`);
  }
}

const ocpp16: Dialect = {
  answers: {
    BootNotification: (context) => {
      const { status, intervalS } = context.boot();
      return { status, currentTime: context.nowIso(), interval: intervalS };
    },
    Heartbeat: (context) => ({ currentTime: context.nowIso() }),
    StatusNotification: () => ({}),
    Authorize: () => ({ idTagInfo: accepted }),
    StartTransaction: (context) => ({ idTagInfo: accepted, transactionId: context.nextTransactionId() }),
    MeterValues: () => ({}),
    // idTagInfo only answers an idTag the pile sent (1.6 §6.52).
    StopTransaction: (_context, params) => (typeof params.idTag === "string" ? { idTagInfo: accepted } : {}),
    DataTransfer: (context, params) => ({ ...context.dataTransfer(context.identity, dataTransferRequest(params)) }),
    // Notifications a TriggerMessage can ask for; a CSMS only acknowledges them.
    DiagnosticsStatusNotification: () => ({}),
    FirmwareStatusNotification: () => ({}),
  },
  remoteStart: (idTag, connectorId) => ({
    action: "RemoteStartTransaction",
    params: { idTag, ...(connectorId !== undefined ? { connectorId } : {}) },
  }),
  remoteStop(transactionId) {
    if (typeof transactionId !== "number" || !Number.isSafeInteger(transactionId)) {
      throw new RangeError(`remoteStop: ocpp1.6 transaction ids are integers, got ${JSON.stringify(transactionId)}`);
    }
    return { action: "RemoteStopTransaction", params: { transactionId } };
  },
  changeConfiguration: (key, value) => ({ action: "ChangeConfiguration", params: { key, value } }),
  getConfiguration: (keys) => ({ action: "GetConfiguration", params: keys.length > 0 ? { key: [...keys] } : {} }),
  trigger(message, connectorId) {
    checkTrigger(message, TRIGGERS_16, "ocpp1.6");
    return { action: "TriggerMessage", params: { requestedMessage: message, ...(connectorId !== undefined ? { connectorId } : {}) } };
  },
  reset: (kind) => ({ action: "Reset", params: { type: kind } }),
  changeAvailability: (availability, connectorId) => ({
    action: "ChangeAvailability",
    params: { connectorId, type: availability },
  }),
  dataTransfer: (request) => ({ action: "DataTransfer", params: { ...request } }),
};

/**
 * 1.6 configuration keys an installer already knows, as the 2.0.1 component and variable that replaced them
 * (OCPP 2.0.1 part 2, appendix 2 "Standardized components"), so one script can configure piles of both versions.
 */
const VARIABLES_201: Readonly<Record<string, { component: string; variable: string; instance?: string }>> = {
  HeartbeatInterval: { component: "OCPPCommCtrlr", variable: "HeartbeatInterval" },
  MeterValueSampleInterval: { component: "SampledDataCtrlr", variable: "TxUpdatedInterval" },
  ClockAlignedDataInterval: { component: "AlignedDataCtrlr", variable: "Interval" },
  TransactionMessageAttempts: { component: "OCPPCommCtrlr", variable: "MessageAttempts", instance: "TransactionEvent" },
  TransactionMessageRetryInterval: { component: "OCPPCommCtrlr", variable: "MessageAttemptInterval", instance: "TransactionEvent" },
  WebSocketPingInterval: { component: "OCPPCommCtrlr", variable: "WebSocketPingInterval" },
};

/** "Component.Variable" (or a 1.6 key from VARIABLES_201) as 2.0.1 ComponentType and VariableType. */
export function variableOf(key: string): { component: { name: string }; variable: { name: string; instance?: string } } {
  const known = VARIABLES_201[key];
  if (known) {
    return {
      component: { name: known.component },
      variable: { name: known.variable, ...(known.instance !== undefined ? { instance: known.instance } : {}) },
    };
  }
  const dot = key.indexOf(".");
  if (dot <= 0 || dot === key.length - 1) {
    throw new RangeError(
      `configuration key "${key}": ocpp2.0.1 needs "Component.Variable" (e.g. "OCPPCommCtrlr.HeartbeatInterval") ` +
        `or one of ${Object.keys(VARIABLES_201).join(", ")}`,
    );
  }
  return { component: { name: key.slice(0, dot) }, variable: { name: key.slice(dot + 1) } };
}

const ocpp201: Dialect = {
  answers: {
    BootNotification: (context) => {
      const { status, intervalS } = context.boot();
      return { currentTime: context.nowIso(), interval: intervalS, status };
    },
    Heartbeat: (context) => ({ currentTime: context.nowIso() }),
    StatusNotification: () => ({}),
    Authorize: () => ({ idTokenInfo: accepted }),
    // 2.0.1 E01: the station assigns transactionId; idTokenInfo answers an idToken the station sent.
    TransactionEvent: (_context, params) => (params.idToken !== undefined ? { idTokenInfo: accepted } : {}),
    MeterValues: () => ({}),
    NotifyEvent: () => ({}),
    DataTransfer: (context, params) => ({ ...context.dataTransfer(context.identity, dataTransferRequest(params)) }),
    // Notifications a TriggerMessage or GetBaseReport can ask for; a CSMS only acknowledges them.
    FirmwareStatusNotification: () => ({}),
    LogStatusNotification: () => ({}),
    NotifyReport: () => ({}),
    SecurityEventNotification: () => ({}),
  },
  remoteStart: (idTag, connectorId, remoteStartId) => ({
    action: "RequestStartTransaction",
    params: {
      idToken: { idToken: idTag, type: "Central" },
      remoteStartId,
      ...(connectorId !== undefined ? { evseId: connectorId } : {}),
    },
  }),
  remoteStop: (transactionId) => ({ action: "RequestStopTransaction", params: { transactionId: String(transactionId) } }),
  changeConfiguration: (key, value) => ({
    action: "SetVariables",
    params: { setVariableData: [{ attributeValue: value, ...variableOf(key) }] },
  }),
  getConfiguration(keys) {
    if (keys.length === 0) {
      throw new RangeError("getConfiguration: ocpp2.0.1 GetVariables needs at least one key (GetBaseReport lists all)");
    }
    return { action: "GetVariables", params: { getVariableData: keys.map(variableOf) } };
  },
  trigger(message, connectorId) {
    checkTrigger(message, TRIGGERS_201, "ocpp2.0.1");
    return {
      action: "TriggerMessage",
      params: { requestedMessage: message, ...(connectorId !== undefined && connectorId > 0 ? { evse: { id: connectorId } } : {}) },
    };
  },
  // 2.0.1 B11/B12: OnIdle waits for transactions to end (1.6 Soft), Immediate does not (1.6 Hard).
  reset: (kind) => ({ action: "Reset", params: { type: kind === "Soft" ? "OnIdle" : "Immediate" } }),
  changeAvailability: (availability, connectorId) => ({
    action: "ChangeAvailability",
    params: { operationalStatus: availability, ...(connectorId > 0 ? { evse: { id: connectorId } } : {}) },
  }),
  dataTransfer: (request) => ({ action: "DataTransfer", params: { ...request } }),
};

export const dialects: Readonly<Record<OcppProtocol, Dialect>> = { "ocpp1.6": ocpp16, "ocpp2.0.1": ocpp201 };

/** Secrets a CSMS may push to a pile (1.6 AuthorizationKey, 2.0.1 BasicAuthPassword), hidden in log lines only. */
export function redactForLog(action: string, payload: unknown): unknown {
  if (typeof payload !== "object" || payload === null) return payload;
  const params = payload as Params;
  if (action === "ChangeConfiguration" && params.key === "AuthorizationKey") return { ...params, value: "[redacted]" };
  if (action === "SetVariables" && Array.isArray(params.setVariableData)) {
    return {
      ...params,
      setVariableData: params.setVariableData.map((item: unknown) =>
        (item as { variable?: { name?: unknown } }).variable?.name === "BasicAuthPassword"
          ? { ...(item as Params), attributeValue: "[redacted]" }
          : item,
      ),
    };
  }
  return payload;
}

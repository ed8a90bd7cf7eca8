/**
 * The part of the OCPP 2.0.1 device model this pile exposes to GetVariables/SetVariables. The writable variables
 * are the settings 1.6 calls configuration keys (HeartbeatInterval, MeterValueSampleInterval, …); they live in the
 * same store under their 1.6 names, so switching `ocpp.version` keeps what the CSMS configured. The read-only ones
 * describe fixed behaviour (what is sampled, when a transaction starts and stops) so a CSMS can discover it.
 * Pure: the store is passed in.
 */
import { SUPPORTED_MEASURANDS } from "./v16-configuration.ts";

export type AttributeType201 = "Actual" | "Target" | "MinSet" | "MaxSet";

export interface Component201 {
  name: string;
  instance?: string;
  evse?: { id: number; connectorId?: number };
}

export interface Variable201 {
  name: string;
  instance?: string;
}

export interface GetVariableData201 {
  attributeType?: AttributeType201;
  component: Component201;
  variable: Variable201;
}

export interface SetVariableData201 extends GetVariableData201 {
  attributeValue: string;
}

export type GetVariableStatus201 = "Accepted" | "Rejected" | "UnknownComponent" | "UnknownVariable" | "NotSupportedAttributeType";
export type SetVariableStatus201 = GetVariableStatus201 | "RebootRequired";

export interface StatusInfo201 {
  /** At most 20 characters. */
  reasonCode: string;
  additionalInfo?: string;
}

export interface GetVariableResult201 {
  attributeStatus: GetVariableStatus201;
  attributeStatusInfo?: StatusInfo201;
  attributeType?: AttributeType201;
  attributeValue?: string;
  component: Component201;
  variable: Variable201;
}

export interface SetVariableResult201 {
  attributeStatus: SetVariableStatus201;
  attributeStatusInfo?: StatusInfo201;
  attributeType?: AttributeType201;
  component: Component201;
  variable: Variable201;
}

/**
 * The settings store both versions share, by 1.6 configuration key name, values as strings (what both put on the
 * wire). agent/ocpp/v16-configuration.ts's `V16Configuration` is one: it knows every key's default, validates and
 * persists a change, and says whether it needs a reboot.
 */
export interface OcppSettingsStore {
  get(key: string): string | undefined;
  change(key: string, value: string): "Accepted" | "Rejected" | "RebootRequired" | "NotSupported";
}

/** Accepts or refuses a value; refusals say what was expected, for the CSMS operator (statusInfo.additionalInfo). */
type ValueCheck = (value: string) => string | undefined;

const wholeSeconds = (min: number): ValueCheck => (value) =>
  /^(0|[1-9][0-9]{0,8})$/.test(value) && Number(value) >= min ? undefined : `expected whole seconds >= ${min}, got "${value}"`;
const measurandList: ValueCheck = (value) => {
  const unknown = value.split(",").map((item) => item.trim()).filter((item) => item !== "" && !(SUPPORTED_MEASURANDS as readonly string[]).includes(item));
  return unknown.length === 0 ? undefined : `expected a comma-separated list of ${SUPPORTED_MEASURANDS.join(", ")}; not supported: ${unknown.join(", ")}`;
};
const wholeCount = (min: number): ValueCheck => (value) =>
  /^(0|[1-9][0-9]{0,8})$/.test(value) && Number(value) >= min ? undefined : `expected an integer >= ${min}, got "${value}"`;

interface WritableVariable {
  component: string;
  variable: string;
  instance?: string;
  /** The 1.6 configuration key that holds this value (its default lives with the store). */
  settingKey: string;
  check: ValueCheck;
}

interface ReadOnlyVariable {
  component: string;
  variable: string;
  instance?: string;
  value: (context: VariableContext) => string;
}

export interface VariableContext {
  chargePointId: string;
}

/** Everything this pile can measure, as TxStartedMeasurands reports it. */
export const SAMPLED_MEASURANDS = SUPPORTED_MEASURANDS.join(",");

export const WRITABLE_VARIABLES: readonly WritableVariable[] = Object.freeze([
  { component: "OCPPCommCtrlr", variable: "HeartbeatInterval", settingKey: "HeartbeatInterval", check: wholeSeconds(0) },
  { component: "SampledDataCtrlr", variable: "TxUpdatedInterval", settingKey: "MeterValueSampleInterval", check: wholeSeconds(0) },
  { component: "AlignedDataCtrlr", variable: "Interval", settingKey: "ClockAlignedDataInterval", check: wholeSeconds(0) },
  { component: "OCPPCommCtrlr", variable: "MessageAttempts", instance: "TransactionEvent", settingKey: "TransactionMessageAttempts", check: wholeCount(1) },
  { component: "OCPPCommCtrlr", variable: "MessageAttemptInterval", instance: "TransactionEvent", settingKey: "TransactionMessageRetryInterval", check: wholeSeconds(0) },
  { component: "OCPPCommCtrlr", variable: "WebSocketPingInterval", settingKey: "WebSocketPingInterval", check: wholeSeconds(0) },
  { component: "SampledDataCtrlr", variable: "TxUpdatedMeasurands", settingKey: "MeterValuesSampledData", check: measurandList },
  { component: "SampledDataCtrlr", variable: "TxEndedMeasurands", settingKey: "StopTxnSampledData", check: measurandList },
  { component: "AlignedDataCtrlr", variable: "Measurands", settingKey: "MeterValuesAlignedData", check: measurandList },
]);

export const READ_ONLY_VARIABLES: readonly ReadOnlyVariable[] = Object.freeze([
  { component: "SecurityCtrlr", variable: "Identity", value: (context) => context.chargePointId },
  // Started always reports everything the meter measures: its register is the settled meterStart.
  { component: "SampledDataCtrlr", variable: "TxStartedMeasurands", value: () => SAMPLED_MEASURANDS },
  // The transaction is the on-chain session's delivery: it starts when the contactor closes and ends when it opened.
  { component: "TxCtrlr", variable: "TxStartPoint", value: () => "PowerPathClosed" },
  { component: "TxCtrlr", variable: "TxStopPoint", value: () => "PowerPathClosed" },
  // A remote start is only accepted for a confirmed deposit; no Authorize request is sent for it.
  { component: "AuthCtrlr", variable: "AuthorizeRemoteStart", value: () => "false" },
]);

type Lookup =
  | { kind: "writable"; entry: WritableVariable }
  | { kind: "readOnly"; entry: ReadOnlyVariable }
  | { kind: "unknownComponent" }
  | { kind: "unknownVariable" };

const sameInstance = (wanted: string | undefined, given: string | undefined): boolean => (wanted ?? "") === (given ?? "");

function lookup(component: Component201, variable: Variable201): Lookup {
  const all = [...WRITABLE_VARIABLES, ...READ_ONLY_VARIABLES];
  // The controllers are station-wide: no EVSE has its own copy, and none has instances of its own.
  const componentKnown =
    component.evse === undefined && component.instance === undefined && all.some((entry) => entry.component === component.name);
  if (!componentKnown) return { kind: "unknownComponent" };
  const matches = (entry: WritableVariable | ReadOnlyVariable): boolean =>
    entry.component === component.name && entry.variable === variable.name && sameInstance(entry.instance, variable.instance);
  const writable = WRITABLE_VARIABLES.find(matches);
  if (writable) return { kind: "writable", entry: writable };
  const readOnly = READ_ONLY_VARIABLES.find(matches);
  if (readOnly) return { kind: "readOnly", entry: readOnly };
  return { kind: "unknownVariable" };
}

function echo(data: GetVariableData201): Pick<GetVariableResult201, "component" | "variable" | "attributeType"> {
  return {
    component: data.component,
    variable: data.variable,
    ...(data.attributeType === undefined ? {} : { attributeType: data.attributeType }),
  };
}

export function getVariable(data: GetVariableData201, store: OcppSettingsStore, context: VariableContext): GetVariableResult201 {
  const found = lookup(data.component, data.variable);
  if (found.kind === "unknownComponent") return { attributeStatus: "UnknownComponent", ...echo(data) };
  if (found.kind === "unknownVariable") return { attributeStatus: "UnknownVariable", ...echo(data) };
  if ((data.attributeType ?? "Actual") !== "Actual") return { attributeStatus: "NotSupportedAttributeType", ...echo(data) };
  const attributeValue = found.kind === "writable" ? store.get(found.entry.settingKey) : found.entry.value(context);
  // A writable variable the store does not hold is not supported by this build, whatever the table says.
  if (attributeValue === undefined) return { attributeStatus: "UnknownVariable", ...echo(data) };
  return { attributeStatus: "Accepted", attributeValue, ...echo(data) };
}

export interface SetVariableOutcome {
  result: SetVariableResult201;
  /** The 1.6 key and new value when the store was written (the adapter applies it: heartbeat timer, sampling). */
  changed?: { settingKey: string; value: string };
}

export function setVariable(data: SetVariableData201, store: OcppSettingsStore): SetVariableOutcome {
  const found = lookup(data.component, data.variable);
  if (found.kind === "unknownComponent") return { result: { attributeStatus: "UnknownComponent", ...echo(data) } };
  if (found.kind === "unknownVariable") return { result: { attributeStatus: "UnknownVariable", ...echo(data) } };
  if ((data.attributeType ?? "Actual") !== "Actual") return { result: { attributeStatus: "NotSupportedAttributeType", ...echo(data) } };
  if (found.kind === "readOnly") {
    return {
      result: {
        attributeStatus: "Rejected",
        attributeStatusInfo: { reasonCode: "ReadOnly", additionalInfo: `${data.component.name}.${data.variable.name} is read-only on this station` },
        ...echo(data),
      },
    };
  }
  const problem = found.entry.check(data.attributeValue);
  if (problem !== undefined) {
    return {
      result: {
        attributeStatus: "Rejected",
        attributeStatusInfo: { reasonCode: "InvalidValue", additionalInfo: `${data.component.name}.${data.variable.name}: ${problem}`.slice(0, 512) },
        ...echo(data),
      },
    };
  }
  const stored = store.change(found.entry.settingKey, data.attributeValue);
  if (stored === "NotSupported") return { result: { attributeStatus: "UnknownVariable", ...echo(data) } };
  if (stored === "Rejected") {
    return { result: { attributeStatus: "Rejected", attributeStatusInfo: { reasonCode: "InvalidValue" }, ...echo(data) } };
  }
  return {
    // RebootRequired: stored now, in effect after the next start (e.g. the WebSocket ping interval).
    result: { attributeStatus: stored, ...echo(data) },
    changed: { settingKey: found.entry.settingKey, value: data.attributeValue },
  };
}

/**
 * OCPP 1.6 Core configuration keys (OCPP 1.6 §9.1) this charge point supports, their validation, and their
 * persistence in the journal's settings (a ChangeConfiguration survives a reboot, as the spec requires).
 */
import type { Journal } from "../journal/journal.ts";

export type ChangeConfigurationStatus = "Accepted" | "Rejected" | "RebootRequired" | "NotSupported";

/** The measurands this pile can report (agent/ocpp/v16.ts builds the sampled values). */
export const SUPPORTED_MEASURANDS = ["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage"] as const;
export type Measurand = (typeof SUPPORTED_MEASURANDS)[number];

interface KeySpec {
  defaultValue: string;
  readonly: boolean;
  /** Checks a new value; undefined = fine, else why it is rejected. */
  check?: (value: string) => boolean;
  /** The change takes effect only after a reboot. */
  rebootRequired?: boolean;
}

const nonNegativeInteger = (value: string): boolean => /^[0-9]{1,9}$/.test(value);
const positiveInteger = (value: string): boolean => /^[0-9]{1,9}$/.test(value) && Number(value) > 0;
const booleanText = (value: string): boolean => value === "true" || value === "false";
const measurandList = (value: string): boolean =>
  value === "" || value.split(",").every((item) => (SUPPORTED_MEASURANDS as readonly string[]).includes(item.trim()));

export const V16_KEYS: Record<string, KeySpec> = {
  HeartbeatInterval: { defaultValue: "300", readonly: false, check: nonNegativeInteger },
  MeterValueSampleInterval: { defaultValue: "60", readonly: false, check: nonNegativeInteger },
  ClockAlignedDataInterval: { defaultValue: "0", readonly: false, check: nonNegativeInteger },
  MeterValuesSampledData: { defaultValue: "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage", readonly: false, check: measurandList },
  MeterValuesAlignedData: { defaultValue: "Energy.Active.Import.Register", readonly: false, check: measurandList },
  StopTxnSampledData: { defaultValue: "Energy.Active.Import.Register", readonly: false, check: measurandList },
  StopTxnAlignedData: { defaultValue: "", readonly: false, check: measurandList },
  TransactionMessageAttempts: { defaultValue: "3", readonly: false, check: positiveInteger },
  TransactionMessageRetryInterval: { defaultValue: "60", readonly: false, check: nonNegativeInteger },
  ConnectionTimeOut: { defaultValue: "60", readonly: false, check: positiveInteger },
  NumberOfConnectors: { defaultValue: "1", readonly: true },
  SupportedFeatureProfiles: { defaultValue: "Core,RemoteTrigger", readonly: true },
  // The deposit, not the CSMS's idTag list, authorizes energy (DESIGN §3): a RemoteStart is always checked.
  AuthorizeRemoteTxRequests: { defaultValue: "true", readonly: true },
  LocalAuthorizeOffline: { defaultValue: "true", readonly: false, check: booleanText },
  LocalPreAuthorize: { defaultValue: "true", readonly: false, check: booleanText },
  ResetRetries: { defaultValue: "1", readonly: false, check: nonNegativeInteger },
  // The core ends the session when the EV leaves; it cannot be configured to keep it open.
  StopTransactionOnEVSideDisconnect: { defaultValue: "true", readonly: true },
  StopTransactionOnInvalidId: { defaultValue: "false", readonly: true },
  UnlockConnectorOnEVSideDisconnect: { defaultValue: "true", readonly: false, check: booleanText },
  WebSocketPingInterval: { defaultValue: "60", readonly: false, check: nonNegativeInteger, rebootRequired: true },
  GetConfigurationMaxKeys: { defaultValue: "50", readonly: true },
};

const SETTINGS_KEY = "ocpp.v16.configuration";

export interface ConfigurationEntry {
  key: string;
  readonly: boolean;
  value: string;
}

export interface V16Configuration {
  get(key: string): string | undefined;
  getInteger(key: string): number;
  measurands(key: "MeterValuesSampledData" | "MeterValuesAlignedData" | "StopTxnSampledData" | "StopTxnAlignedData"): Measurand[];
  /** All known keys, or the requested ones split into known entries and unknown names. */
  list(keys?: readonly string[]): { entries: ConfigurationEntry[]; unknown: string[] };
  change(key: string, value: string): ChangeConfigurationStatus;
}

export function openV16Configuration(journal: Journal): V16Configuration {
  const stored = journal.getValue(SETTINGS_KEY);
  const values: Record<string, string> = {};
  for (const [key, spec] of Object.entries(V16_KEYS)) values[key] = spec.defaultValue;
  if (stored && typeof stored === "object") {
    for (const [key, value] of Object.entries(stored as Record<string, unknown>)) {
      const spec = V16_KEYS[key];
      if (spec && !spec.readonly && typeof value === "string") values[key] = value;
    }
  }

  function get(key: string): string | undefined {
    return values[key];
  }

  return {
    get,
    getInteger(key) {
      return Number(values[key] ?? V16_KEYS[key]?.defaultValue ?? "0");
    },
    measurands(key) {
      const text = values[key] ?? "";
      return text
        .split(",")
        .map((item) => item.trim())
        .filter((item): item is Measurand => (SUPPORTED_MEASURANDS as readonly string[]).includes(item));
    },
    list(keys) {
      const wanted = keys === undefined || keys.length === 0 ? Object.keys(V16_KEYS) : keys;
      const entries: ConfigurationEntry[] = [];
      const unknown: string[] = [];
      for (const key of wanted) {
        const spec = V16_KEYS[key];
        if (spec) entries.push({ key, readonly: spec.readonly, value: values[key] ?? spec.defaultValue });
        else unknown.push(key);
      }
      return { entries, unknown };
    },
    change(key, value) {
      const spec = V16_KEYS[key];
      if (!spec) return "NotSupported";
      if (spec.readonly) return "Rejected";
      if (spec.check && !spec.check(value)) return "Rejected";
      values[key] = value;
      const persisted: Record<string, string> = {};
      for (const [name, entry] of Object.entries(V16_KEYS)) {
        if (!entry.readonly && values[name] !== entry.defaultValue) persisted[name] = values[name] as string;
      }
      journal.setValue(SETTINGS_KEY, persisted);
      return spec.rebootRequired ? "RebootRequired" : "Accepted";
    },
  };
}

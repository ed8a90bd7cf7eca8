/**
 * GetVariables/SetVariables over the pile's small 2.0.1 device model: the 1.6 configuration keys under their
 * 2.0.1 component/variable names, in the same store, and every result valid against the official schemas.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createValidator } from "ocpp-rpc";
import { afterEach, describe, expect, it } from "vitest";
import { openJournal, type Journal } from "../../../../agent/journal/journal.ts";
import { openV16Configuration, type V16Configuration } from "../../../../agent/ocpp/v16-configuration.ts";
import {
  getVariable,
  SAMPLED_MEASURANDS,
  setVariable,
  type GetVariableData201,
  type OcppSettingsStore,
} from "../../../../agent/ocpp/v201-variables.ts";

const schemas: unknown = createRequire(import.meta.url)("ocpp-rpc/lib/schemas/ocpp2_0_1.json");
const validator = createValidator("ocpp2.0.1", schemas as object[]);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** The 1.6 configuration on a real journal: the store both versions share. */
function sharedStore(initial: Record<string, string> = {}): { store: OcppSettingsStore; configuration: V16Configuration; journal: Journal; reopen(): V16Configuration } {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-v201-variables-"));
  const journal = openJournal(join(dir, "journal.sqlite"));
  cleanups.push(() => {
    journal.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const configuration = openV16Configuration(journal);
  for (const [key, value] of Object.entries(initial)) expect(configuration.change(key, value)).toBe("Accepted");
  return { store: configuration, configuration, journal, reopen: () => openV16Configuration(journal) };
}

const context = { chargePointId: "cp-001" };
const heartbeat: GetVariableData201 = { component: { name: "OCPPCommCtrlr" }, variable: { name: "HeartbeatInterval" } };
const attempts: GetVariableData201 = { component: { name: "OCPPCommCtrlr" }, variable: { name: "MessageAttempts", instance: "TransactionEvent" } };

describe("GetVariables", () => {
  it("reads each 1.6 key through its 2.0.1 name, the default until the CSMS changed it", () => {
    const { store } = sharedStore({ MeterValueSampleInterval: "15" });
    const cases: [GetVariableData201, string][] = [
      [heartbeat, "300"],
      [{ component: { name: "SampledDataCtrlr" }, variable: { name: "TxUpdatedInterval" } }, "15"],
      [{ component: { name: "AlignedDataCtrlr" }, variable: { name: "Interval" } }, "0"],
      [attempts, "3"],
      [{ component: { name: "OCPPCommCtrlr" }, variable: { name: "MessageAttemptInterval", instance: "TransactionEvent" } }, "60"],
      [{ component: { name: "OCPPCommCtrlr" }, variable: { name: "WebSocketPingInterval" } }, "60"],
      [{ component: { name: "SecurityCtrlr" }, variable: { name: "Identity" } }, "cp-001"],
      [{ component: { name: "SampledDataCtrlr" }, variable: { name: "TxUpdatedMeasurands" } }, SAMPLED_MEASURANDS],
      [{ component: { name: "TxCtrlr" }, variable: { name: "TxStartPoint" } }, "PowerPathClosed"],
    ];
    const results = cases.map(([data]) => getVariable(data, store, context));
    expect(results.map((result) => [result.attributeStatus, result.attributeValue])).toEqual(cases.map(([, value]) => ["Accepted", value]));
    expect(results[0]).toEqual({ attributeStatus: "Accepted", attributeValue: "300", component: { name: "OCPPCommCtrlr" }, variable: { name: "HeartbeatInterval" } });
    expect(() => validator.validate("urn:GetVariables.conf", { getVariableResult: results })).not.toThrow();
  });

  it("answers UnknownComponent, UnknownVariable and NotSupportedAttributeType as 2.0.1 B06 asks", () => {
    const { store } = sharedStore();
    const unknownComponent = getVariable({ component: { name: "DisplayCtrlr" }, variable: { name: "Enabled" } }, store, context);
    const evseScoped = getVariable({ component: { name: "OCPPCommCtrlr", evse: { id: 1 } }, variable: { name: "HeartbeatInterval" } }, store, context);
    const unknownVariable = getVariable({ component: { name: "OCPPCommCtrlr" }, variable: { name: "NetworkProfileConnectionAttempts" } }, store, context);
    const wrongInstance = getVariable({ component: { name: "OCPPCommCtrlr" }, variable: { name: "MessageAttempts" } }, store, context);
    const target = getVariable({ ...heartbeat, attributeType: "Target" }, store, context);
    expect(unknownComponent).toEqual({ attributeStatus: "UnknownComponent", component: { name: "DisplayCtrlr" }, variable: { name: "Enabled" } });
    expect(evseScoped.attributeStatus).toBe("UnknownComponent");
    expect(unknownVariable.attributeStatus).toBe("UnknownVariable");
    expect(wrongInstance.attributeStatus).toBe("UnknownVariable");
    expect(target).toEqual({ attributeStatus: "NotSupportedAttributeType", attributeType: "Target", ...heartbeat });
    expect(() =>
      validator.validate("urn:GetVariables.conf", { getVariableResult: [unknownComponent, evseScoped, unknownVariable, wrongInstance, target] }),
    ).not.toThrow();
  });
});

describe("SetVariables", () => {
  it("writes the value into the 1.6 store under its 1.6 key, persisted for the next start", () => {
    const { store, reopen } = sharedStore();
    const outcome = setVariable({ ...attempts, attributeValue: "7" }, store);
    expect(outcome).toEqual({
      result: { attributeStatus: "Accepted", ...attempts },
      changed: { settingKey: "TransactionMessageAttempts", value: "7" },
    });
    expect(getVariable(attempts, store, context).attributeValue).toBe("7");
    // What 1.6 GetConfiguration would show after a restart, from the same journal.
    expect(reopen().list(["TransactionMessageAttempts"]).entries).toEqual([{ key: "TransactionMessageAttempts", readonly: false, value: "7" }]);
    expect(() => validator.validate("urn:SetVariables.conf", { setVariableResult: [outcome.result] })).not.toThrow();
  });

  it("answers RebootRequired where the 1.6 key needs a restart to take effect", () => {
    const { store } = sharedStore();
    const outcome = setVariable({ component: { name: "OCPPCommCtrlr" }, variable: { name: "WebSocketPingInterval" }, attributeValue: "30" }, store);
    expect(outcome.result.attributeStatus).toBe("RebootRequired");
    expect(outcome.changed).toEqual({ settingKey: "WebSocketPingInterval", value: "30" });
    expect(store.get("WebSocketPingInterval")).toBe("30");
  });

  it("sets the measurands 1.6 calls MeterValuesSampledData, refusing ones this meter cannot report", () => {
    const { store } = sharedStore();
    const updated = { component: { name: "SampledDataCtrlr" }, variable: { name: "TxUpdatedMeasurands" } };
    expect(setVariable({ ...updated, attributeValue: "Energy.Active.Import.Register,Voltage" }, store).result.attributeStatus).toBe("Accepted");
    expect(store.get("MeterValuesSampledData")).toBe("Energy.Active.Import.Register,Voltage");
    const refused = setVariable({ ...updated, attributeValue: "SoC" }, store);
    expect(refused.result.attributeStatusInfo?.additionalInfo).toBe(
      "SampledDataCtrlr.TxUpdatedMeasurands: expected a comma-separated list of Energy.Active.Import.Register, Power.Active.Import, Current.Import, Voltage; not supported: SoC",
    );
    expect(store.get("MeterValuesSampledData")).toBe("Energy.Active.Import.Register,Voltage");
  });

  it("rejects read-only variables and bad values, saying why, and leaves the store alone", () => {
    const { store, journal } = sharedStore({ HeartbeatInterval: "300" });
    const before = journal.getValue("ocpp.v16.configuration");
    const readOnly = setVariable({ component: { name: "TxCtrlr" }, variable: { name: "TxStartPoint" }, attributeValue: "EVConnected" }, store);
    const notANumber = setVariable({ ...heartbeat, attributeValue: "5m" }, store);
    const negative = setVariable({ ...heartbeat, attributeValue: "-1" }, store);
    const zeroAttempts = setVariable({ ...attempts, attributeValue: "0" }, store);
    expect(readOnly.result).toEqual({
      attributeStatus: "Rejected",
      attributeStatusInfo: { reasonCode: "ReadOnly", additionalInfo: "TxCtrlr.TxStartPoint is read-only on this station" },
      component: { name: "TxCtrlr" },
      variable: { name: "TxStartPoint" },
    });
    expect(notANumber.result.attributeStatusInfo).toEqual({
      reasonCode: "InvalidValue",
      additionalInfo: 'OCPPCommCtrlr.HeartbeatInterval: expected whole seconds >= 0, got "5m"',
    });
    expect(negative.result.attributeStatus).toBe("Rejected");
    expect(zeroAttempts.result.attributeStatusInfo?.additionalInfo).toBe('OCPPCommCtrlr.MessageAttempts: expected an integer >= 1, got "0"');
    for (const outcome of [readOnly, notANumber, negative, zeroAttempts]) expect(outcome.changed).toBeUndefined();
    expect(journal.getValue("ocpp.v16.configuration")).toEqual(before);
    expect(store.get("HeartbeatInterval")).toBe("300");
    expect(() =>
      validator.validate("urn:SetVariables.conf", { setVariableResult: [readOnly.result, notANumber.result, negative.result, zeroAttempts.result] }),
    ).not.toThrow();
  });

  it("answers unknown names without touching the store", () => {
    const { store, journal } = sharedStore();
    expect(setVariable({ component: { name: "Nope" }, variable: { name: "X" }, attributeValue: "1" }, store).result.attributeStatus).toBe("UnknownComponent");
    expect(setVariable({ component: { name: "AlignedDataCtrlr" }, variable: { name: "TxEndedMeasurands" }, attributeValue: "1" }, store).result.attributeStatus).toBe("UnknownVariable");
    expect(setVariable({ ...heartbeat, attributeType: "MaxSet", attributeValue: "1" }, store).result.attributeStatus).toBe("NotSupportedAttributeType");
    expect(journal.getValue("ocpp.v16.configuration")).toBeUndefined();
  });
});

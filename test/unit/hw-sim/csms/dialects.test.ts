import { describe, expect, it } from "vitest";
import { dialects, redactForLog, variableOf, type AnswerContext } from "../../../../hw-sim/csms/dialects.ts";

function context(overrides: Partial<AnswerContext> = {}): AnswerContext {
  let transactionId = 7;
  return {
    identity: "cp-1",
    nowIso: () => "2026-01-15T08:30:00.000Z",
    boot: () => ({ status: "Pending", intervalS: 20 }),
    nextTransactionId: () => transactionId++,
    dataTransfer: () => ({ status: "Rejected" }),
    ...overrides,
  };
}

describe("CSMS answers", () => {
  it("1.6: boot from the settings, transaction ids from the counter, idTagInfo on stop only for an idTag", () => {
    const answers = dialects["ocpp1.6"].answers;
    const ctx = context();
    expect(answers.BootNotification?.(ctx, {})).toEqual({ status: "Pending", currentTime: "2026-01-15T08:30:00.000Z", interval: 20 });
    expect(answers.StartTransaction?.(ctx, {})).toEqual({ idTagInfo: { status: "Accepted" }, transactionId: 7 });
    expect(answers.StartTransaction?.(ctx, {})).toEqual({ idTagInfo: { status: "Accepted" }, transactionId: 8 });
    expect(answers.StopTransaction?.(ctx, { transactionId: 7 })).toEqual({});
    expect(answers.StopTransaction?.(ctx, { transactionId: 7, idTag: "t" })).toEqual({ idTagInfo: { status: "Accepted" } });
    expect(answers.DataTransfer?.(ctx, { vendorId: "v" })).toEqual({ status: "Rejected" });
  });

  it("2.0.1: TransactionEvent answers idTokenInfo only when the station sent an idToken", () => {
    const answers = dialects["ocpp2.0.1"].answers;
    expect(answers.TransactionEvent?.(context(), { eventType: "Updated" })).toEqual({});
    expect(answers.TransactionEvent?.(context(), { idToken: { idToken: "t", type: "Central" } })).toEqual({ idTokenInfo: { status: "Accepted" } });
    expect(answers.BootNotification?.(context(), {})).toEqual({ currentTime: "2026-01-15T08:30:00.000Z", interval: 20, status: "Pending" });
  });
});

describe("2.0.1 variables", () => {
  it("maps well-known 1.6 keys and Component.Variable", () => {
    expect(variableOf("HeartbeatInterval")).toEqual({ component: { name: "OCPPCommCtrlr" }, variable: { name: "HeartbeatInterval" } });
    expect(variableOf("TransactionMessageAttempts")).toEqual({
      component: { name: "OCPPCommCtrlr" },
      variable: { name: "MessageAttempts", instance: "TransactionEvent" },
    });
    expect(variableOf("SampledDataCtrlr.TxEndedMeasurands")).toEqual({
      component: { name: "SampledDataCtrlr" },
      variable: { name: "TxEndedMeasurands" },
    });
    expect(() => variableOf(".X")).toThrow('configuration key ".X": ocpp2.0.1 needs "Component.Variable"');
    expect(() => variableOf("Comp.")).toThrow('configuration key "Comp.": ocpp2.0.1 needs "Component.Variable"');
  });

  it("GetVariables needs a key", () => {
    expect(() => dialects["ocpp2.0.1"].getConfiguration([])).toThrow(
      "getConfiguration: ocpp2.0.1 GetVariables needs at least one key (GetBaseReport lists all)",
    );
    expect(dialects["ocpp1.6"].getConfiguration([])).toEqual({ action: "GetConfiguration", params: {} });
  });
});

describe("log redaction", () => {
  it("hides passwords a CSMS pushes to a pile, and nothing else", () => {
    expect(redactForLog("ChangeConfiguration", { key: "AuthorizationKey", value: "secret" })).toEqual({
      key: "AuthorizationKey",
      value: "[redacted]",
    });
    expect(redactForLog("ChangeConfiguration", { key: "HeartbeatInterval", value: "60" })).toEqual({ key: "HeartbeatInterval", value: "60" });
    const set = {
      setVariableData: [
        { attributeValue: "secret", component: { name: "SecurityCtrlr" }, variable: { name: "BasicAuthPassword" } },
        { attributeValue: "60", component: { name: "OCPPCommCtrlr" }, variable: { name: "HeartbeatInterval" } },
      ],
    };
    expect(redactForLog("SetVariables", set)).toEqual({
      setVariableData: [{ ...set.setVariableData[0], attributeValue: "[redacted]" }, set.setVariableData[1]],
    });
  });
});

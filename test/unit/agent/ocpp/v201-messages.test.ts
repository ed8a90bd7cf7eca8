/**
 * Every OCPP 2.0.1 payload the pile builds, as exact values, and each one checked against the official 2.0.1 JSON
 * schemas ocpp-rpc bundles: the same validator its strict mode runs on both ends of a real connection.
 */
import { createRequire } from "node:module";
import { createValidator } from "ocpp-rpc";
import { describe, expect, it } from "vitest";
import type { MeterReading, OcppIntent, TransactionStopReason } from "../../../../agent/ocpp/intents.ts";
import {
  bootNotification201,
  chargingStateChanged201,
  chargingStateOf,
  connectorStatus201,
  meterValue201,
  meterValues201,
  problemComponentOf,
  problemNotification201,
  sessionIdOf,
  statusNotification201,
  stoppedReason201,
  transactionEnded201,
  transactionIdOf,
  transactionMeterValues201,
  transactionStarted201,
  triggerReasonOfStop,
} from "../../../../agent/ocpp/v201-messages.ts";

const schemas: unknown = createRequire(import.meta.url)("ocpp-rpc/lib/schemas/ocpp2_0_1.json");
const validator = createValidator("ocpp2.0.1", schemas as object[]);

/** Throws ocpp-rpc's own RPC error (FormatViolation, …) when the payload breaks the 2.0.1 schema. */
function expectValid(action: string, kind: "req" | "conf", payload: unknown): void {
  expect(() => validator.validate(`urn:${action}.${kind}`, payload)).not.toThrow();
}

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const threePhase: MeterReading = {
  atMs: T0,
  energyWh: 123_456,
  powerW: 11_040,
  phases: [
    { voltageV: 230.1, currentA: 16, powerW: 3_680 },
    { voltageV: 229.8, currentA: 16, powerW: 3_680 },
    { voltageV: 230.4, currentA: 16, powerW: 3_680 },
  ],
};
const singlePhase: MeterReading = { atMs: T0 + 60_000, energyWh: 123_999, powerW: 0, phases: [] };

describe("identity and limits", () => {
  it("uses the on-chain session id in decimal as transactionId and reads it back", () => {
    expect(transactionIdOf(42n)).toBe("42");
    expect(sessionIdOf("42")).toBe(42n);
    expect(sessionIdOf("0x2a")).toBeUndefined();
    expect(sessionIdOf("042")).toBeUndefined();
    expect(sessionIdOf("")).toBeUndefined();
  });

  it("refuses a session id longer than the 36 characters a transactionId holds", () => {
    expect(transactionIdOf(10n ** 35n)).toHaveLength(36);
    expect(() => transactionIdOf(10n ** 36n)).toThrow(/37 digits; an OCPP 2.0.1 transactionId holds at most 36/);
  });
});

describe("BootNotification and StatusNotification", () => {
  it("builds the boot notification with reason PowerUp and the station identity", () => {
    const boot = bootNotification201({ model: "trustpile", vendorName: "trustpile", firmwareVersion: "0.1.0" });
    expect(boot).toEqual({ reason: "PowerUp", chargingStation: { model: "trustpile", vendorName: "trustpile", firmwareVersion: "0.1.0" } });
    expectValid("BootNotification", "req", boot);
  });

  it("cuts identity fields to the schema's lengths instead of having the CSMS reject the boot", () => {
    const boot = bootNotification201({ model: "m".repeat(30), vendorName: "v".repeat(60) }, "Triggered");
    expect(boot.chargingStation.model).toHaveLength(20);
    expect(boot.chargingStation.vendorName).toHaveLength(50);
    expect(boot.reason).toBe("Triggered");
    expectValid("BootNotification", "req", boot);
  });

  it("the schema check bites: a 1.6 status name is a violation on a strict 2.0.1 CSMS", () => {
    expect(() =>
      validator.validate("urn:StatusNotification.req", { timestamp: "2026-12-03T12:00:00.000Z", connectorStatus: "Charging", evseId: 1, connectorId: 1 }),
    ).toThrow(/must be equal to one of the allowed values/);
  });

  it("maps the 1.6 statuses onto 2.0.1's five: every in-use state is Occupied", () => {
    expect(connectorStatus201("Available")).toBe("Available");
    for (const status of ["Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"] as const) {
      expect(connectorStatus201(status)).toBe("Occupied");
    }
    expect(connectorStatus201("Faulted")).toBe("Faulted");
    expect(connectorStatus201("Unavailable")).toBe("Unavailable");
    expect(chargingStateOf("SuspendedEV")).toBe("SuspendedEV");
    expect(chargingStateOf("Preparing")).toBe("EVConnected");
    expect(chargingStateOf("Faulted")).toBeUndefined();
  });

  it("sends connector 1 as EVSE 1 connector 1, and nothing for the whole-station connector 0", () => {
    const status = statusNotification201({ type: "status", connectorId: 1, status: "Charging", errorCode: "NoError", atMs: T0 });
    expect(status).toEqual({ timestamp: "2026-12-03T12:00:00.000Z", connectorStatus: "Occupied", evseId: 1, connectorId: 1 });
    expectValid("StatusNotification", "req", status);
    expect(statusNotification201({ type: "status", connectorId: 0, status: "Available", errorCode: "NoError", atMs: T0 })).toBeUndefined();
  });
});

describe("meter values", () => {
  it("reports the register in Wh, total power, and voltage, current and power per phase", () => {
    const value = meterValue201(threePhase, "Sample.Periodic");
    expect(value?.timestamp).toBe("2026-12-03T12:00:00.000Z");
    expect(value?.sampledValue).toEqual([
      { value: 123_456, measurand: "Energy.Active.Import.Register", context: "Sample.Periodic", unitOfMeasure: { unit: "Wh" } },
      { value: 11_040, measurand: "Power.Active.Import", context: "Sample.Periodic", unitOfMeasure: { unit: "W" } },
      { value: 230.1, measurand: "Voltage", phase: "L1-N", context: "Sample.Periodic", unitOfMeasure: { unit: "V" } },
      { value: 16, measurand: "Current.Import", phase: "L1", context: "Sample.Periodic", unitOfMeasure: { unit: "A" } },
      { value: 3_680, measurand: "Power.Active.Import", phase: "L1", context: "Sample.Periodic", unitOfMeasure: { unit: "W" } },
      { value: 229.8, measurand: "Voltage", phase: "L2-N", context: "Sample.Periodic", unitOfMeasure: { unit: "V" } },
      { value: 16, measurand: "Current.Import", phase: "L2", context: "Sample.Periodic", unitOfMeasure: { unit: "A" } },
      { value: 3_680, measurand: "Power.Active.Import", phase: "L2", context: "Sample.Periodic", unitOfMeasure: { unit: "W" } },
      { value: 230.4, measurand: "Voltage", phase: "L3-N", context: "Sample.Periodic", unitOfMeasure: { unit: "V" } },
      { value: 16, measurand: "Current.Import", phase: "L3", context: "Sample.Periodic", unitOfMeasure: { unit: "A" } },
      { value: 3_680, measurand: "Power.Active.Import", phase: "L3", context: "Sample.Periodic", unitOfMeasure: { unit: "W" } },
    ]);
  });

  it("reports only the measurands the CSMS configured, and nothing at all for an empty list", () => {
    expect(meterValue201(threePhase, "Sample.Periodic", { measurands: ["Energy.Active.Import.Register", "Current.Import"] })?.sampledValue).toEqual([
      { value: 123_456, measurand: "Energy.Active.Import.Register", context: "Sample.Periodic", unitOfMeasure: { unit: "Wh" } },
      { value: 16, measurand: "Current.Import", phase: "L1", context: "Sample.Periodic", unitOfMeasure: { unit: "A" } },
      { value: 16, measurand: "Current.Import", phase: "L2", context: "Sample.Periodic", unitOfMeasure: { unit: "A" } },
      { value: 16, measurand: "Current.Import", phase: "L3", context: "Sample.Periodic", unitOfMeasure: { unit: "A" } },
    ]);
    expect(meterValue201(threePhase, "Sample.Periodic", { measurands: [] })).toBeUndefined();
    expect(meterValues201({ type: "meterValues", connectorId: 1, context: "Sample.Clock", reading: threePhase }, [])).toBeUndefined();
    expect(
      transactionMeterValues201({ type: "meterValues", sessionId: 7n, connectorId: 1, context: "Sample.Periodic", reading: threePhase }, { seqNo: 1, measurands: [] }),
    ).toBeUndefined();
  });

  it("sends idle and clock-aligned readings as MeterValues for the EVSE", () => {
    const intent: OcppIntent = { type: "meterValues", connectorId: 1, context: "Sample.Clock", reading: singlePhase };
    const request = meterValues201(intent);
    expect(request).toEqual({
      evseId: 1,
      meterValue: [
        {
          timestamp: "2026-12-03T12:01:00.000Z",
          sampledValue: [
            { value: 123_999, measurand: "Energy.Active.Import.Register", context: "Sample.Clock", unitOfMeasure: { unit: "Wh" } },
            { value: 0, measurand: "Power.Active.Import", context: "Sample.Clock", unitOfMeasure: { unit: "W" } },
          ],
        },
      ],
    });
    expectValid("MeterValues", "req", request);
    expectValid("MeterValues", "req", meterValues201({ ...intent, reading: threePhase, context: "Trigger" }));
  });
});

describe("TransactionEvent", () => {
  const started: Extract<OcppIntent, { type: "transactionStarted" }> = {
    type: "transactionStarted",
    sessionId: 7n,
    connectorId: 1,
    idTag: "7",
    meterStartWh: 123_456,
    atMs: T0,
    reading: threePhase,
  };

  it("Started: seqNo 0, the session as transactionId and as Central idToken, the start register in Wh", () => {
    const event = transactionStarted201(started, { seqNo: 0 });
    expect(event).toEqual({
      eventType: "Started",
      timestamp: "2026-12-03T12:00:00.000Z",
      triggerReason: "Authorized",
      seqNo: 0,
      transactionInfo: { transactionId: "7", chargingState: "Charging" },
      evse: { id: 1, connectorId: 1 },
      idToken: { idToken: "7", type: "Central" },
      meterValue: [meterValue201(threePhase, "Transaction.Begin")],
    });
    expect(event.meterValue?.[0]?.sampledValue[0]).toEqual({
      value: 123_456,
      measurand: "Energy.Active.Import.Register",
      context: "Transaction.Begin",
      unitOfMeasure: { unit: "Wh" },
    });
    expectValid("TransactionEvent", "req", event);
  });

  it("Started after an accepted remote start carries its remoteStartId and idToken", () => {
    const event = transactionStarted201(started, { seqNo: 0, remoteStart: { remoteStartId: 991, idToken: { idToken: "EV-0xabc", type: "Central" } } });
    expect(event.triggerReason).toBe("RemoteStart");
    expect(event.transactionInfo).toEqual({ transactionId: "7", chargingState: "Charging", remoteStartId: 991 });
    expect(event.idToken).toEqual({ idToken: "EV-0xabc", type: "Central" });
    expectValid("TransactionEvent", "req", event);
  });

  it("the register in Started is the settled meterStart even when the reading was taken a moment later", () => {
    const event = transactionStarted201({ ...started, meterStartWh: 123_450 }, { seqNo: 0 });
    expect(event.meterValue?.[0]?.sampledValue[0]?.value).toBe(123_450);
  });

  it("Updated: periodic, clock-aligned and triggered readings, with the charging state when known", () => {
    const periodic = transactionMeterValues201(
      { type: "meterValues", sessionId: 7n, connectorId: 1, context: "Sample.Periodic", reading: threePhase },
      { seqNo: 1, chargingState: "Charging" },
    );
    expect(periodic).toEqual({
      eventType: "Updated",
      timestamp: "2026-12-03T12:00:00.000Z",
      triggerReason: "MeterValuePeriodic",
      seqNo: 1,
      transactionInfo: { transactionId: "7", chargingState: "Charging" },
      meterValue: [meterValue201(threePhase, "Sample.Periodic")],
    });
    expectValid("TransactionEvent", "req", periodic);
    const clock = transactionMeterValues201({ type: "meterValues", sessionId: 7n, connectorId: 1, context: "Sample.Clock", reading: singlePhase }, { seqNo: 2 });
    expect(clock?.triggerReason).toBe("MeterValueClock");
    expect(clock?.transactionInfo).toEqual({ transactionId: "7" });
    expectValid("TransactionEvent", "req", clock);
    const triggered = transactionMeterValues201({ type: "meterValues", sessionId: 7n, connectorId: 1, context: "Trigger", reading: singlePhase }, { seqNo: 3, offline: true });
    expect(triggered?.triggerReason).toBe("Trigger");
    expect(triggered?.offline).toBe(true);
    expectValid("TransactionEvent", "req", triggered);
  });

  it("Updated: a charging state change without meter values", () => {
    const event = chargingStateChanged201(7n, "SuspendedEV", T0 + 5_000, { seqNo: 4 });
    expect(event).toEqual({
      eventType: "Updated",
      timestamp: "2026-12-03T12:00:05.000Z",
      triggerReason: "ChargingStateChanged",
      seqNo: 4,
      transactionInfo: { transactionId: "7", chargingState: "SuspendedEV" },
    });
    expectValid("TransactionEvent", "req", event);
  });

  const stopped = (reason: TransactionStopReason): Extract<OcppIntent, { type: "transactionStopped" }> => ({
    type: "transactionStopped",
    sessionId: 7n,
    connectorId: 1,
    meterStopWh: 124_456,
    atMs: T0 + 600_000,
    reason,
    reading: { ...singlePhase, atMs: T0 + 600_000, energyWh: 124_457 },
  });

  it("Ended: the stop register is the settled meterStop, so Ended − Started is the settled energy", () => {
    const event = transactionEnded201(stopped("Remote"), { seqNo: 9 });
    expect(event).toEqual({
      eventType: "Ended",
      timestamp: "2026-12-03T12:10:00.000Z",
      triggerReason: "RemoteStop",
      seqNo: 9,
      transactionInfo: { transactionId: "7", chargingState: "EVConnected", stoppedReason: "Remote" },
      evse: { id: 1, connectorId: 1 },
      meterValue: [
        {
          timestamp: "2026-12-03T12:10:00.000Z",
          sampledValue: [
            { value: 124_456, measurand: "Energy.Active.Import.Register", context: "Transaction.End", unitOfMeasure: { unit: "Wh" } },
            { value: 0, measurand: "Power.Active.Import", context: "Transaction.End", unitOfMeasure: { unit: "W" } },
          ],
        },
      ],
    });
    const startRegister = transactionStarted201(started, { seqNo: 0 }).meterValue?.[0]?.sampledValue[0]?.value ?? NaN;
    expect((event.meterValue?.[0]?.sampledValue[0]?.value ?? NaN) - startRegister).toBe(1_000);
    expectValid("TransactionEvent", "req", event);
  });

  it("Ended keeps the stop register even when the CSMS asked for no end-of-transaction measurands", () => {
    const event = transactionEnded201({ ...stopped("Local"), reading: threePhase }, { seqNo: 2, measurands: [] });
    expect(event.meterValue?.[0]?.sampledValue).toEqual([
      { value: 124_456, measurand: "Energy.Active.Import.Register", context: "Transaction.End", unitOfMeasure: { unit: "Wh" } },
    ]);
    const withPower = transactionEnded201({ ...stopped("Local"), reading: threePhase }, { seqNo: 2, measurands: ["Power.Active.Import"] });
    expect(withPower.meterValue?.[0]?.sampledValue.map((value) => [value.measurand, value.phase ?? "total", value.value])).toEqual([
      ["Energy.Active.Import.Register", "total", 124_456],
      ["Power.Active.Import", "total", 11_040],
      ["Power.Active.Import", "L1", 3_680],
      ["Power.Active.Import", "L2", 3_680],
      ["Power.Active.Import", "L3", 3_680],
    ]);
    expectValid("TransactionEvent", "req", withPower);
  });

  it("maps every 1.6 stop reason to a 2.0.1 stoppedReason and triggerReason the schema accepts", () => {
    const expected: Record<TransactionStopReason, [string, string]> = {
      DeAuthorized: ["DeAuthorized", "Deauthorized"],
      EmergencyStop: ["EmergencyStop", "AbnormalCondition"],
      EVDisconnected: ["EVDisconnected", "EVCommunicationLost"],
      HardReset: ["ImmediateReset", "ResetCommand"],
      Local: ["Local", "StopAuthorized"],
      Other: ["Other", "AbnormalCondition"],
      PowerLoss: ["PowerLoss", "AbnormalCondition"],
      Reboot: ["Reboot", "AbnormalCondition"],
      Remote: ["Remote", "RemoteStop"],
      SoftReset: ["ImmediateReset", "ResetCommand"],
      UnlockCommand: ["Other", "UnlockCommand"],
    };
    for (const [reason, [stoppedReason, triggerReason]] of Object.entries(expected) as [TransactionStopReason, [string, string]][]) {
      expect([stoppedReason201(reason), triggerReasonOfStop(reason)], reason).toEqual([stoppedReason, triggerReason]);
      const event = transactionEnded201(stopped(reason), { seqNo: 1 });
      expect(event.transactionInfo.stoppedReason).toBe(stoppedReason);
      expect(event.transactionInfo.chargingState).toBe(reason === "EVDisconnected" ? "Idle" : "EVConnected");
      expectValid("TransactionEvent", "req", event);
    }
  });

  it("Ended for a stop this station made to honour a Reset says ImmediateReset, whatever the core called it", () => {
    const event = transactionEnded201(stopped("Remote"), { seqNo: 3, resetRequested: true });
    expect(event.triggerReason).toBe("ResetCommand");
    expect(event.transactionInfo.stoppedReason).toBe("ImmediateReset");
  });
});

describe("problem reports (NotifyEvent)", () => {
  it("maps 1.6 error codes to the device-model component whose Problem variable turns true", () => {
    expect(problemComponentOf("NoError")).toBeUndefined();
    expect(problemComponentOf("PowerMeterFailure")).toBe("FiscalMetering");
    expect(problemComponentOf("PowerSwitchFailure")).toBe("PowerContactor");
    expect(problemComponentOf("InternalError")).toBe("ChargingStation");
    expect(problemComponentOf("OtherError")).toBe("ChargingStation");
  });

  it("raises and clears a problem on an EVSE-scoped component", () => {
    const raised = problemNotification201({
      eventId: 1,
      seqNo: 0,
      atMs: T0,
      connectorId: 1,
      errorCode: "PowerSwitchFailure",
      component: "PowerContactor",
      cleared: false,
      info: "welded contactor: feedback stayed closed for 500 ms after opening",
      transactionId: "7",
    });
    expect(raised).toEqual({
      generatedAt: "2026-12-03T12:00:00.000Z",
      seqNo: 0,
      eventData: [
        {
          eventId: 1,
          timestamp: "2026-12-03T12:00:00.000Z",
          trigger: "Delta",
          actualValue: "true",
          techCode: "PowerSwitchFailure",
          techInfo: "welded contactor: feedback stayed closed for 500 ms after opening",
          cleared: false,
          transactionId: "7",
          eventNotificationType: "HardWiredNotification",
          component: { name: "PowerContactor", evse: { id: 1 } },
          variable: { name: "Problem" },
        },
      ],
    });
    expectValid("NotifyEvent", "req", raised);
    const cleared = problemNotification201({ eventId: 2, seqNo: 1, atMs: T0, connectorId: 1, errorCode: "NoError", component: "ChargingStation", cleared: true });
    expect(cleared.eventData[0]).toMatchObject({ actualValue: "false", cleared: true, component: { name: "ChargingStation" } });
    expect(cleared.eventData[0]).not.toHaveProperty("techCode");
    expectValid("NotifyEvent", "req", cleared);
  });
});

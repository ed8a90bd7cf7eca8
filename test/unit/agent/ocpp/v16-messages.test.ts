import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openJournal } from "../../../../agent/journal/journal.ts";
import { meterValueOf } from "../../../../agent/ocpp/v16.ts";
import { openV16Configuration } from "../../../../agent/ocpp/v16-configuration.ts";

describe("meterValueOf (OCPP 1.6 MeterValue)", () => {
  it("reports the register in whole Wh, power in W and current/voltage per phase, without float noise", () => {
    const reading = {
      atMs: Date.UTC(2026, 11, 3, 12, 0, 0),
      energyWh: 123_456,
      powerW: 6_993.300000000001,
      phases: [
        { voltageV: 230.14, currentA: 10.123, powerW: 2_331 },
        { voltageV: 229.86, currentA: 0.1 + 0.2, powerW: 2_330 },
        { voltageV: 231, currentA: 10, powerW: 2_332 },
      ],
    };
    expect(meterValueOf(reading, "Sample.Periodic", ["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage"])).toEqual({
      timestamp: "2026-12-03T12:00:00.000Z",
      sampledValue: [
        { value: "123456", context: "Sample.Periodic", measurand: "Energy.Active.Import.Register", unit: "Wh" },
        { value: "6993.3", context: "Sample.Periodic", measurand: "Power.Active.Import", unit: "W" },
        { value: "10.12", context: "Sample.Periodic", measurand: "Current.Import", unit: "A", phase: "L1" },
        { value: "0.3", context: "Sample.Periodic", measurand: "Current.Import", unit: "A", phase: "L2" },
        { value: "10", context: "Sample.Periodic", measurand: "Current.Import", unit: "A", phase: "L3" },
        { value: "230.1", context: "Sample.Periodic", measurand: "Voltage", unit: "V", phase: "L1-N" },
        { value: "229.9", context: "Sample.Periodic", measurand: "Voltage", unit: "V", phase: "L2-N" },
        { value: "231", context: "Sample.Periodic", measurand: "Voltage", unit: "V", phase: "L3-N" },
      ],
    });
  });

  it("omits per-phase values a single-phase meter does not have beyond L1, and all of them when it has none", () => {
    const single = { atMs: 0, energyWh: 10, powerW: 0, phases: [{ voltageV: 230, currentA: 0, powerW: 0 }] };
    expect(meterValueOf(single, "Trigger", ["Voltage"]).sampledValue).toEqual([{ value: "230", context: "Trigger", measurand: "Voltage", unit: "V", phase: "L1-N" }]);
    expect(meterValueOf({ ...single, phases: [] }, "Trigger", ["Current.Import"]).sampledValue).toEqual([]);
  });
});

describe("OCPP 1.6 configuration keys", () => {
  it("validates, persists and reports keys: NotSupported unknown, Rejected read-only or malformed", () => {
    const dir = mkdtempSync(join(tmpdir(), "ocpp16-config-"));
    const path = join(dir, "journal.sqlite");
    try {
      const journal = openJournal(path);
      const configuration = openV16Configuration(journal);
      expect(configuration.change("MeterValueSampleInterval", "30")).toBe("Accepted");
      expect(configuration.change("MeterValueSampleInterval", "-1")).toBe("Rejected");
      expect(configuration.change("MeterValuesSampledData", "Energy.Active.Import.Register,Voltage")).toBe("Accepted");
      expect(configuration.change("MeterValuesSampledData", "SoC")).toBe("Rejected");
      expect(configuration.change("LocalAuthorizeOffline", "yes")).toBe("Rejected");
      expect(configuration.change("AuthorizeRemoteTxRequests", "false")).toBe("Rejected");
      expect(configuration.change("StopTransactionOnEVSideDisconnect", "false")).toBe("Rejected");
      expect(configuration.change("WebSocketPingInterval", "10")).toBe("RebootRequired");
      expect(configuration.change("FreeVendKey", "1")).toBe("NotSupported");
      journal.close();

      const again = openJournal(path);
      const reopened = openV16Configuration(again);
      expect(reopened.getInteger("MeterValueSampleInterval")).toBe(30);
      expect(reopened.measurands("MeterValuesSampledData")).toEqual(["Energy.Active.Import.Register", "Voltage"]);
      expect(reopened.list(["WebSocketPingInterval", "SupportedFeatureProfiles", "X"])).toEqual({
        entries: [
          { key: "WebSocketPingInterval", readonly: false, value: "10" },
          { key: "SupportedFeatureProfiles", readonly: true, value: "Core,RemoteTrigger" },
        ],
        unknown: ["X"],
      });
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

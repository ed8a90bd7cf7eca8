import { describe, expect, expectTypeOf, it } from "vitest";
import { configSchema, type Config } from "../../../../agent/config/schema.ts";
import { createMeter, type MeterConfig } from "../../../../drivers/meters/index.ts";
import { createModbusMeter } from "../../../../drivers/meters/modbus-meter.ts";
import { meterModels } from "../../../../drivers/meters/models/index.ts";

const meterSection = (meter: Record<string, unknown>): Config["meter"] =>
  configSchema.parse({ chargePointId: "cp-1", chain: { keystore: "./k.json" }, gpio: { relay: { line: 17 } }, meter }).meter;

describe("createMeter", () => {
  it("takes the config's meter section as it is", () => {
    expectTypeOf<Config["meter"]>().toExtend<MeterConfig>();
  });

  it("builds a table driver without touching the link (it opens on the first read)", async () => {
    const meter = createMeter(meterSection({ driver: "em340", transport: "tcp", host: "192.0.2.1" }));
    expect(meter.model).toBe("em340");
    await meter.close();
  });

  it("points to hw-sim for the sim driver", () => {
    expect(() => createMeter(meterSection({ driver: "sim" }))).toThrow(/simulated meter is provided by hw-sim/);
  });
});

describe("createModbusMeter options", () => {
  const base = { model: meterModels.sdm630, unitId: 1, timeoutMs: 500 };

  it("names a missing option in backticks", () => {
    expect(() => createModbusMeter({ ...base, transport: "rtu" })).toThrow(
      "[trustpile] [modbus-meter] missing option `device` (serial device path) for transport rtu",
    );
    expect(() => createModbusMeter({ ...base, transport: "rtu-over-tcp" })).toThrow("missing option `host` for transport rtu-over-tcp");
  });

  it("refuses impossible unit ids and timeouts", () => {
    expect(() => createModbusMeter({ ...base, transport: "tcp", host: "h", unitId: 256 })).toThrow("`unitId` must be an integer 0..255, got 256");
    expect(() => createModbusMeter({ ...base, transport: "tcp", host: "h", timeoutMs: 0 })).toThrow("`timeoutMs` must be a number of ms > 0, got 0");
  });
});

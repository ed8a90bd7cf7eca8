/**
 * Meters from configuration. Every `meter.driver` that names a register table (models/index.ts) is read by the
 * one Modbus driver; `sim` is the in-process simulated meter, which hw-sim provides (drivers know nothing of it).
 */
import { createModbusMeter, type ModbusTransport } from "./modbus-meter.ts";
import { meterModel, meterModels } from "./models/index.ts";
import type { Meter } from "./types.ts";

/**
 * The `meter` section of the agent's config (agent/config/schema.ts), restated structurally so that drivers do not
 * import from the agent (DESIGN §2); `Config["meter"]` is assignable to it (checked in the driver's unit test).
 */
export interface MeterConfig {
  driver: string;
  transport: ModbusTransport;
  device: string;
  baudRate: number;
  parity: "none" | "even" | "odd";
  unitId: number;
  host: string;
  port: number;
  timeoutMs: number;
}

export function createMeter(config: MeterConfig, options: { clock?: () => number } = {}): Meter {
  if (config.driver === "sim") {
    throw new Error(
      'meter.driver "sim": the simulated meter is provided by hw-sim (in-process), not by drivers/meters; ' +
        `createMeter() builds the table drivers ${Object.keys(meterModels).join(", ")}`,
    );
  }
  return createModbusMeter({
    model: meterModel(config.driver),
    transport: config.transport,
    device: config.device,
    baudRate: config.baudRate,
    parity: config.parity,
    host: config.host,
    port: config.port,
    unitId: config.unitId,
    timeoutMs: config.timeoutMs,
    ...(options.clock ? { clock: options.clock } : {}),
  });
}

export { createModbusMeter, type ModbusMeterOptions, type ModbusTransport } from "./modbus-meter.ts";
export { meterModel, meterModels, type MeterModelName } from "./models/index.ts";
export { MeterFault, type Meter, type MeterFaultKind, type MeterSample, type PhaseReading } from "./types.ts";

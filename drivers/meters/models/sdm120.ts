import type { MeterModel, RegisterField } from "../model.ts";

/**
 * Eastron SDM120 Modbus (single-phase). Same register layout as the SDM630 for its one phase: input registers,
 * float32 high word first; 0x00 V, 0x06 A, 0x0C W (also the total), 0x46 Hz, 0x48 import kWh, 0x4A export kWh.
 */
const float = (address: number, scale = 1): RegisterField => ({ address, encoding: "float32", scale });

export const sdm120: MeterModel = Object.freeze({
  name: "sdm120",
  description: "Eastron SDM120 Modbus, single-phase DIN-rail meter",
  registerKind: "input",
  wordOrder: "high-first",
  phases: 1,
  maxRegistersPerRequest: 80,
  maxGapRegisters: 16,
  maxPlausiblePowerW: 230 * 45,
  fields: Object.freeze({
    importEnergyWh: float(0x48, 1000),
    exportEnergyWh: float(0x4a, 1000),
    powerW: float(0x0c),
    frequencyHz: float(0x46),
    phaseVoltageV: Object.freeze([float(0x00)]),
    phaseCurrentA: Object.freeze([float(0x06)]),
    phasePowerW: Object.freeze([float(0x0c)]),
  }),
});

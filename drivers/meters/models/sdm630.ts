import type { MeterModel, RegisterField } from "../model.ts";

/**
 * Eastron SDM630 Modbus V2 (three-phase). Input registers (function 04), IEEE-754 float32, high word first,
 * 0-based addresses from the Eastron protocol document: 0x00/02/04 phase voltage V, 0x06/08/0A phase current A,
 * 0x0C/0E/10 phase power W, 0x34 total system power W, 0x46 frequency Hz, 0x48 import kWh, 0x4A export kWh.
 * Energy registers hold kWh: scale 1000 gives Wh.
 */
const float = (address: number, scale = 1): RegisterField => ({ address, encoding: "float32", scale });

export const sdm630: MeterModel = Object.freeze({
  name: "sdm630",
  description: "Eastron SDM630 Modbus V2, three-phase DIN-rail meter",
  registerKind: "input",
  wordOrder: "high-first",
  phases: 3,
  maxRegistersPerRequest: 80,
  maxGapRegisters: 16,
  maxPlausiblePowerW: 3 * 230 * 100,
  fields: Object.freeze({
    importEnergyWh: float(0x48, 1000),
    exportEnergyWh: float(0x4a, 1000),
    powerW: float(0x34),
    frequencyHz: float(0x46),
    phaseVoltageV: Object.freeze([float(0x00), float(0x02), float(0x04)]),
    phaseCurrentA: Object.freeze([float(0x06), float(0x08), float(0x0a)]),
    phasePowerW: Object.freeze([float(0x0c), float(0x0e), float(0x10)]),
  }),
});

import type { MeterModel, RegisterField } from "../model.ts";

/**
 * Carlo Gavazzi EM340 (three-phase, 65 A direct; the EM330/ET330/ET340 share the map). Source: Carlo Gavazzi
 * "EM300 Series and ET300 Series Communication Protocol", version 2 revision 17 (2021-07-05), table 2.4-1
 * (instantaneous variables and meters grouped by variable type), 0-based word addresses, cross-checked against
 * volkszaehler/mbmd `meters/rs485/carlogavazzi-ex3x0.go` (the table evcc's Carlo Gavazzi templates render to).
 *
 * Deliberately unlike the Eastron tables: holding registers (function 03; the meter answers 04 alike), scaled
 * integers instead of floats, and the low word first (§2.1 "INT32: LSW → MSW"; mbmd's `RTUInt32ToFloat64Swapped`).
 * Scales from the table's "weight" column: V ×0.1, A ×0.001, W ×0.1, Hz ×0.1 (INT16), kWh ×0.1, so one energy
 * step is 100 Wh. The meter accepts at most 50 words per request (table 2.9-7, register 0x2004 default).
 */
const int32 = (address: number, scale: number): RegisterField => ({ address, encoding: "int32", scale });

export const em340: MeterModel = Object.freeze({
  name: "em340",
  description: "Carlo Gavazzi EM340, three-phase DIN-rail meter (EM300 series protocol v2 r17)",
  registerKind: "holding",
  wordOrder: "low-first",
  phases: 3,
  maxRegistersPerRequest: 50,
  maxGapRegisters: 16,
  // 65 A direct connection on three 230 V phases.
  maxPlausiblePowerW: 3 * 230 * 65,
  fields: Object.freeze({
    importEnergyWh: int32(0x34, 100), // kWh (+) TOT
    exportEnergyWh: int32(0x4e, 100), // kWh (-) TOT
    powerW: int32(0x28, 0.1), // W sys
    frequencyHz: { address: 0x33, encoding: "int16", scale: 0.1 } satisfies RegisterField, // Hz
    phaseVoltageV: Object.freeze([int32(0x00, 0.1), int32(0x02, 0.1), int32(0x04, 0.1)]), // V L1-N .. L3-N
    phaseCurrentA: Object.freeze([int32(0x0c, 0.001), int32(0x0e, 0.001), int32(0x10, 0.001)]), // A L1 .. L3
    phasePowerW: Object.freeze([int32(0x12, 0.1), int32(0x14, 0.1), int32(0x16, 0.1)]), // W L1 .. L3
  }),
});

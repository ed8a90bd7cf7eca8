/**
 * A meter model is data: where each value lives, how it is encoded and scaled (evcc's and EVerest's model files
 * are the pattern). One generic reader (reader.ts) interprets any table; a new meter is a new table.
 *
 * value in the field's unit = decoded raw register value × scale
 * e.g. SDM630 import energy is a float32 in kWh at 0x48: scale 1000 gives Wh (then rounded to an integer).
 */

export type RegisterKind = "input" | "holding";
export type RegisterEncoding = "float32" | "int32" | "uint32" | "int16" | "uint16";
/** Order of the two 16-bit words of a 32-bit value. Bytes within a word are always big-endian (Modbus). */
export type WordOrder = "high-first" | "low-first";

export interface RegisterField {
  /** 0-based register address (datasheets often print 30001-based numbers: subtract 30001). */
  address: number;
  encoding: RegisterEncoding;
  scale: number;
}

export interface MeterModel {
  name: string;
  /** Maker, model and datasheet reference, for people. */
  description: string;
  registerKind: RegisterKind;
  wordOrder: WordOrder;
  phases: 1 | 3;
  /** Largest read the meter accepts in one request. */
  maxRegistersPerRequest: number;
  /** Registers between two fields that a request may read through rather than split (unused ones read as 0). */
  maxGapRegisters: number;
  /** Highest total power the meter's installation can see, W: bounds a plausible energy step between polls. */
  maxPlausiblePowerW: number;
  fields: {
    importEnergyWh: RegisterField;
    exportEnergyWh?: RegisterField;
    powerW: RegisterField;
    frequencyHz?: RegisterField;
    /** One per phase, L1 first; length equals `phases`. */
    phaseVoltageV: readonly RegisterField[];
    phaseCurrentA: readonly RegisterField[];
    phasePowerW: readonly RegisterField[];
  };
}

export function registerCount(encoding: RegisterEncoding): 1 | 2 {
  return encoding === "int16" || encoding === "uint16" ? 1 : 2;
}

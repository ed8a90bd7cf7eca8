/**
 * Pure translation between a meter model's register table and values: decoding for the driver, encoding for the
 * simulator, and the plan of block reads that covers a table in as few requests as its limits allow.
 */
import { registerCount, type MeterModel, type RegisterField, type WordOrder } from "./model.ts";
import type { MeterSample, PhaseReading } from "./types.ts";

export interface ReadBlock {
  start: number;
  count: number;
}

/** Every field of the table, in a fixed order. */
export function fieldsOf(model: MeterModel): RegisterField[] {
  const f = model.fields;
  return [
    f.importEnergyWh,
    ...(f.exportEnergyWh ? [f.exportEnergyWh] : []),
    f.powerW,
    ...(f.frequencyHz ? [f.frequencyHz] : []),
    ...f.phaseVoltageV,
    ...f.phaseCurrentA,
    ...f.phasePowerW,
  ];
}

/**
 * Coalesces the table's fields into contiguous reads: neighbours closer than `maxGapRegisters` share a request,
 * and no request exceeds `maxRegistersPerRequest`. On a 9600-baud bus each request costs ~50 ms of wire time,
 * so fewer, longer requests are what makes a full poll fast.
 */
export function planBlocks(model: MeterModel): ReadBlock[] {
  const spans = fieldsOf(model)
    .map((field) => ({ start: field.address, end: field.address + registerCount(field.encoding) }))
    .sort((a, b) => a.start - b.start);
  const blocks: ReadBlock[] = [];
  let current: { start: number; end: number } | undefined;
  for (const span of spans) {
    if (
      current &&
      span.start - current.end <= model.maxGapRegisters &&
      Math.max(current.end, span.end) - current.start <= model.maxRegistersPerRequest
    ) {
      current.end = Math.max(current.end, span.end);
      continue;
    }
    if (current) blocks.push({ start: current.start, count: current.end - current.start });
    current = { ...span };
  }
  if (current) blocks.push({ start: current.start, count: current.end - current.start });
  return blocks;
}

const scratch = new DataView(new ArrayBuffer(4));

function wordsInOrder(words: readonly number[], wordOrder: WordOrder): [number, number] {
  const [a = 0, b = 0] = words;
  return wordOrder === "high-first" ? [a, b] : [b, a];
}

/** Decodes one field from the registers starting at its address; the result is in the field's unit (raw × scale). */
export function decodeField(field: RegisterField, words: readonly number[], wordOrder: WordOrder): number {
  let raw: number;
  if (registerCount(field.encoding) === 1) {
    scratch.setUint16(0, words[0] ?? 0);
    raw = field.encoding === "int16" ? scratch.getInt16(0) : scratch.getUint16(0);
  } else {
    const [high, low] = wordsInOrder(words, wordOrder);
    scratch.setUint16(0, high);
    scratch.setUint16(2, low);
    raw =
      field.encoding === "float32" ? scratch.getFloat32(0) : field.encoding === "int32" ? scratch.getInt32(0) : scratch.getUint32(0);
  }
  return raw * field.scale;
}

/** The registers that hold `value` (in the field's unit) in this field's encoding. */
export function encodeField(field: RegisterField, value: number, wordOrder: WordOrder): number[] {
  const raw = value / field.scale;
  if (registerCount(field.encoding) === 1) {
    if (field.encoding === "int16") scratch.setInt16(0, Math.round(raw));
    else scratch.setUint16(0, Math.round(raw));
    return [scratch.getUint16(0)];
  }
  if (field.encoding === "float32") scratch.setFloat32(0, raw);
  else if (field.encoding === "int32") scratch.setInt32(0, Math.round(raw));
  else scratch.setUint32(0, Math.round(raw));
  const high = scratch.getUint16(0);
  const low = scratch.getUint16(2);
  return wordOrder === "high-first" ? [high, low] : [low, high];
}

/** The register image of a sample, address → 16-bit word, as the meter would hold it. */
export function encodeSample(model: MeterModel, sample: Omit<MeterSample, "readAtMs">): Map<number, number> {
  const image = new Map<number, number>();
  const put = (field: RegisterField | undefined, value: number | undefined): void => {
    if (!field || value === undefined) return;
    encodeField(field, value, model.wordOrder).forEach((word, i) => image.set(field.address + i, word));
  };
  const f = model.fields;
  put(f.importEnergyWh, sample.importEnergyWh);
  put(f.exportEnergyWh, sample.exportEnergyWh ?? 0);
  put(f.powerW, sample.powerW);
  put(f.frequencyHz, sample.frequencyHz);
  f.phaseVoltageV.forEach((field, i) => put(field, sample.phases[i]?.voltageV ?? 0));
  f.phaseCurrentA.forEach((field, i) => put(field, sample.phases[i]?.currentA ?? 0));
  f.phasePowerW.forEach((field, i) => put(field, sample.phases[i]?.powerW ?? 0));
  return image;
}

/** Decodes a full poll from the blocks read (each with the registers from its start). */
export function decodeSample(
  model: MeterModel,
  blocks: readonly { start: number; words: readonly number[] }[],
  readAtMs: number,
): MeterSample {
  const valueOf = (field: RegisterField): number => {
    const block = blocks.find(
      (b) => field.address >= b.start && field.address + registerCount(field.encoding) <= b.start + b.words.length,
    );
    if (!block) throw new Error(`register ${field.address} of ${model.name} was not read by this poll`);
    const offset = field.address - block.start;
    return decodeField(field, block.words.slice(offset, offset + registerCount(field.encoding)), model.wordOrder);
  };
  const f = model.fields;
  const phases: PhaseReading[] = f.phaseVoltageV.map((voltageField, i) => ({
    voltageV: valueOf(voltageField),
    currentA: f.phaseCurrentA[i] ? valueOf(f.phaseCurrentA[i]) : 0,
    powerW: f.phasePowerW[i] ? valueOf(f.phasePowerW[i]) : 0,
  }));
  return {
    readAtMs,
    // kWh floats become integer Wh here, once; nothing above the driver rounds energy again.
    importEnergyWh: Math.round(valueOf(f.importEnergyWh)),
    ...(f.exportEnergyWh ? { exportEnergyWh: Math.round(valueOf(f.exportEnergyWh)) } : {}),
    powerW: valueOf(f.powerW),
    ...(f.frequencyHz ? { frequencyHz: valueOf(f.frequencyHz) } : {}),
    phases,
  };
}

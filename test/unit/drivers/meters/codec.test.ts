import { describe, expect, it } from "vitest";
import { decodeSample, encodeSample, planBlocks } from "../../../../drivers/meters/codec.ts";
import { sdm630 } from "../../../../drivers/meters/models/sdm630.ts";
import { sdm120 } from "../../../../drivers/meters/models/sdm120.ts";

function readBlocks(image: Map<number, number>, model: typeof sdm630) {
  return planBlocks(model).map((b) => ({
    start: b.start,
    words: Array.from({ length: b.count }, (_, i) => image.get(b.start + i) ?? 0),
  }));
}

describe("meter codec", () => {
  it("covers the SDM630 table in two block reads: phases, then total power through the energies", () => {
    // 0x36..0x45 (VA, VAr, PF, …) sit within maxGapRegisters, so reading through them saves a request.
    expect(planBlocks(sdm630)).toEqual([
      { start: 0x00, count: 0x12 },
      { start: 0x34, count: 0x4c - 0x34 },
    ]);
  });

  it("splits where a gap exceeds maxGapRegisters or a block would exceed maxRegistersPerRequest", () => {
    expect(planBlocks({ ...sdm630, maxGapRegisters: 4 })).toHaveLength(3);
    expect(planBlocks({ ...sdm630, maxGapRegisters: 1000, maxRegistersPerRequest: 40 })).toEqual([
      { start: 0x00, count: 0x12 },
      { start: 0x34, count: 0x4c - 0x34 },
    ]);
  });

  it("round-trips an SDM630 sample through its register image, energy as integer Wh", () => {
    const sample = {
      importEnergyWh: 1_234_567,
      exportEnergyWh: 0,
      powerW: 6_900,
      frequencyHz: 50,
      phases: [
        { voltageV: 230.5, currentA: 10, powerW: 2_305 },
        { voltageV: 229.5, currentA: 10, powerW: 2_295 },
        { voltageV: 230, currentA: 10, powerW: 2_300 },
      ],
    };
    const decoded = decodeSample(sdm630, readBlocks(encodeSample(sdm630, sample), sdm630), 1_000);
    expect(decoded.readAtMs).toBe(1_000);
    // float32 holds 1234.567 kWh to ~0.1 Wh, so the rounded Wh is exact.
    expect(decoded.importEnergyWh).toBe(1_234_567);
    expect(decoded.powerW).toBe(6_900);
    expect(decoded.phases).toEqual(sample.phases);
    expect(decoded.frequencyHz).toBe(50);
  });

  it("writes floats high word first, as the Eastron datasheet specifies", () => {
    const image = encodeSample(sdm120, { importEnergyWh: 1_000, powerW: 0, phases: [{ voltageV: 230, currentA: 0, powerW: 0 }] });
    // 1.0 kWh = 0x3F800000
    expect([image.get(0x48), image.get(0x49)]).toEqual([0x3f80, 0x0000]);
    // 230 V = 0x43660000
    expect([image.get(0x00), image.get(0x01)]).toEqual([0x4366, 0x0000]);
  });
});

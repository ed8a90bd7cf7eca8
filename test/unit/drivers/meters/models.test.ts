import { describe, expect, it } from "vitest";
import { decodeSample, encodeSample, planBlocks } from "../../../../drivers/meters/codec.ts";
import { meterModel, meterModels } from "../../../../drivers/meters/models/index.ts";

describe("meter tables", () => {
  it("looks tables up by name and names the known ones for an unknown name", () => {
    expect(meterModel("em340")).toBe(meterModels.em340);
    expect(() => meterModel("sdm72")).toThrow('unknown meter model "sdm72", expected one of sdm630, sdm120, em340');
    expect(() => meterModel("toString")).toThrow(/unknown meter model/);
  });

  it.each(Object.values(meterModels))("$name: one field per phase, and a poll of at most 3 requests within the meter's limit", (model) => {
    for (const list of [model.fields.phaseVoltageV, model.fields.phaseCurrentA, model.fields.phasePowerW]) {
      expect(list).toHaveLength(model.phases);
    }
    const blocks = planBlocks(model);
    expect(blocks.length).toBeLessThanOrEqual(3);
    for (const block of blocks) expect(block.count).toBeLessThanOrEqual(model.maxRegistersPerRequest);
  });

  it("EM340: scaled INT32 low word first, Hz as INT16, energy in 100 Wh steps", () => {
    const sample = {
      importEnergyWh: 1_234_500,
      exportEnergyWh: 12_300,
      powerW: -1_500.5,
      frequencyHz: 49.9,
      phases: [
        { voltageV: 230.1, currentA: 6.512, powerW: -500.2 },
        { voltageV: 229.9, currentA: 0, powerW: 0 },
        { voltageV: 231.4, currentA: 0.001, powerW: 0.1 },
      ],
    };
    const image = encodeSample(meterModels.em340, sample);
    // 230.1 V → 2301 = 0x000008FD, low word first.
    expect([image.get(0x00), image.get(0x01)]).toEqual([0x08fd, 0x0000]);
    // -1500.5 W → -15005 = 0xFFFFC563: 0xC563 then 0xFFFF.
    expect([image.get(0x28), image.get(0x29)]).toEqual([0xc563, 0xffff]);
    expect(image.get(0x33)).toBe(499);
    const blocks = planBlocks(meterModels.em340).map((b) => ({
      start: b.start,
      words: Array.from({ length: b.count }, (_, i) => image.get(b.start + i) ?? 0),
    }));
    const decoded = decodeSample(meterModels.em340, blocks, 0);
    expect(decoded.importEnergyWh).toBe(1_234_500);
    expect(decoded.exportEnergyWh).toBe(12_300);
    expect(decoded.powerW).toBeCloseTo(-1_500.5, 6);
    expect(decoded.frequencyHz).toBeCloseTo(49.9, 6);
    expect(decoded.phases[0]?.currentA).toBeCloseTo(6.512, 6);
    expect(decoded.phases[0]?.powerW).toBeCloseTo(-500.2, 6);
  });
});

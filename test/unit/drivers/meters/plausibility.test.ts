import { describe, expect, it } from "vitest";
import { meterModels } from "../../../../drivers/meters/models/index.ts";
import { createPlausibilityGuard, energyResolutionWh } from "../../../../drivers/meters/plausibility.ts";

const { sdm630, em340 } = meterModels;
// SDM630: 69 kW max → 19.17 Wh per second.
const WH_PER_S = sdm630.maxPlausiblePowerW / 3600;

const at = (seconds: number, importEnergyWh: number) => ({ readAtMs: 1_000_000 + seconds * 1000, importEnergyWh });

describe("plausibility guard", () => {
  it("accepts the first sample as the baseline and steps up to max power × elapsed time", () => {
    const guard = createPlausibilityGuard(sdm630);
    expect(guard.check(at(0, 10_000))).toEqual({ ok: true, rebased: false });
    expect(guard.check(at(1, 10_000))).toEqual({ ok: true, rebased: false });
    expect(guard.check(at(11, 10_000 + Math.floor(10 * WH_PER_S)))).toEqual({ ok: true, rebased: false });
  });

  it("refuses energy going backwards, by one Wh", () => {
    const guard = createPlausibilityGuard(sdm630);
    guard.check(at(0, 10_000));
    expect(guard.check(at(1, 9_999))).toEqual({
      ok: false,
      reason: "import energy went backwards from 10000 Wh to 9999 Wh",
    });
  });

  it("refuses a rise beyond max power × elapsed time plus register resolution and rounding", () => {
    const guard = createPlausibilityGuard(sdm630);
    guard.check(at(0, 10_000));
    // 1 s at 69 kW is 19.2 Wh; the float32 step near 10 kWh is ~0.001 Wh; rounding adds 2 Wh.
    expect(guard.check(at(1, 10_021)).ok).toBe(true);
    expect(guard.check(at(2, 10_021 + 22))).toMatchObject({ ok: false, reason: expect.stringMatching(/rose by 22 Wh in 1000 ms/) });
  });

  it("does not advance the baseline on a refused sample, so the next good sample passes", () => {
    const guard = createPlausibilityGuard(sdm630);
    guard.check(at(0, 10_000));
    expect(guard.check(at(1, 0)).ok).toBe(false);
    expect(guard.check(at(2, 10_010)).ok).toBe(true);
    expect(guard.check(at(3, 500_000)).ok).toBe(false);
    expect(guard.check(at(4, 10_020)).ok).toBe(true);
  });

  it("allows one register step on coarse meters: an EM340 counts in 100 Wh", () => {
    const guard = createPlausibilityGuard(em340);
    guard.check(at(0, 1_234_500));
    // Real energy since the baseline may be a few Wh, yet the register can tick a whole step.
    expect(guard.check(at(1, 1_234_600)).ok).toBe(true);
    expect(guard.check(at(2, 1_234_800)).ok).toBe(false);
  });

  it("after a meter replacement, takes the new register as baseline after 3 consistent samples", () => {
    const guard = createPlausibilityGuard(sdm630);
    guard.check(at(0, 5_000_000));
    // New meter starts near zero.
    expect(guard.check(at(1, 12)).ok).toBe(false);
    expect(guard.check(at(2, 20)).ok).toBe(false);
    expect(guard.check(at(3, 25))).toEqual({ ok: true, rebased: true });
    expect(guard.check(at(4, 30))).toEqual({ ok: true, rebased: false });
    // The old baseline is gone for good.
    expect(guard.check(at(5, 5_000_000)).ok).toBe(false);
  });

  it("restarts the count when the refused samples disagree with each other", () => {
    const guard = createPlausibilityGuard(sdm630, { confirmSamples: 2 });
    guard.check(at(0, 5_000_000));
    expect(guard.check(at(1, 100)).ok).toBe(false);
    expect(guard.check(at(2, 50)).ok).toBe(false); // backwards from the candidate: a new candidate
    expect(guard.check(at(3, 60))).toEqual({ ok: true, rebased: true });
  });

  it("knows the resolution of float32 and scaled integer energy registers", () => {
    const { importEnergyWh } = sdm630.fields;
    // 1234.5 kWh: float32 exponent 10, one ulp = 2^-13 kWh = 0.122 Wh.
    expect(energyResolutionWh(importEnergyWh, 1_234_500)).toBeCloseTo(1000 * 2 ** -13, 6);
    // 100 MWh: ~7.8 Wh per step, which the bound must allow.
    expect(energyResolutionWh(importEnergyWh, 100_000_000)).toBeCloseTo(7.8125, 4);
    expect(energyResolutionWh(em340.fields.importEnergyWh, 1_234_500)).toBe(100);
  });

  it("refuses a confirmSamples that is not a positive integer", () => {
    expect(() => createPlausibilityGuard(sdm630, { confirmSamples: 0 })).toThrow("confirmSamples: expected integer >= 1, got 0");
  });
});

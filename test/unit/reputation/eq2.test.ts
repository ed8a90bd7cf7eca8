import { describe, expect, it } from "vitest";
import {
  D,
  damping,
  DEFAULT_REPUTATION_PARAMETERS,
  fromSd59x18,
  isScore,
  parseSd59x18,
  raterWeight,
  reputationUpdate,
  SD_UNIT,
} from "../../../agent/reputation/eq2.ts";

describe("eq. 2 twin: damping Φ", () => {
  it("is exactly ½ at R = D for any σ", () => {
    for (const sigma of [1e-6, 0.3, 1.5, 100]) expect(damping(D, sigma)).toBe(0.5);
  });

  it("matches 1/(1 + e^((R − D)/σ)) at reference points (50-digit values)", () => {
    expect(damping(0, 1.5)).toBeCloseTo(0.88079707797788244406, 15); // 1/(1 + e^(−2))
    expect(damping(1, 1.5)).toBeCloseTo(0.79139147267395506003, 15); // 1/(1 + e^(−4/3))
    expect(damping(6, 1.5)).toBeCloseTo(0.11920292202211755594, 15); // 1/(1 + e^2)
  });

  it("decreases strictly with R and mirrors around D: Φ(D − x) + Φ(D + x) = 1", () => {
    let previous = Number.POSITIVE_INFINITY;
    for (let r = -10; r <= 16; r += 0.25) {
      const phi = damping(r, 1.5);
      expect(phi, `Φ(${r})`).toBeLessThan(previous);
      expect(phi).toBeGreaterThan(0);
      expect(phi).toBeLessThan(1);
      expect(phi + damping(2 * D - r, 1.5)).toBeCloseTo(1, 14);
      previous = phi;
    }
  });

  it("saturates without NaN or overflow for huge |R − D|/σ", () => {
    expect(damping(-1e6, 1e-6)).toBe(1);
    expect(damping(1e6, 1e-6)).toBe(0);
    expect(Number.isFinite(damping(1e300, 1e-300))).toBe(true);
  });
});

describe("eq. 2 twin: rater weight", () => {
  it("is R_v up to the cap μ·D, the cap above it, and 0 for R_v ≤ 0", () => {
    expect(raterWeight(1, 2)).toBe(1);
    expect(raterWeight(5, 2)).toBe(5);
    expect(raterWeight(6, 2)).toBe(6);
    expect(raterWeight(7, 2)).toBe(6);
    expect(raterWeight(1e30, 2)).toBe(6);
    expect(raterWeight(10, 1.5)).toBe(4.5);
    expect(raterWeight(0, 2)).toBe(0);
    expect(raterWeight(-3, 2)).toBe(0);
  });

  it("makes every R_v above the cap give the same update", () => {
    const atCap = reputationUpdate(1, 3, 6);
    expect(reputationUpdate(1, 3, 7)).toBe(atCap);
    expect(reputationUpdate(1, 3, 1e9)).toBe(atCap);
    expect(reputationUpdate(1, 3, 5)).toBeLessThan(atCap);
  });
});

describe("eq. 2 twin: the update", () => {
  it("computes R + (1/μ)·Φ(R)·w·(W − R/D) (hand-computed, defaults μ = 2, σ = 1.5)", () => {
    expect(DEFAULT_REPUTATION_PARAMETERS).toEqual({ mu: 2, sigma: 1.5 });
    expect(reputationUpdate(0, 3, 1)).toBeCloseTo(1.32119561696682366609, 14);
    expect(reputationUpdate(1.3211956169668236661, 1, 2)).toBeCloseTo(1.74304605057535949081, 14);
    // At R = D: ½ · ½ · 2 · (1 − 1) = 0, the fixed point of W = 1 is D·1 = 3.
    expect(reputationUpdate(3, 1, 2)).toBe(3);
  });

  it("leaves R unchanged for a rater with R_v ≤ 0", () => {
    expect(reputationUpdate(2.5, 3, 0)).toBe(2.5);
    expect(reputationUpdate(2.5, 1, -4)).toBe(2.5);
  });

  it("steps towards D·W without passing it, so R stays within [0, 9]", () => {
    for (const mu of [1.0001, 2, 7]) {
      for (const sigma of [1e-6, 0.5, 1.5, 50]) {
        let r = 0;
        for (let i = 0; i < 300; i++) {
          const score = ([3, 1, 2, 3, 3] as const)[i % 5] ?? 3;
          const next = reputationUpdate(r, score, 100, { mu, sigma });
          expect(next).toBeGreaterThanOrEqual(Math.min(r, D * score) - 1e-12);
          expect(next).toBeLessThanOrEqual(Math.max(r, D * score) + 1e-12);
          r = next;
        }
        expect(r).toBeGreaterThanOrEqual(0);
        expect(r).toBeLessThanOrEqual(9);
      }
    }
  });

  it("throws for μ ≤ 1 and σ ≤ 0 (and NaN)", () => {
    expect(() => reputationUpdate(0, 2, 1, { mu: 1, sigma: 1.5 })).toThrow(/mu > 1/);
    expect(() => reputationUpdate(0, 2, 1, { mu: 0.5, sigma: 1.5 })).toThrow(RangeError);
    expect(() => reputationUpdate(0, 2, 1, { mu: Number.NaN, sigma: 1.5 })).toThrow(RangeError);
    expect(() => reputationUpdate(0, 2, 1, { mu: 2, sigma: 0 })).toThrow(/sigma > 0/);
    expect(() => reputationUpdate(0, 2, 1, { mu: 2, sigma: -1 })).toThrow(RangeError);
    expect(() => reputationUpdate(0, 2, 1, { mu: 2, sigma: Number.NaN })).toThrow(RangeError);
    expect(reputationUpdate(0, 2, 1, { mu: 1.000001, sigma: 1e-9 })).toBeGreaterThan(0);
  });

  it("accepts only the scores 1, 2, 3", () => {
    expect([0, 1, 2, 3, 4, 2.5, -1].map(isScore)).toEqual([false, true, true, true, false, false, false]);
  });
});

describe("SD59x18 conversion", () => {
  it("parses decimals exactly, without a float on the way", () => {
    expect(SD_UNIT).toBe(1_000_000_000_000_000_000n);
    expect(parseSd59x18("1.5")).toBe(1_500_000_000_000_000_000n);
    expect(parseSd59x18("2")).toBe(2n * SD_UNIT);
    expect(parseSd59x18("0.000001")).toBe(1_000_000_000_000n);
    expect(parseSd59x18("0.000000000000000001")).toBe(1n);
    expect(parseSd59x18("-0.1")).toBe(-100_000_000_000_000_000n);
    expect(parseSd59x18(" 12345678901234567890.123456789012345678 ")).toBe(12345678901234567890123456789012345678n);
    // 0.1 + 0.2 in floats is 0.30000000000000004; the string route is exact.
    expect(parseSd59x18("0.3")).toBe(parseSd59x18("0.1") + parseSd59x18("0.2"));
  });

  it("refuses what is not a decimal with at most 18 fraction digits", () => {
    for (const bad of ["", "1e18", "0.0000000000000000001", "1.", ".5", "abc", "1,5", "--1", "+1"]) {
      expect(() => parseSd59x18(bad), JSON.stringify(bad)).toThrow(RangeError);
    }
  });

  it("converts back to a float, for both signs: exact where the float is, else within 1 ulp", () => {
    expect(fromSd59x18(0n)).toBe(0);
    expect(fromSd59x18(1_500_000_000_000_000_000n)).toBe(1.5);
    expect(fromSd59x18(-1_500_000_000_000_000_000n)).toBe(-1.5);
    expect(fromSd59x18(1n)).toBe(1e-18);
    expect(fromSd59x18(-250_000_000_000_000_000n)).toBe(-0.25);
    expect(fromSd59x18(9n * SD_UNIT)).toBe(9);
    // whole + fraction/1e18 rounds twice, so it may miss the nearest float by one ulp (2^-52 relative): far inside 1e-12.
    for (const decimal of ["0.3", "1.3211956169668236", "-47.123456789", "99.999999999999", "8.999999999999999999"]) {
      const nearest = Number(decimal);
      expect(Math.abs(fromSd59x18(parseSd59x18(decimal)) - nearest), decimal).toBeLessThanOrEqual(Math.abs(nearest) * 2 ** -52);
    }
    expect(fromSd59x18(parseSd59x18("-47.123456789"))).toBeLessThan(-47.123456788);
  });
});

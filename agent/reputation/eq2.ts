/**
 * The float64 twin of the Evaluations contract's eq. 2 (paper §3.4), step for step in the contract's order:
 *
 *     R_next = R + (1/μ) · Φ(R) · w · (W − R/D),   Φ(R) = 1 / (1 + e^((R − D)/σ)),   w = min(R_v, μ·D),   D = 3
 *
 * The query tool uses it to explain a reputation; tests hold the contract to it (1e-12 absolute).
 */

/** The highest score, D. */
export const D = 3;
/** SD59x18's unit: the contract's 1.0. */
export const SD_UNIT = 10n ** 18n;

export interface ReputationParameters {
  /** μ > 1: the larger, the slower a reputation moves. */
  mu: number;
  /** σ > 0: how sharply the damping turns from 1 to 0 around R = D. */
  sigma: number;
}

export const DEFAULT_REPUTATION_PARAMETERS: ReputationParameters = { mu: 2, sigma: 1.5 };

export const SCORES = [1, 2, 3] as const;
export type Score = (typeof SCORES)[number];

export function isScore(value: number): value is Score {
  return value === 1 || value === 2 || value === 3;
}

/** Φ(R), split at R = D so the exponential never sees a positive argument (as the contract does). */
export function damping(reputation: number, sigma: number): number {
  const z = (reputation - D) / sigma;
  if (z <= 0) return 1 / (1 + Math.exp(z));
  const e = Math.exp(-z);
  return e / (1 + e);
}

/** w = min(R_v, μ·D), and 0 for a rater with R_v ≤ 0 (such a rating changes nothing). */
export function raterWeight(raterCredibility: number, mu: number): number {
  if (raterCredibility <= 0) return 0;
  return Math.min(raterCredibility, mu * D);
}

export function reputationUpdate(
  reputation: number,
  score: Score,
  raterCredibility: number,
  { mu, sigma }: ReputationParameters = DEFAULT_REPUTATION_PARAMETERS,
): number {
  if (!(mu > 1)) throw new RangeError(`eq. 2 needs mu > 1, got ${mu}`);
  if (!(sigma > 0)) throw new RangeError(`eq. 2 needs sigma > 0, got ${sigma}`);
  const expectation = reputation / D;
  const step = (1 / mu) * damping(reputation, sigma) * raterWeight(raterCredibility, mu) * (score - expectation);
  return reputation + step;
}

/** An SD59x18 integer (the contract's representation) as a float. */
export function fromSd59x18(value: bigint): number {
  const whole = value / SD_UNIT;
  const fraction = value % SD_UNIT;
  return Number(whole) + Number(fraction) / 1e18;
}

/** A decimal string such as "1.5" as SD59x18, exactly (no float on the way). */
export function parseSd59x18(decimal: string): bigint {
  const match = /^(-)?(\d+)(?:\.(\d{1,18}))?$/.exec(decimal.trim());
  if (!match) throw new RangeError(`"${decimal}" is not a decimal number with at most 18 fraction digits`);
  const [, sign, whole = "0", fraction = ""] = match;
  const magnitude = BigInt(whole) * SD_UNIT + BigInt(fraction.padEnd(18, "0"));
  return sign ? -magnitude : magnitude;
}

/**
 * The energy register is what a session is billed on, so a poll whose import energy no healthy meter could show
 * is refused rather than passed up: energy going backwards, or rising faster than the installation's maximum power
 * allows since the last accepted sample. Pure: time comes from the samples' `readAtMs`.
 *
 * A refused sample never becomes the baseline, so one garbled reading cannot drag the baseline with it: the next
 * healthy reading is judged against the last good one and passes.
 *
 * Meter replacement (or a meter reset by an installer): the new meter's register has nothing to do with the old
 * baseline, so its samples are refused as well. They are remembered as candidates; once `confirmSamples`
 * consecutive refused samples agree with each other (monotonic, and each within the power bound of the one before),
 * the last of them is accepted and becomes the new baseline (`rebased: true`). With the default 3, a replaced meter
 * costs two refused polls; the agent sees them as meter loss (its interlock opens the relay on `staleAfterMs`), and
 * the jump between the old and new baseline is never billed, because no accepted pair of samples spans it.
 */
import type { MeterModel, RegisterField } from "./model.ts";

export interface PlausibilityOptions {
  /** Consecutive mutually consistent samples after which the baseline moves to them (meter replaced). Default 3. */
  confirmSamples?: number;
  /** Wh allowed on top of the power bound and the register's resolution, for rounding to integer Wh. Default 2. */
  roundingToleranceWh?: number;
}

export type PlausibilityVerdict =
  | { ok: true; rebased: boolean }
  | { ok: false; reason: string };

interface EnergyPoint {
  energyWh: number;
  /** Latest instant the register can have been latched (the reply). */
  atMs: number;
  /** Earliest instant it can have been latched (the request); `atMs` when unknown. */
  requestedAtMs?: number;
}

export interface PlausibilityGuard {
  /**
   * Judges a sample's import energy against the baseline and, if accepted, makes it the baseline. `readAtMs` is
   * when the reply arrived; `requestedAtMs` (default `readAtMs`) when the request went out. The meter latched the
   * register somewhere in between, so the time between two latches is at most this reply minus the previous
   * request: a slow reply followed by a fast one must not look like energy rising faster than max power.
   */
  check(sample: { importEnergyWh: number; readAtMs: number; requestedAtMs?: number }): PlausibilityVerdict;
}

const MS_PER_HOUR = 3_600_000;

/**
 * The smallest step the energy register can show around `energyWh`, in Wh. A register quantises energy, so between
 * two readings it can rise by up to one step more than what flowed (e.g. 100 Wh on an EM340, ~8 Wh on an SDM630
 * float32 at 100 MWh).
 */
export function energyResolutionWh(field: RegisterField, energyWh: number): number {
  const scale = Math.abs(field.scale);
  if (field.encoding !== "float32") return scale;
  const raw = Math.abs(energyWh / field.scale);
  if (raw < 2 ** -126) return 0;
  // float32 has a 24-bit significand: one unit in the last place is 2^(exponent - 23).
  return 2 ** (Math.floor(Math.log2(raw)) - 23) * scale;
}

export function createPlausibilityGuard(model: MeterModel, options: PlausibilityOptions = {}): PlausibilityGuard {
  const confirmSamples = options.confirmSamples ?? 3;
  const roundingToleranceWh = options.roundingToleranceWh ?? 2;
  if (!Number.isInteger(confirmSamples) || confirmSamples < 1) {
    throw new Error(`confirmSamples: expected integer >= 1, got ${confirmSamples}`);
  }
  const energyField = model.fields.importEnergyWh;

  let baseline: EnergyPoint | undefined;
  let candidate: (EnergyPoint & { count: number }) | undefined;

  /** Why `next` cannot follow `from` on one healthy meter, or undefined if it can. */
  function inconsistency(from: EnergyPoint, next: EnergyPoint): string | undefined {
    const deltaWh = next.energyWh - from.energyWh;
    if (deltaWh < 0) {
      return `import energy went backwards from ${from.energyWh} Wh to ${next.energyWh} Wh`;
    }
    const elapsedMs = Math.max(0, next.atMs - (from.requestedAtMs ?? from.atMs));
    const boundWh =
      (model.maxPlausiblePowerW * elapsedMs) / MS_PER_HOUR +
      energyResolutionWh(energyField, Math.max(from.energyWh, next.energyWh)) +
      roundingToleranceWh;
    if (deltaWh > boundWh) {
      return (
        `import energy rose by ${deltaWh} Wh in ${elapsedMs} ms, more than ${boundWh.toFixed(1)} Wh ` +
        `(${model.maxPlausiblePowerW} W max for ${model.name}, plus register resolution)`
      );
    }
    return undefined;
  }

  return {
    check(sample) {
      const next: EnergyPoint = {
        energyWh: sample.importEnergyWh,
        atMs: sample.readAtMs,
        ...(sample.requestedAtMs === undefined ? {} : { requestedAtMs: Math.min(sample.requestedAtMs, sample.readAtMs) }),
      };
      if (!baseline) {
        baseline = next;
        return { ok: true, rebased: false };
      }
      const reason = inconsistency(baseline, next);
      if (reason === undefined) {
        baseline = next;
        candidate = undefined;
        return { ok: true, rebased: false };
      }
      candidate =
        candidate && inconsistency(candidate, next) === undefined
          ? { ...next, count: candidate.count + 1 }
          : { ...next, count: 1 };
      if (candidate.count >= confirmSamples) {
        baseline = next;
        candidate = undefined;
        return { ok: true, rebased: true };
      }
      return { ok: false, reason };
    },
  };
}

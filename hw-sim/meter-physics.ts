/**
 * What the meter measures. The meter sits upstream of the contactor, so it always sees line voltage; power flows
 * only while the contacts are closed and the EV is plugged and asking for charge (pilot C).
 *
 * Energy is integrated lazily, whenever someone looks (`values`, `energyWh`) and just before the relay or the EV
 * changes state (their `onWillChange` hooks), so each interval is counted at the power that really flowed in it.
 * The accumulator is in W·ms: integer W × integer ms stays an exact integer in a float64 up to 2^53 W·ms
 * (≈ 2.5 GWh), so 11 000 W for one hour is exactly 11 000 Wh, not 10 999.999…
 * The register holds whole Wh, as a meter's energy counter ticks; the Modbus server shows it as float32 kWh.
 */
import type { MeterSample, PhaseReading } from "../drivers/meters/types.ts";
import type { Clock } from "./clock.ts";
import type { EvModel } from "./ev.ts";
import type { Relay } from "./relay.ts";

export interface MeterPhysicsOptions {
  /** Phases of the supply the meter measures (the meter model's). */
  phases: 1 | 3;
  /** Seed of the voltage noise. Same seed, same clock times: same voltages. Default 1. */
  seed?: number;
  /** Default 230 V. */
  nominalVoltageV?: number;
  /** Peak deviation from nominal, V; 0 for a flat 230.0 V. Default 1. */
  voltageNoiseV?: number;
  /** How long one noisy voltage holds, ms. Default 1000 (a meter's display refresh). */
  noiseIntervalMs?: number;
  /** Default 50 Hz. */
  frequencyHz?: number;
  /** The import register at start, Wh (a meter in service has history). Default 0. */
  importEnergyWh?: number;
  /** Longest integration step while the demand changes (the taper), ms. Default 1000. */
  maxStepMs?: number;
}

const MS_PER_HOUR = 3_600_000;
/** Float dust allowed below a whole Wh before the register shows it. */
const WH_EPSILON = 1e-9;

/** murmur3's 32-bit finalizer: a well-mixed hash of (seed, phase, tick) without keeping PRNG state. */
function mix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Deterministic noise in [-1, 1) for one phase in one noise interval. */
function noiseUnit(seed: number, phase: number, tick: number): number {
  const h = mix32(mix32(mix32(seed) ^ Math.imul(phase + 1, 0x9e3779b1)) ^ tick);
  return h / 2 ** 31 - 1;
}

const round = (value: number, decimals: number): number => {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
};

export class MeterPhysics {
  readonly phases: 1 | 3;
  readonly frequencyHz: number;

  readonly #clock: Clock;
  readonly #relay: Relay;
  readonly #ev: EvModel;
  readonly #seed: number;
  readonly #nominalVoltageV: number;
  readonly #voltageNoiseV: number;
  readonly #noiseIntervalMs: number;
  readonly #maxStepMs: number;
  #energyWms: number;
  #lastMs: number;
  readonly #unsubscribe: (() => void)[];

  constructor(clock: Clock, relay: Relay, ev: EvModel, options: MeterPhysicsOptions) {
    this.#clock = clock;
    this.#relay = relay;
    this.#ev = ev;
    this.phases = options.phases;
    this.#seed = options.seed ?? 1;
    this.#nominalVoltageV = options.nominalVoltageV ?? 230;
    this.#voltageNoiseV = options.voltageNoiseV ?? 1;
    this.#noiseIntervalMs = options.noiseIntervalMs ?? 1000;
    this.frequencyHz = options.frequencyHz ?? 50;
    this.#maxStepMs = options.maxStepMs ?? 1000;
    const importEnergyWh = options.importEnergyWh ?? 0;
    if (!Number.isSafeInteger(importEnergyWh) || importEnergyWh < 0) {
      throw new RangeError(`meter.importEnergyWh: expected an integer Wh >= 0, got ${importEnergyWh}`);
    }
    if (!(this.#noiseIntervalMs > 0) || !(this.#maxStepMs > 0)) {
      throw new RangeError("meter.noiseIntervalMs and meter.maxStepMs: expected ms > 0");
    }
    this.#energyWms = importEnergyWh * MS_PER_HOUR;
    this.#lastMs = clock.nowMs();
    const advance = (): void => this.advance();
    this.#unsubscribe = [relay.onWillChange(advance), ev.onWillChange(advance)];
  }

  /** Power flowing through the meter at this instant, W. */
  flowW(): number {
    if (!this.#relay.contactsClosed() || !this.#ev.plugged) return 0;
    return this.#ev.powerDemandW();
  }

  /** Integrates energy up to the clock's now, delivering it to the EV. */
  advance(): void {
    const nowMs = this.#clock.nowMs();
    while (this.#lastMs < nowMs) {
      const powerW = this.flowW();
      if (powerW <= 0) break;
      const constantWh = this.#ev.constantDemandWh();
      // Below the taper the demand is constant until the taper starts: one exact step up to there.
      const limitMs = constantWh > 0 ? Math.max((constantWh * MS_PER_HOUR) / powerW, 1) : this.#maxStepMs;
      const stepMs = Math.min(nowMs - this.#lastMs, limitMs);
      let stepWms = powerW * stepMs;
      const offeredWh = stepWms / MS_PER_HOUR;
      const acceptedWh = this.#ev.absorb(offeredWh);
      // The battery filled up within this step: only what it took flowed.
      if (acceptedWh < offeredWh) stepWms = acceptedWh * MS_PER_HOUR;
      this.#energyWms += stepWms;
      this.#lastMs += stepMs;
    }
    this.#lastMs = nowMs;
  }

  /** The import energy accumulator, Wh, with fractions. */
  energyWh(): number {
    this.advance();
    return this.#energyWms / MS_PER_HOUR;
  }

  /** Fault: the import register jumps to 0 (a replaced or reset meter); the driver must call that implausible. */
  resetEnergyRegister(): void {
    this.advance();
    this.#energyWms = 0;
  }

  /** Line-to-neutral voltages now, V, rounded to 0.1 V as the meter resolves them. */
  voltagesV(): number[] {
    const tick = Math.floor(this.#clock.nowMs() / this.#noiseIntervalMs);
    return Array.from({ length: this.phases }, (_, phase) =>
      round(this.#nominalVoltageV + this.#voltageNoiseV * noiseUnit(this.#seed, phase, tick), 1),
    );
  }

  /** Everything the meter's registers hold at the clock's now. */
  values(): Omit<MeterSample, "readAtMs"> {
    this.advance();
    const powerW = this.flowW();
    // A single-phase EV on a three-phase supply loads L1 only.
    const loadedPhases = Math.min(this.#ev.phases, this.phases);
    const phases: PhaseReading[] = this.voltagesV().map((voltageV, index) => {
      const phasePowerW = index < loadedPhases ? powerW / loadedPhases : 0;
      return { voltageV, currentA: round(phasePowerW / voltageV, 3), powerW: phasePowerW };
    });
    return {
      importEnergyWh: Math.floor(this.#energyWms / MS_PER_HOUR + WH_EPSILON),
      exportEnergyWh: 0,
      powerW,
      frequencyHz: this.frequencyHz,
      phases,
    };
  }

  /** Stops listening to the relay and the EV. */
  dispose(): void {
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
  }
}

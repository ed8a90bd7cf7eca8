/**
 * The electric vehicle at the plug: presence, IEC 61851-1 control pilot state, battery and charge curve.
 *
 * Charge curve (power the on-board charger asks for, in W):
 *   maxPowerW = min(phases × nominalVoltageV × maxCurrentA, onboardChargerW)
 *   stored ≤ taperStart:         maxPowerW
 *   taperStart < stored < full:  linear from maxPowerW down to taperEndPowerW at 100 %
 *   stored ≥ capacity:           0 (full; pilot back to B)
 * where taperStart = capacityWh × taperStartPercent / 100. State of charge is kept in Wh, not as a fraction,
 * so curve values at round SoCs are exact (0.8 × 50 000 Wh is not, 50 000 × 80 / 100 is).
 */
import type { Clock } from "./clock.ts";

/** IEC 61851-1 pilot states the simulator produces: A not connected, B connected and not charging, C charging requested. */
export type PilotState = "A" | "B" | "C";

export interface EvOptions {
  /** Usable battery capacity in Wh. Default 60 000. */
  capacityWh?: number;
  /** Initial state of charge in % of capacity. Default 20. */
  socPercent?: number;
  /** Phases the on-board charger uses (limited further by the supply). Default 3. */
  phases?: 1 | 2 | 3;
  /** Per-phase current limit in A. Default 16. */
  maxCurrentA?: number;
  /** Nominal line-to-neutral voltage the charger assumes, V. Default 230. */
  nominalVoltageV?: number;
  /** On-board charger rating in W, the cap on phases × V × A. Default 11 000. */
  onboardChargerW?: number;
  /** SoC (%) above which power tapers. Default 80. */
  taperStartPercent?: number;
  /** Power just before full, W. Default 10 % of maxPowerW. */
  taperEndPowerW?: number;
  /** Starts plugged in. Default false. */
  plugged?: boolean;
}

export interface EvState {
  plugged: boolean;
  /** Paused by the EV (its own schedule or button): pilot B although not full. */
  paused: boolean;
  pilot: PilotState;
  full: boolean;
  capacityWh: number;
  storedEnergyWh: number;
  socPercent: number;
  maxPowerW: number;
  /** What the EV would draw right now if the contactor were closed, W. */
  powerDemandW: number;
  /** Clock time of the last plug-in, or null while unplugged. */
  pluggedAtMs: number | null;
}

type Listener = () => void;

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`ev.${name}: expected a number > 0, got ${value}`);
  return value;
}

function percent(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0 || value > 100) {
    throw new RangeError(`ev.${name}: expected a percentage 0..100, got ${value}`);
  }
  return value;
}

export class EvModel {
  readonly capacityWh: number;
  readonly phases: 1 | 2 | 3;
  readonly maxPowerW: number;
  readonly taperStartWh: number;
  readonly taperEndPowerW: number;

  readonly #clock: Clock;
  #storedWh: number;
  #plugged = false;
  #paused = false;
  #pluggedAtMs: number | null = null;
  readonly #willChange = new Set<Listener>();
  readonly #changed = new Set<Listener>();

  constructor(clock: Clock, options: EvOptions = {}) {
    this.#clock = clock;
    this.capacityWh = positive("capacityWh", options.capacityWh ?? 60_000);
    this.phases = options.phases ?? 3;
    if (![1, 2, 3].includes(this.phases)) throw new RangeError(`ev.phases: expected 1, 2 or 3, got ${this.phases}`);
    const maxCurrentA = positive("maxCurrentA", options.maxCurrentA ?? 16);
    const nominalVoltageV = positive("nominalVoltageV", options.nominalVoltageV ?? 230);
    const onboardChargerW = positive("onboardChargerW", options.onboardChargerW ?? 11_000);
    this.maxPowerW = Math.min(this.phases * nominalVoltageV * maxCurrentA, onboardChargerW);
    this.taperStartWh = (this.capacityWh * percent("taperStartPercent", options.taperStartPercent ?? 80)) / 100;
    const taperEndPowerW = options.taperEndPowerW ?? this.maxPowerW / 10;
    if (!Number.isFinite(taperEndPowerW) || taperEndPowerW < 0) {
      throw new RangeError(`ev.taperEndPowerW: expected a number >= 0, got ${taperEndPowerW}`);
    }
    this.taperEndPowerW = Math.min(taperEndPowerW, this.maxPowerW);
    this.#storedWh = (this.capacityWh * percent("socPercent", options.socPercent ?? 20)) / 100;
    if (options.plugged) this.plug();
  }

  get plugged(): boolean {
    return this.#plugged;
  }

  get paused(): boolean {
    return this.#paused;
  }

  storedEnergyWh(): number {
    return this.#storedWh;
  }

  socPercent(): number {
    return (this.#storedWh / this.capacityWh) * 100;
  }

  isFull(): boolean {
    return this.#storedWh >= this.capacityWh;
  }

  /** Energy the battery still takes, Wh. */
  roomWh(): number {
    return Math.max(0, this.capacityWh - this.#storedWh);
  }

  pilotState(): PilotState {
    if (!this.#plugged) return "A";
    return this.#paused || this.isFull() ? "B" : "C";
  }

  /** The charge curve at the current SoC, W: what the EV draws if the contactor is closed (0 unless pilot C). */
  powerDemandW(): number {
    if (this.pilotState() !== "C") return 0;
    return this.curvePowerW(this.#storedWh);
  }

  /** The charge curve at `storedWh`, regardless of plug and pause, W. */
  curvePowerW(storedWh: number): number {
    if (storedWh >= this.capacityWh) return 0;
    if (storedWh <= this.taperStartWh) return this.maxPowerW;
    const fraction = (storedWh - this.taperStartWh) / (this.capacityWh - this.taperStartWh);
    return this.maxPowerW - (this.maxPowerW - this.taperEndPowerW) * fraction;
  }

  /**
   * Energy the EV can take before its demand changes, Wh: up to the taper start while below it, 0 inside the
   * taper (the demand changes continuously there). Lets the meter integrate constant power in one exact step.
   */
  constantDemandWh(): number {
    return Math.max(0, this.taperStartWh - this.#storedWh);
  }

  /** Stores energy delivered through the contactor; returns the Wh accepted (never more than the room left). */
  absorb(energyWh: number): number {
    if (!Number.isFinite(energyWh) || energyWh < 0) throw new RangeError(`ev.absorb: expected Wh >= 0, got ${energyWh}`);
    if (!this.#plugged) return 0;
    const accepted = Math.min(energyWh, this.roomWh());
    if (accepted === 0) return 0;
    const wasFull = this.isFull();
    this.#storedWh = Math.min(this.capacityWh, this.#storedWh + accepted);
    // Reaching full moves the pilot C -> B; observers (board, control endpoint) hear about it like any other change.
    if (!wasFull && this.isFull()) this.#emit(this.#changed);
    return accepted;
  }

  plug(): void {
    if (this.#plugged) return;
    this.#change(() => {
      this.#plugged = true;
      this.#pluggedAtMs = this.#clock.nowMs();
    });
  }

  /** Unplugging also ends an EV-side pause: the next plug-in starts a fresh session. */
  unplug(): void {
    if (!this.#plugged) return;
    this.#change(() => {
      this.#plugged = false;
      this.#paused = false;
      this.#pluggedAtMs = null;
    });
  }

  pause(): void {
    if (this.#paused) return;
    this.#change(() => {
      this.#paused = true;
    });
  }

  resume(): void {
    if (!this.#paused) return;
    this.#change(() => {
      this.#paused = false;
    });
  }

  /**
   * Sets the state of charge (a bench knob, like swapping cars). Observers integrating energy hear `willChange`
   * first, so the energy so far is counted at the old demand.
   */
  setSocPercent(value: number): void {
    percent("socPercent", value);
    this.#change(() => {
      this.#storedWh = (this.capacityWh * value) / 100;
    });
  }

  state(): EvState {
    return {
      plugged: this.#plugged,
      paused: this.#paused,
      pilot: this.pilotState(),
      full: this.isFull(),
      capacityWh: this.capacityWh,
      storedEnergyWh: this.#storedWh,
      socPercent: this.socPercent(),
      maxPowerW: this.maxPowerW,
      powerDemandW: this.powerDemandW(),
      pluggedAtMs: this.#pluggedAtMs,
    };
  }

  /** Called just before plug, unplug, pause, resume or a SoC change takes effect (to integrate up to that instant). */
  onWillChange(listener: Listener): () => void {
    this.#willChange.add(listener);
    return () => this.#willChange.delete(listener);
  }

  /** Called after plug, unplug, pause, resume, a SoC change, or the battery becoming full. */
  onChange(listener: Listener): () => void {
    this.#changed.add(listener);
    return () => this.#changed.delete(listener);
  }

  #change(apply: () => void): void {
    this.#emit(this.#willChange);
    apply();
    this.#emit(this.#changed);
  }

  #emit(listeners: Set<Listener>): void {
    for (const listener of [...listeners]) listener();
  }
}

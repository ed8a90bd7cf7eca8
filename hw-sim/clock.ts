/**
 * The simulator's only source of time. Models read `nowMs()` and schedule with `setTimer`, never `Date.now()` or
 * `setTimeout`, so a test drives a whole board with a manual clock and gets the same Wh on every run.
 */

export interface Clock {
  /** Unix time in ms (a manual clock may start anywhere). */
  nowMs(): number;
  /** Calls `callback` once, `delayMs` from now; returns a function that cancels it. */
  setTimer(delayMs: number, callback: () => void): () => void;
}

/** Wall-clock time and Node timers. Timers are unref'd: a pending relay delay never keeps a process alive. */
export const realClock: Clock = Object.freeze({
  nowMs: (): number => Date.now(),
  setTimer(delayMs: number, callback: () => void): () => void {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    timer.unref();
    return () => clearTimeout(timer);
  },
});

interface PendingTimer {
  dueMs: number;
  /** Order of scheduling, so timers due at the same ms fire first-come first-served. */
  seq: number;
  callback: () => void;
}

/**
 * Time that moves only when told. `advance` fires every timer that falls due on the way, each with the clock set
 * to its due time, so a model that integrates power sees state changes at their exact instants.
 */
export class ManualClock implements Clock {
  #nowMs: number;
  #seq = 0;
  #timers = new Set<PendingTimer>();

  constructor(startMs = 0) {
    this.#nowMs = startMs;
  }

  nowMs(): number {
    return this.#nowMs;
  }

  setTimer(delayMs: number, callback: () => void): () => void {
    const timer: PendingTimer = { dueMs: this.#nowMs + Math.max(0, delayMs), seq: this.#seq++, callback };
    this.#timers.add(timer);
    return () => {
      this.#timers.delete(timer);
    };
  }

  /** Moves time forward by `ms` (>= 0), firing due timers in order, including ones they schedule on the way. */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`ManualClock.advance: expected ms >= 0, got ${ms}`);
    this.advanceTo(this.#nowMs + ms);
  }

  /** Moves time forward to `targetMs` (not before now), firing due timers in order. */
  advanceTo(targetMs: number): void {
    if (!Number.isFinite(targetMs) || targetMs < this.#nowMs) {
      throw new RangeError(`ManualClock.advanceTo: expected a time >= ${this.#nowMs}, got ${targetMs}`);
    }
    for (;;) {
      const next = this.#nextDue(targetMs);
      if (!next) break;
      this.#timers.delete(next);
      this.#nowMs = next.dueMs;
      next.callback();
    }
    this.#nowMs = targetMs;
  }

  /** Timers not yet fired. */
  pendingTimers(): number {
    return this.#timers.size;
  }

  #nextDue(limitMs: number): PendingTimer | undefined {
    let best: PendingTimer | undefined;
    for (const timer of this.#timers) {
      if (timer.dueMs > limitMs) continue;
      if (!best || timer.dueMs < best.dueMs || (timer.dueMs === best.dueMs && timer.seq < best.seq)) best = timer;
    }
    return best;
  }
}

/**
 * Wall-clock time running `factor` times faster from the moment it is made. `trustpile sim` uses it so a
 * session that would take an hour at 11 kW takes minutes; the agent keeps real time, only the physics speed up.
 */
export function acceleratedClock(factor: number): Clock {
  if (!Number.isFinite(factor) || factor < 1) throw new RangeError(`acceleratedClock: expected factor >= 1, got ${factor}`);
  const startedAtMs = Date.now();
  return Object.freeze({
    nowMs: (): number => startedAtMs + (Date.now() - startedAtMs) * factor,
    setTimer(delayMs: number, callback: () => void): () => void {
      const timer = setTimeout(callback, Math.max(0, delayMs) / factor);
      timer.unref();
      return () => clearTimeout(timer);
    },
  });
}

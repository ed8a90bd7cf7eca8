/**
 * The seeded fault schedule: which fault each session gets and at which moment of it. Everything random in a
 * fault run comes from here (mulberry32 of the printed seed), so `FAULT_SEED=<seed>` replays the same schedule.
 * The moments are agent phases or a share of the session's energy budget, not wall-clock times, so a replay hits
 * the same point of the session on a faster or slower machine.
 */
import { mulberry32 } from "../helpers/prng.ts";

export const FAULT_KINDS = [
  "kill9",
  "rpcDown",
  "csmsDown",
  "brokerDown",
  "meterOffline",
  "meterCrcErrors",
  "meterLateReplies",
  "meterEnergyReset",
  "relayWeld",
  "reorgBelowDepth",
  "reorgAboveDepth",
  "clockJump",
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

/** Where in the session the fault strikes. */
export type FaultMoment =
  | { phase: "depositPending" | "authorizing" | "stopping" | "settling" }
  /** While energized, once this share (0..1) of the session's energy budget has been delivered. */
  | { phase: "energized"; budgetShare: number };

export interface PlannedFault {
  kind: FaultKind;
  at: FaultMoment;
  /** How long a lasting fault (an outage, a meter fault) lasts, ms. */
  durationMs: number;
  /** clockJump: the step of the pile's wall clock, ms (negative: back). meterLateReplies: the reply delay, ms. */
  magnitude: number;
}

export interface PlannedSession {
  index: number;
  /** Energy the session should deliver before its budget stops it, Wh. */
  targetWh: number;
  fault?: PlannedFault;
}

export interface ScheduleOptions {
  sessions: number;
  /** Share of sessions that get a fault (0..1); every kind in `kinds` is used at least once when sessions allow. */
  faultShare: number;
  kinds: readonly FaultKind[];
  minTargetWh: number;
  maxTargetWh: number;
}

type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function between(random: Random, low: number, high: number): number {
  return Math.round(low + random() * (high - low));
}

export function planFault(random: Random, kind: FaultKind): PlannedFault {
  const energized = (): FaultMoment => ({ phase: "energized", budgetShare: 0.15 + random() * 0.6 });
  switch (kind) {
    case "kill9":
      // Any phase a session passes through; energized twice as likely (the contactor is closed at the kill).
      return { kind, at: pick<FaultMoment>(random, [{ phase: "depositPending" }, { phase: "authorizing" }, energized(), energized(), { phase: "stopping" }, { phase: "settling" }]), durationMs: 0, magnitude: 0 };
    case "rpcDown":
      return { kind, at: pick<FaultMoment>(random, [energized(), energized(), { phase: "settling" }, { phase: "depositPending" }]), durationMs: between(random, 2_000, 6_000), magnitude: 0 };
    case "csmsDown":
    case "brokerDown":
      return { kind, at: pick<FaultMoment>(random, [energized(), { phase: "depositPending" }, { phase: "settling" }]), durationMs: between(random, 1_000, 5_000), magnitude: 0 };
    case "meterOffline":
    case "meterCrcErrors":
      return { kind, at: energized(), durationMs: between(random, 800, 5_000), magnitude: 0 };
    case "meterLateReplies":
      // Around the driver's 500 ms timeout: some replies are late but in time, some time out.
      return { kind, at: energized(), durationMs: between(random, 1_500, 5_000), magnitude: between(random, 200, 900) };
    case "meterEnergyReset":
    case "relayWeld":
      return { kind, at: energized(), durationMs: 0, magnitude: 0 };
    case "reorgBelowDepth":
      return { kind, at: { phase: "depositPending" }, durationMs: 0, magnitude: 0 };
    case "reorgAboveDepth":
      // Right after energizing: the reorg is only a few blocks deeper than the confirmations.
      return { kind, at: { phase: "energized", budgetShare: 0.02 }, durationMs: 0, magnitude: 0 };
    case "clockJump":
      return { kind, at: pick<FaultMoment>(random, [energized(), { phase: "depositPending" }, { phase: "stopping" }]), durationMs: 0, magnitude: pick(random, [3_600_000, -3_600_000, 300_000, -300_000]) };
  }
}

/** The sessions of a run: every kind at least once (shuffled), the rest of the faulted share drawn at random. */
export function planSchedule(seed: number, options: ScheduleOptions): PlannedSession[] {
  const random = mulberry32(seed);
  const faulted = options.faultShare === 0 ? 0 : Math.min(options.sessions, Math.max(Math.round(options.sessions * options.faultShare), Math.min(options.kinds.length, options.sessions)));
  const kinds: FaultKind[] = [...options.kinds];
  while (kinds.length < faulted) kinds.push(pick(random, options.kinds));
  kinds.length = faulted;
  // Fisher-Yates over the session slots: which sessions get which fault.
  const slots: (FaultKind | undefined)[] = [...kinds, ...Array.from({ length: options.sessions - faulted }, () => undefined)];
  for (let i = slots.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [slots[i], slots[j]] = [slots[j], slots[i]];
  }
  return slots.map((kind, index) => ({
    index,
    targetWh: between(random, options.minTargetWh, options.maxTargetWh),
    ...(kind ? { fault: planFault(random, kind) } : {}),
  }));
}

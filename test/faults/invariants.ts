/**
 * The invariant checker of the fault-injection suite (issue 11, item 1): a pure function over a recorded run —
 * the relay's edge history per pile, the simulated meter's energy history, what the chain and the journal say
 * about every session, the agent processes' RSS samples — that returns every broken invariant with an explanation.
 * Nothing here talks to a process or a chain, so the checker itself is unit-tested with planted violations
 * (test/faults/invariants.test.ts), and the short suite and the soak feed it the same shape.
 *
 * Times are the test process's wall clock (ms); the agent's own clock may be stepped by a clock-jump fault and is
 * never used here.
 */
import type { FaultKind } from "./schedule.ts";

/** The meter as physics sees it: `physicalWh` only ever grows (an energy-register reset does not undo energy). */
export interface MeterPoint {
  atMs: number;
  physicalWh: number;
  /** The import register as the meter shows it (may jump to 0 on a register reset). */
  registerWh: number;
}

/** A level of the relay's output line (what the agent commanded; a welded contactor may disagree). */
export interface RelayEdge {
  atMs: number;
  closed: boolean;
}

export interface RssSample {
  atMs: number;
  pid: number;
  rssKb: number;
}

/** A span with no agent process alive on the pile (from a kill -9 to the restarted process being ready). */
export interface AgentDownSpan {
  fromMs: number;
  toMs: number;
}

export interface PileRecord {
  name: string;
  relayEdges: RelayEdge[];
  meter: MeterPoint[];
  rss: RssSample[];
  /**
   * While no agent runs, a contactor left closed stays closed (sysfs keeps the level, as on a Pi): what flows then
   * is physics, not the agent's decision, and a supervisor's restart time bounds it. Not counted against the deposit.
   */
  agentDown?: AgentDownSpan[];
}

/** What the chain says about a session after the run; absent when its deposit transaction is no longer canonical. */
export interface ChainSessionView {
  status: "Opened" | "Authorized" | "Settled" | "Cancelled" | "Expired" | "None";
  settledEvents: number;
  chargingRecords: number;
  energyWh: number;
}

/** What the pile's journal says about a session's settlement (outbox row `settle:<id>`), if the row still exists. */
export interface JournalSettleView {
  status: "pending" | "done" | "failed";
  /** meterStopWh − meterStartWh of the signed total in the outbox payload; absent once compacted to a tombstone. */
  signedEnergyWh?: number;
}

export interface SessionRecord {
  /** A label unique in the run (session ids may repeat after a reorg dropped a deposit). */
  label: string;
  pile: string;
  sessionId: string;
  depositTxHash: string;
  depositWei: bigint;
  priceWeiPerKWh: bigint;
  maxEnergyWh: number;
  /** From the deposit being sent until the pile was idle again with its relay open. */
  windowStartMs: number;
  windowEndMs: number;
  /** First time the test saw the deposit buried under `confirmations` blocks, and saw it Authorized on chain. */
  confirmedSeenAtMs?: number;
  authorizedSeenAtMs?: number;
  faults: FaultKind[];
  chain?: ChainSessionView;
  journal?: JournalSettleView;
}

export interface CheckLimits {
  /** How late the test's chain observer may see a block or a status the agent already acted on. */
  observerSlackMs: number;
  /** Settled Wh vs meter delta. */
  wholeWhToleranceWh: number;
  rssCeilingKb: number;
  /** Largest rise of one process's RSS between the first and the last quarter of its samples. */
  rssGrowthKb: number;
  /** Samples a process needs after its warm-up before its growth is judged. */
  rssMinSamples: number;
  /** A process's first this many ms (module loading, JIT, first sessions' caches) are not judged for growth. */
  rssWarmUpMs: number;
}

export const DEFAULT_LIMITS: CheckLimits = {
  observerSlackMs: 500,
  wholeWhToleranceWh: 1,
  rssCeilingKb: 512 * 1024,
  rssGrowthKb: 48 * 1024,
  rssMinSamples: 120,
  rssWarmUpMs: 60_000,
};

export interface RecordedRun {
  seed: number;
  confirmations: number;
  piles: PileRecord[];
  sessions: SessionRecord[];
  limits?: Partial<CheckLimits>;
}

export type InvariantName =
  | "relayClosedWithoutConfirmedDeposit"
  | "sessionNotEndedOnce"
  | "settledWhNotMeterDelta"
  | "deliveredBeyondDeposit"
  | "journalDisagreesWithChain"
  | "memoryUnbounded";

export interface Violation {
  invariant: InvariantName;
  pile?: string;
  session?: string;
  message: string;
}

export interface CheckReport {
  violations: Violation[];
  /** Individual checks evaluated (one per interval, session and rule, process), for the report's figures. */
  checksRun: number;
}

/** Faults after which the meter delta legitimately differs from the settled Wh (documented in faults.test.ts). */
const METER_DELTA_EXEMPT: readonly FaultKind[] = ["relayWeld", "meterEnergyReset", "reorgAboveDepth"];

interface ClosedInterval {
  fromMs: number;
  /** Undefined: still closed at the end of the record. */
  toMs: number | undefined;
}

export function closedIntervals(edges: readonly RelayEdge[]): ClosedInterval[] {
  const intervals: ClosedInterval[] = [];
  let openSince: number | undefined;
  for (const edge of edges) {
    if (edge.closed && openSince === undefined) openSince = edge.atMs;
    else if (!edge.closed && openSince !== undefined) {
      intervals.push({ fromMs: openSince, toMs: edge.atMs });
      openSince = undefined;
    }
  }
  if (openSince !== undefined) intervals.push({ fromMs: openSince, toMs: undefined });
  return intervals;
}

/** Physical energy at `atMs`: the last meter point at or before it (0 before the first). */
export function physicalWhAt(meter: readonly MeterPoint[], atMs: number): number {
  let low = 0;
  let high = meter.length - 1;
  let found: MeterPoint | undefined;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const point = meter[middle]!;
    if (point.atMs <= atMs) {
      found = point;
      low = middle + 1;
    } else high = middle - 1;
  }
  return found?.physicalWh ?? meter[0]?.physicalWh ?? 0;
}

export function energyCoveredWh(depositWei: bigint, priceWeiPerKWh: bigint): number {
  return Number((depositWei * 1000n) / priceWeiPerKWh);
}

function iso(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

export function checkInvariants(run: RecordedRun): CheckReport {
  const limits: CheckLimits = { ...DEFAULT_LIMITS, ...run.limits };
  const violations: Violation[] = [];
  let checksRun = 0;
  const piles = new Map(run.piles.map((pile) => [pile.name, pile]));

  // ---- 1. the relay never closed without a confirmed, authorized deposit (and never outside a session)
  for (const pile of run.piles) {
    const sessions = run.sessions.filter((session) => session.pile === pile.name);
    for (const interval of closedIntervals(pile.relayEdges)) {
      checksRun++;
      const owner = sessions.find((session) => session.windowStartMs <= interval.fromMs && interval.fromMs <= session.windowEndMs);
      if (!owner) {
        violations.push({
          invariant: "relayClosedWithoutConfirmedDeposit",
          pile: pile.name,
          message: `relay of ${pile.name} closed at ${iso(interval.fromMs)} outside every session`,
        });
        continue;
      }
      const deadline = interval.fromMs + limits.observerSlackMs;
      if (owner.confirmedSeenAtMs === undefined || owner.confirmedSeenAtMs > deadline) {
        violations.push({
          invariant: "relayClosedWithoutConfirmedDeposit",
          pile: pile.name,
          session: owner.label,
          message: `relay of ${pile.name} closed at ${iso(interval.fromMs)} for session ${owner.label} whose deposit had not ${run.confirmations} confirmations (${owner.confirmedSeenAtMs === undefined ? "never confirmed" : `confirmed at ${iso(owner.confirmedSeenAtMs)}`})`,
        });
      } else if (owner.authorizedSeenAtMs === undefined || owner.authorizedSeenAtMs > deadline) {
        violations.push({
          invariant: "relayClosedWithoutConfirmedDeposit",
          pile: pile.name,
          session: owner.label,
          message: `relay of ${pile.name} closed at ${iso(interval.fromMs)} for session ${owner.label} before it was authorized on chain (${owner.authorizedSeenAtMs === undefined ? "never authorized" : `authorized at ${iso(owner.authorizedSeenAtMs)}`})`,
        });
      }
      if (interval.toMs === undefined || interval.toMs > owner.windowEndMs) {
        violations.push({
          invariant: "relayClosedWithoutConfirmedDeposit",
          pile: pile.name,
          session: owner.label,
          message: `relay of ${pile.name} still closed ${interval.toMs === undefined ? "at the end of the run" : `at ${iso(interval.toMs)}`}, after session ${owner.label} ended at ${iso(owner.windowEndMs)}`,
        });
      }
    }
  }

  for (const session of run.sessions) {
    const pile = piles.get(session.pile);
    const meter = pile?.meter ?? [];
    const chain = session.chain;
    const tag = { pile: session.pile, session: session.label };

    // ---- 2. ended settled exactly once, or refunded / cancelled / expired, or (only after a reorg) gone
    checksRun++;
    const reorged = session.faults.includes("reorgBelowDepth") || session.faults.includes("reorgAboveDepth");
    if (!chain) {
      if (!reorged) {
        violations.push({ invariant: "sessionNotEndedOnce", ...tag, message: `session ${session.label}: its deposit ${session.depositTxHash} is not on the chain, and no reorg was injected` });
      }
    } else if (chain.status === "Settled") {
      if (chain.settledEvents !== 1 || chain.chargingRecords !== 1) {
        violations.push({
          invariant: "sessionNotEndedOnce",
          ...tag,
          message: `session ${session.label} settled with ${chain.settledEvents} SessionSettled events and ${chain.chargingRecords} charging records, expected 1 and 1`,
        });
      }
    } else if (chain.status === "Cancelled" || chain.status === "Expired") {
      if (chain.settledEvents !== 0) {
        violations.push({ invariant: "sessionNotEndedOnce", ...tag, message: `session ${session.label} is ${chain.status} but has ${chain.settledEvents} SessionSettled events` });
      }
    } else {
      violations.push({ invariant: "sessionNotEndedOnce", ...tag, message: `session ${session.label} ended the run ${chain.status} on chain: neither settled nor refunded` });
    }

    // ---- 3. settled Wh == meter delta over the session (±1 Wh); never more than the meter measured
    const deliveredWh = physicalWhAt(meter, session.windowEndMs) - physicalWhAt(meter, session.windowStartMs);
    if (chain?.status === "Settled") {
      checksRun++;
      const exempt = session.faults.some((fault) => METER_DELTA_EXEMPT.includes(fault));
      const overbilled = chain.energyWh > deliveredWh + limits.wholeWhToleranceWh;
      const mismatch = Math.abs(chain.energyWh - deliveredWh) > limits.wholeWhToleranceWh;
      if (overbilled || (!exempt && mismatch)) {
        violations.push({
          invariant: "settledWhNotMeterDelta",
          ...tag,
          message: `session ${session.label} settled ${chain.energyWh} Wh but the meter delivered ${deliveredWh.toFixed(1)} Wh over the session${overbilled ? " (billed more than measured)" : ""}`,
        });
      }
    }

    // ---- 4. no Wh delivered beyond what the deposit pays, while the relay was closed for this session
    if (pile) {
      checksRun++;
      let closedWh = 0;
      let agentDownWh = 0;
      for (const interval of closedIntervals(pile.relayEdges)) {
        if (interval.fromMs < session.windowStartMs || interval.fromMs > session.windowEndMs) continue;
        const toMs = interval.toMs ?? session.windowEndMs;
        closedWh += physicalWhAt(meter, toMs) - physicalWhAt(meter, interval.fromMs);
        for (const down of pile.agentDown ?? []) {
          const from = Math.max(down.fromMs, interval.fromMs);
          const to = Math.min(down.toMs, toMs);
          if (to > from) agentDownWh += physicalWhAt(meter, to) - physicalWhAt(meter, from);
        }
      }
      const allowedWh = Math.min(energyCoveredWh(session.depositWei, session.priceWeiPerKWh), session.maxEnergyWh);
      if (closedWh - agentDownWh > allowedWh + limits.wholeWhToleranceWh) {
        violations.push({
          invariant: "deliveredBeyondDeposit",
          ...tag,
          message: `session ${session.label}: ${(closedWh - agentDownWh).toFixed(1)} Wh flowed while the relay was closed${agentDownWh > 0 ? ` and an agent was running (${agentDownWh.toFixed(1)} Wh more while none was)` : ""}, the deposit pays for ${allowedWh} Wh`,
        });
      }
    }

    // ---- 5. the journal and the chain agree
    if (session.journal) {
      checksRun++;
      if (chain?.status === "Settled" && session.journal.status === "pending") {
        violations.push({ invariant: "journalDisagreesWithChain", ...tag, message: `session ${session.label} is settled on chain but its settlement is still pending in the journal of ${session.pile}` });
      }
      if (chain?.status === "Settled" && session.journal.signedEnergyWh !== undefined && session.journal.signedEnergyWh !== chain.energyWh) {
        violations.push({
          invariant: "journalDisagreesWithChain",
          ...tag,
          message: `session ${session.label}: the journal's signed total is ${session.journal.signedEnergyWh} Wh, the chain settled ${chain.energyWh} Wh`,
        });
      }
    } else if (chain?.status === "Settled" && !reorged) {
      checksRun++;
      violations.push({ invariant: "journalDisagreesWithChain", ...tag, message: `session ${session.label} is settled on chain but the journal of ${session.pile} has no settlement for it` });
    }
  }

  // ---- 6. memory bounded: under the ceiling, and no steady growth within one process
  for (const pile of run.piles) {
    const byPid = new Map<number, RssSample[]>();
    for (const sample of pile.rss) {
      checksRun++;
      if (sample.rssKb > limits.rssCeilingKb) {
        violations.push({ invariant: "memoryUnbounded", pile: pile.name, message: `agent process ${sample.pid} of ${pile.name} used ${sample.rssKb} kB RSS at ${iso(sample.atMs)}, over the ${limits.rssCeilingKb} kB ceiling` });
      }
      byPid.set(sample.pid, [...(byPid.get(sample.pid) ?? []), sample]);
    }
    for (const [pid, all] of byPid) {
      const samples = all.filter((sample) => sample.atMs - all[0]!.atMs >= limits.rssWarmUpMs);
      if (samples.length < limits.rssMinSamples) continue;
      checksRun++;
      const growth = rssGrowthKb(samples);
      if (growth > limits.rssGrowthKb) {
        violations.push({ invariant: "memoryUnbounded", pile: pile.name, message: `agent process ${pid} of ${pile.name} grew ${growth} kB RSS from the first to the last quarter of its ${samples.length} samples after warm-up (limit ${limits.rssGrowthKb} kB)` });
      }
    }
  }

  return { violations, checksRun };
}

/** Mean RSS of the last quarter of `samples` minus the mean of the first quarter. */
export function rssGrowthKb(samples: readonly RssSample[]): number {
  const quarter = Math.max(1, Math.floor(samples.length / 4));
  const mean = (part: readonly RssSample[]): number => part.reduce((sum, sample) => sum + sample.rssKb, 0) / part.length;
  return Math.round(mean(samples.slice(-quarter)) - mean(samples.slice(0, quarter)));
}

/** One line per violation, prefixed with the seed so any failure can be rerun (FAULT_SEED=<seed>). */
export function describeViolations(seed: number, violations: readonly Violation[]): string {
  return violations.map((violation) => `[seed ${seed}] ${violation.invariant}: ${violation.message}`).join("\n");
}

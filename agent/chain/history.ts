/**
 * Algorithm 1 of the paper over the contracts' pointers (DESIGN §4.2, Fig. 2): start at a head and follow the
 * pointers back to 0 (φ). A charge point's history is two lists:
 *
 *   charging records   cpHead(cpId).lastChargingRecord → ChargingLedger.chargingRecord(n).prevOfCp → … → 0
 *   evaluations        cpHead(cpId).lastEvaluation     → Evaluations.evaluationRecord(n).prevOfCp → … → 0
 *
 * and an EV's the same with evHead and prevOfEv. Each step is one eth_call, so the cost grows with that charge
 * point's (or EV's) own history, never with the chain's; no log is ever scanned.
 *
 * Batching the reads: within one list every step needs the pointer the previous step returned, so a list cannot be
 * read faster than one round trip per record. The two lists, though, are independent, and so are the head, R_cp
 * and R_v: they are read concurrently, so a page costs 1 + max(charging records, evaluations) round trips instead
 * of 2 + both. Over HTTP, ethers' JsonRpcProvider coalesces the calls that are in flight together into one JSON-RPC
 * batch, so the two walks also share one HTTP request per step (connectProvider sets no batch stall, which
 * would otherwise add 10 ms to every step). Nothing was added to the contracts for this: a
 * view that returns a whole list in one call would have to loop over an unbounded history inside one eth_call (and
 * hit the node's gas cap for a busy pile), while the pointer walk pages naturally with `limit` and `from`.
 *
 * The walk reads through a `HistoryReader`, so tests can count exactly which calls it makes.
 */
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import type { EvaluationsContract } from "../../contracts/artifacts/Evaluations.ts";

export interface ChargingRecord {
  recordNo: bigint;
  globalNo: bigint;
  sessionId: bigint;
  cpId: string;
  ev: string;
  energyWh: bigint;
  costWei: bigint;
  evScore: number;
  prevOfCp: bigint;
  prevOfEv: bigint;
}

/** An evaluation record; reputations are SD59x18 (1e18 = 1.0). */
export interface EvaluationRecord {
  evaluationNo: bigint;
  globalNo: bigint;
  /** The charging record it rates ("Corresponding CP transaction"). */
  chargingRecordNo: bigint;
  /** The charge point's previous evaluation ("CP Last evaluation height"), 0 for its first. */
  prevOfCp: bigint;
  /** The rating EV's previous evaluation, 0 for its first. */
  prevOfEv: bigint;
  cpId: string;
  ev: string;
  /** W in {1, 2, 3}. */
  score: number;
  reputationBefore: bigint;
  reputationAfter: bigint;
}

export interface Heads {
  lastChargingRecord: bigint;
  lastEvaluation: bigint;
}

/** Every chain read the walk makes; one method call is one eth_call. */
export interface HistoryReader {
  cpHead(cpId: string): Promise<Heads>;
  evHead(ev: string): Promise<Heads>;
  chargingRecord(recordNo: bigint): Promise<ChargingRecord>;
  /** Absent when the deployment has no Evaluations contract: then the walk reads charging records only. */
  evaluations?: {
    evaluationRecord(evaluationNo: bigint): Promise<EvaluationRecord>;
    /** R_cp as SD59x18. */
    reputation(cpId: string): Promise<bigint>;
  };
  /** R_v = Σ B_vi (eq. 1), an integer. */
  credibility(ev: string): Promise<bigint>;
}

export function contractReader(ledger: ChargingLedgerContract, evaluations?: EvaluationsContract): HistoryReader {
  const reader: HistoryReader = {
    cpHead: async (cpId) => headsOf(await ledger.cpHead(cpId)),
    evHead: async (ev) => headsOf(await ledger.evHead(ev)),
    chargingRecord: (recordNo) => readChargingRecord(ledger, recordNo),
    credibility: (ev) => ledger.credibility(ev),
  };
  if (evaluations) {
    reader.evaluations = {
      evaluationRecord: (evaluationNo) => readEvaluationRecord(evaluations, evaluationNo),
      reputation: (cpId) => evaluations.reputation(cpId),
    };
  }
  return reader;
}

function headsOf(heads: { lastChargingRecord: bigint; lastEvaluation: bigint }): Heads {
  return { lastChargingRecord: heads.lastChargingRecord, lastEvaluation: heads.lastEvaluation };
}

export async function readChargingRecord(ledger: ChargingLedgerContract, recordNo: bigint): Promise<ChargingRecord> {
  const r = await ledger.chargingRecord(recordNo);
  return {
    recordNo,
    globalNo: r.globalNo,
    sessionId: r.sessionId,
    cpId: r.cpId,
    ev: r.ev,
    energyWh: r.energyWh,
    costWei: r.cost,
    evScore: Number(r.evScore),
    prevOfCp: r.prevOfCp,
    prevOfEv: r.prevOfEv,
  };
}

export async function readEvaluationRecord(evaluations: EvaluationsContract, evaluationNo: bigint): Promise<EvaluationRecord> {
  const r = await evaluations.evaluationRecord(evaluationNo);
  return {
    evaluationNo,
    globalNo: r.globalNo,
    chargingRecordNo: r.chargingRecordNo,
    prevOfCp: r.prevOfCp,
    prevOfEv: r.prevOfEv,
    cpId: r.cpId,
    ev: r.ev,
    score: Number(r.score),
    reputationBefore: r.reputationBefore,
    reputationAfter: r.reputationAfter,
  };
}

export interface HistoryOptions {
  /** At most this many charging records and at most this many evaluations (each list is paged on its own). */
  limit?: number;
  /**
   * Where to start instead of the heads: the `next` of a previous page. A list whose start is 0 is not read
   * (it was exhausted). Omitted: start at the heads.
   */
  from?: HistoryCursor;
}

/** Where each list continues; 0 when the list is exhausted. */
export interface HistoryCursor {
  chargingRecord: bigint;
  evaluation: bigint;
}

interface HistoryPage {
  /** Newest first. */
  chargingRecords: ChargingRecord[];
  /** Newest first; undefined when the reader has no Evaluations contract. */
  evaluations: EvaluationRecord[] | undefined;
  next: HistoryCursor;
}

export interface CpHistory extends HistoryPage {
  cpId: string;
  /** R_cp now, SD59x18; undefined without an Evaluations contract. */
  reputation: bigint | undefined;
}

export interface EvHistory extends HistoryPage {
  ev: string;
  /** R_v now (eq. 1). */
  credibility: bigint;
}

type Direction = "cp" | "ev";

/** Algorithm 1 for a charge point: its charging records and the evaluations it received, and R_cp. */
export async function cpHistory(reader: HistoryReader, cpId: string, options: HistoryOptions = {}): Promise<CpHistory> {
  const [start, reputation] = await Promise.all([
    options.from ?? headsAsCursor(reader.cpHead(cpId)),
    reader.evaluations?.reputation(cpId),
  ]);
  const page = await walkBoth(reader, "cp", start, options.limit);
  return { cpId, reputation, ...page };
}

/** The same for an EV: its charging records, the evaluations it gave, and its credibility R_v. */
export async function evHistory(reader: HistoryReader, ev: string, options: HistoryOptions = {}): Promise<EvHistory> {
  const [start, credibility] = await Promise.all([
    options.from ?? headsAsCursor(reader.evHead(ev)),
    reader.credibility(ev),
  ]);
  const page = await walkBoth(reader, "ev", start, options.limit);
  return { ev, credibility, ...page };
}

/** Charging records only, newest first (the walk before evaluations existed; kept for its callers). */
export async function chargingHistory(
  ledger: ChargingLedgerContract,
  of: { cpId: string } | { ev: string },
  limit = Number.POSITIVE_INFINITY,
): Promise<ChargingRecord[]> {
  const reader = contractReader(ledger);
  const history = "cpId" in of ? await cpHistory(reader, of.cpId, { limit }) : await evHistory(reader, of.ev, { limit });
  return history.chargingRecords;
}

async function headsAsCursor(heads: Promise<Heads>): Promise<HistoryCursor> {
  const { lastChargingRecord, lastEvaluation } = await heads;
  return { chargingRecord: lastChargingRecord, evaluation: lastEvaluation };
}

async function walkBoth(
  reader: HistoryReader,
  direction: Direction,
  start: HistoryCursor,
  limit = Number.POSITIVE_INFINITY,
): Promise<HistoryPage> {
  if (!(limit >= 0)) throw new RangeError(`history limit must be 0 or more, got ${limit}`);
  const evaluationReader = reader.evaluations;
  const [charging, evaluations] = await Promise.all([
    walk(start.chargingRecord, limit, (n) => reader.chargingRecord(n), (r) => (direction === "cp" ? r.prevOfCp : r.prevOfEv)),
    evaluationReader
      ? walk(start.evaluation, limit, (n) => evaluationReader.evaluationRecord(n), (e) => (direction === "cp" ? e.prevOfCp : e.prevOfEv))
      : undefined,
  ]);
  return {
    chargingRecords: charging.items,
    evaluations: evaluations?.items,
    next: { chargingRecord: charging.next, evaluation: evaluations?.next ?? 0n },
  };
}

async function walk<T>(
  first: bigint,
  limit: number,
  read: (n: bigint) => Promise<T>,
  previous: (item: T) => bigint,
): Promise<{ items: T[]; next: bigint }> {
  const items: T[] = [];
  let next = first;
  while (next !== 0n && items.length < limit) {
    const item = await read(next);
    items.push(item);
    next = previous(item);
  }
  return { items, next };
}

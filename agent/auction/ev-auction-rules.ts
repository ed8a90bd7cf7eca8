/**
 * The EV's decisions in the pricing auction (Algorithm 2, DESIGN §4.4) as pure functions: areas as grid cells, the
 * screening weights, when a round is due to be closed, the rounds read back from the contract's logs, the decision
 * commitment c and how a round is shown. No chain access here, so every rule is unit-tested without anvil.
 */
import { AbiCoder, keccak256 } from "ethers";
import { UsageError } from "../errors.ts";

/** PricingAuction packs a grid cell into an area id as x << 32 | y (both uint32). */
const CELL_COORDINATE_MAX = 0xffff_ffff;
/** PricingAuction.MAX_ROUND_SECONDS and MAX_ROUNDS: the contract refuses anything beyond. */
export const MAX_ROUND_SECONDS = 86_400;
export const MAX_ROUNDS = 32;
const WEIGHT_MAX = 0xffff;

export interface GridCell {
  x: number;
  y: number;
}

export function areaIdOfCell(cell: GridCell): bigint {
  return (BigInt(cell.x) << 32n) | BigInt(cell.y);
}

export function cellOfArea(areaId: bigint): GridCell {
  return { x: Number((areaId >> 32n) & 0xffff_ffffn), y: Number(areaId & 0xffff_ffffn) };
}

/** "3,4" → cell (3, 4); `flag` names the option in the error. */
export function parseCell(text: string, flag: string): GridCell {
  const match = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(text);
  const x = Number(match?.[1]);
  const y = Number(match?.[2]);
  if (!match || !Number.isSafeInteger(x) || !Number.isSafeInteger(y) || x > CELL_COORDINATE_MAX || y > CELL_COORDINATE_MAX) {
    throw new UsageError(`${flag}: expected a grid cell X,Y with whole numbers 0..${CELL_COORDINATE_MAX}, got "${text}"`);
  }
  return { x, y };
}

/** Screening weights in the contract's order; only their ratios matter. */
export interface AuctionWeights {
  price: number;
  power: number;
  distance: number;
  reputation: number;
}

/** Price only: the cheapest bid wins, the paper's default reading of "lowest price". */
export const PRICE_ONLY_WEIGHTS: AuctionWeights = { price: 1, power: 0, distance: 0, reputation: 0 };

/** "price,power,distance,reputation", e.g. "3,1,1,0". */
export function parseWeights(text: string, flag: string): AuctionWeights {
  const parts = text.split(",").map((part) => part.trim());
  const values = parts.map(Number);
  if (parts.length !== 4 || parts.some((part) => !/^\d+$/.test(part)) || values.some((value) => value > WEIGHT_MAX)) {
    throw new UsageError(
      `${flag}: expected four whole numbers 0..${WEIGHT_MAX} for price,power,distance,reputation (e.g. 3,1,1,0), got "${text}"`,
    );
  }
  const [price = 0, power = 0, distance = 0, reputation = 0] = values;
  if (price + power + distance + reputation === 0) {
    throw new UsageError(`${flag}: at least one of price,power,distance,reputation must weigh more than 0, got "${text}"`);
  }
  return { price, power, distance, reputation };
}

export function weightsTuple(weights: AuctionWeights): [number, number, number, number] {
  return [weights.price, weights.power, weights.distance, weights.reputation];
}

export function describeWeights(weights: AuctionWeights): string {
  return `price ${weights.price}, power ${weights.power}, distance ${weights.distance}, reputation ${weights.reputation}`;
}

// ================================================================ following the rounds

/** The part of `PricingAuction.progress` the EV decides on. */
export interface RoundWindow {
  round: number;
  /** Chain time (s) the round's reveal window closes; `closeRound` is accepted from then on. */
  revealEndsAt: bigint;
}

/**
 * Chain time now, estimated without mining: the newest block's timestamp plus the wall time since that block was
 * first seen, or the wall clock if that is later. An idle dev chain mints no blocks, so its newest timestamp lags
 * (the wall clock is the better guess); a chain whose clock was moved forward runs ahead of the wall clock and its
 * newest block says by how much.
 */
export function estimateChainNow(
  newestBlockTimestamp: bigint,
  newestBlockSeenAtWallSeconds: bigint,
  wallClockSeconds: bigint,
): bigint {
  const sinceSeen = wallClockSeconds > newestBlockSeenAtWallSeconds ? wallClockSeconds - newestBlockSeenAtWallSeconds : 0n;
  const fromBlock = newestBlockTimestamp + sinceSeen;
  return fromBlock > wallClockSeconds ? fromBlock : wallClockSeconds;
}

/**
 * Whether to try `closeRound` now. Trying a little early costs nothing: the gas estimate reverts `RoundStillOpen`
 * and nothing is sent.
 */
export function roundIsDue(window: RoundWindow, chainNow: bigint): boolean {
  return chainNow >= window.revealEndsAt;
}

/** How long to sleep before looking again: until the round is due, but never longer than one poll. */
export function waitBeforeNextLookMs(window: RoundWindow, chainNow: bigint, pollIntervalMs: number): number {
  const untilDueMs = Number(window.revealEndsAt - chainNow) * 1000;
  return Math.max(50, Math.min(pollIntervalMs, untilDueMs));
}

export interface RevealedBid {
  cpId: string;
  powerW: number;
  pricePerKWh: bigint;
}

/** One closed round: what was revealed in it and the best (lowest) price the contract recorded; 0n for none. */
export interface RoundReport {
  round: number;
  bids: RevealedBid[];
  bestPricePerKWh: bigint;
}

/** The auction's logs the EV follows, in chain order. */
export type AuctionLog =
  | { kind: "revealed"; round: number; bid: RevealedBid }
  | { kind: "closed"; round: number; bestPricePerKWh: bigint };

/** Reveals seen so far, by round, waiting for their round to close. */
export type RevealsByRound = ReadonlyMap<number, readonly RevealedBid[]>;

/**
 * Folds new logs into the reveals waiting per round and returns the rounds they closed, in order. A round's report
 * carries the contract's own best price from `RoundClosed`, so what is shown is what the contract will screen on.
 */
export function foldAuctionLogs(
  waiting: RevealsByRound,
  logs: readonly AuctionLog[],
): { waiting: RevealsByRound; closed: RoundReport[] } {
  const next = new Map(waiting);
  const closed: RoundReport[] = [];
  for (const log of logs) {
    if (log.kind === "revealed") {
      next.set(log.round, [...(next.get(log.round) ?? []), log.bid]);
      continue;
    }
    closed.push({ round: log.round, bids: [...(next.get(log.round) ?? [])], bestPricePerKWh: log.bestPricePerKWh });
    next.delete(log.round);
  }
  return { waiting: next, closed };
}

// ================================================================ the decision (Phase 3)

/** c = keccak256(abi.encode(ev, cpId, r)): PricingAuction.decisionCommitmentOf, computed off chain. */
export function decisionCommitmentOf(ev: string, cpId: string, r: string): string {
  return keccak256(AbiCoder.defaultAbiCoder().encode(["address", "bytes32", "bytes32"], [ev, cpId, r]));
}

// ================================================================ showing it

/** "0x1a2b3c4d…9f0e": enough of a cpId to tell bidders apart on one line. */
export function shortCpId(cpId: string): string {
  return cpId.length > 16 ? `${cpId.slice(0, 10)}…${cpId.slice(-4)}` : cpId;
}

export const ROUND_TABLE_HEADER = `${"round".padEnd(7)}${"bids".padEnd(6)}${"best wei/kWh".padEnd(22)}revealed (cpId: power @ wei/kWh)`;

export function formatRoundLine(report: RoundReport): string {
  const best = report.bestPricePerKWh === 0n ? "-" : report.bestPricePerKWh.toString();
  const bids =
    report.bids.length === 0
      ? "no bid revealed"
      : report.bids.map((bid) => `${shortCpId(bid.cpId)}: ${bid.powerW} W @ ${bid.pricePerKWh}`).join("; ");
  return `${String(report.round).padEnd(7)}${String(report.bids.length).padEnd(6)}${best.padEnd(22)}${bids}`;
}

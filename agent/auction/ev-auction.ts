/**
 * The EV's side of Algorithm 2 as a library: invite with a deposit, follow the sealed-bid rounds by chain time,
 * close a round when it is due and nobody else has, screen the decisive round, draw r and finalize with
 * c = H(EV, CP, r). Opening the session with r is the caller's next step (`openAuctionSession` in
 * agent/chain/operations.ts), so a wallet can show the result before paying for it.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { hexlify, toBeHex, type ContractTransactionReceipt, type Provider, type Signer } from "ethers";
import type { PricingAuctionContract } from "../../contracts/artifacts/PricingAuction.ts";
import { AuctionPhase } from "../chain/contracts.ts";
import { closeAuctionRound, finalizeAuction, inviteChargePoints, type AuctionInvitation } from "../chain/operations.ts";
import { decodeRevert } from "../chain/revert.ts";
import { RuntimeError } from "../errors.ts";
import {
  decisionCommitmentOf,
  estimateChainNow,
  foldAuctionLogs,
  roundIsDue,
  waitBeforeNextLookMs,
  type AuctionLog,
  type RevealsByRound,
  type RoundReport,
} from "./ev-auction-rules.ts";

export interface RunAuctionAsEvOptions {
  /** PricingAuction connected with the EV's signer (it invites, closes rounds and finalizes). */
  auction: PricingAuctionContract;
  invitation: AuctionInvitation;
  /** The invitation deposit; default the contract's minimum (`parameters().minDeposit`). */
  invitationDepositWei?: bigint;
  onProgress?: (event: EvAuctionEvent) => void;
  /** How often to look at the chain while a round runs; default 1000 ms. */
  pollIntervalMs?: number;
  /** The 32-byte r of the decision commitment; default 32 bytes from the system CSPRNG. */
  drawR?: () => string;
  /** The wall clock in ms (injected by tests); default Date.now. */
  nowMs?: () => number;
  signal?: AbortSignal;
}

export type EvAuctionEvent =
  | { kind: "invited"; invitationId: bigint; depositWei: bigint; txHash: string }
  | { kind: "round-closed"; invitationId: bigint; report: RoundReport; closedByUs: boolean }
  | { kind: "decided"; invitationId: bigint; winnerCpId: string; pricePerKWh: bigint; decisionCommitment: string; txHash: string };

export type EvAuctionOutcome = EvAuctionDecided | EvAuctionFailed;

export interface EvAuctionDecided {
  status: "decided";
  invitationId: bigint;
  rounds: RoundReport[];
  winnerCpId: string;
  pricePerKWh: bigint;
  /**
   * The screening score of the winner (weights × measures normalised to SCORE_UNIT); null when a rating mined
   * between `screen` and `finalize` moved the decision to another pile, whose score was never read.
   */
  score: bigint | null;
  /** Keep it: `openAuctionSession(invitationId, r)` reveals it to claim the decision. */
  r: string;
  decisionCommitment: string;
  finalizeReceipt: ContractTransactionReceipt;
}

export type EvAuctionFailureReason = "no-bids" | "no-eligible-bid" | "unexpected-phase";

export interface EvAuctionFailed {
  status: "failed";
  invitationId: bigint;
  rounds: RoundReport[];
  reason: EvAuctionFailureReason;
  /** One sentence for a person. */
  message: string;
}

const ZERO_CP_ID = `0x${"00".repeat(32)}`;

export async function runAuctionAsEv(options: RunAuctionAsEvOptions): Promise<EvAuctionOutcome> {
  const { auction, invitation } = options;
  const signer = auction.runner as Signer | null;
  const provider = signer?.provider;
  if (!signer || !provider) throw new RuntimeError("runAuctionAsEv: the PricingAuction must be connected with the EV's signer on a provider");
  const ev = await signer.getAddress();
  const report = options.onProgress ?? (() => {});
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const nowMs = options.nowMs ?? Date.now;

  const depositWei = options.invitationDepositWei ?? (await auction.parameters()).minDeposit;
  const opened = await inviteChargePoints(auction, invitation, depositWei);
  const invitationId = opened.invitationId;
  report({ kind: "invited", invitationId, depositWei, txHash: opened.receipt.hash });

  const rounds: RoundReport[] = [];
  const roundsWeClosed = new Set<number>();
  let waiting: RevealsByRound = new Map();
  let scannedTo = opened.receipt.blockNumber - 1;
  let phase: bigint = AuctionPhase.Bidding;
  let newestSeen: { hash: string | null; atWallSeconds: bigint } = { hash: null, atWallSeconds: 0n };

  for (;;) {
    options.signal?.throwIfAborted();
    const newest = await provider.getBlock("latest");
    if (!newest) throw new RuntimeError("the chain returned no latest block while following the auction");
    // Logs and progress are read at the same block, so a phase that ended there has all its rounds in the logs.
    if (newest.number > scannedTo) {
      const folded = foldAuctionLogs(waiting, await auctionLogs(auction, provider, invitationId, scannedTo + 1, newest.number));
      waiting = folded.waiting;
      scannedTo = newest.number;
      for (const closed of folded.closed) {
        rounds.push(closed);
        report({ kind: "round-closed", invitationId, report: closed, closedByUs: roundsWeClosed.has(closed.round) });
      }
    }
    const progress = await auction.progress(invitationId, { blockTag: newest.number });
    phase = progress.phase;
    if (phase !== AuctionPhase.Bidding) break;

    const window = { round: Number(progress.round), revealEndsAt: progress.revealEndsAt };
    const wallClockSeconds = BigInt(Math.floor(nowMs() / 1000));
    if (newest.hash !== newestSeen.hash) newestSeen = { hash: newest.hash, atWallSeconds: wallClockSeconds };
    const chainNow = estimateChainNow(BigInt(newest.timestamp), newestSeen.atWallSeconds, wallClockSeconds);
    if (roundIsDue(window, chainNow)) {
      if (await closeRoundIfStillOpen(auction, invitationId, window.round)) roundsWeClosed.add(window.round);
      else await sleep(Math.min(pollIntervalMs, 250), undefined, { signal: options.signal });
      continue;
    }
    await sleep(waitBeforeNextLookMs(window, chainNow, pollIntervalMs), undefined, { signal: options.signal });
  }

  if (phase === AuctionPhase.Failed) {
    return failed(invitationId, rounds, "no-bids", `no charge point revealed a bid for invitation ${invitationId} in its first round`);
  }
  if (phase !== AuctionPhase.Ended) {
    return failed(invitationId, rounds, "unexpected-phase", `invitation ${invitationId} left bidding in phase ${phaseName(phase)}, not Ended`);
  }

  const screened = await auction.screen(invitationId);
  if (screened.cpId === ZERO_CP_ID) {
    // Finalizing anyway turns the auction to Failed, which returns the EV's deposit at once instead of after abandon.
    await finalizeAuction(auction, invitationId, ZERO_CP_ID);
    return failed(
      invitationId,
      rounds,
      "no-eligible-bid",
      `every bid of invitation ${invitationId}'s decisive round was followed by a commit its bidder never revealed, so no charge point is left to choose`,
    );
  }
  const r = options.drawR?.() ?? hexlify(randomBytes(32));
  let decisionCommitment = decisionCommitmentOf(ev, screened.cpId, r);
  let finalizeReceipt = await finalizeAuction(auction, invitationId, decisionCommitment);
  const decided = decidedOf(auction, finalizeReceipt);
  if (decided === undefined) {
    return failed(invitationId, rounds, "unexpected-phase", `finalize of invitation ${invitationId} named no winner`);
  }
  if (decided.cpId !== screened.cpId) {
    // Screening reads reputations live: a rating mined between `screen` and `finalize` moved the winner, and c was
    // drawn for the other one. The contract keeps its winner and lets the EV commit again, for that one.
    decisionCommitment = decisionCommitmentOf(ev, decided.cpId, r);
    finalizeReceipt = await finalizeAuction(auction, invitationId, decisionCommitment);
  }
  const sameAsScreened = decided.cpId === screened.cpId;
  report({ kind: "decided", invitationId, winnerCpId: decided.cpId, pricePerKWh: decided.pricePerKWh, decisionCommitment, txHash: finalizeReceipt.hash });
  return {
    status: "decided",
    invitationId,
    rounds,
    winnerCpId: decided.cpId,
    pricePerKWh: decided.pricePerKWh,
    score: sameAsScreened ? screened.score : null,
    r,
    decisionCommitment,
    finalizeReceipt,
  };
}

function failed(invitationId: bigint, rounds: RoundReport[], reason: EvAuctionFailureReason, message: string): EvAuctionFailed {
  return { status: "failed", invitationId, rounds, reason, message };
}

/**
 * Sends `closeRound` unless the round is not over yet or someone else closed it first: usually both show up as a
 * revert of the gas estimate (`RoundStillOpen`, `WrongPhase`), so nothing is sent and the caller looks again. A
 * bidder's `closeRound` can also land in the same block just ahead of ours: then ours is mined reverted, with no
 * reason in the receipt, and only the auction's progress tells that the round was closed all the same.
 */
async function closeRoundIfStillOpen(auction: PricingAuctionContract, invitationId: bigint, round: number): Promise<boolean> {
  try {
    await closeAuctionRound(auction, invitationId);
    return true;
  } catch (error) {
    const decoded = decodeRevert((error as { cause?: unknown }).cause) ?? decodeRevert(error);
    if (decoded?.name === "RoundStillOpen" || decoded?.name === "WrongPhase") return false;
    const progress = await auction.progress(invitationId);
    if (progress.phase !== AuctionPhase.Bidding || Number(progress.round) !== round) return false;
    throw error;
  }
}

async function auctionLogs(
  auction: PricingAuctionContract,
  provider: Provider,
  invitationId: bigint,
  fromBlock: number,
  toBlock: number,
): Promise<AuctionLog[]> {
  const revealed = auction.interface.getEvent("BidRevealed");
  const closed = auction.interface.getEvent("RoundClosed");
  if (!revealed || !closed) throw new RuntimeError("the PricingAuction ABI lacks BidRevealed or RoundClosed");
  const logs = await provider.getLogs({
    address: await auction.getAddress(),
    topics: [[revealed.topicHash, closed.topicHash], toBeHex(invitationId, 32)],
    fromBlock,
    toBlock,
  });
  const parsed: AuctionLog[] = [];
  for (const log of logs) {
    const event = auction.interface.parseLog(log);
    if (event?.name === "BidRevealed") {
      parsed.push({
        kind: "revealed",
        round: Number(event.args.getValue("round") as bigint),
        bid: {
          cpId: event.args.getValue("cpId") as string,
          powerW: Number(event.args.getValue("powerW") as bigint),
          pricePerKWh: event.args.getValue("pricePerKWh") as bigint,
        },
      });
    } else if (event?.name === "RoundClosed") {
      parsed.push({
        kind: "closed",
        round: Number(event.args.getValue("round") as bigint),
        bestPricePerKWh: event.args.getValue("bestPricePerKWh") as bigint,
      });
    }
  }
  return parsed;
}

function decidedOf(
  auction: PricingAuctionContract,
  receipt: ContractTransactionReceipt,
): { cpId: string; pricePerKWh: bigint } | undefined {
  for (const log of receipt.logs) {
    const parsed = auction.interface.parseLog(log);
    if (parsed?.name === "Decided") {
      return { cpId: parsed.args.getValue("cpId") as string, pricePerKWh: parsed.args.getValue("pricePerKWh") as bigint };
    }
  }
  return undefined;
}

function phaseName(phase: bigint): string {
  return Object.entries(AuctionPhase).find(([, value]) => value === phase)?.[0] ?? String(phase);
}

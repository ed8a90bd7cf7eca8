/**
 * The bidder's functional core (DESIGN §3, §4.4): what a pile does next in one pricing auction, decided from the
 * auction as the contract reports it, the pile's own journal entry, the owner's policy and the chain's clock. No I/O,
 * no clock, no randomness (the shell hands in the salt it would use), so every rule below is a unit test away.
 *
 * Pricing (Algorithm 2, "the openness of bidding encourages other CPs to provide cheaper prices"):
 * - round 1 bids the listed price, never below the owner's floor;
 * - later rounds keep the pile's last revealed price if it was strictly the lowest of the previous round (undercutting
 *   oneself only gives money away), and otherwise bid `bestPriceLastRound − undercutStep`, never below the floor and
 *   never above the listed price (an auction exists to get the EV a better price than the list, not a worse one).
 */

/** PricingAuction's `Phase`, by name. */
export type AuctionPhaseName = "none" | "bidding" | "ended" | "decided" | "sessionOpened" | "failed" | "abandoned";

/** PricingAuction's per-bidder `Bond`, by name. */
export type BondState = "none" | "held" | "settled";

/** One invitation as read from the contract (`invitation`, `progress`, `bidOf`, BidRevealed logs). */
export interface AuctionView {
  invitationId: bigint;
  phase: AuctionPhaseName;
  /** The round under way while bidding; the decisive round once bidding ended. */
  round: number;
  /** Chain time (unix s) the commit window closes and the reveal window opens. */
  commitEndsAtS: number;
  /** Chain time (unix s) the reveal window closes; from then on anyone may close the round. */
  revealEndsAtS: number;
  /** Best revealed price of the previous round (wei/kWh); 0 in round 1. */
  bestPriceLastRoundWeiPerKWh: bigint;
  minPowerW: number;
  /** Until when (unix s) the EV may decide or, once decided, open its session; 0 outside those phases. */
  decisionDeadlineS: number;
  /** The winner's cpId once decided, else undefined. */
  winnerCpId: string | undefined;
  /** This pile's bid as `bidOf` reports it. */
  ownBid: { committedRound: number; revealedRound: number; bond: BondState };
  /** Every price revealed in the previous round, by cpId (lower-case hex), this pile's own included. */
  previousRoundPrices: ReadonlyMap<string, bigint>;
}

/** What the pile keeps in its journal for an invitation (agent/journal `auction_bids`). */
export interface BidEntry {
  invitationId: bigint;
  /** The round of the latest sealed bid, with everything needed to reveal it. */
  sealed?: SealedBid;
  /** The win was logged and published. */
  winAnnounced: boolean;
  /** The auction's `withdraw()` ran (or had nothing to pay) after this invitation's bond was settled. */
  withdrawn: boolean;
}

export interface SealedBid {
  round: number;
  priceWeiPerKWh: bigint;
  powerW: number;
  /** bytes32 hex. */
  salt: string;
  /** keccak256(abi.encode(invitationId, cpId, powerW, pricePerKWh, salt)), bytes32 hex. */
  commitment: string;
}

export interface BidPolicy {
  /** `bidding.enabled`: without it the pile starts no new bid, but still reveals and recovers what it committed. */
  enabled: boolean;
  floorPriceWeiPerKWh: bigint;
  undercutStepWeiPerKWh: bigint;
  /** The pile's listed price in the Registry. */
  listedPriceWeiPerKWh: bigint;
  /** The power the pile offers: its registered maxPowerW, or less where the owner limits it. */
  maxPowerW: number;
}

export interface PileStatus {
  /** This pile's cpId (lower-case hex). */
  cpId: string;
  /** No session in progress or queued, no fault: the pile could serve the EV. */
  idle: boolean;
  /** Registered active in the Registry (an inactive pile may not bid). */
  active: boolean;
}

export interface BidInput {
  auction: AuctionView;
  entry: BidEntry | undefined;
  policy: BidPolicy;
  pile: PileStatus;
  /** The chain's time now (unix s): windows are judged by block timestamps, not by the pile's clock. */
  nowS: number;
  /** The salt a new commit would use (bytes32 hex); the shell draws it from a CSPRNG. */
  freshSalt: string;
}

export type BidAction =
  /** Take no part (now): `reason` says why, for the log. */
  | { type: "ignore"; reason: string }
  /** Nothing to send yet. */
  | { type: "wait"; reason: string }
  | { type: "commit"; round: number; priceWeiPerKWh: bigint; powerW: number; salt: string }
  | { type: "reveal"; sealed: SealedBid }
  | { type: "closeRound"; round: number }
  /** The EV let its decision window pass: end the auction so the bonds (and the EV's deposit) are paid out. */
  | { type: "abandon" }
  /** The pile won: log and publish that a session is expected (once). */
  | { type: "announceWin" }
  | { type: "refundBond" }
  | { type: "withdrawBonds" }
  /** Nothing left to do for this invitation. */
  | { type: "done"; outcome: "won" | "lost" | "failed" | "abandoned" | "notBidding" };

const FINAL_PHASES: ReadonlySet<AuctionPhaseName> = new Set(["decided", "sessionOpened", "failed", "abandoned"]);

/** The next thing to do in one auction. */
export function decideBid(input: BidInput): BidAction {
  const { auction, entry, pile, nowS } = input;
  const own = auction.ownBid;

  if (FINAL_PHASES.has(auction.phase)) {
    const won = auction.winnerCpId !== undefined && sameId(auction.winnerCpId, pile.cpId) && own.bond !== "none";
    if (won && entry && !entry.winAnnounced) return { type: "announceWin" };
    if (won && auction.phase === "decided") {
      // The winner keeps its bond in until the EV opens the session: an EV that never does pays the winner its
      // deposit through `abandon`, and one withdrawal then collects both.
      if (auction.decisionDeadlineS > 0 && nowS > auction.decisionDeadlineS) return { type: "abandon" };
      return { type: "wait", reason: `the EV may open its session until ${auction.decisionDeadlineS}` };
    }
    if (own.bond === "held") return { type: "refundBond" };
    if (own.bond === "settled" && entry && !entry.withdrawn) return { type: "withdrawBonds" };
    return { type: "done", outcome: outcomeOf(auction.phase, won, own.bond) };
  }
  if (auction.phase === "ended") {
    if (own.bond === "held" && auction.decisionDeadlineS > 0 && nowS > auction.decisionDeadlineS) return { type: "abandon" };
    return { type: "wait", reason: `bidding ended; the EV may decide until ${auction.decisionDeadlineS}` };
  }
  if (auction.phase !== "bidding") return { type: "ignore", reason: `auction is in phase ${auction.phase}` };

  const round = auction.round;
  if (own.committedRound === round && own.revealedRound < round) {
    const sealed = entry?.sealed;
    // Without the journal's salt the commit cannot be opened; the bond is lost. The journal-first order of the
    // shell makes this unreachable unless the journal itself was lost.
    if (!sealed || sealed.round !== round) return { type: "wait", reason: `committed in round ${round} but the journal holds no sealed bid for it` };
    if (nowS < auction.commitEndsAtS) return { type: "wait", reason: `reveal window of round ${round} opens at ${auction.commitEndsAtS}` };
    if (nowS < auction.revealEndsAtS) return { type: "reveal", sealed };
    // Missed: the bond is forfeited whatever we do; closing moves the auction on.
    return { type: "closeRound", round };
  }
  if (nowS >= auction.revealEndsAtS) {
    // Anyone may close; only a pile with a stake bothers to pay the gas.
    return own.bond === "held" ? { type: "closeRound", round } : { type: "wait", reason: `round ${round} is due to be closed` };
  }
  if (own.committedRound === round) return { type: "wait", reason: `revealed in round ${round}; waiting for it to close` };
  if (nowS >= auction.commitEndsAtS) return { type: "wait", reason: `commit window of round ${round} is closed` };

  if (!input.policy.enabled) return { type: "ignore", reason: "bidding.enabled is false" };
  if (!pile.active) return { type: "ignore", reason: "the charge point is not active in the Registry" };
  if (!pile.idle) return { type: "ignore", reason: "the pile is busy (a session in progress or queued, or a fault)" };
  const powerW = bidPowerW(input.policy, auction.minPowerW);
  if (powerW === undefined) {
    return { type: "ignore", reason: `the EV asks for at least ${auction.minPowerW} W, the pile offers ${input.policy.maxPowerW} W` };
  }
  const priceWeiPerKWh = bidPriceWeiPerKWh(input.policy, round, auction.bestPriceLastRoundWeiPerKWh, pile.cpId, auction.previousRoundPrices);
  return { type: "commit", round, priceWeiPerKWh, powerW, salt: input.freshSalt };
}

/** The power to bid: all the pile offers, if that meets the EV's minimum; undefined when it does not. */
export function bidPowerW(policy: Pick<BidPolicy, "maxPowerW">, minPowerW: number): number | undefined {
  if (policy.maxPowerW <= 0 || minPowerW > policy.maxPowerW) return undefined;
  return policy.maxPowerW;
}

/** The price to bid in `round` (see the module comment). */
export function bidPriceWeiPerKWh(
  policy: Pick<BidPolicy, "floorPriceWeiPerKWh" | "undercutStepWeiPerKWh" | "listedPriceWeiPerKWh">,
  round: number,
  bestPriceLastRoundWeiPerKWh: bigint,
  cpId: string,
  previousRoundPrices: ReadonlyMap<string, bigint>,
): bigint {
  const floor = policy.floorPriceWeiPerKWh;
  if (round <= 1 || bestPriceLastRoundWeiPerKWh === 0n) return max(floor, policy.listedPriceWeiPerKWh);
  const ownLast = previousRoundPrices.get(cpId.toLowerCase());
  if (ownLast !== undefined && isStrictlyLowest(cpId, ownLast, previousRoundPrices)) return max(floor, ownLast);
  const best = bestPriceLastRoundWeiPerKWh;
  const undercut = best > policy.undercutStepWeiPerKWh ? best - policy.undercutStepWeiPerKWh : 0n;
  return max(floor, min(policy.listedPriceWeiPerKWh, undercut));
}

function isStrictlyLowest(cpId: string, price: bigint, prices: ReadonlyMap<string, bigint>): boolean {
  for (const [other, otherPrice] of prices) {
    if (sameId(other, cpId)) continue;
    if (otherPrice <= price) return false;
  }
  return true;
}

function outcomeOf(phase: AuctionPhaseName, won: boolean, bond: BondState): Extract<BidAction, { type: "done" }>["outcome"] {
  if (bond === "none") return "notBidding";
  if (won) return "won";
  if (phase === "failed") return "failed";
  if (phase === "abandoned") return "abandoned";
  return "lost";
}

/** The cells an invitation for `areaId` reaches: its own and the eight around it (x << 32 | y, no wrap-around). */
export function invitationAreasFor(areaId: bigint): bigint[] {
  const x = areaId >> 32n;
  const y = areaId & 0xffff_ffffn;
  const areas: bigint[] = [];
  for (const dx of [-1n, 0n, 1n]) {
    for (const dy of [-1n, 0n, 1n]) {
      const nx = x + dx;
      const ny = y + dy;
      if (nx < 0n || ny < 0n || nx > 0xffff_ffffn || ny > 0xffff_ffffn) continue;
      areas.push((nx << 32n) | ny);
    }
  }
  return areas;
}

const PHASES: readonly AuctionPhaseName[] = ["none", "bidding", "ended", "decided", "sessionOpened", "failed", "abandoned"];
const BONDS: readonly BondState[] = ["none", "held", "settled"];

export function auctionPhaseName(phase: bigint): AuctionPhaseName {
  const name = PHASES[Number(phase)];
  if (name === undefined) throw new Error(`unknown PricingAuction phase ${phase}; expected 0..${PHASES.length - 1}`);
  return name;
}

export function bondStateName(bond: bigint): BondState {
  const name = BONDS[Number(bond)];
  if (name === undefined) throw new Error(`unknown PricingAuction bond state ${bond}; expected 0..${BONDS.length - 1}`);
  return name;
}

function sameId(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

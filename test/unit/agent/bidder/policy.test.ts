import { describe, expect, it } from "vitest";
import {
  bidPriceWeiPerKWh,
  decideBid,
  invitationAreasFor,
  type AuctionView,
  type BidEntry,
  type BidInput,
  type BidPolicy,
} from "../../../../agent/bidder/policy.ts";

const OWN = "0x" + "aa".repeat(32);
const OTHER = "0x" + "bb".repeat(32);
const THIRD = "0x" + "cc".repeat(32);
const SALT = "0x" + "11".repeat(32);
const GWEI = 1_000_000_000n;

const policy: BidPolicy = {
  enabled: true,
  floorPriceWeiPerKWh: 200n * GWEI,
  undercutStepWeiPerKWh: 20n * GWEI,
  listedPriceWeiPerKWh: 300n * GWEI,
  maxPowerW: 11_000,
};

/** Round `round` of an auction, 100 s into its commit window (commit ends at 1000, reveal at 1010). */
function auction(overrides: Partial<AuctionView> = {}): AuctionView {
  return {
    invitationId: 7n,
    phase: "bidding",
    round: 1,
    commitEndsAtS: 1_000,
    revealEndsAtS: 1_010,
    bestPriceLastRoundWeiPerKWh: 0n,
    minPowerW: 3_700,
    decisionDeadlineS: 0,
    winnerCpId: undefined,
    ownBid: { committedRound: 0, revealedRound: 0, bond: "none" },
    previousRoundPrices: new Map(),
    ...overrides,
  };
}

function input(overrides: Partial<BidInput> = {}): BidInput {
  return {
    auction: auction(),
    entry: undefined,
    policy,
    pile: { cpId: OWN, idle: true, active: true },
    nowS: 995,
    freshSalt: SALT,
    ...overrides,
  };
}

const sealedRound = (round: number, priceWeiPerKWh: bigint): BidEntry => ({
  invitationId: 7n,
  sealed: { round, priceWeiPerKWh, powerW: 11_000, salt: SALT, commitment: "0x" + "22".repeat(32) },
  winAnnounced: false,
  withdrawn: false,
});

describe("bid price", () => {
  it("bids the listed price in round 1", () => {
    expect(bidPriceWeiPerKWh(policy, 1, 0n, OWN, new Map())).toBe(300n * GWEI);
  });

  it("never bids below the floor, even in round 1 when the listed price is lower", () => {
    expect(bidPriceWeiPerKWh({ ...policy, listedPriceWeiPerKWh: 150n * GWEI }, 1, 0n, OWN, new Map())).toBe(200n * GWEI);
  });

  it("undercuts the best price of the last round by one step when it was not the lowest", () => {
    const prices = new Map([[OWN, 300n * GWEI], [OTHER, 280n * GWEI]]);
    expect(bidPriceWeiPerKWh(policy, 2, 280n * GWEI, OWN, prices)).toBe(260n * GWEI);
  });

  it("stops at the floor when undercutting would go below it", () => {
    const prices = new Map([[OWN, 230n * GWEI], [OTHER, 210n * GWEI]]);
    expect(bidPriceWeiPerKWh(policy, 4, 210n * GWEI, OWN, prices)).toBe(200n * GWEI);
    // A step larger than the best price itself does not wrap around below zero.
    expect(bidPriceWeiPerKWh({ ...policy, undercutStepWeiPerKWh: 10_000n * GWEI }, 2, 210n * GWEI, OWN, prices)).toBe(200n * GWEI);
  });

  it("keeps its price when it was strictly the lowest of the last round", () => {
    const prices = new Map([[OWN, 260n * GWEI], [OTHER, 280n * GWEI], [THIRD, 261n * GWEI]]);
    expect(bidPriceWeiPerKWh(policy, 3, 260n * GWEI, OWN, prices)).toBe(260n * GWEI);
  });

  it("undercuts when it only tied for the lowest", () => {
    const prices = new Map([[OWN, 260n * GWEI], [OTHER, 260n * GWEI]]);
    expect(bidPriceWeiPerKWh(policy, 3, 260n * GWEI, OWN, prices)).toBe(240n * GWEI);
  });

  it("undercuts when it did not bid in the last round at all", () => {
    expect(bidPriceWeiPerKWh(policy, 3, 260n * GWEI, OWN, new Map([[OTHER, 260n * GWEI]]))).toBe(240n * GWEI);
  });

  it("never bids above its listed price, however high the others are", () => {
    expect(bidPriceWeiPerKWh(policy, 2, 500n * GWEI, OWN, new Map([[OTHER, 500n * GWEI]]))).toBe(300n * GWEI);
  });

  it("compares cpIds case-insensitively", () => {
    const prices = new Map([[OWN, 260n * GWEI], [OTHER, 280n * GWEI]]);
    expect(bidPriceWeiPerKWh(policy, 3, 260n * GWEI, OWN.toUpperCase().replace("0X", "0x"), prices)).toBe(260n * GWEI);
  });
});

describe("decideBid while bidding", () => {
  it("commits the listed price and all its power in round 1's commit window", () => {
    expect(decideBid(input())).toEqual({ type: "commit", round: 1, priceWeiPerKWh: 300n * GWEI, powerW: 11_000, salt: SALT });
  });

  it("commits an undercut in a later round, seeing the previous round's reveals", () => {
    const view = auction({
      round: 2,
      bestPriceLastRoundWeiPerKWh: 280n * GWEI,
      ownBid: { committedRound: 1, revealedRound: 1, bond: "held" },
      previousRoundPrices: new Map([[OWN, 300n * GWEI], [OTHER, 280n * GWEI]]),
    });
    expect(decideBid(input({ auction: view }))).toMatchObject({ type: "commit", round: 2, priceWeiPerKWh: 260n * GWEI });
  });

  it("does not bid when the pile is busy", () => {
    expect(decideBid(input({ pile: { cpId: OWN, idle: false, active: true } }))).toMatchObject({ type: "ignore", reason: expect.stringMatching(/busy/) });
  });

  it("does not bid when bidding is disabled or the charge point is inactive", () => {
    expect(decideBid(input({ policy: { ...policy, enabled: false } }))).toMatchObject({ type: "ignore", reason: expect.stringMatching(/enabled/) });
    expect(decideBid(input({ pile: { cpId: OWN, idle: true, active: false } }))).toMatchObject({ type: "ignore", reason: expect.stringMatching(/not active/) });
  });

  it("does not bid when its power does not reach the EV's minimum", () => {
    const action = decideBid(input({ auction: auction({ minPowerW: 22_000 }) }));
    expect(action).toEqual({ type: "ignore", reason: "the EV asks for at least 22000 W, the pile offers 11000 W" });
    // Exactly the minimum is enough.
    expect(decideBid(input({ auction: auction({ minPowerW: 11_000 }) }))).toMatchObject({ type: "commit", powerW: 11_000 });
  });

  it("does not commit once the commit window has closed", () => {
    expect(decideBid(input({ nowS: 1_000 }))).toMatchObject({ type: "wait" });
  });

  it("reveals only inside the reveal window", () => {
    const committed = auction({ ownBid: { committedRound: 1, revealedRound: 0, bond: "held" } });
    const entry = sealedRound(1, 300n * GWEI);
    expect(decideBid(input({ auction: committed, entry, nowS: 999 }))).toMatchObject({ type: "wait" });
    expect(decideBid(input({ auction: committed, entry, nowS: 1_000 }))).toEqual({ type: "reveal", sealed: entry.sealed });
    expect(decideBid(input({ auction: committed, entry, nowS: 1_009 }))).toEqual({ type: "reveal", sealed: entry.sealed });
    // Too late to reveal: only closing the round is left.
    expect(decideBid(input({ auction: committed, entry, nowS: 1_010 }))).toEqual({ type: "closeRound", round: 1 });
  });

  it("still reveals a committed bid when the pile became busy or bidding was switched off (the bond is at stake)", () => {
    const committed = auction({ ownBid: { committedRound: 1, revealedRound: 0, bond: "held" } });
    const entry = sealedRound(1, 300n * GWEI);
    const busy = input({ auction: committed, entry, nowS: 1_002, pile: { cpId: OWN, idle: false, active: true }, policy: { ...policy, enabled: false } });
    expect(decideBid(busy)).toMatchObject({ type: "reveal" });
  });

  it("never reveals a sealed bid of another round", () => {
    const committed = auction({ round: 2, ownBid: { committedRound: 2, revealedRound: 1, bond: "held" } });
    expect(decideBid(input({ auction: committed, entry: sealedRound(1, 300n * GWEI), nowS: 1_002 }))).toMatchObject({ type: "wait" });
  });

  it("closes a due round only when it has a stake in the auction", () => {
    const revealed = auction({ ownBid: { committedRound: 1, revealedRound: 1, bond: "held" } });
    expect(decideBid(input({ auction: revealed, nowS: 1_005 }))).toMatchObject({ type: "wait" });
    expect(decideBid(input({ auction: revealed, nowS: 1_010 }))).toEqual({ type: "closeRound", round: 1 });
    expect(decideBid(input({ auction: auction(), nowS: 1_010 }))).toMatchObject({ type: "wait" });
  });
});

describe("decideBid after bidding", () => {
  it("waits while the EV screens, and abandons an auction whose EV let the decision window pass", () => {
    const ended = auction({ phase: "ended", decisionDeadlineS: 2_000, ownBid: { committedRound: 3, revealedRound: 3, bond: "held" } });
    expect(decideBid(input({ auction: ended, nowS: 2_000 }))).toMatchObject({ type: "wait" });
    expect(decideBid(input({ auction: ended, nowS: 2_001 }))).toEqual({ type: "abandon" });
    const refunded = { ...ended, ownBid: { ...ended.ownBid, bond: "settled" as const } };
    expect(decideBid(input({ auction: refunded, nowS: 2_001 }))).toMatchObject({ type: "wait" });
  });

  it("announces a win once, keeps its bond in until the EV opens the session, then refunds, withdraws and is done", () => {
    const won = (phase: "decided" | "sessionOpened", bond: "held" | "settled"): AuctionView =>
      auction({ phase, decisionDeadlineS: 2_000, winnerCpId: OWN.toUpperCase().replace("0X", "0x"), ownBid: { committedRound: 3, revealedRound: 3, bond } });
    const entry = sealedRound(3, 230n * GWEI);
    expect(decideBid(input({ auction: won("decided", "held"), entry }))).toEqual({ type: "announceWin" });
    const announced = { ...entry, winAnnounced: true };
    expect(decideBid(input({ auction: won("decided", "held"), entry: announced, nowS: 2_000 }))).toMatchObject({ type: "wait" });
    expect(decideBid(input({ auction: won("sessionOpened", "held"), entry: announced }))).toEqual({ type: "refundBond" });
    expect(decideBid(input({ auction: won("sessionOpened", "settled"), entry: announced }))).toEqual({ type: "withdrawBonds" });
    expect(decideBid(input({ auction: won("sessionOpened", "settled"), entry: { ...announced, withdrawn: true } }))).toEqual({ type: "done", outcome: "won" });
  });

  it("claims the EV's deposit through abandon when the EV decided for it and never opened the session", () => {
    const won = auction({ phase: "decided", decisionDeadlineS: 2_000, winnerCpId: OWN, ownBid: { committedRound: 3, revealedRound: 3, bond: "held" } });
    const announced = { ...sealedRound(3, 230n * GWEI), winAnnounced: true };
    expect(decideBid(input({ auction: won, entry: announced, nowS: 2_001 }))).toEqual({ type: "abandon" });
    const abandoned = { ...won, phase: "abandoned" as const };
    expect(decideBid(input({ auction: abandoned, entry: announced, nowS: 2_001 }))).toEqual({ type: "refundBond" });
  });

  it("refunds a losing bond and reports the loss; a failed auction too", () => {
    const lost = auction({ phase: "sessionOpened", winnerCpId: OTHER, ownBid: { committedRound: 2, revealedRound: 2, bond: "held" } });
    expect(decideBid(input({ auction: lost, entry: sealedRound(2, 250n * GWEI) }))).toEqual({ type: "refundBond" });
    const settled = { ...lost, ownBid: { ...lost.ownBid, bond: "settled" as const } };
    expect(decideBid(input({ auction: settled, entry: { ...sealedRound(2, 250n * GWEI), withdrawn: true } }))).toEqual({ type: "done", outcome: "lost" });
    const failed = auction({ phase: "failed", ownBid: { committedRound: 1, revealedRound: 1, bond: "held" } });
    expect(decideBid(input({ auction: failed, entry: sealedRound(1, 300n * GWEI) }))).toEqual({ type: "refundBond" });
  });

  it("has nothing to do in an auction it never bid in", () => {
    expect(decideBid(input({ auction: auction({ phase: "decided", winnerCpId: OTHER }) }))).toEqual({ type: "done", outcome: "notBidding" });
  });
});

describe("invitation areas", () => {
  it("are the pile's cell and its eight neighbours on the x << 32 | y grid", () => {
    const cell = (x: bigint, y: bigint): bigint => (x << 32n) | y;
    expect(invitationAreasFor(cell(5n, 9n)).sort()).toEqual(
      [cell(4n, 8n), cell(4n, 9n), cell(4n, 10n), cell(5n, 8n), cell(5n, 9n), cell(5n, 10n), cell(6n, 8n), cell(6n, 9n), cell(6n, 10n)].sort(),
    );
  });

  it("do not wrap around at the grid's edges", () => {
    expect(invitationAreasFor(0n).sort()).toEqual([0n, 1n, 1n << 32n, (1n << 32n) | 1n].sort());
  });
});

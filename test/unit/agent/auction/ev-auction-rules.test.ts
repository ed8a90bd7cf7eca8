import { describe, expect, it } from "vitest";
import { AbiCoder, keccak256, solidityPackedKeccak256 } from "ethers";
import {
  ROUND_TABLE_HEADER,
  areaIdOfCell,
  cellOfArea,
  decisionCommitmentOf,
  estimateChainNow,
  foldAuctionLogs,
  formatRoundLine,
  parseCell,
  parseWeights,
  roundIsDue,
  shortCpId,
  waitBeforeNextLookMs,
  weightsTuple,
  type AuctionLog,
} from "../../../../agent/auction/ev-auction-rules.ts";
import { UsageError } from "../../../../agent/errors.ts";
import { auctionSessionDepositOf } from "../../../../agent/chain/operations.ts";

const CP_A = `0x${"a1".repeat(32)}`;
const CP_B = `0x${"b2".repeat(32)}`;

describe("areas are grid cells x << 32 | y", () => {
  it("packs and unpacks a cell the way PricingAuction.cellsBetween reads it", () => {
    expect(areaIdOfCell({ x: 3, y: 4 })).toBe(3n * 2n ** 32n + 4n);
    expect(areaIdOfCell({ x: 0xffff_ffff, y: 0xffff_ffff })).toBe(2n ** 64n - 1n);
    expect(cellOfArea(12_884_901_892n)).toEqual({ x: 3, y: 4 });
    expect(cellOfArea(7n)).toEqual({ x: 0, y: 7 }); // a plain small area id is cell (0, id)
  });

  it("parses X,Y and names the flag and the accepted range when it cannot", () => {
    expect(parseCell(" 40, 17 ", "--cell")).toEqual({ x: 40, y: 17 });
    for (const bad of ["40", "40,17,1", "-1,2", "4294967296,0", "a,b"]) {
      expect(() => parseCell(bad, "--cell")).toThrow(
        new UsageError(`--cell: expected a grid cell X,Y with whole numbers 0..4294967295, got "${bad}"`),
      );
    }
  });
});

describe("screening weights", () => {
  it("keeps the contract's order price, power, distance, reputation", () => {
    const weights = parseWeights("3,1,2,0", "--weights");
    expect(weights).toEqual({ price: 3, power: 1, distance: 2, reputation: 0 });
    expect(weightsTuple(weights)).toEqual([3, 1, 2, 0]);
  });

  it("refuses anything but four uint16 values with at least one above 0", () => {
    expect(() => parseWeights("1,0,0", "--weights")).toThrow(/--weights: expected four whole numbers 0\.\.65535/);
    expect(() => parseWeights("65536,0,0,0", "--weights")).toThrow(/got "65536,0,0,0"/);
    expect(() => parseWeights("1.5,0,0,0", "--weights")).toThrow(UsageError);
    expect(() => parseWeights("0,0,0,0", "--weights")).toThrow(
      '--weights: at least one of price,power,distance,reputation must weigh more than 0, got "0,0,0,0"',
    );
  });
});

describe("following the rounds by chain time", () => {
  const window = { round: 1, revealEndsAt: 1_000n };

  it("estimates chain time from the newest block and the wall time since it was seen, never behind the wall clock", () => {
    // An idle dev chain: the newest block is old, the wall clock is the better guess.
    expect(estimateChainNow(500n, 900n, 990n)).toBe(990n);
    // A chain moved 300 s ahead: its newest block says so, and time keeps running from there.
    expect(estimateChainNow(1_200n, 900n, 905n)).toBe(1_205n);
    // A wall clock that went backwards does not move chain time back.
    expect(estimateChainNow(1_200n, 900n, 800n)).toBe(1_200n);
  });

  it("closes a round only once its reveal window has ended", () => {
    expect(roundIsDue(window, 999n)).toBe(false);
    expect(roundIsDue(window, 1_000n)).toBe(true);
    expect(roundIsDue(window, 5_000n)).toBe(true);
  });

  it("sleeps until the round is due but never longer than one poll, nor a busy spin", () => {
    expect(waitBeforeNextLookMs(window, 998n, 1_000)).toBe(1_000);
    expect(waitBeforeNextLookMs(window, 999n, 5_000)).toBe(1_000);
    expect(waitBeforeNextLookMs(window, 1_000n, 5_000)).toBe(50);
  });

  it("folds reveals into the round that closes them, with the contract's best price", () => {
    const logs: AuctionLog[] = [
      { kind: "revealed", round: 1, bid: { cpId: CP_A, powerW: 7_400, pricePerKWh: 300n } },
      { kind: "revealed", round: 1, bid: { cpId: CP_B, powerW: 11_000, pricePerKWh: 280n } },
      { kind: "closed", round: 1, bestPricePerKWh: 280n },
      { kind: "revealed", round: 2, bid: { cpId: CP_A, powerW: 7_400, pricePerKWh: 270n } },
    ];
    const first = foldAuctionLogs(new Map(), logs);
    expect(first.closed).toEqual([
      {
        round: 1,
        bids: [
          { cpId: CP_A, powerW: 7_400, pricePerKWh: 300n },
          { cpId: CP_B, powerW: 11_000, pricePerKWh: 280n },
        ],
        bestPricePerKWh: 280n,
      },
    ]);
    expect([...first.waiting.keys()]).toEqual([2]);
    // The next batch of logs closes round 2 with the reveal carried over from the first batch.
    const second = foldAuctionLogs(first.waiting, [
      { kind: "revealed", round: 2, bid: { cpId: CP_B, powerW: 11_000, pricePerKWh: 275n } },
      { kind: "closed", round: 2, bestPricePerKWh: 270n },
      { kind: "closed", round: 3, bestPricePerKWh: 0n },
    ]);
    expect(second.closed.map((report) => [report.round, report.bids.length, report.bestPricePerKWh])).toEqual([
      [2, 2, 270n],
      [3, 0, 0n],
    ]);
    expect(second.waiting.size).toBe(0);
  });
});

describe("the decision commitment c = keccak256(abi.encode(ev, cpId, r))", () => {
  it("is the ABI encoding of three words, not the packed one", () => {
    const ev = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
    const r = `0x${"5e".repeat(32)}`;
    const c = decisionCommitmentOf(ev, CP_A, r);
    expect(c).toBe(keccak256(AbiCoder.defaultAbiCoder().encode(["address", "bytes32", "bytes32"], [ev, CP_A, r])));
    expect(c).not.toBe(solidityPackedKeccak256(["address", "bytes32", "bytes32"], [ev, CP_A, r]));
    expect(decisionCommitmentOf(ev, CP_B, r)).not.toBe(c);
  });
});

describe("the default session deposit", () => {
  it("is the invited energy at the auction price rounded up, doubled while R_v < 0", () => {
    expect(auctionSessionDepositOf(10_000n, 270_000_000_000_000n, 0n)).toBe(2_700_000_000_000_000n);
    expect(auctionSessionDepositOf(1n, 1_001n, 5n)).toBe(2n); // 1.001 wei rounds up
    expect(auctionSessionDepositOf(10_000n, 270_000_000_000_000n, -1n)).toBe(5_400_000_000_000_000n);
  });
});

describe("a round as a table line", () => {
  it("lines up under the header with the best price and each revealed bid", () => {
    const line = formatRoundLine({
      round: 2,
      bids: [
        { cpId: CP_A, powerW: 7_400, pricePerKWh: 270n },
        { cpId: CP_B, powerW: 11_000, pricePerKWh: 275n },
      ],
      bestPricePerKWh: 270n,
    });
    expect(line).toBe(`2      2     270                   0xa1a1a1a1…a1a1: 7400 W @ 270; 0xb2b2b2b2…b2b2: 11000 W @ 275`);
    expect(line.indexOf("270")).toBe(ROUND_TABLE_HEADER.indexOf("best"));
    expect(formatRoundLine({ round: 1, bids: [], bestPricePerKWh: 0n })).toBe(
      `1      0     -                     no bid revealed`,
    );
    expect(shortCpId("cp-1")).toBe("cp-1");
  });
});

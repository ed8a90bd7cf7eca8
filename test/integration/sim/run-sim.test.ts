/**
 * `trustpile sim` end to end (agent/sim/run-sim.ts): a listed-price session, then a session whose pile and price
 * come from a pricing auction among cp-sim-1 and its two bidder-only neighbours. Checks what the sim prints for the
 * rounds against what the chain recorded, and that the auction session settles to the Wh like the listed one.
 */
import { parseEther } from "ethers";
import { describe, expect, it } from "vitest";
import { runSim } from "../../../agent/sim/run-sim.ts";
import { SIM_CHARGE_POINT_ID, SIM_PRICE_WEI_PER_KWH } from "../../../agent/sim/world.ts";
import { SIM_PILE_BIDDING } from "../../../agent/sim/sim-auction.ts";

const ROUND_LINE = /^ {2}auction: round (\d+): (.+); best ([\d.]+) ether\/kWh$/;

describe("trustpile sim with an auction", () => {
  it("prints the rounds, opens the auction session at the winning price and settles it like a listed one", async () => {
    const lines: string[] = [];
    const run = await runSim({ sessions: 2, auctionEvery: 2, speedup: 6, progress: (line) => lines.push(line) });

    expect(run.skippedAuctions).toEqual([]);
    expect(run.sessions.map((session) => session.problems)).toEqual([[], []]);
    const [listed, auctioned] = run.sessions;
    if (!listed || !auctioned?.auction) throw new Error("expected a listed and an auction session");
    expect(listed.pricing).toBe("listed");
    expect(listed.priceWeiPerKWh).toBe(SIM_PRICE_WEI_PER_KWH);

    // The printed rounds are the contract's: one line per closed round, with every revealed bid and its best price.
    const printed = lines.map((line) => ROUND_LINE.exec(line)).filter((match) => match !== null);
    const rounds = auctioned.auction.rounds;
    expect(rounds.length).toBeGreaterThanOrEqual(2);
    expect(printed.map((match) => Number(match[1]))).toEqual(rounds.map((round) => round.round));
    expect(printed.map((match) => parseEther(match[3] ?? ""))).toEqual(rounds.map((round) => round.bestPricePerKWh));
    for (const match of printed) expect(match[2]?.split(", ")).toHaveLength(3);
    // Best prices never go up while bidding continues; only the round that ends it may fail to improve.
    const bestByRound = rounds.map((round) => round.bestPricePerKWh);
    for (let i = 1; i < bestByRound.length - 1; i++) expect(bestByRound[i]).toBeLessThan(bestByRound[i - 1] ?? 0n);
    // A real contest: some pile revealed a lower price than it did in an earlier round.
    const undercut = rounds.some((round, i) =>
      round.bids.some((bid) => rounds.slice(0, i).some((earlier) => earlier.bids.some((old) => old.cpId === bid.cpId && old.pricePerKWh > bid.pricePerKWh))),
    );
    expect(undercut).toBe(true);

    expect(auctioned.auction.winner).toBe(SIM_CHARGE_POINT_ID);
    expect(lines.filter((line) => line.startsWith(`  auction: won by ${SIM_CHARGE_POINT_ID} at `))).toHaveLength(1);
    const winningPrice = auctioned.auction.priceWeiPerKWh;
    expect(auctioned.pricing).toBe("auction");
    // The price on chain (SessionOpened via openAuctionSession) is the auction's, within the owner's policy.
    expect(auctioned.priceWeiPerKWh).toBe(winningPrice);
    expect(auctioned.priceWeiPerKWh).toBeLessThanOrEqual(SIM_PRICE_WEI_PER_KWH);
    expect(auctioned.priceWeiPerKWh).toBeGreaterThanOrEqual(SIM_PILE_BIDDING.floorPricePerKWh);

    for (const session of run.sessions) {
      expect(session.energyWh).toBeGreaterThan(0n);
      expect(session.energyWh).toBe(BigInt(session.meterDeltaWh));
      expect(session.costWei).toBe((session.energyWh * session.priceWeiPerKWh + 999n) / 1000n);
      expect(session.ownerCreditWei).toBe(session.costWei);
      expect(session.rating).toBeDefined();
    }
  }, 150_000);
});

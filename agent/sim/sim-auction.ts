/**
 * The pricing auction of `trustpile sim` (DESIGN §4.4, paper Algorithm 2): the sim pile cp-sim-1 bids with the
 * agent's own bidder against two bidder-only neighbours, and the EV follows the rounds with `runAuctionAsEv`.
 *
 * The policies are chosen so the contest is real (the neighbours undercut, the sim pile answers) and so that the sim
 * pile, the only one with hardware, normally wins: its owner's floor is the lowest. With these numbers (1 unit =
 * 1e12 wei/kWh, convergence 1 %) the rounds go 300 → 290 → 265 → 265: round 1 at the listed prices, the neighbours
 * undercut to 290, cp-sim-1 answers one 25-unit step lower, the neighbours hit their floors and the price converges.
 */
import { formatEther } from "ethers";
import type { PricingAuctionContract } from "../../contracts/artifacts/PricingAuction.ts";
import type { BiddingPolicyConfig } from "../bidder/index.ts";
import { runAuctionAsEv, type EvAuctionOutcome } from "../auction/ev-auction.ts";
import type { RoundReport } from "../auction/ev-auction-rules.ts";
import { SIM_AREA_ID, SIM_BIDDER_POLL_INTERVAL_MS, type SimNeighbourSpec } from "./world.ts";

const UNIT_WEI_PER_KWH = 10n ** 12n;

/** cp-sim-1's `bidding` section: lists at 300 units, may go down to 240 in steps of 25. */
export const SIM_PILE_BIDDING: BiddingPolicyConfig = {
  enabled: true,
  floorPricePerKWh: 240n * UNIT_WEI_PER_KWH,
  undercutStep: 25n * UNIT_WEI_PER_KWH,
};

/** In cells next to cp-sim-1's (0,1), so every invitation for it reaches them; dearer lists and higher floors. */
export const SIM_NEIGHBOURS: readonly SimNeighbourSpec[] = [
  {
    chargePointId: "cp-sim-2",
    cell: { x: 1, y: 1 },
    listedPriceWeiPerKWh: 310n * UNIT_WEI_PER_KWH,
    maxPowerW: 7_400,
    policy: { enabled: true, floorPricePerKWh: 275n * UNIT_WEI_PER_KWH, undercutStep: 10n * UNIT_WEI_PER_KWH },
  },
  {
    chargePointId: "cp-sim-3",
    cell: { x: 0, y: 2 },
    listedPriceWeiPerKWh: 320n * UNIT_WEI_PER_KWH,
    maxPowerW: 22_000,
    policy: { enabled: true, floorPricePerKWh: 285n * UNIT_WEI_PER_KWH, undercutStep: 10n * UNIT_WEI_PER_KWH },
  },
];

/**
 * The EV's invitation terms. 3 s windows suit the sim's 1 s blocks (a commit still lands in the window after a
 * slow poll); price dominates the screening, reputation tips a tie towards the pile the EV has rated.
 */
export const SIM_AUCTION_TERMS = {
  areaId: SIM_AREA_ID,
  minPowerW: 3_700,
  weights: [4, 0, 0, 1] as const,
  roundSeconds: 3,
  maxRounds: 6,
};

export interface SimAuctionRun {
  outcome: EvAuctionOutcome;
  /** chargePointId of the winner, or the short cpId when it is none of the sim's piles. */
  winnerName: string | undefined;
}

/** Runs the EV's side of one auction for `energyWh`, reporting each closed round as one line. */
export async function runSimAuction(options: {
  auction: PricingAuctionContract;
  energyWh: number;
  /** cpId (any case) → chargePointId, for the lines. */
  pileNames: ReadonlyMap<string, string>;
  progress: (line: string) => void;
  signal?: AbortSignal;
}): Promise<SimAuctionRun> {
  const nameOf = (cpId: string): string => options.pileNames.get(cpId.toLowerCase()) ?? cpId;
  const outcome = await runAuctionAsEv({
    auction: options.auction,
    invitation: { ...SIM_AUCTION_TERMS, weights: [...SIM_AUCTION_TERMS.weights], energyWh: options.energyWh },
    pollIntervalMs: SIM_BIDDER_POLL_INTERVAL_MS,
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (event) => {
      if (event.kind === "invited") {
        options.progress(
          `  auction: invitation ${event.invitationId} for ${options.energyWh} Wh in area ${SIM_AUCTION_TERMS.areaId} and around, ${SIM_AUCTION_TERMS.roundSeconds} s commit + ${SIM_AUCTION_TERMS.roundSeconds} s reveal per round, up to ${SIM_AUCTION_TERMS.maxRounds} rounds, weights price ${SIM_AUCTION_TERMS.weights[0]} : reputation ${SIM_AUCTION_TERMS.weights[3]} (tx ${event.txHash})`,
        );
      } else if (event.kind === "round-closed") {
        options.progress(`  auction: ${describeRound(event.report, nameOf)}`);
      }
    },
  });
  const winnerName = outcome.status === "decided" ? nameOf(outcome.winnerCpId) : undefined;
  return { outcome, winnerName };
}

export function describeRound(report: RoundReport, nameOf: (cpId: string) => string): string {
  const bids =
    report.bids.length === 0
      ? "no bid revealed"
      : report.bids.map((bid) => `${nameOf(bid.cpId)} ${bid.powerW} W @ ${etherPerKWh(bid.pricePerKWh)}`).join(", ");
  const best = report.bestPricePerKWh === 0n ? "none" : etherPerKWh(report.bestPricePerKWh);
  return `round ${report.round}: ${bids}; best ${best}`;
}

export function etherPerKWh(priceWeiPerKWh: bigint): string {
  return `${formatEther(priceWeiPerKWh)} ether/kWh`;
}

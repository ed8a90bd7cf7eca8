/**
 * Two bidder-only piles, each with its own device key and journal, bid against each other on a real anvil for an
 * invitation from a test EV (DESIGN §4.4, Algorithm 2): they must converge on the higher floor within the round
 * limit, the lower-floor pile winning within one undercut step below the other's floor, and both getting their
 * bonds back.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startBidder, type RunningBidder } from "../../../agent/bidder/index.ts";
import { openJournal, type Journal } from "../../../agent/journal/journal.ts";
import { silentLogger } from "../../../agent/logging.ts";
import type { AuctionEvent } from "../../../agent/telemetry/messages.ts";
import { auctionWorld, cell, cpIdOf, driveEv, invite, revealsOf, UNIT, type PileSpec } from "./auction-world.ts";

const AREA = cell(10n, 10n);
const CHEAP: PileSpec = { chargePointId: "cp-auction-cheap", areaId: AREA, listedPriceWeiPerKWh: 300n * UNIT, maxPowerW: 11_000, ownerAccount: 2, deviceAccount: 4 };
// A neighbouring cell: the invitation reaches it too.
const DEAR: PileSpec = { chargePointId: "cp-auction-dear", areaId: cell(11n, 10n), listedPriceWeiPerKWh: 310n * UNIT, maxPowerW: 22_000, ownerAccount: 3, deviceAccount: 5 };
const FLOOR_CHEAP = 200n * UNIT;
const FLOOR_DEAR = 250n * UNIT;
const STEP = 20n * UNIT;

describe("two bidders for one invitation", () => {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-bidders-"));
  const journals: Journal[] = [];
  const bidders: RunningBidder[] = [];

  afterAll(async () => {
    for (const bidder of bidders) await bidder.stop();
    for (const journal of journals) journal.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("converge on the higher floor: the lower-floor pile wins within one step below it, and both bonds come back", async () => {
    const world = await auctionWorld([CHEAP, DEAR], 1);
    const events: AuctionEvent[] = [];
    const start = (pile: PileSpec, floor: bigint): void => {
      const journal = openJournal(join(dir, `${pile.chargePointId}.sqlite`));
      journals.push(journal);
      bidders.push(
        startBidder({
          provider: world.fixture.provider,
          wallet: world.fixture.accounts[pile.deviceAccount]!,
          deployment: world.fixture.deployment,
          cpId: cpIdOf(pile.chargePointId),
          journal,
          policy: { enabled: true, floorPricePerKWh: floor, undercutStep: STEP },
          log: silentLogger(),
          pollIntervalMs: 200,
          onAuctionEvent: (event) => events.push(event),
        }),
      );
    };
    start(CHEAP, FLOOR_CHEAP);
    start(DEAR, FLOOR_DEAR);
    const device = (pile: PileSpec) => world.fixture.accounts[pile.deviceAccount]!;

    const { invitationId } = await invite(world, { areaId: AREA, energyWh: 10_000, minPowerW: 3_700, weights: [1, 0, 0, 0], roundSeconds: 3, maxRounds: 10 });
    const result = await driveEv(world, invitationId, 150_000);

    // Round by round (convergence step 1 %): 300 (cheap lists 300, dear 310) -> 280 (dear undercuts) -> 260 ->
    // 250 (dear at its floor) -> 230 (cheap one step below it) -> 230 (dear cannot follow; no improvement: converged).
    expect(result.bestPriceByRound).toEqual([300n, 280n, 260n, 250n, 230n, 230n].map((p) => p * UNIT));
    expect(result.decisiveRound).toBe(6);
    expect(result.winnerCpId.toLowerCase()).toBe(cpIdOf(CHEAP.chargePointId).toLowerCase());
    expect(result.priceWeiPerKWh).toBe(230n * UNIT);
    expect(result.priceWeiPerKWh).toBeLessThan(FLOOR_DEAR);
    expect(result.priceWeiPerKWh).toBeGreaterThanOrEqual(FLOOR_DEAR - STEP);
    // The session opened through the ledger carries the auction price, not the listed 300.
    expect(result.sessionPriceWeiPerKWh).toBe(230n * UNIT);

    const reveals = await revealsOf(world, invitationId);
    const dearId = cpIdOf(DEAR.chargePointId).toLowerCase();
    const cheapId = cpIdOf(CHEAP.chargePointId).toLowerCase();
    // Nobody ever bid under its floor, and each bid all of its power.
    expect(reveals.filter((r) => r.cpId === dearId).map((r) => r.priceWeiPerKWh)).toEqual([310n, 280n, 280n, 250n, 250n, 250n].map((p) => p * UNIT));
    expect(reveals.filter((r) => r.cpId === cheapId).map((r) => r.priceWeiPerKWh)).toEqual([300n, 300n, 260n, 260n, 230n, 230n].map((p) => p * UNIT));
    expect(new Set(reveals.filter((r) => r.cpId === dearId).map((r) => r.powerW))).toEqual(new Set([22_000]));

    // The winner announced itself once, with the Decided transaction.
    await waitUntil(() => events.length > 0, 10_000);
    expect(events).toEqual([{ type: "won", atMs: expect.any(Number), invitationId, pricePerKWh: 230n * UNIT, txHash: result.decidedTxHash }]);

    // Both bonds refunded and withdrawn to the device keys: every journal entry finished.
    await waitUntil(() => journals.every((journal) => journal.auctionBid(invitationId)?.status === "finished"), 20_000);
    const auction = world.auction(world.ev);
    expect(await auction.withdrawable(device(CHEAP).address)).toBe(0n);
    expect(await auction.withdrawable(device(DEAR).address)).toBe(0n);
    const [bidBond] = await auction.parameters();
    const withdrawn = await world.fixture.provider.getLogs({
      address: world.fixture.deployment.PricingAuction!,
      topics: [auction.interface.getEvent("Withdrawn")!.topicHash],
      fromBlock: world.fixture.deployment.deployedAtBlock ?? 0,
    });
    const paidTo = withdrawn.map((log) => auction.interface.parseLog(log)!).map((parsed) => [parsed.args.getValue("account") as string, parsed.args.getValue("amount") as bigint]);
    for (const pile of [CHEAP, DEAR]) {
      const bid = await auction.bidOf(invitationId, cpIdOf(pile.chargePointId));
      expect(bid.bond).toBe(2n); // Settled, not forfeited: every commit was revealed
      expect(paidTo.filter(([account]) => account === device(pile).address)).toEqual([[device(pile).address, bidBond]]);
    }
  }, 200_000);
});

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

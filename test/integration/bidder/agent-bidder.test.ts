/**
 * The bidder inside the agent (`startAgent` with `bidding`): it shares the agent's tx sender for the device key,
 * wins an auction, and the session the EV then opens at the auction price (not the listed price) is served and
 * settled like any other: budget and cost follow the auction price.
 */
import { afterEach, describe, expect, it } from "vitest";
import { SessionStatus } from "../../../agent/chain/contracts.ts";
import { costOf } from "../../../agent/chain/cost.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import { SIM_CHARGE_POINT_ID, SIM_PRICE_WEI_PER_KWH, startSimWorld, waitUntil, type SimWorld } from "../../../agent/sim/world.ts";
import type { AuctionEvent } from "../../../agent/telemetry/messages.ts";
import { driveEv, evSide, invite } from "./auction-world.ts";

let world: SimWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

describe("agent with bidding enabled", () => {
  it("wins an auction above its listed price (its floor) and serves the auction session at that price", async () => {
    const events: AuctionEvent[] = [];
    // The owner's floor is twice the listed price: the auction price differs from the Registry's.
    const floor = 2n * SIM_PRICE_WEI_PER_KWH;
    const w = await startSimWorld({
      bidding: {
        bidding: { enabled: true, floorPricePerKWh: floor, undercutStep: SIM_PRICE_WEI_PER_KWH / 10n },
        onAuctionEvent: (event) => events.push(event),
        bidderPollIntervalMs: 200,
      },
    });
    world = w;
    const ev = evSide(w.provider, w.deployment, w.evWallet);
    const cpId = cpIdOf(SIM_CHARGE_POINT_ID);

    const { invitationId } = await invite(ev, { areaId: 1n, energyWh: 200, minPowerW: 3_700, weights: [1, 0, 0, 0], roundSeconds: 3, maxRounds: 3 });
    w.hwSim.board.ev.plug();
    // Deposit: exactly the 200 Wh the EV asked for, at the auction price.
    const result = await driveEv(ev, invitationId, 60_000, { depositWei: (price, energyWh) => (energyWh * price) / 1000n });
    // Alone in the auction: round 1 at the floor, round 2 keeps it (strictly lowest), no improvement: decided.
    expect(result.bestPriceByRound).toEqual([floor, floor]);
    expect(result.winnerCpId.toLowerCase()).toBe(cpId.toLowerCase());
    expect(result.sessionPriceWeiPerKWh).toBe(floor);

    await waitUntil("auction win reported", () => events.length === 1, 10_000);
    expect(events[0]).toMatchObject({ type: "won", invitationId, pricePerKWh: floor, txHash: result.decidedTxHash });

    await waitUntil(`session ${result.sessionId} settled`, async () => (await w.ledger.session(result.sessionId)).status === SessionStatus.Settled, 90_000);
    const session = await w.ledger.session(result.sessionId);
    expect(session.pricePerKWh).toBe(floor);
    // Budget from the auction price: 200 Wh paid − 20 Wh stop margin. At the listed price the same deposit would
    // have bought 400 Wh, and the agent would have run past what the EV paid for.
    expect(Number(session.energyWh)).toBeGreaterThanOrEqual(180);
    expect(Number(session.energyWh)).toBeLessThan(200);
    expect(await w.ledger.withdrawable(w.owner.address)).toBe(costOf(session.energyWh, floor));
  }, 180_000);
});

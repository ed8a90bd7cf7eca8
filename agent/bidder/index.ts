/**
 * The pile's side of the pricing auction (DESIGN §4.4): `startBidder` follows invitations for this pile's area and
 * bids within the owner's policy. The agent runs one next to its session core (sharing the device key's tx sender);
 * `trustpile sim` may run extra bidder-only piles with their own keys and journals.
 */
import type { CoreState } from "../core/types.ts";

export { startBidder, type BidderOptions, type BiddingPolicyConfig, type RunningBidder } from "./bidder.ts";
export {
  bidPowerW,
  bidPriceWeiPerKWh,
  decideBid,
  invitationAreasFor,
  type AuctionView,
  type BidAction,
  type BidEntry,
  type BidInput,
  type BidPolicy,
  type PileStatus,
  type SealedBid,
} from "./policy.ts";

/** Whether the session core could take an EV now: no session running or queued, no fault, a healthy meter. */
export function pileIsIdle(state: CoreState): boolean {
  return state.phase === "idle" && state.queue.length === 0 && state.fault === undefined && state.meter.faultKind === undefined && !state.shuttingDown;
}

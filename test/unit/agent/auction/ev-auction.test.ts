/**
 * runAuctionAsEv against a scripted PricingAuction (real ABI encoding, no chain): the branches a live anvil does not
 * reach on demand — a round closed by someone else, a decisive round left with no eligible bid, a screened winner
 * that finalize does not confirm.
 */
import { describe, expect, it } from "vitest";
import { Interface, type Log } from "ethers";
import { PricingAuctionAbi, type PricingAuctionContract } from "../../../../contracts/artifacts/PricingAuction.ts";
import { runAuctionAsEv, type EvAuctionEvent } from "../../../../agent/auction/ev-auction.ts";
import { decisionCommitmentOf } from "../../../../agent/auction/ev-auction-rules.ts";
import { AuctionPhase } from "../../../../agent/chain/contracts.ts";

const iface = new Interface(PricingAuctionAbi);
const AUCTION = "0x00000000000000000000000000000000000000aa";
const EV = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const CP_A = `0x${"a1".repeat(32)}`;
const CP_B = `0x${"b2".repeat(32)}`;
const ZERO = `0x${"00".repeat(32)}`;
const R = `0x${"5e".repeat(32)}`;

interface Chain {
  block: number;
  timestamp: number;
  logs: Log[];
  phase: bigint;
  round: bigint;
  revealEndsAt: bigint;
  screened: { cpId: string; pricePerKWh: bigint; score: bigint };
  decidedCpId: string;
  sent: string[];
  /** What happens when the EV's closeRound is mined (or reverts). */
  onCloseRound: () => void;
  /** The EV's closeRound passes its gas estimate but is mined reverted (another closeRound got in first). */
  closeRoundMinedReverted?: boolean;
}

function eventLog(chain: Chain, name: string, args: unknown[]): Log {
  const fragment = iface.getEvent(name);
  if (!fragment) throw new Error(`no event ${name}`);
  const { data, topics } = iface.encodeEventLog(fragment, args);
  return { address: AUCTION, data, topics, blockNumber: chain.block, index: chain.logs.length } as unknown as Log;
}

function mine(chain: Chain, logs: Log[] = []): { hash: string; blockNumber: number; logs: Log[]; gasUsed: bigint } {
  chain.block += 1;
  chain.timestamp += 1;
  for (const log of logs) (log as { blockNumber: number }).blockNumber = chain.block;
  chain.logs.push(...logs);
  return { hash: `0x${chain.block.toString(16).padStart(64, "0")}`, blockNumber: chain.block, logs, gasUsed: 21_000n };
}

function sentTx(receipt: ReturnType<typeof mine>) {
  return Promise.resolve({ wait: () => Promise.resolve(receipt) });
}

function scriptedAuction(chain: Chain): PricingAuctionContract {
  const provider = {
    getBlock: () => Promise.resolve({ number: chain.block, timestamp: chain.timestamp, hash: `0x${chain.block.toString(16)}` }),
    getLogs: (filter: { fromBlock: number; toBlock: number }) =>
      Promise.resolve(chain.logs.filter((log) => log.blockNumber >= filter.fromBlock && log.blockNumber <= filter.toBlock)),
  };
  const signer = { provider, getAddress: () => Promise.resolve(EV) };
  const auction = {
    runner: signer,
    interface: iface,
    getAddress: () => Promise.resolve(AUCTION),
    parameters: () => Promise.resolve({ minDeposit: 1_000n }),
    invite: () => {
      chain.sent.push("invite");
      return sentTx(mine(chain, [eventLog(chain, "InvitationOpened", [1n, 7n, EV, 10_000n, 0n, 60n, 2n])]));
    },
    progress: () =>
      Promise.resolve({ phase: chain.phase, round: chain.round, revealEndsAt: chain.revealEndsAt, commitEndsAt: 0n }),
    closeRound: () => {
      chain.sent.push("closeRound");
      chain.onCloseRound();
      const receipt = mine(chain);
      if (!chain.closeRoundMinedReverted) return sentTx(receipt);
      // What ethers throws for a mined, reverted transaction: a receipt with status 0 and no revert data.
      const reverted = Object.assign(new Error("transaction execution reverted"), { code: "CALL_EXCEPTION", shortMessage: "transaction execution reverted", data: null, receipt: { ...receipt, status: 0 } });
      return Promise.resolve({ wait: () => Promise.reject(reverted) });
    },
    screen: () => Promise.resolve(chain.screened),
    finalize: (_id: bigint, c: string) => {
      chain.sent.push(`finalize ${c}`);
      const logs = chain.decidedCpId === ZERO ? [] : [eventLog(chain, "Decided", [1n, chain.decidedCpId, 250n, c])];
      return sentTx(mine(chain, logs));
    },
  };
  return auction as unknown as PricingAuctionContract;
}

function freshChain(overrides: Partial<Chain> = {}): Chain {
  return {
    block: 10,
    timestamp: 1_000,
    logs: [],
    phase: AuctionPhase.Bidding,
    round: 1n,
    revealEndsAt: 1_120n,
    screened: { cpId: CP_A, pricePerKWh: 250n, score: 10_000n },
    decidedCpId: CP_A,
    sent: [],
    onCloseRound: () => {},
    ...overrides,
  };
}

const invitation = { areaId: 7n, energyWh: 10_000, minPowerW: 0, weights: [1, 0, 0, 0] as const, roundSeconds: 60, maxRounds: 2 };

describe("runAuctionAsEv", () => {
  it("reports a round someone else closed without sending closeRound, then finalizes with c for the screened winner", async () => {
    const chain = freshChain();
    const events: EvAuctionEvent[] = [];
    // The wall clock stays before the reveal window ends: only another party can close the round.
    let looks = 0;
    const outcome = await runAuctionAsEv({
      auction: scriptedAuction(chain),
      invitation,
      onProgress: (event) => events.push(event),
      pollIntervalMs: 1,
      drawR: () => R,
      nowMs: () => {
        looks += 1;
        if (looks === 2) {
          // A bidder reveals and closes the round; bidding ends with it.
          mine(chain, [
            eventLog(chain, "BidRevealed", [1n, CP_A, 1, 11_000, 250n]),
            eventLog(chain, "BidRevealed", [1n, CP_B, 1, 7_400, 260n]),
          ]);
          mine(chain, [eventLog(chain, "RoundClosed", [1n, 1, 250n])]);
          chain.phase = AuctionPhase.Ended;
        }
        return 1_000_000;
      },
    });
    expect(chain.sent).toEqual(["invite", `finalize ${decisionCommitmentOf(EV, CP_A, R)}`]);
    expect(outcome).toMatchObject({
      status: "decided",
      invitationId: 1n,
      winnerCpId: CP_A,
      pricePerKWh: 250n,
      r: R,
      decisionCommitment: decisionCommitmentOf(EV, CP_A, R),
      rounds: [
        {
          round: 1,
          bestPricePerKWh: 250n,
          bids: [
            { cpId: CP_A, powerW: 11_000, pricePerKWh: 250n },
            { cpId: CP_B, powerW: 7_400, pricePerKWh: 260n },
          ],
        },
      ],
    });
    expect(events.map((event) => event.kind)).toEqual(["invited", "round-closed", "decided"]);
    expect(events[1]).toMatchObject({ kind: "round-closed", closedByUs: false });
  });

  // Seen in `trustpile sim`: a bidder's closeRound and the EV's landed in the same block, the EV's second and
  // reverted without a reason, and the EV gave up on an auction that had in fact moved on.
  it("takes its own closeRound mined reverted as closed by someone else when the round has moved on", async () => {
    const chain = freshChain({ closeRoundMinedReverted: true });
    chain.onCloseRound = () => {
      mine(chain, [eventLog(chain, "BidRevealed", [1n, CP_A, 1, 11_000, 250n]), eventLog(chain, "RoundClosed", [1n, 1, 250n])]);
      chain.phase = AuctionPhase.Ended;
    };
    const events: EvAuctionEvent[] = [];
    const outcome = await runAuctionAsEv({
      auction: scriptedAuction(chain),
      invitation,
      onProgress: (event) => events.push(event),
      pollIntervalMs: 1,
      drawR: () => R,
      nowMs: () => 1_120_000,
    });
    expect(chain.sent).toEqual(["invite", "closeRound", `finalize ${decisionCommitmentOf(EV, CP_A, R)}`]);
    expect(outcome).toMatchObject({ status: "decided", winnerCpId: CP_A, pricePerKWh: 250n });
    expect(events[1]).toMatchObject({ kind: "round-closed", closedByUs: false });
  });

  it("still fails on its own closeRound mined reverted while the round stays open", async () => {
    const chain = freshChain({ closeRoundMinedReverted: true });
    await expect(
      runAuctionAsEv({ auction: scriptedAuction(chain), invitation, pollIntervalMs: 1, nowMs: () => 1_120_000 }),
    ).rejects.toThrow(/^closing the round of invitation 1 was rejected/);
  });

  it("closes a due round itself, and with no eligible bid finalizes anyway so the deposit comes back", async () => {
    const chain = freshChain({ screened: { cpId: ZERO, pricePerKWh: 0n, score: 0n }, decidedCpId: ZERO });
    chain.onCloseRound = () => {
      mine(chain, [eventLog(chain, "RoundClosed", [1n, 1, 0n])]);
      chain.phase = AuctionPhase.Ended;
    };
    const events: EvAuctionEvent[] = [];
    const outcome = await runAuctionAsEv({
      auction: scriptedAuction(chain),
      invitation,
      onProgress: (event) => events.push(event),
      pollIntervalMs: 1,
      nowMs: () => 1_120_000, // exactly when the reveal window ends
    });
    expect(chain.sent).toEqual(["invite", "closeRound", `finalize ${ZERO}`]);
    expect(outcome).toMatchObject({ status: "failed", reason: "no-eligible-bid" });
    expect(events[1]).toMatchObject({ kind: "round-closed", closedByUs: true });
  });

  it("commits again for the pile finalize decided on when a rating moved the winner after screening", async () => {
    const chain = freshChain({ phase: AuctionPhase.Ended, decidedCpId: CP_B });
    const outcome = await runAuctionAsEv({ auction: scriptedAuction(chain), invitation, pollIntervalMs: 1, drawR: () => R });
    expect(outcome).toMatchObject({
      status: "decided",
      winnerCpId: CP_B,
      pricePerKWh: 250n,
      score: null,
      decisionCommitment: decisionCommitmentOf(EV, CP_B, R),
    });
    expect(chain.sent).toEqual([
      "invite",
      `finalize ${decisionCommitmentOf(EV, CP_A, R)}`,
      `finalize ${decisionCommitmentOf(EV, CP_B, R)}`,
    ]);
  });

  it("reports a first round without reveals as no bids", async () => {
    const chain = freshChain({ phase: AuctionPhase.Failed });
    const outcome = await runAuctionAsEv({ auction: scriptedAuction(chain), invitation, pollIntervalMs: 1 });
    expect(outcome).toMatchObject({ status: "failed", reason: "no-bids" });
    expect(chain.sent).toEqual(["invite"]);
  });
});

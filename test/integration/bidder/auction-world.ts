/**
 * The EV side of a pricing auction, driven straight through the contract (no CLI), and the charge points the
 * bidders bid for: what the bidder integration tests share.
 */
import { AbiCoder, Interface, NonceManager, hexlify, keccak256, randomBytes, type HDNodeWallet, type Log, type Provider } from "ethers";
import { PricingAuctionAbi, type PricingAuctionContract } from "../../../contracts/artifacts/PricingAuction.ts";
import { AuctionPhase, connectLedger, connectPricingAuction } from "../../../agent/chain/contracts.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import type { Deployment } from "../../../agent/chain/deployment.ts";
import { deployLedgerFixture, type LedgerFixture } from "../../helpers/chain.ts";

/** Prices in these tests are multiples of this many wei per kWh ("units"), to keep the numbers readable. */
export const UNIT = 10n ** 12n;

export const cell = (x: bigint, y: bigint): bigint => (x << 32n) | y;

export interface PileSpec {
  chargePointId: string;
  areaId: bigint;
  listedPriceWeiPerKWh: bigint;
  maxPowerW: number;
  /** Index of the dev account that owns the CP. */
  ownerAccount: number;
  /** Index of the dev account that is the CP's device key (its registered signer, the bidder's key). */
  deviceAccount: number;
}

/** What the EV side needs: a chain, the contracts and an attested EV account. */
export interface EvSide {
  fixture: { provider: Provider; deployment: Deployment };
  ev: HDNodeWallet;
  auction: (as: HDNodeWallet | NonceManager) => PricingAuctionContract;
}

export interface AuctionWorld extends EvSide {
  fixture: LedgerFixture;
}

export function evSide(provider: Provider, deployment: Deployment, ev: HDNodeWallet): EvSide {
  const auctionAddress = deployment.PricingAuction;
  if (!auctionAddress) throw new Error("the deployment has no PricingAuction");
  return { fixture: { provider, deployment }, ev, auction: (as) => connectPricingAuction(auctionAddress, as) };
}

export async function auctionWorld(piles: readonly PileSpec[], evAccount: number): Promise<AuctionWorld> {
  const fixture = await deployLedgerFixture();
  const auctionAddress = fixture.deployment.PricingAuction;
  if (!auctionAddress) throw new Error("the fixture deployed no PricingAuction");
  const ev = fixture.accounts[evAccount];
  if (!ev) throw new Error(`no dev account ${evAccount}`);
  await fixture.attestEv(ev);
  for (const pile of piles) {
    const owner = fixture.accounts[pile.ownerAccount];
    const device = fixture.accounts[pile.deviceAccount];
    if (!owner || !device) throw new Error(`no dev account for ${pile.chargePointId}`);
    await fixture.attestOwner(owner);
    await fixture.registerCp(owner, {
      chargePointId: pile.chargePointId,
      signer: device.address,
      areaId: pile.areaId,
      pricePerKWh: pile.listedPriceWeiPerKWh,
      maxPowerW: pile.maxPowerW,
    });
  }
  return { fixture, ev, auction: (as) => connectPricingAuction(auctionAddress, as) };
}

export interface InvitationTerms {
  areaId: bigint;
  energyWh: number;
  minPowerW: number;
  /** (price, power, distance, reputation) */
  weights: [number, number, number, number];
  roundSeconds: number;
  maxRounds: number;
}

export interface AuctionResult {
  invitationId: bigint;
  /** Best revealed price of every closed round, in round order (RoundClosed). */
  bestPriceByRound: bigint[];
  decisiveRound: number;
  winnerCpId: string;
  priceWeiPerKWh: bigint;
  sessionId: bigint;
  sessionPriceWeiPerKWh: bigint;
  decidedTxHash: string;
}

const auctionInterface = new Interface(PricingAuctionAbi);

/** Chain time of the next block (anvil keeps wall-clock time plus any offset earlier tests added). */
export async function chainNowS(world: EvSide): Promise<number> {
  const block = await world.fixture.provider.getBlock("pending");
  if (!block) throw new Error("no pending block");
  return block.timestamp;
}

export async function invite(world: EvSide, terms: InvitationTerms): Promise<{ invitationId: bigint; blockNumber: number }> {
  const [, minDeposit] = await world.auction(world.ev).parameters();
  const tx = await world.auction(world.ev).invite(terms.areaId, terms.energyWh, terms.minPowerW, terms.weights, terms.roundSeconds, terms.maxRounds, {
    value: minDeposit,
  });
  const receipt = await tx.wait();
  if (!receipt) throw new Error("invite produced no receipt");
  const opened = receipt.logs.map((log) => auctionInterface.parseLog(log)).find((parsed) => parsed?.name === "InvitationOpened");
  if (!opened) throw new Error("invite emitted no InvitationOpened");
  return { invitationId: opened.args.getValue("invitationId") as bigint, blockNumber: receipt.blockNumber };
}

/**
 * Plays the EV until its session is open: closes every round when it is due (a bidder may beat it to that), then
 * screens, finalizes with c = keccak256(abi.encode(ev, cpId, r)) and opens the auction session.
 */
export async function driveEv(world: EvSide, invitationId: bigint, deadlineMs: number, options: { depositWei?: (priceWeiPerKWh: bigint, energyWh: bigint) => bigint } = {}): Promise<AuctionResult> {
  const ev = new NonceManager(world.ev);
  const auction = world.auction(ev);
  const startedAt = Date.now();
  for (;;) {
    if (Date.now() - startedAt > deadlineMs) throw new Error(`auction ${invitationId} not decided within ${deadlineMs} ms`);
    const progress = await auction.progress(invitationId);
    if (progress.phase === AuctionPhase.Bidding && (await chainNowS(world)) >= Number(progress.revealEndsAt)) {
      try {
        await (await auction.closeRound(invitationId)).wait();
      } catch {
        ev.reset(); // a bidder closed it first; its nonce was not used
      }
      continue;
    }
    if (progress.phase === AuctionPhase.Ended) break;
    if (progress.phase !== AuctionPhase.Bidding) throw new Error(`auction ${invitationId} ended in phase ${progress.phase}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const { cpId, pricePerKWh } = await auction.screen(invitationId);
  const r = hexlify(randomBytes(32));
  const c = keccak256(AbiCoder.defaultAbiCoder().encode(["address", "bytes32", "bytes32"], [world.ev.address, cpId, r]));
  const finalize = await (await auction.finalize(invitationId, c)).wait();
  if (!finalize) throw new Error("finalize produced no receipt");
  const ledger = connectLedger(world.fixture.deployment.ChargingLedger, ev);
  const { energyWh } = await auction.invitation(invitationId);
  const deposit = options.depositWei ? options.depositWei(pricePerKWh, energyWh) : (energyWh * pricePerKWh) / 1000n + 10n ** 15n;
  const opened = await (await ledger.openAuctionSession(invitationId, r, { value: deposit })).wait();
  if (!opened) throw new Error("openAuctionSession produced no receipt");
  const ledgerInterface = ledger.interface;
  const sessionLog = opened.logs.map((log) => ledgerInterface.parseLog(log)).find((parsed) => parsed?.name === "SessionOpened");
  if (!sessionLog) throw new Error("openAuctionSession emitted no SessionOpened");

  const logs = await world.fixture.provider.getLogs({ address: await auction.getAddress(), fromBlock: world.fixture.deployment.deployedAtBlock ?? 0, toBlock: "latest" });
  const ofThis = (name: string): { parsed: NonNullable<ReturnType<Interface["parseLog"]>>; log: Log }[] =>
    logs
      .map((log) => ({ parsed: auctionInterface.parseLog(log), log }))
      .filter((item): item is { parsed: NonNullable<typeof item.parsed>; log: Log } => item.parsed?.name === name && item.parsed.args.getValue("invitationId") === invitationId);
  const ended = ofThis("BiddingEnded")[0];
  const decided = ofThis("Decided")[0];
  if (!ended || !decided) throw new Error("no BiddingEnded/Decided log");
  return {
    invitationId,
    bestPriceByRound: ofThis("RoundClosed").map((item) => item.parsed.args.getValue("bestPricePerKWh") as bigint),
    decisiveRound: Number(ended.parsed.args.getValue("decisiveRound")),
    winnerCpId: cpId,
    priceWeiPerKWh: pricePerKWh,
    sessionId: sessionLog.args.getValue("sessionId") as bigint,
    sessionPriceWeiPerKWh: sessionLog.args.getValue("pricePerKWh") as bigint,
    decidedTxHash: decided.log.transactionHash,
  };
}

/** The BidRevealed logs of an invitation: cpId, round and price. */
export async function revealsOf(world: EvSide, invitationId: bigint): Promise<{ cpId: string; round: number; priceWeiPerKWh: bigint; powerW: number }[]> {
  const auctionAddress = world.fixture.deployment.PricingAuction!;
  const logs = await world.fixture.provider.getLogs({ address: auctionAddress, fromBlock: world.fixture.deployment.deployedAtBlock ?? 0, toBlock: "latest" });
  return logs
    .map((log) => auctionInterface.parseLog(log))
    .filter((parsed) => parsed?.name === "BidRevealed" && parsed.args.getValue("invitationId") === invitationId)
    .map((parsed) => ({
      cpId: (parsed!.args.getValue("cpId") as string).toLowerCase(),
      round: Number(parsed!.args.getValue("round")),
      priceWeiPerKWh: parsed!.args.getValue("pricePerKWh") as bigint,
      powerW: Number(parsed!.args.getValue("powerW")),
    }));
}

export { cpIdOf };

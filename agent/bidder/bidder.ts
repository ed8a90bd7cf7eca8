/**
 * The bidder's imperative shell (DESIGN §3 "Bidder", §4.4): finds invitations for this pile's cell and the eight
 * around it, follows every auction it takes part in by polling the contract, and carries out what `decideBid` says.
 *
 * Crash safety: a sealed bid (price, power, salt, commitment) is written to the journal, fsync'd, in the same SQLite
 * transaction that queues its `commitBid` in the outbox, before the transaction can leave the pile. A restart at any
 * point therefore finds either no commit at all, or the salt to reveal it with: on start every auction with an active
 * journal entry is resumed. All transactions go through the agent's tx sender (one nonce tracker per device key),
 * with idempotency keys per invitation and round, so a decision repeated after a restart sends nothing twice.
 *
 * Bonds: once an auction is decided, failed or abandoned the bidder calls `refund` for its own cpId and then the
 * auction's `withdraw()`, which pays the device key back what its commits locked up. The bond came from the device
 * key's gas money, and a pile that left it to the owner would slowly run out of gas one auction at a time.
 *
 * Invitations are not held back for confirmations: bidding on one that a reorg removes costs a dry run that fails
 * (`UnknownInvitation`) and nothing else. A reorg that drops our own commit shows up in `bidOf` as no commit, and the
 * round is simply bid again.
 */
import { AbiCoder, Interface, hexlify, keccak256, randomBytes, type Log, type Provider, type Signer } from "ethers";
import { PricingAuctionAbi, type PricingAuctionContract } from "../../contracts/artifacts/PricingAuction.ts";
import type { RegistryContract } from "../../contracts/artifacts/Registry.ts";
import { connectPricingAuction, connectRegistry } from "../chain/contracts.ts";
import type { Deployment } from "../chain/deployment.ts";
import { decodeRevert, describeRevert } from "../chain/revert.ts";
import { auctionTxKey, createTxSender, type AuctionTxKind, type TxItem, type TxSender } from "../chain/tx-sender.ts";
import type { Journal } from "../journal/journal.ts";
import type { Logger } from "../logging.ts";
import type { AuctionEvent } from "../telemetry/messages.ts";
import {
  auctionPhaseName,
  bondStateName,
  decideBid,
  invitationAreasFor,
  type AuctionView,
  type BidAction,
  type BidEntry,
  type BidPolicy,
} from "./policy.ts";

/** The owner's price policy: the config's `bidding` section, prices in wei per kWh. */
export interface BiddingPolicyConfig {
  enabled: boolean;
  floorPricePerKWh: bigint;
  undercutStep: bigint;
  /** Offer less power than registered (e.g. a weak house connection); default: the Registry's maxPowerW. */
  maxPowerW?: number;
}

export interface BidderOptions {
  provider: Provider;
  /** The device key connected to `provider`: the Registry's signer of `cpId`, the key the bonds come from. */
  wallet: Signer;
  /** Needs `PricingAuction` and `Registry`. */
  deployment: Deployment;
  /** keccak256(utf8(chargePointId)). */
  cpId: string;
  /** Holds the sealed bids (`auction_bids`) and the outbox the transactions go through. */
  journal: Journal;
  policy: BiddingPolicyConfig;
  log: Logger;
  /**
   * The agent's tx sender for the device key. Given, the agent ticks it and the bidder only queues rows; omitted
   * (a bidder-only pile in `trustpile sim`, tests), the bidder creates one on `journal` and ticks it itself.
   * Never run two senders for one key: they would hand out the same nonces.
   */
  sender?: TxSender;
  /** Whether the pile could serve an EV now (no session in progress or queued, no fault); default always. */
  isIdle?: () => boolean;
  /** The bidder's reports (an auction won), for telemetry. Must not throw. */
  onAuctionEvent?: (event: AuctionEvent) => void;
  /** How often auctions are polled and invitations looked for; default 500 ms. Keep it well under roundSeconds. */
  pollIntervalMs?: number;
  /** First block to look for invitations in when the journal has no cursor; default the deployment block, else the head. */
  startBlock?: number;
  /** Most blocks one getLogs call may span; default 2000. */
  maxLogRange?: number;
  /** Clock for the pile-side timing (ms); default Date.now. Auction windows are judged by the chain's time. */
  clock?: () => number;
}

export interface RunningBidder {
  /** One pass: new invitations, then every followed auction. Also what the timer runs; never throws. */
  pollOnce(): Promise<void>;
  /** Stops polling and waits for the pass under way. The journal stays open; queued transactions stay queued. */
  stop(): Promise<void>;
}

interface Followed {
  invitationId: bigint;
  openedAtBlock: number;
  minPowerW: number;
}

/** The journal entry: the policy core's `BidEntry` plus what the shell needs to find the auction's logs. */
interface StoredEntry extends BidEntry {
  openedAtBlock: number;
  minPowerW: number;
}

const CURSOR_KEY = "bidder.invitationCursor";
/** Blocks re-scanned behind the cursor on every pass, so an invitation re-mined by a short reorg is still found. */
const RESCAN_BLOCKS = 12;
const DEFAULT_POLL_INTERVAL_MS = 500;
const DEFAULT_MAX_LOG_RANGE = 2000;
const REGISTRY_REFRESH_MS = 10_000;
/**
 * Finished invitations whose journal entries (sealed bids, outcome) are kept for diagnostics; older ones are
 * deleted as new ones finish, so `auction_bids` stays bounded. A finished entry only has to outlive the invitation
 * scan's RESCAN_BLOCKS window behind the cursor (it stops a rescan from following the invitation again), and an
 * invitation followed again all the same finds its bond state on chain: a held bond is refunded, a settled one
 * leaves nothing to do.
 */
export const KEEP_FINISHED_AUCTIONS = 100;

const auctionInterface = new Interface(PricingAuctionAbi);
const abi = AbiCoder.defaultAbiCoder();

/** Starts following invitations for `cpId`; see the module comment. */
export function startBidder(options: BidderOptions): RunningBidder {
  const { provider, journal, log } = options;
  const cpId = options.cpId.toLowerCase();
  const auctionAddress = options.deployment.PricingAuction;
  if (!auctionAddress) throw new Error("bidder: deployment.PricingAuction: required to bid, missing; redeploy with `trustpile chain deploy`");
  const auction: PricingAuctionContract = connectPricingAuction(auctionAddress, provider);
  const registry: RegistryContract = connectRegistry(options.deployment.Registry, provider);
  const clock = options.clock ?? Date.now;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const maxLogRange = options.maxLogRange ?? DEFAULT_MAX_LOG_RANGE;
  const isIdle = options.isIdle ?? (() => true);
  const ownSender = options.sender === undefined;
  const sender: TxSender =
    options.sender ??
    createTxSender({
      wallet: options.wallet,
      ledgerAddress: options.deployment.ChargingLedger,
      auctionAddress,
      outbox: journal,
      log: (message, fields) => log.debug(fields ?? {}, message),
    });

  const followed = new Map<string, Followed>();
  for (const row of journal.activeAuctionBids()) {
    const entry = row.entry as StoredEntry;
    followed.set(row.invitationId.toString(), { invitationId: row.invitationId, openedAtBlock: entry.openedAtBlock, minPowerW: entry.minPowerW });
  }
  if (followed.size > 0) log.info({ invitations: [...followed.keys()] }, "bidder resuming auctions from the journal");

  let registered: { atMs: number; areaId: bigint; listedPriceWeiPerKWh: bigint; maxPowerW: number; active: boolean } | undefined;
  let bidBondWei: bigint | undefined;
  const reported = new Set<string>();
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  /** Logs `message` once per `key` (a failed row, a reason to sit an auction out), not on every poll. */
  function once(key: string, write: () => void): void {
    if (reported.has(key)) return;
    reported.add(key);
    write();
  }

  async function chargePoint(): Promise<NonNullable<typeof registered>> {
    if (registered && clock() - registered.atMs < REGISTRY_REFRESH_MS) return registered;
    const cp = await registry.chargePoint(cpId);
    registered = { atMs: clock(), areaId: cp.areaId, listedPriceWeiPerKWh: cp.pricePerKWh, maxPowerW: Number(cp.maxPowerW), active: cp.active };
    return registered;
  }

  /** The chain's time for the next block: windows open and close by block timestamps, not by the pile's clock. */
  async function chainNowS(): Promise<number> {
    const pending = await provider.getBlock("pending").catch(() => null);
    if (pending) return pending.timestamp;
    const latest = await provider.getBlock("latest");
    if (!latest) throw new Error("the node has no latest block");
    return Math.max(latest.timestamp, Math.floor(clock() / 1000));
  }

  async function logsBetween(filter: { topics: (string | string[] | null)[] }, fromBlock: number, toBlock: number): Promise<Log[]> {
    const logs: Log[] = [];
    for (let from = fromBlock; from <= toBlock; from += maxLogRange) {
      const to = Math.min(toBlock, from + maxLogRange - 1);
      logs.push(...(await provider.getLogs({ address: auctionAddress, topics: filter.topics, fromBlock: from, toBlock: to })));
    }
    return logs;
  }

  async function findInvitations(areaId: bigint, headBlock: number): Promise<void> {
    const cursor = journal.getValue(CURSOR_KEY);
    const fromCursor = typeof cursor === "number" ? Math.max(0, cursor - RESCAN_BLOCKS) : (options.startBlock ?? options.deployment.deployedAtBlock ?? headBlock);
    if (fromCursor > headBlock) return;
    const opened = auctionInterface.getEvent("InvitationOpened");
    if (!opened) throw new Error("PricingAuction ABI has no InvitationOpened event");
    // One query for the nine cells: a topic array matches any of its values.
    const areaTopics = invitationAreasFor(areaId).map((area) => abi.encode(["uint64"], [area]));
    const logs = await logsBetween({ topics: [opened.topicHash, null, areaTopics] }, fromCursor, headBlock);
    for (const entry of logs) {
      const parsed = auctionInterface.parseLog(entry);
      if (!parsed) continue;
      const invitationId = parsed.args.getValue("invitationId") as bigint;
      const key = invitationId.toString();
      if (followed.has(key) || journal.auctionBid(invitationId)?.status === "finished") continue;
      followed.set(key, { invitationId, openedAtBlock: entry.blockNumber, minPowerW: Number(parsed.args.getValue("minPowerW")) });
      log.info({ invitationId: key, areaId: (parsed.args.getValue("areaId") as bigint).toString(), ev: parsed.args.getValue("ev") }, "auction invitation seen");
    }
    // Written only when it moves: every journal write is an fsync on the pile's flash.
    if (cursor !== headBlock + 1) journal.setValue(CURSOR_KEY, headBlock + 1);
  }

  async function previousRoundPrices(item: Followed, round: number, headBlock: number): Promise<Map<string, bigint>> {
    const prices = new Map<string, bigint>();
    if (round <= 1) return prices;
    const revealed = auctionInterface.getEvent("BidRevealed");
    if (!revealed) throw new Error("PricingAuction ABI has no BidRevealed event");
    const logs = await logsBetween({ topics: [revealed.topicHash, abi.encode(["uint256"], [item.invitationId])] }, item.openedAtBlock, headBlock);
    for (const entry of logs) {
      const parsed = auctionInterface.parseLog(entry);
      if (!parsed || Number(parsed.args.getValue("round")) !== round - 1) continue;
      prices.set((parsed.args.getValue("cpId") as string).toLowerCase(), parsed.args.getValue("pricePerKWh") as bigint);
    }
    return prices;
  }

  async function decidedLog(item: Followed, headBlock: number): Promise<{ pricePerKWh: bigint; txHash: string } | undefined> {
    const decided = auctionInterface.getEvent("Decided");
    if (!decided) throw new Error("PricingAuction ABI has no Decided event");
    const topics = [decided.topicHash, abi.encode(["uint256"], [item.invitationId]), cpId];
    const logs = await logsBetween({ topics }, item.openedAtBlock, headBlock);
    const found = logs.at(-1);
    const parsed = found ? auctionInterface.parseLog(found) : null;
    return found && parsed ? { pricePerKWh: parsed.args.getValue("pricePerKWh") as bigint, txHash: found.transactionHash } : undefined;
  }

  function storedEntry(item: Followed): StoredEntry | undefined {
    const row = journal.auctionBid(item.invitationId);
    return row ? (row.entry as StoredEntry) : undefined;
  }

  function newEntry(item: Followed): StoredEntry {
    return { invitationId: item.invitationId, winAnnounced: false, withdrawn: false, openedAtBlock: item.openedAtBlock, minPowerW: item.minPowerW };
  }

  /** A failed row of ours is reported once, as one sentence; it never stops the bidder. */
  function reportIfFailed(key: string, what: string): boolean {
    const row = journal.get(key);
    if (row?.status !== "failed") return false;
    once(`failed:${key}`, () => log.warn({ key, reason: row.failure }, `${what} was refused by the chain: ${row.failure ?? "no reason given"}`));
    return true;
  }

  function submit(item: TxItem): void {
    sender.submit(item);
  }

  async function follow(item: Followed, nowS: number, headBlock: number, policy: BidPolicy, active: boolean): Promise<void> {
    const key = item.invitationId.toString();
    let progress;
    try {
      progress = await auction.progress(item.invitationId);
    } catch (error) {
      if (decodeRevert(error)?.name === "UnknownInvitation") {
        // Reorged away (or a journal from another deployment): nothing was or can be staked on it.
        followed.delete(key);
        log.warn({ invitationId: key }, "auction invitation no longer exists on chain; dropping it");
        return;
      }
      throw error;
    }
    const bid = await auction.bidOf(item.invitationId, cpId);
    const phase = auctionPhaseName(progress.phase);
    const round = Number(progress.round);
    const ownBid = { committedRound: Number(bid.committedRound), revealedRound: Number(bid.revealedRound), bond: bondStateName(bid.bond) };
    const wantsPrices = phase === "bidding" && round > 1 && ownBid.committedRound < round && nowS < Number(progress.commitEndsAt);
    const view: AuctionView = {
      invitationId: item.invitationId,
      phase,
      round,
      commitEndsAtS: Number(progress.commitEndsAt),
      revealEndsAtS: Number(progress.revealEndsAt),
      bestPriceLastRoundWeiPerKWh: progress.bestPriceLastRound,
      minPowerW: item.minPowerW,
      decisionDeadlineS: phase === "ended" || phase === "decided" ? Number(await auction.decisionDeadline(item.invitationId)) : 0,
      winnerCpId: /^0x0+$/.test(progress.winnerCpId) ? undefined : progress.winnerCpId.toLowerCase(),
      ownBid,
      previousRoundPrices: wantsPrices ? await previousRoundPrices(item, round, headBlock) : new Map(),
    };
    const entry = storedEntry(item);
    const action = decideBid({
      auction: view,
      entry,
      policy,
      pile: { cpId, idle: isIdle(), active },
      nowS,
      freshSalt: hexlify(randomBytes(32)),
    });
    await carryOut(item, action, view, entry, headBlock);
  }

  async function carryOut(item: Followed, action: BidAction, view: AuctionView, entry: StoredEntry | undefined, headBlock: number): Promise<void> {
    const invitationId = item.invitationId;
    const key = invitationId.toString();
    const fields = { invitationId: key, round: view.round };
    switch (action.type) {
      case "ignore":
        once(`ignore:${key}:${action.reason}`, () => log.info({ ...fields, reason: action.reason }, "not bidding in this auction"));
        if (view.phase !== "bidding" && !entry) followed.delete(key);
        return;
      case "wait":
        return;
      case "commit": {
        const commitKey = auctionTxKey("commitBid", invitationId, action.round);
        const existing = journal.get(commitKey);
        if (existing) {
          // Queued before (maybe by the run before a restart): its sealed bid is in the journal; never seal another.
          reportIfFailed(commitKey, `the commit of round ${action.round} for invitation ${key}`);
          return;
        }
        const commitment = keccak256(
          abi.encode(["uint256", "bytes32", "uint32", "uint256", "bytes32"], [invitationId, cpId, action.powerW, action.priceWeiPerKWh, action.salt]),
        );
        const valueWei = view.ownBid.bond === "none" ? await bidBond() : 0n;
        const sealed = { round: action.round, priceWeiPerKWh: action.priceWeiPerKWh, powerW: action.powerW, salt: action.salt, commitment };
        // Journal first, in one transaction with the outbox row: the commit cannot leave the pile without its salt.
        journal.transaction(() => {
          journal.saveAuctionBid(invitationId, "active", { ...(entry ?? newEntry(item)), sealed });
          submit({ key: commitKey, kind: "commitBid", payload: { invitationId, cpId, commitment, valueWei } });
        });
        log.info({ ...fields, pricePerKWh: action.priceWeiPerKWh.toString(), powerW: action.powerW, bondWei: valueWei.toString() }, "bid sealed; commit queued");
        return;
      }
      case "reveal": {
        const revealKey = auctionTxKey("revealBid", invitationId, action.sealed.round);
        if (reportIfFailed(revealKey, `the reveal of round ${action.sealed.round} for invitation ${key}`)) return;
        if (!journal.get(revealKey)) log.info({ ...fields, pricePerKWh: action.sealed.priceWeiPerKWh.toString() }, "revealing bid");
        const { salt, powerW, priceWeiPerKWh } = action.sealed;
        submit({ key: revealKey, kind: "revealBid", payload: { invitationId, cpId, powerW, pricePerKWh: priceWeiPerKWh, salt } });
        return;
      }
      case "closeRound": {
        const closeKey = auctionTxKey("closeRound", invitationId, action.round);
        if (reportIfFailed(closeKey, `closing round ${action.round} of invitation ${key}`)) return;
        submit({ key: closeKey, kind: "closeRound", payload: { invitationId, round: action.round } });
        return;
      }
      case "announceWin": {
        const decided = await decidedLog(item, headBlock);
        if (!decided) return; // the log is not indexed yet; the next pass finds it
        log.info(
          { invitationId: key, cpId, pricePerKWh: decided.pricePerKWh.toString(), txHash: decided.txHash },
          "auction won; expecting the EV's session at the auction price",
        );
        try {
          options.onAuctionEvent?.({ type: "won", atMs: clock(), invitationId, pricePerKWh: decided.pricePerKWh, txHash: decided.txHash });
        } catch (error) {
          log.warn({ err: error }, "auction event consumer failed");
        }
        if (entry) journal.saveAuctionBid(invitationId, "active", { ...entry, winAnnounced: true });
        return;
      }
      case "abandon": {
        const abandonKey = auctionTxKey("abandonAuction", invitationId);
        if (reportIfFailed(abandonKey, `abandoning invitation ${key} after the EV's decision window`)) return;
        submit({ key: abandonKey, kind: "abandonAuction", payload: { invitationId } });
        return;
      }
      case "refundBond": {
        const refundKey = auctionTxKey("refundBond", invitationId);
        if (reportIfFailed(refundKey, `the bond refund for invitation ${key}`)) return;
        submit({ key: refundKey, kind: "refundBond", payload: { invitationId, cpId } });
        return;
      }
      case "withdrawBonds": {
        const withdrawKey = auctionTxKey("withdrawBonds", invitationId);
        const row = journal.get(withdrawKey);
        if (row && row.status !== "pending") {
          reportIfFailed(withdrawKey, `withdrawing the bond of invitation ${key}`);
          if (entry) journal.saveAuctionBid(invitationId, "active", { ...entry, withdrawn: true });
          return;
        }
        submit({ key: withdrawKey, kind: "withdrawBonds", payload: { invitationId } });
        return;
      }
      case "done":
        if (entry) {
          journal.transaction(() => {
            journal.saveAuctionBid(invitationId, "finished", entry);
            journal.pruneFinishedAuctionBids(KEEP_FINISHED_AUCTIONS);
          });
        }
        followed.delete(key);
        if (action.outcome !== "notBidding") log.info({ invitationId: key, outcome: action.outcome }, "auction finished for this pile");
        return;
    }
  }

  async function bidBond(): Promise<bigint> {
    bidBondWei ??= (await auction.parameters()).bidBond;
    return bidBondWei;
  }

  async function pass(): Promise<void> {
    const head = await provider.getBlockNumber();
    const cp = await chargePoint();
    await findInvitations(cp.areaId, head);
    if (followed.size === 0) return;
    const nowS = await chainNowS();
    const policy: BidPolicy = {
      enabled: options.policy.enabled,
      floorPriceWeiPerKWh: options.policy.floorPricePerKWh,
      undercutStepWeiPerKWh: options.policy.undercutStep,
      listedPriceWeiPerKWh: cp.listedPriceWeiPerKWh,
      maxPowerW: Math.min(cp.maxPowerW, options.policy.maxPowerW ?? cp.maxPowerW),
    };
    for (const item of [...followed.values()]) {
      if (stopped) return;
      try {
        await follow(item, nowS, head, policy, cp.active);
      } catch (error) {
        log.warn({ invitationId: item.invitationId.toString(), error: describeRevert(error) }, "following the auction failed; retrying on the next poll");
      }
    }
  }

  async function tickOwnSender(): Promise<void> {
    for (const outcome of await sender.tick()) {
      if (outcome.status === "pending") continue;
      const kind = outcome.kind as AuctionTxKind;
      log.info({ key: outcome.key, kind, status: outcome.status, txHash: outcome.txHash, error: outcome.error }, "auction transaction");
    }
  }

  function pollOnce(): Promise<void> {
    const run = running.then(async () => {
      if (stopped) return;
      try {
        await pass();
      } catch (error) {
        // The RPC being down is no reason to stop: the next poll tries again.
        once(`pass:${describeRevert(error)}`, () => log.warn({ error: describeRevert(error) }, "bidder poll failed; retrying"));
      }
      if (ownSender && !stopped) await tickOwnSender().catch((error: unknown) => log.warn({ error: describeRevert(error) }, "auction transaction tick failed"));
    });
    running = run;
    return run;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      void pollOnce().finally(schedule);
    }, pollIntervalMs);
  }
  void pollOnce().finally(schedule);

  return {
    pollOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}

/**
 * Sends the pile's own transactions, `authorize` and `settle`, and the bidder's PricingAuction calls (`commitBid`,
 * `revealBid`, `closeRound`, `refund`, `withdraw`) from the device key (DESIGN §3, Chain): outbox rows in, TxOutcomes
 * out, so the agent can feed them to the session core as events. One sender per device key: the bidder shares it
 * with the session core, because two nonce trackers on one key would hand out the same nonce twice.
 *
 * Nonces are tracked here, not asked of the node per send: the first tick reads `getTransactionCount(pending)`, and
 * each transaction keeps its nonce for life. A transaction not mined after `resendAfterMs` is re-signed with the SAME
 * nonce and fees raised by `feeBumpPercent` (geth replaces a pooled transaction only for ≥ 10 % more), so exactly one
 * of the versions can ever be mined. The hash and nonce are written to the outbox before each broadcast
 * (write-ahead): after a crash, a row with a hash is first looked up (mined → done), else re-sent with its nonce.
 *
 * Idempotency: before every (re)send the call is dry-run (`eth_call`). `settle` reverting `AlreadySettled` means
 * someone (a relayer, an earlier run) settled it: done. Reverts that can never succeed (the session was cancelled or
 * expired, the authorization window closed, a bad signature) fail the row with the decoded error. Anything else that
 * goes wrong (RPC unreachable, timeouts, unknown node errors) leaves the row pending, retried on later ticks: the
 * agent keeps charging within the deposit's budget while the RPC is down.
 *
 * IMPORTANT: a nonce that was broadcast must be used, or every later transaction of the device key waits behind the
 * gap. When a row in flight turns out to be done or hopeless, its nonce is taken over by a 0-value transfer to self
 * with bumped fees (a "filler") instead of being abandoned.
 *
 * Transactions the node no longer knows. A transaction neither mined nor known to the node (getTransaction null:
 * evicted from the pool, or mined and then removed by a reorg deeper than the confirmations, which may drop it for
 * good) would hold its nonce until `resendAfterMs` ran out while every later transaction waits behind it. So a row in
 * flight that the node does not know is re-sent at once, and a nonce of ours that was mined and is no longer (the
 * node's count went back below it) is filled at once unless the node pools our transaction again: its row already
 * reported its outcome, and whatever it did is now the core's to handle (the deposit it served left the chain too).
 * The last LANDED_KEPT mined transactions are remembered for this, in memory; after a restart a nonce below the next
 * one that is neither in flight, mined nor pooled (the node's pending count) is filled the same way.
 */
import { Interface, Transaction, isCallException, isError, type Provider, type Signer, type TransactionReceipt } from "ethers";
import { ChargingLedgerAbi } from "../../contracts/artifacts/ChargingLedger.ts";
import { PricingAuctionAbi } from "../../contracts/artifacts/PricingAuction.ts";
import { SessionStatus } from "./contracts.ts";
import { decodeRevert, describeRevert } from "./revert.ts";
import type { SessionTotal } from "./session-total.ts";

// ================================================================ outbox

export interface OutboxRow {
  key: string;
  kind: string;
  payload: unknown;
  status: "pending" | "done" | "failed";
  attempts: number;
  txHash?: string;
  nonce?: number;
  result?: unknown;
  failure?: string;
}

/** The journal's persisted queue of outgoing messages; rows are keyed for idempotency. */
export interface OutboxStore {
  /** Adds a pending row; returns the row already stored under `key` if there is one. */
  enqueue(item: { key: string; kind: string; payload: unknown }): OutboxRow;
  /** Pending rows in the order they were enqueued, of one kind or all. */
  pending(kind?: string): OutboxRow[];
  /** Counts an attempt; `txHash` and `nonce` replace the stored ones when given. */
  markAttempt(key: string, attempt: { txHash?: string; nonce?: number; note?: string }): void;
  markDone(key: string, result: unknown): void;
  markFailed(key: string, reason: string): void;
  get(key: string): OutboxRow | undefined;
}

/** An OutboxStore in memory, for tests and `trustpile sim`. Rows are copied in and out, as a database would. */
export function createMemoryOutbox(): OutboxStore & { rows(): OutboxRow[] } {
  const rows = new Map<string, OutboxRow>();
  const row = (key: string): OutboxRow => {
    const found = rows.get(key);
    if (!found) throw new Error(`outbox: no row with key ${JSON.stringify(key)}`);
    return found;
  };
  return {
    enqueue(item) {
      const existing = rows.get(item.key);
      if (existing) return structuredClone(existing);
      const created: OutboxRow = { key: item.key, kind: item.kind, payload: structuredClone(item.payload), status: "pending", attempts: 0 };
      rows.set(item.key, created);
      return structuredClone(created);
    },
    pending: (kind) => [...rows.values()].filter((r) => r.status === "pending" && (kind === undefined || r.kind === kind)).map((r) => structuredClone(r)),
    markAttempt(key, attempt) {
      const target = row(key);
      target.attempts += 1;
      if (attempt.txHash !== undefined) target.txHash = attempt.txHash;
      if (attempt.nonce !== undefined) target.nonce = attempt.nonce;
    },
    markDone(key, result) {
      const target = row(key);
      target.status = "done";
      target.result = structuredClone(result);
    },
    markFailed(key, reason) {
      const target = row(key);
      target.status = "failed";
      target.failure = reason;
    },
    get: (key) => {
      const found = rows.get(key);
      return found ? structuredClone(found) : undefined;
    },
    rows: () => [...rows.values()].map((r) => structuredClone(r)),
  };
}

// ================================================================ items and outcomes

export type LedgerTxKind = "authorize" | "settle";
/** The bidder's PricingAuction calls; `withdrawBonds` is the auction's `withdraw()`, not the ledger's. */
export type AuctionTxKind = "commitBid" | "revealBid" | "closeRound" | "abandonAuction" | "refundBond" | "withdrawBonds";
export type TxKind = LedgerTxKind | AuctionTxKind;

const LEDGER_KINDS: readonly string[] = ["authorize", "settle"];
const AUCTION_KINDS: readonly string[] = ["commitBid", "revealBid", "closeRound", "abandonAuction", "refundBond", "withdrawBonds"];

export function isAuctionTxKind(kind: string): kind is AuctionTxKind {
  return AUCTION_KINDS.includes(kind);
}

export interface AuthorizePayload {
  sessionId: bigint;
}

export interface SettlePayload {
  total: SessionTotal;
  /** EIP-712 signature of `total` by the pile's registered signer. */
  signature: string;
}

/** commitBid: `valueWei` is the bond with a charge point's first commit of an invitation, else 0. */
export interface CommitBidPayload {
  invitationId: bigint;
  cpId: string;
  commitment: string;
  valueWei: bigint;
}

export interface RevealBidPayload {
  invitationId: bigint;
  cpId: string;
  powerW: number;
  pricePerKWh: bigint;
  salt: string;
}

/** closeRound: `round` is the round meant; once another caller has closed it, the row is done. */
export interface CloseRoundPayload {
  invitationId: bigint;
  round: number;
}

/** abandonAuction: the EV let its decision window pass; anyone may end the auction and free the bonds. */
export interface AbandonAuctionPayload {
  invitationId: bigint;
}

export interface RefundBondPayload {
  invitationId: bigint;
  cpId: string;
}

/** withdrawBonds: the invitation only names the row; `withdraw()` pays out every credit of the device key. */
export interface WithdrawBondsPayload {
  invitationId: bigint;
}

export type TxItem =
  | { key: string; kind: "authorize"; payload: AuthorizePayload }
  | { key: string; kind: "settle"; payload: SettlePayload }
  | { key: string; kind: "commitBid"; payload: CommitBidPayload }
  | { key: string; kind: "revealBid"; payload: RevealBidPayload }
  | { key: string; kind: "closeRound"; payload: CloseRoundPayload }
  | { key: string; kind: "abandonAuction"; payload: AbandonAuctionPayload }
  | { key: string; kind: "refundBond"; payload: RefundBondPayload }
  | { key: string; kind: "withdrawBonds"; payload: WithdrawBondsPayload };

/**
 * The idempotency key the agent uses for a session's transaction of `kind`: `authorize:<id>`, and
 * `authorize:<id>/r<N>` for the N-th deposit that took the id again after reorgs removed the earlier ones (the
 * ledger's session counter rewinds with a reorg deeper than the confirmations).
 */
export function txKey(kind: LedgerTxKind, sessionId: bigint, generation = 0): string {
  return generation > 0 ? `${kind}:${sessionId}/r${generation}` : `${kind}:${sessionId}`;
}

/** The parts of a key built by `txKey`, or undefined for any other key. */
export function parseTxKey(key: string): { kind: LedgerTxKind; sessionId: bigint; generation: number } | undefined {
  const match = /^(authorize|settle):(\d+)(?:\/r([1-9]\d*))?$/.exec(key);
  if (!match) return undefined;
  return { kind: match[1] as LedgerTxKind, sessionId: BigInt(match[2]!), generation: match[3] === undefined ? 0 : Number(match[3]) };
}

/** The idempotency key of an auction call: per invitation, and per round for the calls made every round. */
export function auctionTxKey(kind: AuctionTxKind, invitationId: bigint, round?: number): string {
  return round === undefined ? `${kind}:${invitationId}` : `${kind}:${invitationId}:${round}`;
}

export interface TxOutcome {
  key: string;
  kind: TxKind;
  /**
   * mined: our transaction succeeded in `blockNumber`. alreadyDone: the chain already has the effect (settled by a
   * relayer, authorized by the owner). failed: can never succeed; `error` names the contract error. pending: in
   * flight or waiting (RPC down, session not authorized yet); `error` says why when something went wrong.
   */
  status: "mined" | "alreadyDone" | "failed" | "pending";
  txHash?: string;
  blockNumber?: number;
  error?: string;
}

export interface TxSenderOptions {
  /** The device key, connected to a provider. */
  wallet: Signer;
  ledgerAddress: string;
  /** The PricingAuction; without it, auction rows fail as unsendable. */
  auctionAddress?: string;
  outbox: OutboxStore;
  /** Fee raise for a replacement, in percent; default 12.5, at least the 10 geth requires. */
  feeBumpPercent?: number;
  /** A transaction not mined after this long is re-sent with bumped fees; default 30000 ms. */
  resendAfterMs?: number;
  /** Never offer more than this per gas (maxFeePerGas, or gasPrice on pre-London chains). */
  maxFeePerGasCapWei?: bigint;
  /** A single RPC call that takes longer counts as a network error; default 10000 ms. */
  rpcTimeoutMs?: number;
  log?: (msg: string, fields?: object) => void;
  /** Clock for resend timing; default Date.now. */
  now?: () => number;
}

export interface TxSender {
  /** Queues `item` in the outbox; a key already there (pending, done or failed) is left as it is. */
  submit(item: TxItem): OutboxRow;
  /** Advances every pending row once; never throws for chain or network trouble. */
  tick(): Promise<TxOutcome[]>;
}

// ================================================================ sender

type Fees = { type: 2; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } | { type: 0; gasPrice: bigint };

interface Slot {
  /** Undefined for a filler that only keeps the nonce moving. */
  key: string | undefined;
  kind: TxKind | "filler";
  nonce: number;
  hashes: string[];
  to: string;
  data: string;
  valueWei: bigint;
  gasLimit: bigint | undefined;
  /** Fees of the last version sent; undefined after a restart until learned. */
  fees: Fees | undefined;
  /** When the last version was sent; 0 means a (re)send is due now. */
  sentAtMs: number;
}

type Verdict =
  | { type: "ok" }
  | { type: "alreadyDone"; reason: string }
  | { type: "failed"; reason: string }
  | { type: "wait"; reason: string };

type BroadcastResult = "accepted" | "nonceTooLow" | "underpriced" | "insufficientFunds" | { ambiguous: string };

const ledgerInterface = new Interface(ChargingLedgerAbi);
const auctionInterface = new Interface(PricingAuctionAbi);
const DEFAULT_FEE_BUMP_PERCENT = 12.5;
const MIN_FEE_BUMP_PERCENT = 10;
const DEFAULT_RESEND_AFTER_MS = 30_000;
const DEFAULT_RPC_TIMEOUT_MS = 10_000;
const GAS_MARGIN_PERCENT = 25n;
const FILLER_GAS = 21_000n;
/** A row whose transactions keep reverting on chain although the dry run passes is failed after this many. */
const MAX_ONCHAIN_REVERTS = 3;
/** Mined nonces remembered for reorg detection: far more than any reorg we could survive takes away. */
const LANDED_KEPT = 64;
const STATUS_NAMES = Object.fromEntries(Object.entries(SessionStatus).map(([name, value]) => [value.toString(), name]));

export function createTxSender(options: TxSenderOptions): TxSender {
  const feeBumpPercent = options.feeBumpPercent ?? DEFAULT_FEE_BUMP_PERCENT;
  const resendAfterMs = options.resendAfterMs ?? DEFAULT_RESEND_AFTER_MS;
  const rpcTimeoutMs = options.rpcTimeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  if (!(feeBumpPercent >= MIN_FEE_BUMP_PERCENT)) {
    throw new Error(`tx sender: feeBumpPercent: expected >= ${MIN_FEE_BUMP_PERCENT} (geth refuses smaller replacements), got ${feeBumpPercent}`);
  }
  if (!(resendAfterMs > 0)) throw new Error(`tx sender: resendAfterMs: expected ms > 0, got ${resendAfterMs}`);
  const provider: Provider | null = options.wallet.provider;
  if (!provider) throw new Error("tx sender: wallet: expected a signer connected to a provider");
  const { wallet, outbox, ledgerAddress } = options;
  const callOf = (kind: string, payload: unknown): Call => callFor(kind, payload, ledgerAddress, options.auctionAddress);
  const log = options.log ?? (() => {});
  const now = options.now ?? Date.now;
  const bumpBasisPoints = BigInt(Math.ceil(feeBumpPercent * 100));

  let address: string | undefined;
  let chainId: bigint | undefined;
  let nextNonce: number | undefined;
  const slots = new Map<number, Slot>();
  /** Our recently mined transactions by nonce (see the file comment): a reorg may take any of them away again. */
  const landed = new Map<number, { hashes: string[]; fees: Fees | undefined; key: string | undefined }>();
  const onchainReverts = new Map<string, number>();
  let queue: Promise<unknown> = Promise.resolve();

  const rpc = <T>(what: string, call: () => Promise<T>): Promise<T> => withDeadline(call(), rpcTimeoutMs, what);

  function ourPendingRows(): OutboxRow[] {
    return outbox.pending().filter((row) => LEDGER_KINDS.includes(row.kind) || AUCTION_KINDS.includes(row.kind));
  }

  function slotOf(key: string): Slot | undefined {
    for (const slot of slots.values()) if (slot.key === key) return slot;
    return undefined;
  }

  async function ensureReady(rows: OutboxRow[]): Promise<void> {
    if (nextNonce !== undefined) return;
    address ??= await wallet.getAddress();
    chainId ??= (await rpc("getNetwork", () => provider!.getNetwork())).chainId;
    const pendingCount = await rpc("getTransactionCount(pending)", () => provider!.getTransactionCount(address!, "pending"));
    let next = pendingCount;
    for (const row of rows) {
      if (row.txHash === undefined || row.nonce === undefined || slots.has(row.nonce)) continue;
      const call = tryCallOf(row);
      if (!call) continue; // failed by tryCallOf; its nonce, if ever broadcast, is found again through the node's count
      // Written before its broadcast by an earlier run: look it up before anything is sent again.
      slots.set(row.nonce, {
        key: row.key,
        kind: row.kind as TxKind,
        nonce: row.nonce,
        hashes: [row.txHash],
        to: call.to,
        data: call.data,
        valueWei: call.valueWei,
        gasLimit: undefined,
        fees: undefined,
        sentAtMs: 0,
      });
      next = Math.max(next, row.nonce + 1);
    }
    nextNonce = next;
    log("tx sender ready", { address, nextNonce, restoredInFlight: slots.size });
  }

  async function runTick(): Promise<TxOutcome[]> {
    const rows = ourPendingRows();
    let latestCount: number;
    try {
      await ensureReady(rows);
      latestCount = await rpc("getTransactionCount(latest)", () => provider!.getTransactionCount(address!, "latest"));
    } catch (error) {
      log("chain RPC unavailable; transactions stay queued", { error: errorText(error) });
      return rows.map((row) => pendingOf(row.key, row.kind as TxKind, row.txHash, error));
    }

    const outcomes: TxOutcome[] = [];
    const handled = new Set<string>();
    try {
      await refillReorgedNonces(latestCount);
    } catch (error) {
      log("checking mined transactions against a reorg failed; retrying next tick", { error: errorText(error) });
    }
    for (const slot of [...slots.values()].sort((a, b) => a.nonce - b.nonce)) {
      const key = slot.key;
      try {
        const outcome = await advance(slot, latestCount);
        if (outcome) {
          outcomes.push(outcome);
          handled.add(outcome.key);
        }
      } catch (error) {
        log("checking an in-flight transaction failed; retrying next tick", { key, nonce: slot.nonce, error: errorText(error) });
        if (key !== undefined && slot.kind !== "filler") {
          outcomes.push(pendingOf(key, slot.kind, slot.hashes.at(-1), error));
          handled.add(key);
        }
      }
    }
    for (const row of ourPendingRows()) {
      if (handled.has(row.key) || slotOf(row.key)) continue;
      try {
        outcomes.push(await start(row));
      } catch (error) {
        log("sending a transaction failed; retrying next tick", { key: row.key, error: errorText(error) });
        outcomes.push(pendingOf(row.key, row.kind as TxKind, slotOf(row.key)?.hashes.at(-1), error));
      }
    }
    return outcomes;
  }

  /** One in-flight nonce: mined, taken by someone else, due for a bumped resend, or still waiting. */
  async function advance(slot: Slot, latestCount: number): Promise<TxOutcome | undefined> {
    const receipt = await firstReceipt(slot.hashes);
    if (receipt) {
      land(slot);
      return slot.key === undefined ? undefined : concludeReceipt(slot.key, receipt);
    }
    if (slot.nonce < latestCount) {
      // The nonce was used by a transaction we do not know (the same key used elsewhere, or an earlier version whose
      // hash a crash lost): this row starts over with its dry run.
      slots.delete(slot.nonce);
      if (slot.key === undefined) return undefined;
      log("nonce taken by another transaction; re-evaluating", { key: slot.key, nonce: slot.nonce });
      const row = outbox.get(slot.key);
      return row?.status === "pending" ? start(row) : undefined;
    }
    if (slot.sentAtMs !== 0 && now() - slot.sentAtMs < resendAfterMs) {
      if (await knownToNode(slot.hashes)) return slot.key === undefined ? undefined : pendingOf(slot.key, slot.kind as TxKind, slot.hashes.at(-1));
      // Evicted, or dropped by a reorg: nothing would ever mine this nonce, and every later one waits behind it.
      log("in-flight transaction unknown to the node; re-sending at once", { key: slot.key, nonce: slot.nonce });
      return resend(slot, { sameVersion: true });
    }
    return resend(slot);
  }

  /** Whether the node has any version of ours, mined or pooled. */
  async function knownToNode(hashes: readonly string[]): Promise<boolean> {
    for (const hash of hashes) {
      if (await rpc("getTransaction", () => provider!.getTransaction(hash))) return true;
    }
    return false;
  }

  function land(slot: Slot): void {
    slots.delete(slot.nonce);
    landed.set(slot.nonce, { hashes: [...slot.hashes], fees: slot.fees, key: slot.key });
    for (const nonce of [...landed.keys()].sort((a, b) => a - b).slice(0, Math.max(0, landed.size - LANDED_KEPT))) landed.delete(nonce);
  }

  /**
   * Nonces below our next one that nothing will mine: not in flight here, not yet mined (at or above the node's
   * count), and not pooled. A reorg deeper than the confirmations takes such a nonce from a transaction we saw mined;
   * after a restart the node's pending count is all there is to tell. Unless the node pools that transaction again
   * (it will be mined again), a filler takes the nonce at once, with fees raised over the lost version's so that it
   * also replaces any copy elsewhere; every later transaction of the device key waits behind the gap otherwise.
   */
  async function refillReorgedNonces(latestCount: number): Promise<void> {
    const gaps: number[] = [];
    for (let nonce = latestCount; nonce < (nextNonce ?? latestCount); nonce++) if (!slots.has(nonce)) gaps.push(nonce);
    if (gaps.length === 0) return;
    // A pooled transaction we do not track (sent from the device key elsewhere) holds every nonce below this count.
    const pendingCount = await rpc("getTransactionCount(pending)", () => provider!.getTransactionCount(address!, "pending"));
    for (const nonce of gaps) {
      const lost = landed.get(nonce);
      if (lost ? await knownToNode(lost.hashes) : nonce < pendingCount) continue;
      landed.delete(nonce);
      log("a nonce of ours left the chain with a reorg; a transfer to self takes it over", { key: lost?.key, nonce, txHash: lost?.hashes.at(-1) });
      const filler: Slot = { key: undefined, kind: "filler", nonce, hashes: [], to: address!, data: "0x", valueWei: 0n, gasLimit: FILLER_GAS, fees: lost?.fees, sentAtMs: 0 };
      slots.set(nonce, filler);
      await resend(filler);
    }
  }

  /**
   * `sameVersion`: the node lost the last version (not a timeout): it is broadcast again unchanged, same fees and so
   * the same hash, unless the row has to give way to a filler. Bumping here would raise the fees on every tick that a
   * lagging node behind a load balancer does not know the transaction yet.
   */
  async function resend(slot: Slot, how: { sameVersion?: boolean } = {}): Promise<TxOutcome | undefined> {
    let concluded: TxOutcome | undefined;
    let sameVersion = how.sameVersion === true;
    if (slot.key !== undefined) {
      const row = outbox.get(slot.key);
      const verdict = row?.status === "pending" ? await preflight(row) : undefined;
      if (!row || !verdict || verdict.type === "alreadyDone" || verdict.type === "failed") {
        // Our own version may have been mined a moment ago; that is "mined", not "already done".
        const receipt = await firstReceipt(slot.hashes);
        if (receipt) {
          land(slot);
          return concludeReceipt(slot.key, receipt);
        }
        if (row && verdict && verdict.type !== "ok" && verdict.type !== "wait") concluded = conclude(row, verdict);
        log("in-flight transaction no longer needed; a transfer to self takes over its nonce", { key: slot.key, nonce: slot.nonce });
        Object.assign(slot, { key: undefined, kind: "filler", to: address, data: "0x", valueWei: 0n, gasLimit: FILLER_GAS });
        sameVersion = false;
      }
    }
    if (sameVersion && slot.fees !== undefined && slot.gasLimit !== undefined) {
      const result = await sendSlot(slot, slot.fees);
      if (result !== "accepted") log("re-broadcast not accepted; retrying", { key: slot.key, nonce: slot.nonce, result });
      return slot.key === undefined ? undefined : pendingOf(slot.key, slot.kind as TxKind, slot.hashes.at(-1));
    }

    if (slot.fees === undefined && slot.key !== undefined) {
      // Restored after a restart: if the node still pools our last version, learn its fees and give it time.
      const pooled = await rpc("getTransaction", () => provider!.getTransaction(slot.hashes.at(-1)!));
      if (pooled && pooled.blockNumber === null) {
        slot.fees = feesOfTransaction(pooled);
        slot.gasLimit = pooled.gasLimit;
        slot.sentAtMs = now();
        return pendingOf(slot.key, slot.kind as TxKind, slot.hashes.at(-1));
      }
    }
    const current = await currentFees();
    const fees = slot.fees ? bump(slot.fees, current) : current;
    if (slot.fees && !raises(fees, slot.fees)) {
      log("fee cap reached; waiting for the pooled transaction", { key: slot.key, nonce: slot.nonce, capWei: options.maxFeePerGasCapWei });
      slot.sentAtMs = now();
    } else {
      slot.gasLimit ??= await estimateGas(slot);
      const result = await sendSlot(slot, fees);
      if (result !== "accepted") log("replacement not accepted; retrying", { key: slot.key, nonce: slot.nonce, result });
    }
    if (concluded) return concluded;
    return slot.key === undefined ? undefined : pendingOf(slot.key, slot.kind as TxKind, slot.hashes.at(-1));
  }

  /** A row with nothing in flight: dry run, then a new transaction with the next nonce. */
  async function start(row: OutboxRow): Promise<TxOutcome> {
    const kind = row.kind as TxKind;
    if (!tryCallOf(row)) return { key: row.key, kind, status: "failed", error: outbox.get(row.key)?.failure ?? "malformed payload" };
    const verdict = await preflight(row);
    if (verdict.type === "wait") return pendingOf(row.key, kind, undefined, verdict.reason);
    if (verdict.type !== "ok") return conclude(row, verdict);

    const call = callOf(row.kind, row.payload);
    const gasLimit = await estimateGas(call);
    const fees = await currentFees();
    for (let attempt = 0; attempt < 2; attempt++) {
      const slot: Slot = { key: row.key, kind, nonce: nextNonce!, hashes: [], to: call.to, data: call.data, valueWei: call.valueWei, gasLimit, fees: undefined, sentAtMs: 0 };
      const result = await sendSlot(slot, fees);
      if (result === "nonceTooLow") {
        // Someone else sent from the device key (e.g. the CLI): take the node's count and try once more.
        nextNonce = Math.max(slot.nonce + 1, await rpc("getTransactionCount(pending)", () => provider!.getTransactionCount(address!, "pending")));
        continue;
      }
      if (result === "insufficientFunds") {
        return pendingOf(row.key, kind, undefined, `the device account ${address} cannot pay for gas; fund it`);
      }
      // Accepted, or possibly accepted (the answer was lost), or a pooled unknown holds the nonce: either way the
      // nonce is ours now, and later ticks look for the receipt or bump the fees.
      if (result === "underpriced") slot.sentAtMs = 0;
      nextNonce = slot.nonce + 1;
      slots.set(slot.nonce, slot);
      const error = typeof result === "object" ? result.ambiguous : result === "underpriced" ? "a pooled transaction holds the nonce" : undefined;
      log("transaction sent", { key: row.key, kind, nonce: slot.nonce, txHash: slot.hashes.at(-1), result });
      return pendingOf(row.key, kind, slot.hashes.at(-1), error);
    }
    return pendingOf(row.key, kind, undefined, "the device key's nonce keeps moving; retrying next tick");
  }

  async function sendSlot(slot: Slot, fees: Fees): Promise<BroadcastResult> {
    const signed = await wallet.signTransaction({
      to: slot.to,
      data: slot.data,
      value: slot.valueWei,
      nonce: slot.nonce,
      gasLimit: slot.gasLimit ?? FILLER_GAS,
      chainId,
      ...(fees.type === 2
        ? { type: 2, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas }
        : { type: 0, gasPrice: fees.gasPrice }),
    });
    const hash = Transaction.from(signed).hash;
    if (!hash) throw new Error("signed transaction has no hash");
    // Write-ahead: a crash after the broadcast must still find this hash.
    if (slot.key !== undefined) outbox.markAttempt(slot.key, { txHash: hash, nonce: slot.nonce });
    if (!slot.hashes.includes(hash)) slot.hashes.push(hash);
    slot.fees = fees;
    slot.sentAtMs = now();
    return broadcast(signed);
  }

  async function broadcast(signed: string): Promise<BroadcastResult> {
    try {
      await rpc("eth_sendRawTransaction", () => provider!.broadcastTransaction(signed));
      return "accepted";
    } catch (error) {
      if (isError(error, "NONCE_EXPIRED")) return "nonceTooLow";
      if (isError(error, "REPLACEMENT_UNDERPRICED")) return "underpriced";
      if (isError(error, "INSUFFICIENT_FUNDS")) return "insufficientFunds";
      const text = errorText(error);
      // geth "already known", anvil "transaction already imported": the node has this very transaction.
      if (/already known|already imported|known transaction/i.test(text)) return "accepted";
      return { ambiguous: text };
    }
  }

  async function firstReceipt(hashes: readonly string[]): Promise<TransactionReceipt | undefined> {
    for (const hash of hashes) {
      const receipt = await rpc("getTransactionReceipt", () => provider!.getTransactionReceipt(hash));
      if (receipt) return receipt;
    }
    return undefined;
  }

  async function concludeReceipt(key: string, receipt: TransactionReceipt): Promise<TxOutcome | undefined> {
    const row = outbox.get(key);
    if (!row || row.status !== "pending") return undefined;
    const kind = row.kind as TxKind;
    const mined = { txHash: receipt.hash, blockNumber: receipt.blockNumber };
    if (receipt.status === 1) {
      outbox.markDone(key, { outcome: "mined", ...mined });
      onchainReverts.delete(key);
      log("transaction mined", { key, ...mined });
      return { key, kind, status: "mined", ...mined };
    }
    // Reverted on chain: someone got there first between our dry run and the block. Ask the state now why.
    const verdict = await preflight(row);
    if (verdict.type === "alreadyDone" || verdict.type === "failed") {
      const outcome = conclude(row, verdict, `; our tx ${receipt.hash} reverted in block ${receipt.blockNumber}`);
      return { ...outcome, ...mined };
    }
    const reverts = (onchainReverts.get(key) ?? 0) + 1;
    onchainReverts.set(key, reverts);
    if (reverts >= MAX_ONCHAIN_REVERTS) {
      return conclude(row, { type: "failed", reason: `reverted on chain ${reverts} times though its dry run passes (last ${receipt.hash})` });
    }
    log("transaction reverted on chain though its dry run passes; sending again", { key, ...mined });
    return start(row);
  }

  function conclude(row: OutboxRow, verdict: { type: "alreadyDone" | "failed"; reason: string }, suffix = ""): TxOutcome {
    const kind = row.kind as TxKind;
    onchainReverts.delete(row.key);
    if (verdict.type === "alreadyDone") {
      outbox.markDone(row.key, { outcome: "alreadyDone", reason: verdict.reason });
      log("transaction not needed: already done on chain", { key: row.key, reason: verdict.reason });
      return { key: row.key, kind, status: "alreadyDone" };
    }
    const reason = verdict.reason + suffix;
    outbox.markFailed(row.key, reason);
    log("transaction can never succeed", { key: row.key, reason });
    return { key: row.key, kind, status: "failed", error: reason };
  }

  /** The row's ledger call; a payload that cannot be encoded (a corrupt journal row) fails the row, not the tick. */
  function tryCallOf(row: OutboxRow): Call | undefined {
    try {
      return callOf(row.kind, row.payload);
    } catch (error) {
      const reason = `malformed ${row.kind} payload: ${errorText(error)}`;
      outbox.markFailed(row.key, reason);
      log("outbox row cannot be sent", { key: row.key, reason });
      return undefined;
    }
  }

  /** Dry-runs the row's call on the latest state. Throws for network trouble (the row stays pending). */
  async function preflight(row: OutboxRow): Promise<Verdict> {
    const superseded = supersededReason(row.key);
    if (superseded !== undefined) return { type: "failed", reason: superseded };
    const call = callOf(row.kind, row.payload);
    try {
      // Auction calls depend on the block's timestamp (commit and reveal windows): they are dry-run on the block
      // they would land in. A dev chain that mines only on demand would otherwise keep judging a reveal by the
      // time of the last block, before its window opened.
      const blockTag = isAuctionTxKind(row.kind) ? "pending" : undefined;
      await rpc("eth_call", () =>
        provider!.call({ to: call.to, from: address, data: call.data, value: call.valueWei, ...(blockTag ? { blockTag } : {}) }),
      );
      return { type: "ok" };
    } catch (error) {
      const decoded = decodeRevert(error);
      if (decoded) return classifyRevert(row.kind as TxKind, decoded, describeRevert(error), row.payload);
      if (isCallException(error) && typeof error.data === "string" && error.data.length > 2) {
        return { type: "failed", reason: describeRevert(error) };
      }
      throw error;
    }
  }

  /**
   * A session's row is superseded once the next generation of its id is in the outbox (see txKey): after a reorg
   * the ledger gave the id to another deposit, so this row's call would authorize or settle someone else's session.
   */
  function supersededReason(key: string): string | undefined {
    const parsed = parseTxKey(key);
    if (!parsed) return undefined;
    const laterKey = txKey("authorize", parsed.sessionId, parsed.generation + 1);
    if (!outbox.get(laterKey)) return undefined;
    return `superseded: a reorg gave session id ${parsed.sessionId} to another deposit (${laterKey})`;
  }

  async function estimateGas(call: { to: string; data: string; valueWei: bigint }): Promise<bigint> {
    const estimate = await rpc("eth_estimateGas", () =>
      provider!.estimateGas({ to: call.to, from: address, data: call.data, value: call.valueWei }),
    );
    return estimate + (estimate * GAS_MARGIN_PERCENT) / 100n;
  }

  async function currentFees(): Promise<Fees> {
    const data = await rpc("getFeeData", () => provider!.getFeeData());
    const cap = options.maxFeePerGasCapWei;
    if (data.maxFeePerGas !== null && data.maxPriorityFeePerGas !== null) {
      return capped({ type: 2, maxFeePerGas: data.maxFeePerGas, maxPriorityFeePerGas: data.maxPriorityFeePerGas }, cap);
    }
    if (data.gasPrice !== null) return capped({ type: 0, gasPrice: data.gasPrice }, cap);
    throw new Error("the node reports no fee data");
  }

  function bump(previous: Fees, current: Fees): Fees {
    const up = (value: bigint): bigint => (value * (10_000n + bumpBasisPoints) + 9_999n) / 10_000n;
    const cap = options.maxFeePerGasCapWei;
    if (previous.type === 2) {
      const currentPriority = current.type === 2 ? current.maxPriorityFeePerGas : current.gasPrice;
      const currentMax = current.type === 2 ? current.maxFeePerGas : current.gasPrice;
      const maxPriorityFeePerGas = max(up(previous.maxPriorityFeePerGas), currentPriority);
      const maxFeePerGas = max(up(previous.maxFeePerGas), currentMax, maxPriorityFeePerGas);
      return capped({ type: 2, maxFeePerGas, maxPriorityFeePerGas }, cap);
    }
    const currentPrice = current.type === 0 ? current.gasPrice : current.maxFeePerGas;
    return capped({ type: 0, gasPrice: max(up(previous.gasPrice), currentPrice) }, cap);
  }

  return {
    submit(item) {
      const kind: unknown = (item as { kind: unknown }).kind;
      if (typeof kind !== "string" || (!LEDGER_KINDS.includes(kind) && !AUCTION_KINDS.includes(kind))) {
        throw new Error(`tx sender: kind: expected one of ${[...LEDGER_KINDS, ...AUCTION_KINDS].join(", ")}, got ${JSON.stringify(kind)}`);
      }
      callOf(item.kind, item.payload); // a malformed payload fails here, not at send time
      const existing = outbox.get(item.key);
      if (existing) return existing;
      return outbox.enqueue({ key: item.key, kind: item.kind, payload: item.payload });
    },
    tick() {
      const run = queue.then(runTick, runTick);
      queue = run.catch(() => {});
      return run;
    },
  };
}

// ================================================================ helpers

function classifyRevert(kind: TxKind, decoded: { name: string; args: unknown[] }, text: string, payload: unknown): Verdict {
  if (isAuctionTxKind(kind)) return classifyAuctionRevert(kind, decoded, text, payload);
  if (decoded.name === "AlreadySettled") return kind === "settle" ? { type: "alreadyDone", reason: text } : { type: "failed", reason: text };
  if (decoded.name === "WrongSessionStatus") {
    const status = BigInt(decoded.args[1] as bigint);
    const reason = `${text}: the session is ${STATUS_NAMES[status.toString()] ?? `in status ${status}`}`;
    if (kind === "settle" && status === SessionStatus.Opened) {
      // Our authorize may still be on its way; cancellation or expiry will turn this into a failure.
      return { type: "wait", reason: `${reason}, not authorized yet` };
    }
    if (kind === "authorize" && (status === SessionStatus.Authorized || status === SessionStatus.Settled)) {
      return { type: "alreadyDone", reason };
    }
    return { type: "failed", reason };
  }
  return { type: "failed", reason: text };
}

/**
 * An auction call that reverts because the chain has moved past it is done or hopeless, never retried blindly; one
 * that is early (a reveal before its window, a close before the round is due) waits for a later tick.
 */
function classifyAuctionRevert(kind: AuctionTxKind, decoded: { name: string; args: unknown[] }, text: string, payload: unknown): Verdict {
  const p = (payload ?? {}) as Record<string, unknown>;
  switch (decoded.name) {
    case "AlreadyCommitted":
      return kind === "commitBid" ? { type: "alreadyDone", reason: text } : { type: "failed", reason: text };
    case "RevealWindowNotOpen":
      return kind === "revealBid" ? { type: "wait", reason: text } : { type: "failed", reason: text };
    case "RoundStillOpen": {
      if (kind !== "closeRound") return { type: "failed", reason: text };
      // The round we meant was closed by someone else and the next one is running.
      const meant = Number(p.round);
      return Number(decoded.args[1]) === meant ? { type: "wait", reason: text } : { type: "alreadyDone", reason: text };
    }
    case "WrongPhase":
      // Bidding already ended (our close), or the EV opened its session or someone else abandoned (our abandon).
      return kind === "closeRound" || kind === "abandonAuction" ? { type: "alreadyDone", reason: text } : { type: "failed", reason: text };
    case "DecisionWindowOpen":
      return kind === "abandonAuction" ? { type: "wait", reason: text } : { type: "failed", reason: text };
    case "BondAlreadySettled":
      return kind === "refundBond" ? { type: "alreadyDone", reason: text } : { type: "failed", reason: text };
    case "NothingToWithdraw":
      // An earlier withdraw (for another invitation) already paid this credit out.
      return kind === "withdrawBonds" ? { type: "alreadyDone", reason: text } : { type: "failed", reason: text };
    default:
      return { type: "failed", reason: text };
  }
}

interface Call {
  to: string;
  data: string;
  valueWei: bigint;
}

/** The contract call an outbox row stands for; payloads come back from the journal, so numbers may be strings. */
function callFor(kind: string, payload: unknown, ledgerAddress: string, auctionAddress: string | undefined): Call {
  if (isAuctionTxKind(kind)) {
    if (auctionAddress === undefined) throw new Error(`tx sender: auctionAddress: required for ${kind} rows, missing`);
    return { to: auctionAddress, ...auctionCallOf(kind, payload) };
  }
  return { to: ledgerAddress, valueWei: 0n, data: ledgerCallOf(kind, payload).data };
}

function auctionCallOf(kind: AuctionTxKind, payload: unknown): { data: string; valueWei: bigint } {
  const p = (payload ?? {}) as Record<string, unknown>;
  const invitationId = toBigInt(p.invitationId, "payload.invitationId");
  const cpId = (): string => {
    if (typeof p.cpId !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(p.cpId)) {
      throw new Error(`tx sender: payload.cpId: expected bytes32 hex, got ${String(p.cpId)}`);
    }
    return p.cpId;
  };
  const bytes32 = (value: unknown, path: string): string => {
    if (typeof value !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(value)) throw new Error(`tx sender: ${path}: expected bytes32 hex, got ${String(value)}`);
    return value;
  };
  switch (kind) {
    case "commitBid":
      return {
        data: auctionInterface.encodeFunctionData("commitBid", [invitationId, cpId(), bytes32(p.commitment, "payload.commitment")]),
        valueWei: toBigInt(p.valueWei, "payload.valueWei"),
      };
    case "revealBid":
      return {
        data: auctionInterface.encodeFunctionData("revealBid", [
          invitationId,
          cpId(),
          toBigInt(p.powerW, "payload.powerW"),
          toBigInt(p.pricePerKWh, "payload.pricePerKWh"),
          bytes32(p.salt, "payload.salt"),
        ]),
        valueWei: 0n,
      };
    case "closeRound":
      toBigInt(p.round, "payload.round");
      return { data: auctionInterface.encodeFunctionData("closeRound", [invitationId]), valueWei: 0n };
    case "abandonAuction":
      return { data: auctionInterface.encodeFunctionData("abandon", [invitationId]), valueWei: 0n };
    case "refundBond":
      return { data: auctionInterface.encodeFunctionData("refund", [invitationId, cpId()]), valueWei: 0n };
    case "withdrawBonds":
      return { data: auctionInterface.encodeFunctionData("withdraw", []), valueWei: 0n };
  }
}

/** The ledger call an outbox row stands for; payloads come back from the journal, so numbers may be strings. */
function ledgerCallOf(kind: string, payload: unknown): { data: string; sessionId: bigint } {
  const p = (payload ?? {}) as Record<string, unknown>;
  if (kind === "authorize") {
    const sessionId = toBigInt(p.sessionId, "payload.sessionId");
    return { sessionId, data: ledgerInterface.encodeFunctionData("authorize", [sessionId]) };
  }
  if (kind === "settle") {
    const total = (p.total ?? {}) as Record<string, unknown>;
    const sessionId = toBigInt(total.sessionId, "payload.total.sessionId");
    if (typeof total.cpId !== "string") throw new Error(`tx sender: payload.total.cpId: expected bytes32 hex, got ${String(total.cpId)}`);
    if (typeof p.signature !== "string") throw new Error(`tx sender: payload.signature: expected hex, got ${String(p.signature)}`);
    const data = ledgerInterface.encodeFunctionData("settle", [
      sessionId,
      toBigInt(total.meterStartWh, "payload.total.meterStartWh"),
      toBigInt(total.meterStopWh, "payload.total.meterStopWh"),
      toBigInt(total.startedAt, "payload.total.startedAt"),
      toBigInt(total.stoppedAt, "payload.total.stoppedAt"),
      Number(total.evBehaviour),
      p.signature,
    ]);
    return { sessionId, data };
  }
  throw new Error(`tx sender: kind: expected "authorize" or "settle", got ${JSON.stringify(kind)}`);
}

function toBigInt(value: unknown, path: string): bigint {
  if (typeof value === "bigint") return value;
  if ((typeof value === "number" && Number.isInteger(value)) || (typeof value === "string" && /^-?\d+$/.test(value))) return BigInt(value);
  throw new Error(`tx sender: ${path}: expected an integer, got ${JSON.stringify(String(value))}`);
}

function pendingOf(key: string, kind: TxKind, txHash: string | undefined, error?: unknown): TxOutcome {
  const outcome: TxOutcome = { key, kind, status: "pending" };
  if (txHash !== undefined) outcome.txHash = txHash;
  if (error !== undefined) outcome.error = typeof error === "string" ? error : errorText(error);
  return outcome;
}

function feesOfTransaction(tx: { maxFeePerGas: bigint | null; maxPriorityFeePerGas: bigint | null; gasPrice: bigint }): Fees {
  return tx.maxFeePerGas !== null && tx.maxPriorityFeePerGas !== null
    ? { type: 2, maxFeePerGas: tx.maxFeePerGas, maxPriorityFeePerGas: tx.maxPriorityFeePerGas }
    : { type: 0, gasPrice: tx.gasPrice };
}

function capped(fees: Fees, cap: bigint | undefined): Fees {
  if (cap === undefined) return fees;
  if (fees.type === 0) return { type: 0, gasPrice: min(fees.gasPrice, cap) };
  const maxFeePerGas = min(fees.maxFeePerGas, cap);
  return { type: 2, maxFeePerGas, maxPriorityFeePerGas: min(fees.maxPriorityFeePerGas, maxFeePerGas) };
}

/** Whether `next` outbids `previous` on every price a node compares for a replacement. */
function raises(next: Fees, previous: Fees): boolean {
  if (next.type === 2 && previous.type === 2) {
    return next.maxFeePerGas > previous.maxFeePerGas && next.maxPriorityFeePerGas > previous.maxPriorityFeePerGas;
  }
  if (next.type === 0 && previous.type === 0) return next.gasPrice > previous.gasPrice;
  return true;
}

function max(...values: bigint[]): bigint {
  return values.reduce((a, b) => (b > a ? b : a));
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const nested = (error as { info?: { error?: { message?: unknown } } }).info?.error?.message;
  const shortMessage = (error as { shortMessage?: unknown }).shortMessage;
  const base = typeof shortMessage === "string" ? shortMessage : error.message;
  const parts = [base];
  if (typeof nested === "string" && !base.includes(nested)) parts.push(`(${nested})`);
  if (typeof code === "string" && !base.includes(code)) parts.push(`[${code}]`);
  return parts.join(" ");
}

/** Rejects when `promise` has not settled within `timeoutMs`: a silent node must not stall the agent's tick. */
function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`chain RPC ${what} gave no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

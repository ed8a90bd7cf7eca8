/**
 * Watches the ledger for this pile's sessions and turns them into ChainEvents for the session core (DESIGN §3, Chain).
 *
 * Polling only, so it works the same over http and ws and after any downtime: each poll reads the head, checks that
 * the blocks it already reported are still canonical, then walks forward from its cursor in `getLogs` ranges of at
 * most `maxLogRange` blocks, filtered on the ledger address and on this pile's cpId (topic 2 of all five session
 * events), so catching up on a week of blocks never asks a node for an unbounded range.
 *
 * Reorgs. Block hashes commit to their parents, so if the cursor block still has the hash we stored, nothing below it
 * changed. Each poll therefore re-reads the hash of the cursor block and of every recent block that carried a
 * deposit for us; on a mismatch it walks back through the stored hashes to the newest one that still matches (the
 * fork point), reports every deposit whose block is gone (`depositReorged`), drops the stored hashes above the fork,
 * and rescans from there: a deposit re-included in the new chain is reported again as `depositSeen` with its new
 * block. Only ranges' end blocks and blocks with our logs are remembered, so the fork point found may lie below the
 * real one; rescanning a little more is harmless because events are deduplicated by block hash.
 *
 * IMPORTANT: depth limit. Fork points are searched at most `maxReorgDepth` blocks (default 128, at least
 * `confirmations`) below the first mismatching block, and deposits are re-checked until they are that deep. A reorg
 * deeper than that is beyond finality on every network we target (Ethereum finalizes after ~64 blocks, QBFT at once):
 * it is logged, the rescan starts at the window's bottom, and deposits older than the window are assumed final.
 *
 * Ordering guarantee for the core: a `chainHead` is emitted only once every block up to it was scanned and checked,
 * so any `depositReorged` for a block at or below that head is emitted before the `chainHead` that would count
 * confirmations past it.
 */
import { Interface, ZeroHash, isHexString, type Log, type LogDescription, type Provider } from "ethers";
import { ChargingLedgerAbi } from "../../contracts/artifacts/ChargingLedger.ts";

// ================================================================ events

export interface DepositSeenEvent {
  type: "depositSeen";
  sessionId: bigint;
  ev: string;
  depositWei: bigint;
  pricePerKWh: bigint;
  maxEnergyWh: number;
  blockNumber: number;
  blockHash: string;
  txHash: string;
}

/** The scanned and checked head; confirmations of a deposit = head − depositBlock + 1. */
export interface ChainHeadEvent {
  type: "chainHead";
  blockNumber: number;
  blockHash: string;
}

/** The block that carried this deposit (`blockHash`) is no longer canonical. */
export interface DepositReorgedEvent {
  type: "depositReorged";
  sessionId: bigint;
  blockNumber: number;
  blockHash: string;
}

/** Informational: blocks above `forkBlockNumber` were replaced; emitted before the `depositReorged` events it causes. */
export interface ChainReorgEvent {
  type: "chainReorg";
  forkBlockNumber: number;
  /** The previous cursor: blocks forkBlockNumber+1 … this one were scanned on the old chain. */
  previousBlockNumber: number;
  /** False when the fork lies deeper than `maxReorgDepth` and the rescan starts at the window's bottom. */
  withinWindow: boolean;
}

interface SessionLogFields {
  sessionId: bigint;
  blockNumber: number;
  blockHash: string;
  txHash: string;
}

export interface SessionAuthorizedEvent extends SessionLogFields {
  type: "sessionAuthorized";
}

export interface SessionSettledEvent extends SessionLogFields {
  type: "sessionSettled";
  ev: string;
  energyWh: number;
  costWei: bigint;
  refundWei: bigint;
  evScore: number;
  recordNo: bigint;
}

export interface SessionCancelledEvent extends SessionLogFields {
  type: "sessionCancelled";
  ev: string;
}

export interface SessionExpiredEvent extends SessionLogFields {
  type: "sessionExpired";
  ev: string;
}

export type ChainEvent =
  | DepositSeenEvent
  | ChainHeadEvent
  | DepositReorgedEvent
  | ChainReorgEvent
  | SessionAuthorizedEvent
  | SessionSettledEvent
  | SessionCancelledEvent
  | SessionExpiredEvent;

// ================================================================ cursor store

export interface BlockCursor {
  blockNumber: number;
  blockHash: string;
}

/**
 * Where the watcher stands and the block hashes it has seen; the journal persists it. The watcher remembers the end
 * block of every range it scanned and every block with one of our logs; it only ever reads hashes within
 * `maxReorgDepth` blocks below the cursor, so a store may drop older ones.
 */
export interface CursorStore {
  /** The last block fully scanned, or undefined before the first scan. */
  getCursor(): BlockCursor | undefined;
  setCursor(cursor: BlockCursor): void;
  rememberBlock(blockNumber: number, blockHash: string): void;
  blockHash(blockNumber: number): string | undefined;
  /** Drops every remembered hash above `blockNumber` (they belong to an orphaned chain). */
  forgetBlocksAfter(blockNumber: number): void;
}

/** A CursorStore in memory, for tests and for `trustpile sim` runs that need no persistence. */
export function createMemoryCursorStore(): CursorStore & { rememberedBlocks(): Map<number, string> } {
  let cursor: BlockCursor | undefined;
  const blocks = new Map<number, string>();
  return {
    getCursor: () => (cursor ? { ...cursor } : undefined),
    setCursor: (next) => void (cursor = { ...next }),
    rememberBlock: (blockNumber, blockHash) => void blocks.set(blockNumber, blockHash),
    blockHash: (blockNumber) => blocks.get(blockNumber),
    forgetBlocksAfter: (blockNumber) => {
      for (const n of [...blocks.keys()]) if (n > blockNumber) blocks.delete(n);
    },
    rememberedBlocks: () => new Map(blocks),
  };
}

// ================================================================ watcher

export interface KnownDeposit {
  sessionId: bigint;
  blockNumber: number;
  blockHash: string;
}

export interface DepositWatcherOptions {
  provider: Provider;
  ledgerAddress: string;
  /** bytes32 hex: keccak256(utf8(chargePointId)). */
  cpId: string;
  /** The core counts confirmations itself; here it only widens the reorg window if it is larger. */
  confirmations: number;
  /** First block to scan when the store has no cursor (e.g. the ledger's deployment block). */
  startBlock: number;
  /** Most blocks one `getLogs` call may span; default 2000. */
  maxLogRange?: number;
  /** Time between polls after `start()`; default 2000 ms. */
  pollIntervalMs?: number;
  /** How far below a mismatch a fork point is searched, and how long deposits are re-checked; default 128 blocks. */
  maxReorgDepth?: number;
  /** A single RPC call that takes longer fails the poll; default 30000 ms. */
  rpcTimeoutMs?: number;
  cursor: CursorStore;
  /**
   * Deposits the core still holds from before a restart (from the journal): they are re-checked for reorgs and
   * never reported as seen again in the same block.
   */
  knownDeposits?: readonly KnownDeposit[];
  onEvent: (event: ChainEvent) => void | Promise<void>;
  log?: (msg: string, fields?: object) => void;
}

export interface DepositWatcher {
  /** Polls now and then every `pollIntervalMs`; a failed poll is logged and retried at the next interval. */
  start(): void;
  /** Stops polling and waits for a poll in progress. */
  stop(): Promise<void>;
  /** One poll; rejects when the node fails (nothing is skipped: the next poll resumes from the cursor). */
  pollOnce(): Promise<void>;
}

const ledgerInterface = new Interface(ChargingLedgerAbi);
const SESSION_EVENT_NAMES = ["SessionOpened", "SessionAuthorized", "SessionSettled", "SessionCancelled", "SessionExpired"] as const;
const SESSION_EVENT_TOPICS = SESSION_EVENT_NAMES.map((name) => {
  const fragment = ledgerInterface.getEvent(name);
  if (!fragment) throw new Error(`ChargingLedger ABI has no event ${name}`);
  return fragment.topicHash.toLowerCase();
});
const SESSION_OPENED_TOPIC = SESSION_EVENT_TOPICS[0];

const DEFAULT_MAX_LOG_RANGE = 2000;
const DEFAULT_POLL_INTERVAL_MS = 2000;
const DEFAULT_MAX_REORG_DEPTH = 128;
const DEFAULT_RPC_TIMEOUT_MS = 30_000;
/** Retries within one poll when the chain changes under a range being scanned. */
const UNSTABLE_RANGE_RETRIES = 3;

export function createDepositWatcher(options: DepositWatcherOptions): DepositWatcher {
  const maxLogRange = options.maxLogRange ?? DEFAULT_MAX_LOG_RANGE;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const rpcTimeoutMs = options.rpcTimeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  checkOptions(options, maxLogRange, pollIntervalMs);
  const reorgWindow = Math.max(options.maxReorgDepth ?? DEFAULT_MAX_REORG_DEPTH, options.confirmations);
  const { provider, cursor: store, onEvent } = options;
  const log = options.log ?? (() => {});
  const cpTopic = options.cpId.toLowerCase();
  const ledgerAddress = options.ledgerAddress.toLowerCase();

  /** Deposits reported and not yet final, keyed `sessionId:blockHash`, re-checked on every poll. */
  const tracked = new Map<string, KnownDeposit>();
  /** Events already emitted, keyed by deposit (`d:sessionId:blockHash`) or log (`l:blockHash:logIndex`). */
  const emitted = new Map<string, number>();
  for (const deposit of options.knownDeposits ?? []) {
    tracked.set(depositKey(deposit.sessionId, deposit.blockHash), { ...deposit });
    emitted.set(`d:${depositKey(deposit.sessionId, deposit.blockHash)}`, deposit.blockNumber);
  }

  let lastHead: BlockCursor | undefined;
  let inFlight: Promise<void> | undefined;
  let running = false;
  let timer: NodeJS.Timeout | undefined;

  const rpc = <T>(what: string, call: () => Promise<T>): Promise<T> => withDeadline(call(), rpcTimeoutMs, what);

  async function canonicalHash(blockNumber: number): Promise<string | undefined> {
    if (blockNumber < 0) return ZeroHash;
    const block = await rpc(`getBlock(${blockNumber})`, () => provider.getBlock(blockNumber));
    return block?.hash ?? undefined;
  }

  function cursorNow(): BlockCursor {
    const stored = store.getCursor();
    const beforeStart = { blockNumber: options.startBlock - 1, blockHash: "" };
    return stored && stored.blockNumber >= beforeStart.blockNumber ? stored : beforeStart;
  }

  /** Checks the cursor block and tracked deposit blocks against the node; on a mismatch, rolls back to the fork. */
  async function reconcile(): Promise<void> {
    const hashes = new Map<number, string | undefined>();
    const hashAt = async (n: number): Promise<string | undefined> => {
      if (!hashes.has(n)) hashes.set(n, await canonicalHash(n));
      return hashes.get(n);
    };
    const cursor = cursorNow();
    let lowestMismatch: number | undefined;
    if (cursor.blockHash !== "" && (await hashAt(cursor.blockNumber)) !== cursor.blockHash) lowestMismatch = cursor.blockNumber;
    for (const deposit of tracked.values()) {
      if ((await hashAt(deposit.blockNumber)) !== deposit.blockHash) {
        lowestMismatch = Math.min(lowestMismatch ?? deposit.blockNumber, deposit.blockNumber);
      }
    }
    if (lowestMismatch === undefined) return;

    const floor = Math.max(options.startBlock - 1, lowestMismatch - reorgWindow);
    let fork: BlockCursor | undefined;
    for (let n = lowestMismatch - 1; n > floor && !fork; n--) {
      const stored = store.blockHash(n);
      if (stored !== undefined && (await hashAt(n)) === stored) fork = { blockNumber: n, blockHash: stored };
    }
    const withinWindow = fork !== undefined || floor === options.startBlock - 1;
    if (!fork) {
      const floorHash = await hashAt(floor);
      if (floorHash === undefined) throw new Error(`block ${floor} is missing on the node while looking for a fork point`);
      fork = { blockNumber: floor, blockHash: floorHash };
    }
    const previous = Math.max(cursor.blockNumber, lowestMismatch);
    log(withinWindow ? "chain reorg detected" : "chain reorg deeper than the reorg window; older deposits assumed final", {
      forkBlock: fork.blockNumber,
      previousBlock: previous,
      reorgWindow,
    });
    await onEvent({ type: "chainReorg", forkBlockNumber: fork.blockNumber, previousBlockNumber: previous, withinWindow });
    for (const [key, deposit] of [...tracked].sort((a, b) => a[1].blockNumber - b[1].blockNumber)) {
      if (deposit.blockNumber <= fork.blockNumber || (await hashAt(deposit.blockNumber)) === deposit.blockHash) continue;
      await onEvent({ type: "depositReorged", sessionId: deposit.sessionId, blockNumber: deposit.blockNumber, blockHash: deposit.blockHash });
      tracked.delete(key);
      // Forgotten so that, should the chain flip back to that very block, the deposit is reported again.
      emitted.delete(`d:${key}`);
    }
    store.forgetBlocksAfter(fork.blockNumber);
    if (fork.blockNumber >= 0) store.rememberBlock(fork.blockNumber, fork.blockHash);
    store.setCursor(fork);
  }

  async function fetchLogs(fromBlock: number, toBlock: number): Promise<Log[]> {
    const filter = { address: options.ledgerAddress, topics: [SESSION_EVENT_TOPICS, null, cpTopic], fromBlock, toBlock };
    try {
      return await rpc(`getLogs(${fromBlock}..${toBlock})`, () => provider.getLogs(filter));
    } catch (error) {
      // Nodes cap ranges or result counts below what we asked ("query returned more than 10000 results", "block
      // range too large"); split the range rather than fail the whole catch-up.
      if (toBlock > fromBlock && looksLikeRangeLimit(error)) {
        const middle = fromBlock + Math.floor((toBlock - fromBlock) / 2);
        log("getLogs range refused; splitting", { fromBlock, toBlock, error: errorText(error) });
        return [...(await fetchLogs(fromBlock, middle)), ...(await fetchLogs(middle + 1, toBlock))];
      }
      throw error;
    }
  }

  async function emitLog(entry: Log, parsed: LogDescription): Promise<void> {
    const base = {
      sessionId: parsed.args.getValue("sessionId") as bigint,
      blockNumber: entry.blockNumber,
      blockHash: entry.blockHash,
      txHash: entry.transactionHash,
    };
    store.rememberBlock(entry.blockNumber, entry.blockHash);
    if (parsed.name === "SessionOpened") {
      const key = depositKey(base.sessionId, entry.blockHash);
      if (emitted.has(`d:${key}`)) return;
      await onEvent({
        type: "depositSeen",
        ...base,
        ev: parsed.args.getValue("ev") as string,
        depositWei: parsed.args.getValue("deposit") as bigint,
        pricePerKWh: parsed.args.getValue("pricePerKWh") as bigint,
        maxEnergyWh: Number(parsed.args.getValue("maxEnergyWh") as bigint),
      });
      emitted.set(`d:${key}`, entry.blockNumber);
      tracked.set(key, { sessionId: base.sessionId, blockNumber: entry.blockNumber, blockHash: entry.blockHash });
      return;
    }
    const key = `l:${entry.blockHash}:${entry.index}`;
    if (emitted.has(key)) return;
    const args = parsed.args;
    switch (parsed.name) {
      case "SessionAuthorized":
        await onEvent({ type: "sessionAuthorized", ...base });
        break;
      case "SessionSettled":
        await onEvent({
          type: "sessionSettled",
          ...base,
          ev: args.getValue("ev") as string,
          energyWh: Number(args.getValue("energyWh") as bigint),
          costWei: args.getValue("cost") as bigint,
          refundWei: args.getValue("refund") as bigint,
          evScore: Number(args.getValue("evScore") as bigint),
          recordNo: args.getValue("recordNo") as bigint,
        });
        break;
      case "SessionCancelled":
        await onEvent({ type: "sessionCancelled", ...base, ev: args.getValue("ev") as string });
        break;
      case "SessionExpired":
        await onEvent({ type: "sessionExpired", ...base, ev: args.getValue("ev") as string });
        break;
      default:
        return;
    }
    emitted.set(key, entry.blockNumber);
  }

  async function poll(): Promise<void> {
    const head = await rpc("getBlock(latest)", () => provider.getBlock("latest"));
    if (!head?.hash) throw new Error("the node returned no latest block");
    await reconcile();

    let unstable = 0;
    for (;;) {
      const cursor = cursorNow();
      if (cursor.blockNumber >= head.number) break;
      const fromBlock = cursor.blockNumber + 1;
      const toBlock = Math.min(head.number, fromBlock + maxLogRange - 1);
      const toHash = await canonicalHash(toBlock);
      if (toHash === undefined) break; // the chain shrank since we read the head; the next poll reconciles
      const logs = await fetchLogs(fromBlock, toBlock);
      // Logs must come from the chain whose hashes we store: re-read both ends after the query.
      const stable =
        (await canonicalHash(toBlock)) === toHash &&
        (cursor.blockHash === "" || (await canonicalHash(cursor.blockNumber)) === cursor.blockHash);
      if (!stable) {
        if (++unstable > UNSTABLE_RANGE_RETRIES) return;
        await reconcile();
        continue;
      }
      const hashOfBlock = new Map<number, string | undefined>([[toBlock, toHash]]);
      const ours: Array<{ entry: Log; parsed: LogDescription }> = [];
      for (const entry of logs) {
        const checked = await checkLog(entry, fromBlock, toBlock, async (n) => {
          if (!hashOfBlock.has(n)) hashOfBlock.set(n, await canonicalHash(n));
          return hashOfBlock.get(n);
        });
        if (entry.removed) {
          // eth_getLogs never returns removed logs of canonical blocks; one that says so contradicts the chain and
          // may hide a real deposit, so it fails the poll like any broken log. A removed log of an orphaned block
          // is simply not ours any more.
          if ("parsed" in checked) {
            throw new Error(`the node returned a malformed ledger log in block ${entry.blockNumber}: marked removed although its block is canonical`);
          }
          continue;
        }
        if ("parsed" in checked) {
          ours.push({ entry, parsed: checked.parsed });
          continue;
        }
        const where = { reason: checked.reason, blockNumber: entry.blockNumber, logIndex: entry.index, txHash: entry.transactionHash };
        // The node's filter is not trusted: a log of another contract, event or pile is dropped, never reported.
        if (checked.foreign) {
          log("ignored a ledger log the node returned", where);
          continue;
        }
        // A log that claims to be this pile's but is broken may hide a real deposit: skipping it could lose the
        // deposit for good, so the poll fails (nothing reported, the cursor stays) and the next one asks again.
        throw new Error(`the node returned a malformed ledger log in block ${String(entry.blockNumber)}: ${checked.reason}`);
      }
      for (const { entry, parsed } of ours) await emitLog(entry, parsed);
      store.rememberBlock(toBlock, toHash);
      store.setCursor({ blockNumber: toBlock, blockHash: toHash });
    }

    prune(head.number);
    const cursor = cursorNow();
    if (cursor.blockNumber !== head.number) return;
    if (lastHead?.blockNumber === cursor.blockNumber && lastHead.blockHash === cursor.blockHash) return;
    lastHead = { ...cursor };
    await onEvent({ type: "chainHead", blockNumber: cursor.blockNumber, blockHash: cursor.blockHash });
  }

  /**
   * The log decoded, or why it cannot be one of this pile's session events: from another address, for another cpId,
   * of another event, outside the range asked for, in a block that is not canonical, undecodable, or a deposit no
   * ledger can emit (zero deposit or price, which the core would divide by).
   */
  async function checkLog(
    entry: Log,
    fromBlock: number,
    toBlock: number,
    hashAt: (blockNumber: number) => Promise<string | undefined>,
  ): Promise<{ parsed: LogDescription } | { foreign: boolean; reason: string }> {
    const foreign = (reason: string): { foreign: boolean; reason: string } => ({ foreign: true, reason });
    const malformed = (reason: string): { foreign: boolean; reason: string } => ({ foreign: false, reason });
    if (typeof entry.address !== "string" || entry.address.toLowerCase() !== ledgerAddress) {
      return foreign(`emitted by ${String(entry.address)}, not the ledger ${options.ledgerAddress}`);
    }
    const topics = Array.isArray(entry.topics) ? entry.topics : [];
    const topic0 = String(topics[0]).toLowerCase();
    if (!SESSION_EVENT_TOPICS.includes(topic0)) return foreign(`topic0 ${String(topics[0])} is not a ledger session event`);
    if (String(topics[2]).toLowerCase() !== cpTopic) return foreign(`cpId topic ${String(topics[2])} is another charge point's`);
    if (!topics.every((topic) => isHexString(topic, 32))) return malformed("a topic is not 32 bytes of hex");
    if (!Number.isSafeInteger(entry.blockNumber) || entry.blockNumber < fromBlock || entry.blockNumber > toBlock) {
      return malformed(`block number ${String(entry.blockNumber)} is outside the range ${fromBlock}..${toBlock} asked for`);
    }
    const canonical = await hashAt(entry.blockNumber);
    if (typeof entry.blockHash !== "string" || canonical === undefined || entry.blockHash.toLowerCase() !== canonical.toLowerCase()) {
      return malformed(`block hash ${String(entry.blockHash)} is not the canonical hash of block ${entry.blockNumber}`);
    }
    if (!isHexString(entry.transactionHash, 32)) return malformed(`transaction hash ${String(entry.transactionHash)} is not 32 bytes of hex`);
    let parsed: LogDescription | null;
    try {
      parsed = ledgerInterface.parseLog({ topics: [...topics], data: entry.data });
    } catch (error) {
      return malformed(`undecodable ${topic0 === SESSION_OPENED_TOPIC ? "SessionOpened" : "session event"}: ${errorText(error).split(" (")[0] ?? ""}`);
    }
    if (!parsed) return foreign(`topic0 ${topic0} is not a ledger event`);
    if (parsed.name === "SessionOpened") {
      const depositWei = parsed.args.getValue("deposit") as bigint;
      const pricePerKWh = parsed.args.getValue("pricePerKWh") as bigint;
      if (depositWei <= 0n || pricePerKWh <= 0n) {
        return malformed(`SessionOpened with deposit ${depositWei} and price ${pricePerKWh}; both must be > 0`);
      }
    }
    return { parsed };
  }

  /** Deposits buried deeper than the window are final; their bookkeeping goes. */
  function prune(headNumber: number): void {
    for (const [key, deposit] of tracked) if (headNumber - deposit.blockNumber + 1 > reorgWindow) tracked.delete(key);
    for (const [key, blockNumber] of emitted) if (headNumber - blockNumber + 1 > 2 * reorgWindow) emitted.delete(key);
  }

  function pollOnce(): Promise<void> {
    if (!inFlight) inFlight = poll().finally(() => (inFlight = undefined));
    return inFlight;
  }

  function schedule(delayMs: number): void {
    timer = setTimeout(() => {
      timer = undefined;
      pollOnce()
        .catch((error: unknown) => log("chain poll failed; retrying at the next interval", { error: errorText(error) }))
        .finally(() => {
          if (running) schedule(pollIntervalMs);
        });
    }, delayMs);
  }

  return {
    start() {
      if (running) return;
      running = true;
      schedule(0);
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await inFlight?.catch(() => {});
    },
    pollOnce,
  };
}

function depositKey(sessionId: bigint, blockHash: string): string {
  return `${sessionId}:${blockHash.toLowerCase()}`;
}

function checkOptions(options: DepositWatcherOptions, maxLogRange: number, pollIntervalMs: number): void {
  const problems: string[] = [];
  if (!isHexString(options.cpId, 32)) problems.push(`cpId: expected 0x-prefixed bytes32 hex, got ${JSON.stringify(options.cpId)}`);
  if (!isHexString(options.ledgerAddress, 20)) problems.push(`ledgerAddress: expected a 20-byte address, got ${JSON.stringify(options.ledgerAddress)}`);
  if (!Number.isInteger(options.confirmations) || options.confirmations < 1) {
    problems.push(`confirmations: expected an integer >= 1, got ${options.confirmations}`);
  }
  if (!Number.isInteger(options.startBlock) || options.startBlock < 0) {
    problems.push(`startBlock: expected an integer block number >= 0, got ${options.startBlock}`);
  }
  if (!Number.isInteger(maxLogRange) || maxLogRange < 1) problems.push(`maxLogRange: expected an integer >= 1 block, got ${maxLogRange}`);
  if (!(pollIntervalMs > 0)) problems.push(`pollIntervalMs: expected ms > 0, got ${pollIntervalMs}`);
  if (options.maxReorgDepth !== undefined && (!Number.isInteger(options.maxReorgDepth) || options.maxReorgDepth < 1)) {
    problems.push(`maxReorgDepth: expected an integer >= 1 block, got ${options.maxReorgDepth}`);
  }
  if (problems.length > 0) throw new Error(`deposit watcher: ${problems.join("; ")}`);
}

function looksLikeRangeLimit(error: unknown): boolean {
  return /block range|range (is )?too (large|wide|big)|too many (blocks|results|logs)|more than \d+ (results|logs|blocks)|response size|query timeout/i.test(
    errorText(error),
  );
}

function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const nested = (error as { info?: { error?: { message?: unknown } } }).info?.error?.message;
  return typeof nested === "string" ? `${error.message} (${nested})` : error.message;
}

/** Rejects when `promise` has not settled within `timeoutMs`, so a silent node cannot stall the poll loop. */
function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`chain RPC ${what} gave no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

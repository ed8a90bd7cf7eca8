/**
 * Chain event fuzzing (issue 11 item 3).
 *
 * Core level: the pure session core (`step`, agent/core/step.ts) is fed thousands of random event sequences —
 * deposits with random ids, amounts and blocks, repeated and reorged deposits, authorize receipts for the wrong
 * session, chain heads out of order, sessions closed on chain, meter samples, presence changes, restarts. An
 * independent model of what was fed checks, after every step, that a closed relay always has a live deposit
 * (seen, not reorged or closed on chain since), buried under `confirmations` blocks, authorized on chain, a fresh
 * meter, an EV present, energy below the budget, and no shutdown since the last start.
 *
 * Watcher level: the deposit watcher polls a lying JSON-RPC endpoint (a loopback HTTP proxy in front of the worker's
 * anvil) that corrupts `eth_getLogs` and `eth_getBlockByNumber` answers; no corrupted log may become a `depositSeen`,
 * and each is rejected with a logged reason.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { getAddress, id, toQuantity, type HDNodeWallet, type JsonRpcProvider } from "ethers";
import { describe, expect, it } from "vitest";
import { createDepositWatcher, createMemoryCursorStore, type ChainEvent, type DepositWatcher } from "../../agent/chain/deposit-watcher.ts";
import { cpIdOf } from "../../agent/chain/session-total.ts";
import { initialState, step } from "../../agent/core/step.ts";
import type { CoreConfig, CoreEvent, CoreState, SessionTerms } from "../../agent/core/types.ts";
import { deployLedgerFixture, PRICE_WEI_PER_KWH, testChainUrl, type LedgerFixture } from "../helpers/chain.ts";
import { accountOf, openSessionAt, unbatchedProvider } from "../helpers/ledger-helpers.ts";
import { CategoryCounter, FuzzRandom, fuzzSeed } from "./fuzz-random.ts";

const CORE_SEED = fuzzSeed(0xc4a1_2026);
const CORE_SEQUENCES = 3_000;

const SESSION_IDS = [1n, 2n, 3n, 7n, 2n ** 64n, 2n ** 256n - 1n];
const PRICES = [1n, 1_000n, 250_000_000_000_000n, 2n ** 200n];
const DEPOSITS = [0n, 1n, 1_000_000_000_000_000n, 5_000_000_000_000_000_000n, 2n ** 255n];
const MAX_ENERGIES = [0, 1, 50, 1_000, 20_000, 2 ** 31, Number.MAX_SAFE_INTEGER];

/** What the model knows about one session id, from the events fed so far. */
interface ModelDeposit {
  blocks: Set<number>;
  authorized: boolean;
}

/** An independent account of the facts fed to the core: what a closed relay must be backed by. */
class Model {
  nowMs = 0;
  head = 0;
  shuttingDown = false;
  lastSampleAtMs: number | undefined;
  lastEnergyWh: number | undefined;
  evPresent = false;
  readonly live = new Map<bigint, ModelDeposit>();

  observe(event: CoreEvent): void {
    this.nowMs = Math.max(this.nowMs, event.atMs);
    switch (event.type) {
      case "startup":
        this.shuttingDown = false;
        this.lastSampleAtMs = undefined;
        this.evPresent = false;
        return;
      case "shutdown":
        this.shuttingDown = true;
        return;
      case "meterSample":
        this.lastSampleAtMs = event.atMs;
        this.lastEnergyWh = event.energyWh;
        return;
      case "evPresence":
        this.evPresent = event.present;
        return;
      case "chainHead":
        this.head = Math.max(this.head, event.blockNumber);
        return;
      case "depositSeen": {
        const known = this.live.get(event.sessionId) ?? { blocks: new Set<number>(), authorized: false };
        known.blocks.add(event.depositBlock);
        this.live.set(event.sessionId, known);
        return;
      }
      case "depositReorged":
        this.live.delete(event.sessionId);
        return;
      case "sessionClosedOnChain":
        this.live.delete(event.sessionId);
        return;
      case "authorizeMined": {
        const known = this.live.get(event.sessionId);
        if (known) known.authorized = true;
        return;
      }
      default:
        return;
    }
  }

  /** Why the relay may not be closed in `state`, or undefined if every backing fact holds. */
  violation(config: CoreConfig, state: CoreState): string | undefined {
    const session = state.session;
    if (!session) return "no session";
    const known = this.live.get(session.sessionId);
    if (!known) return `session ${session.sessionId} has no live deposit (never seen, reorged or closed on chain)`;
    if (!known.blocks.has(session.depositBlock)) return `session ${session.sessionId}: deposit block ${session.depositBlock} was never reported`;
    // confirmations: 0 trusts a deposit as soon as it is seen (a chain with instant finality).
    if (config.confirmations > 0 && this.head - session.depositBlock + 1 < config.confirmations) {
      return `session ${session.sessionId}: deposit at block ${session.depositBlock} has ${this.head - session.depositBlock + 1} of ${config.confirmations} confirmations`;
    }
    if (!known.authorized) return `session ${session.sessionId}: no authorize mined`;
    if (this.shuttingDown) return "shutting down";
    if (this.lastSampleAtMs === undefined || this.nowMs - this.lastSampleAtMs > config.staleAfterMs) return "meter stale";
    if (config.hasEvPresentInput && !this.evPresent) return "no EV present";
    const coveredWh = Number((session.depositWei * 1000n) / session.priceWeiPerKWh);
    const budgetWh = Math.min(session.maxEnergyWh, coveredWh) - config.stopMarginWh;
    if (session.meterStartWh === undefined || this.lastEnergyWh === undefined) return "no start reading";
    if (this.lastEnergyWh - session.meterStartWh >= budgetWh) {
      return `budget used: ${this.lastEnergyWh - session.meterStartWh} Wh of ${budgetWh} Wh`;
    }
    return undefined;
  }
}

/** A random but plausible-enough sequence: sessions must often get far enough to energize for the test to bite. */
function randomSequence(random: FuzzRandom, counter: CategoryCounter): CoreEvent[] {
  const events: CoreEvent[] = [];
  let atMs = random.int(0, 1e6);
  let head = random.int(0, 50);
  let energyWh = random.int(0, 1e6);
  const length = random.int(20, 120);
  events.push({ type: "startup", atMs });
  for (let index = 0; index < length; index++) {
    atMs += random.pick([0, 1, 100, 500, 1_000, 2_500, 10_000]);
    const sessionId = random.pick(SESSION_IDS);
    const kind = random.pick([
      "depositSeen", "depositSeen", "chainHead", "chainHead", "chainHead", "meterSample", "meterSample", "meterSample",
      "authorizeMined", "authorizeMined", "evPresence", "depositReorged", "sessionClosedOnChain", "authorizeFailed",
      "settleMined", "remoteStop", "meterFault", "relayFeedback", "tick", "startup", "shutdown", "availability",
      "clearFault", "time backwards",
    ] as const);
    counter.add(kind);
    switch (kind) {
      case "depositSeen": {
        const terms: SessionTerms = {
          sessionId,
          ev: `0x${random.int(0, 2 ** 30).toString(16).padStart(40, "0")}`,
          depositWei: random.pick(DEPOSITS),
          priceWeiPerKWh: random.pick(PRICES),
          maxEnergyWh: random.pick(MAX_ENERGIES),
          depositBlock: Math.max(0, head + random.int(-5, 3)),
          depositBlockHash: `0x${random.int(0, 2 ** 30).toString(16).padStart(64, "0")}`,
          depositTxHash: `0x${random.int(0, 2 ** 30).toString(16).padStart(64, "0")}`,
        };
        events.push({ type: "depositSeen", atMs, ...terms });
        break;
      }
      case "chainHead":
        head += random.pick([0, 1, 1, 2, 5]);
        events.push({ type: "chainHead", atMs, blockNumber: random.chance(0.1) ? Math.max(0, head - random.int(1, 10)) : head });
        break;
      case "meterSample":
        energyWh += random.pick([0, 0, 1, 5, 30, 500, 100_000]);
        events.push({ type: "meterSample", atMs, energyWh, powerW: random.pick([0, 50, 3_000, 11_000]) });
        break;
      case "authorizeMined":
        events.push({ type: "authorizeMined", atMs, sessionId, txHash: "0xaa" });
        break;
      case "evPresence":
        events.push({ type: "evPresence", atMs, present: random.chance(0.8) });
        break;
      case "depositReorged":
        events.push({ type: "depositReorged", atMs, sessionId });
        break;
      case "sessionClosedOnChain":
        events.push({ type: "sessionClosedOnChain", atMs, sessionId, how: random.pick(["cancelled", "expired", "settled"] as const) });
        break;
      case "authorizeFailed":
        events.push({ type: "authorizeFailed", atMs, sessionId, reason: "reverted" });
        break;
      case "settleMined":
        events.push({ type: "settleMined", atMs, sessionId, txHash: "0xbb" });
        break;
      case "remoteStop":
        events.push({ type: "remoteStop", atMs, ...(random.chance(0.5) && { sessionId }) });
        break;
      case "meterFault":
        events.push({ type: "meterFault", atMs, kind: random.pick(["timeout", "crc", "implausible"]), message: "fuzz" });
        break;
      case "relayFeedback":
        events.push({ type: "relayFeedback", atMs, closed: random.chance(0.5) });
        break;
      case "tick":
        events.push({ type: "tick", atMs });
        break;
      case "startup":
        events.push({ type: "startup", atMs });
        break;
      case "shutdown":
        events.push({ type: "shutdown", atMs });
        break;
      case "availability":
        events.push({ type: "availability", atMs, operative: random.chance(0.7) });
        break;
      case "clearFault":
        events.push({ type: "clearFault", atMs });
        break;
      case "time backwards":
        events.push({ type: "tick", atMs: Math.max(0, atMs - random.int(1, 100_000)) });
        break;
    }
  }
  return events;
}

describe(`chain events at the core: ${CORE_SEQUENCES} random event sequences (seed ${CORE_SEED}, FUZZ_SEED=${CORE_SEED} to replay)`, () => {
  it("never commands the relay closed without a live, confirmed, authorized deposit, a fresh meter and budget left", () => {
    const random = new FuzzRandom(CORE_SEED);
    const kinds = new CategoryCounter();
    const outcomes = new CategoryCounter();
    for (let sequenceNo = 0; sequenceNo < CORE_SEQUENCES; sequenceNo++) {
      const config: CoreConfig = {
        chargePointId: "cp-fuzz",
        confirmations: random.int(0, 3),
        stopMarginWh: random.pick([0, 20, 1_000]),
        staleAfterMs: random.pick([1_500, 3_000]),
        feedbackTimeoutMs: 500,
        hasEvPresentInput: random.chance(0.5),
        hasFeedbackInput: random.chance(0.5),
        stopReadingDelayMs: 1_000,
        stopReadingTimeoutMs: 10_000,
      };
      const events = randomSequence(random, kinds);
      const model = new Model();
      let state = initialState();
      let closedOnce = false;
      for (const [eventNo, event] of events.entries()) {
        const where = `seed ${CORE_SEED} sequence ${sequenceNo} event ${eventNo} (${event.type})`;
        const wasClosed = state.relayCommandedClosed;
        let result;
        try {
          result = step(config, state, event);
        } catch (error) {
          throw new Error(`${where}: step threw ${String(error)}`);
        }
        model.observe(event);
        state = result.state;
        const closes = result.commands.filter((command) => command.type === "setRelay" && command.closed);
        if (closes.length > 0 || state.relayCommandedClosed) {
          const violation = model.violation(config, state);
          expect(violation, `${where}: relay closed although ${violation}`).toBeUndefined();
          closedOnce = true;
        }
        if (wasClosed && !state.relayCommandedClosed) {
          outcomes.add(`opened on ${event.type}`);
          expect(result.commands.some((command) => command.type === "setRelay" && !command.closed), where).toBe(true);
        }
      }
      outcomes.add(closedOnce ? "energized" : "never energized");
    }
    // The sequences must really reach the closed relay, and really tear it down through the chain's own events.
    expect(kinds.counts.size, `seed ${CORE_SEED}: kinds ${kinds.summary()}`).toBe(18);
    expect(outcomes.counts.get("energized") ?? 0, `seed ${CORE_SEED}: ${outcomes.summary()}`).toBeGreaterThan(CORE_SEQUENCES / 40);
    for (const opener of ["opened on depositReorged", "opened on sessionClosedOnChain", "opened on meterSample", "opened on shutdown"]) {
      expect(outcomes.counts.get(opener) ?? 0, `seed ${CORE_SEED}: ${opener}; ${outcomes.summary()}`).toBeGreaterThan(0);
    }
  }, 120_000);
});

// ================================================================ the watcher behind a lying node

const WATCHER_SEED = fuzzSeed(0x3a7c_4e11);
const WATCHER_CASES = 150;
const CP = "CP-FUZZ-1";
const OTHER_CP = "CP-FUZZ-2";

interface JsonRpcRequest {
  id: number | string;
  method: string;
  params: unknown[];
}
interface RawLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string;
  blockHash: string;
  transactionHash: string;
  transactionIndex: string;
  logIndex: string;
  removed: boolean;
}
type Lie = (method: string, result: unknown) => unknown;

/** A JSON-RPC endpoint on loopback that forwards to the worker's anvil and lets `lie` rewrite each result. */
async function startLyingNode(upstream: string): Promise<{ url: string; setLie(lie: Lie | undefined): void; close(): Promise<void> }> {
  let lie: Lie | undefined;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const upstreamResponse = await fetch(upstream, { method: "POST", headers: { "content-type": "application/json" }, body });
        const answer = (await upstreamResponse.json()) as { result?: unknown } | Array<{ result?: unknown }>;
        const requests = JSON.parse(body) as JsonRpcRequest | JsonRpcRequest[];
        const pairs = Array.isArray(requests) ? requests.map((r, i) => [r, (answer as Array<{ result?: unknown }>)[i]] as const) : [[requests, answer as { result?: unknown }] as const];
        for (const [rpcRequest, rpcAnswer] of pairs) {
          if (lie && rpcAnswer && "result" in rpcAnswer) rpcAnswer.result = lie(rpcRequest.method, rpcAnswer.result);
        }
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
      })().catch((error: unknown) => response.writeHead(502).end(String(error)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    setLie: (next) => void (lie = next),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const randomHex = (random: FuzzRandom, bytes: number): string => `0x${random.bytes(bytes).toString("hex")}`;

/** One corruption of the node's answers; `expectRejection` names the word a logged reason must carry. */
interface Corruption {
  category: string;
  lie: Lie;
  /** The injected log must be refused with a logged reason containing this (or the poll must fail). */
  reason?: RegExp;
}

function corruption(random: FuzzRandom, otherCpTopic: string, otherAddress: string): Corruption {
  // Applied to a copy of one genuine log, appended next to the genuine ones (or replacing them). A foreign log
  // (another contract, event or pile) is only ever appended: replacing the genuine one would be a node withholding
  // a deposit, which no log check can notice (the EV then cancels after authTimeout).
  const onOneLog = (category: string, change: (log: RawLog) => void, reason?: RegExp, replace = random.chance(0.3)): Corruption => ({
    category,
    reason,
    lie: (method, result) => {
      if (method !== "eth_getLogs" || !Array.isArray(result) || result.length === 0) return result;
      const logs = result as RawLog[];
      const victim = random.pick(logs);
      const copy = structuredClone(victim);
      change(copy);
      return replace ? logs.map((log) => (log === victim ? copy : log)) : [...logs, copy];
    },
  });
  const kind = random.pick([
    "random data", "truncated data", "wrong topic0", "another contract", "huge session id", "another pile",
    "block hash inconsistent", "block number inconsistent", "removed", "null field", "zero price", "duplicate",
    "lying block header",
  ] as const);
  switch (kind) {
    case "random data":
      // Never exactly three words: data of the right shape with other values is a forgery no log check can see.
      return onOneLog(kind, (log) => void (log.data = randomHex(random, random.pick([0, 1, 31, 33, 64, 65]))), /undecodable/);
    case "truncated data":
      return onOneLog(kind, (log) => void (log.data = log.data.slice(0, 2 + 2 * random.int(0, Math.max(0, (log.data.length - 2) / 2 - 1)))), /undecodable/);
    case "wrong topic0":
      return onOneLog(kind, (log) => void (log.topics[0] = random.chance(0.5) ? randomHex(random, 32) : id("AuctionSessionOpened(uint256,uint256)")), /topic0/, false);
    case "another contract":
      return onOneLog(kind, (log) => void (log.address = otherAddress), /not the ledger/, false);
    case "huge session id":
      return onOneLog(kind, (log) => void (log.topics[1] = random.chance(0.5) ? randomHex(random, 33) : `0x${"f".repeat(random.int(65, 200))}`), /32 bytes|invalid value for value.topics/);
    case "another pile":
      return onOneLog(kind, (log) => void (log.topics[2] = otherCpTopic), /another charge point/, false);
    case "block hash inconsistent":
      return onOneLog(kind, (log) => void (log.blockHash = randomHex(random, 32)), /block hash/);
    case "block number inconsistent":
      return onOneLog(kind, (log) => void (log.blockNumber = toQuantity(Number(log.blockNumber) + random.pick([-1, 1, 1_000, 1_000_000]))), /block (number|hash)/);
    case "removed":
      return onOneLog(kind, (log) => void (log.removed = true), /marked removed/);
    case "null field":
      return onOneLog(kind, (log) => {
        const field = random.pick(["blockHash", "data", "topics", "transactionHash", "blockNumber", "address", "logIndex"] as const);
        (log as unknown as Record<string, unknown>)[field] = null;
      }, /./);
    case "zero price":
      return onOneLog(kind, (log) => {
        if (log.topics[0] !== SESSION_OPENED) return;
        log.data = `0x${"0".repeat(62)}01${"0".repeat(64)}${log.data.slice(2 + 128)}`; // deposit 1 wei, price 0
      }, /must be > 0/);
    case "duplicate":
      return onOneLog(kind, () => undefined, undefined, false);
    case "lying block header":
      return {
        category: kind,
        lie: (method, result) => {
          if (method !== "eth_getBlockByNumber" || result === null || typeof result !== "object" || !random.chance(0.5)) return result;
          const block = { ...(result as Record<string, unknown>) };
          const field = random.pick(["hash", "number", "parentHash"] as const);
          block[field] = field === "number" ? toQuantity(random.int(0, 1e6)) : randomHex(random, 32);
          return block;
        },
      };
  }
}

/** A ledger with an attested EV and owner, and CP (plus OTHER_CP when asked) registered to that owner. */
async function ledgerWithPiles(options: { otherPile: boolean }): Promise<{ fixture: LedgerFixture; ev: HDNodeWallet }> {
  const fixture = await deployLedgerFixture();
  const ev = accountOf(fixture, 1);
  const owner = accountOf(fixture, 2);
  await fixture.attestEv(ev);
  await fixture.attestOwner(owner);
  await fixture.registerCp(owner, { chargePointId: CP, signer: accountOf(fixture, 3).address });
  if (options.otherPile) await fixture.registerCp(owner, { chargePointId: OTHER_CP, signer: accountOf(fixture, 4).address });
  return { fixture, ev };
}

interface RecordingWatcher {
  watcher: DepositWatcher;
  events: ChainEvent[];
  logged: Array<{ message: string; reason?: string }>;
}

/** CP's deposit watcher on the fixture's ledger from `startBlock`, recording what it reports and what it logs. */
function recordingWatcher(fixture: LedgerFixture, provider: JsonRpcProvider, startBlock: number, rpcTimeoutMs?: number): RecordingWatcher {
  const events: ChainEvent[] = [];
  const logged: Array<{ message: string; reason?: string }> = [];
  const watcher = createDepositWatcher({
    provider,
    ledgerAddress: fixture.deployment.ChargingLedger,
    cpId: cpIdOf(CP),
    confirmations: 2,
    startBlock,
    ...(rpcTimeoutMs === undefined ? {} : { rpcTimeoutMs }),
    cursor: createMemoryCursorStore(),
    onEvent: (event) => void events.push(event),
    log: (message, fields) => void logged.push({ message, ...(fields as { reason?: string }) }),
  });
  return { watcher, events, logged };
}

const SESSION_OPENED = id("SessionOpened(uint256,bytes32,address,uint256,uint256,uint32)");

describe(`chain events at the deposit watcher: ${WATCHER_CASES} lying-node polls (seed ${WATCHER_SEED}, FUZZ_SEED=${WATCHER_SEED} to replay)`, () => {
  it("never reports a corrupted or foreign log as a deposit, logs why, and reports the genuine deposits once the node is honest", async () => {
    const { fixture, ev } = await ledgerWithPiles({ otherPile: true });
    const startBlock = (await fixture.provider.getBlockNumber()) + 1;
    const genuine = new Map<bigint, { blockNumber: number; blockHash: string; txHash: string }>();
    for (let index = 0; index < 3; index++) {
      const opened = await openSessionAt(fixture.ledger(ev), CP, 1_000 + index, 10n ** 16n);
      genuine.set(opened.sessionId, { blockNumber: opened.receipt.blockNumber, blockHash: opened.receipt.blockHash, txHash: opened.receipt.hash });
      await openSessionAt(fixture.ledger(ev), OTHER_CP, 1_000, 10n ** 16n);
    }
    // A well-formed SessionOpened from another contract: the Registry's address, the ledger's own log.
    const node = await startLyingNode(testChainUrl());
    try {
      const provider = unbatchedProvider(node.url);
      const random = new FuzzRandom(WATCHER_SEED);
      const categories = new CategoryCounter();
      const outcomes = new CategoryCounter();
      for (let caseNo = 0; caseNo < WATCHER_CASES; caseNo++) {
        const bad = corruption(random, cpIdOf(OTHER_CP), fixture.deployment.Registry);
        categories.add(bad.category);
        const where = `seed ${WATCHER_SEED} case ${caseNo} (${bad.category})`;
        const { watcher, events, logged } = recordingWatcher(fixture, provider, startBlock, 10_000);
        node.setLie(bad.lie);
        let pollError: string | undefined;
        await watcher.pollOnce().catch((error: unknown) => void (pollError = String(error)));
        node.setLie(undefined);
        const ignored = logged.filter((entry) => entry.message === "ignored a ledger log the node returned");
        if (bad.reason) {
          const refused = bad.reason.test(pollError ?? "") || ignored.some((entry) => bad.reason?.test(entry.reason ?? ""));
          expect(refused, `${where}: no logged reason matching ${bad.reason} (logged ${JSON.stringify(logged)}, poll error ${pollError})`).toBe(true);
        }
        outcomes.add(pollError !== undefined ? "poll failed" : ignored.length > 0 ? "log ignored" : "nothing to refuse");
        // The node is honest again: a few polls recover whatever the lie hid (a lying header looks like a reorg).
        for (let attempt = 0; attempt < 3; attempt++) await watcher.pollOnce();

        const live = new Map<string, Extract<ChainEvent, { type: "depositSeen" }>>();
        for (const event of events) {
          if (event.type === "depositSeen") {
            const truth = genuine.get(event.sessionId);
            expect(truth, `${where}: depositSeen for session ${event.sessionId}, which is not this pile's`).toBeDefined();
            expect({ blockNumber: event.blockNumber, blockHash: event.blockHash, txHash: event.txHash }, `${where}: session ${event.sessionId}`).toEqual(truth);
            expect(event.pricePerKWh, where).toBe(PRICE_WEI_PER_KWH);
            expect(event.depositWei, where).toBe(10n ** 16n);
            expect(event.ev, where).toBe(ev.address);
            expect(live.has(event.sessionId.toString()), `${where}: session ${event.sessionId} seen twice without a reorg`).toBe(false);
            live.set(event.sessionId.toString(), event);
          }
          if (event.type === "depositReorged") live.delete(event.sessionId.toString());
        }
        expect([...live.keys()].sort(), `${where}: deposits known after the node turned honest`).toEqual([...genuine.keys()].map(String).sort());
        await watcher.stop();
      }
      expect(categories.counts.size, `seed ${WATCHER_SEED}: ${categories.summary()}`).toBe(13);
      expect(outcomes.counts.get("log ignored") ?? 0, `seed ${WATCHER_SEED}: ${outcomes.summary()}`).toBeGreaterThan(WATCHER_CASES / 8);
      expect(outcomes.counts.get("poll failed") ?? 0, `seed ${WATCHER_SEED}: ${outcomes.summary()}`).toBeGreaterThan(WATCHER_CASES / 4);
    } finally {
      await node.close();
    }
  }, 240_000);

  it("ignores, with a logged reason, a well-formed SessionOpened for this pile from another contract", async () => {
    const { fixture, ev } = await ledgerWithPiles({ otherPile: false });
    const startBlock = (await fixture.provider.getBlockNumber()) + 1;
    const opened = await openSessionAt(fixture.ledger(ev), CP, 1_000, 10n ** 16n);
    const node = await startLyingNode(testChainUrl());
    try {
      // The node answers the ledger's log as if an impostor contract had emitted it, and nothing else.
      node.setLie((method, result) =>
        method === "eth_getLogs" && Array.isArray(result) ? (result as RawLog[]).map((log) => ({ ...log, address: fixture.deployment.Registry })) : result,
      );
      const provider = unbatchedProvider(node.url);
      const { watcher, events, logged } = recordingWatcher(fixture, provider, startBlock);
      await watcher.pollOnce();
      expect(events.filter((event) => event.type === "depositSeen")).toEqual([]);
      expect(logged).toContainEqual(
        expect.objectContaining({
          message: "ignored a ledger log the node returned",
          reason: `emitted by ${getAddress(fixture.deployment.Registry)}, not the ledger ${fixture.deployment.ChargingLedger}`,
          blockNumber: opened.receipt.blockNumber,
        }),
      );
    } finally {
      await node.close();
    }
  });

  // Found by seed 981224977 ("another pile", "zero price"): the watcher trusted the node's filter and decoded
  // whatever it returned; another pile's SessionOpened became this pile's depositSeen, and a price of 0 would have
  // reached the core, whose budget divides by it.
  it("refuses another pile's well-formed SessionOpened, and fails the poll on a zero price, reporting neither", async () => {
    const { fixture, ev } = await ledgerWithPiles({ otherPile: true });
    const startBlock = (await fixture.provider.getBlockNumber()) + 1;
    await openSessionAt(fixture.ledger(ev), OTHER_CP, 1_000, 10n ** 16n);
    const ours = await openSessionAt(fixture.ledger(ev), CP, 1_000, 10n ** 16n);
    const node = await startLyingNode(testChainUrl());
    try {
      const provider = unbatchedProvider(node.url);
      const { watcher, events, logged } = recordingWatcher(fixture, provider, startBlock);
      // First lie: our log is answered as another pile's (its own log, relabelled to look like ours the other way).
      node.setLie((method, result) =>
        method === "eth_getLogs" && Array.isArray(result) ? (result as RawLog[]).map((log) => ({ ...log, topics: [log.topics[0] ?? "", log.topics[1] ?? "", cpIdOf(OTHER_CP), log.topics[3] ?? ""] })) : result,
      );
      await watcher.pollOnce();
      expect(events.filter((event) => event.type === "depositSeen")).toEqual([]);
      expect(logged.map((entry) => entry.reason)).toContain(`cpId topic ${cpIdOf(OTHER_CP)} is another charge point's`);

      // Second lie, on a fresh watcher: our log with deposit 1 wei and price 0.
      const { watcher: zeroPrice, events: fresh } = recordingWatcher(fixture, provider, startBlock);
      node.setLie((method, result) =>
        method === "eth_getLogs" && Array.isArray(result)
          ? (result as RawLog[]).map((log) => ({ ...log, data: `0x${"0".repeat(63)}1${"0".repeat(64)}${log.data.slice(2 + 128)}` }))
          : result,
      );
      await expect(zeroPrice.pollOnce()).rejects.toThrow(
        `the node returned a malformed ledger log in block ${ours.receipt.blockNumber}: SessionOpened with deposit 1 and price 0; both must be > 0`,
      );
      expect(fresh).toEqual([]);
      // Honest again: the real deposit is reported, once.
      node.setLie(undefined);
      await zeroPrice.pollOnce();
      expect(fresh.filter((event) => event.type === "depositSeen").map((event) => event.type === "depositSeen" && event.sessionId)).toEqual([ours.sessionId]);
    } finally {
      await node.close();
    }
  });
});

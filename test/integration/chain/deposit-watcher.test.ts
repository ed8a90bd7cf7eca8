import { describe, expect, it } from "vitest";
import type { HDNodeWallet, Provider } from "ethers";
import {
  createDepositWatcher,
  createMemoryCursorStore,
  type ChainEvent,
  type CursorStore,
  type DepositWatcher,
  type DepositWatcherOptions,
} from "../../../agent/chain/deposit-watcher.ts";
import { authorizeSession, mined } from "../../../agent/chain/operations.ts";
import { cpIdOf, signSessionTotal } from "../../../agent/chain/session-total.ts";
import { advanceTime, deployLedgerFixture, PRICE_WEI_PER_KWH, rpc, type LedgerFixture } from "../../helpers/chain.ts";
import { accountOf, domainOf, openSessionAt, settleWithSignature, totalOf } from "../../helpers/ledger-helpers.ts";

const CP = "CP-WATCH-1";
const OTHER_CP = "CP-WATCH-2";
const DEPOSIT_WEI = 10n ** 16n;
const MAX_ENERGY_WH = 20_000;

interface Cast {
  fixture: LedgerFixture;
  ev: HDNodeWallet;
  owner: HDNodeWallet;
  signer: HDNodeWallet;
  /** First block after the setup: the watcher's start block. */
  startBlock: number;
}

async function cast(): Promise<Cast> {
  const fixture = await deployLedgerFixture();
  const ev = accountOf(fixture, 1);
  const owner = accountOf(fixture, 2);
  const signer = accountOf(fixture, 3);
  await fixture.attestEv(ev);
  await fixture.attestOwner(owner);
  await fixture.registerCp(owner, { chargePointId: CP, signer: signer.address });
  await fixture.registerCp(owner, { chargePointId: OTHER_CP, signer: accountOf(fixture, 4).address });
  return { fixture, ev, owner, signer, startBlock: (await fixture.provider.getBlockNumber()) + 1 };
}

interface Watch {
  watcher: DepositWatcher;
  events: ChainEvent[];
  store: ReturnType<typeof createMemoryCursorStore>;
  /** Events since the last call. */
  drain(): ChainEvent[];
}

function watch(c: Cast, overrides: Partial<DepositWatcherOptions> & { store?: CursorStore } = {}): Watch {
  const events: ChainEvent[] = [];
  let drained = 0;
  const store = (overrides.store as Watch["store"] | undefined) ?? createMemoryCursorStore();
  const watcher = createDepositWatcher({
    provider: c.fixture.provider,
    ledgerAddress: c.fixture.deployment.ChargingLedger,
    cpId: cpIdOf(CP),
    confirmations: 2,
    startBlock: c.startBlock,
    cursor: store,
    onEvent: (event) => void events.push(event),
    ...overrides,
  });
  return {
    watcher,
    events,
    store,
    drain: () => {
      const fresh = events.slice(drained);
      drained = events.length;
      return fresh;
    },
  };
}

/** The provider, with every getLogs call's block range recorded. */
function countingProvider(provider: Provider): { provider: Provider; ranges: Array<[number, number]> } {
  const ranges: Array<[number, number]> = [];
  const wrapped = new Proxy(provider, {
    get(target, property) {
      if (property === "getLogs") {
        return (filter: { fromBlock: number; toBlock: number }) => {
          ranges.push([filter.fromBlock, filter.toBlock]);
          return target.getLogs(filter);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { provider: wrapped, ranges };
}

function ofType<T extends ChainEvent["type"]>(events: ChainEvent[], type: T): Array<Extract<ChainEvent, { type: T }>> {
  return events.filter((e): e is Extract<ChainEvent, { type: T }> => e.type === type);
}

/** The ranges cover from..to exactly, in order, without gaps or overlaps. */
function expectTiling(ranges: Array<[number, number]>, from: number, to: number): void {
  expect(ranges[0]?.[0]).toBe(from);
  expect(ranges.at(-1)?.[1]).toBe(to);
  for (let i = 1; i < ranges.length; i++) expect(ranges[i]?.[0]).toBe((ranges[i - 1]?.[1] ?? 0) + 1);
}

async function head(provider: Provider): Promise<{ number: number; hash: string }> {
  const block = await provider.getBlock("latest");
  if (!block?.hash) throw new Error("no latest block");
  return { number: block.number, hash: block.hash };
}

describe("deposit watcher", () => {
  it("reports a deposit for its CP once with the exact fields, ignores other CPs, and reports the head", async () => {
    const c = await cast();
    const w = watch(c);
    const opened = await openSessionAt(c.fixture.ledger(c.ev), CP, MAX_ENERGY_WH, DEPOSIT_WEI);
    await openSessionAt(c.fixture.ledger(c.ev), OTHER_CP, MAX_ENERGY_WH, DEPOSIT_WEI);
    const h = await head(c.fixture.provider);

    await w.watcher.pollOnce();
    expect(w.drain()).toEqual([
      {
        type: "depositSeen",
        sessionId: opened.sessionId,
        ev: c.ev.address,
        depositWei: DEPOSIT_WEI,
        pricePerKWh: PRICE_WEI_PER_KWH,
        maxEnergyWh: MAX_ENERGY_WH,
        blockNumber: opened.receipt.blockNumber,
        blockHash: opened.receipt.blockHash,
        txHash: opened.receipt.hash,
      },
      { type: "chainHead", blockNumber: h.number, blockHash: h.hash },
    ]);

    // Nothing new: no event at all, in particular no second depositSeen.
    await w.watcher.pollOnce();
    expect(w.drain()).toEqual([]);

    await rpc(c.fixture.provider, "anvil_mine", ["0x5"]);
    await w.watcher.pollOnce();
    const fresh = w.drain();
    expect(fresh).toEqual([{ type: "chainHead", blockNumber: h.number + 5, blockHash: (await head(c.fixture.provider)).hash }]);
    const confirmations = (fresh[0] as { blockNumber: number }).blockNumber - opened.receipt.blockNumber + 1;
    // the deposit's block, the other CP's deposit block, and the 5 mined
    expect(confirmations).toBe(7);
    expect(w.store.getCursor()).toEqual({ blockNumber: h.number + 5, blockHash: (await head(c.fixture.provider)).hash });
  });

  it("reports authorize, settle and cancel of its sessions with their values", async () => {
    const c = await cast();
    const w = watch(c);
    const ledger = c.fixture.ledger(c.ev);
    const settled = await openSessionAt(ledger, CP, MAX_ENERGY_WH, DEPOSIT_WEI);
    const authorized = await authorizeSession(c.fixture.ledger(c.signer), settled.sessionId);
    const total = totalOf(settled.sessionId, CP, 12_345n);
    const signature = await signSessionTotal(c.signer, domainOf(c.fixture), total);
    const settleReceipt = await settleWithSignature(ledger, total, signature);
    const cancelled = await openSessionAt(ledger, CP, MAX_ENERGY_WH, DEPOSIT_WEI);
    await advanceTime(c.fixture.provider, 601);
    const cancelReceipt = await mined("cancel", () => ledger.cancel(cancelled.sessionId));

    await w.watcher.pollOnce();
    const costWei = 3_703_500_000_000_000n; // ceil(12345 Wh × 0.0003 ETH/kWh)
    expect(w.events.filter((e) => e.type !== "depositSeen" && e.type !== "chainHead")).toEqual([
      {
        type: "sessionAuthorized",
        sessionId: settled.sessionId,
        blockNumber: authorized.blockNumber,
        blockHash: authorized.blockHash,
        txHash: authorized.hash,
      },
      {
        type: "sessionSettled",
        sessionId: settled.sessionId,
        blockNumber: settleReceipt.blockNumber,
        blockHash: settleReceipt.blockHash,
        txHash: settleReceipt.hash,
        ev: c.ev.address,
        energyWh: 12_345,
        costWei,
        refundWei: DEPOSIT_WEI - costWei,
        evScore: 1,
        recordNo: 1n,
      },
      {
        type: "sessionCancelled",
        sessionId: cancelled.sessionId,
        blockNumber: cancelReceipt.blockNumber,
        blockHash: cancelReceipt.blockHash,
        txHash: cancelReceipt.hash,
        ev: c.ev.address,
      },
    ]);
    expect(ofType(w.events, "depositSeen").map((e) => e.sessionId)).toEqual([settled.sessionId, cancelled.sessionId]);
  });

  // anvil 1.7 mines a block in time that grows with the chain's height, so 5000 blocks take tens of seconds on a
  // busy CI box, and every later block on this worker's chain would stay slower: the test reverts its blocks.
  it("catches up over 5000 blocks in getLogs ranges of at most maxLogRange", { timeout: 180_000 }, async () => {
    const c = await cast();
    const snapshot = await rpc<string>(c.fixture.provider, "evm_snapshot");
    try {
      const ledger = c.fixture.ledger(c.ev);
      const first = await openSessionAt(ledger, CP, MAX_ENERGY_WH, DEPOSIT_WEI);
      await rpc(c.fixture.provider, "anvil_mine", ["0x1388"]);
      const second = await openSessionAt(ledger, CP, MAX_ENERGY_WH, 2n * DEPOSIT_WEI);
      const counting = countingProvider(c.fixture.provider);
      const w = watch(c, { provider: counting.provider, startBlock: first.receipt.blockNumber, maxLogRange: 1000 });

      await w.watcher.pollOnce();
      const h = await head(c.fixture.provider);
      expect(h.number - first.receipt.blockNumber).toBe(5001);
      expect(ofType(w.events, "depositSeen").map((e) => [e.sessionId, e.blockNumber, e.depositWei])).toEqual([
        [first.sessionId, first.receipt.blockNumber, DEPOSIT_WEI],
        [second.sessionId, second.receipt.blockNumber, 2n * DEPOSIT_WEI],
      ]);
      expect(ofType(w.events, "chainHead")).toEqual([{ type: "chainHead", blockNumber: h.number, blockHash: h.hash }]);
      expect(counting.ranges.length).toBe(6); // 5002 blocks
      for (const [from, to] of counting.ranges) expect(to - from + 1).toBeLessThanOrEqual(1000);
      expectTiling(counting.ranges, first.receipt.blockNumber, h.number);
    } finally {
      await rpc(c.fixture.provider, "evm_revert", [snapshot]);
    }
  });

  it("after downtime, a new watcher over the same cursor store scans only the blocks since", async () => {
    const c = await cast();
    const ledger = c.fixture.ledger(c.ev);
    const first = await openSessionAt(ledger, CP, MAX_ENERGY_WH, DEPOSIT_WEI);
    const w = watch(c, { maxLogRange: 100 });
    await w.watcher.pollOnce();
    await w.watcher.stop();
    const stoppedAt = await head(c.fixture.provider);

    await rpc(c.fixture.provider, "anvil_mine", ["0xfa"]);
    const second = await openSessionAt(ledger, CP, MAX_ENERGY_WH, 2n * DEPOSIT_WEI);
    const counting = countingProvider(c.fixture.provider);
    const restarted = watch(c, { provider: counting.provider, store: w.store, maxLogRange: 100 });
    await restarted.watcher.pollOnce();
    const h = await head(c.fixture.provider);
    expect(ofType(w.events, "depositSeen").map((e) => e.sessionId)).toEqual([first.sessionId]);
    expect(ofType(restarted.events, "depositSeen").map((e) => e.sessionId)).toEqual([second.sessionId]);
    expect(counting.ranges.length).toBe(3); // 251 blocks
    expectTiling(counting.ranges, stoppedAt.number + 1, h.number);
  });

  it("reports a deposit whose block was orphaned (evm_revert, then 3 other blocks) and does not report it seen again", async () => {
    const c = await cast();
    const w = watch(c);
    await w.watcher.pollOnce();
    const before = await head(c.fixture.provider);
    const snapshot = await rpc<string>(c.fixture.provider, "evm_snapshot");
    const opened = await openSessionAt(c.fixture.ledger(c.ev), CP, MAX_ENERGY_WH, DEPOSIT_WEI);
    await w.watcher.pollOnce();
    expect(ofType(w.events, "depositSeen").map((e) => e.blockHash)).toEqual([opened.receipt.blockHash]);
    w.drain();

    expect(await rpc<boolean>(c.fixture.provider, "evm_revert", [snapshot])).toBe(true);
    await rpc(c.fixture.provider, "anvil_mine", ["0x3"]);
    const after = await head(c.fixture.provider);
    expect(after.number).toBe(before.number + 3);
    expect((await c.fixture.provider.getBlock(opened.receipt.blockNumber))?.hash).not.toBe(opened.receipt.blockHash);

    await w.watcher.pollOnce();
    expect(w.drain()).toEqual([
      { type: "chainReorg", forkBlockNumber: before.number, previousBlockNumber: opened.receipt.blockNumber, withinWindow: true },
      { type: "depositReorged", sessionId: opened.sessionId, blockNumber: opened.receipt.blockNumber, blockHash: opened.receipt.blockHash },
      { type: "chainHead", blockNumber: after.number, blockHash: after.hash },
    ]);
    expect(w.store.getCursor()).toEqual({ blockNumber: after.number, blockHash: after.hash });
    expect([...w.store.rememberedBlocks().values()]).not.toContain(opened.receipt.blockHash);

    await w.watcher.pollOnce();
    expect(w.drain()).toEqual([]);
    expect(ofType(w.events, "depositSeen")).toHaveLength(1);
  });

  it("follows anvil_reorg: deposit block emptied, the same block restored, then the deposit moved one block down", async () => {
    const c = await cast();
    const w = watch(c);
    await rpc(c.fixture.provider, "anvil_mine", ["0x2"]);
    await w.watcher.pollOnce();
    const ledger = c.fixture.ledger(c.ev);
    const request = await c.ev.populateTransaction(
      await ledger.openSession.populateTransaction(cpIdOf(CP), MAX_ENERGY_WH, { value: DEPOSIT_WEI }),
    );
    const signedDeposit = await c.ev.signTransaction(request);
    const receipt = await (await c.fixture.provider.broadcastTransaction(signedDeposit)).wait();
    if (!receipt) throw new Error("deposit not mined");
    await w.watcher.pollOnce();
    const [seen] = ofType(w.drain(), "depositSeen");
    expect(seen?.blockHash).toBe(receipt.blockHash);
    const sessionId = seen!.sessionId;
    const orphaned = { type: "depositReorged", sessionId, blockNumber: receipt.blockNumber, blockHash: receipt.blockHash };

    // Depth 1, no transactions: the deposit's block becomes an empty block at the same height.
    await rpc(c.fixture.provider, "anvil_reorg", [1, []]);
    const emptied = await head(c.fixture.provider);
    expect(emptied.number).toBe(receipt.blockNumber);
    await w.watcher.pollOnce();
    expect(w.drain()).toEqual([
      { type: "chainReorg", forkBlockNumber: receipt.blockNumber - 1, previousBlockNumber: receipt.blockNumber, withinWindow: true },
      orphaned,
      { type: "chainHead", blockNumber: emptied.number, blockHash: emptied.hash },
    ]);

    // Depth 1 carrying the same signed deposit: it is reported seen again in the block now at that height. (Within
    // the same second anvil rebuilds a byte-identical block, so this may be the original hash: the chain flipped back,
    // and after the depositReorged above the core must hear of it again.)
    await rpc(c.fixture.provider, "anvil_reorg", [1, [[signedDeposit, 0]]]);
    const restored = await head(c.fixture.provider);
    await w.watcher.pollOnce();
    const readded = w.drain();
    expect(readded.map((e) => e.type)).toEqual(["chainReorg", "depositSeen", "chainHead"]);
    expect(readded[1]).toMatchObject({ sessionId, blockNumber: receipt.blockNumber, blockHash: restored.hash, txHash: receipt.hash });
    const readdedOrphan = { ...orphaned, blockHash: restored.hash };

    // Depth 2 with the deposit in the lower block: it moves to a new block one lower.
    await rpc(c.fixture.provider, "anvil_reorg", [2, [[signedDeposit, 0]]]);
    const moved = await c.fixture.provider.getBlock(receipt.blockNumber - 1);
    await w.watcher.pollOnce();
    const events = w.drain();
    expect(events.map((e) => e.type)).toEqual(["chainReorg", "depositReorged", "depositSeen", "chainHead"]);
    expect(events[1]).toEqual(readdedOrphan);
    expect(events[2]).toMatchObject({
      type: "depositSeen",
      sessionId,
      blockNumber: receipt.blockNumber - 1,
      blockHash: moved?.hash,
      txHash: receipt.hash,
      depositWei: DEPOSIT_WEI,
    });
    expect(moved?.hash).not.toBe(restored.hash);
  });

  it("reports a reorg it missed while down when the core hands back its unconfirmed deposits", async () => {
    const c = await cast();
    const w = watch(c);
    await w.watcher.pollOnce();
    const snapshot = await rpc<string>(c.fixture.provider, "evm_snapshot");
    const opened = await openSessionAt(c.fixture.ledger(c.ev), CP, MAX_ENERGY_WH, DEPOSIT_WEI);
    await w.watcher.pollOnce();
    await w.watcher.stop();

    await rpc(c.fixture.provider, "evm_revert", [snapshot]);
    await rpc(c.fixture.provider, "anvil_mine", ["0x2"]);
    const restarted = watch(c, {
      store: w.store,
      knownDeposits: [{ sessionId: opened.sessionId, blockNumber: opened.receipt.blockNumber, blockHash: opened.receipt.blockHash }],
    });
    await restarted.watcher.pollOnce();
    expect(ofType(restarted.events, "depositReorged")).toEqual([
      { type: "depositReorged", sessionId: opened.sessionId, blockNumber: opened.receipt.blockNumber, blockHash: opened.receipt.blockHash },
    ]);
    expect(ofType(restarted.events, "depositSeen")).toEqual([]);
  });

  it("start() polls on its own until stop()", async () => {
    const c = await cast();
    const w = watch(c, { pollIntervalMs: 50 });
    w.watcher.start();
    const opened = await openSessionAt(c.fixture.ledger(c.ev), CP, MAX_ENERGY_WH, DEPOSIT_WEI);
    await expect.poll(() => ofType(w.events, "depositSeen").length, { timeout: 5_000 }).toBe(1);
    await w.watcher.stop();
    const count = w.events.length;
    await rpc(c.fixture.provider, "anvil_mine", ["0x2"]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(w.events.length).toBe(count);
    expect(ofType(w.events, "depositSeen")[0]?.sessionId).toBe(opened.sessionId);
  });

  it("refuses options that would make it scan wrong", () => {
    const c = {
      fixture: { provider: {} as Provider, deployment: { ChargingLedger: "0x" + "11".repeat(20) } },
      startBlock: 1,
    } as unknown as Cast;
    expect(() => watch(c, { cpId: "CP-WATCH-1" })).toThrow(/cpId: expected 0x-prefixed bytes32 hex/);
    expect(() => watch(c, { maxLogRange: 0 })).toThrow(/maxLogRange: expected an integer >= 1 block, got 0/);
    expect(() => watch(c, { confirmations: 0 })).toThrow(/confirmations: expected an integer >= 1, got 0/);
  });
});

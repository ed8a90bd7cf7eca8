import { describe, expect, it } from "vitest";
import { JsonRpcProvider, Network, type HDNodeWallet } from "ethers";
import { SessionStatus } from "../../../agent/chain/contracts.ts";
import { DEV_CHAIN_ID } from "../../../agent/chain/dev-chain.ts";
import { authorizeSession, mined } from "../../../agent/chain/operations.ts";
import { signSessionTotal } from "../../../agent/chain/session-total.ts";
import {
  createMemoryOutbox,
  createTxSender,
  parseTxKey,
  txKey,
  type OutboxStore,
  type TxItem,
  type TxOutcome,
  type TxSender,
  type TxSenderOptions,
} from "../../../agent/chain/tx-sender.ts";
import { freePort } from "../../../agent/net.ts";
import { advanceTime, deployLedgerFixture, rpc, type LedgerFixture } from "../../helpers/chain.ts";
import { accountOf, domainOf, openSessionAt, settleWithSignature, totalOf } from "../../helpers/ledger-helpers.ts";

const CP = "CP-SENDER-1";
const DEPOSIT_WEI = 10n ** 16n;
const ENERGY_WH = 7_000n;

interface Cast {
  fixture: LedgerFixture;
  ev: HDNodeWallet;
  owner: HDNodeWallet;
  /** The pile's device key: the CP's registered signer, which sends authorize and settle. */
  device: HDNodeWallet;
  relayer: HDNodeWallet;
}

async function cast(): Promise<Cast> {
  const fixture = await deployLedgerFixture();
  const c = { fixture, ev: accountOf(fixture, 1), owner: accountOf(fixture, 2), device: accountOf(fixture, 5), relayer: accountOf(fixture, 6) };
  await fixture.attestEv(c.ev);
  await fixture.attestOwner(c.owner);
  await fixture.registerCp(c.owner, { chargePointId: CP, signer: c.device.address });
  return c;
}

function sender(c: Cast, outbox: OutboxStore, overrides: Partial<TxSenderOptions> = {}): TxSender {
  return createTxSender({ wallet: c.device, ledgerAddress: c.fixture.deployment.ChargingLedger, outbox, resendAfterMs: 60_000, ...overrides });
}

async function open(c: Cast): Promise<bigint> {
  return (await openSessionAt(c.fixture.ledger(c.ev), CP, 20_000, DEPOSIT_WEI)).sessionId;
}

async function settleItem(c: Cast, sessionId: bigint): Promise<TxItem & { kind: "settle" }> {
  const total = totalOf(sessionId, CP, ENERGY_WH);
  const signature = await signSessionTotal(c.device, domainOf(c.fixture), total);
  return { key: txKey("settle", sessionId), kind: "settle", payload: { total, signature } };
}

function authorizeItem(sessionId: bigint): TxItem {
  return { key: txKey("authorize", sessionId), kind: "authorize", payload: { sessionId } };
}

/** Ticks until every key has left "pending"; returns the final outcomes by key. */
async function tickUntilDoneAll(s: TxSender, keys: string[], maxTicks = 20): Promise<Map<string, TxOutcome>> {
  const done = new Map<string, TxOutcome>();
  for (let i = 0; i < maxTicks && done.size < keys.length; i++) {
    for (const outcome of await s.tick()) if (outcome.status !== "pending") done.set(outcome.key, outcome);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const missing = keys.filter((key) => !done.has(key));
  if (missing.length > 0) throw new Error(`${missing.join(", ")} still pending after ${maxTicks} ticks`);
  return done;
}

async function tickUntilDone(s: TxSender, key: string): Promise<TxOutcome> {
  return (await tickUntilDoneAll(s, [key])).get(key)!;
}

async function statusOf(c: Cast, sessionId: bigint): Promise<bigint> {
  return (await c.fixture.ledger(c.ev).session(sessionId)).status;
}

async function nonceOf(c: Cast, wallet: HDNodeWallet): Promise<number> {
  return c.fixture.provider.getTransactionCount(wallet.address, "latest");
}

describe("tx sender", () => {
  it("mines authorize then settle from the device key, and a second submit of a done key is a no-op", async () => {
    const c = await cast();
    const sessionId = await open(c);
    const outbox = createMemoryOutbox();
    const s = sender(c, outbox);
    const nonceBefore = await nonceOf(c, c.device);
    const settle = await settleItem(c, sessionId);
    s.submit(authorizeItem(sessionId));
    s.submit(settle);

    const outcomes = await tickUntilDoneAll(s, [txKey("authorize", sessionId), settle.key]);
    const authorized = outcomes.get(txKey("authorize", sessionId))!;
    const settled = outcomes.get(settle.key)!;
    expect(authorized).toMatchObject({ kind: "authorize", status: "mined" });
    expect(settled).toMatchObject({ kind: "settle", status: "mined" });
    expect(settled.blockNumber).toBeGreaterThan(authorized.blockNumber!);
    expect(await statusOf(c, sessionId)).toBe(SessionStatus.Settled);
    expect((await c.fixture.ledger(c.ev).session(sessionId)).energyWh).toBe(ENERGY_WH);
    const receipt = await c.fixture.provider.getTransactionReceipt(settled.txHash!);
    expect(receipt?.from).toBe(c.device.address);
    expect(receipt?.blockNumber).toBe(settled.blockNumber);
    expect(await nonceOf(c, c.device)).toBe(nonceBefore + 2);
    expect(outbox.get(settle.key)).toMatchObject({ status: "done", attempts: 1, nonce: nonceBefore + 1, txHash: settled.txHash });

    const again = s.submit(settle);
    expect(again.status).toBe("done");
    expect(await s.tick()).toEqual([]);
    expect(await nonceOf(c, c.device)).toBe(nonceBefore + 2);
    expect(outbox.get(settle.key)?.attempts).toBe(1);
  });

  it("counts a settle a relayer already sent with the same signature as alreadyDone, without sending", async () => {
    const c = await cast();
    const sessionId = await open(c);
    await authorizeSession(c.fixture.ledger(c.device), sessionId);
    const settle = await settleItem(c, sessionId);
    await settleWithSignature(c.fixture.ledger(c.relayer), settle.payload.total, settle.payload.signature);
    const nonceBefore = await nonceOf(c, c.device);
    const outbox = createMemoryOutbox();
    const s = sender(c, outbox);
    s.submit(settle);

    expect(await s.tick()).toEqual([{ key: settle.key, kind: "settle", status: "alreadyDone" }]);
    expect(outbox.get(settle.key)).toMatchObject({ status: "done", attempts: 0 });
    expect(outbox.get(settle.key)?.result).toMatchObject({ outcome: "alreadyDone", reason: `AlreadySettled(${sessionId})` });
    expect(await nonceOf(c, c.device)).toBe(nonceBefore);
  });

  it("fails a settle of a cancelled session with WrongSessionStatus, and an authorize after its window", async () => {
    const c = await cast();
    const cancelled = await open(c);
    const late = await open(c);
    await advanceTime(c.fixture.provider, 601);
    await mined("cancel", () => c.fixture.ledger(c.ev).cancel(cancelled));
    const nonceBefore = await nonceOf(c, c.device);
    const outbox = createMemoryOutbox();
    const s = sender(c, outbox);
    const settle = await settleItem(c, cancelled);
    s.submit(settle);
    s.submit(authorizeItem(late));

    const outcomes = await s.tick();
    expect(outcomes.map((o) => [o.key, o.status])).toEqual([
      [settle.key, "failed"],
      [txKey("authorize", late), "failed"],
    ]);
    expect(outcomes[0]?.error).toBe(
      `WrongSessionStatus(${cancelled}, ${SessionStatus.Cancelled}, ${SessionStatus.Authorized}): the session is Cancelled`,
    );
    expect(outcomes[1]?.error).toMatch(new RegExp(`^AuthorizationWindowClosed\\(${late}, \\d+\\)$`));
    expect(outbox.get(settle.key)).toMatchObject({ status: "failed", failure: outcomes[0]?.error });
    expect(await nonceOf(c, c.device)).toBe(nonceBefore);
    expect(await s.tick()).toEqual([]);
  });

  it("holds a settle while its session is not authorized yet", async () => {
    const c = await cast();
    const sessionId = await open(c);
    const outbox = createMemoryOutbox();
    const s = sender(c, outbox);
    const settle = await settleItem(c, sessionId);
    s.submit(settle);
    const [waiting] = await s.tick();
    expect(waiting).toMatchObject({ key: settle.key, status: "pending" });
    expect(waiting?.error).toMatch(/^WrongSessionStatus\(.*\): the session is Opened, not authorized yet$/);
    expect(outbox.get(settle.key)?.attempts).toBe(0);

    await authorizeSession(c.fixture.ledger(c.owner), sessionId);
    expect(await tickUntilDone(s, settle.key)).toMatchObject({ status: "mined" });
    expect(await statusOf(c, sessionId)).toBe(SessionStatus.Settled);
  });

  it("re-sends a transaction stuck in the pool with the same nonce and bumped fees; exactly one version is mined", async () => {
    const c = await cast();
    const sessionId = await open(c);
    const provider = c.fixture.provider;
    const nonceBefore = await nonceOf(c, c.device);
    const outbox = createMemoryOutbox();
    let nowMs = 1_000_000;
    const s = sender(c, outbox, { resendAfterMs: 5_000, now: () => nowMs });
    const key = txKey("authorize", sessionId);
    s.submit(authorizeItem(sessionId));

    await rpc(provider, "evm_setAutomine", [false]);
    try {
      const [first] = await s.tick();
      expect(first).toMatchObject({ key, status: "pending" });
      const firstTx = await provider.getTransaction(first!.txHash!);
      expect(firstTx?.nonce).toBe(nonceBefore);
      expect(firstTx?.blockNumber).toBeNull();

      nowMs += 4_999; // not yet due
      expect(await s.tick()).toEqual([{ key, kind: "authorize", status: "pending", txHash: first!.txHash }]);

      nowMs += 1;
      const [second] = await s.tick();
      expect(second?.txHash).toBeDefined();
      expect(second?.txHash).not.toBe(first!.txHash);
      const secondTx = await provider.getTransaction(second!.txHash!);
      expect(secondTx?.nonce).toBe(nonceBefore);
      // +12.5 %, rounded up, on both prices a node compares for a replacement
      expect(secondTx!.maxFeePerGas!).toBeGreaterThanOrEqual((firstTx!.maxFeePerGas! * 1125n + 999n) / 1000n);
      expect(secondTx!.maxPriorityFeePerGas!).toBeGreaterThanOrEqual((firstTx!.maxPriorityFeePerGas! * 1125n + 999n) / 1000n);
      expect(outbox.get(key)).toMatchObject({ attempts: 2, nonce: nonceBefore, txHash: second!.txHash });

      await rpc(provider, "evm_mine");
    } finally {
      await rpc(provider, "evm_setAutomine", [true]);
    }
    const outcome = await tickUntilDone(s, key);
    const secondHash = outbox.get(key)?.txHash;
    expect(outcome).toMatchObject({ key, status: "mined", txHash: secondHash });
    // The block holds the replacement only; the first version is gone for good.
    expect((await c.fixture.provider.getBlock(outcome.blockNumber!))?.transactions).toEqual([secondHash]);
    expect(await nonceOf(c, c.device)).toBe(nonceBefore + 1);
    expect(await statusOf(c, sessionId)).toBe(SessionStatus.Authorized);
  });

  it("keeps a nonce in use when a pooled settle turns out done: alreadyDone, and a transfer to self takes the nonce", async () => {
    const c = await cast();
    const sessionId = await open(c);
    await authorizeSession(c.fixture.ledger(c.device), sessionId);
    const provider = c.fixture.provider;
    const nonceBefore = await nonceOf(c, c.device);
    const outbox = createMemoryOutbox();
    let nowMs = 1_000_000;
    const s = sender(c, outbox, { resendAfterMs: 1_000, now: () => nowMs });
    const settle = await settleItem(c, sessionId);
    s.submit(settle);

    await rpc(provider, "evm_setAutomine", [false]);
    try {
      const [sent] = await s.tick();
      expect(sent).toMatchObject({ status: "pending" });
      // The node loses our settle (a restart, a full pool) while a relayer settles the same total.
      await rpc(provider, "anvil_dropTransaction", [sent!.txHash]);
      const relayed = await c.fixture.ledger(c.relayer).settle(
        sessionId,
        settle.payload.total.meterStartWh,
        settle.payload.total.meterStopWh,
        settle.payload.total.startedAt,
        settle.payload.total.stoppedAt,
        settle.payload.total.evBehaviour,
        settle.payload.signature,
      );
      await rpc(provider, "evm_mine");
      expect((await relayed.wait())?.status).toBe(1);
      expect(await nonceOf(c, c.device)).toBe(nonceBefore); // the gap a lost transaction leaves

      nowMs += 1_000;
      expect(await s.tick()).toEqual([{ key: settle.key, kind: "settle", status: "alreadyDone" }]);
      await rpc(provider, "evm_mine");
    } finally {
      await rpc(provider, "evm_setAutomine", [true]);
    }
    expect(await nonceOf(c, c.device)).toBe(nonceBefore + 1);
    const block = await provider.getBlock("latest", true);
    const filler = block?.prefetchedTransactions.find((tx) => tx.from === c.device.address);
    expect(filler).toMatchObject({ nonce: nonceBefore, to: c.device.address, value: 0n, data: "0x" });
    expect(await s.tick()).toEqual([]);
  });

  it("leaves rows pending without throwing while the RPC is unreachable, and sends them once it is back", async () => {
    const c = await cast();
    const sessionId = await open(c);
    const network = Network.from(DEV_CHAIN_ID);
    const closedPort = await freePort();
    const unreachable = new JsonRpcProvider(`http://127.0.0.1:${closedPort}`, network, { staticNetwork: network });
    const outbox = createMemoryOutbox();
    const key = txKey("authorize", sessionId);
    try {
      const offline = createTxSender({
        wallet: c.device.connect(unreachable),
        ledgerAddress: c.fixture.deployment.ChargingLedger,
        outbox,
      });
      offline.submit(authorizeItem(sessionId));
      for (let i = 0; i < 2; i++) {
        const outcomes = await offline.tick();
        expect(outcomes).toHaveLength(1);
        expect(outcomes[0]).toMatchObject({ key, kind: "authorize", status: "pending" });
        expect(outcomes[0]?.error).toMatch(/ECONNREFUSED/);
      }
      expect(outbox.get(key)).toMatchObject({ status: "pending", attempts: 0 });
    } finally {
      unreachable.destroy();
    }

    const online = sender(c, outbox);
    expect(await tickUntilDone(online, key)).toMatchObject({ status: "mined" });
    expect(await statusOf(c, sessionId)).toBe(SessionStatus.Authorized);
  });

  it("after a crash, finds the mined transaction of a row with txHash and nonce without sending again", async () => {
    const c = await cast();
    const sessionId = await open(c);
    const outbox = createMemoryOutbox();
    const key = txKey("authorize", sessionId);
    const beforeCrash = sender(c, outbox);
    beforeCrash.submit(authorizeItem(sessionId));
    const [sent] = await beforeCrash.tick(); // broadcast (anvil mines it at once), then the process dies
    expect(sent).toMatchObject({ key, status: "pending" });
    const row = outbox.get(key);
    expect(row).toMatchObject({ status: "pending", attempts: 1, txHash: sent!.txHash });
    const nonceAfterSend = await nonceOf(c, c.device);
    expect(row?.nonce).toBe(nonceAfterSend - 1);

    const afterCrash = sender(c, outbox);
    expect(await afterCrash.tick()).toEqual([
      { key, kind: "authorize", status: "mined", txHash: sent!.txHash, blockNumber: expect.any(Number) as number },
    ]);
    expect(await nonceOf(c, c.device)).toBe(nonceAfterSend);
    expect(outbox.get(key)).toMatchObject({ status: "done", attempts: 1 });
  });

  it("after a crash between write-ahead and broadcast, re-sends the row with its stored nonce", async () => {
    const c = await cast();
    const sessionId = await open(c);
    const outbox = createMemoryOutbox();
    const key = txKey("authorize", sessionId);
    const storedNonce = await nonceOf(c, c.device);
    outbox.enqueue(authorizeItem(sessionId));
    outbox.markAttempt(key, { txHash: `0x${"ab".repeat(32)}`, nonce: storedNonce }); // never reached the node

    const s = sender(c, outbox);
    const outcome = await tickUntilDone(s, key);
    expect(outcome).toMatchObject({ status: "mined" });
    expect((await c.fixture.provider.getTransaction(outcome.txHash!))?.nonce).toBe(storedNonce);
    expect(await nonceOf(c, c.device)).toBe(storedNonce + 1);
    expect(outbox.get(key)?.attempts).toBe(2);
  });

  it("fails a corrupt outbox row on its own and still sends the others", async () => {
    const c = await cast();
    const sessionId = await open(c);
    const outbox = createMemoryOutbox();
    outbox.enqueue({ key: "settle:corrupt", kind: "settle", payload: { total: { sessionId: "x" } } });
    outbox.enqueue({ key: "mqtt:1", kind: "ocppMessage", payload: {} }); // other kinds share the outbox
    const s = sender(c, outbox);
    s.submit(authorizeItem(sessionId));

    const outcomes = await tickUntilDoneAll(s, ["settle:corrupt", txKey("authorize", sessionId)]);
    expect(outcomes.get("settle:corrupt")).toEqual({
      key: "settle:corrupt",
      kind: "settle",
      status: "failed",
      error: 'malformed settle payload: tx sender: payload.total.sessionId: expected an integer, got "x"',
    });
    expect(outcomes.get(txKey("authorize", sessionId))?.status).toBe("mined");
    expect(outbox.get("mqtt:1")).toMatchObject({ status: "pending", attempts: 0 });
  });

  // Deep reorg (issue 11, fault campaign seed 1): anvil_reorg drops the removed transactions for good, as a reorg
  // beyond the confirmations may. The device key's count goes back below a nonce the sender had seen mined.
  it("fills the nonce of a mined authorize that a reorg took away at once, so the next authorize is mined", async () => {
    const c = await cast();
    const provider = c.fixture.provider;
    const first = await open(c);
    const outbox = createMemoryOutbox();
    const nowMs = 1_000_000; // never advances: nothing here may wait for resendAfterMs
    const s = sender(c, outbox, { resendAfterMs: 120_000, now: () => nowMs });
    const nonceBefore = await nonceOf(c, c.device);
    s.submit(authorizeItem(first));
    const authorized = await tickUntilDone(s, txKey("authorize", first));
    expect(authorized).toMatchObject({ status: "mined" });

    const head = await provider.getBlockNumber();
    await rpc(provider, "anvil_reorg", [head - authorized.blockNumber! + 1, []]);
    expect(await provider.getTransaction(authorized.txHash!)).toBeNull();
    expect(await nonceOf(c, c.device)).toBe(nonceBefore); // the gap
    expect(await statusOf(c, first)).toBe(SessionStatus.Opened);

    const second = await open(c);
    s.submit(authorizeItem(second));
    const outcome = (await tickUntilDoneAll(s, [txKey("authorize", second)], 5)).get(txKey("authorize", second))!;
    expect(outcome).toMatchObject({ kind: "authorize", status: "mined" });
    expect((await provider.getTransaction(outcome.txHash!))?.nonce).toBe(nonceBefore + 1);
    expect(await statusOf(c, second)).toBe(SessionStatus.Authorized);
    expect(await statusOf(c, first)).toBe(SessionStatus.Opened);
    expect(await nonceOf(c, c.device)).toBe(nonceBefore + 2);
    // The lost nonce went to a transfer to self, not to the dropped authorize again.
    const block = await provider.getBlock(outcome.blockNumber!, true);
    const fillers = block?.prefetchedTransactions.filter((tx) => tx.from === c.device.address && tx.nonce === nonceBefore) ?? [];
    const fillerBlock = fillers.length > 0 ? block : await provider.getBlock(outcome.blockNumber! - 1, true);
    expect(fillerBlock?.prefetchedTransactions.find((tx) => tx.from === c.device.address && tx.nonce === nonceBefore)).toMatchObject({
      to: c.device.address,
      value: 0n,
      data: "0x",
    });
    expect(outbox.get(txKey("authorize", first))).toMatchObject({ status: "done", nonce: nonceBefore, txHash: authorized.txHash });
  });

  it("after a restart, fills a nonce gap below a restored in-flight transaction, which is then mined", async () => {
    const c = await cast();
    const provider = c.fixture.provider;
    const first = await open(c);
    const outbox = createMemoryOutbox();
    const nowMs = 1_000_000;
    const beforeRestart = sender(c, outbox, { resendAfterMs: 120_000, now: () => nowMs });
    const nonceBefore = await nonceOf(c, c.device);
    beforeRestart.submit(authorizeItem(first));
    const authorized = await tickUntilDone(beforeRestart, txKey("authorize", first));
    await rpc(provider, "anvil_reorg", [(await provider.getBlockNumber()) - authorized.blockNumber! + 1, []]);
    expect(await nonceOf(c, c.device)).toBe(nonceBefore);

    // The dead process had sent the next authorize behind the gap (write-ahead row, pooled as a future nonce).
    const second = await open(c);
    const key = txKey("authorize", second);
    const queued = await c.fixture.ledger(c.device).authorize.populateTransaction(second);
    const behindGap = await c.device.sendTransaction({ ...queued, nonce: nonceBefore + 1, gasLimit: 200_000n });
    outbox.enqueue(authorizeItem(second));
    outbox.markAttempt(key, { txHash: behindGap.hash, nonce: nonceBefore + 1 });
    expect(await provider.getTransactionCount(c.device.address, "pending")).toBe(nonceBefore);

    const afterRestart = sender(c, outbox, { resendAfterMs: 120_000, now: () => nowMs });
    const outcome = (await tickUntilDoneAll(afterRestart, [key], 5)).get(key)!;
    expect(outcome).toMatchObject({ kind: "authorize", status: "mined", txHash: behindGap.hash });
    expect(await nonceOf(c, c.device)).toBe(nonceBefore + 2);
    expect(await statusOf(c, second)).toBe(SessionStatus.Authorized);
  });

  it("re-broadcasts at once, unchanged, an in-flight transaction the node has dropped from its pool", async () => {
    const c = await cast();
    const provider = c.fixture.provider;
    const sessionId = await open(c);
    const outbox = createMemoryOutbox();
    const nowMs = 1_000_000;
    const s = sender(c, outbox, { resendAfterMs: 120_000, now: () => nowMs });
    const key = txKey("authorize", sessionId);
    const nonceBefore = await nonceOf(c, c.device);
    s.submit(authorizeItem(sessionId));
    await rpc(provider, "evm_setAutomine", [false]);
    try {
      const [sent] = await s.tick();
      expect(sent).toMatchObject({ key, status: "pending" });
      await rpc(provider, "anvil_dropTransaction", [sent!.txHash]);
      expect(await provider.getTransaction(sent!.txHash!)).toBeNull();

      // The very same version again (same fees, same hash): no fee bump for a transaction the node merely lost.
      expect(await s.tick()).toEqual([{ key, kind: "authorize", status: "pending", txHash: sent!.txHash }]);
      expect((await provider.getTransaction(sent!.txHash!))?.nonce).toBe(nonceBefore);
      expect(outbox.get(key)).toMatchObject({ attempts: 2, nonce: nonceBefore, txHash: sent!.txHash });
      await rpc(provider, "evm_mine");
    } finally {
      await rpc(provider, "evm_setAutomine", [true]);
    }
    expect(await tickUntilDone(s, key)).toMatchObject({ status: "mined" });
    expect(await nonceOf(c, c.device)).toBe(nonceBefore + 1);
    expect(await statusOf(c, sessionId)).toBe(SessionStatus.Authorized);
  });

  it("fails a session's rows once a later generation of its id is queued: the id belongs to another deposit", async () => {
    const c = await cast();
    const sessionId = await open(c);
    const outbox = createMemoryOutbox();
    const s = sender(c, outbox);
    const nonceBefore = await nonceOf(c, c.device);
    const stale = await settleItem(c, sessionId);
    s.submit(stale);
    s.submit({ key: txKey("authorize", sessionId, 1), kind: "authorize", payload: { sessionId } });
    const outcomes = await tickUntilDoneAll(s, [stale.key, txKey("authorize", sessionId, 1)]);
    expect(outcomes.get(stale.key)).toEqual({
      key: `settle:${sessionId}`,
      kind: "settle",
      status: "failed",
      error: `superseded: a reorg gave session id ${sessionId} to another deposit (authorize:${sessionId}/r1)`,
    });
    expect(outcomes.get(`authorize:${sessionId}/r1`)).toMatchObject({ kind: "authorize", status: "mined" });
    expect(await statusOf(c, sessionId)).toBe(SessionStatus.Authorized);
    expect(await nonceOf(c, c.device)).toBe(nonceBefore + 1);
  });

  it("builds and parses generation keys", () => {
    expect(txKey("authorize", 12n)).toBe("authorize:12");
    expect(txKey("settle", 12n, 0)).toBe("settle:12");
    expect(txKey("settle", 12n, 3)).toBe("settle:12/r3");
    expect(parseTxKey("settle:12/r3")).toEqual({ kind: "settle", sessionId: 12n, generation: 3 });
    expect(parseTxKey("authorize:12")).toEqual({ kind: "authorize", sessionId: 12n, generation: 0 });
    for (const other of ["authorize:12/r0", "settle:x", "commitBid:1", "authorize:12/r", "mqtt:1"]) expect(parseTxKey(other)).toBeUndefined();
  });

  it("refuses a fee bump below the 10 % geth requires", () => {
    const c = { device: { provider: {} } } as unknown as Cast;
    expect(() =>
      createTxSender({ wallet: c.device, ledgerAddress: "0x" + "11".repeat(20), outbox: createMemoryOutbox(), feeBumpPercent: 5 }),
    ).toThrow("tx sender: feeBumpPercent: expected >= 10 (geth refuses smaller replacements), got 5");
  });
});

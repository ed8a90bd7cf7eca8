import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RuntimeError } from "../../../../agent/errors.ts";
import { openJournal, SCHEMA_VERSION, type Journal } from "../../../../agent/journal/journal.ts";
import { decodeJson, encodeJson } from "../../../../agent/journal/json.ts";

const WEI = 1_234_567_890_123_456_789_012n;

let dir: string;
let path: string;
let now: number;
const clock = (): number => now;
const open: Journal[] = [];

function journal(at = path): Journal {
  const opened = openJournal(at, { clock });
  open.push(opened);
  return opened;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "trustpile-journal-"));
  path = join(dir, "journal.sqlite");
  now = 1_700_000_000_000;
});

afterEach(() => {
  for (const opened of open.splice(0)) opened.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("journal JSON", () => {
  it("round-trips bigints of any size and sign, nested in objects and arrays", () => {
    const value = { wei: WEI, sessionId: 42n, neg: -7n, zero: 0n, list: [1n, { deep: 2n ** 200n }], n: 1.5, s: "x", b: true, z: null };
    expect(decodeJson(encodeJson(value))).toEqual(value);
    expect(encodeJson({ wei: 5n })).toBe('{"wei":{"$bigint":"5"}}');
  });

  it("keeps user keys that look like the bigint tag as plain data", () => {
    const value = { $bigint: "123", $$x: 1, nested: [{ $bigint: "not a number" }] };
    const decoded = decodeJson(encodeJson(value));
    expect(decoded).toEqual(value);
    expect(typeof (decoded as { $bigint: unknown }).$bigint).toBe("string");
  });

  it("refuses values plain JSON would silently change, naming where they are", () => {
    expect(() => encodeJson({ a: { energyWh: Number.NaN } })).toThrow(/\$\.a\.energyWh: expected a finite number/);
    expect(() => encodeJson({ m: new Map() })).toThrow(/\$\.m: expected a plain object.*Map/);
    expect(() => encodeJson([1, undefined])).toThrow(/\$\[1\]/);
    expect(() => encodeJson(undefined)).toThrow(/undefined/);
    expect(() => encodeJson({ f: () => 1 })).toThrow(/\$\.f.*function/);
  });

  it("drops undefined properties and uses toJSON like JSON.stringify", () => {
    const at = new Date(0);
    expect(decodeJson(encodeJson({ a: undefined, at }))).toEqual({ at: at.toISOString() });
  });

  it("rejects a malformed bigint tag or stray $ key instead of guessing", () => {
    expect(() => decodeJson('{"$bigint":"12x"}')).toThrow(/\$bigint/);
    expect(() => decodeJson('{"$bigint":"1","other":2}')).toThrow(/\$bigint/);
    expect(() => decodeJson('{"$weird":1}')).toThrow(/unknown tag key/);
    expect(() => decodeJson("{")).toThrow(/cannot decode/);
  });
});

describe("events", () => {
  it("numbers appended events with increasing seqs and returns them in order with bigints intact", () => {
    const j = journal();
    expect(j.lastSeq()).toBe(0);
    expect(j.append({ type: "deposit.seen", sessionId: 7n, depositWei: WEI })).toBe(1);
    now += 1000;
    expect(j.append({ type: "meter.sample", energyWh: 1200 })).toBe(2);
    expect(j.append({ type: "meter.sample", energyWh: 1250 })).toBe(3);
    expect(j.lastSeq()).toBe(3);

    const all = j.eventsSince(0);
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(all[0]).toEqual({
      seq: 1,
      type: "deposit.seen",
      recordedAt: 1_700_000_000_000,
      event: { type: "deposit.seen", sessionId: 7n, depositWei: WEI },
    });
    expect(all[1]?.recordedAt).toBe(1_700_000_001_000);
    expect(j.eventsSince(2).map((e) => e.event)).toEqual([{ type: "meter.sample", energyWh: 1250 }]);
    expect(j.eventsSince(0, 2).map((e) => e.seq)).toEqual([1, 2]);
    expect(j.eventsSince(3)).toEqual([]);
  });

  it("writes nothing for an event it cannot encode or that has no type", () => {
    const j = journal();
    j.append({ type: "a" });
    expect(() => j.append({ type: "b", energyWh: Number.POSITIVE_INFINITY })).toThrow(/energyWh/);
    expect(() => j.append({ type: "" })).toThrow(/event.type must be a non-empty string/);
    expect(() => j.append({} as { type: string })).toThrow(/event.type/);
    expect(j.lastSeq()).toBe(1);
    expect(j.append({ type: "c" })).toBe(2);
  });

  it("rolls back events appended inside a failed transaction, and never reuses their seqs", () => {
    const j = journal();
    j.append({ type: "a" });
    expect(() =>
      j.transaction(() => {
        j.append({ type: "b" });
        j.append({ type: "c" });
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(j.eventsSince(0).map((e) => e.type)).toEqual(["a"]);
    j.transaction(() => {
      j.append({ type: "d" });
      j.enqueue({ key: "settle:1", kind: "chain.settle", payload: { sessionId: 1n } });
    });
    expect(j.eventsSince(0).map((e) => [e.seq, e.type])).toEqual([[1, "a"], [2, "d"]]);
    expect(j.get("settle:1")?.status).toBe("pending");
  });

  it("refuses an async transaction function", () => {
    const j = journal();
    expect(() => j.transaction((async () => undefined) as () => unknown)).toThrow(/promise/i);
  });
});

describe("snapshots and replay", () => {
  type State = { energyWh: number; paidWei: bigint };
  const fold = (state: State, event: { type: string; [k: string]: unknown }): State =>
    event.type === "meter.sample" ? { ...state, energyWh: event.energyWh as number } : { ...state, paidWei: state.paidWei + (event.wei as bigint) };

  it("replays snapshot + events after it to the same state as replaying everything", () => {
    const j = journal();
    const initial: State = { energyWh: 0, paidWei: 0n };
    let state = initial;
    const events = [
      { type: "meter.sample", energyWh: 100 },
      { type: "paid", wei: WEI },
      { type: "meter.sample", energyWh: 250 },
      { type: "paid", wei: 5n },
      { type: "meter.sample", energyWh: 400 },
    ];
    events.forEach((event, index) => {
      if (index === 2) {
        j.appendWithSnapshot(event, () => (state = fold(state, event)));
      } else {
        j.append(event);
        state = fold(state, event);
      }
    });

    const snapshot = j.loadSnapshot();
    expect(snapshot).toEqual({ seq: 3, state: { energyWh: 250, paidWei: WEI } });
    const replayed = j.eventsSince(snapshot?.seq ?? 0).reduce((s, e) => fold(s, e.event), snapshot?.state as State);
    const full = j.eventsSince(0).reduce((s, e) => fold(s, e.event), initial);
    expect(replayed).toEqual(full);
    expect(replayed).toEqual({ energyWh: 400, paidWei: WEI + 5n });
  });

  it("passes the new seq to computeState and rolls the event back when it throws", () => {
    const j = journal();
    expect(j.appendWithSnapshot({ type: "a" }, (seq) => ({ upTo: seq }))).toBe(1);
    expect(j.loadSnapshot()).toEqual({ seq: 1, state: { upTo: 1 } });
    expect(() =>
      j.appendWithSnapshot({ type: "b" }, () => {
        throw new Error("reducer bug");
      }),
    ).toThrow("reducer bug");
    expect(j.lastSeq()).toBe(1);
    expect(j.loadSnapshot()).toEqual({ seq: 1, state: { upTo: 1 } });
  });

  it("refuses a snapshot for an event that was never journaled", () => {
    const j = journal();
    expect(j.loadSnapshot()).toBeUndefined();
    j.saveSnapshot(0, { initial: true });
    expect(j.loadSnapshot()).toEqual({ seq: 0, state: { initial: true } });
    expect(() => j.saveSnapshot(1, {})).toThrow(/snapshot seq 1 is beyond the last journaled event 0/);
    j.append({ type: "a" });
    j.saveSnapshot(1, { n: 1n });
    expect(j.loadSnapshot()).toEqual({ seq: 1, state: { n: 1n } });
  });

  it("prunes only events the snapshot covers and keeps seqs increasing afterwards", () => {
    const j = journal();
    for (let i = 0; i < 5; i++) j.append({ type: "e", i });
    expect(() => j.pruneEventsBefore(3)).toThrow(/snapshot covers only up to 0/);
    j.saveSnapshot(5, { i: 4 });
    expect(j.pruneEventsBefore(6)).toBe(5);
    expect(j.eventsSince(0)).toEqual([]);
    expect(j.lastSeq()).toBe(5);
    expect(j.append({ type: "e" })).toBe(6);
  });
});

describe("outbox", () => {
  it("keeps one row per idempotency key: re-enqueueing returns the existing row with its attempts", () => {
    const j = journal();
    const first = j.enqueue({ key: "settle:42", kind: "chain.settle", payload: { sessionId: 42n, energyWh: 7300 } });
    expect(first).toMatchObject({ key: "settle:42", kind: "chain.settle", status: "pending", attempts: 0, createdAt: now });
    j.markAttempt("settle:42", { txHash: "0xaa", nonce: 3 });
    now += 5000;

    const again = j.enqueue({ key: "settle:42", kind: "chain.settle", payload: { sessionId: 42n, energyWh: 9999 } });
    expect(again).toMatchObject({ attempts: 1, txHash: "0xaa", nonce: 3, createdAt: 1_700_000_000_000 });
    expect(again.payload).toEqual({ sessionId: 42n, energyWh: 7300 });
    expect(j.pending()).toHaveLength(1);
  });

  it("refuses a key reused for a different kind of command", () => {
    const j = journal();
    j.enqueue({ key: "x:1", kind: "chain.settle", payload: null });
    expect(() => j.enqueue({ key: "x:1", kind: "ocpp.stop", payload: null })).toThrow(/already names a "chain.settle" item/);
  });

  it("counts attempts, keeps the last tx hash and nonce, and stamps the attempt time", () => {
    const j = journal();
    j.enqueue({ key: "authorize:9", kind: "chain.authorize", payload: { sessionId: 9n } });
    now += 10;
    let item = j.markAttempt("authorize:9", { txHash: "0x01", nonce: 4 });
    expect(item).toMatchObject({ attempts: 1, txHash: "0x01", nonce: 4, lastAttemptAt: now, note: undefined });
    now += 10;
    item = j.markAttempt("authorize:9", { note: "rpc timeout" });
    expect(item).toMatchObject({ attempts: 2, txHash: "0x01", nonce: 4, lastAttemptAt: now, note: "rpc timeout" });
    now += 10;
    item = j.markAttempt("authorize:9", { txHash: "0x02", nonce: 4, note: "fee bump" });
    expect(item).toMatchObject({ attempts: 3, txHash: "0x02", nonce: 4, note: "fee bump" });
    expect(j.markAttempt("authorize:9").attempts).toBe(4);
  });

  it("lists pending items oldest first, by kind, and drops done and failed ones", () => {
    const j = journal();
    for (const [key, kind] of [
      ["settle:1", "chain.settle"],
      ["start:1", "ocpp.start"],
      ["settle:2", "chain.settle"],
      ["stop:1", "ocpp.stop"],
      ["settle:3", "chain.settle"],
    ] as const) {
      j.enqueue({ key, kind, payload: { key } });
    }
    expect(j.pending().map((i) => i.key)).toEqual(["settle:1", "start:1", "settle:2", "stop:1", "settle:3"]);
    expect(j.pending("chain.settle").map((i) => i.key)).toEqual(["settle:1", "settle:2", "settle:3"]);

    now += 1;
    const done = j.markDone("settle:1", { txHash: "0xbeef", gasUsed: 51234n });
    expect(done).toMatchObject({ status: "done", result: { txHash: "0xbeef", gasUsed: 51234n }, completedAt: now });
    const failed = j.markFailed("settle:2", "reverted: SessionNotAuthorized(2)");
    expect(failed).toMatchObject({ status: "failed", failure: "reverted: SessionNotAuthorized(2)" });

    expect(j.pending("chain.settle").map((i) => i.key)).toEqual(["settle:3"]);
    expect(j.pending().map((i) => i.key)).toEqual(["start:1", "stop:1", "settle:3"]);
    expect(j.pending("nothing")).toEqual([]);
  });

  it("treats done and failed as final", () => {
    const j = journal();
    j.enqueue({ key: "settle:5", kind: "chain.settle", payload: {} });
    j.enqueue({ key: "settle:6", kind: "chain.settle", payload: {} });
    j.markDone("settle:5", { via: "receipt" });
    // A late duplicate confirmation (e.g. AlreadySettled on a retry) keeps the first result.
    expect(j.markDone("settle:5", { via: "AlreadySettled" }).result).toEqual({ via: "receipt" });
    expect(() => j.markAttempt("settle:5", { txHash: "0x1" })).toThrow(/"settle:5" is done; expected a pending item/);
    expect(() => j.markFailed("settle:5", "late")).toThrow(/already done/);

    j.markFailed("settle:6", "first");
    expect(j.markFailed("settle:6", "second").failure).toBe("first");
    expect(() => j.markDone("settle:6", {})).toThrow(/already failed/);
    expect(() => j.markAttempt("settle:6")).toThrow(/is failed/);

    expect(() => j.markAttempt("nope")).toThrow(/no outbox item with key "nope"/);
    expect(() => j.markDone("nope", 1)).toThrow(/no outbox item/);
    expect(j.get("nope")).toBeUndefined();
  });

  it("stores an undefined result or payload as absent", () => {
    const j = journal();
    expect(j.enqueue({ key: "k", kind: "k", payload: undefined }).payload).toBeUndefined();
    expect(j.markDone("k").result).toBeUndefined();
  });
});

describe("chain cursor and block hashes", () => {
  it("stores the cursor and block hashes, replaces a reorged hash and forgets blocks after a fork point", () => {
    const j = journal();
    expect(j.getCursor()).toBeUndefined();
    j.setCursor({ blockNumber: 100, blockHash: "0x100a" });
    j.setCursor({ blockNumber: 103, blockHash: "0x103a" });
    expect(j.getCursor()).toEqual({ blockNumber: 103, blockHash: "0x103a" });

    for (let n = 95; n <= 103; n++) j.rememberBlock(n, `0x${n}a`);
    expect(j.blockHash(101)).toBe("0x101a");
    expect(j.blockHash(104)).toBeUndefined();

    expect(j.forgetBlocksAfter(101)).toBe(2);
    expect(j.blockHash(102)).toBeUndefined();
    expect(j.blockHash(101)).toBe("0x101a");
    j.rememberBlock(101, "0x101b");
    expect(j.blockHash(101)).toBe("0x101b");

    expect(j.pruneBlocksBefore(98)).toBe(3);
    expect(j.blockHash(97)).toBeUndefined();
    expect(j.blockHash(98)).toBe("0x98a");
    // The cursor is the caller's to move back after a reorg.
    expect(j.getCursor()).toEqual({ blockNumber: 103, blockHash: "0x103a" });
  });

  it("rejects block numbers that are not non-negative integers", () => {
    const j = journal();
    expect(() => j.setCursor({ blockNumber: -1, blockHash: "0x" })).toThrow(/cursor blockNumber must be an integer >= 0, got -1/);
    expect(() => j.rememberBlock(1.5, "0x")).toThrow(/got 1.5/);
    expect(() => j.rememberBlock(1, "")).toThrow(/block hash must be a non-empty string/);
  });
});

describe("settings", () => {
  it("gets, sets, overwrites and deletes JSON values", () => {
    const j = journal();
    expect(j.getValue("nonce")).toBeUndefined();
    j.setValue("nonce", 7);
    j.setValue("policy", { floorWei: 10n ** 18n, areas: [1, 2] });
    j.setValue("nonce", 8);
    expect(j.getValue("nonce")).toBe(8);
    expect(j.getValue("policy")).toEqual({ floorWei: 10n ** 18n, areas: [1, 2] });
    j.setValue("nonce", undefined);
    expect(j.getValue("nonce")).toBeUndefined();
  });
});

describe("the file", () => {
  it("keeps everything across close and reopen", () => {
    const a = journal();
    a.append({ type: "a", wei: WEI });
    a.appendWithSnapshot({ type: "b" }, (seq) => ({ seq }));
    a.enqueue({ key: "settle:1", kind: "chain.settle", payload: { sessionId: 1n } });
    a.markAttempt("settle:1", { txHash: "0xabc", nonce: 0 });
    a.enqueue({ key: "settle:2", kind: "chain.settle", payload: { sessionId: 2n } });
    a.markDone("settle:2", { block: 12n });
    a.setCursor({ blockNumber: 12, blockHash: "0x12" });
    a.rememberBlock(12, "0x12");
    a.setValue("k", { v: 1n });
    a.close();
    a.close(); // idempotent

    const b = journal();
    expect(b.lastSeq()).toBe(2);
    expect(b.eventsSince(0).map((e) => e.event)).toEqual([{ type: "a", wei: WEI }, { type: "b" }]);
    expect(b.loadSnapshot()).toEqual({ seq: 2, state: { seq: 2 } });
    expect(b.get("settle:1")).toMatchObject({ status: "pending", attempts: 1, txHash: "0xabc", nonce: 0, payload: { sessionId: 1n } });
    expect(b.get("settle:2")).toMatchObject({ status: "done", result: { block: 12n } });
    expect(b.pending().map((i) => i.key)).toEqual(["settle:1"]);
    expect(b.getCursor()).toEqual({ blockNumber: 12, blockHash: "0x12" });
    expect(b.blockHash(12)).toBe("0x12");
    expect(b.getValue("k")).toEqual({ v: 1n });
    expect(b.append({ type: "c" })).toBe(3);
  });

  it("is in WAL mode, as seen by another connection", () => {
    journal().append({ type: "a" });
    const other = new Database(path, { readonly: true });
    try {
      expect(other.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(other.prepare("SELECT COUNT(*) FROM events").pluck().get()).toBe(1);
    } finally {
      other.close();
    }
  });

  it("records schema version 3 and migrates only once", () => {
    expect(SCHEMA_VERSION).toBe(3);
    const j = journal();
    expect(j.schemaVersion()).toBe(3);
    j.close();
    expect(journal().schemaVersion()).toBe(3);
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.prepare("SELECT version FROM schema_version").pluck().all()).toEqual([1, 2, 3]);
    } finally {
      raw.close();
    }
  });

  it("refuses a journal from a newer trustpile", () => {
    journal().close();
    const raw = new Database(path);
    raw.prepare("INSERT INTO schema_version (version, applied_at) VALUES (4, 0)").run();
    raw.close();
    expect(() => journal()).toThrow(/schema version 4, newer than version 3/);
  });

  it("creates a missing directory with mode 0700", () => {
    const nested = join(dir, "var", "lib", "trustpile", "journal.sqlite");
    journal(nested).append({ type: "a" });
    expect(statSync(join(dir, "var", "lib", "trustpile")).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "var")).mode & 0o777).toBe(0o700);
  });

  it("names the path in one sentence when the file is not a SQLite database", () => {
    writeFileSync(path, "this is a config file, not a journal\n".repeat(200));
    let error: unknown;
    try {
      journal();
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RuntimeError);
    const message = (error as Error).message;
    expect(message).toContain(path);
    expect(message).toMatch(/is not a SQLite database or is damaged/);
    expect(message).not.toContain("\n");
  });

  it("names the path when it cannot create the directory", () => {
    writeFileSync(join(dir, "plain-file"), "");
    expect(() => journal(join(dir, "plain-file", "journal.sqlite"))).toThrow(/cannot create the directory .*plain-file for journal/);
  });
});

/**
 * Journal compaction (issue 11 soak: "journal size over time, old rows compacted"). Thousands of sessions are run
 * through the real session core and journaled the way the agent does it (events, a snapshot every 100 events with
 * the older events pruned, outbox rows for authorize, settle and the OCPP transaction messages, all marked done),
 * compacting as the agent does. The journal must stay bounded, keep its dedupe for compacted keys, never touch a
 * pending row, and replay to the live state.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { initialState, step } from "../../../../agent/core/step.ts";
import type { CoreCommand, CoreEvent, CoreState } from "../../../../agent/core/types.ts";
import { readJournalStats, type Journal, type JournalStats, type RetentionPolicy } from "../../../../agent/journal/journal.ts";
import { replayJournal } from "../../../../agent/runtime/agent.ts";
import { coreConfig, sessionTerms } from "../../../helpers/core-fixtures.ts";
import { tempJournals } from "../../../helpers/temp-journals.ts";

const config = coreConfig();

const DAY_MS = 24 * 3_600_000;
const RETENTION: RetentionPolicy = { keepCompletedForMs: 30 * DAY_MS, keepCompletedRows: 500, keepTombstones: 2_000 };
/** Periodic MeterValues per session, as the OCPP queue keys them. */
const METER_VALUES_PER_SESSION = 10;
/** authorize + settle + OCPP start + meter values + stop. */
const OUTBOX_ROWS_PER_SESSION = 3 + METER_VALUES_PER_SESSION + 1;
const SIGNATURE = `0x${"ab".repeat(65)}`;

let nowMs: number;
beforeEach(() => {
  nowMs = 1_796_256_000_000;
});
const journals = tempJournals("trustpile-compaction-", () => nowMs);
const openAt = (name?: string): Journal => journals.open(name);

/** The agent's write path (agent/runtime/agent.ts) without its I/O: step, journal, snapshot + prune, compact. */
class Pile {
  state: CoreState = initialState();
  private controlMs = 0;

  constructor(
    readonly journal: Journal,
    readonly compactEverySeq: number | undefined,
  ) {}

  send(event: Omit<CoreEvent, "atMs" | "controlMs"> & { type: CoreEvent["type"] }): CoreCommand[] {
    this.controlMs += 250;
    nowMs += 250;
    const full = { ...event, atMs: nowMs, controlMs: this.controlMs } as CoreEvent;
    const result = step(config, this.state, full);
    const seq = this.journal.append(full as unknown as { type: string });
    if (seq % 100 === 0) {
      this.journal.saveSnapshot(seq, result.state);
      this.journal.pruneEventsBefore(seq);
      if (this.compactEverySeq !== undefined && seq % this.compactEverySeq === 0) this.journal.compact(RETENTION);
    }
    this.state = result.state;
    for (const command of result.commands) this.execute(command);
    return result.commands;
  }

  execute(command: CoreCommand): void {
    if (command.type === "sendAuthorize") {
      const key = `authorize:${command.sessionId}`;
      this.journal.enqueue({ key, kind: "authorize", payload: { sessionId: command.sessionId } });
      this.journal.markAttempt(key, { txHash: `0x${"11".repeat(32)}`, nonce: 1 });
      this.journal.markDone(key, { outcome: "mined", blockNumber: 12 });
    } else if (command.type === "sendSettle") {
      const key = `settle:${command.total.sessionId}`;
      this.journal.enqueue({ key, kind: "settle", payload: { total: command.total, signature: SIGNATURE } });
      this.journal.markAttempt(key, { txHash: `0x${"22".repeat(32)}`, nonce: 2 });
      this.journal.markDone(key, { outcome: "mined", blockNumber: 20 });
    }
  }

  ocpp(key: string, done = true): void {
    this.journal.enqueue({ key, kind: "ocpp", payload: { key, connectorId: 1, energyWh: 123_456, atMs: nowMs } });
    if (done) this.journal.markDone(key, { transactionId: "17" });
  }

  /** One whole session: deposit, authorize, 10 samples with MeterValues, remote stop, stop reading, settle. */
  session(sessionId: bigint): void {
    this.journal.transaction(() => {
      this.send({ type: "depositSeen", ...sessionTerms(sessionId) } as never);
      this.send({ type: "chainHead", blockNumber: 11 } as never);
      this.send({ type: "authorizeMined", sessionId, txHash: "0xauth" } as never);
      this.send({ type: "relayFeedback", closed: true } as never);
      this.ocpp(`ocpp:start:${sessionId}`);
      for (let i = 0; i < METER_VALUES_PER_SESSION; i++) {
        const energyWh = (this.state.meter.lastEnergyWh ?? 0) + 3;
        this.send({ type: "meterSample", energyWh, powerW: 7_000 } as never);
        this.ocpp(`ocpp:meter:${sessionId}:${nowMs}:Sample.Periodic`);
      }
      this.send({ type: "remoteStop" } as never);
      this.send({ type: "relayFeedback", closed: false } as never);
      for (let i = 0; i < 5; i++) this.send({ type: "meterSample", energyWh: this.state.meter.lastEnergyWh ?? 0, powerW: 0 } as never);
      this.ocpp(`ocpp:stop:${sessionId}`);
      this.send({ type: "settleMined", sessionId, txHash: "0xsettle" } as never);
    });
  }

  start(): void {
    this.send({ type: "startup" } as never);
    this.send({ type: "evPresence", present: true } as never);
    this.send({ type: "meterSample", energyWh: 100_000, powerW: 0 } as never);
  }
}

function runSessions(pile: Pile, from: number, to: number): void {
  for (let id = from; id <= to; id++) pile.session(BigInt(id));
}

describe("journal compaction", () => {
  it("keeps rows and live bytes bounded over 3,000 sessions, keeps compacted keys deduplicated, and replays to the live state", () => {
    const journal = openAt();
    // Compaction every 1,000 events, as the agent does (every 10th snapshot).
    const pile = new Pile(journal, 1_000);
    pile.start();
    // A MeterValues message the CSMS never confirmed: pending work, however old, is never compacted.
    pile.ocpp("ocpp:meter:0:1:Sample.Periodic", false);

    const statsAt = new Map<number, JournalStats>();
    for (const upTo of [1_000, 2_000, 3_000]) {
      runSessions(pile, upTo - 999, upTo);
      journal.compact(RETENTION);
      statsAt.set(upTo, journal.stats());
    }
    expect(pile.state.phase).toBe("idle");

    const last = statsAt.get(3_000)!;
    const snapshotSeq = journal.loadSnapshot()!.seq;
    expect(last.rows).toEqual({
      events: journal.lastSeq() - snapshotSeq + 1,
      snapshot: 1,
      // The newest 500 completed rows, plus the pending one.
      outbox: RETENTION.keepCompletedRows + 1,
      outbox_tombstones: RETENTION.keepTombstones,
      chain_cursor: 0,
      chain_blocks: 0,
      settings: 0,
      auction_bids: 0,
      schema_version: 3,
    });
    expect(last.rows.events).toBeLessThanOrEqual(100);
    // 3,000 sessions wrote 42,000 outbox rows; what is left no longer depends on how many sessions ran.
    expect(journal.get(`settle:3000`)?.status).toBe("done");
    for (const upTo of [1_000, 2_000]) expect(statsAt.get(upTo)!.rows).toEqual(last.rows);
    // Steady state: the pages freed by compaction are reused, so live bytes stop growing.
    const live = [1_000, 2_000, 3_000].map((upTo) => statsAt.get(upTo)!.liveBytes);
    console.log(`journal live bytes after 1,000 / 2,000 / 3,000 sessions: ${live.join(" / ")}; file ${last.fileBytes}, WAL ${last.walBytes}`);
    // Measured (better-sqlite3 12, 4 KiB pages): 454,656 / 462,848 / 462,848 bytes, against ~13 MB of rows written.
    expect(live[2]).toBe(live[1]);
    expect(live[1]).toBeLessThanOrEqual(live[0]! + 2 * 4096);
    expect(last.liveBytes).toBeLessThanOrEqual(512 * 1024);
    expect(last.fileBytes).toBeGreaterThanOrEqual(last.liveBytes);
    expect(last.walBytes).toBeLessThanOrEqual(4 * 1024 * 1024 + 64 * 1024);

    // The pending row survived every compaction.
    expect(journal.pending("ocpp").map((item) => item.key)).toEqual(["ocpp:meter:0:1:Sample.Periodic"]);

    // A compacted key is final: enqueueing it again (a replayed settle, a rescanned deposit) returns the tombstone
    // and nothing becomes pending.
    const buried = `settle:${3_000 - 100}`;
    expect(journal.get(buried)).toMatchObject({ key: buried, kind: "settle", status: "done", compacted: true, payload: undefined });
    const again = journal.enqueue({ key: buried, kind: "settle", payload: { total: "a different total", signature: SIGNATURE } });
    expect(again).toMatchObject({ status: "done", compacted: true, payload: undefined });
    expect(journal.pending("settle")).toEqual([]);
    expect(() => journal.markAttempt(buried)).toThrow(`outbox item "${buried}" is done; expected a pending item to attempt`);
    expect(() => journal.enqueue({ key: buried, kind: "authorize", payload: {} })).toThrow(
      `outbox key "${buried}" already names a "settle" item; expected kind "settle", got "authorize"`,
    );
    expect(journal.stats().rows.outbox).toBe(RETENTION.keepCompletedRows + 1);
    // Beyond keepTombstones the key is forgotten (documented at compact(): the chain's AlreadySettled is the guard).
    expect(journal.get("settle:1")).toBeUndefined();

    // Replay (snapshot + the events after it) rebuilds exactly the live state, also from a reopened file.
    expect(replayJournal(journal, config).state).toEqual(pile.state);
    journal.close();
    expect(replayJournal(openAt(), config).state).toEqual(pile.state);
  }, 120_000);

  it("drops completed rows older than keepCompletedForMs, then hands the freed pages back to the file system", () => {
    const journal = openAt();
    const pile = new Pile(journal, undefined);
    pile.start();
    runSessions(pile, 1, 300);
    pile.ocpp("ocpp:stop:301", false);
    expect(journal.compact(RETENTION)).toEqual({ outboxRows: 300 * OUTBOX_ROWS_PER_SESSION - RETENTION.keepCompletedRows, tombstones: 300 * OUTBOX_ROWS_PER_SESSION - RETENTION.keepCompletedRows - RETENTION.keepTombstones, releasedPages: expect.any(Number) });
    const before = journal.stats();
    expect(before.rows.outbox).toBe(RETENTION.keepCompletedRows + 1);

    nowMs += 30 * DAY_MS + 1;
    const result = journal.compact(RETENTION);
    expect(result.outboxRows).toBe(RETENTION.keepCompletedRows);
    const after = journal.stats();
    expect(after.rows.outbox).toBe(1);
    expect(journal.pending().map((item) => item.key)).toEqual(["ocpp:stop:301"]);
    expect(after.rows.outbox_tombstones).toBe(RETENTION.keepTombstones);
    // New journals use incremental auto-vacuum: a purge shrinks the file, keeping an eighth of it as slack.
    expect(result.releasedPages).toBeGreaterThan(0);
    expect(after.fileBytes).toBeLessThan(before.fileBytes);
    expect(after.fileBytes - after.liveBytes).toBeLessThanOrEqual(after.fileBytes / 4);
  }, 60_000);

  it("reads the same stats read-only from another connection, as the soak does with its agent's file", () => {
    const journal = openAt();
    const pile = new Pile(journal, undefined);
    pile.start();
    runSessions(pile, 1, 50);
    journal.compact(RETENTION);
    const own = journal.stats();
    expect(own.rows.outbox).toBe(RETENTION.keepCompletedRows);
    expect(own.rows.outbox_tombstones).toBe(50 * OUTBOX_ROWS_PER_SESSION - RETENTION.keepCompletedRows);
    expect(readJournalStats(journals.path("journal.sqlite"))).toEqual(own);
    const missing = journals.path("nothing.sqlite");
    expect(() => readJournalStats(missing)).toThrow(`cannot open journal ${missing}`);
  });

  it("refuses a retention that is not a count, naming it", () => {
    const journal = openAt();
    expect(() => journal.compact({ keepCompletedRows: -1 })).toThrow(/retention keepCompletedRows must be an integer >= 0, got -1/);
  });
});

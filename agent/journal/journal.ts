/**
 * The agent's write-ahead journal (DESIGN §3): one SQLite file in WAL mode holding
 *
 * - events: every input to the session core, numbered by `seq`, written and fsync'd before the commands the core
 *   returns for it run. The caller's order is: `append(event)` (returns once durable) -> run the commands. A crash
 *   between the two replays the event on start and re-derives the commands; a crash before `append` returns means
 *   the commands never ran.
 * - a state snapshot: replay = `loadSnapshot()` + `eventsSince(snapshot.seq)`.
 * - the outbox: commands with side effects outside the pile (chain txs, OCPP transaction messages), keyed by an
 *   idempotency key ("settle:42"). As in MicroOcpp's transaction store, each row tracks the request, the attempts
 *   (count, last time, last tx hash and nonce) and the confirmation, and every change is committed on its own, so
 *   after a crash a `done` row is never sent again and a `pending` one is retried under the same key.
 * - the chain cursor and recent block hashes for reorg detection, and a small key/value store for settings.
 * - the bidder's auction bids (schema 2): one row per invitation the pile bids in, holding the sealed bid (price,
 *   power, salt, commitment) written before its commit transaction is queued, so a restart can still reveal it.
 * - outbox tombstones (schema 3): the key, kind and outcome of each outbox row `compact()` deleted (see there).
 *
 * Every write method is one committed transaction; `transaction(fn)` groups several (nested calls become savepoints).
 */
import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { RuntimeError } from "../errors.ts";
import { decodeJson, encodeJson } from "./json.ts";

/** The schema version this code writes; `openJournal` migrates older journals forward to it. */
export const SCHEMA_VERSION = 3;

export interface JournalEventInput {
  type: string;
  [key: string]: unknown;
}

export interface JournalEvent {
  seq: number;
  type: string;
  /** Journal clock (ms since the epoch) when the event was appended. */
  recordedAt: number;
  /** The event as appended, `type` included, bigints restored. */
  event: JournalEventInput;
}

export type OutboxStatus = "pending" | "done" | "failed";

export interface OutboxItem {
  /** Idempotency key, e.g. "settle:42": one command, however often it is enqueued or tried. */
  key: string;
  kind: string;
  payload: unknown;
  /** `pending` is retried; `done` and `failed` are final and never sent again. */
  status: OutboxStatus;
  attempts: number;
  lastAttemptAt: number | undefined;
  /** The most recent tx hash / nonce any attempt reported; an attempt without one keeps the previous. */
  txHash: string | undefined;
  nonce: number | undefined;
  /** What the most recent attempt reported, if anything. */
  note: string | undefined;
  result: unknown;
  failure: string | undefined;
  createdAt: number;
  /** When the item became `done` or `failed`. */
  completedAt: number | undefined;
  /**
   * Set on an item `compact()` reduced to its tombstone: key, kind, status and completedAt remain; payload, result,
   * attempts and tx details are gone. Still final: enqueue returns it and nothing sends it again.
   */
  compacted?: true;
}

/**
 * How much finished outbox history `compact()` keeps whole. A completed row stays while it is both younger than
 * `keepCompletedForMs` and among the newest `keepCompletedRows`: the age rule keeps what an owner looks back at (the
 * last month of sessions for diagnostics), the count rule bounds the file whatever the pace (an accelerated soak, a
 * public pile at 50 sessions a day) and whatever the wall clock says (rows stamped in 1970 by a board without RTC).
 */
export interface RetentionPolicy {
  keepCompletedForMs: number;
  keepCompletedRows: number;
  /** Tombstones kept, newest first; each costs about 90 bytes (the key twice: row and unique index). */
  keepTombstones: number;
}

/**
 * 30 days; 5,000 completed rows (about 250 sessions at their usual ~20 outbox rows: authorize, settle, OCPP start,
 * stop and periodic meter values; ~1.7 MB); 20,000 tombstones (about 1,000 further sessions, a year or more of a
 * home pile; ~1.8 MB). Measured: 3,000 sessions of 14 rows each leave 3.4 MB live instead of 10.7 MB and growing.
 */
export const DEFAULT_RETENTION: RetentionPolicy = Object.freeze({
  keepCompletedForMs: 30 * 24 * 3_600_000,
  keepCompletedRows: 5_000,
  keepTombstones: 20_000,
});

export interface CompactionResult {
  /** Completed outbox rows deleted (each leaving a tombstone). */
  outboxRows: number;
  /** The oldest tombstones dropped beyond `keepTombstones`. */
  tombstones: number;
  /** Free pages handed back to the filesystem (files created with incremental auto-vacuum only). */
  releasedPages: number;
}

/** The journal's tables, as `stats().rows` counts them. */
export const JOURNAL_TABLES = [
  "events",
  "snapshot",
  "outbox",
  "outbox_tombstones",
  "chain_cursor",
  "chain_blocks",
  "settings",
  "auction_bids",
  "schema_version",
] as const;
export type JournalTable = (typeof JOURNAL_TABLES)[number];

export interface JournalStats {
  /** The database file as SQLite sizes it: page_count × page_size (the WAL not included). */
  fileBytes: number;
  /** Pages in use: (page_count − freelist_count) × page_size; free pages are reused before the file grows. */
  liveBytes: number;
  /** The write-ahead log's size on disk (0 in memory); truncated to 4 MiB at checkpoints. */
  walBytes: number;
  rows: Record<JournalTable, number>;
}

/** The bidder's record of one invitation; `entry` is the bidder's own JSON (agent/bidder), bigints allowed. */
export interface AuctionBidRow {
  invitationId: bigint;
  /** `active` until the bidder has nothing left to do for the invitation (bond back, outcome reported). */
  status: "active" | "finished";
  entry: unknown;
  updatedAt: number;
}

export interface ChainCursor {
  blockNumber: number;
  blockHash: string;
}

export interface JournalOptions {
  /** ms since the epoch for `recordedAt`, `createdAt`, …; defaults to `Date.now`. */
  clock?: () => number;
  /**
   * "full" (default) fsyncs the WAL at every commit. "normal" exists only so bench/journal.ts can measure what
   * durability costs; the agent never sets it (see the comment at `openJournal`).
   */
  synchronous?: "full" | "normal";
}

export interface Journal {
  readonly path: string;
  schemaVersion(): number;

  /** Durably appends one event; returns its seq (strictly increasing, never reused). */
  append(event: JournalEventInput): number;
  /** Appends `event` and stores `computeState(seq)` as the snapshot at that seq, in one transaction. */
  appendWithSnapshot(event: JournalEventInput, computeState: (seq: number) => unknown): number;
  /** Events with seq > `seq`, oldest first; at most `limit` of them. */
  eventsSince(seq: number, limit?: number): JournalEvent[];
  /** The highest seq ever assigned, 0 for a new journal. */
  lastSeq(): number;
  /** Deletes events with seq < `seq`; only events the snapshot already covers may go. Returns how many went. */
  pruneEventsBefore(seq: number): number;

  /** Replaces the snapshot; `seq` is the last event `state` includes (0 for none) and must already be journaled. */
  saveSnapshot(seq: number, state: unknown): void;
  loadSnapshot(): { seq: number; state: unknown } | undefined;

  /** Adds a pending item, or returns the existing row for `key` unchanged (first payload wins). */
  enqueue(item: { key: string; kind: string; payload: unknown }): OutboxItem;
  /** Pending items, oldest first, optionally of one kind. */
  pending(kind?: string): OutboxItem[];
  /**
   * Records an attempt on a pending item. Call it before the side effect leaves the pile (a signed tx's hash and
   * nonce are known before broadcast), so that after a crash the retry looks for that tx instead of sending blindly.
   */
  markAttempt(key: string, details?: { txHash?: string; nonce?: number; note?: string }): OutboxItem;
  /** Final success; a second call keeps the first result. */
  markDone(key: string, result?: unknown): OutboxItem;
  /** Final failure, never retried; a second call keeps the first reason. */
  markFailed(key: string, reason: string): OutboxItem;
  get(key: string): OutboxItem | undefined;

  setCursor(cursor: ChainCursor): void;
  getCursor(): ChainCursor | undefined;
  /** Stores (or replaces, after a reorg) the hash of block `blockNumber`. */
  rememberBlock(blockNumber: number, blockHash: string): void;
  blockHash(blockNumber: number): string | undefined;
  /** Forgets hashes of blocks above `blockNumber` (reorged away); returns how many. The cursor is the caller's. */
  forgetBlocksAfter(blockNumber: number): number;
  /** Forgets hashes of blocks below `blockNumber` (deeper than any reorg we check); returns how many. */
  pruneBlocksBefore(blockNumber: number): number;

  getValue(key: string): unknown;
  /** Stores a JSON value (bigints allowed); `undefined` deletes the key. */
  setValue(key: string, value: unknown): void;

  /** Stores (or replaces) the bidder's entry for an invitation; durable when it returns. */
  saveAuctionBid(invitationId: bigint, status: AuctionBidRow["status"], entry: unknown): void;
  auctionBid(invitationId: bigint): AuctionBidRow | undefined;
  /** Entries with status `active`, oldest invitation first: what a restarted bidder resumes. */
  activeAuctionBids(): AuctionBidRow[];
  /**
   * Deletes `finished` entries beyond the `keep` with the highest invitation ids (invitation ids grow on chain; the
   * wall clock of a board without RTC does not order anything). Active entries are never touched. Returns how many.
   */
  pruneFinishedAuctionBids(keep: number): number;

  /**
   * Deletes finished outbox rows beyond `policy` (DEFAULT_RETENTION for what is not given), keeping a tombstone of
   * each key, in one transaction. Pending rows are never touched. Cheap when there is nothing to do.
   */
  compact(policy?: Partial<RetentionPolicy>): CompactionResult;
  /** Sizes and row counts, for the soak's "journal size over time" and for operators. */
  stats(): JournalStats;

  /** Runs `fn` as one transaction (synchronous only): all of its journal writes commit together or not at all. */
  transaction<T>(fn: () => T): T;
  close(): void;
}

/**
 * Forward migrations; entry i takes the schema from version i to i + 1. Never edit a released entry: a pile in the
 * field has already run it. STRICT tables make SQLite reject a value of the wrong type instead of storing it.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE events (
    -- AUTOINCREMENT: a seq is never reused, even after pruneEventsBefore or a rolled-back tail.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL CHECK (length(type) > 0),
    payload TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    state TEXT,
    saved_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE CHECK (length(key) > 0),
    kind TEXT NOT NULL CHECK (length(kind) > 0),
    payload TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at INTEGER,
    tx_hash TEXT,
    nonce INTEGER CHECK (nonce >= 0),
    note TEXT,
    result TEXT,
    failure TEXT,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    CHECK ((status = 'pending') = (completed_at IS NULL))
  ) STRICT;
  CREATE INDEX outbox_pending ON outbox (kind, id) WHERE status = 'pending';

  CREATE TABLE chain_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    block_number INTEGER NOT NULL CHECK (block_number >= 0),
    block_hash TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE chain_blocks (
    number INTEGER PRIMARY KEY CHECK (number >= 0),
    hash TEXT NOT NULL
  ) STRICT;

  CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  `,
  `
  CREATE TABLE auction_bids (
    -- Decimal text: invitation ids are uint256 on chain.
    invitation_id TEXT PRIMARY KEY CHECK (invitation_id GLOB '[0-9]*'),
    status TEXT NOT NULL CHECK (status IN ('active', 'finished')),
    entry TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX auction_bids_active ON auction_bids (status) WHERE status = 'active';
  `,
  `
  -- What compact() leaves of a deleted done/failed outbox row: enough for enqueue to refuse the key for good.
  CREATE TABLE outbox_tombstones (
    -- Insertion order: the oldest tombstones are the first dropped.
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE CHECK (length(key) > 0),
    kind TEXT NOT NULL CHECK (length(kind) > 0),
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    completed_at INTEGER NOT NULL
  ) STRICT;
  `,
];

interface AuctionBidDbRow {
  invitation_id: string;
  status: AuctionBidRow["status"];
  entry: string;
  updated_at: number;
}

function toAuctionBid(row: AuctionBidDbRow): AuctionBidRow {
  return { invitationId: BigInt(row.invitation_id), status: row.status, entry: decodeJson(row.entry), updatedAt: row.updated_at };
}

interface EventRow {
  seq: number;
  type: string;
  payload: string;
  recorded_at: number;
}

interface OutboxRow {
  key: string;
  kind: string;
  payload: string | null;
  status: OutboxStatus;
  attempts: number;
  last_attempt_at: number | null;
  tx_hash: string | null;
  nonce: number | null;
  note: string | null;
  result: string | null;
  failure: string | null;
  created_at: number;
  completed_at: number | null;
}

const OUTBOX_COLUMNS =
  "key, kind, payload, status, attempts, last_attempt_at, tx_hash, nonce, note, result, failure, created_at, completed_at";

const WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024;

/** The SQLite result codes that mean "this file is not a journal we can read", as opposed to access problems. */
const DAMAGED_CODES = /^SQLITE_(NOTADB|CORRUPT)/;

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function encodeOptional(value: unknown): string | null {
  return value === undefined ? null : encodeJson(value);
}

function decodeOptional(text: string | null): unknown {
  return text === null ? undefined : decodeJson(text);
}

function orUndefined<T>(value: T | null): T | undefined {
  return value === null ? undefined : value;
}

interface TombstoneRow {
  key: string;
  kind: string;
  status: "done" | "failed";
  completed_at: number;
}

function tombstoneItem(row: TombstoneRow): OutboxItem {
  return {
    key: row.key,
    kind: row.kind,
    payload: undefined,
    status: row.status,
    attempts: 0,
    lastAttemptAt: undefined,
    txHash: undefined,
    nonce: undefined,
    note: undefined,
    result: undefined,
    failure: undefined,
    createdAt: row.completed_at,
    completedAt: row.completed_at,
    compacted: true,
  };
}

function requireRetention(path: string, policy: RetentionPolicy): void {
  for (const name of ["keepCompletedForMs", "keepCompletedRows", "keepTombstones"] as const) {
    requireSafeInteger(path, `retention ${name}`, policy[name]);
  }
}

function toItem(row: OutboxRow): OutboxItem {
  return {
    key: row.key,
    kind: row.kind,
    payload: decodeOptional(row.payload),
    status: row.status,
    attempts: row.attempts,
    lastAttemptAt: orUndefined(row.last_attempt_at),
    txHash: orUndefined(row.tx_hash),
    nonce: orUndefined(row.nonce),
    note: orUndefined(row.note),
    result: decodeOptional(row.result),
    failure: orUndefined(row.failure),
    createdAt: row.created_at,
    completedAt: orUndefined(row.completed_at),
  };
}

function createDirectory(path: string, directory: string): void {
  try {
    // 0700: the journal holds the owner's sessions and money flows; only the agent's user reads it.
    mkdirSync(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new RuntimeError(
      `cannot create the directory ${directory} for journal ${path} (${errorMessage(error)}); expected a writable location such as dataDir`,
      { cause: error },
    );
  }
}

function describeOpenError(path: string, error: unknown): Error {
  if (error instanceof RuntimeError) return error;
  const code = errorCode(error);
  const message = errorMessage(error);
  if (code !== undefined && DAMAGED_CODES.test(code)) {
    return new RuntimeError(
      `journal ${path} is not a SQLite database or is damaged (${message}); restore it from a backup or move it aside to start an empty journal`,
      { cause: error },
    );
  }
  return new RuntimeError(`cannot open journal ${path} (${message}); expected a readable and writable SQLite file`, {
    cause: error,
  });
}

function migrate(db: Database.Database, path: string, clock: () => number): number {
  db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT");
  const readVersion = db.prepare<[], number | null>("SELECT MAX(version) FROM schema_version").pluck();
  const current = readVersion.get() ?? 0;
  if (current > MIGRATIONS.length) {
    throw new RuntimeError(
      `journal ${path} has schema version ${current}, newer than version ${MIGRATIONS.length} that this trustpile understands; expected a journal written by this or an older version`,
    );
  }
  const record = db.prepare("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)");
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    const sql = MIGRATIONS[version - 1] as string;
    // One transaction per step: a crash mid-migration leaves the previous version intact, and the next start redoes it.
    db.transaction(() => {
      db.exec(sql);
      record.run(version, Math.trunc(clock()));
    })();
  }
  return readVersion.get() ?? 0;
}

function requireSafeInteger(path: string, name: string, value: number, min = 0): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RuntimeError(`journal ${path}: ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}

function requireText(path: string, name: string, value: unknown): asserts value is string {
  if (typeof value !== "string" || value.length === 0) {
    throw new RuntimeError(`journal ${path}: ${name} must be a non-empty string, got ${JSON.stringify(value) ?? String(value)}`);
  }
}

function statsOf(conn: Database.Database, path: string | undefined): JournalStats {
  const pageSize = conn.pragma("page_size", { simple: true }) as number;
  const pageCount = conn.pragma("page_count", { simple: true }) as number;
  const free = conn.pragma("freelist_count", { simple: true }) as number;
  const tables = new Set(conn.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all());
  // A table an older schema lacks counts 0 (readJournalStats on a journal not migrated yet).
  const count = (table: JournalTable): number =>
    tables.has(table) ? (conn.prepare<[], number>(`SELECT COUNT(*) FROM ${table}`).pluck().get() ?? 0) : 0;
  const rows = Object.fromEntries(JOURNAL_TABLES.map((table) => [table, count(table)])) as Record<JournalTable, number>;
  let walBytes = 0;
  if (path !== undefined) {
    try {
      walBytes = statSync(`${path}-wal`).size;
    } catch {
      // no WAL file (yet, or after a clean close)
    }
  }
  return { fileBytes: pageCount * pageSize, liveBytes: (pageCount - free) * pageSize, walBytes, rows };
}

/**
 * `stats()` of a journal another process has open (the soak watches its agent's file): a read-only connection,
 * no migration, no write. Throws a RuntimeError naming the file if it is missing or not a journal.
 */
export function readJournalStats(path: string): JournalStats {
  let conn: Database.Database | undefined;
  try {
    conn = new Database(path, { readonly: true, fileMustExist: true });
    return statsOf(conn, path);
  } catch (error) {
    throw describeOpenError(path, error);
  } finally {
    conn?.close();
  }
}

/**
 * Opens (creating it and its directory if needed) the journal at `path` and migrates it to `SCHEMA_VERSION`.
 *
 * Durability: `synchronous = FULL`, not NORMAL. In WAL mode NORMAL fsyncs the WAL only at checkpoints, so a commit
 * that has returned survives a crash of the process (the kernel still holds the pages) but not a power cut or a
 * kernel panic, which roll back the last commits. A pile loses power more often than a server does (breaker trips,
 * grid faults, the controller on the same supply as the contactor), and the journal's whole contract is that an event
 * is on disk before its commands run: with NORMAL, a power cut could drop the record of energy already delivered,
 * or the `done` of a settle already mined, while the meter register and the chain remember them. FULL pays one fsync
 * per commit (bench/journal.ts measures it); at one meter sample per second that is far inside the budget.
 */
export function openJournal(path: string, options: JournalOptions = {}): Journal {
  const clock = options.clock ?? Date.now;
  const now = (): number => Math.trunc(clock());
  const inMemory = path === ":memory:";
  if (!inMemory) createDirectory(path, dirname(resolve(path)));

  let db: Database.Database | undefined;
  let version: number;
  try {
    db = new Database(path);
    // Only a file without tables can take an auto-vacuum mode (an existing one would need a VACUUM, a full rewrite
    // of the file we do not impose on an SD card): new journals can then hand pages freed by compact() back.
    if (db.pragma("page_count", { simple: true }) === 0) db.pragma("auto_vacuum = INCREMENTAL");
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (!inMemory && mode !== "wal") {
      throw new RuntimeError(
        `journal ${path} cannot use write-ahead logging (SQLite chose journal mode "${String(mode)}"); expected a local filesystem that supports WAL`,
      );
    }
    db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    // A checkpoint resets the WAL but leaves the file at its largest size; this caps what one big transaction (the
    // first compaction of an old journal) leaves on disk.
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    db.pragma("foreign_keys = ON");
    version = migrate(db, path, clock);
  } catch (error) {
    db?.close();
    throw describeOpenError(path, error);
  }
  const conn = db;

  const fail = (message: string): never => {
    throw new RuntimeError(`journal ${path}: ${message}`);
  };

  const stmt = {
    insertEvent: conn.prepare<[string, string, number]>("INSERT INTO events (type, payload, recorded_at) VALUES (?, ?, ?)"),
    eventsSince: conn.prepare<[number, number], EventRow>(
      "SELECT seq, type, payload, recorded_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
    ),
    lastSeq: conn
      .prepare<[], number>("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)")
      .pluck(),
    pruneEvents: conn.prepare<[number]>("DELETE FROM events WHERE seq < ?"),

    saveSnapshot: conn.prepare<[number, string | null, number]>(
      `INSERT INTO snapshot (id, seq, state, saved_at) VALUES (1, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, state = excluded.state, saved_at = excluded.saved_at`,
    ),
    loadSnapshot: conn.prepare<[], { seq: number; state: string | null }>("SELECT seq, state FROM snapshot WHERE id = 1"),

    enqueue: conn.prepare<[string, string, string | null, number]>(
      "INSERT OR IGNORE INTO outbox (key, kind, payload, created_at) VALUES (?, ?, ?, ?)",
    ),
    getItem: conn.prepare<[string], OutboxRow>(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE key = ?`),
    getTombstone: conn.prepare<[string], TombstoneRow>("SELECT key, kind, status, completed_at FROM outbox_tombstones WHERE key = ?"),
    /** The id of the newest completed row beyond the `keepCompletedRows` newest (undefined if there are fewer). */
    completedCutoffId: conn
      .prepare<[number], number>("SELECT id FROM outbox WHERE status != 'pending' ORDER BY id DESC LIMIT 1 OFFSET ?")
      .pluck(),
    buryCompleted: conn.prepare<[number, number]>(
      `INSERT OR REPLACE INTO outbox_tombstones (key, kind, status, completed_at)
       SELECT key, kind, status, completed_at FROM outbox
       WHERE status != 'pending' AND (id <= ? OR completed_at < ?) ORDER BY id`,
    ),
    deleteCompleted: conn.prepare<[number, number]>(
      "DELETE FROM outbox WHERE status != 'pending' AND (id <= ? OR completed_at < ?)",
    ),
    dropOldTombstones: conn.prepare<[number]>(
      "DELETE FROM outbox_tombstones WHERE id <= (SELECT MAX(id) FROM outbox_tombstones) - ?",
    ),
    pendingAll: conn.prepare<[], OutboxRow>(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id`),
    pendingKind: conn.prepare<[string], OutboxRow>(
      `SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' AND kind = ? ORDER BY id`,
    ),
    markAttempt: conn.prepare<[number, string | null, number | null, string | null, string]>(
      `UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, tx_hash = COALESCE(?, tx_hash),
         nonce = COALESCE(?, nonce), note = ?
       WHERE key = ? AND status = 'pending'`,
    ),
    markDone: conn.prepare<[string | null, number, string]>(
      "UPDATE outbox SET status = 'done', result = ?, completed_at = ? WHERE key = ? AND status = 'pending'",
    ),
    markFailed: conn.prepare<[string, number, string]>(
      "UPDATE outbox SET status = 'failed', failure = ?, completed_at = ? WHERE key = ? AND status = 'pending'",
    ),

    setCursor: conn.prepare<[number, string, number]>(
      `INSERT INTO chain_cursor (id, block_number, block_hash, updated_at) VALUES (1, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET block_number = excluded.block_number, block_hash = excluded.block_hash,
         updated_at = excluded.updated_at`,
    ),
    getCursor: conn.prepare<[], { block_number: number; block_hash: string }>(
      "SELECT block_number, block_hash FROM chain_cursor WHERE id = 1",
    ),
    rememberBlock: conn.prepare<[number, string]>(
      "INSERT INTO chain_blocks (number, hash) VALUES (?, ?) ON CONFLICT (number) DO UPDATE SET hash = excluded.hash",
    ),
    blockHash: conn.prepare<[number], string>("SELECT hash FROM chain_blocks WHERE number = ?").pluck(),
    forgetBlocksAfter: conn.prepare<[number]>("DELETE FROM chain_blocks WHERE number > ?"),
    pruneBlocksBefore: conn.prepare<[number]>("DELETE FROM chain_blocks WHERE number < ?"),

    getValue: conn.prepare<[string], string>("SELECT value FROM settings WHERE key = ?").pluck(),
    setValue: conn.prepare<[string, string, number]>(
      `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
    ),
    deleteValue: conn.prepare<[string]>("DELETE FROM settings WHERE key = ?"),

    saveAuctionBid: conn.prepare<[string, string, string, number]>(
      `INSERT INTO auction_bids (invitation_id, status, entry, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (invitation_id) DO UPDATE SET status = excluded.status, entry = excluded.entry, updated_at = excluded.updated_at`,
    ),
    auctionBid: conn.prepare<[string], AuctionBidDbRow>("SELECT invitation_id, status, entry, updated_at FROM auction_bids WHERE invitation_id = ?"),
    /** Numeric order of decimal text: shorter first, then by digits. */
    pruneFinishedAuctionBids: conn.prepare<[number]>(
      `DELETE FROM auction_bids WHERE status = 'finished' AND invitation_id NOT IN (
         SELECT invitation_id FROM auction_bids WHERE status = 'finished'
         ORDER BY length(invitation_id) DESC, invitation_id DESC LIMIT ?)`,
    ),
    activeAuctionBids: conn.prepare<[], AuctionBidDbRow>(
      "SELECT invitation_id, status, entry, updated_at FROM auction_bids WHERE status = 'active' ORDER BY length(invitation_id), invitation_id",
    ),
  };

  function lastSeq(): number {
    return stmt.lastSeq.get() ?? 0;
  }

  function appendRow(event: JournalEventInput): number {
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      fail(`an event must be an object with a "type", got ${event === null ? "null" : typeof event}`);
    }
    requireText(path, "event.type", event.type);
    const { type, ...payload } = event;
    return Number(stmt.insertEvent.run(type, encodeJson(payload), now()).lastInsertRowid);
  }

  function saveSnapshotRow(seq: number, state: unknown): void {
    requireSafeInteger(path, "snapshot seq", seq);
    const last = lastSeq();
    if (seq > last) fail(`snapshot seq ${seq} is beyond the last journaled event ${last}; expected a seq <= ${last}`);
    stmt.saveSnapshot.run(seq, encodeOptional(state), now());
  }

  function loadSnapshot(): { seq: number; state: unknown } | undefined {
    const row = stmt.loadSnapshot.get();
    return row === undefined ? undefined : { seq: row.seq, state: decodeOptional(row.state) };
  }

  function getItem(key: string): OutboxItem | undefined {
    const row = stmt.getItem.get(key);
    if (row !== undefined) return toItem(row);
    const tombstone = stmt.getTombstone.get(key);
    return tombstone === undefined ? undefined : tombstoneItem(tombstone);
  }

  function requireItem(key: string): OutboxItem {
    return getItem(key) ?? fail(`no outbox item with key "${key}"; expected one created by enqueue`);
  }

  const appendWithSnapshot = conn.transaction((event: JournalEventInput, computeState: (seq: number) => unknown) => {
    const seq = appendRow(event);
    saveSnapshotRow(seq, computeState(seq));
    return seq;
  });

  const enqueue = conn.transaction((item: { key: string; kind: string; payload: unknown }): OutboxItem => {
    requireText(path, "outbox key", item.key);
    requireText(path, "outbox kind", item.kind);
    // A compacted key is as final as its row was: re-enqueued (a replayed step, a rescanned deposit, a CSMS retry)
    // it must not come back as a new pending item and go out a second time.
    if (stmt.getTombstone.get(item.key) === undefined) stmt.enqueue.run(item.key, item.kind, encodeOptional(item.payload), now());
    const stored = requireItem(item.key);
    if (stored.kind !== item.kind) {
      fail(`outbox key "${item.key}" already names a "${stored.kind}" item; expected kind "${stored.kind}", got "${item.kind}"`);
    }
    return stored;
  });

  const markAttempt = conn.transaction(
    (key: string, details: { txHash?: string; nonce?: number; note?: string }): OutboxItem => {
      if (details.nonce !== undefined) requireSafeInteger(path, "outbox nonce", details.nonce);
      const changed = stmt.markAttempt.run(now(), details.txHash ?? null, details.nonce ?? null, details.note ?? null, key);
      const item = requireItem(key);
      if (changed.changes === 0) fail(`outbox item "${key}" is ${item.status}; expected a pending item to attempt`);
      return item;
    },
  );

  const markDone = conn.transaction((key: string, result: unknown): OutboxItem => {
    stmt.markDone.run(encodeOptional(result), now(), key);
    const item = requireItem(key);
    if (item.status === "failed") fail(`outbox item "${key}" already failed (${item.failure ?? ""}); expected a pending item to mark done`);
    return item;
  });

  /**
   * Why deleting a finished row is safe. Every reader of the outbox works on pending rows (the tx sender, the OCPP
   * queue); a done or failed row matters only as the answer "already handled" when its key is enqueued again:
   * - `settle:<id>` / `authorize:<id>`: re-enqueued when the session core re-emits the command — a replay of events
   *   already journaled, a deposit re-delivered by a reorg rescan or a catch-up (the core's finishedSessionIds
   *   remembers the last 256 sessions), a restart in phase settling;
   * - `ocpp:*`: re-enqueued when the OCPP model re-derives an intent after a restart;
   * - auction keys: when the bidder resumes an invitation.
   * The tombstone answers that question as the row did, so the dedupe outlives the row. Beyond `keepTombstones`
   * the oldest keys go; by then the session is months in the past, and a key that still came back would meet the
   * chain's own guard (a second settle reverts AlreadySettled and counts as done; authorize of a settled session
   * reverts WrongSessionStatus), while the OCPP model never re-derives a finished session's messages.
   * Pending rows (work not yet done) are never compacted, whatever their age.
   */
  const compact = conn.transaction((policy: RetentionPolicy): CompactionResult => {
    const cutoffId = stmt.completedCutoffId.get(policy.keepCompletedRows) ?? 0;
    const cutoffAt = now() - policy.keepCompletedForMs;
    stmt.buryCompleted.run(cutoffId, cutoffAt);
    const outboxRows = stmt.deleteCompleted.run(cutoffId, cutoffAt).changes;
    const tombstones = stmt.dropOldTombstones.run(policy.keepTombstones).changes;
    return { outboxRows, tombstones, releasedPages: 0 };
  });

  /**
   * Free pages are reused before the file grows, so a journal in its steady state stops growing by itself. With
   * incremental auto-vacuum (new files), a free list above a quarter of the file is trimmed to an eighth: the
   * space a one-off purge freed goes back to the SD card, and the slack left saves refilling it page by page.
   */
  function releaseFreePages(): number {
    if (conn.pragma("auto_vacuum", { simple: true }) !== 2) return 0;
    const pageCount = conn.pragma("page_count", { simple: true }) as number;
    const free = conn.pragma("freelist_count", { simple: true }) as number;
    if (free <= pageCount / 4) return 0;
    const release = free - Math.floor(pageCount / 8);
    conn.pragma(`incremental_vacuum(${release})`);
    return free - (conn.pragma("freelist_count", { simple: true }) as number);
  }

  const markFailed = conn.transaction((key: string, reason: string): OutboxItem => {
    stmt.markFailed.run(reason, now(), key);
    const item = requireItem(key);
    if (item.status === "done") fail(`outbox item "${key}" is already done; expected a pending item to mark failed`);
    return item;
  });

  return {
    path,
    schemaVersion: () => version,

    append: (event) => appendRow(event),
    appendWithSnapshot: (event, computeState) => appendWithSnapshot(event, computeState),
    eventsSince(seq, limit) {
      requireSafeInteger(path, "seq", seq);
      if (limit !== undefined) requireSafeInteger(path, "limit", limit, 1);
      return stmt.eventsSince.all(seq, limit ?? -1).map((row) => ({
        seq: row.seq,
        type: row.type,
        recordedAt: row.recorded_at,
        event: { ...(decodeJson(row.payload) as Record<string, unknown>), type: row.type },
      }));
    },
    lastSeq,
    pruneEventsBefore(seq) {
      requireSafeInteger(path, "seq", seq);
      const covered = loadSnapshot()?.seq ?? 0;
      if (seq > covered + 1) {
        fail(`cannot prune events before seq ${seq}: the snapshot covers only up to ${covered}; expected a seq <= ${covered + 1}`);
      }
      return stmt.pruneEvents.run(seq).changes;
    },

    saveSnapshot: (seq, state) => saveSnapshotRow(seq, state),
    loadSnapshot,

    enqueue: (item) => enqueue(item),
    pending: (kind) => (kind === undefined ? stmt.pendingAll.all() : stmt.pendingKind.all(kind)).map(toItem),
    markAttempt: (key, details = {}) => markAttempt(key, details),
    markDone: (key, result) => markDone(key, result),
    markFailed(key, reason) {
      requireText(path, "failure reason", reason);
      return markFailed(key, reason);
    },
    get: getItem,

    setCursor(cursor) {
      requireSafeInteger(path, "cursor blockNumber", cursor.blockNumber);
      requireText(path, "cursor blockHash", cursor.blockHash);
      stmt.setCursor.run(cursor.blockNumber, cursor.blockHash, now());
    },
    getCursor() {
      const row = stmt.getCursor.get();
      return row === undefined ? undefined : { blockNumber: row.block_number, blockHash: row.block_hash };
    },
    rememberBlock(blockNumber, blockHash) {
      requireSafeInteger(path, "block number", blockNumber);
      requireText(path, "block hash", blockHash);
      stmt.rememberBlock.run(blockNumber, blockHash);
    },
    blockHash(blockNumber) {
      requireSafeInteger(path, "block number", blockNumber);
      return stmt.blockHash.get(blockNumber);
    },
    forgetBlocksAfter(blockNumber) {
      requireSafeInteger(path, "block number", blockNumber);
      return stmt.forgetBlocksAfter.run(blockNumber).changes;
    },
    pruneBlocksBefore(blockNumber) {
      requireSafeInteger(path, "block number", blockNumber);
      return stmt.pruneBlocksBefore.run(blockNumber).changes;
    },

    getValue(key) {
      const text = stmt.getValue.get(key);
      return text === undefined ? undefined : decodeJson(text);
    },
    setValue(key, value) {
      requireText(path, "setting key", key);
      if (value === undefined) stmt.deleteValue.run(key);
      else stmt.setValue.run(key, encodeJson(value), now());
    },

    saveAuctionBid(invitationId, status, entry) {
      if (invitationId < 0n) fail(`auction invitation id must be >= 0, got ${invitationId}`);
      if (status !== "active" && status !== "finished") fail(`auction bid status must be "active" or "finished", got ${JSON.stringify(status)}`);
      stmt.saveAuctionBid.run(invitationId.toString(), status, encodeJson(entry), now());
    },
    auctionBid(invitationId) {
      const row = stmt.auctionBid.get(invitationId.toString());
      return row === undefined ? undefined : toAuctionBid(row);
    },
    activeAuctionBids: () => stmt.activeAuctionBids.all().map(toAuctionBid),
    pruneFinishedAuctionBids(keep) {
      requireSafeInteger(path, "finished auction bids to keep", keep);
      return stmt.pruneFinishedAuctionBids.run(keep).changes;
    },

    compact(policy = {}) {
      const full: RetentionPolicy = { ...DEFAULT_RETENTION, ...policy };
      requireRetention(path, full);
      const result = compact(full);
      return { ...result, releasedPages: releaseFreePages() };
    },
    stats: () => statsOf(conn, inMemory ? undefined : path),

    transaction: (fn) => conn.transaction(fn)(),
    close() {
      if (conn.open) conn.close();
    },
  };
}

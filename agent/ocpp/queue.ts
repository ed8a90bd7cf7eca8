/**
 * The persisted FIFO of transaction messages (DESIGN §3, OCPP 1.6 §4.10 / 2.0.1 E12): Start, Stop and transaction
 * MeterValues are journal outbox rows of kind "ocpp", written in the same journal transaction as the core event
 * they come from, so a `kill -9` never loses one, and sent strictly in order after every (re)connect.
 *
 * As in MicroOcpp's transaction store, the local key (the on-chain session id) is separate from the CSMS's
 * transactionId, which arrives with the StartTransaction reply and is mapped in the journal: messages queued
 * behind a Start wait for it, and carry the right id after a restart.
 *
 * Retries: a message the CSMS answered with an error, or did not answer, counts one attempt; after
 * `TransactionMessageAttempts` it is dropped with a logged error. Being offline counts nothing.
 * Charging and settlement never wait for any of this: the queue only observes the core.
 *
 * Bounded bookkeeping: once a transaction's Stop is final (confirmed, or dropped), nothing will send for it again;
 * its per-transaction settings (agent/ocpp/transaction-keys.ts) are kept for the newest `keepFinishedTransactions`
 * such transactions, for diagnostics, and deleted after. Messages go out strictly in order and a session's messages
 * are all queued before its Stop, so a transaction with messages still pending is never among those retired.
 */
import type { Journal, OutboxItem } from "../journal/journal.ts";
import type { Logger } from "../logging.ts";
import { describeError } from "../errors.ts";
import type { MeterReading, OcppIntent } from "./intents.ts";
import { BEGIN_READING_PREFIX, SESSION_OF_TRANSACTION_PREFIX, TRANSACTION_ID_PREFIX, sessionSettingKeys } from "./transaction-keys.ts";

export const OCPP_OUTBOX_KIND = "ocpp";

/** The intents that travel through the queue (idle clock-aligned values and statuses do not). */
export type TransactionIntent =
  | Extract<OcppIntent, { type: "transactionStarted" | "transactionStopped" }>
  | (Extract<OcppIntent, { type: "meterValues" }> & { sessionId: bigint });

export function isTransactionIntent(intent: OcppIntent): intent is TransactionIntent {
  return intent.type === "transactionStarted" || intent.type === "transactionStopped" || (intent.type === "meterValues" && intent.sessionId !== undefined);
}

export interface QueuedMessage {
  key: string;
  intent: TransactionIntent;
  /** The CSMS's id for the transaction, once its start was confirmed (always set for meter values and stops). */
  transactionId?: string;
  attempts: number;
  /**
   * A Stop's Transaction.Begin reading: its Start's reading, carried by the Stop itself because the Start's outbox
   * row may be compacted before the Stop goes out (or even before it is queued, in a session long enough for
   * keepCompletedRows newer rows to complete). Absent for a Stop queued before this was kept.
   */
  beginReading?: MeterReading;
}

/** What one delivery attempt did. */
export type DeliveryOutcome =
  /** Confirmed by the CSMS; a start's reply carries the transactionId the CSMS assigned. */
  | { kind: "confirmed"; transactionId?: string }
  /** Not connected, or the connection dropped before a reply: not an attempt, try again after reconnecting. */
  | { kind: "offline" }
  /** The CSMS answered with a CallError or did not answer in time: one attempt. */
  | { kind: "failed"; error: string };

export type Deliver = (message: QueuedMessage) => Promise<DeliveryOutcome>;

export interface RetryPolicy {
  /** `TransactionMessageAttempts`: tries before a message is dropped. */
  attempts: number;
  /** `TransactionMessageRetryInterval` in ms: the wait after attempt n is n × this. */
  retryIntervalMs: number;
}

export interface TransactionQueueOptions {
  journal: Journal;
  log: Logger;
  retry: () => RetryPolicy;
  /** Injectable for tests; resolves after `ms`. */
  sleep?: (ms: number) => Promise<void>;
  /** Finished transactions whose settings are kept; default KEEP_FINISHED_TRANSACTIONS. */
  keepFinishedTransactions?: number;
}

/**
 * About as many sessions as the journal keeps whole outbox rows for (DEFAULT_RETENTION.keepCompletedRows 5,000 at
 * ~20 rows a session): DataTransfer sessionInfo answers for those, and older sessions' tx hashes are gone anyway.
 * Each keeps three settings rows (transactionId both ways, deposit tx), ~300 bytes; 750 rows in all.
 */
export const KEEP_FINISHED_TRANSACTIONS = 250;
/** The finished transactions (session ids, oldest first) whose settings are still kept. */
export const FINISHED_TRANSACTIONS_KEY = "ocpp.finishedTransactions";

/** How a Stop is stored in the outbox: the intent plus its Start's reading (see QueuedMessage.beginReading). */
type StoredIntent = TransactionIntent & { beginReading?: MeterReading };

export interface TransactionQueue {
  /** Persists an intent (idempotent per key); call it inside the journal transaction of the step that made it. */
  enqueue(intent: TransactionIntent): void;
  /** Pending messages in send order. */
  pending(): QueuedMessage[];
  transactionIdOf(sessionId: bigint): string | undefined;
  sessionIdOfTransaction(transactionId: string): bigint | undefined;
  /**
   * Sends pending messages in order until the queue is empty or a delivery reports offline. Concurrent calls share
   * one run; a call during a run makes it look again at the end.
   */
  drain(deliver: Deliver): Promise<void>;
  /** Ends waits between retries so `stop()` returns promptly. */
  close(): void;
}

/** The outbox key of a session's Start. */
export function startKeyOf(sessionId: bigint): string {
  return `ocpp:start:${sessionId.toString()}`;
}

function keyOf(intent: TransactionIntent): string {
  const session = intent.sessionId.toString();
  switch (intent.type) {
    case "transactionStarted":
      return startKeyOf(intent.sessionId);
    case "transactionStopped":
      return `ocpp:stop:${session}`;
    case "meterValues":
      return `ocpp:meter:${session}:${intent.reading.atMs}:${intent.context}`;
  }
}

/** Confirmed MeterValues marked done per journal commit during a drain (see runOnce). */
const ACK_BATCH = 100;

export function createTransactionQueue(options: TransactionQueueOptions): TransactionQueue {
  const { journal, log } = options;
  const keepFinished = options.keepFinishedTransactions ?? KEEP_FINISHED_TRANSACTIONS;
  if (!Number.isSafeInteger(keepFinished) || keepFinished < 0) {
    throw new Error(`keepFinishedTransactions must be an integer >= 0, got ${keepFinished}`);
  }
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;
  let wakeUp: (() => void) | undefined;

  function transactionIdOf(sessionId: bigint): string | undefined {
    const value = journal.getValue(TRANSACTION_ID_PREFIX + sessionId.toString());
    return typeof value === "string" ? value : undefined;
  }

  function toMessage(item: OutboxItem): QueuedMessage {
    const { beginReading, ...intent } = item.payload as StoredIntent;
    const transactionId = transactionIdOf(intent.sessionId);
    return {
      key: item.key,
      intent,
      attempts: item.attempts,
      ...(transactionId === undefined ? {} : { transactionId }),
      ...(beginReading === undefined ? {} : { beginReading }),
    };
  }

  /**
   * Queues an intent once per key. A new Start leaves its reading in a setting that outlives any compaction of
   * its row; the Stop takes it over into its own payload (a Start queued before that setting existed is read from
   * its row, if still whole) and the setting goes.
   */
  function enqueueOnce(intent: TransactionIntent): void {
    const key = keyOf(intent);
    if (journal.get(key) !== undefined) return; // queued before (a replayed step): the first payload stands
    const beginKey = BEGIN_READING_PREFIX + intent.sessionId.toString();
    journal.transaction(() => {
      let payload: StoredIntent = intent;
      if (intent.type === "transactionStarted") journal.setValue(beginKey, intent.reading);
      if (intent.type === "transactionStopped") {
        const start = journal.get(startKeyOf(intent.sessionId))?.payload as StoredIntent | undefined;
        const beginReading = (journal.getValue(beginKey) as MeterReading | undefined) ?? (start?.type === "transactionStarted" ? start.reading : undefined);
        if (beginReading !== undefined) payload = { ...intent, beginReading };
        journal.setValue(beginKey, undefined);
      }
      journal.enqueue({ key, kind: OCPP_OUTBOX_KIND, payload });
    });
  }

  /**
   * Called in the journal transaction that makes `sessionId`'s Stop final: adds it to the finished transactions and
   * deletes the settings of those beyond the newest `keepFinished`.
   */
  function retireTransaction(sessionId: bigint): void {
    const stored = journal.getValue(FINISHED_TRANSACTIONS_KEY);
    const finished = Array.isArray(stored) ? stored.filter((id): id is string => typeof id === "string") : [];
    const id = sessionId.toString();
    if (!finished.includes(id)) finished.push(id);
    while (finished.length > keepFinished) {
      const old = finished.shift() as string;
      const transactionId = transactionIdOf(BigInt(old));
      // A CSMS may reuse a transactionId after its own reset: the reverse entry goes only while it names this session.
      if (transactionId !== undefined && journal.getValue(SESSION_OF_TRANSACTION_PREFIX + transactionId) === old) {
        journal.setValue(SESSION_OF_TRANSACTION_PREFIX + transactionId, undefined);
      }
      for (const key of sessionSettingKeys(old)) journal.setValue(key, undefined);
    }
    journal.setValue(FINISHED_TRANSACTIONS_KEY, finished);
  }

  /** Marks a message final (done or failed) and, for a Stop, retires its transaction, in one journal transaction. */
  function finalize(message: QueuedMessage, mark: () => void): void {
    journal.transaction(() => {
      mark();
      if (message.intent.type === "transactionStopped") retireTransaction(message.intent.sessionId);
    });
  }

  function pending(): QueuedMessage[] {
    return journal.pending(OCPP_OUTBOX_KIND).map(toMessage);
  }

  function fields(message: QueuedMessage): Record<string, unknown> {
    return { key: message.key, sessionId: message.intent.sessionId.toString(), transactionId: message.transactionId, attempts: message.attempts };
  }

  async function wait(ms: number): Promise<void> {
    if (closed) return;
    await Promise.race([sleep(ms), new Promise<void>((resolve) => (wakeUp = resolve))]);
    wakeUp = undefined;
  }

  /**
   * One pass over the backlog. Rows are read from the journal once per pass, not once per message (a backlog of
   * 10,000 would otherwise be re-read 10,000 times), and each message's transactionId is looked up when it is
   * sent, since its Start may have been confirmed a moment before. Confirmed MeterValues are marked done in batches
   * of ACK_BATCH per journal commit instead of one fsync each: a crash during a drain may send up to that many
   * MeterValues a second time (the CSMS sees a repeated timestamp), never a Start or a Stop, which are marked
   * done on their own before the next message goes out.
   */
  async function runOnce(deliver: Deliver): Promise<void> {
    let backlog: OutboxItem[] = [];
    const confirmedMeterValues: string[] = [];
    const flushConfirmed = (): void => {
      if (confirmedMeterValues.length === 0) return;
      journal.transaction(() => {
        for (const key of confirmedMeterValues) journal.markDone(key);
      });
      confirmedMeterValues.length = 0;
    };
    try {
      while (!closed) {
        if (backlog.length === 0) {
          // Marks first, so the re-read sees neither the confirmed rows nor misses what was enqueued meanwhile.
          flushConfirmed();
          backlog = journal.pending(OCPP_OUTBOX_KIND);
        }
        const item = backlog.shift();
        if (!item) return;
        const next = toMessage(item);
        const isStart = next.intent.type === "transactionStarted";
        if (!isStart && next.transactionId === undefined) {
          // Its Start was dropped (refused by the CSMS too often): the CSMS has no transaction to attach it to.
          flushConfirmed();
          finalize(next, () => journal.markFailed(next.key, "the transaction's StartTransaction was never confirmed by the CSMS"));
          log.error(fields(next), "ocpp transaction message dropped: its start was never confirmed");
          continue;
        }
        let outcome: DeliveryOutcome;
        try {
          outcome = await deliver(next);
        } catch (error) {
          outcome = { kind: "failed", error: describeError(error) };
        }
        if (outcome.kind === "offline") return;
        if (outcome.kind === "confirmed") {
          if (next.intent.type === "meterValues") {
            confirmedMeterValues.push(next.key);
            if (confirmedMeterValues.length >= ACK_BATCH) flushConfirmed();
            log.debug(fields(next), "ocpp meterValues confirmed");
            continue;
          }
          flushConfirmed();
          finalize(next, () => {
            if (isStart && outcome.transactionId !== undefined) {
              journal.setValue(TRANSACTION_ID_PREFIX + next.intent.sessionId.toString(), outcome.transactionId);
              journal.setValue(SESSION_OF_TRANSACTION_PREFIX + outcome.transactionId, next.intent.sessionId.toString());
            }
            journal.markDone(next.key, outcome.transactionId === undefined ? undefined : { transactionId: outcome.transactionId });
          });
          log.info({ ...fields(next), transactionId: outcome.transactionId ?? next.transactionId }, `ocpp ${next.intent.type} confirmed`);
          continue;
        }
        flushConfirmed();
        const attempt = journal.markAttempt(next.key, { note: outcome.error.slice(0, 500) }).attempts;
        const policy = options.retry();
        if (attempt >= policy.attempts) {
          finalize(next, () => journal.markFailed(next.key, `${attempt} attempts failed, the last: ${outcome.error}`.slice(0, 1000)));
          log.error({ ...fields(next), attempts: attempt, error: outcome.error }, "ocpp transaction message dropped after TransactionMessageAttempts");
          continue;
        }
        log.warn({ ...fields(next), attempts: attempt, error: outcome.error }, "ocpp transaction message failed; retrying");
        // The failed message goes first again after the wait.
        backlog = [];
        await wait(policy.retryIntervalMs * attempt);
      }
    } finally {
      flushConfirmed();
    }
  }

  return {
    enqueue: enqueueOnce,
    pending,
    transactionIdOf,
    sessionIdOfTransaction(transactionId) {
      const value = journal.getValue(SESSION_OF_TRANSACTION_PREFIX + transactionId);
      return typeof value === "string" ? BigInt(value) : undefined;
    },
    drain(deliver) {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        do {
          again = false;
          await runOnce(deliver);
        } while (again && !closed);
      })().finally(() => (running = undefined));
      return running;
    },
    close() {
      closed = true;
      wakeUp?.();
    },
  };
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openJournal, type Journal } from "../../../../agent/journal/journal.ts";
import { silentLogger } from "../../../../agent/logging.ts";
import { createTransactionQueue, type DeliveryOutcome, type QueuedMessage, type TransactionIntent } from "../../../../agent/ocpp/queue.ts";

const reading = (atMs: number, energyWh: number) => ({ atMs, energyWh, powerW: 7_000, phases: [] });
const start = (sessionId: bigint, meterStartWh: number): TransactionIntent => ({
  type: "transactionStarted",
  sessionId,
  connectorId: 1,
  idTag: sessionId.toString(),
  meterStartWh,
  atMs: 1_000,
  reading: reading(1_000, meterStartWh),
});
const values = (sessionId: bigint, atMs: number, energyWh: number): TransactionIntent => ({
  type: "meterValues",
  sessionId,
  connectorId: 1,
  context: "Sample.Periodic",
  reading: reading(atMs, energyWh),
});
const stop = (sessionId: bigint, meterStopWh: number): TransactionIntent => ({
  type: "transactionStopped",
  sessionId,
  connectorId: 1,
  meterStopWh,
  atMs: 9_000,
  reason: "Local",
  reading: reading(9_000, meterStopWh),
});

let dir: string;
let journal: Journal;
const waits: number[] = [];

function queueOn(j: Journal, attempts = 3) {
  return createTransactionQueue({
    journal: j,
    log: silentLogger(),
    retry: () => ({ attempts, retryIntervalMs: 1_000 }),
    sleep: async (ms) => void waits.push(ms),
  });
}

/** A CSMS stub: records what it was sent; starts get transactionId 100 + n. */
function csms(fail: (message: QueuedMessage) => DeliveryOutcome | undefined = () => undefined) {
  const sent: string[] = [];
  let nextTransactionId = 100;
  const deliver = async (message: QueuedMessage): Promise<DeliveryOutcome> => {
    const failure = fail(message);
    if (failure) return failure;
    const intent = message.intent;
    if (intent.type === "transactionStarted") {
      const transactionId = String(nextTransactionId++);
      sent.push(`start ${intent.sessionId} ${intent.meterStartWh} -> ${transactionId}`);
      return { kind: "confirmed", transactionId };
    }
    if (intent.type === "meterValues") sent.push(`values tx ${message.transactionId} ${intent.reading.energyWh}`);
    else sent.push(`stop tx ${message.transactionId} ${intent.meterStopWh}`);
    return { kind: "confirmed" };
  };
  return { sent, deliver };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ocpp-queue-"));
  journal = openJournal(join(dir, "journal.sqlite"));
  waits.length = 0;
});
afterEach(() => {
  journal.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("transaction queue", () => {
  it("sends in FIFO order, maps the CSMS's transactionId to the session, and never sends a message twice", async () => {
    const queue = queueOn(journal);
    queue.enqueue(start(7n, 5_000));
    queue.enqueue(values(7n, 2_000, 5_010));
    queue.enqueue(values(7n, 3_000, 5_020));
    queue.enqueue(values(7n, 3_000, 5_020)); // the same key again: ignored
    queue.enqueue(stop(7n, 5_030));
    const { sent, deliver } = csms();
    await queue.drain(deliver);
    await queue.drain(deliver);
    expect(sent).toEqual(["start 7 5000 -> 100", "values tx 100 5010", "values tx 100 5020", "stop tx 100 5030"]);
    expect(queue.transactionIdOf(7n)).toBe("100");
    expect(queue.sessionIdOfTransaction("100")).toBe(7n);
    expect(queue.pending()).toEqual([]);
  });

  it("stops at the first offline delivery without counting an attempt, and resumes there", async () => {
    const queue = queueOn(journal);
    queue.enqueue(start(7n, 5_000));
    queue.enqueue(stop(7n, 5_030));
    let online = false;
    const { sent, deliver } = csms(() => (online ? undefined : { kind: "offline" }));
    await queue.drain(deliver);
    expect(sent).toEqual([]);
    expect(queue.pending().map((message) => message.attempts)).toEqual([0, 0]);
    online = true;
    await queue.drain(deliver);
    expect(sent).toEqual(["start 7 5000 -> 100", "stop tx 100 5030"]);
  });

  it("retries a refused message with attempt × TransactionMessageRetryInterval, then drops it and what waits on its start", async () => {
    const queue = queueOn(journal, 3);
    queue.enqueue(start(7n, 5_000));
    queue.enqueue(values(7n, 2_000, 5_010));
    queue.enqueue(stop(7n, 5_030));
    queue.enqueue(start(8n, 6_000));
    const { sent, deliver } = csms((message) =>
      message.intent.type === "transactionStarted" && message.intent.sessionId === 7n ? { kind: "failed", error: "InternalError" } : undefined,
    );
    await queue.drain(deliver);
    expect(waits).toEqual([1_000, 2_000]);
    expect(journal.get("ocpp:start:7")).toMatchObject({ status: "failed", attempts: 3 });
    expect(journal.get("ocpp:stop:7")).toMatchObject({ status: "failed", attempts: 0 });
    expect(sent).toEqual(["start 8 6000 -> 100"]);
  });

  it("keeps queued messages and the transactionId map across a reopened journal", async () => {
    const path = join(dir, "journal.sqlite");
    const first = queueOn(journal);
    first.enqueue(start(7n, 5_000));
    first.enqueue(values(7n, 2_000, 5_010));
    // Only the start goes out before the "reboot".
    const before = csms((message) => (message.intent.type === "transactionStarted" ? undefined : { kind: "offline" }));
    await first.drain(before.deliver);
    first.enqueue(stop(7n, 5_030));
    journal.close();

    journal = openJournal(path);
    const second = queueOn(journal);
    expect(second.pending().map((message) => [message.key, message.transactionId])).toEqual([
      ["ocpp:meter:7:2000:Sample.Periodic", "100"],
      ["ocpp:stop:7", "100"],
    ]);
    const after = csms();
    await second.drain(after.deliver);
    expect(before.sent).toEqual(["start 7 5000 -> 100"]);
    expect(after.sent).toEqual(["values tx 100 5010", "stop tx 100 5030"]);
  });
});

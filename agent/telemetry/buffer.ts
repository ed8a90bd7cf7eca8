/**
 * The telemetry backlog: messages wait here, in the order they were made, until the broker acknowledged them
 * (PUBACK). Bounded by `limit`; when a push would exceed it, one message goes, chosen in this order:
 *
 *   1. the oldest `meter` sample (the next one is a second away);
 *   2. a superseded `state` (retained: only the newest one matters to a subscriber);
 *   3. the oldest `event` of level info;
 *   4. the oldest of the rest (sessions, faults, warnings, the newest state).
 *
 * Messages handed to the broker and not yet acknowledged ("in flight") are never dropped; the publisher keeps
 * their number below the limit. Every operation is O(1) amortized (a reconnect is O(in flight)): a doubly linked
 * list keeps the order, and one FIFO per drop class of the droppable nodes finds the victim without scanning.
 */
import type { TelemetryMessage } from "./types.ts";

export type DropCounts = Partial<Record<TelemetryMessage["kind"], number>>;

/** One buffered message. Opaque to callers apart from `message`. */
export interface BufferEntry {
  readonly message: TelemetryMessage;
}

interface Node extends BufferEntry {
  prev: Node | undefined;
  next: Node | undefined;
  inFlight: boolean;
  live: boolean;
  dropClass: DropClass;
  /** In its class queue (live and not in flight); `slot` tells its current queue entry from stale ones. */
  queued: boolean;
  slot: number;
}

type DropClass = 0 | 1 | 2 | 3;
const METER = 0;
const STATE = 1;
const INFO_EVENT = 2;
const OTHER = 3;

interface Slot {
  node: Node;
  slot: number;
}

/**
 * The droppable nodes of one class, oldest first: live and not in flight. Nodes leave by a flag and their entries
 * are skipped when they reach the head; in-flight nodes re-enter at the front after a lost connection (they are
 * older than every queued node).
 */
class NodeQueue {
  private items: (Slot | undefined)[] = [];
  private head = 0;
  /** Nodes queued now. */
  size = 0;

  push(node: Node): void {
    node.slot += 1;
    node.queued = true;
    this.items.push({ node, slot: node.slot });
    this.size += 1;
  }

  pushFront(node: Node): void {
    node.slot += 1;
    node.queued = true;
    const entry = { node, slot: node.slot };
    if (this.head > 0) this.items[--this.head] = entry;
    else this.items.unshift(entry);
    this.size += 1;
  }

  remove(node: Node): void {
    if (!node.queued) return;
    node.queued = false;
    this.size -= 1;
  }

  oldest(): Node | undefined {
    for (;;) {
      const entry = this.items[this.head];
      if (!entry) break;
      if (entry.node.queued && entry.slot === entry.node.slot) return entry.node;
      this.items[this.head] = undefined;
      this.head += 1;
    }
    this.items = [];
    this.head = 0;
    return undefined;
  }

  /** The oldest node, only if a newer one is queued too (a superseded state). */
  oldestSuperseded(): Node | undefined {
    return this.size >= 2 ? this.oldest() : undefined;
  }

  compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

function dropClassOf(message: TelemetryMessage): DropClass {
  if (message.kind === "meter") return METER;
  if (message.kind === "state") return STATE;
  if (message.kind === "event" && message.payload.includes(',"level":"info",')) return INFO_EVENT;
  return OTHER;
}

export class TelemetryBuffer {
  readonly limit: number;
  private first: Node | undefined;
  private last: Node | undefined;
  /** The first node not in flight: everything before it has been handed to the broker. */
  private cursor: Node | undefined;
  private count = 0;
  private inFlightCount = 0;
  private max = 0;
  private readonly queues: [NodeQueue, NodeQueue, NodeQueue, NodeQueue] = [new NodeQueue(), new NodeQueue(), new NodeQueue(), new NodeQueue()];
  readonly dropped: DropCounts = {};

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`buffer limit must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  /** Messages waiting, in flight included. */
  get size(): number {
    return this.count;
  }

  get maxSize(): number {
    return this.max;
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Messages not yet handed to the broker. */
  get pending(): number {
    return this.count - this.inFlightCount;
  }

  push(message: TelemetryMessage): void {
    const node: Node = { message, prev: this.last, next: undefined, inFlight: false, live: true, dropClass: dropClassOf(message), queued: false, slot: 0 };
    if (this.last) this.last.next = node;
    else this.first = node;
    this.last = node;
    this.cursor ??= node;
    this.count += 1;
    this.queues[node.dropClass].push(node);
    if (this.count > this.limit) this.dropOne();
    if (this.count > this.max) this.max = this.count;
  }

  /** The oldest message not yet handed to the broker, now marked in flight; undefined when there is none. */
  takeNext(): BufferEntry | undefined {
    const node = this.cursor;
    if (!node) return undefined;
    node.inFlight = true;
    this.inFlightCount += 1;
    this.queues[node.dropClass].remove(node);
    this.cursor = node.next;
    return node;
  }

  /** The broker acknowledged `entry`: it leaves the buffer. False if it was no longer there. */
  ack(entry: BufferEntry): boolean {
    const node = entry as Node;
    if (!node.live) return false;
    this.unlink(node);
    return true;
  }

  /** The connection was lost: every unacknowledged message is sent again, in the original order. */
  requeueInFlight(): void {
    let lastInFlight: Node | undefined;
    for (let node = this.first; node && node.inFlight; node = node.next) lastInFlight = node;
    // Back to the front of their class queues, newest first so the oldest ends up in front.
    for (let node = lastInFlight; node; node = node.prev) {
      node.inFlight = false;
      this.queues[node.dropClass].pushFront(node);
    }
    this.inFlightCount = 0;
    this.cursor = this.first;
  }

  /** The buffered messages in order (tests and diagnostics). */
  messages(): TelemetryMessage[] {
    const out: TelemetryMessage[] = [];
    for (let node = this.first; node; node = node.next) out.push(node.message);
    return out;
  }

  private dropOne(): void {
    const victim =
      this.queues[METER].oldest() ??
      this.queues[STATE].oldestSuperseded() ??
      this.queues[INFO_EVENT].oldest() ??
      this.queues[OTHER].oldest() ??
      this.queues[STATE].oldest();
    if (!victim) return; // everything is in flight; the publisher keeps its window below the limit
    this.unlink(victim);
    const kind = victim.message.kind;
    this.dropped[kind] = (this.dropped[kind] ?? 0) + 1;
  }

  private unlink(node: Node): void {
    node.live = false;
    if (node.inFlight) {
      node.inFlight = false;
      this.inFlightCount -= 1;
    }
    if (this.cursor === node) this.cursor = node.next;
    if (node.prev) node.prev.next = node.next;
    else this.first = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.last = node.prev;
    node.prev = undefined;
    // `next` is kept: a cursor parked on an acknowledged node is never left dangling this way, and it costs nothing.
    this.count -= 1;
    const queue = this.queues[node.dropClass];
    queue.remove(node);
    queue.compact();
  }
}

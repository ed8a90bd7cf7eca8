import { describe, expect, it } from "vitest";
import { TelemetryBuffer } from "../../../agent/telemetry/buffer.ts";
import type { TelemetryMessage } from "../../../agent/telemetry/types.ts";
import { mulberry32 } from "../../helpers/prng.ts";

const meter = (n: number): TelemetryMessage => ({ topic: "p/cp/meter", payload: `{"n":${n}}`, retain: false, kind: "meter" });
const state = (n: number): TelemetryMessage => ({ topic: "p/cp/state", payload: `{"n":${n}}`, retain: true, kind: "state" });
const session = (n: number): TelemetryMessage => ({ topic: "p/cp/session", payload: `{"n":${n}}`, retain: false, kind: "session" });
const event = (n: number, level: "fault" | "warning" | "info"): TelemetryMessage => ({
  topic: "p/cp/event",
  payload: JSON.stringify({ ts: "2025-01-01T00:00:00.000Z", level, message: `e${n}`, sessionId: null }),
  retain: false,
  kind: "event",
});
const label = (m: TelemetryMessage): string => `${m.kind}:${m.payload.match(/"(?:n|message)":"?([^",}]+)/)?.[1] ?? "?"}`;

describe("TelemetryBuffer", () => {
  it("keeps push order while below the limit", () => {
    const buffer = new TelemetryBuffer(10);
    [meter(1), state(1), session(1), event(1, "info"), meter(2)].forEach((m) => buffer.push(m));
    expect(buffer.messages().map(label)).toEqual(["meter:1", "state:1", "session:1", "event:e1", "meter:2"]);
    expect(buffer.size).toBe(5);
    expect(buffer.dropped).toEqual({});
  });

  it("drops the oldest meter first, then superseded states, then the oldest info event, then the oldest of the rest", () => {
    const buffer = new TelemetryBuffer(6);
    [session(1), meter(1), state(1), event(1, "info"), meter(2), state(2)].forEach((m) => buffer.push(m));
    buffer.push(event(2, "warning"));
    expect(buffer.messages().map(label)).toEqual(["session:1", "state:1", "event:e1", "meter:2", "state:2", "event:e2"]);
    buffer.push(event(3, "fault"));
    expect(buffer.messages().map(label)).toEqual(["session:1", "state:1", "event:e1", "state:2", "event:e2", "event:e3"]);
    // No meter left: the superseded state goes, the newest state stays.
    buffer.push(session(2));
    expect(buffer.messages().map(label)).toEqual(["session:1", "event:e1", "state:2", "event:e2", "event:e3", "session:2"]);
    // A single state is not superseded: the info event goes.
    buffer.push(session(3));
    expect(buffer.messages().map(label)).toEqual(["session:1", "state:2", "event:e2", "event:e3", "session:2", "session:3"]);
    // Only sessions, faults, warnings and the newest state left: the oldest of those.
    buffer.push(session(4));
    expect(buffer.messages().map(label)).toEqual(["state:2", "event:e2", "event:e3", "session:2", "session:3", "session:4"]);
    buffer.push(event(4, "warning"));
    expect(buffer.messages().map(label)).toEqual(["state:2", "event:e3", "session:2", "session:3", "session:4", "event:e4"]);
    expect(buffer.dropped).toEqual({ meter: 2, state: 1, event: 2, session: 1 });
    expect(buffer.size).toBe(6);
    expect(buffer.maxSize).toBe(6);
  });

  it("drops a new meter sample rather than an older session when no older meter sample is left", () => {
    const buffer = new TelemetryBuffer(3);
    [session(1), session(2), session(3)].forEach((m) => buffer.push(m));
    buffer.push(meter(1));
    expect(buffer.messages().map(label)).toEqual(["session:1", "session:2", "session:3"]);
    expect(buffer.dropped).toEqual({ meter: 1 });
  });

  it("hands messages out in order, removes them only on ack, never drops one in flight, and resends after a requeue", () => {
    const buffer = new TelemetryBuffer(4);
    [meter(1), meter(2), session(1)].forEach((m) => buffer.push(m));
    const first = buffer.takeNext();
    const second = buffer.takeNext();
    expect([first, second].map((e) => label(e!.message))).toEqual(["meter:1", "meter:2"]);
    expect(buffer.inFlight).toBe(2);
    buffer.push(meter(3));
    buffer.push(meter(4)); // full: meter 1 and 2 are in flight, so the oldest droppable meter is 3
    expect(buffer.messages().map(label)).toEqual(["meter:1", "meter:2", "session:1", "meter:4"]);
    expect(buffer.ack(first!)).toBe(true);
    expect(buffer.ack(first!)).toBe(false);
    expect(buffer.size).toBe(3);
    buffer.requeueInFlight(); // connection lost: meter 2 was never acknowledged
    expect(buffer.inFlight).toBe(0);
    const again: string[] = [];
    for (let entry = buffer.takeNext(); entry; entry = buffer.takeNext()) again.push(label(entry.message));
    expect(again).toEqual(["meter:2", "session:1", "meter:4"]);
    expect(buffer.takeNext()).toBeUndefined();
    buffer.push(state(1));
    expect(label(buffer.takeNext()!.message)).toBe("state:1");
  });

  it("never exceeds its limit over 100k mixed pushes, acks and reconnects, and counts every drop", () => {
    const limit = 1_000;
    const buffer = new TelemetryBuffer(limit);
    const random = mulberry32(42);
    const pushed: Record<string, number> = {};
    let acked = 0;
    const inFlight: ReturnType<TelemetryBuffer["takeNext"]>[] = [];
    for (let i = 0; i < 100_000; i++) {
      const r = random();
      const m = r < 0.7 ? meter(i) : r < 0.85 ? state(i) : r < 0.93 ? event(i, "info") : r < 0.97 ? event(i, "warning") : session(i);
      buffer.push(m);
      pushed[m.kind] = (pushed[m.kind] ?? 0) + 1;
      if (buffer.size > limit) throw new Error(`buffer holds ${buffer.size} > ${limit} after push ${i}`);
      // A slow broker: a few messages in flight, acked now and then; an outage every 10k pushes.
      if (i % 3 === 0 && inFlight.length < 16) inFlight.push(buffer.takeNext());
      if (i % 7 === 0 && inFlight.length > 0) {
        const entry = inFlight.shift();
        if (entry && buffer.ack(entry)) acked += 1;
      }
      if (i % 10_000 === 9_999) {
        buffer.requeueInFlight();
        inFlight.length = 0;
      }
    }
    expect(buffer.maxSize).toBe(limit);
    const dropped = Object.values(buffer.dropped).reduce((a, b) => a + (b ?? 0), 0);
    expect(acked + dropped + buffer.size).toBe(100_000);
    // Meters went first: as long as meters were available, sessions and warnings survived.
    expect(buffer.dropped.session ?? 0).toBe(0);
    expect(buffer.dropped.meter).toBeGreaterThan(0);
    const left = buffer.messages();
    expect(left.filter((m) => m.kind === "state").length).toBeLessThanOrEqual(1 + 16);
  });

  it("pushes in about a microsecond when full (the control loop's path)", () => {
    const buffer = new TelemetryBuffer(1_000);
    for (let i = 0; i < 1_000; i++) buffer.push(i % 2 ? session(i) : event(i, "warning"));
    const started = process.hrtime.bigint();
    for (let i = 0; i < 100_000; i++) buffer.push(meter(i));
    const perPushNs = Number(process.hrtime.bigint() - started) / 100_000;
    expect(buffer.size).toBe(1_000);
    expect(buffer.dropped.meter).toBe(100_000);
    // Generous for a loaded CI machine; a scan of the buffer per push would take ~100x longer.
    expect(perPushNs).toBeLessThan(20_000);
  });

  it("stays O(1) per push when a slow broker holds the oldest meter samples in flight", () => {
    const buffer = new TelemetryBuffer(1_000);
    for (let i = 0; i < 1_000; i++) buffer.push(meter(i));
    for (let i = 0; i < 32; i++) buffer.takeNext();
    const started = process.hrtime.bigint();
    for (let i = 0; i < 100_000; i++) buffer.push(meter(1_000 + i));
    const perPushNs = Number(process.hrtime.bigint() - started) / 100_000;
    expect(buffer.size).toBe(1_000);
    expect(buffer.inFlight).toBe(32);
    // The 32 in flight survived; of the rest only the newest remain.
    expect(buffer.messages().slice(0, 33).map(label)).toEqual([...Array.from({ length: 32 }, (_, i) => `meter:${i}`), `meter:${101_000 - 968}`]);
    expect(perPushNs).toBeLessThan(20_000);
  });

  it("refuses a limit that is not a positive integer", () => {
    expect(() => new TelemetryBuffer(0)).toThrow(/positive integer/);
  });
});

import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../hw-sim/clock.ts";
import { Relay } from "../../../hw-sim/relay.ts";

const T0 = 1_000_000;

function setup(switchingDelayMs?: number): { clock: ManualClock; relay: Relay } {
  const clock = new ManualClock(T0);
  return { clock, relay: new Relay(clock, switchingDelayMs === undefined ? {} : { switchingDelayMs }) };
}

describe("relay (contactor with mirror contact)", () => {
  it("closes and opens 20 ms after the coil changes, feedback mirroring the contacts", () => {
    const { clock, relay } = setup();
    relay.command(true);
    clock.advance(19);
    expect(relay.contactsClosed()).toBe(false);
    expect(relay.feedbackClosed()).toBe(false);
    clock.advance(1);
    expect(relay.contactsClosed()).toBe(true);
    expect(relay.feedbackClosed()).toBe(true);
    clock.advance(1_000);
    relay.command(false);
    clock.advance(20);
    expect(relay.contactsClosed()).toBe(false);
    expect(relay.history()).toEqual([
      { atMs: T0 + 20, closed: true },
      { atMs: T0 + 1_040, closed: false },
    ]);
  });

  it("switches at once with a zero delay", () => {
    const { relay } = setup(0);
    relay.command(true);
    expect(relay.contactsClosed()).toBe(true);
    expect(relay.history()).toEqual([{ atMs: T0, closed: true }]);
  });

  it("does not move for a coil pulse shorter than the switching delay", () => {
    const { clock, relay } = setup(20);
    relay.command(true);
    clock.advance(10);
    relay.command(false);
    clock.advance(100);
    expect(relay.history()).toEqual([]);
  });

  it("welded: closes at once and stays closed whatever the command, feedback says closed", () => {
    const { clock, relay } = setup();
    relay.weld();
    expect(relay.contactsClosed()).toBe(true);
    relay.command(true);
    clock.advance(100);
    relay.command(false);
    clock.advance(100);
    expect(relay.contactsClosed()).toBe(true);
    expect(relay.feedbackClosed()).toBe(true);
    expect(relay.state()).toEqual({
      commanded: false,
      contactsClosed: true,
      feedbackClosed: true,
      fault: "welded",
      switchingDelayMs: 20,
    });
    relay.clearFaults();
    clock.advance(20);
    expect(relay.contactsClosed()).toBe(false);
    expect(relay.history()).toEqual([
      { atMs: T0, closed: true },
      { atMs: T0 + 220, closed: false },
    ]);
  });

  it("fail to close: the coil is energized but contacts and feedback stay open until repaired", () => {
    const { clock, relay } = setup();
    relay.failToClose();
    relay.command(true);
    clock.advance(1_000);
    expect(relay.commanded).toBe(true);
    expect(relay.contactsClosed()).toBe(false);
    expect(relay.feedbackClosed()).toBe(false);
    relay.clearFaults();
    clock.advance(20);
    expect(relay.contactsClosed()).toBe(true);
    expect(relay.history()).toEqual([{ atMs: T0 + 1_020, closed: true }]);
  });

  it("fail to close lets closed contacts open, then keeps them open", () => {
    const { clock, relay } = setup();
    relay.command(true);
    clock.advance(20);
    relay.failToClose();
    expect(relay.contactsClosed()).toBe(true);
    relay.command(false);
    clock.advance(20);
    relay.command(true);
    clock.advance(500);
    expect(relay.contactsClosed()).toBe(false);
  });

  it("tells listeners before the contacts move (with the old position) and after", () => {
    const { clock, relay } = setup();
    const seen: string[] = [];
    relay.onWillChange(() => seen.push(`will:${relay.contactsClosed()}@${clock.nowMs() - T0}`));
    relay.onChange(() => seen.push(`did:${relay.contactsClosed()}@${clock.nowMs() - T0}`));
    relay.command(true);
    clock.advance(50);
    expect(seen).toEqual(["will:false@20", "did:true@20"]);
  });

  it("dispose cancels a pending movement", () => {
    const { clock, relay } = setup();
    relay.command(true);
    relay.dispose();
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(100);
    expect(relay.contactsClosed()).toBe(false);
  });
});

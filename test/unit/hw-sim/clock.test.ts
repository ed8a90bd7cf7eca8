import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../hw-sim/clock.ts";

describe("ManualClock", () => {
  it("fires due timers in time order, each at its own due time, including timers they schedule", () => {
    const clock = new ManualClock(100);
    const fired: string[] = [];
    clock.setTimer(30, () => fired.push(`b@${clock.nowMs()}`));
    clock.setTimer(10, () => {
      fired.push(`a@${clock.nowMs()}`);
      clock.setTimer(5, () => fired.push(`a2@${clock.nowMs()}`));
    });
    const cancel = clock.setTimer(20, () => fired.push("cancelled"));
    cancel();
    clock.advance(25);
    expect(fired).toEqual(["a@110", "a2@115"]);
    expect(clock.nowMs()).toBe(125);
    clock.advance(5);
    expect(fired).toEqual(["a@110", "a2@115", "b@130"]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it("refuses to go backwards", () => {
    const clock = new ManualClock(100);
    expect(() => clock.advanceTo(99)).toThrow("ManualClock.advanceTo: expected a time >= 100, got 99");
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });
});

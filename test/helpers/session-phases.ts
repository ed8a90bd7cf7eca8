import { expect } from "vitest";

/**
 * The phases one settled session passes through, as the agent logged them: deposit, authorize, then delivering —
 * "energized" at least once, and "suspended" any number of times (right after authorizing, because the reading
 * that let the contacts close was taken with them open; and whenever a reading under load shows the EV drawing
 * nothing) — then stopping and settling.
 */
export function expectSettledSessionPhases(phases: readonly string[]): void {
  expect(phases.slice(0, 2)).toEqual(["depositPending", "authorizing"]);
  expect(phases.slice(-2)).toEqual(["stopping", "settling"]);
  const delivering = phases.slice(2, -2);
  expect(delivering).toContain("energized");
  expect(delivering.filter((phase) => phase !== "energized" && phase !== "suspended")).toEqual([]);
}

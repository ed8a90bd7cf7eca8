import { describe, expect, it } from "vitest";
import { createSimGpio, type SimGpio } from "../../../../drivers/gpio/sim.ts";
import { testDigitalIn, testDigitalOut } from "../../../helpers/gpio-conformance.ts";

testDigitalOut("sim", async () => {
  const sim = createSimGpio();
  return { open: async (config) => sim.openOutput(config), electricalLevel: (line) => sim.outputLevel(line) };
});

testDigitalIn("sim", async () => {
  const sim = createSimGpio();
  return { open: async (config) => sim.openInput(config), drive: (line, high) => sim.driveInput(line, high) };
});

describe("sim GPIO", () => {
  const outputEdges = (sim: SimGpio, line: number): boolean[] => {
    const levels: boolean[] = [];
    sim.onOutputChange(line, (high) => levels.push(high));
    return levels;
  };

  it("refuses a line opened twice, naming it, and frees it on close", async () => {
    const sim = createSimGpio();
    const relay = sim.openOutput({ line: 17 });
    expect(() => sim.openOutput({ line: 17 })).toThrow("line 17 is already open as an output");
    expect(() => sim.openInput({ line: 17 })).toThrow("line 17 is already open as an output");
    const feedback = sim.openInput({ line: 27 });
    expect(() => sim.openInput({ line: 27 })).toThrow("line 27 is already open as an input");
    await relay.close();
    await feedback.close();
    expect(sim.openInput({ line: 17 }).line).toBe(17);
  });

  it("tells the simulator every electrical change of an output, opening and closing included", async () => {
    const sim = createSimGpio();
    const levels = outputEdges(sim, 17);
    expect(sim.outputLevel(17)).toBe(false); // undriven: reads low
    const relay = sim.openOutput({ line: 17, activeLow: true });
    expect(levels).toEqual([true]); // driven inactive: high
    await relay.write(true);
    await relay.write(true);
    await relay.write(false);
    await relay.write(true);
    await relay.close();
    expect(levels).toEqual([true, false, true, false, true]);
    expect(sim.outputLevel(17)).toBe(true);
  });

  it("an active-high output opened inactive causes no edge (undriven is already low)", async () => {
    const sim = createSimGpio();
    const levels = outputEdges(sim, 5);
    const out = sim.openOutput({ line: 5 });
    await out.write(true);
    expect(levels).toEqual([true]);
  });

  it("stops telling an unsubscribed simulator listener", async () => {
    const sim = createSimGpio();
    const levels: boolean[] = [];
    const stop = sim.onOutputChange(17, (high) => levels.push(high));
    const relay = sim.openOutput({ line: 17 });
    await relay.write(true);
    stop();
    await relay.write(false);
    expect(levels).toEqual([true]);
    expect(sim.outputLevel(17)).toBe(false);
  });

  it("keeps an input's level driven before the agent opens it", async () => {
    const sim = createSimGpio();
    sim.driveInput(22, true);
    expect(await sim.openInput({ line: 22 }).read()).toBe(true);
    sim.driveInput(23, true);
    expect(await sim.openInput({ line: 23, activeLow: true }).read()).toBe(false);
  });

  it("delivers input changes after the call that caused them, in order", async () => {
    const sim = createSimGpio();
    const input = sim.openInput({ line: 27 });
    const levels: boolean[] = [];
    input.watch((active) => levels.push(active));
    sim.driveInput(27, true);
    sim.driveInput(27, false);
    sim.driveInput(27, true);
    expect(levels).toEqual([]); // a relay write never re-enters the agent through simulated feedback
    await Promise.resolve();
    expect(levels).toEqual([true, false, true]);
  });

  it("refuses to drive a line the agent has open as an output", () => {
    const sim = createSimGpio();
    sim.openOutput({ line: 17 });
    expect(() => sim.driveInput(17, true)).toThrow("line 17 is open as an output");
  });

  it("rejects line numbers that are not non-negative integers", () => {
    const sim = createSimGpio();
    expect(() => sim.openOutput({ line: -1 })).toThrow("line -1 is not a line number: expected an integer >= 0");
    expect(() => sim.driveInput(1.5, true)).toThrow("line 1.5 is not a line number");
  });
});

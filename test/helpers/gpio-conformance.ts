/**
 * One conformance suite for every DigitalOut / DigitalIn backend (STYLE §5, unstorage's `testDriver`): the sim,
 * and the onoff adapter over a fake sysfs tree. A harness opens line 17 and reads or drives its electrical level,
 * which is how each test checks polarity: the logical level alone cannot tell a miswired relay.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { DigitalIn, DigitalOut, LineConfig } from "../../drivers/gpio/types.ts";

/** The line every conformance test opens; a harness must accept it. */
export const CONFORMANCE_LINE = 17;

export interface DigitalOutHarness {
  open(config: LineConfig): Promise<DigitalOut>;
  /** The electrical level on chip line `line` now (true = high). */
  electricalLevel(line: number): boolean;
  cleanup?(): Promise<void>;
}

export interface DigitalInHarness {
  open(config: LineConfig): Promise<DigitalIn>;
  /** Wires chip line `line` high or low; only called while the line is open. */
  drive(line: number, electricalHigh: boolean): void | Promise<void>;
  cleanup?(): Promise<void>;
}

const waitOptions = { timeout: 2_000, interval: 5 };

export function testDigitalOut(name: string, setup: () => Promise<DigitalOutHarness>): void {
  describe(`DigitalOut conformance: ${name}`, () => {
    const line = CONFORMANCE_LINE;
    let harness: DigitalOutHarness;
    const open: DigitalOut[] = [];
    const openLine = async (config: LineConfig): Promise<DigitalOut> => {
      const out = await harness.open(config);
      open.push(out);
      return out;
    };

    beforeEach(async () => {
      harness = await setup();
    });
    afterEach(async () => {
      for (const out of open.splice(0)) await out.close();
      await harness.cleanup?.();
    });

    it("starts inactive: reads false and drives the line low", async () => {
      const out = await openLine({ line });
      expect(out.line).toBe(line);
      expect(await out.read()).toBe(false);
      expect(harness.electricalLevel(line)).toBe(false);
    });

    it("starts inactive with activeLow: reads false and drives the line high (relay open at start-up)", async () => {
      const out = await openLine({ line, activeLow: true });
      expect(await out.read()).toBe(false);
      expect(harness.electricalLevel(line)).toBe(true);
    });

    it("reads back what was written and drives it high for active", async () => {
      const out = await openLine({ line, activeLow: false });
      await out.write(true);
      expect([await out.read(), harness.electricalLevel(line)]).toEqual([true, true]);
      await out.write(false);
      expect([await out.read(), harness.electricalLevel(line)]).toEqual([false, false]);
    });

    it("activeLow inverts the electrical level, not the logical one", async () => {
      const out = await openLine({ line, activeLow: true });
      await out.write(true);
      expect([await out.read(), harness.electricalLevel(line)]).toEqual([true, false]);
      await out.write(false);
      expect([await out.read(), harness.electricalLevel(line)]).toEqual([false, true]);
    });

    it("close leaves an active line inactive, and a second close is a no-op", async () => {
      const out = await harness.open({ line, activeLow: true });
      await out.write(true);
      expect(harness.electricalLevel(line)).toBe(false);
      await out.close();
      expect(harness.electricalLevel(line)).toBe(true);
      await expect(out.close()).resolves.toBeUndefined();
      expect(harness.electricalLevel(line)).toBe(true);
    });

    it("write and read after close reject naming the line, and the line stays inactive", async () => {
      const out = await harness.open({ line });
      await out.close();
      await expect(out.write(true)).rejects.toThrow(`line ${line}`);
      await expect(out.read()).rejects.toThrow(`line ${line}`);
      expect(harness.electricalLevel(line)).toBe(false);
    });

    it("opens again after close, inactive", async () => {
      const first = await harness.open({ line });
      await first.write(true);
      await first.close();
      const second = await openLine({ line });
      expect([await second.read(), harness.electricalLevel(line)]).toEqual([false, false]);
      await second.write(true);
      expect(harness.electricalLevel(line)).toBe(true);
    });
  });
}

export function testDigitalIn(name: string, setup: () => Promise<DigitalInHarness>): void {
  describe(`DigitalIn conformance: ${name}`, () => {
    const line = CONFORMANCE_LINE;
    let harness: DigitalInHarness;
    const open: DigitalIn[] = [];
    const openLine = async (config: LineConfig): Promise<DigitalIn> => {
      const input = await harness.open(config);
      open.push(input);
      return input;
    };
    const record = (input: DigitalIn): { levels: boolean[]; stop: () => void } => {
      const levels: boolean[] = [];
      const stop = input.watch((active) => levels.push(active));
      return { levels, stop };
    };

    beforeEach(async () => {
      harness = await setup();
    });
    afterEach(async () => {
      for (const input of open.splice(0)) await input.close();
      await harness.cleanup?.();
    });

    it("reads the electrical level as the logical one when active-high", async () => {
      const input = await openLine({ line });
      expect(input.line).toBe(line);
      await harness.drive(line, true);
      expect(await input.read()).toBe(true);
      await harness.drive(line, false);
      expect(await input.read()).toBe(false);
    });

    it("activeLow inverts: a low line reads active", async () => {
      const input = await openLine({ line, activeLow: true });
      await harness.drive(line, false);
      expect(await input.read()).toBe(true);
      await harness.drive(line, true);
      expect(await input.read()).toBe(false);
    });

    it("watch reports each change once, with the logical level", async () => {
      const input = await openLine({ line });
      await harness.drive(line, false);
      const { levels } = record(input);
      await harness.drive(line, true);
      await vi.waitFor(() => expect(levels).toEqual([true]), waitOptions);
      await harness.drive(line, true); // no change: no report (given time to show up if it were made)
      await new Promise((resolve) => setTimeout(resolve, 30));
      await harness.drive(line, false);
      await vi.waitFor(() => expect(levels).toEqual([true, false]), waitOptions);
      await harness.drive(line, true);
      await vi.waitFor(() => expect(levels).toEqual([true, false, true]), waitOptions);
    });

    it("watch reports logical levels with activeLow", async () => {
      const input = await openLine({ line, activeLow: true });
      await harness.drive(line, true);
      const { levels } = record(input);
      await harness.drive(line, false);
      await vi.waitFor(() => expect(levels).toEqual([true]), waitOptions);
      await harness.drive(line, true);
      await vi.waitFor(() => expect(levels).toEqual([true, false]), waitOptions);
    });

    it("unsubscribing stops that listener only; the same function twice is two subscriptions", async () => {
      const input = await openLine({ line });
      await harness.drive(line, false);
      const stopped = record(input);
      const kept = record(input);
      const twice: boolean[] = [];
      const listener = (active: boolean): void => void twice.push(active);
      const stopFirst = input.watch(listener);
      input.watch(listener);
      stopped.stop();
      stopFirst();
      stopped.stop(); // a second call is harmless
      await harness.drive(line, true);
      await vi.waitFor(() => expect(kept.levels).toEqual([true]), waitOptions);
      expect(twice).toEqual([true]);
      expect(stopped.levels).toEqual([]);
    });

    it("a watch after every listener left starts from the current level", async () => {
      const input = await openLine({ line });
      await harness.drive(line, false);
      const first = record(input);
      await harness.drive(line, true);
      await vi.waitFor(() => expect(first.levels).toEqual([true]), waitOptions);
      first.stop();
      const second = record(input);
      await harness.drive(line, false);
      await vi.waitFor(() => expect(second.levels).toEqual([false]), waitOptions);
      expect(first.levels).toEqual([true]);
    });

    it("close is idempotent; read and watch after close fail naming the line", async () => {
      const input = await harness.open({ line });
      const { stop } = record(input);
      await input.close();
      await expect(input.close()).resolves.toBeUndefined();
      await expect(input.read()).rejects.toThrow(`line ${line}`);
      expect(() => input.watch(() => undefined)).toThrow(`line ${line}`);
      expect(() => stop()).not.toThrow();
    });
  });
}

import { describe, expect, it } from "vitest";
import { createSimGpio } from "../../../drivers/gpio/sim.ts";
import { sdm120 } from "../../../drivers/meters/models/sdm120.ts";
import { createSimBoard, type SimBoardOptions } from "../../../hw-sim/board.ts";
import { ManualClock } from "../../../hw-sim/clock.ts";

const T0 = 1_700_000_000_000;

function setup(options: Partial<SimBoardOptions> = {}) {
  const clock = new ManualClock(T0);
  const gpio = createSimGpio();
  const board = createSimBoard({
    gpio,
    clock,
    ev: { capacityWh: 100_000, socPercent: 10 },
    meter: { voltageNoiseV: 0 },
    ...options,
  });
  return { clock, gpio, board };
}

/** Lets the sim GPIO's queued input listeners run (they fire in a microtask, as on hardware). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("sim board wiring", () => {
  it("closes the contactor 20 ms after the agent's relay output goes active, and power flows to a plugged EV", async () => {
    const { clock, gpio, board } = setup();
    board.ev.plug();
    const relay = gpio.openOutput({ line: 17 });
    await relay.write(true);
    expect(board.relay.commanded).toBe(true);
    expect(board.meterValues().powerW).toBe(0);
    clock.advance(20);
    expect(board.relay.contactsClosed()).toBe(true);
    expect(board.meterValues().powerW).toBe(11_000);
    clock.advance(3_600_000);
    await relay.write(false);
    clock.advance(20);
    expect(board.meterValues().powerW).toBe(0);
    expect(board.meterValues().importEnergyWh).toBe(11_000);
    expect(board.relay.history()).toEqual([
      { atMs: T0 + 20, closed: true },
      { atMs: T0 + 3_600_040, closed: false },
    ]);
  });

  it("drives the feedback line from the mirror contact, which the agent reads and watches", async () => {
    const { clock, gpio } = setup();
    const relay = gpio.openOutput({ line: 17 });
    const feedback = gpio.openInput({ line: 27 });
    const seen: boolean[] = [];
    feedback.watch((active) => seen.push(active));
    expect(await feedback.read()).toBe(false);
    await relay.write(true);
    clock.advance(20);
    await settle();
    expect(await feedback.read()).toBe(true);
    await relay.write(false);
    clock.advance(20);
    await settle();
    expect(await feedback.read()).toBe(false);
    expect(seen).toEqual([true, false]);
  });

  it("shows a welded contactor on the feedback line although the agent releases the coil", async () => {
    const { clock, gpio, board } = setup();
    const relay = gpio.openOutput({ line: 17 });
    const feedback = gpio.openInput({ line: 27 });
    await relay.write(true);
    clock.advance(20);
    board.faults.relayWeld();
    await relay.write(false);
    clock.advance(1_000);
    expect(await feedback.read()).toBe(true);
    expect(board.faults.active().relay).toBe("welded");
  });

  it("shows a contactor that fails to close: coil energized, feedback open, no power", async () => {
    const { clock, gpio, board } = setup();
    board.ev.plug();
    board.faults.relayFailToClose();
    const relay = gpio.openOutput({ line: 17 });
    const feedback = gpio.openInput({ line: 27 });
    await relay.write(true);
    clock.advance(1_000);
    expect(await feedback.read()).toBe(false);
    expect(board.meterValues().powerW).toBe(0);
    board.faults.clear();
    clock.advance(20);
    expect(await feedback.read()).toBe(true);
    expect(board.meterValues().powerW).toBe(11_000);
  });

  it("drives the EV-present line from plug and unplug", async () => {
    const { gpio, board } = setup();
    const present = gpio.openInput({ line: 22 });
    expect(await present.read()).toBe(false);
    board.ev.plug();
    expect(await present.read()).toBe(true);
    board.ev.pause(); // still plugged: pilot B is "present"
    expect(await present.read()).toBe(true);
    board.ev.unplug();
    expect(await present.read()).toBe(false);
  });

  it("honours activeLow per line, as the config's gpio section does", async () => {
    const { clock, gpio, board } = setup({
      lines: {
        relay: { line: 5, activeLow: true },
        feedback: { line: 6, activeLow: true },
        evPresent: { line: 13, activeLow: true },
      },
    });
    // Undriven, an active-low relay line reads low: the coil is energized while no agent drives it.
    expect(board.relay.commanded).toBe(true);
    const relay = gpio.openOutput({ line: 5, activeLow: true });
    expect(gpio.outputLevel(5)).toBe(true);
    expect(board.relay.commanded).toBe(false);
    clock.advance(20);
    const feedback = gpio.openInput({ line: 6, activeLow: true });
    const present = gpio.openInput({ line: 13, activeLow: true });
    board.ev.plug();
    await relay.write(true);
    expect(gpio.outputLevel(5)).toBe(false);
    clock.advance(20);
    expect(await feedback.read()).toBe(true);
    expect(await present.read()).toBe(true);
    expect(board.meterValues().powerW).toBe(11_000);
  });

  it("leaves inputs alone that a config does not wire", () => {
    const { gpio, board } = setup({ lines: { relay: { line: 17 } } });
    expect(board.lines).toEqual({ relay: { line: 17 }, feedback: null, evPresent: null });
    // Line 27 is free for the agent to use as an output: the board never drives it.
    gpio.openOutput({ line: 27 });
    // With feedback wired to 27 this would throw: driveInput refuses a line open as an output.
    expect(() => board.relay.weld()).not.toThrow();
    expect(() => board.ev.plug()).not.toThrow();
    expect(gpio.outputLevel(27)).toBe(false);
  });

  it("refuses one line in two roles, naming both", () => {
    expect(() => setup({ lines: { relay: { line: 17 }, feedback: { line: 17 } } })).toThrow(
      "lines.feedback.line: expected a line distinct from lines.relay.line, got 17 for both",
    );
  });

  it("gives a single-phase supply a single-phase EV (SDM120 table)", () => {
    const { gpio, board } = setup({ meterModel: sdm120 });
    board.ev.plug();
    board.relay.command(true);
    (board.clock as ManualClock).advance(20);
    const values = board.meterValues();
    expect(values.phases).toHaveLength(1);
    expect(values.powerW).toBe(3_680); // 1 × 230 V × 16 A
    expect(board.ev.phases).toBe(1);
  });

  it("sets the Modbus fault switches the meter server reads, and clears them all", () => {
    const { board } = setup();
    board.faults.meterOffline(true);
    board.faults.meterReplyDelayMs(800);
    board.faults.meterCrcErrors(true);
    board.faults.meterException(4);
    board.faults.relayWeld();
    expect(board.modbusFaults).toEqual({ offline: true, replyDelayMs: 800, corruptCrc: true, exceptionCode: 4 });
    expect(board.faults.active()).toEqual({
      meterOffline: true,
      meterReplyDelayMs: 800,
      meterCrcErrors: true,
      meterException: 4,
      relay: "welded",
    });
    board.faults.meterException(undefined);
    expect(board.modbusFaults.exceptionCode).toBeUndefined();
    board.faults.clear();
    expect(board.modbusFaults).toEqual({ offline: false, replyDelayMs: 0, corruptCrc: false });
    expect(board.faults.active().relay).toBe("none");
    expect(() => board.faults.meterException(0)).toThrow("meterException: expected a Modbus exception code 1..255, got 0");
    expect(() => board.faults.meterReplyDelayMs(-1)).toThrow("meterReplyDelayMs: expected an integer ms >= 0, got -1");
  });

  it("resets the energy register on meterEnergyReset", async () => {
    const { clock, gpio, board } = setup({ meter: { voltageNoiseV: 0, importEnergyWh: 2_000_000 } });
    board.ev.plug();
    await gpio.openOutput({ line: 17 }).write(true);
    clock.advance(20 + 360_000);
    expect(board.meterValues().importEnergyWh).toBe(2_001_100);
    board.faults.meterEnergyReset();
    expect(board.meterValues().importEnergyWh).toBe(0);
  });

  it("stops following the GPIO once closed", async () => {
    const { clock, gpio, board } = setup();
    const relay = gpio.openOutput({ line: 17 });
    board.close();
    await relay.write(true);
    clock.advance(100);
    expect(board.relay.commanded).toBe(false);
    expect(clock.pendingTimers()).toBe(0);
  });
});

import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../hw-sim/clock.ts";
import { EvModel, type EvOptions } from "../../../hw-sim/ev.ts";
import { MeterPhysics, type MeterPhysicsOptions } from "../../../hw-sim/meter-physics.ts";
import { Relay } from "../../../hw-sim/relay.ts";

const HOUR_MS = 3_600_000;

function rig(ev: EvOptions = {}, meter: Partial<MeterPhysicsOptions> = {}) {
  const clock = new ManualClock(1_700_000_000_000);
  const relay = new Relay(clock, { switchingDelayMs: 0 });
  const car = new EvModel(clock, { capacityWh: 100_000, socPercent: 10, plugged: true, ...ev });
  const physics = new MeterPhysics(clock, relay, car, { phases: 3, voltageNoiseV: 0, ...meter });
  return { clock, relay, ev: car, physics };
}

describe("meter physics", () => {
  it("counts exactly 11 000 Wh for one hour at 11 kW with the relay closed, and the EV stores it", () => {
    const { clock, relay, ev, physics } = rig();
    relay.command(true);
    clock.advance(HOUR_MS);
    expect(physics.energyWh()).toBe(11_000);
    expect(physics.values().importEnergyWh).toBe(11_000);
    expect(ev.storedEnergyWh()).toBe(21_000);
  });

  it("shows 11 kW split evenly over three phases at a flat 230 V", () => {
    const { relay, physics } = rig();
    relay.command(true);
    expect(physics.values()).toEqual({
      importEnergyWh: 0,
      exportEnergyWh: 0,
      powerW: 11_000,
      frequencyHz: 50,
      phases: [
        { voltageV: 230, currentA: 15.942, powerW: 11_000 / 3 },
        { voltageV: 230, currentA: 15.942, powerW: 11_000 / 3 },
        { voltageV: 230, currentA: 15.942, powerW: 11_000 / 3 },
      ],
    });
  });

  it("loads only L1 with a single-phase EV on a three-phase supply", () => {
    const { relay, physics } = rig({ phases: 1, maxCurrentA: 32 });
    relay.command(true);
    const values = physics.values();
    expect(values.powerW).toBe(7_360);
    expect(values.phases.map((p) => p.powerW)).toEqual([7_360, 0, 0]);
    expect(values.phases.map((p) => p.currentA)).toEqual([32, 0, 0]);
  });

  it("measures no power and no energy with the relay open", () => {
    const { clock, physics } = rig();
    clock.advance(HOUR_MS);
    const values = physics.values();
    expect(values.powerW).toBe(0);
    expect(values.importEnergyWh).toBe(0);
    expect(values.phases.map((p) => p.voltageV)).toEqual([230, 230, 230]);
  });

  it("measures no power with the EV unplugged or paused, and counts only the time it drew", () => {
    const { clock, relay, ev, physics } = rig();
    relay.command(true);
    clock.advance(HOUR_MS / 2); // 5 500 Wh
    ev.pause();
    expect(physics.values().powerW).toBe(0);
    clock.advance(HOUR_MS);
    ev.resume();
    clock.advance(HOUR_MS / 4); // 2 750 Wh
    ev.unplug();
    clock.advance(HOUR_MS);
    expect(physics.values().powerW).toBe(0);
    expect(physics.values().importEnergyWh).toBe(8_250);
  });

  it("integrates each interval at the power that flowed in it, with relay edges between reads", () => {
    const clock = new ManualClock(0);
    const relay = new Relay(clock, { switchingDelayMs: 20 });
    const ev = new EvModel(clock, { capacityWh: 100_000, socPercent: 10, plugged: true });
    const physics = new MeterPhysics(clock, relay, ev, { phases: 3, voltageNoiseV: 0 });
    relay.command(true); // closes at 20 ms
    clock.advance(1_000);
    relay.command(false); // opens at 1 020 ms
    clock.advance(10_000);
    // 11 000 W × 1 000 ms of closed contacts = 11 000 000 W·ms
    expect(physics.energyWh()).toBe(11_000_000 / HOUR_MS);
  });

  it("follows the taper and stops when the battery is full", () => {
    const { clock, relay, ev, physics } = rig({ capacityWh: 50_000, socPercent: 78 });
    relay.command(true);
    clock.advance(12 * HOUR_MS);
    physics.advance(); // integration is lazy: the EV's SoC is current only after the meter has looked
    expect(ev.isFull()).toBe(true);
    expect(ev.pilotState()).toBe("B");
    // Everything from 78 % to 100 % of 50 kWh, and not a Wh more.
    expect(physics.energyWh()).toBeCloseTo(11_000, 6);
    expect(physics.values().importEnergyWh).toBe(11_000);
    expect(physics.values().powerW).toBe(0);
  });

  it("takes longer through the taper than at constant power", () => {
    const { clock, relay, ev, physics } = rig({ capacityWh: 50_000, socPercent: 80 });
    relay.command(true);
    clock.advance(HOUR_MS / 2);
    // At 11 kW flat half an hour would be 5 500 Wh; tapering from 80 % it must be less.
    const energyWh = physics.energyWh();
    expect(energyWh).toBeGreaterThan(3_000);
    expect(energyWh).toBeLessThan(5_500);
    expect(physics.values().powerW).toBe(ev.curvePowerW(ev.storedEnergyWh()));
    expect(physics.values().powerW).toBeLessThan(11_000);
  });

  it("continues from the register value it started with", () => {
    const { clock, relay, physics } = rig({}, { importEnergyWh: 1_234_567 });
    relay.command(true);
    clock.advance(HOUR_MS / 10);
    expect(physics.values().importEnergyWh).toBe(1_235_667);
  });

  it("resetEnergyRegister drops the register to 0, then counts on from there", () => {
    const { clock, relay, physics } = rig({}, { importEnergyWh: 500_000 });
    relay.command(true);
    clock.advance(HOUR_MS / 10);
    expect(physics.values().importEnergyWh).toBe(501_100);
    physics.resetEnergyRegister();
    expect(physics.values().importEnergyWh).toBe(0);
    clock.advance(HOUR_MS / 10);
    expect(physics.values().importEnergyWh).toBe(1_100);
  });

  it("adds seeded voltage noise: same seed and time, same volts; different seed, different volts", () => {
    const a = rig({}, { voltageNoiseV: 1, seed: 7 });
    const b = rig({}, { voltageNoiseV: 1, seed: 7 });
    const c = rig({}, { voltageNoiseV: 1, seed: 8 });
    const voltages = a.physics.voltagesV();
    expect(b.physics.voltagesV()).toEqual(voltages);
    expect(c.physics.voltagesV()).not.toEqual(voltages);
    for (const v of voltages) {
      expect(v).toBeGreaterThanOrEqual(229);
      expect(v).toBeLessThanOrEqual(231);
    }
    // A new value each noise interval, not each read.
    expect(a.physics.voltagesV()).toEqual(voltages);
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      a.clock.advance(1_000);
      seen.add(a.physics.voltagesV()[0] ?? Number.NaN);
    }
    expect(seen.size).toBeGreaterThan(5);
  });

  it("derives current from power and the noisy voltage", () => {
    const { relay, physics } = rig({}, { voltageNoiseV: 2, seed: 3 });
    relay.command(true);
    for (const phase of physics.values().phases) {
      expect(phase.currentA).toBeCloseTo(11_000 / 3 / phase.voltageV, 3);
    }
  });
});

import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../hw-sim/clock.ts";
import { EvModel } from "../../../hw-sim/ev.ts";

const clock = (): ManualClock => new ManualClock(1_700_000_000_000);

describe("EV charge curve", () => {
  it("draws 11 kW on three phases (3 × 230 V × 16 A, capped by an 11 kW on-board charger)", () => {
    const ev = new EvModel(clock(), { plugged: true });
    expect(ev.maxPowerW).toBe(11_000);
    expect(ev.powerDemandW()).toBe(11_000);
  });

  it("draws 7360 W on one phase at 32 A, and 3 × 230 V × 16 A = 11 040 W without a charger cap", () => {
    expect(new EvModel(clock(), { plugged: true, phases: 1, maxCurrentA: 32 }).powerDemandW()).toBe(7_360);
    expect(new EvModel(clock(), { plugged: true, onboardChargerW: 22_000 }).powerDemandW()).toBe(11_040);
  });

  it("holds full power up to 80 % and tapers linearly to 10 % of it just before full", () => {
    const ev = new EvModel(clock(), { capacityWh: 50_000 });
    expect(ev.curvePowerW(0)).toBe(11_000);
    expect(ev.curvePowerW(40_000)).toBe(11_000); // 80 %
    expect(ev.curvePowerW(45_000)).toBe(6_050); // 90 %: halfway from 11 000 to 1 100
    expect(ev.curvePowerW(47_500)).toBe(3_575); // 95 %
    expect(ev.curvePowerW(49_999)).toBeCloseTo(1_100.99, 2);
    expect(ev.curvePowerW(50_000)).toBe(0);
  });

  it("follows a custom taper start and end power", () => {
    const ev = new EvModel(clock(), { capacityWh: 40_000, taperStartPercent: 50, taperEndPowerW: 2_000 });
    expect(ev.curvePowerW(20_000)).toBe(11_000);
    expect(ev.curvePowerW(30_000)).toBe(6_500);
  });

  it("takes energy up to full and no more, then demands nothing and shows pilot B", () => {
    const ev = new EvModel(clock(), { capacityWh: 10_000, socPercent: 99, plugged: true });
    expect(ev.pilotState()).toBe("C");
    expect(ev.absorb(60)).toBe(60);
    expect(ev.storedEnergyWh()).toBe(9_960);
    expect(ev.absorb(100)).toBe(40);
    expect(ev.storedEnergyWh()).toBe(10_000);
    expect(ev.isFull()).toBe(true);
    expect(ev.powerDemandW()).toBe(0);
    expect(ev.pilotState()).toBe("B");
    expect(ev.absorb(1)).toBe(0);
  });

  it("reports the energy left before the taper so constant power can be integrated in one step", () => {
    const ev = new EvModel(clock(), { capacityWh: 50_000, socPercent: 20 });
    expect(ev.constantDemandWh()).toBe(30_000);
    ev.setSocPercent(90);
    expect(ev.constantDemandWh()).toBe(0);
  });
});

describe("EV pilot states (IEC 61851-1)", () => {
  it("goes A -> C on plug, B on pause, C on resume, A on unplug", () => {
    const ev = new EvModel(clock());
    expect(ev.pilotState()).toBe("A");
    expect(ev.powerDemandW()).toBe(0);
    ev.plug();
    expect(ev.pilotState()).toBe("C");
    ev.pause();
    expect(ev.pilotState()).toBe("B");
    expect(ev.powerDemandW()).toBe(0);
    ev.resume();
    expect(ev.pilotState()).toBe("C");
    ev.unplug();
    expect(ev.pilotState()).toBe("A");
  });

  it("forgets a pause on unplug and records when it was plugged", () => {
    const c = clock();
    const ev = new EvModel(c);
    c.advance(5_000);
    ev.plug();
    ev.pause();
    expect(ev.state().pluggedAtMs).toBe(1_700_000_005_000);
    ev.unplug();
    expect(ev.state().paused).toBe(false);
    expect(ev.state().pluggedAtMs).toBeNull();
  });

  it("accepts no energy while unplugged", () => {
    const ev = new EvModel(clock());
    expect(ev.absorb(100)).toBe(0);
    expect(ev.storedEnergyWh()).toBe(12_000);
  });

  it("tells listeners before and after a change, and when the battery becomes full", () => {
    const ev = new EvModel(clock(), { capacityWh: 1_000, socPercent: 50 });
    const seen: string[] = [];
    ev.onWillChange(() => seen.push(`will:${ev.pilotState()}`));
    ev.onChange(() => seen.push(`did:${ev.pilotState()}`));
    ev.plug();
    ev.plug(); // no change, no event
    ev.absorb(500);
    expect(seen).toEqual(["will:A", "did:C", "did:B"]);
  });

  it("summarizes its state as plain data", () => {
    const ev = new EvModel(clock(), { capacityWh: 50_000, socPercent: 90, plugged: true });
    expect(ev.state()).toEqual({
      plugged: true,
      paused: false,
      pilot: "C",
      full: false,
      capacityWh: 50_000,
      storedEnergyWh: 45_000,
      socPercent: 90,
      maxPowerW: 11_000,
      powerDemandW: 6_050,
      pluggedAtMs: 1_700_000_000_000,
    });
  });

  it("rejects options no EV can have, naming the option", () => {
    expect(() => new EvModel(clock(), { capacityWh: 0 })).toThrow("ev.capacityWh: expected a number > 0, got 0");
    expect(() => new EvModel(clock(), { socPercent: 120 })).toThrow("ev.socPercent: expected a percentage 0..100, got 120");
  });
});

/**
 * What every Meter must do, whatever sits behind it (STYLE §5: one shared suite per interface, like unstorage's
 * `testDriver`): read back what the meter holds, stamp every read, close idempotently, and fail only with a
 * MeterFault. Run it against each driver and transport, and against hw-sim's in-process meter.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MeterFault, type Meter, type MeterSample } from "../../drivers/meters/types.ts";

export type MeterValues = Omit<MeterSample, "readAtMs">;

export interface MeterFixture {
  meter: Meter;
  /** 1 or 3: how many phases the meter under test reports. */
  phases: 1 | 3;
  /** Makes the simulated meter show these values from its next reply on. */
  setValues(values: MeterValues): void;
  /** Stops whatever setup() started (simulator, pty pair); the suite closes the meter itself. */
  teardown(): Promise<void>;
}

/**
 * Values every table in the repository can hold exactly: float32 (Eastron) and 0.1 V / 0.001 A / 0.1 W /
 * 0.1 Hz / 100 Wh scaled integers (Carlo Gavazzi) alike.
 */
export function conformanceValues(phases: 1 | 3, variant = 0): MeterValues {
  const all = [
    { voltageV: 230.5 + variant, currentA: 10.125, powerW: 2333.5 },
    { voltageV: 229.5, currentA: 8.25 + variant, powerW: 1893.5 },
    { voltageV: 231, currentA: 0.5, powerW: 115.5 + variant },
  ].slice(0, phases);
  return {
    importEnergyWh: 1_234_500,
    exportEnergyWh: 12_300,
    powerW: all.reduce((sum, phase) => sum + phase.powerW, 0),
    frequencyHz: 49.5 + variant / 2,
    phases: all,
  };
}

/** Decoded values match what was set, within each encoding's resolution. */
export function expectSampleToMatch(sample: MeterSample, values: MeterValues): void {
  expect(sample.importEnergyWh).toBe(values.importEnergyWh);
  if (sample.exportEnergyWh !== undefined) expect(sample.exportEnergyWh).toBe(values.exportEnergyWh);
  expect(sample.powerW).toBeCloseTo(values.powerW, 1);
  if (sample.frequencyHz !== undefined) expect(sample.frequencyHz).toBeCloseTo(values.frequencyHz ?? 0, 2);
  expect(sample.phases).toHaveLength(values.phases.length);
  sample.phases.forEach((phase, i) => {
    const expected = values.phases[i];
    expect(phase.voltageV, `L${i + 1} voltage`).toBeCloseTo(expected?.voltageV ?? NaN, 2);
    expect(phase.currentA, `L${i + 1} current`).toBeCloseTo(expected?.currentA ?? NaN, 3);
    expect(phase.powerW, `L${i + 1} power`).toBeCloseTo(expected?.powerW ?? NaN, 1);
  });
}

export function testMeter(name: string, setup: () => Promise<MeterFixture>): void {
  describe(`Meter conformance: ${name}`, () => {
    let fixture: MeterFixture;

    beforeEach(async () => {
      fixture = await setup();
    });

    afterEach(async () => {
      await fixture.meter.close();
      await fixture.teardown();
    });

    it("reads back the values the meter holds (V, A, W per phase, total W, Hz, Wh)", async () => {
      const values = conformanceValues(fixture.phases);
      fixture.setValues(values);
      expectSampleToMatch(await fixture.meter.read(), values);
    });

    it("follows the meter from one read to the next and stamps each read later than the one before", async () => {
      fixture.setValues(conformanceValues(fixture.phases, 0));
      const first = await fixture.meter.read();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const changed = conformanceValues(fixture.phases, 1);
      fixture.setValues(changed);
      const second = await fixture.meter.read();
      expect(second.readAtMs).toBeGreaterThan(first.readAtMs);
      expectSampleToMatch(second, changed);
    });

    it("closes idempotently, and a read after close fails with a MeterFault", async () => {
      fixture.setValues(conformanceValues(fixture.phases));
      await fixture.meter.read();
      await fixture.meter.close();
      await fixture.meter.close();
      const error = await fixture.meter.read().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(MeterFault);
    });

    it("closes idempotently before any read", async () => {
      await expect(Promise.all([fixture.meter.close(), fixture.meter.close()])).resolves.toBeDefined();
    });
  });
}

import ModbusSerial from "modbus-serial";
import { afterEach, describe, expect, it } from "vitest";
import { decodeSample, planBlocks } from "../../../drivers/meters/codec.ts";
import type { MeterModel } from "../../../drivers/meters/model.ts";
import type { MeterSample } from "../../../drivers/meters/types.ts";
import { ManualClock } from "../../../hw-sim/clock.ts";
import { startHwSim, type HwSim, type HwSimOptions } from "../../../hw-sim/index.ts";

// The CommonJS class, as drivers/meters/modbus-meter.ts reaches it under NodeNext.
const ModbusRTU = ModbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusRTU>;

const T0 = 1_700_000_000_000;
const HOUR_MS = 3_600_000;

let sim: HwSim | undefined;
let client: ModbusRTU | undefined;

afterEach(async () => {
  if (client?.isOpen) await new Promise<void>((resolve) => client?.close(() => resolve()));
  client = undefined;
  await sim?.stop();
  sim = undefined;
});

async function start(options: HwSimOptions = {}): Promise<{ sim: HwSim; clock: ManualClock }> {
  const clock = new ManualClock(T0);
  sim = await startHwSim({ clock, ev: { capacityWh: 100_000, socPercent: 10 }, meter: { seed: 42 }, ...options });
  return { sim, clock };
}

async function connectTcp(port: number, unitId = 1): Promise<ModbusRTU> {
  client = new ModbusRTU();
  await client.connectTCP("127.0.0.1", { port });
  client.setID(unitId);
  client.setTimeout(300);
  return client;
}

/** One poll as the driver does it: the table's block plan, function 04, decoded by the shared codec. */
async function poll(modbus: ModbusRTU, model: MeterModel): Promise<MeterSample> {
  const blocks = [];
  for (const block of planBlocks(model)) {
    const reply = await modbus.readInputRegisters(block.start, block.count);
    blocks.push({ start: block.start, words: reply.data });
  }
  return decodeSample(model, blocks, 0);
}

/** What a float32 register makes of the physics' values: exactly Math.fround of each, energy rounded to Wh. */
function asRegisters(values: Omit<MeterSample, "readAtMs">): Omit<MeterSample, "readAtMs"> {
  return {
    importEnergyWh: Math.round(Math.fround(values.importEnergyWh / 1000) * 1000),
    exportEnergyWh: 0,
    powerW: Math.fround(values.powerW),
    frequencyHz: Math.fround(values.frequencyHz ?? Number.NaN),
    phases: values.phases.map((p) => ({
      voltageV: Math.fround(p.voltageV),
      currentA: Math.fround(p.currentA),
      powerW: Math.fround(p.powerW),
    })),
  };
}

describe("hw-sim over Modbus TCP", () => {
  it("serves the physics' values in the SDM630 table, decoded by the driver's codec", async () => {
    const { sim } = await start({ meter: { seed: 42, importEnergyWh: 1_234_567 } });
    const sample = await poll(await connectTcp(sim.meterTcpPort), sim.meterModel);
    const { readAtMs: _, ...decoded } = sample;
    expect(decoded).toEqual(asRegisters(sim.board.meterValues()));
    expect(decoded.importEnergyWh).toBe(1_234_567);
    expect(decoded.powerW).toBe(0);
    expect(decoded.frequencyHz).toBe(50);
    for (const phase of decoded.phases) expect(Math.abs(phase.voltageV - 230)).toBeLessThanOrEqual(1.01);
  });

  it("shows power once the agent's relay output closes the contactor, and 11 000 Wh after an hour", async () => {
    const { sim, clock } = await start({ ev: { capacityWh: 100_000, socPercent: 10, plugged: true } });
    const modbus = await connectTcp(sim.meterTcpPort);
    const relay = sim.gpio.openOutput({ line: 17 });
    const feedback = sim.gpio.openInput({ line: 27 });
    expect((await poll(modbus, sim.meterModel)).powerW).toBe(0);

    await relay.write(true);
    clock.advance(20);
    expect(await feedback.read()).toBe(true);
    const charging = await poll(modbus, sim.meterModel);
    expect(charging.powerW).toBe(11_000);
    expect(charging.phases.map((p) => p.powerW)).toEqual([1, 2, 3].map(() => Math.fround(11_000 / 3)));
    const { readAtMs: _, ...decoded } = charging;
    expect(decoded).toEqual(asRegisters(sim.board.meterValues()));

    clock.advance(HOUR_MS);
    await relay.write(false);
    clock.advance(20);
    const after = await poll(modbus, sim.meterModel);
    expect(after.powerW).toBe(0);
    expect(after.importEnergyWh).toBe(11_000);
  });

  it("serves a single-phase SDM120 at unit 7, and ignores requests for other units", async () => {
    const { sim, clock } = await start({ meterModel: "sdm120", unitId: 7, ev: { plugged: true } });
    sim.board.relay.command(true);
    clock.advance(20);
    const sample = await poll(await connectTcp(sim.meterTcpPort, 7), sim.meterModel);
    expect(sample.phases).toHaveLength(1);
    expect(sample.powerW).toBe(3_680);
    client?.setID(1);
    await expect(client?.readInputRegisters(0, 2)).rejects.toMatchObject({ name: "TransactionTimedOutError" });
  });

  it("goes silent when the meter is offline, answers with an exception code on demand, recovers on clear", async () => {
    const { sim } = await start();
    const modbus = await connectTcp(sim.meterTcpPort);
    sim.board.faults.meterOffline(true);
    await expect(modbus.readInputRegisters(0x48, 2)).rejects.toMatchObject({ name: "TransactionTimedOutError" });
    sim.board.faults.clear();
    sim.board.faults.meterException(4);
    await expect(modbus.readInputRegisters(0x48, 2)).rejects.toMatchObject({ modbusCode: 4 });
    sim.board.faults.clear();
    expect((await modbus.readInputRegisters(0x48, 2)).data).toEqual([0, 0]);
  });

  it("drops the energy register to 0 on meterEnergyReset, as the driver will see it", async () => {
    const { sim } = await start({ meter: { importEnergyWh: 5_000_000 } });
    const modbus = await connectTcp(sim.meterTcpPort);
    expect((await poll(modbus, sim.meterModel)).importEnergyWh).toBe(5_000_000);
    sim.board.faults.meterEnergyReset();
    expect((await poll(modbus, sim.meterModel)).importEnergyWh).toBe(0);
  });

  it("answers the control endpoint with the same state the Modbus side serves", async () => {
    const { sim } = await start();
    const plugged = await fetch(`${sim.controlUrl}/ev/plug`, { method: "POST" });
    expect(((await plugged.json()) as { ev: { pilot: string } }).ev.pilot).toBe("C");
    const state = (await (await fetch(`${sim.controlUrl}/state`)).json()) as { meter: { model: string; phases: unknown[] } };
    expect(state.meter.model).toBe("sdm630");
    expect(state.meter.phases).toEqual(sim.board.meterValues().phases);
  });

  it("stops every server: the ports refuse connections afterwards", async () => {
    const { sim: running } = await start();
    const { meterTcpPort, controlUrl } = running;
    await running.stop();
    await running.stop(); // idempotent
    sim = undefined;
    await expect(fetch(`${controlUrl}/state`)).rejects.toThrow();
    const late = new ModbusRTU();
    await expect(late.connectTCP("127.0.0.1", { port: meterTcpPort })).rejects.toThrow(/ECONNREFUSED/);
  });

  it("rejects a unit id outside 1..247 before starting anything", async () => {
    await expect(startHwSim({ unitId: 0 })).rejects.toThrow("unitId: expected a Modbus unit id 1..247, got 0");
  });
});

describe("hw-sim over Modbus RTU on a pty pair", () => {
  it("serves the same registers on the agent end of its own pty pair", async () => {
    const { sim, clock } = await start({ meterSerialPath: "pty", ev: { plugged: true } });
    expect(sim.meterSerialPath).toMatch(/^\/dev\/pts\/\d+$/);
    sim.board.relay.command(true);
    clock.advance(20);
    client = new ModbusRTU();
    await client.connectRTUBuffered(sim.meterSerialPath ?? "", { baudRate: 9600 });
    client.setID(1);
    client.setTimeout(1_000);
    const sample = await poll(client, sim.meterModel);
    expect(sample.powerW).toBe(11_000);
    const { readAtMs: _, ...decoded } = sample;
    expect(decoded).toEqual(asRegisters(sim.board.meterValues()));
  });
});

/**
 * The Modbus driver against the simulated meter over real links: Modbus TCP, RTU on a socat pty pair, and RTU
 * frames over TCP. Every fault is injected on the server side, one at a time, and each test then lifts it and
 * checks that the very next read succeeds without anyone resetting the driver.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createModbusMeter, type ModbusTransport } from "../../../drivers/meters/modbus-meter.ts";
import type { MeterModel } from "../../../drivers/meters/model.ts";
import { meterModels } from "../../../drivers/meters/models/index.ts";
import { MeterFault, type Meter, type MeterFaultKind } from "../../../drivers/meters/types.ts";
import {
  createModbusFaults,
  openPtyPair,
  startModbusRtuServer,
  startModbusTcpServer,
  type ModbusFaults,
  type ObservedRequest,
  type PtyPair,
} from "../../../hw-sim/modbus/index.ts";
import {
  conformanceValues,
  expectSampleToMatch,
  testMeter,
  type MeterValues,
} from "../../helpers/meter-conformance.ts";

const TIMEOUT_MS = 200;
const TRANSPORTS: readonly ModbusTransport[] = ["tcp", "rtu", "rtu-over-tcp"];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A simulated meter on one transport plus a driver pointed at it. */
interface Rig {
  meter: Meter;
  faults: ModbusFaults;
  requests: ObservedRequest[];
  /** Where the driver connects: device path or host:port (what fault messages must name). */
  where: string;
  setValues(values: MeterValues): void;
  /** Takes the meter away: TCP server closed, or the serial adapter unplugged (pty pair gone). */
  unplug(): Promise<void>;
  /** Brings it back under the same address. */
  plugIn(): Promise<void>;
  /**
   * Closes `meter` and puts a new driver on the same link in its place (a serial port is locked by one opener at a
   * time, so two drivers cannot share a pty).
   */
  replaceMeter(options: { unitId?: number; timeoutMs?: number }): Promise<Meter>;
  teardown(): Promise<void>;
}

async function startRig(transport: ModbusTransport, model: MeterModel, timeoutMs = TIMEOUT_MS): Promise<Rig> {
  let values = conformanceValues(model.phases);
  const faults = createModbusFaults();
  const requests: ObservedRequest[] = [];
  const slave = {
    unitId: 1,
    model,
    values: () => values,
    faults,
    onRequest: (request: ObservedRequest) => requests.push(request),
  };

  if (transport === "rtu") {
    const dir = await mkdtemp(join(tmpdir(), "trustpile-pty-"));
    const links = { agentLink: join(dir, "meter"), simLink: join(dir, "sim") };
    let pty: PtyPair | undefined = await openPtyPair(links);
    let server: { close(): Promise<void> } | undefined = await startModbusRtuServer({ ...slave, path: pty.simPath });
    const stop = async (): Promise<void> => {
      await server?.close();
      await pty?.close();
      server = undefined;
      pty = undefined;
    };
    const meterFor = (unitId = 1, timeout = timeoutMs): Meter =>
      createModbusMeter({ model, transport, device: links.agentLink, unitId, timeoutMs: timeout });
    const rig: Rig = {
      meter: meterFor(),
      faults,
      requests,
      where: links.agentLink,
      setValues: (next) => {
        values = next;
      },
      unplug: stop,
      async plugIn() {
        pty = await openPtyPair(links);
        server = await startModbusRtuServer({ ...slave, path: pty.simPath });
      },
      async replaceMeter(options) {
        await rig.meter.close();
        rig.meter = meterFor(options.unitId, options.timeoutMs);
        return rig.meter;
      },
      async teardown() {
        await rig.meter.close();
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
    return rig;
  }

  const framing = transport === "tcp" ? "mbap" : "rtu";
  let server: { port: number; close(): Promise<void> } | undefined = await startModbusTcpServer({
    ...slave,
    port: 0,
    framing,
  });
  const port = server.port;
  const meterFor = (unitId = 1, timeout = timeoutMs): Meter =>
    createModbusMeter({ model, transport, host: "127.0.0.1", port, unitId, timeoutMs: timeout });
  const rig: Rig = {
    meter: meterFor(),
    faults,
    requests,
    where: `127.0.0.1:${port}`,
    setValues: (next) => {
      values = next;
    },
    async unplug() {
      await server?.close();
      server = undefined;
    },
    async plugIn() {
      server = await startModbusTcpServer({ ...slave, port, framing });
    },
    async replaceMeter(options) {
      await rig.meter.close();
      rig.meter = meterFor(options.unitId, options.timeoutMs);
      return rig.meter;
    },
    async teardown() {
      await rig.meter.close();
      await server?.close();
    },
  };
  return rig;
}

async function faultOf(read: Promise<unknown>): Promise<MeterFault> {
  const error = await read.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof MeterFault)) throw new Error(`expected a MeterFault, got ${String(error)}`);
  return error;
}

async function expectFault(read: Promise<unknown>, kind: MeterFaultKind, message?: RegExp | string): Promise<MeterFault> {
  const fault = await faultOf(read);
  expect(fault.kind, fault.message).toBe(kind);
  if (message !== undefined) expect(fault.message).toMatch(message);
  return fault;
}

for (const transport of TRANSPORTS) {
  for (const model of Object.values(meterModels)) {
    testMeter(`${model.name} over ${transport}`, async () => {
      const rig = await startRig(transport, model);
      return {
        meter: rig.meter,
        phases: model.phases,
        setValues: rig.setValues,
        teardown: async () => rig.teardown(),
      };
    });
  }
}

describe.each(TRANSPORTS)("Modbus meter faults over %s", (transport) => {
  let rig: Rig;
  let values: MeterValues;

  /** The read that shows the driver recovered: it succeeds and decodes what the sim holds now. */
  async function expectRecovered(): Promise<void> {
    expectSampleToMatch(await rig.meter.read(), values);
  }

  beforeEach(async () => {
    rig = await startRig(transport, meterModels.sdm630);
    values = conformanceValues(3);
    rig.setValues(values);
    // A good first read: the link is open and the plausibility baseline is set before the fault.
    await rig.meter.read();
  });

  afterEach(async () => {
    await rig.teardown();
  });

  it("polls an SDM630 in two requests, as planned", async () => {
    rig.requests.length = 0;
    await rig.meter.read();
    expect(rig.requests.map(({ functionCode, address, count }) => ({ functionCode, address, count }))).toEqual([
      { functionCode: 4, address: 0x00, count: 0x12 },
      { functionCode: 4, address: 0x34, count: 0x18 },
    ]);
  });

  it("offline meter → timeout, then recovers", async () => {
    rig.faults.offline = true;
    await expectFault(rig.meter.read(), "timeout", `within ${TIMEOUT_MS} ms`);
    rig.faults.offline = false;
    await expectRecovered();
  });

  it("reply later than timeoutMs → timeout, then recovers", async () => {
    rig.faults.replyDelayMs = TIMEOUT_MS + 150;
    const started = performance.now();
    await expectFault(rig.meter.read(), "timeout");
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS + 150);
    rig.faults.replyDelayMs = 0;
    // Read at once: the late reply is still on its way, and must not be taken for the answer to this poll.
    await expectRecovered();
    await sleep(200);
    await expectRecovered();
  });

  it("late replies within timeoutMs are fine", async () => {
    rig.faults.replyDelayMs = TIMEOUT_MS / 4;
    await expectRecovered();
  });

  if (transport === "tcp") {
    it("damaged reply (MBAP frame cut short) → malformed, then recovers", async () => {
      rig.faults.corruptCrc = true;
      await expectFault(rig.meter.read(), "malformed", /Data length error/);
      rig.faults.corruptCrc = false;
      await expectRecovered();
    });
  } else {
    it("reply with a bad CRC → crc, then recovers", async () => {
      rig.faults.corruptCrc = true;
      await expectFault(rig.meter.read(), "crc", /CRC/);
      rig.faults.corruptCrc = false;
      await expectRecovered();
    });
  }

  it("Modbus exception 2 → exception naming the code and the block, then recovers", async () => {
    rig.faults.exceptionCode = 2;
    await expectFault(rig.meter.read(), "exception", /Modbus exception 2 \(illegal data address\) reading 0x00\+18/);
    delete rig.faults.exceptionCode;
    await expectRecovered();
  });

  it("meter gone (server closed / adapter unplugged) → disconnected naming the address, then recovers", async () => {
    await rig.unplug();
    const fault = await expectFault(rig.meter.read(), "disconnected");
    expect(fault.message).toContain(rig.where);
    await rig.plugIn();
    await expectRecovered();
  });

  it("connection lost while a request waits → disconnected at once, not after the timeout", async () => {
    // A long timeout, so that only the lost link can end this read early.
    const patient = await rig.replaceMeter({ timeoutMs: 5_000 });
    await patient.read();
    rig.faults.offline = true;
    const started = performance.now();
    const pending = faultOf(patient.read());
    await sleep(50);
    await rig.unplug();
    // TCP: the socket closes under the request; RTU: socat going away hangs up the pty and the port closes.
    const fault = await pending;
    expect(fault.kind, fault.message).toBe("disconnected");
    expect(fault.message).toContain(rig.where);
    expect(performance.now() - started).toBeLessThan(1_000);
    rig.faults.offline = false;
    await rig.plugIn();
    expectSampleToMatch(await patient.read(), values);
  });

  it("import energy going backwards → implausible, baseline kept, then recovers", async () => {
    rig.setValues({ ...values, importEnergyWh: values.importEnergyWh - 1_000 });
    await expectFault(rig.meter.read(), "implausible", /went backwards from 1234500 Wh to 1233500 Wh/);
    rig.setValues(values);
    await expectRecovered();
  });

  it("import energy jumping beyond max power × elapsed time → implausible, then recovers", async () => {
    rig.setValues({ ...values, importEnergyWh: values.importEnergyWh + 50_000 });
    await expectFault(rig.meter.read(), "implausible", /rose by 50000 Wh/);
    rig.setValues(values);
    await expectRecovered();
  });

  it("a read addressed to another unit id → timeout", async () => {
    const stranger = await rig.replaceMeter({ unitId: 2 });
    await expectFault(stranger.read(), "timeout", /unit 2/);
    await rig.replaceMeter({ unitId: 1 });
    await expectRecovered();
  });
});

describe("Modbus meter without a link", () => {
  it("a missing serial device fails at once as disconnected, naming the path", async () => {
    const meter = createModbusMeter({
      model: meterModels.sdm630,
      transport: "rtu",
      device: "/dev/ttyUSB9",
      unitId: 1,
      timeoutMs: 5_000,
    });
    const started = performance.now();
    await expectFault(meter.read(), "disconnected", "serial device /dev/ttyUSB9 does not exist");
    expect(performance.now() - started).toBeLessThan(1_000);
    await meter.close();
  });

  it("a refused TCP connection is disconnected, naming host:port", async () => {
    const server = await startModbusTcpServer({
      port: 0,
      unitId: 1,
      model: meterModels.sdm630,
      values: () => conformanceValues(3),
    });
    const port = server.port;
    await server.close();
    const meter = createModbusMeter({ model: meterModels.sdm630, transport: "tcp", host: "127.0.0.1", port, unitId: 1, timeoutMs: 500 });
    await expectFault(meter.read(), "disconnected", new RegExp(`127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
    await meter.close();
  });

  it("the EM340 table reads holding registers in three requests, stamped by the injected clock", async () => {
    const requests: ObservedRequest[] = [];
    const values = conformanceValues(3);
    const server = await startModbusTcpServer({
      port: 0,
      unitId: 7,
      model: meterModels.em340,
      values: () => values,
      onRequest: (request) => requests.push(request),
    });
    const meter = createModbusMeter({
      model: meterModels.em340,
      transport: "tcp",
      host: "127.0.0.1",
      port: server.port,
      unitId: 7,
      timeoutMs: TIMEOUT_MS,
      clock: () => 42_000,
    });
    const sample = await meter.read();
    expectSampleToMatch(sample, values);
    expect(sample.readAtMs).toBe(42_000);
    expect(requests.map((r) => [r.functionCode, r.address, r.count])).toEqual([
      [3, 0x00, 42],
      [3, 0x33, 3],
      [3, 0x4e, 2],
    ]);
    await meter.close();
    await server.close();
  });
});

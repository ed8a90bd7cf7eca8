/**
 * Modbus reply fuzzing (issue 11 item 3): a raw TCP server on loopback answers the SDM630 driver
 * (drivers/meters/modbus-meter.ts, Modbus TCP and RTU-over-TCP) with hostile replies — random bytes, short frames,
 * wrong transaction id, unit id or function code, exception responses, wrong byte counts, bad CRCs, NaN/Inf floats,
 * energy going backwards or jumping, replies split across packets or late, or nothing at all. Each read must end
 * in a typed MeterFault naming the meter and what was wrong (or, for split replies, the exact sample), within its
 * timeout, never with a wrong energy value; and the read after the server behaves again must give the exact
 * register value. Replay with FUZZ_SEED=<seed>.
 */
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSample } from "../../drivers/meters/codec.ts";
import { createModbusMeter, type ModbusTransport } from "../../drivers/meters/modbus-meter.ts";
import { sdm630 } from "../../drivers/meters/models/sdm630.ts";
import { MeterFault, type MeterFaultKind, type MeterSample } from "../../drivers/meters/types.ts";
import { encodeMbap, encodeRtu, exceptionPdu, readResponsePdu } from "../../hw-sim/modbus/frame.ts";
import { CategoryCounter, FuzzRandom, fuzzSeed } from "./fuzz-random.ts";

const SEED = fuzzSeed(0x0d_b05e);
const CASES_PER_TRANSPORT = 250;
// Generous for loopback: an honest reply on a loaded two-core CI machine must never look like a timeout.
const TIMEOUT_MS = 150;
const UNIT_ID = 7;

type Category =
  | "random bytes"
  | "short frame"
  | "wrong transaction id"
  | "wrong unit id"
  | "wrong function code"
  | "exception"
  | "wrong byte count"
  | "bad crc"
  | "NaN or Inf"
  | "energy backwards"
  | "energy jump"
  | "split packets"
  | "late reply"
  | "no reply";

const CATEGORIES: readonly Category[] = [
  "random bytes", "short frame", "wrong transaction id", "wrong unit id", "wrong function code", "exception",
  "wrong byte count", "bad crc", "NaN or Inf", "energy backwards", "energy jump", "split packets", "late reply", "no reply",
];

/** What each hostile reply may end in; split packets must read correctly. */
const ALLOWED: Record<Category, readonly MeterFaultKind[] | "sample"> = {
  "random bytes": ["timeout", "crc", "malformed", "exception", "disconnected"],
  "short frame": ["timeout", "crc", "malformed"],
  "wrong transaction id": ["timeout", "malformed"],
  "wrong unit id": ["timeout", "malformed", "crc"],
  "wrong function code": ["timeout", "malformed", "crc"],
  exception: ["exception"],
  "wrong byte count": ["timeout", "malformed", "crc"],
  "bad crc": ["crc", "timeout"],
  "NaN or Inf": ["malformed"],
  "energy backwards": ["implausible"],
  "energy jump": ["implausible"],
  "split packets": "sample",
  "late reply": ["timeout"],
  "no reply": ["timeout"],
};

/** The exact words a fault of each kind must carry besides the meter's name and address. */
const MESSAGE: Record<MeterFaultKind, RegExp> = {
  timeout: new RegExp(`no reply from .* within ${TIMEOUT_MS} ms`),
  crc: /failed its CRC check/,
  malformed: /malformed reply|not a number for (importEnergyWh|powerW)/,
  exception: /answered Modbus exception \d+ \(/,
  disconnected: /closed|not open|lost|cannot connect/,
  implausible: /import energy (went backwards|rose by)/,
};

interface Behaviour {
  category: Category | "honest" | "scripted";
  /** For "scripted": the reply PDU to send, framed with the request's own ids. */
  script?: (request: Request, words: number[]) => Buffer;
  /** Register values the meter holds now. */
  energyWh: number;
  powerW: number;
  random: FuzzRandom;
}

interface Request {
  transactionId: number;
  unitId: number;
  functionCode: number;
  address: number;
  count: number;
}

/** A Modbus meter on loopback whose next reply is whatever `behaviour` says. */
class HostileMeter {
  behaviour: Behaviour;
  server: Server;
  readonly sockets = new Set<Socket>();
  readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly transport: ModbusTransport,
    initial: Behaviour,
  ) {
    this.behaviour = initial;
    this.server = createServer((socket) => this.serve(socket));
  }

  async listen(): Promise<number> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    // Each write its own segment, so a split reply really arrives in pieces.
    socket.setNoDelay(true);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffered = Buffer.alloc(0);
    const frameBytes = this.transport === "tcp" ? 12 : 8;
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= frameBytes) {
        const frame = buffered.subarray(0, frameBytes);
        buffered = buffered.subarray(frameBytes);
        const request: Request =
          this.transport === "tcp"
            ? { transactionId: frame.readUInt16BE(0), unitId: frame[6] ?? 0, functionCode: frame[7] ?? 0, address: frame.readUInt16BE(8), count: frame.readUInt16BE(10) }
            : { transactionId: 0, unitId: frame[0] ?? 0, functionCode: frame[1] ?? 0, address: frame.readUInt16BE(2), count: frame.readUInt16BE(4) };
        this.answer(socket, request);
      }
    });
  }

  private send(socket: Socket, bytes: Buffer, afterMs = 0): void {
    if (afterMs === 0) {
      if (!socket.destroyed) socket.write(bytes);
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!socket.destroyed) socket.write(bytes);
    }, afterMs);
    this.timers.add(timer);
  }

  private frame(request: Request, pdu: Buffer, overrides: { transactionId?: number; unitId?: number } = {}): Buffer {
    const unitId = overrides.unitId ?? request.unitId;
    return this.transport === "tcp" ? encodeMbap(overrides.transactionId ?? request.transactionId, unitId, pdu) : encodeRtu(unitId, pdu);
  }

  private words(request: Request, energyWh: number, powerW: number): number[] {
    const image = encodeSample(sdm630, {
      importEnergyWh: energyWh,
      exportEnergyWh: 0,
      powerW,
      frequencyHz: 50,
      phases: [0, 1, 2].map(() => ({ voltageV: 230, currentA: powerW / 690, powerW: powerW / 3 })),
    });
    return Array.from({ length: request.count }, (_, offset) => image.get(request.address + offset) ?? 0);
  }

  private answer(socket: Socket, request: Request): void {
    const { category, energyWh, powerW, random } = this.behaviour;
    const honest = (): Buffer => this.frame(request, readResponsePdu(request.functionCode, this.words(request, energyWh, powerW)));
    // Only the block with the energy register gets the value lies; the other blocks answer honestly.
    const hasEnergy = request.address <= 0x48 && request.address + request.count >= 0x4a;
    switch (category) {
      case "honest":
        return this.send(socket, honest());
      case "scripted":
        return this.send(socket, this.frame(request, this.behaviour.script?.(request, this.words(request, energyWh, powerW)) ?? Buffer.alloc(0)));
      case "random bytes":
        return this.send(socket, random.bytes(random.int(1, 300)));
      case "short frame": {
        const full = honest();
        return this.send(socket, full.subarray(0, random.int(1, full.length - 1)));
      }
      case "wrong transaction id":
        if (this.transport === "tcp") return this.send(socket, this.frame(request, readResponsePdu(request.functionCode, this.words(request, energyWh, powerW)), { transactionId: (request.transactionId + random.int(1, 0xfffe)) & 0xffff }));
        return this.send(socket, this.frame(request, readResponsePdu(request.functionCode, this.words(request, energyWh, powerW)), { unitId: (UNIT_ID + random.int(1, 200)) & 0xff }));
      case "wrong unit id":
        return this.send(socket, this.frame(request, readResponsePdu(request.functionCode, this.words(request, energyWh, powerW)), { unitId: (UNIT_ID + random.int(1, 254)) & 0xff }));
      case "wrong function code": {
        const functionCode = random.pick([0x01, 0x02, 0x03, 0x05, 0x10, 0x2b, 0x41]);
        return this.send(socket, this.frame(request, readResponsePdu(functionCode, this.words(request, energyWh, powerW))));
      }
      case "exception":
        return this.send(socket, this.frame(request, exceptionPdu(request.functionCode, random.pick([1, 2, 3, 4, 5, 6, 8, 10, 11, 99]))));
      case "wrong byte count": {
        const words = this.words(request, energyWh, powerW);
        const pdu = random.chance(0.5)
          ? readResponsePdu(request.functionCode, random.chance(0.5) ? words.slice(0, -random.int(1, words.length)) : [...words, 0, 1])
          : Buffer.from(readResponsePdu(request.functionCode, words).map((byte, index) => (index === 1 ? (byte + random.int(1, 255)) & 0xff : byte)));
        return this.send(socket, this.frame(request, pdu));
      }
      case "bad crc": {
        const full = Buffer.from(honest());
        if (this.transport === "tcp") {
          // No CRC over TCP: the MBAP length field is what a corrupted header gets wrong.
          full.writeUInt16BE((full.readUInt16BE(4) + random.int(1, 200)) & 0xffff, 4);
        } else {
          const at = full.length - random.int(1, 2);
          full[at] = ((full[at] ?? 0) ^ random.int(1, 255)) & 0xff;
        }
        return this.send(socket, full);
      }
      case "NaN or Inf": {
        if (!hasEnergy) return this.send(socket, honest());
        const words = this.words(request, energyWh, powerW);
        const target = random.chance(0.5) ? 0x48 : 0x34;
        if (target < request.address) return this.send(socket, honest());
        const bits = random.pick([[0x7fc0, 0x0000], [0x7f80, 0x0000], [0xff80, 0x0000], [0x7fff, 0xffff]]);
        words[target - request.address] = bits[0] ?? 0;
        words[target - request.address + 1] = bits[1] ?? 0;
        return this.send(socket, this.frame(request, readResponsePdu(request.functionCode, words)));
      }
      case "energy backwards":
        return this.send(socket, this.frame(request, readResponsePdu(request.functionCode, this.words(request, random.pick([-1, 0, energyWh - random.int(3, 50_000)]), powerW))));
      case "energy jump":
        return this.send(socket, this.frame(request, readResponsePdu(request.functionCode, this.words(request, energyWh + random.int(5_000, 10_000_000), powerW))));
      case "split packets": {
        const full = honest();
        const cuts = [...new Set([random.int(1, full.length - 1), random.int(1, full.length - 1)])].sort((a, b) => a - b);
        let from = 0;
        for (const [index, cut] of [...cuts, full.length].entries()) {
          this.send(socket, full.subarray(from, cut), index * 2);
          from = cut;
        }
        return;
      }
      case "late reply":
        return this.send(socket, honest(), TIMEOUT_MS + random.int(120, 200));
      case "no reply":
        return;
    }
  }
}

const meters: HostileMeter[] = [];
afterAll(async () => {
  for (const meter of meters) await meter.close();
});

async function withinDeadline<T>(what: string, promise: Promise<T>, deadlineMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${deadlineMs} ms (the driver hung past its timeout)`)), deadlineMs);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

describe.each(["tcp", "rtu-over-tcp"] as const)(`Modbus reply fuzzing over %s (seed ${SEED}, FUZZ_SEED=${SEED} to replay)`, (transport) => {
  let server: HostileMeter;
  let port: number;
  beforeAll(async () => {
    server = new HostileMeter(transport, { category: "honest", energyWh: 1_234_567, powerW: 7_400, random: new FuzzRandom(SEED) });
    meters.push(server);
    port = await server.listen();
  });

  it(`${CASES_PER_TRANSPORT} hostile replies each end in a typed fault naming the meter, and the next honest read is exact`, async () => {
    const random = new FuzzRandom(SEED + (transport === "tcp" ? 0 : 1));
    const meter = createModbusMeter({ model: sdm630, transport, host: "127.0.0.1", port, unitId: UNIT_ID, timeoutMs: TIMEOUT_MS });
    const where = `127.0.0.1:${port}`;
    const counter = new CategoryCounter();
    const kinds = new CategoryCounter();
    let energyWh = 1_234_567;
    // Deadline of one read: every block may time out once, plus the RTU quiet period and a loaded machine's slack.
    const readDeadlineMs = 4 * (TIMEOUT_MS + 100) + 2_000;
    let honestTimeouts = 0;
    const honestRead = async (label: string): Promise<MeterSample> => {
      energyWh += 1;
      server.behaviour = { category: "honest", energyWh, powerW: 7_400, random };
      try {
        return await withinDeadline(label, meter.read(), readDeadlineMs);
      } catch (error) {
        // A loaded two-core machine can hold up an honest loopback reply past the timeout; that is the machine,
        // not the driver, so one retry is allowed (and counted below).
        if (!(error instanceof MeterFault) || error.kind !== "timeout") throw error;
        honestTimeouts += 1;
        return withinDeadline(`${label} (retried after a timeout)`, meter.read(), readDeadlineMs);
      }
    };
    try {
      expect((await honestRead(`seed ${SEED} first read`)).importEnergyWh).toBe(energyWh);
      for (let caseNo = 0; caseNo < CASES_PER_TRANSPORT; caseNo++) {
        const category = random.pick(CATEGORIES);
        counter.add(category);
        const label = `seed ${SEED} ${transport} case ${caseNo} (${category})`;
        server.behaviour = { category, energyWh, powerW: 7_400, random };
        const outcome = await withinDeadline(label, meter.read(), readDeadlineMs).then(
          (sample) => ({ sample }),
          (error: unknown) => ({ error }),
        );
        const allowed = ALLOWED[category];
        if ("sample" in outcome) {
          expect(allowed, `${label}: resolved with ${outcome.sample.importEnergyWh} Wh instead of a fault`).toBe("sample");
          expect(outcome.sample.importEnergyWh, `${label}: wrong energy`).toBe(energyWh);
          kinds.add("sample");
        } else {
          const { error } = outcome;
          expect(error, `${label}: rejected with ${String(error)}`).toBeInstanceOf(MeterFault);
          const fault = error as MeterFault;
          kinds.add(fault.kind);
          expect(allowed === "sample" ? [] : allowed, `${label}: ${fault.kind}: ${fault.message}`).toContain(fault.kind);
          expect(fault.message, label).toMatch(MESSAGE[fault.kind]);
          if (fault.kind !== "disconnected") expect(fault.message, `${label}: names the meter`).toContain(`sdm630 (unit ${UNIT_ID} at ${where})`);
          expect(fault.message, `${label}: one line`).not.toContain("\n");
        }
        // Once the server behaves, the very next read is exact (after a timeout over RTU it waits one quiet period).
        const next = await honestRead(`${label}, then an honest read`);
        expect(next.importEnergyWh, `${label}: honest read after`).toBe(energyWh);
        expect(next.powerW, `${label}: honest power after`).toBeCloseTo(7_400, 3);
      }
    } finally {
      await meter.close();
    }
    expect(counter.counts.size, `seed ${SEED}: ${counter.summary()}`).toBe(CATEGORIES.length);
    expect(honestTimeouts, `seed ${SEED}: honest reads that timed out`).toBeLessThanOrEqual(CASES_PER_TRANSPORT / 20);
    for (const kind of ["timeout", "malformed", "exception", "implausible", "sample"]) {
      expect(kinds.counts.get(kind) ?? 0, `seed ${SEED}: fault kinds ${kinds.summary()}`).toBeGreaterThan(0);
    }
    if (transport === "rtu-over-tcp") expect(kinds.counts.get("crc") ?? 0, `seed ${SEED}: ${kinds.summary()}`).toBeGreaterThan(0);
  }, 150_000);
});

describe("Modbus reply fuzzing: regressions", () => {
  // Found by seed 897118 (tcp case 18, rtu-over-tcp case 119, "wrong byte count"): a reply whose byte count claims
  // more registers than the frame carries made modbus-serial read past the buffer; the RangeError came back as a
  // port error and the driver reported "disconnected: lost meter …: The value of "offset" is out of range".
  it.each(["tcp", "rtu-over-tcp"] as const)("a byte count larger than the data over %s is a malformed reply, and the next read is exact", async (transport) => {
    const server = new HostileMeter(transport, { category: "honest", energyWh: 500_000, powerW: 0, random: new FuzzRandom(1) });
    meters.push(server);
    const port = await server.listen();
    const meter = createModbusMeter({ model: sdm630, transport, host: "127.0.0.1", port, unitId: UNIT_ID, timeoutMs: TIMEOUT_MS });
    try {
      expect((await meter.read()).importEnergyWh).toBe(500_000);
      server.behaviour = {
        category: "scripted",
        energyWh: 500_000,
        powerW: 0,
        random: new FuzzRandom(1),
        // Byte count 40 more than the bytes that follow: past the end of the frame.
        script: (request, words) => Buffer.from(readResponsePdu(request.functionCode, words).map((byte, index) => (index === 1 ? byte + 40 : byte))),
      };
      const fault = await meter.read().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(fault).toBeInstanceOf(MeterFault);
      expect((fault as MeterFault).kind).toBe("malformed");
      expect((fault as MeterFault).message).toMatch(
        new RegExp(`^malformed reply from meter sdm630 \\(unit ${UNIT_ID} at 127\\.0\\.0\\.1:${port}\\).*: its byte count exceeds the data it carries`),
      );
      server.behaviour = { category: "honest", energyWh: 500_001, powerW: 0, random: new FuzzRandom(1) };
      expect((await meter.read()).importEnergyWh).toBe(500_001);
    } finally {
      await meter.close();
    }
  });
});

/**
 * How much a full meter poll costs next to the cheapest possible request on the same link: one SDM630 poll through
 * the driver vs one single-register read through the same driver code, over a socat pty pair (RTU) and over TCP,
 * measured side by side in one run. Requests per poll are counted at the simulated meter.
 *
 * A pty has no baud-rate timing, so the measured times are software overhead only; the modeled 9600 8N1 wire time
 * from the frame sizes is printed next to them, because on a real RS-485 bus the wire dominates.
 *
 *   npx tsx bench/meter-poll.ts [iterations]
 */
import { performance } from "node:perf_hooks";
import { planBlocks } from "../drivers/meters/codec.ts";
import { createModbusMeter, type ModbusTransport } from "../drivers/meters/modbus-meter.ts";
import type { MeterModel, RegisterField } from "../drivers/meters/model.ts";
import { sdm630 } from "../drivers/meters/models/sdm630.ts";
import type { Meter } from "../drivers/meters/types.ts";
import { rtuReadBytes } from "../hw-sim/modbus/frame.ts";
import { openPtyPair, startModbusRtuServer, startModbusTcpServer } from "../hw-sim/modbus/index.ts";
import type { MeterValues } from "../hw-sim/modbus/slave.ts";

const ITERATIONS = Number(process.argv[2] ?? 1000);
const WARMUP = 50;
const TIMEOUT_MS = 1000;
const TARGET_RATIO = 3.3;
const BAUD = 9600;
/** 8N1: start bit, 8 data bits, stop bit. */
const BITS_PER_CHAR = 10;
/** RTU frames are separated by at least 3.5 character times of silence. */
const SILENCE_CHARS = 3.5;

/** The SDM630 table shrunk to one register: every field reads 0x00 (so the poll is exactly one 1-register read). */
const oneRegister: RegisterField = { address: 0x00, encoding: "uint16", scale: 1 };
const singleRegisterModel: MeterModel = {
  ...sdm630,
  name: "single-register",
  phases: 1,
  fields: {
    importEnergyWh: oneRegister,
    powerW: oneRegister,
    phaseVoltageV: [oneRegister],
    phaseCurrentA: [oneRegister],
    phasePowerW: [oneRegister],
  },
};

const values: MeterValues = {
  importEnergyWh: 1_234_500,
  exportEnergyWh: 0,
  powerW: 6_900,
  frequencyHz: 50,
  phases: [
    { voltageV: 230, currentA: 10, powerW: 2_300 },
    { voltageV: 230, currentA: 10, powerW: 2_300 },
    { voltageV: 230, currentA: 10, powerW: 2_300 },
  ],
};

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? NaN) : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
}

/** Median ms per read over ITERATIONS reads, after a warm-up, and the server requests per read. */
async function measure(meter: Meter, requestCounter: { count: number }): Promise<{ medianMs: number; requestsPerRead: number }> {
  for (let i = 0; i < WARMUP; i++) await meter.read();
  const times: number[] = [];
  const before = requestCounter.count;
  for (let i = 0; i < ITERATIONS; i++) {
    const started = performance.now();
    await meter.read();
    times.push(performance.now() - started);
  }
  return { medianMs: median(times), requestsPerRead: (requestCounter.count - before) / ITERATIONS };
}

interface Row {
  link: string;
  fullMs: number;
  singleMs: number;
  requestsPerPoll: number;
}

async function benchLink(
  label: string,
  transport: ModbusTransport,
  address: { device?: string; host?: string; port?: number },
  requestCounter: { count: number },
): Promise<Row> {
  const driverFor = (model: MeterModel): Meter => createModbusMeter({ model, transport, ...address, unitId: 1, timeoutMs: TIMEOUT_MS });
  // One driver at a time: a serial port is locked by one opener, and both drivers share the link.
  const full = driverFor(sdm630);
  const fullResult = await measure(full, requestCounter);
  await full.close();
  const single = driverFor(singleRegisterModel);
  const singleResult = await measure(single, requestCounter);
  await single.close();
  if (singleResult.requestsPerRead !== 1) throw new Error(`single-register read took ${singleResult.requestsPerRead} requests`);
  return { link: label, fullMs: fullResult.medianMs, singleMs: singleResult.medianMs, requestsPerPoll: fullResult.requestsPerRead };
}

/** Modeled wire time of reading `counts` registers (one request each) at BAUD 8N1, ms. */
function wireMs(counts: readonly number[]): number {
  const chars = counts.reduce((sum, count) => {
    const { requestBytes, replyBytes } = rtuReadBytes(count);
    return sum + requestBytes + replyBytes + 2 * SILENCE_CHARS;
  }, 0);
  return (chars * BITS_PER_CHAR * 1000) / BAUD;
}

const pad = (text: string, width: number): string => text.padEnd(width);
const fmt = (ms: number): string => `${ms.toFixed(3)} ms`;

const requestCounter = { count: 0 };
const slave = { unitId: 1, model: sdm630, values: () => values, onRequest: () => void requestCounter.count++ };

const pty = await openPtyPair();
const rtuServer = await startModbusRtuServer({ ...slave, path: pty.simPath, baudRate: BAUD });
const tcpServer = await startModbusTcpServer({ ...slave, port: 0 });
const rows: Row[] = [];
try {
  rows.push(await benchLink("RTU on socat pty", "rtu", { device: pty.agentPath }, requestCounter));
  rows.push(await benchLink("Modbus TCP (loopback)", "tcp", { host: "127.0.0.1", port: tcpServer.port }, requestCounter));
} finally {
  await rtuServer.close();
  await tcpServer.close();
  await pty.close();
}

const blocks = planBlocks(sdm630);
const wireFullMs = wireMs(blocks.map((b) => b.count));
const wireSingleMs = wireMs([1]);

console.log(`meter-poll: SDM630 full poll vs one single-register request, median of ${ITERATIONS} reads each`);
console.log(`full poll = ${blocks.map((b) => `0x${b.start.toString(16).padStart(2, "0")}+${b.count}`).join(", ")} (planBlocks)`);
console.log("");
console.log(
  `${pad("link", 26)}${pad("full poll", 14)}${pad("single reg", 14)}${pad("full/single", 13)}${pad("requests/poll", 15)}target`,
);
for (const row of rows) {
  const ratio = row.fullMs / row.singleMs;
  console.log(
    `${pad(row.link, 26)}${pad(fmt(row.fullMs), 14)}${pad(fmt(row.singleMs), 14)}${pad(ratio.toFixed(2), 13)}` +
      `${pad(String(row.requestsPerPoll), 15)}${ratio <= TARGET_RATIO ? "ok" : "OVER"} (<= ${TARGET_RATIO})`,
  );
}
const wireRatio = wireFullMs / wireSingleMs;
console.log(
  `${pad("modeled wire, 9600 8N1", 26)}${pad(fmt(wireFullMs), 14)}${pad(fmt(wireSingleMs), 14)}${pad(wireRatio.toFixed(2), 13)}` +
    `${pad(String(blocks.length), 15)}${wireRatio <= TARGET_RATIO ? "ok" : "OVER"} (<= ${TARGET_RATIO})`,
);
// Meter turnaround t is paid once per request: (full + n·t) / (single + t) <= target needs t >= this.
const breakEvenMs = (wireFullMs - TARGET_RATIO * wireSingleMs) / (TARGET_RATIO - blocks.length);
if (wireRatio > TARGET_RATIO && breakEvenMs > 0) {
  console.log(
    `${pad("", 26)}on the wire the ratio reaches ${TARGET_RATIO} only with a meter turnaround of >= ${breakEvenMs.toFixed(0)} ms per request`,
  );
}
console.log("");
console.log("Note: a pty has no baud-rate timing (replies arrive at once), so the RTU row measures software overhead only.");
console.log(
  `Wire model: 10 bits per byte, request 8 bytes + reply 5 + 2 per register, plus ${SILENCE_CHARS} characters of silence ` +
    "per frame; the meter's own turnaround time (not modeled) adds to every request alike and pulls the real ratio toward the request count.",
);

/**
 * How fast a pile catches up with its CSMS after an outage (issue 8): a backlog of transaction messages — one
 * StartTransaction, MeterValues, one StopTransaction — waits in the journal as the agent left it while offline; the
 * bench starts OCPP 1.6J against a CSMS on loopback and times the drain until the CSMS has the Stop. Next to it, in
 * the same run and on the same loopback link, a bare ocpp-rpc client sends the same number of MeterValues calls
 * with the pile's own payload (energy, power, current and voltage per phase), each awaited (OCPP allows one call in
 * flight), to a bare server: the ratio drained/bare says what the journal
 * (one durable update per confirmed message) and the adapter cost on top of the protocol itself. Target ≥ 0.5.
 *
 *   npx tsx bench/ocpp-drain.ts [messages] [rounds]
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { RPCClient, RPCServer } from "ocpp-rpc";
import { initialState } from "../agent/core/step.ts";
import { openJournal } from "../agent/journal/journal.ts";
import { silentLogger } from "../agent/logging.ts";
import type { MeterReading } from "../agent/ocpp/intents.ts";
import { startOcpp } from "../agent/ocpp/index.ts";
import { createTransactionQueue } from "../agent/ocpp/queue.ts";

const MESSAGES = Number(process.argv[2] ?? 10_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const IDENTITY = "cp-bench";
const SESSION_ID = 7n;
const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

function reading(index: number): MeterReading {
  return {
    atMs: T0 + index * 10_000,
    energyWh: 1_000_000 + index * 3,
    powerW: 11_000,
    phases: [1, 2, 3].map(() => ({ voltageV: 230.1, currentA: 15.9, powerW: 3_666 })),
  };
}

/** The first MeterValues the pile sent: the bare loop sends the same payload, so both sides validate as much. */
let pileMeterValues: Record<string, unknown> | undefined;

interface Csms {
  url: string;
  received: number;
  waitForStop(): Promise<void>;
  close(): Promise<void>;
}

/** A strict ocpp-rpc CSMS that answers every call at once and counts them. */
async function startCsms(): Promise<Csms> {
  const server = new RPCServer({ protocols: ["ocpp1.6"], strictMode: true });
  const http = await server.listen(0, "127.0.0.1");
  let stopSeen: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stopSeen = resolve));
  const csms: Csms = {
    url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`,
    received: 0,
    waitForStop: () => stopped,
    close: () => server.close({ force: true }) as Promise<void>,
  };
  server.on("client", (client: { handle: (method: string, fn: (call: { params: Record<string, unknown> }) => unknown) => void }) => {
    const count = (answer: Record<string, unknown>) => () => {
      csms.received++;
      return answer;
    };
    client.handle("BootNotification", () => ({ status: "Accepted", currentTime: new Date().toISOString(), interval: 3_600 }));
    client.handle("Heartbeat", () => ({ currentTime: new Date().toISOString() }));
    client.handle("StatusNotification", () => ({}));
    client.handle("Authorize", () => ({ idTagInfo: { status: "Accepted" } }));
    client.handle("StartTransaction", count({ transactionId: 1, idTagInfo: { status: "Accepted" } }));
    client.handle("MeterValues", ({ params }) => {
      csms.received++;
      pileMeterValues ??= params;
      return {};
    });
    client.handle("StopTransaction", () => {
      csms.received++;
      stopSeen();
      return {};
    });
  });
  return csms;
}

/** The backlog as the agent leaves it offline, then the drain through the real adapter; messages per second. */
async function drainedPerSecond(messages = MESSAGES): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-ocpp-drain-"));
  const journal = openJournal(join(dir, "journal.sqlite"));
  const csms = await startCsms();
  try {
    const queue = createTransactionQueue({ journal, log: silentLogger(), retry: () => ({ attempts: 3, retryIntervalMs: 1_000 }) });
    journal.transaction(() => {
      queue.enqueue({ type: "transactionStarted", sessionId: SESSION_ID, connectorId: 1, idTag: SESSION_ID.toString(), meterStartWh: reading(0).energyWh, atMs: T0, reading: reading(0) });
      for (let index = 1; index <= messages - 2; index++) {
        queue.enqueue({ type: "meterValues", sessionId: SESSION_ID, connectorId: 1, context: "Sample.Periodic", reading: reading(index) });
      }
      const last = reading(messages - 1);
      queue.enqueue({ type: "transactionStopped", sessionId: SESSION_ID, connectorId: 1, meterStopWh: last.energyWh, atMs: last.atMs, reason: "Local", reading: last });
    });
    const state = initialState();
    const started = performance.now();
    const ocpp = startOcpp({
      config: { url: csms.url, version: "1.6", connectorId: 1, vendor: "trustpile", model: "trustpile-cp", reconnectMaxDelayS: 60 },
      chargePointId: IDENTITY,
      confirmations: 1,
      agent: { state: () => state, dispatch: async () => undefined, observe: () => () => undefined },
      journal,
      log: silentLogger(),
      onReset: () => undefined,
    });
    await csms.waitForStop();
    const seconds = (performance.now() - started) / 1000;
    await ocpp.stop();
    if (csms.received !== messages) throw new Error(`the CSMS received ${csms.received} transaction messages, expected ${messages}`);
    return messages / seconds;
  } finally {
    await csms.close();
    journal.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The protocol alone: the same number of MeterValues calls from a bare strict client, one in flight at a time. */
async function barePerSecond(messages = MESSAGES): Promise<number> {
  const csms = await startCsms();
  // Same settings as the pile's own client (agent/ocpp/connection.ts) where they matter for throughput.
  const client = new RPCClient({
    endpoint: csms.url,
    identity: IDENTITY,
    protocols: ["ocpp1.6"],
    strictMode: true,
    strictModeValidators: [],
    reconnect: false,
    maxReconnects: 0,
    callTimeoutMs: 30_000,
    pingIntervalMs: 60_000,
    deferPingsOnActivity: true,
    respondWithDetailedErrors: false,
    callConcurrency: 1,
    maxBadMessages: Infinity,
    password: null,
    wsOpts: {},
    headers: {},
    backoff: { initialDelay: 1_000, maxDelay: 60_000, factor: 2, randomisationFactor: 0.1 },
  });
  try {
    await client.connect();
    const started = performance.now();
    if (!pileMeterValues) throw new Error("run a drain first: the bare loop sends the pile's own MeterValues payload");
    for (let index = 0; index < messages; index++) await client.call("MeterValues", pileMeterValues);
    return messages / ((performance.now() - started) / 1000);
  } finally {
    await client.close({ force: true });
    await csms.close();
  }
}

// One short untimed round of each first: schema compilation and JIT warm-up belong to neither side.
await drainedPerSecond(Math.min(MESSAGES, 1_000));
await barePerSecond(Math.min(MESSAGES, 1_000));
const rows: { round: number; drained: number; bare: number }[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  // Alternate the order so a warming JIT or a busy neighbour does not favour one side.
  const drainedFirst = round % 2 === 1;
  const first = drainedFirst ? await drainedPerSecond() : await barePerSecond();
  const second = drainedFirst ? await barePerSecond() : await drainedPerSecond();
  rows.push({ round, drained: drainedFirst ? first : second, bare: drainedFirst ? second : first });
}
console.log(`OCPP 1.6J backlog drain after reconnect: ${MESSAGES} transaction messages (Start, MeterValues, Stop), loopback`);
console.log("round   drained msg/s   bare ocpp-rpc msg/s   drained/bare");
for (const row of rows) {
  console.log(`${String(row.round).padEnd(8)}${row.drained.toFixed(0).padStart(13)}   ${row.bare.toFixed(0).padStart(19)}   ${(row.drained / row.bare).toFixed(2).padStart(12)}`);
}
const ratio = rows.reduce((sum, row) => sum + row.drained / row.bare, 0) / rows.length;
console.log(`mean drained/bare: ${ratio.toFixed(2)} (target >= 0.5): ${ratio >= 0.5 ? "within" : "BELOW"} target`);

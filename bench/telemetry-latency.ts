/**
 * What telemetry costs the control loop, measured side by side in one run (DESIGN §3: "Telemetry never blocks the
 * control loop"). The agent's per-sample path is driven for real, with a session energized:
 *
 *   onSample(sample) -> step(core, state, meterSample) -> journal.append (FULL, fsync) -> onStep(state, event, commands)
 *
 * in three variants, each with its own journal, core state and telemetry instance:
 *   off        no telemetry (the hooks are absent); twice, so the spread between two identical variants (the
 *              noise floor of this machine and disk) is printed next to the real differences;
 *   connected  startTelemetry against the embedded aedes broker, running in a child process as a pile's broker
 *              runs elsewhere, with a subscriber on `#`; every sample is published (meterIntervalMs 0);
 *   down       startTelemetry against a port where nothing listens: it buffers (and drops, past bufferLimit) and
 *              retries in the background.
 * Samples are due at a fixed fast rate (every PERIOD_MS, 25× a pile's 4 Hz poll, yet slower than one journal fsync
 * at its worst, so the loop is not simply overloaded). A step's latency runs from the
 * moment its sample was due to the end of its step, so time the event loop spends on telemetry I/O (publishing,
 * PUBACKs, reconnects) between steps shows up as lateness of the next one; the synchronous work inside the step is
 * reported too. The variants run in alternating blocks (A B C, B C A, C A B, ...) to cancel drift; the ratios
 * on/off of p50 and p99 are the result (target on/off <= 1.1).
 *
 *   npx tsx bench/telemetry-latency.ts [samplesPerBlock] [rounds] [periodMs]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { connect as mqttConnect } from "mqtt";
import { initialState, step } from "../agent/core/step.ts";
import type { CoreCommand, CoreConfig, CoreEvent, CoreState } from "../agent/core/types.ts";
import { openJournal, type Journal } from "../agent/journal/journal.ts";
import { silentLogger } from "../agent/logging.ts";
import { freePort } from "../agent/net.ts";
import { configSchema } from "../agent/config/schema.ts";
import { startEmbeddedBroker } from "../agent/telemetry/embedded-broker.ts";
import { startTelemetry } from "../agent/telemetry/index.ts";
import type { Telemetry } from "../agent/telemetry/types.ts";
import type { MeterSample } from "../drivers/meters/types.ts";

const SAMPLES_PER_BLOCK = Number(process.argv[2] ?? 200);
const ROUNDS = Number(process.argv[3] ?? 12);
const PERIOD_MS = Number(process.argv[4] ?? 10);
const CHARGE_POINT_ID = "cp-bench";

// ------------------------------------------------------------------ the broker child (`--broker`)

interface BrokerProcess {
  url: string;
  /** Stops the broker; resolves with the number of messages its subscriber received. */
  stop(): Promise<number>;
}

async function spawnBroker(): Promise<BrokerProcess> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--broker"], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const next = (): Promise<string> =>
    new Promise((resolve, reject) => {
      lines.once("line", (line) => resolve(line.trim()));
      child.once("exit", (code) => reject(new Error(`broker process exited (${code})`)));
    });
  const url = await next();
  return {
    url,
    async stop() {
      const received = next();
      child.kill("SIGTERM");
      return Number(await received.catch(() => "NaN"));
    },
  };
}

// ------------------------------------------------------------------ one variant: its own journal, state, telemetry

interface Variant {
  name: string;
  journal: Journal;
  state: CoreState;
  telemetry?: Telemetry;
  energyWh: number;
  nowMs: number;
  lagMs: number[];
  workMs: number[];
  /** Time inside onSample + onStep alone, per measured step. */
  hookMs: number[];
  hookAccumMs: number;
}

const core: CoreConfig = {
  chargePointId: CHARGE_POINT_ID,
  confirmations: 1,
  stopMarginWh: 20,
  staleAfterMs: 3_000,
  feedbackTimeoutMs: 500,
  hasEvPresentInput: false,
  hasFeedbackInput: false,
  stopReadingDelayMs: 250,
  stopReadingTimeoutMs: 10_000,
};

function sampleOf(variant: Variant): MeterSample {
  variant.nowMs += 250;
  variant.energyWh += 1;
  return {
    readAtMs: variant.nowMs,
    importEnergyWh: variant.energyWh,
    powerW: 11_040,
    frequencyHz: 50,
    phases: [0, 1, 2].map(() => ({ voltageV: 230, currentA: 16, powerW: 3_680 })),
  };
}

/** The control loop's per-event work, as agent/runtime/agent.ts `process` does it. */
function processEvent(variant: Variant, event: CoreEvent): CoreCommand[] {
  const result = step(core, variant.state, event);
  variant.journal.append(event as unknown as { type: string });
  variant.state = result.state;
  if (variant.telemetry) {
    const begin = performance.now();
    variant.telemetry.onStep(variant.state, event, result.commands);
    variant.hookAccumMs += performance.now() - begin;
  }
  return result.commands;
}

/** Start-up, a huge deposit, confirmed and authorized, a first reading: the session is energized. */
function energize(variant: Variant): void {
  const at = (): number => (variant.nowMs += 10);
  processEvent(variant, { type: "startup", atMs: at() });
  processEvent(variant, {
    type: "depositSeen",
    atMs: at(),
    sessionId: 1n,
    ev: "0x00000000000000000000000000000000000000e1",
    depositWei: 10n ** 24n,
    priceWeiPerKWh: 300_000_000_000_000n,
    maxEnergyWh: 4_000_000_000,
    depositBlock: 10,
    depositBlockHash: `0x${"ab".repeat(32)}`,
    depositTxHash: `0x${"cd".repeat(32)}`,
  });
  processEvent(variant, { type: "chainHead", atMs: at(), blockNumber: 12 });
  processEvent(variant, { type: "authorizeMined", atMs: at(), sessionId: 1n, txHash: `0x${"ef".repeat(32)}` });
  const sample = sampleOf(variant);
  variant.telemetry?.onSample(sample);
  processEvent(variant, { type: "meterSample", atMs: sample.readAtMs, energyWh: sample.importEnergyWh, powerW: sample.powerW });
  if (variant.state.phase !== "energized") throw new Error(`${variant.name}: expected an energized session, got ${variant.state.phase}`);
}

function sleepUntil(dueMs: number): Promise<void> {
  const waitMs = dueMs - performance.now();
  // setTimeout has ~1 ms granularity; below that, yield once to the event loop (as the meter's socket read does).
  return new Promise((resolve) => (waitMs > 1 ? setTimeout(resolve, waitMs - 1) : setImmediate(resolve)));
}

async function runBlock(variant: Variant, samples: number, record: boolean): Promise<void> {
  const start = performance.now();
  for (let i = 0; i < samples; i++) {
    const dueMs = start + i * PERIOD_MS;
    while (performance.now() < dueMs) await sleepUntil(dueMs);
    const begin = performance.now();
    const sample = sampleOf(variant);
    variant.hookAccumMs = 0;
    if (variant.telemetry) {
      variant.telemetry.onSample(sample);
      variant.hookAccumMs += performance.now() - begin;
    }
    processEvent(variant, { type: "meterSample", atMs: sample.readAtMs, energyWh: sample.importEnergyWh, powerW: sample.powerW });
    const end = performance.now();
    if (record) {
      variant.lagMs.push(end - dueMs);
      variant.workMs.push(end - begin);
      variant.hookMs.push(variant.hookAccumMs);
    }
    // The real loop awaits the meter's socket between samples: let I/O run.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-bench-telemetry-"));
  const broker = await spawnBroker();
  const brokerUrl = broker.url;
  const deadUrl = `mqtt://127.0.0.1:${await freePort()}`;
  const mqtt = (url: string) => {
    const parsed = configSchema.shape.mqtt.parse({ url, homeAssistant: true, meterIntervalMs: 0, bufferLimit: 1000 });
    if (!parsed) throw new Error("mqtt section did not parse");
    return parsed;
  };
  const variants: Variant[] = [
    { name: "off", telemetry: undefined },
    { name: "off again (A/A noise floor)", telemetry: undefined },
    { name: "on, broker connected", telemetry: startTelemetry({ mqtt: mqtt(brokerUrl), chargePointId: CHARGE_POINT_ID, log: silentLogger() }) },
    { name: "on, broker down (buffering)", telemetry: startTelemetry({ mqtt: mqtt(deadUrl), chargePointId: CHARGE_POINT_ID, log: silentLogger() }) },
  ].map((v, index) => ({
    name: v.name,
    journal: openJournal(join(dir, `journal-${index}.sqlite`)),
    state: initialState(),
    ...(v.telemetry ? { telemetry: v.telemetry } : {}),
    energyWh: 1_000_000,
    nowMs: 1_700_000_000_000,
    lagMs: [],
    workMs: [],
    hookMs: [],
    hookAccumMs: 0,
  }));
  try {
    // Let the connected one connect (its `online` and discovery go out before the samples).
    const connectedBy = Date.now() + 5_000;
    while (!variants[2]!.telemetry!.stats().connected) {
      if (Date.now() > connectedBy) throw new Error(`no connection to the embedded broker at ${brokerUrl}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const variant of variants) energize(variant);
    // Warm-up: JIT, page cache, the journal's statements.
    for (const variant of variants) await runBlock(variant, 100, false);

    console.log(`telemetry latency: ${ROUNDS} rounds x ${SAMPLES_PER_BLOCK} samples per variant, one due every ${PERIOD_MS} ms, rotating order`);
    console.log(`journals in ${dir}; broker ${brokerUrl} in its own process; dead broker ${deadUrl}\n`);
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < variants.length; k++) {
        const variant = variants[(round + k) % variants.length]!;
        await runBlock(variant, SAMPLES_PER_BLOCK, true);
      }
    }
    // Let the connected telemetry catch up, so its stats say what it delivered.
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    const off = variants[0]!;
    const pad = (text: string, width: number): string => text.padEnd(width);
    const ms = (value: number): string => value.toFixed(3);
    console.log(
      `${pad("variant", 30)}${pad("lag p50", 10)}${pad("lag p99", 10)}${pad("work p50", 10)}${pad("work p99", 10)}${pad("hooks p50", 11)}${pad("p50/off", 9)}${pad("p99/off", 9)}telemetry`,
    );
    const ratios: { name: string; p50: number; p99: number }[] = [];
    for (const variant of variants) {
      const p50 = percentile(variant.lagMs, 50);
      const p99 = percentile(variant.lagMs, 99);
      const r50 = p50 / percentile(off.lagMs, 50);
      const r99 = p99 / percentile(off.lagMs, 99);
      if (variant !== off) ratios.push({ name: variant.name, p50: r50, p99: r99 });
      const stats = variant.telemetry?.stats();
      const tail = stats
        ? `published ${stats.published}, buffered ${stats.buffered} (max ${stats.maxBuffered}/${stats.bufferLimit}), dropped ${JSON.stringify(stats.dropped)}`
        : "-";
      console.log(
        `${pad(variant.name, 30)}${pad(ms(p50), 10)}${pad(ms(p99), 10)}${pad(ms(percentile(variant.workMs, 50)), 10)}${pad(ms(percentile(variant.workMs, 99)), 10)}${pad(ms(percentile(variant.hookMs, 50)), 11)}${pad(r50.toFixed(2), 9)}${pad(r99.toFixed(2), 9)}${tail}`,
      );
    }
    const connectedStats = variants[2]!.telemetry!.stats();
    await variants[2]!.telemetry!.close(1_000);
    console.log(`\nthe broker's subscriber received ${await broker.stop()} messages; the connected telemetry had ${connectedStats.published} acknowledged`);
    console.log("lag = from the sample's due time to the end of its step (includes event-loop time spent on telemetry I/O);");
    console.log("work = the step itself (onSample, step, journal append with fsync, onStep); hooks = onSample + onStep alone; all ms");
    for (const ratio of ratios) {
      const ok = ratio.p50 <= 1.1 ? "ok" : "OVER";
      console.log(`ratio on/off p50, ${ratio.name}: ${ratio.p50.toFixed(2)} (target <= 1.1): ${ok}; p99 ${ratio.p99.toFixed(2)}`);
    }
  } finally {
    for (const variant of variants) {
      await variant.telemetry?.close(500);
      variant.journal.close();
    }
    await broker.stop().catch(() => NaN);
    rmSync(dir, { recursive: true, force: true });
  }
}

// The same file is the broker's process when started with `--broker`.
if (process.argv.includes("--broker")) {
  const broker = await startEmbeddedBroker({ port: 0 });
  // The operator's subscriber lives with the broker, not in the measured process.
  const subscriber = mqttConnect(broker.url, { protocolVersion: 4 });
  let received = 0;
  subscriber.on("message", () => (received += 1));
  await new Promise<void>((resolve) => subscriber.once("connect", () => subscriber.subscribe("#", { qos: 1 }, () => resolve())));
  process.stdout.write(`${broker.url}\n`);
  process.on("SIGTERM", () => {
    process.stdout.write(`${received}\n`);
    void subscriber.endAsync(true).then(() => broker.stop()).then(() => process.exit(0));
  });
} else {
  await main();
}

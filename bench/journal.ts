/**
 * What durability costs the journal: events/s written with synchronous = FULL and one transaction per event (what the
 * agent does: every event is on disk before its commands run), next to the same events batched 100 per transaction,
 * and to synchronous = NORMAL (no fsync per commit; loses the last commits on a power cut). Measured side by side in
 * one run, in alternating rounds so drift in the disk's speed hits every mode alike; ratios are to FULL single.
 *
 *   npx tsx bench/journal.ts [msPerModePerRound] [rounds]
 *
 * The journals live in a fresh directory under the OS temp dir (set TMPDIR to measure another disk, e.g. the pile's
 * SD card). On tmpfs an fsync costs nothing and the ratios say nothing; the bench warns about that.
 */
import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { openJournal, type Journal } from "../agent/journal/journal.ts";

const MS_PER_MODE = Number(process.argv[2] ?? 1500);
const ROUNDS = Number(process.argv[3] ?? 3);
const BATCH = 100;
/** statfs f_type of tmpfs (linux/magic.h TMPFS_MAGIC). */
const TMPFS_MAGIC = 0x01021994;

interface Mode {
  name: string;
  synchronous: "full" | "normal";
  batch: number;
}

const MODES: Mode[] = [
  { name: "FULL, 1 event per transaction", synchronous: "full", batch: 1 },
  { name: `FULL, ${BATCH} events per transaction`, synchronous: "full", batch: BATCH },
  { name: "NORMAL, 1 event per transaction", synchronous: "normal", batch: 1 },
];

let counter = 0;

/** A meter sample as the agent journals it: integer Wh per phase, wei as bigint. */
function sample(): { type: string; [key: string]: unknown } {
  counter++;
  return {
    type: "meter.sample",
    sessionId: 42n,
    atMs: 1_700_000_000_000 + counter * 1000,
    importEnergyWh: 1_234_500 + counter,
    phaseEnergyWh: [411_500 + counter, 411_500, 411_500],
    powerW: 6900,
    costWei: BigInt(counter) * 250_000_000_000_000n,
  };
}

/** Writes for about `ms` and returns events per second. */
function measure(journal: Journal, mode: Mode, ms: number): number {
  let events = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    if (mode.batch === 1) {
      journal.append(sample());
    } else {
      journal.transaction(() => {
        for (let i = 0; i < mode.batch; i++) journal.append(sample());
      });
    }
    events += mode.batch;
    elapsed = performance.now() - started;
  }
  return (events / elapsed) * 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? NaN) : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-bench-journal-"));
  try {
    const onTmpfs = statfsSync(dir).type === TMPFS_MAGIC;
    console.log(`journal bench in ${dir}${onTmpfs ? " (tmpfs: fsync is free here, set TMPDIR to a real disk)" : ""}`);
    console.log(`${ROUNDS} rounds x ${MS_PER_MODE} ms per mode, median of rounds\n`);

    const journals = MODES.map((mode, index) =>
      openJournal(join(dir, `journal-${index}.sqlite`), { synchronous: mode.synchronous }),
    );
    const rates: number[][] = MODES.map(() => []);
    // Warm-up: page cache, prepared statements, JIT.
    MODES.forEach((mode, index) => measure(journals[index] as Journal, mode, 200));
    for (let round = 0; round < ROUNDS; round++) {
      MODES.forEach((mode, index) => rates[index]?.push(measure(journals[index] as Journal, mode, MS_PER_MODE)));
    }
    for (const journal of journals) journal.close();

    const medians = rates.map(median);
    const baseline = medians[0] ?? NaN;
    const pad = (text: string, width: number): string => text.padEnd(width);
    console.log(`${pad("mode", 36)}${pad("events/s", 12)}${pad("ms/commit", 12)}vs FULL single`);
    MODES.forEach((mode, index) => {
      const rate = medians[index] ?? NaN;
      const msPerCommit = (1000 / rate) * mode.batch;
      console.log(`${pad(mode.name, 36)}${pad(rate.toFixed(0), 12)}${pad(msPerCommit.toFixed(3), 12)}${(rate / baseline).toFixed(1)}x`);
    });
    console.log("");
    console.log(
      "The agent writes FULL, one event per transaction: each event is durable, power cut included, before its commands run.",
    );
    console.log("Batching (journal.transaction) is for writes that belong together; NORMAL can lose commits that returned.");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();

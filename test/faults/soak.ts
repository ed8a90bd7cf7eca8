/**
 * `npm run soak` (tsx test/faults/soak.ts): the long form of the fault-injection suite (issue 11, item 2). Starts its own
 * anvil (fast blocks), the fault world of test/faults/fault-world.ts with K piles (agents as child processes, OCPP
 * to the CSMS simulator, telemetry to the embedded broker), and runs N short accelerated sessions with faults from
 * a printed seed, checking every invariant of test/faults/invariants.ts after each session and memory at the end.
 *
 *   npm run soak -- --sessions 1000 --seed 7 --piles 4 --out out/soak.json
 *
 * Options: --sessions N (1000), --seed N (random, printed), --piles K (6), --out FILE, --fault-share 0..1 (0.5),
 * --speedup X (5; at most 6: the SDM630's plausibility bound is 69 kW and the EV draws 11 kW × X), --block-time S
 * (0.25), --min-wh/--max-wh (60/150), --kinds a,b,c (every kind), --keep-rows N (300: completed
 * outbox rows each pile's journal keeps; tombstones 4 × N).
 *
 * reorgAboveDepth is among them since the agent survives it (issue 11): a reorg deeper than the confirmations drops
 * the deposit and the pile's own authorize for good (anvil_reorg), the ledger hands the session id out again, and the
 * pile serves the next deposit as a new session (outbox keys `authorize:<id>/r<N>`) while the tx sender fills the
 * nonce the lost authorize left at once; later sessions of the pile settle.
 * Exit code 0 when every invariant held, 1 otherwise (or when a session never ended), 2 on bad arguments.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { startDevChain } from "../../agent/chain/dev-chain.ts";
import { freePort } from "../../agent/net.ts";
import { startFaultWorld, type FaultPile, type JournalStats, type SessionOutcome } from "./fault-world.ts";
import { checkInvariants, describeViolations, physicalWhAt, type Violation } from "./invariants.ts";
import { FAULT_KINDS, planSchedule, type FaultKind, type PlannedSession } from "./schedule.ts";
import { slicePileRecord } from "./slice.ts";

interface SoakOptions {
  sessions: number;
  seed: number;
  piles: number;
  out: string | undefined;
  faultShare: number;
  speedup: number;
  blockTimeS: number;
  minWh: number;
  maxWh: number;
  kinds: FaultKind[];
  keepRows: number;
}

function usage(message: string): never {
  process.stderr.write(`soak: ${message}\n`);
  process.exit(2);
}

function numberOption(name: string, raw: string | undefined, fallback: number, check: (value: number) => boolean, expected: string): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || !check(value)) usage(`--${name}: expected ${expected}, got "${raw}"`);
  return value;
}

function parseOptions(argv: string[]): SoakOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      sessions: { type: "string" },
      seed: { type: "string" },
      piles: { type: "string" },
      out: { type: "string" },
      "fault-share": { type: "string" },
      speedup: { type: "string" },
      "block-time": { type: "string" },
      "min-wh": { type: "string" },
      "max-wh": { type: "string" },
      kinds: { type: "string" },
      "keep-rows": { type: "string" },
    },
    strict: true,
  });
  const integer = (value: number): boolean => Number.isInteger(value) && value >= 1;
  const kinds = values.kinds === undefined ? [...FAULT_KINDS] : values.kinds.split(",").map((kind) => kind.trim());
  for (const kind of kinds) if (!(FAULT_KINDS as readonly string[]).includes(kind)) usage(`--kinds: unknown fault kind "${kind}"; known: ${FAULT_KINDS.join(", ")}`);
  const minWh = numberOption("min-wh", values["min-wh"], 60, integer, "an integer >= 1");
  const maxWh = numberOption("max-wh", values["max-wh"], 150, (value) => integer(value) && value >= minWh, `an integer >= --min-wh (${minWh})`);
  return {
    sessions: numberOption("sessions", values.sessions, 1_000, integer, "an integer >= 1"),
    seed: numberOption("seed", values.seed, Math.floor(Math.random() * 2 ** 31), (value) => Number.isInteger(value) && value >= 0, "an integer >= 0"),
    piles: numberOption("piles", values.piles, 6, (value) => integer(value) && value <= 16, "an integer 1..16"),
    out: values.out,
    faultShare: numberOption("fault-share", values["fault-share"], 0.5, (value) => value >= 0 && value <= 1, "a number 0..1"),
    // The meter driver refuses energy rising faster than 69 kW (SDM630) as implausible: 11 kW × 6 is the most.
    speedup: numberOption("speedup", values.speedup, 5, (value) => value >= 1 && value <= 6, "a number 1..6 (11 kW × speed-up must stay under the SDM630's 69 kW plausibility bound)"),
    blockTimeS: numberOption("block-time", values["block-time"], 0.25, (value) => value > 0 && value <= 12, "seconds > 0 and <= 12"),
    minWh,
    maxWh,
    kinds: kinds as FaultKind[],
    keepRows: numberOption("keep-rows", values["keep-rows"], 300, integer, "an integer >= 1"),
  };
}

interface Window {
  sessions: number;
  rssMinKb: number;
  rssMaxKb: number;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const startedAtMs = Date.now();
  const print = (line: string): void => void process.stdout.write(`${line}\n`);
  print(`soak: seed ${options.seed}, ${options.sessions} sessions on ${options.piles} piles, faults in ${Math.round(options.faultShare * 100)} % of sessions (${options.kinds.join(", ")}), speed-up ${options.speedup}, ${options.blockTimeS} s blocks`);

  const chain = await startDevChain({ port: await freePort(), accounts: 20 });
  // At 11 kW × speed-up, a killed agent's closed contactor delivers this much before the restarted one opens it
  // (about 5 s for a restart on a loaded 2-core machine); the deposit covers it on top of the session's target.
  const stopMarginWh = Math.ceil((11_000 * options.speedup * 6) / 3_600);
  const world = await startFaultWorld({
    rpcUrl: chain.rpcUrl,
    piles: options.piles,
    confirmations: 3,
    speedup: options.speedup,
    blockIntervalS: options.blockTimeS,
    stopMarginWh,
    // A pile keeps 5,000 completed outbox rows by default, more than a soak's share of sessions makes: keep fewer so
    // the journal's compaction (rows behind tombstones, pages reused) shows within the run.
    journalRetention: { keepCompletedRows: options.keepRows, keepTombstones: options.keepRows * 4 },
    log: (line) => print(`  ${line}`),
  });
  const plan = planSchedule(options.seed, { sessions: options.sessions, faultShare: options.faultShare, kinds: options.kinds, minTargetWh: options.minWh, maxTargetWh: options.maxWh });

  const outcomes: Record<SessionOutcome | "error", number> = { settled: 0, reorgedAway: 0, lostToDeepReorg: 0, notEnded: 0, error: 0 };
  const faultsByKind: Record<string, { planned: number; injected: number; withEvidence: number }> = {};
  for (const kind of options.kinds) faultsByKind[kind] = { planned: 0, injected: 0, withEvidence: 0 };
  const violations: Violation[] = [];
  let checksRun = 0;
  let deliveredWh = 0;
  let settledWh = 0;
  let done = 0;
  const windows: Window[] = [];
  const journalOverTime: { sessions: number; piles: ({ pile: string } & JournalStats)[] }[] = [];
  let next = 0;

  const recordJournal = (): void => {
    journalOverTime.push({ sessions: done, piles: world.piles.map((pile) => ({ pile: pile.name, ...world.journalStats(pile) })) });
  };
  recordJournal();

  async function worker(pile: FaultPile): Promise<void> {
    for (;;) {
      const planned: PlannedSession | undefined = plan[next];
      if (!planned) return;
      next++;
      const label = `s${planned.index + 1}`;
      if (planned.fault) faultsByKind[planned.fault.kind]!.planned++;
      const sessionStart = Date.now();
      try {
        const result = await world.runSession(pile, planned, label);
        outcomes[result.outcome]++;
        if (result.fault) {
          faultsByKind[result.fault.kind]!.injected++;
          if (result.fault.evidence !== undefined) faultsByKind[result.fault.kind]!.withEvidence++;
        }
        const record = world.pileRecord(pile);
        const check = checkInvariants({
          seed: options.seed,
          confirmations: 3,
          piles: [slicePileRecord(record, result.record.windowStartMs, result.record.windowEndMs)],
          sessions: [result.record],
          // Memory is judged over the whole run at the end, not per session.
          limits: { rssMinSamples: Number.MAX_SAFE_INTEGER },
        });
        checksRun += check.checksRun;
        violations.push(...check.violations);
        if (check.violations.length > 0) {
          print(describeViolations(options.seed, check.violations));
          // What the agent said during the session, to tell what went wrong without a rerun.
          for (const line of result.lines.filter((entry) => entry.phase !== undefined || entry.settle !== undefined || entry.relay !== undefined || entry.clockOffsetMs !== undefined || entry.meterFault !== undefined)) {
            print(`    ${JSON.stringify(line)}`);
          }
        }
        settledWh += result.record.chain?.status === "Settled" ? result.record.chain.energyWh : 0;
        const sessionMeter = slicePileRecord(record, result.record.windowStartMs, result.record.windowEndMs).meter;
        const wh = physicalWhAt(sessionMeter, result.record.windowEndMs) - physicalWhAt(sessionMeter, result.record.windowStartMs);
        deliveredWh += wh;
        done++;
        print(
          `[${done}/${options.sessions}] ${label} ${pile.name} ${result.outcome} ${result.record.chain?.energyWh ?? "-"} Wh (meter ${wh.toFixed(1)})` +
            `${result.fault ? ` fault ${result.fault.kind}: ${result.fault.evidence ?? "no evidence"}` : planned.fault ? ` fault ${planned.fault.kind} not reached` : ""}` +
            ` ${((Date.now() - sessionStart) / 1000).toFixed(1)} s, ${((done / ((Date.now() - startedAtMs) / 3_600_000))).toFixed(0)} sessions/h`,
        );
      } catch (error) {
        outcomes.error++;
        done++;
        const message = error instanceof Error ? error.message : String(error);
        violations.push({ invariant: "sessionNotEndedOnce", pile: pile.name, session: label, message: `${label} on ${pile.name} failed: ${message}` });
        print(`[${done}/${options.sessions}] ${label} ${pile.name} ERROR [seed ${options.seed}] ${message}`);
      }
      if (done % 100 === 0) recordJournal();
      // The recorders keep only what the next session's check needs.
      world.pruneBefore(Math.min(...world.piles.map((candidate) => candidate.meter.at(-1)?.atMs ?? Date.now())) - 60_000);
    }
  }

  // RSS per 100 sessions: sample windows are cut on the session count.
  let windowStartIndex = new Map(world.piles.map((pile) => [pile.name, 0]));
  const windowTimer = setInterval(() => {
    if (done < (windows.length + 1) * 100 && done !== options.sessions) return;
    const rss = world.piles.flatMap((pile) => pile.rss.slice(windowStartIndex.get(pile.name) ?? 0).map((sample) => sample.rssKb));
    windowStartIndex = new Map(world.piles.map((pile) => [pile.name, pile.rss.length]));
    if (rss.length > 0) windows.push({ sessions: done, rssMinKb: Math.min(...rss), rssMaxKb: Math.max(...rss) });
  }, 500);

  await Promise.all(world.piles.map((pile) => worker(pile)));
  clearInterval(windowTimer);
  const rssAll = world.piles.flatMap((pile) => pile.rss.slice(windowStartIndex.get(pile.name) ?? 0).map((sample) => sample.rssKb));
  if (rssAll.length > 0 && (windows.at(-1)?.sessions ?? -1) !== done) windows.push({ sessions: done, rssMinKb: Math.min(...rssAll), rssMaxKb: Math.max(...rssAll) });

  // Memory over the whole run, every process of every pile.
  const memory = checkInvariants({ seed: options.seed, confirmations: 3, piles: world.piles.map((pile) => ({ name: pile.name, relayEdges: [], meter: [], rss: pile.rss })), sessions: [] });
  checksRun += memory.checksRun;
  violations.push(...memory.violations);
  if (memory.violations.length > 0) print(describeViolations(options.seed, memory.violations));
  recordJournal();
  const elapsedS = (Date.now() - startedAtMs) / 1000;
  const kills = world.piles.reduce((sum, pile) => sum + pile.runs.length - 1, 0);
  const agentDownMs = world.piles.flatMap((pile) => pile.agentDown.map((span) => span.toMs - span.fromMs));
  const debtsPaid = world.debtsPaid.length;
  await world.close();
  await chain.stop();

  const report = {
    seed: options.seed,
    options: { ...options, kinds: options.kinds },
    elapsedS: Math.round(elapsedS),
    sessions: done,
    sessionsPerHour: Math.round(done / (elapsedS / 3600)),
    outcomes,
    faultsByKind,
    agentRestartsAfterKill: kills,
    /** From a kill -9 to the restarted agent's first relay write (it opens the relay first), ms. */
    agentDownMaxMs: agentDownMs.length > 0 ? Math.max(...agentDownMs) : 0,
    agentDownMeanMs: agentDownMs.length > 0 ? Math.round(agentDownMs.reduce((sum, ms) => sum + ms, 0) / agentDownMs.length) : 0,
    evDebtsPaid: debtsPaid,
    deliveredWh: Math.round(deliveredWh),
    settledWh,
    invariantChecks: checksRun,
    violations,
    rssPer100Sessions: windows,
    journalOverTime,
  };
  print("");
  print(`soak report (seed ${options.seed})`);
  print(`  ${done} sessions in ${Math.round(elapsedS)} s: ${report.sessionsPerHour} sessions/hour`);
  print(`  outcomes: ${Object.entries(outcomes).map(([name, count]) => `${name} ${count}`).join(", ")}`);
  print(`  faults (planned/injected/with evidence): ${Object.entries(faultsByKind).map(([kind, count]) => `${kind} ${count.planned}/${count.injected}/${count.withEvidence}`).join(", ")}`);
  print(`  energy: ${Math.round(deliveredWh)} Wh delivered, ${settledWh} Wh settled`);
  print(`  kills: ${kills} agent restarts, down ${report.agentDownMeanMs} ms on average, ${report.agentDownMaxMs} ms at most; ${debtsPaid} EV debts paid (a closed contactor outran a deposit while no agent ran)`);
  print(`  invariant checks: ${checksRun}, violations: ${violations.length}`);
  for (const window of windows) print(`  RSS up to session ${window.sessions}: ${Math.round(window.rssMinKb / 1024)}-${Math.round(window.rssMaxKb / 1024)} MB`);
  for (const entry of journalOverTime) {
    print(`  journal after ${entry.sessions} sessions: ${entry.piles.map((pile) => `${pile.pile} ${Math.round(pile.fileBytes / 1024)} kB file, ${Math.round(pile.usedBytes / 1024)} kB used, ${Math.round(pile.walBytes / 1024)} kB WAL, ${pile.events} events, ${pile.outbox} outbox, ${pile.tombstones} tombstones`).join("; ")}`);
  }
  if (options.out) {
    mkdirSync(dirname(options.out), { recursive: true });
    writeFileSync(options.out, `${JSON.stringify(report, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value), 2)}\n`);
    print(`  report written to ${options.out}`);
  }
  process.exit(violations.length === 0 && outcomes.error === 0 ? 0 : 1);
}

main().catch((error: unknown) => {
  process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});

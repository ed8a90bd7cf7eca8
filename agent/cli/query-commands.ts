/**
 * `trustpile query cp|ev`: the paper's Algorithm 1 (DESIGN §4.2). The history is read by following the contracts'
 * pointers from the heads (agent/chain/history.ts), never by scanning logs: charging records and evaluations,
 * newest first, with the charge point's reputation R_cp or the EV's credibility R_v.
 */
import { formatEther, isAddress, type Provider } from "ethers";
import type { Command } from "commander";
import { connectProvider } from "../chain/provider.ts";
import { connectEvaluations, connectLedger, connectRegistry } from "../chain/contracts.ts";
import {
  contractReader,
  cpHistory,
  evHistory,
  type ChargingRecord,
  type CpHistory,
  type EvaluationRecord,
  type EvHistory,
  type HistoryCursor,
  type HistoryReader,
} from "../chain/history.ts";
import { describeRevert } from "../chain/revert.ts";
import type { EvaluationsContract } from "../../contracts/artifacts/Evaluations.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { RuntimeError, TrustpileError, UsageError } from "../errors.ts";
import { SD_UNIT } from "../reputation/eq2.ts";
import {
  DEFAULT_DEPLOYMENT,
  addChainOptions,
  deploymentOf,
  isCpIdHex,
  optionalConfig,
  parseUint,
  rpcUrlOf,
  type ChainOptions,
} from "./chain-context.ts";

interface QueryOptions extends ChainOptions {
  json?: boolean;
  limit?: string;
  fromRecord?: string;
  fromEvaluation?: string;
}

/** Decimal places of reputations in the human output (the JSON carries the exact SD59x18 integers). */
const REPUTATION_DECIMALS = 6;

export function registerQueryCommands(program: Command): void {
  const query = program.command("query").description("history by pointers (the paper's Algorithm 1)");

  withQueryOptions(
    query
      .command("cp <cpId>")
      .description(
        "charging records and evaluations of a charge point, newest first, by following prevOfCp from cpHead; and its reputation R_cp",
      ),
  ).action(async (cp: string, options: QueryOptions) => {
    const cpId = isCpIdHex(cp) ? cp.toLowerCase() : cpIdOf(cp);
    await queryCp(options, cpId, `charge point ${cp}${isCpIdHex(cp) ? "" : ` (cpId ${cpId})`}`, cp);
  });

  withQueryOptions(
    query
      .command("ev <address>")
      .description(
        "charging records of an EV and the evaluations it gave, newest first, by following prevOfEv from evHead; and its credibility R_v",
      ),
  ).action(async (ev: string, options: QueryOptions) => {
    if (!isAddress(ev)) throw new UsageError(`query ev: expected a 0x address, got "${ev}"`);
    await queryEv(options, ev);
  });
}

function withQueryOptions(command: Command): Command {
  return addChainOptions(
    command
      .option("--json", "machine-readable output (integers as decimal strings, reputations as SD59x18)")
      .option("--limit <n>", "at most n charging records and n evaluations (one page)")
      .option("--from-record <n>", "continue the charging records at this record number (the next page's cursor)")
      .option("--from-evaluation <n>", "continue the evaluations at this evaluation number (the next page's cursor)"),
  );
}

interface QueryContext {
  provider: Provider;
  reader: HistoryReader;
  registryAddress: string;
  limit: number | undefined;
  from: HistoryCursor | undefined;
}

async function withContext<T>(options: QueryOptions, work: (context: QueryContext) => Promise<T>): Promise<T> {
  const limit = options.limit === undefined ? undefined : parseLimit(options.limit);
  const from = cursorOf(options);
  const config = optionalConfig(options);
  const deployment = deploymentOf(options, config);
  const provider = await connectProvider(rpcUrlOf(options, config));
  try {
    const ledger = connectLedger(deployment.ChargingLedger, provider);
    let evaluations: EvaluationsContract | undefined;
    if (deployment.Evaluations) {
      evaluations = connectEvaluations(deployment.Evaluations, provider);
    } else {
      const path = options.deployment ?? config?.chain.deployment ?? DEFAULT_DEPLOYMENT;
      process.stderr.write(`trustpile: deployment file ${path} names no Evaluations contract: showing charging records only\n`);
    }
    return await work({ provider, reader: contractReader(ledger, evaluations), registryAddress: deployment.Registry, limit, from });
  } catch (error) {
    if (error instanceof TrustpileError) throw error;
    throw new RuntimeError(`reading the history from the chain failed: ${describeRevert(error)}`, { cause: error });
  } finally {
    provider.destroy();
  }
}

function parseLimit(value: string): number {
  const limit = parseUint(value, "--limit");
  if (limit === 0) throw new UsageError("--limit: must be 1 or more");
  return limit;
}

function cursorOf(options: QueryOptions): HistoryCursor | undefined {
  if (options.fromRecord === undefined && options.fromEvaluation === undefined) return undefined;
  return {
    chargingRecord: options.fromRecord === undefined ? 0n : BigInt(parseUint(options.fromRecord, "--from-record")),
    evaluation: options.fromEvaluation === undefined ? 0n : BigInt(parseUint(options.fromEvaluation, "--from-evaluation")),
  };
}

async function queryCp(options: QueryOptions, cpId: string, title: string, given: string): Promise<void> {
  const history = await withContext(options, async ({ provider, reader, registryAddress, limit, from }) => {
    // The registry read runs alongside the walk, so checking that the pile exists costs no extra round trip.
    const [cpNo, history] = await Promise.all([
      connectRegistry(registryAddress, provider).cpNoOf(cpId),
      cpHistory(reader, cpId, { limit, from }),
    ]);
    if (cpNo === 0n) throw new UsageError(`query cp ${given}: no charge point with cpId ${cpId} is registered`);
    checkCursorOwner(history, (record) => record.cpId === cpId, `charge point ${given}`);
    return history;
  });
  if (options.json) {
    process.stdout.write(`${JSON.stringify(cpJson(history), null, 2)}\n`);
    return;
  }
  const reputation =
    history.reputation === undefined ? "unknown (no Evaluations contract)" : formatSd59x18(history.reputation, REPUTATION_DECIMALS);
  process.stdout.write(`${title}\n  reputation R_cp ${reputation}\n`);
  printPage(history, "cp");
}

async function queryEv(options: QueryOptions, ev: string): Promise<void> {
  const history = await withContext(options, async ({ reader, limit, from }) => {
    const history = await evHistory(reader, ev, { limit, from });
    checkCursorOwner(history, (record) => record.ev.toLowerCase() === ev.toLowerCase(), `EV ${ev}`);
    return history;
  });
  if (options.json) {
    process.stdout.write(`${JSON.stringify(evJson(history), null, 2)}\n`);
    return;
  }
  process.stdout.write(`EV ${ev}\n  credibility R_v ${history.credibility}\n`);
  printPage(history, "ev");
}

/** A page that starts at a user's cursor must start in this pile's (or EV's) own lists. */
function checkCursorOwner(
  history: CpHistory | EvHistory,
  belongs: (record: { cpId: string; ev: string }) => boolean,
  owner: string,
): void {
  const [firstRecord] = history.chargingRecords;
  if (firstRecord && !belongs(firstRecord)) {
    throw new UsageError(`--from-record ${firstRecord.recordNo}: charging record ${firstRecord.recordNo} is not one of ${owner}'s`);
  }
  const firstEvaluation = history.evaluations?.[0];
  if (firstEvaluation && !belongs(firstEvaluation)) {
    throw new UsageError(
      `--from-evaluation ${firstEvaluation.evaluationNo}: evaluation ${firstEvaluation.evaluationNo} is not one of ${owner}'s`,
    );
  }
}

function printPage(history: CpHistory | EvHistory, direction: "cp" | "ev"): void {
  const out: string[] = [];
  const ratedBy = new Map<bigint, EvaluationRecord>();
  for (const evaluation of history.evaluations ?? []) ratedBy.set(evaluation.chargingRecordNo, evaluation);

  out.push(`  charging records: ${history.chargingRecords.length} (newest first)`);
  for (const r of history.chargingRecords) {
    const rating = ratedBy.get(r.recordNo);
    out.push(
      `    record #${r.recordNo} (global ${r.globalNo}) session ${r.sessionId} ` +
        (direction === "cp" ? `ev ${r.ev}` : `cpId ${r.cpId}`) +
        ` ${r.energyWh} Wh cost ${r.costWei} wei (${formatEther(r.costWei)} ETH) EV score ${signed(r.evScore)} ` +
        `prevOfCp ${r.prevOfCp} prevOfEv ${r.prevOfEv}` +
        (rating ? `; rated W=${rating.score} in evaluation #${rating.evaluationNo}` : ""),
    );
  }
  if (history.evaluations === undefined) {
    out.push("  evaluations: not available (the deployment names no Evaluations contract)");
  } else {
    out.push(`  evaluations: ${history.evaluations.length} (newest first)`);
    for (const e of history.evaluations) {
      out.push(
        `    evaluation #${e.evaluationNo} (global ${e.globalNo}) rates charging record #${e.chargingRecordNo} ` +
          (direction === "cp" ? `by ev ${e.ev}` : `of cpId ${e.cpId}`) +
          ` score W=${e.score} reputation ${formatSd59x18(e.reputationBefore, REPUTATION_DECIMALS)} -> ` +
          `${formatSd59x18(e.reputationAfter, REPUTATION_DECIMALS)} prevOfCp ${e.prevOfCp} prevOfEv ${e.prevOfEv}`,
      );
    }
  }
  const { chargingRecord, evaluation } = history.next;
  if (chargingRecord !== 0n || evaluation !== 0n) {
    out.push(`  more: continue with --from-record ${chargingRecord} --from-evaluation ${evaluation}`);
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

function signed(value: number): string {
  return value > 0 ? `+${value}` : String(value);
}

/** An SD59x18 integer as a decimal with `decimals` places, rounded half away from zero, exactly (no float). */
export function formatSd59x18(value: bigint, decimals: number): string {
  const negative = value < 0n;
  const magnitude = negative ? -value : value;
  const scale = 10n ** BigInt(18 - decimals);
  const rounded = (magnitude + scale / 2n) / scale;
  const unit = 10n ** BigInt(decimals);
  const whole = rounded / unit;
  const fraction = (rounded % unit).toString().padStart(decimals, "0");
  const text = decimals > 0 ? `${whole}.${fraction}` : `${whole}`;
  return negative && rounded !== 0n ? `-${text}` : text;
}

type Json = string | number | null | Json[] | { [key: string]: Json };

function cpJson(history: CpHistory): Json {
  return {
    cpId: history.cpId,
    reputation: history.reputation === undefined ? null : history.reputation.toString(),
    reputationUnit: SD_UNIT.toString(),
    ...pageJson(history),
  };
}

function evJson(history: EvHistory): Json {
  return { ev: history.ev, credibility: history.credibility.toString(), ...pageJson(history) };
}

function pageJson(history: CpHistory | EvHistory): { [key: string]: Json } {
  return {
    chargingRecords: history.chargingRecords.map(chargingRecordJson),
    evaluations: history.evaluations === undefined ? null : history.evaluations.map(evaluationJson),
    next: { chargingRecord: history.next.chargingRecord.toString(), evaluation: history.next.evaluation.toString() },
  };
}

function chargingRecordJson(record: ChargingRecord): Json {
  return {
    recordNo: record.recordNo.toString(),
    globalNo: record.globalNo.toString(),
    sessionId: record.sessionId.toString(),
    cpId: record.cpId,
    ev: record.ev,
    energyWh: record.energyWh.toString(),
    costWei: record.costWei.toString(),
    evScore: record.evScore,
    prevOfCp: record.prevOfCp.toString(),
    prevOfEv: record.prevOfEv.toString(),
  };
}

function evaluationJson(evaluation: EvaluationRecord): Json {
  return {
    evaluationNo: evaluation.evaluationNo.toString(),
    globalNo: evaluation.globalNo.toString(),
    chargingRecordNo: evaluation.chargingRecordNo.toString(),
    prevOfCp: evaluation.prevOfCp.toString(),
    prevOfEv: evaluation.prevOfEv.toString(),
    cpId: evaluation.cpId,
    ev: evaluation.ev,
    score: evaluation.score,
    reputationBefore: evaluation.reputationBefore.toString(),
    reputationAfter: evaluation.reputationAfter.toString(),
  };
}

import { formatEther, isAddress } from "ethers";
import type { Command } from "commander";
import { connectLedger } from "../chain/contracts.ts";
import { chargingHistory, type ChargingRecord } from "../chain/history.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { UsageError } from "../errors.ts";
import { addChainOptions, chainProvider, deploymentOf, isCpIdHex, optionalConfig, type ChainOptions } from "./chain-context.ts";

interface QueryOptions extends ChainOptions {
  json?: boolean;
}

export function registerQueryCommands(program: Command): void {
  const query = program.command("query").description("history by pointers (the paper's Algorithm 1)");

  addChainOptions(
    query
      .command("cp <cpId>")
      .description("charging records of a charge point, newest first, by following prevOfCp from cpHead")
      .option("--json", "machine-readable output"),
  ).action(async (cp: string, options: QueryOptions) => {
    const cpId = isCpIdHex(cp) ? cp : cpIdOf(cp);
    await printHistory(options, { cpId }, `charge point ${cp}${cp === cpId ? "" : ` (cpId ${cpId})`}`);
  });

  addChainOptions(
    query
      .command("ev <address>")
      .description("charging records of an EV, newest first, by following prevOfEv from evHead")
      .option("--json", "machine-readable output"),
  ).action(async (ev: string, options: QueryOptions) => {
    if (!isAddress(ev)) throw new UsageError(`query ev: expected a 0x address, got "${ev}"`);
    await printHistory(options, { ev }, `EV ${ev}`);
  });
}

async function printHistory(options: QueryOptions, of: { cpId: string } | { ev: string }, title: string): Promise<void> {
  const config = optionalConfig(options);
  const provider = await chainProvider(options, config);
  try {
    const ledger = connectLedger(deploymentOf(options, config).ChargingLedger, provider);
    const records = await chargingHistory(ledger, of);
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ ...of, chargingRecords: records.map(toJson) }, null, 2)}\n`);
      return;
    }
    process.stdout.write(`${title}: ${records.length} charging record(s)\n`);
    for (const r of records) {
      process.stdout.write(
        `  #${r.recordNo} (global ${r.globalNo}) session ${r.sessionId} ev ${r.ev} ${r.energyWh} Wh ` +
          `cost ${r.costWei} wei (${formatEther(r.costWei)}) score ${r.evScore >= 0 ? "+" : ""}${r.evScore} ` +
          `prevOfCp ${r.prevOfCp} prevOfEv ${r.prevOfEv}\n`,
      );
    }
  } finally {
    provider.destroy();
  }
}

function toJson(record: ChargingRecord): Record<string, string | number> {
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

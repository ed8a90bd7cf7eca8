/**
 * Algorithm 1 of the paper over the ledger's pointers: start at a head and follow `prevOfCp` (or `prevOfEv`)
 * back to 0 (φ). Each step is one call, so the cost grows with that charge point's (or EV's) history, never with
 * the chain's; no log is scanned.
 */
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";

export interface ChargingRecord {
  recordNo: bigint;
  globalNo: bigint;
  sessionId: bigint;
  cpId: string;
  ev: string;
  energyWh: bigint;
  costWei: bigint;
  evScore: number;
  prevOfCp: bigint;
  prevOfEv: bigint;
}

export async function readChargingRecord(ledger: ChargingLedgerContract, recordNo: bigint): Promise<ChargingRecord> {
  const r = await ledger.chargingRecord(recordNo);
  return {
    recordNo,
    globalNo: r.globalNo,
    sessionId: r.sessionId,
    cpId: r.cpId,
    ev: r.ev,
    energyWh: r.energyWh,
    costWei: r.cost,
    evScore: Number(r.evScore),
    prevOfCp: r.prevOfCp,
    prevOfEv: r.prevOfEv,
  };
}

/** Newest first. `limit` bounds the walk for callers that page. */
export async function chargingHistory(
  ledger: ChargingLedgerContract,
  of: { cpId: string } | { ev: string },
  limit = Number.POSITIVE_INFINITY,
): Promise<ChargingRecord[]> {
  const head = "cpId" in of ? await ledger.cpHead(of.cpId) : await ledger.evHead(of.ev);
  const records: ChargingRecord[] = [];
  let next = head.lastChargingRecord;
  while (next !== 0n && records.length < limit) {
    const record = await readChargingRecord(ledger, next);
    records.push(record);
    next = "cpId" in of ? record.prevOfCp : record.prevOfEv;
  }
  return records;
}

/**
 * `trustpile query cp|ev` (Algorithm 1) end to end: sessions at two piles by two EVs, some rated, then the real CLI
 * reads both lists by pointers. Record numbers, pointers, order, scores and reputations are asserted exactly, the
 * reputations also against the float64 twin of eq. 2; the walk's call count grows with the pile's own history only.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { HDNodeWallet } from "ethers";
import { connectEvaluations, connectLedger } from "../../../agent/chain/contracts.ts";
import { writeDeployment } from "../../../agent/chain/deployment.ts";
import { contractReader, cpHistory, type HistoryReader } from "../../../agent/chain/history.ts";
import { rateSession } from "../../../agent/chain/operations.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import { formatSd59x18 } from "../../../agent/cli/query-commands.ts";
import { fromSd59x18, reputationUpdate, type Score } from "../../../agent/reputation/eq2.ts";
import { deployLedgerFixture, testChainUrl, type LedgerFixture } from "../../helpers/chain.ts";
import { runCli, stderrLines } from "../../helpers/cli.ts";
import { accountOf, runSession } from "../../helpers/ledger-helpers.ts";

const CP_A = "cp-query-a";
const CP_B = "cp-query-b";
const DEPOSIT_WEI = 10_000_000_000_000_000n; // 0.01 ether covers 33 kWh at the fixture's price

interface Cast {
  fixture: LedgerFixture;
  ev1: HDNodeWallet;
  ev2: HDNodeWallet;
  signerOf: Record<string, HDNodeWallet>;
}

async function castOf(): Promise<Cast> {
  const fixture = await deployLedgerFixture();
  const owner = accountOf(fixture, 1);
  const cast: Cast = {
    fixture,
    ev1: accountOf(fixture, 4),
    ev2: accountOf(fixture, 5),
    signerOf: { [CP_A]: accountOf(fixture, 2), [CP_B]: accountOf(fixture, 3) },
  };
  await fixture.attestOwner(owner);
  await fixture.registerCp(owner, { chargePointId: CP_A, signer: accountOf(fixture, 2).address });
  await fixture.registerCp(owner, { chargePointId: CP_B, signer: accountOf(fixture, 3).address });
  await fixture.attestEv(cast.ev1);
  await fixture.attestEv(cast.ev2);
  return cast;
}

async function charge(cast: Cast, ev: HDNodeWallet, chargePointId: string, energyWh: bigint): Promise<bigint> {
  const signer = cast.signerOf[chargePointId];
  if (!signer) throw new Error(`no signer for ${chargePointId}`);
  const { sessionId } = await runSession(cast.fixture, { ev, signer, chargePointId, depositWei: DEPOSIT_WEI, energyWh });
  return sessionId;
}

interface RecordJson {
  recordNo: string;
  globalNo: string;
  sessionId: string;
  cpId: string;
  ev: string;
  energyWh: string;
  costWei: string;
  evScore: number;
  prevOfCp: string;
  prevOfEv: string;
}

interface EvaluationJson {
  evaluationNo: string;
  globalNo: string;
  chargingRecordNo: string;
  prevOfCp: string;
  prevOfEv: string;
  cpId: string;
  ev: string;
  score: number;
  reputationBefore: string;
  reputationAfter: string;
}

interface HistoryJson {
  cpId?: string;
  ev?: string;
  reputation?: string | null;
  credibility?: string;
  chargingRecords: RecordJson[];
  evaluations: EvaluationJson[] | null;
  next: { chargingRecord: string; evaluation: string };
}

function pick<T, K extends keyof T>(items: T[], ...keys: K[]): Pick<T, K>[] {
  return items.map((item) => Object.fromEntries(keys.map((key) => [key, item[key]])) as Pick<T, K>);
}

describe("trustpile query cp|ev: Algorithm 1 by pointers", () => {
  let cast: Cast;
  let rpcUrl: string;
  let deploymentPath: string;
  let bareDeploymentPath: string;
  /** The twin's R_cp of CP_A after each of its ratings, and the twin's R_cp of CP_B. */
  const twinA: number[] = [];
  let twinB = 0;

  beforeAll(async () => {
    cast = await castOf();
    rpcUrl = testChainUrl();
    const dir = mkdtempSync(join(tmpdir(), "trustpile-query-"));
    deploymentPath = join(dir, "deployment.json");
    writeDeployment(deploymentPath, cast.fixture.deployment);
    bareDeploymentPath = join(dir, "bare-deployment.json");
    const { Evaluations: _omitted, ...bare } = cast.fixture.deployment;
    writeDeployment(bareDeploymentPath, bare);

    // Charging records 1..5 (global 1..5); EV1 ends with R_v 3, EV2 with R_v 2 (every session clean).
    const s1 = await charge(cast, cast.ev1, CP_A, 1_000n);
    const s2 = await charge(cast, cast.ev2, CP_B, 2_000n);
    const s3 = await charge(cast, cast.ev2, CP_A, 3_000n);
    await charge(cast, cast.ev1, CP_B, 500n);
    const s5 = await charge(cast, cast.ev1, CP_A, 1_500n);
    // Evaluations 1..4 (global 6..9); record 4 stays unrated.
    const ratings: [HDNodeWallet, bigint, Score][] = [
      [cast.ev1, s1, 3],
      [cast.ev2, s2, 2],
      [cast.ev2, s3, 1],
      [cast.ev1, s5, 3],
    ];
    for (const [ev, sessionId, score] of ratings) await rateSession(cast.fixture.evaluations(ev), sessionId, score);

    let r = 0;
    for (const [score, credibility] of [[3, 3], [1, 2], [3, 3]] as [Score, number][]) {
      r = reputationUpdate(r, score, credibility);
      twinA.push(r);
    }
    twinB = reputationUpdate(0, 2, 2);
  });

  function chain(...args: string[]): string[] {
    return [...args, "--rpc", rpcUrl, "--deployment", deploymentPath];
  }

  it("query cp --json: both lists newest first, with exact numbers, pointers, scores and R_cp", async () => {
    const result = await runCli(["query", "cp", CP_A, ...chain("--json")]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const history = JSON.parse(result.stdout) as HistoryJson;
    expect(history.cpId).toBe(cpIdOf(CP_A));

    expect(pick(history.chargingRecords, "recordNo", "globalNo", "sessionId", "energyWh", "evScore", "prevOfCp", "prevOfEv")).toEqual([
      { recordNo: "5", globalNo: "5", sessionId: "5", energyWh: "1500", evScore: 1, prevOfCp: "3", prevOfEv: "4" },
      { recordNo: "3", globalNo: "3", sessionId: "3", energyWh: "3000", evScore: 1, prevOfCp: "1", prevOfEv: "2" },
      { recordNo: "1", globalNo: "1", sessionId: "1", energyWh: "1000", evScore: 1, prevOfCp: "0", prevOfEv: "0" },
    ]);
    expect(history.chargingRecords.map((r) => r.ev)).toEqual([cast.ev1.address, cast.ev2.address, cast.ev1.address]);
    expect(history.chargingRecords.every((r) => r.cpId === cpIdOf(CP_A))).toBe(true);

    const evaluations = history.evaluations ?? [];
    expect(pick(evaluations, "evaluationNo", "globalNo", "chargingRecordNo", "prevOfCp", "prevOfEv", "score")).toEqual([
      { evaluationNo: "4", globalNo: "9", chargingRecordNo: "5", prevOfCp: "3", prevOfEv: "1", score: 3 },
      { evaluationNo: "3", globalNo: "8", chargingRecordNo: "3", prevOfCp: "1", prevOfEv: "2", score: 1 },
      { evaluationNo: "1", globalNo: "6", chargingRecordNo: "1", prevOfCp: "0", prevOfEv: "0", score: 3 },
    ]);
    expect(evaluations.map((e) => e.ev)).toEqual([cast.ev1.address, cast.ev2.address, cast.ev1.address]);
    // Each evaluation starts where the previous one of this pile ended, and R_cp is the newest one's result.
    expect(evaluations.map((e) => e.reputationBefore)).toEqual([
      evaluations[1]?.reputationAfter,
      evaluations[2]?.reputationAfter,
      "0",
    ]);
    expect(history.reputation).toBe(evaluations[0]?.reputationAfter);
    const contractA = evaluations.map((e) => fromSd59x18(BigInt(e.reputationAfter))).reverse();
    expect(contractA).toHaveLength(twinA.length);
    contractA.forEach((value, i) => expect(Math.abs(value - (twinA[i] ?? Number.NaN))).toBeLessThan(1e-12));
    expect(history.next).toEqual({ chargingRecord: "0", evaluation: "0" });

    const other = JSON.parse((await runCli(["query", "cp", cpIdOf(CP_B), ...chain("--json")])).stdout) as HistoryJson;
    expect(other.chargingRecords.map((r) => [r.recordNo, r.prevOfCp])).toEqual([["4", "2"], ["2", "0"]]);
    expect(pick(other.evaluations ?? [], "evaluationNo", "chargingRecordNo", "prevOfCp", "prevOfEv")).toEqual([
      { evaluationNo: "2", chargingRecordNo: "2", prevOfCp: "0", prevOfEv: "0" },
    ]);
    expect(Math.abs(fromSd59x18(BigInt(other.reputation ?? "0")) - twinB)).toBeLessThan(1e-12);
  });

  it("query cp prints what each evaluation rates, its score and the reputation before -> after, and R_cp", async () => {
    const result = await runCli(["query", "cp", CP_A, ...chain()]);
    expect(result.status).toBe(0);
    const rA = await connectEvaluations(cast.fixture.deployment.Evaluations ?? "", cast.fixture.provider).reputation(cpIdOf(CP_A));
    const [after1, after3, after4] = twinA.map((value) => value.toFixed(6));
    expect(formatSd59x18(rA, 6)).toBe(after4);
    expect(result.stdout).toContain(`charge point ${CP_A} (cpId ${cpIdOf(CP_A)})`);
    expect(result.stdout).toContain(`reputation R_cp ${after4}`);
    expect(result.stdout).toContain("charging records: 3 (newest first)");
    expect(result.stdout).toContain(`record #5 (global 5) session 5 ev ${cast.ev1.address} 1500 Wh`);
    expect(result.stdout).toContain("prevOfCp 3 prevOfEv 4; rated W=3 in evaluation #4");
    expect(result.stdout).toContain("evaluations: 3 (newest first)");
    expect(result.stdout).toContain(
      `evaluation #4 (global 9) rates charging record #5 by ev ${cast.ev1.address} score W=3 reputation ${after3} -> ${after4}`,
    );
    expect(result.stdout).toContain(`evaluation #3 (global 8) rates charging record #3 by ev ${cast.ev2.address} score W=1 reputation ${after1} -> ${after3}`);
    expect(result.stdout).toContain(`evaluation #1 (global 6) rates charging record #1 by ev ${cast.ev1.address} score W=3 reputation 0.000000 -> ${after1}`);
    expect(result.stdout.indexOf("record #5")).toBeLessThan(result.stdout.indexOf("record #3"));
    expect(result.stdout).not.toContain("more:");
  });

  it("query ev: the EV's charging records, the evaluations it gave, and its credibility R_v", async () => {
    const json = await runCli(["query", "ev", cast.ev1.address, ...chain("--json")]);
    expect(json.status).toBe(0);
    const history = JSON.parse(json.stdout) as HistoryJson;
    expect(history.ev).toBe(cast.ev1.address);
    expect(history.credibility).toBe("3");
    expect(pick(history.chargingRecords, "recordNo", "prevOfEv", "prevOfCp")).toEqual([
      { recordNo: "5", prevOfEv: "4", prevOfCp: "3" },
      { recordNo: "4", prevOfEv: "1", prevOfCp: "2" },
      { recordNo: "1", prevOfEv: "0", prevOfCp: "0" },
    ]);
    expect(pick(history.evaluations ?? [], "evaluationNo", "chargingRecordNo", "prevOfEv", "cpId", "score")).toEqual([
      { evaluationNo: "4", chargingRecordNo: "5", prevOfEv: "1", cpId: cpIdOf(CP_A), score: 3 },
      { evaluationNo: "1", chargingRecordNo: "1", prevOfEv: "0", cpId: cpIdOf(CP_A), score: 3 },
    ]);

    const ev2 = JSON.parse((await runCli(["query", "ev", cast.ev2.address, ...chain("--json")])).stdout) as HistoryJson;
    expect(ev2.credibility).toBe("2");
    expect(ev2.chargingRecords.map((r) => r.recordNo)).toEqual(["3", "2"]);
    expect(pick(ev2.evaluations ?? [], "evaluationNo", "prevOfEv", "cpId")).toEqual([
      { evaluationNo: "3", prevOfEv: "2", cpId: cpIdOf(CP_A) },
      { evaluationNo: "2", prevOfEv: "0", cpId: cpIdOf(CP_B) },
    ]);

    const human = await runCli(["query", "ev", cast.ev2.address, ...chain()]);
    expect(human.status).toBe(0);
    expect(human.stdout).toContain(`EV ${cast.ev2.address}\n  credibility R_v 2`);
    expect(human.stdout).toContain(`evaluation #2 (global 7) rates charging record #2 of cpId ${cpIdOf(CP_B)} score W=2`);
  });

  it("--limit pages both lists and the printed cursor continues where the page stopped", async () => {
    const first = JSON.parse((await runCli(["query", "cp", CP_A, ...chain("--json", "--limit", "2")])).stdout) as HistoryJson;
    expect(first.chargingRecords.map((r) => r.recordNo)).toEqual(["5", "3"]);
    expect((first.evaluations ?? []).map((e) => e.evaluationNo)).toEqual(["4", "3"]);
    expect(first.next).toEqual({ chargingRecord: "1", evaluation: "1" });

    const human = await runCli(["query", "cp", CP_A, ...chain("--limit", "2")]);
    expect(human.stdout).toContain("more: continue with --from-record 1 --from-evaluation 1");

    const rest = await runCli(["query", "cp", CP_A, ...chain("--json", "--limit", "2", "--from-record", "1", "--from-evaluation", "1")]);
    const second = JSON.parse(rest.stdout) as HistoryJson;
    expect(second.chargingRecords.map((r) => r.recordNo)).toEqual(["1"]);
    expect((second.evaluations ?? []).map((e) => e.evaluationNo)).toEqual(["1"]);
    expect(second.next).toEqual({ chargingRecord: "0", evaluation: "0" });
  });

  it("a cursor into another pile's list, or --limit 0, is one sentence and exit 2", async () => {
    const foreign = await runCli(["query", "cp", CP_A, ...chain("--from-record", "4")]);
    expect(foreign.status).toBe(2);
    expect(stderrLines(foreign)).toEqual([`trustpile: --from-record 4: charging record 4 is not one of charge point ${CP_A}'s`]);

    const zero = await runCli(["query", "cp", CP_A, ...chain("--limit", "0")]);
    expect(zero.status).toBe(2);
    expect(stderrLines(zero)).toEqual(["trustpile: --limit: must be 1 or more"]);
  });

  it("without an Evaluations address it prints charging records only and says so on stderr", async () => {
    const result = await runCli(["query", "cp", CP_A, "--rpc", rpcUrl, "--deployment", bareDeploymentPath, "--json"]);
    expect(result.status).toBe(0);
    expect(stderrLines(result)).toEqual([
      `trustpile: deployment file ${bareDeploymentPath} names no Evaluations contract: showing charging records only`,
    ]);
    const history = JSON.parse(result.stdout) as HistoryJson;
    expect(history.chargingRecords.map((r) => r.recordNo)).toEqual(["5", "3", "1"]);
    expect(history.evaluations).toBeNull();
    expect(history.reputation).toBeNull();
  });

  it("an unregistered charge point is one sentence and exit 2", async () => {
    const result = await runCli(["query", "cp", "cp-nobody", ...chain()]);
    expect(result.status).toBe(2);
    expect(stderrLines(result)).toEqual([`trustpile: query cp cp-nobody: no charge point with cpId ${cpIdOf("cp-nobody")} is registered`]);
  });
});

/** Counts every read the walk makes, and how many were in flight at once. */
function countingReader(inner: HistoryReader): { reader: HistoryReader; calls: string[]; peakInFlight: () => number } {
  const calls: string[] = [];
  let inFlight = 0;
  let peak = 0;
  const counted =
    <A extends unknown[], R>(name: string, read: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      calls.push(`${name}(${args.map(String).join(",")})`);
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      try {
        return await read(...args);
      } finally {
        inFlight -= 1;
      }
    };
  const reader: HistoryReader = {
    cpHead: counted("cpHead", inner.cpHead),
    evHead: counted("evHead", inner.evHead),
    chargingRecord: counted("chargingRecord", inner.chargingRecord),
    credibility: counted("credibility", inner.credibility),
  };
  if (inner.evaluations) {
    reader.evaluations = {
      evaluationRecord: counted("evaluationRecord", inner.evaluations.evaluationRecord),
      reputation: counted("reputation", inner.evaluations.reputation),
    };
  }
  return { reader, calls, peakInFlight: () => peak };
}

describe("the pointer walk's cost", () => {
  it("grows with the charge point's own history, not with other charge points' records", async () => {
    const cast = await castOf();
    const { fixture } = cast;
    const ledger = connectLedger(fixture.deployment.ChargingLedger, fixture.provider);
    const evaluations = connectEvaluations(fixture.deployment.Evaluations ?? "", fixture.provider);
    const walkA = async (): Promise<{ calls: string[]; peak: number }> => {
      const counting = countingReader(contractReader(ledger, evaluations));
      await cpHistory(counting.reader, cpIdOf(CP_A));
      return { calls: counting.calls, peak: counting.peakInFlight() };
    };

    const a1 = await charge(cast, cast.ev1, CP_A, 1_000n);
    await rateSession(fixture.evaluations(cast.ev1), a1, 3);
    await charge(cast, cast.ev2, CP_A, 1_000n);
    const before = await walkA();
    // head + R_cp + 2 charging records + 1 evaluation
    expect(before.calls).toHaveLength(5);
    expect([...before.calls].sort()).toEqual(
      [`cpHead(${cpIdOf(CP_A)})`, `reputation(${cpIdOf(CP_A)})`, "chargingRecord(2)", "chargingRecord(1)", "evaluationRecord(1)"].sort(),
    );
    // The two lists are walked side by side, not one after the other.
    expect(before.peak).toBe(2);

    for (let i = 0; i < 6; i++) {
      const sessionId = await charge(cast, i % 2 === 0 ? cast.ev1 : cast.ev2, CP_B, 700n);
      if (i < 3) await rateSession(fixture.evaluations(i % 2 === 0 ? cast.ev1 : cast.ev2), sessionId, 2);
    }
    expect((await ledger.counts()).chargingRecords).toBe(8n);
    const afterOthers = await walkA();
    expect([...afterOthers.calls].sort()).toEqual([...before.calls].sort());

    await charge(cast, cast.ev1, CP_A, 1_000n);
    const afterOwn = await walkA();
    expect(afterOwn.calls).toHaveLength(6);
    expect(afterOwn.calls).toContain("chargingRecord(9)");
  });
});

/**
 * Evaluations on anvil (DESIGN §4.3): the contract's eq. 2 against the float64 twin in agent/reputation/eq2.ts on
 * hundreds of random inputs, then whole sessions rated through `rate` with their records, pointers and reverts.
 */
import { describe, expect, it } from "vitest";
import type { HDNodeWallet } from "ethers";
import { mined } from "../../agent/chain/operations.ts";
import { cpIdOf } from "../../agent/chain/session-total.ts";
import {
  fromSd59x18,
  parseSd59x18,
  reputationUpdate,
  SCORES,
  type ReputationParameters,
  type Score,
} from "../../agent/reputation/eq2.ts";
import type { EvaluationsContract } from "../../contracts/artifacts/Evaluations.ts";
import { deployLedgerFixture, type LedgerFixture } from "../helpers/chain.ts";
import { accountOf, eventArgs, expectRevert, openSessionAt, runSession } from "../helpers/ledger-helpers.ts";
import { mulberry32 } from "../helpers/prng.ts";

const TOLERANCE = 1e-12;
const DEPOSIT_WEI = 20_000_000_000_000_000n; // 0.02 ether: covers an EV with R_v < 0 (2 × 50 kWh × price)
const INT256_MAX = 2n ** 255n - 1n;

/** One input of eq. 2, as the contract takes it (SD59x18 integers, R_v a count). */
interface Case {
  kind: string;
  reputation: bigint;
  score: Score;
  credibility: bigint;
  mu: bigint;
  sigma: bigint;
}

/** A uniform draw in [min, max] as SD59x18, through its 18-digit decimal so the contract and the twin see one value. */
function uniformSd(random: () => number, min: number, max: number): bigint {
  return parseSd59x18((min + random() * (max - min)).toFixed(18));
}

/** log-uniform in [min, max]: tiny and large σ alike get their share of draws. */
function logUniformSd(random: () => number, min: number, max: number): bigint {
  return parseSd59x18(Math.exp(Math.log(min) + random() * (Math.log(max) - Math.log(min))).toFixed(18));
}

function integerIn(random: () => number, min: number, max: number): bigint {
  return BigInt(min + Math.floor(random() * (max - min + 1)));
}

function scoreOf(random: () => number): Score {
  return SCORES[Math.floor(random() * SCORES.length)] ?? 1;
}

/** Eight families, cycled: R far from D on both sides, tiny and large σ, R_v ≤ 0, huge R_v, μ near 1 and large. */
function casesOf(count: number, seed: number): Case[] {
  const random = mulberry32(seed);
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const common = { score: scoreOf(random) };
    const mu = uniformSd(random, 1.0001, 20);
    const sigma = logUniformSd(random, 0.05, 20);
    const rv = integerIn(random, 1, 80);
    switch (i % 8) {
      case 0:
        cases.push({ kind: "R in [0, 9]", reputation: uniformSd(random, 0, 9), credibility: rv, mu, sigma, ...common });
        break;
      case 1:
        cases.push({ kind: "R in [-50, 100]", reputation: uniformSd(random, -50, 100), credibility: rv, mu, sigma, ...common });
        break;
      case 2:
        cases.push({
          kind: "tiny sigma",
          reputation: uniformSd(random, -50, 100),
          credibility: rv,
          mu,
          sigma: logUniformSd(random, 1e-6, 1e-3),
          ...common,
        });
        break;
      case 3:
        cases.push({
          kind: "large sigma",
          reputation: uniformSd(random, -50, 100),
          credibility: rv,
          mu,
          sigma: logUniformSd(random, 20, 1e6),
          ...common,
        });
        break;
      case 4:
        cases.push({
          kind: "R_v <= 0",
          reputation: uniformSd(random, -50, 100),
          credibility: -integerIn(random, 0, 1_000_000),
          mu,
          sigma,
          ...common,
        });
        break;
      case 5:
        cases.push({
          kind: "huge R_v",
          reputation: uniformSd(random, 0, 9),
          credibility: random() < 0.5 ? INT256_MAX - integerIn(random, 0, 1_000) : 10n ** integerIn(random, 3, 60),
          mu,
          sigma,
          ...common,
        });
        break;
      case 6:
        cases.push({
          kind: "mu close to 1",
          reputation: uniformSd(random, -5, 15),
          credibility: integerIn(random, 1, 4),
          mu: uniformSd(random, 1.000001, 1.01),
          sigma,
          ...common,
        });
        break;
      default:
        cases.push({
          kind: "R near D",
          reputation: uniformSd(random, 2.5, 3.5),
          credibility: rv,
          mu,
          sigma: logUniformSd(random, 0.01, 5),
          ...common,
        });
    }
  }
  return cases;
}

function twinOf(c: Case): number {
  return reputationUpdate(fromSd59x18(c.reputation), c.score, Number(c.credibility), {
    mu: fromSd59x18(c.mu),
    sigma: fromSd59x18(c.sigma),
  });
}

function describeCase(c: Case): string {
  return `${c.kind}: R=${c.reputation} W=${c.score} R_v=${c.credibility} mu=${c.mu} sigma=${c.sigma}`;
}

/** Calls the pure `reputationUpdate` for every case, `chunk` at a time, concurrently (ethers batches them). */
async function contractResults(evaluations: EvaluationsContract, cases: readonly Case[], chunk = 100): Promise<PromiseSettledResult<bigint>[]> {
  const results: PromiseSettledResult<bigint>[] = [];
  for (let start = 0; start < cases.length; start += chunk) {
    const slice = cases.slice(start, start + chunk);
    results.push(
      ...(await Promise.allSettled(slice.map((c) => evaluations.reputationUpdate(c.reputation, c.score, c.credibility, c.mu, c.sigma)))),
    );
  }
  return results;
}

describe("Evaluations: contract vs twin", () => {
  it("reputationUpdate agrees with the float64 twin to 1e-12 on 640 random cases and never reverts there", async () => {
    const fixture = await deployLedgerFixture();
    const evaluations = fixture.evaluations(fixture.authority);
    const cases = casesOf(640, 0x7e57e2);
    const results = await contractResults(evaluations, cases);

    const reverted = results.flatMap((result, i) => (result.status === "rejected" ? [describeCase(cases[i] as Case)] : []));
    expect(reverted).toEqual([]);

    let worst = 0;
    const disagreements: string[] = [];
    const byKind = new Map<string, number>();
    results.forEach((result, i) => {
      const c = cases[i] as Case;
      if (result.status !== "fulfilled") return;
      const contract = fromSd59x18(result.value);
      const twin = twinOf(c);
      const error = Math.abs(contract - twin);
      worst = Math.max(worst, error);
      byKind.set(c.kind, (byKind.get(c.kind) ?? 0) + 1);
      if (!(error <= TOLERANCE)) disagreements.push(`${describeCase(c)}: contract ${contract} twin ${twin} (|Δ| ${error})`);
      if (c.credibility <= 0n) expect(result.value, describeCase(c)).toBe(c.reputation);
    });
    expect(disagreements).toEqual([]);
    expect(worst).toBeLessThanOrEqual(TOLERANCE);
    expect([...byKind.values()]).toEqual(Array.from({ length: 8 }, () => 80));
  });

  it("the comparison can fail: a twin with the paper's printed sign of Φ is off by far more than 1e-12", async () => {
    const fixture = await deployLedgerFixture();
    const evaluations = fixture.evaluations(fixture.authority);
    const c: Case = { kind: "probe", reputation: 0n, score: 3, credibility: 1n, mu: parseSd59x18("2"), sigma: parseSd59x18("1.5") };
    const contract = fromSd59x18(await evaluations.reputationUpdate(c.reputation, c.score, c.credibility, c.mu, c.sigma));
    // 0 + ½ · 1/(1 + e^(−2)) · 1 · 3 = 1.3211956169668236661 (50-digit reference).
    expect(Math.abs(contract - 1.3211956169668236661)).toBeLessThanOrEqual(TOLERANCE);
    expect(Math.abs(contract - twinOf(c))).toBeLessThanOrEqual(TOLERANCE);
    const printedSign = 0 + 0.5 * (1 / (1 + Math.exp((3 - 0) / 1.5))) * 1 * 3;
    expect(Math.abs(contract - printedSign)).toBeGreaterThan(1);
  });

  it("rejects parameters outside the domain exactly as the twin does", async () => {
    const fixture = await deployLedgerFixture();
    const evaluations = fixture.evaluations(fixture.authority);
    const sigma = parseSd59x18("1.5");
    await expectRevert(evaluations.reputationUpdate(0n, 2, 1n, parseSd59x18("1"), sigma), "InvalidMu", [parseSd59x18("1")]);
    await expectRevert(evaluations.reputationUpdate(0n, 2, 1n, parseSd59x18("2"), 0n), "InvalidSigma", [0n]);
    await expectRevert(evaluations.reputationUpdate(0n, 0, 1n, parseSd59x18("2"), sigma), "InvalidScore", [0n]);
    expect(() => reputationUpdate(0, 2, 1, { mu: 1, sigma: 1.5 })).toThrow(RangeError);
    expect(() => reputationUpdate(0, 2, 1, { mu: 2, sigma: 0 })).toThrow(RangeError);
  });
});

interface Cast {
  fixture: LedgerFixture;
  ev: HDNodeWallet;
  ev2: HDNodeWallet;
  owner: HDNodeWallet;
  signer: HDNodeWallet;
}

const CP_A = "CP-EVAL-A";
const CP_B = "CP-EVAL-B";
const PARAMETERS: ReputationParameters = { mu: 3, sigma: 0.75 };
/** A bookkeeper period longer than any test run, so a test crossing midnight still sees one period. */
const CENTURY_S = 100n * 365n * 24n * 3600n;

/** Contracts deployed with μ = 3, σ = 0.75 (not the defaults, so the test sees they are honoured); CP_B is in area 2. */
async function cast(): Promise<Cast> {
  const fixture = await deployLedgerFixture({ mu: parseSd59x18("3"), sigma: parseSd59x18("0.75"), bookkeeperPeriodS: CENTURY_S });
  const c = { fixture, ev: accountOf(fixture, 1), ev2: accountOf(fixture, 2), owner: accountOf(fixture, 3), signer: accountOf(fixture, 4) };
  await fixture.attestEv(c.ev);
  await fixture.attestEv(c.ev2);
  await fixture.attestOwner(c.owner);
  await fixture.registerCp(c.owner, { chargePointId: CP_A, signer: c.signer.address });
  await fixture.registerCp(c.owner, { chargePointId: CP_B, signer: c.signer.address, areaId: 2n });
  return c;
}

async function settle(c: Cast, ev: HDNodeWallet, chargePointId: string, evBehaviour = 0): Promise<{ sessionId: bigint; recordNo: bigint }> {
  const { sessionId, settled } = await runSession(c.fixture, {
    ev,
    signer: c.signer,
    chargePointId,
    depositWei: DEPOSIT_WEI,
    energyWh: 4_000n,
    evBehaviour,
  });
  return { sessionId, recordNo: settled.getValue("recordNo") as bigint };
}

describe("Evaluations: rating settled sessions", () => {
  it("moves R_cp exactly as the twin applied step by step, and links every evaluation record", async () => {
    const c = await cast();
    const { fixture, ev, ev2 } = c;
    const evaluations = fixture.evaluations(ev);
    const ledger = fixture.ledger(ev);
    const [mu, sigma] = await evaluations.parameters();
    expect([mu, sigma]).toEqual([parseSd59x18("3"), parseSd59x18("0.75")]);

    // (rater, CP, score), with charging records interleaved: R_v grows by one per clean session before each rating.
    const plan: { rater: HDNodeWallet; cp: string; score: Score }[] = [
      { rater: ev, cp: CP_A, score: 3 },
      { rater: ev2, cp: CP_A, score: 2 },
      { rater: ev, cp: CP_B, score: 3 },
      { rater: ev, cp: CP_A, score: 3 },
      { rater: ev, cp: CP_A, score: 1 },
      { rater: ev2, cp: CP_A, score: 3 },
    ];
    const twin = new Map<string, number>([
      [CP_A, 0],
      [CP_B, 0],
    ]);
    const lastOfCp = new Map<string, bigint>();
    const lastOfEv = new Map<string, bigint>();
    let globalNo = 0n;

    for (const [index, step] of plan.entries()) {
      const { sessionId, recordNo } = await settle(c, step.rater, step.cp);
      globalNo += 1n; // the charging record
      const credibility = await ledger.credibility(step.rater.address);
      const before = twin.get(step.cp) ?? 0;
      const after = reputationUpdate(before, step.score, Number(credibility), PARAMETERS);
      twin.set(step.cp, after);

      const receipt = await mined(`rating session ${sessionId}`, () => fixture.evaluations(step.rater).rate(sessionId, step.score));
      globalNo += 1n; // the evaluation
      const evaluationNo = BigInt(index + 1);
      const evaluated = eventArgs(receipt, evaluations, "Evaluated");
      expect(evaluated.getValue("evaluationNo")).toBe(evaluationNo);
      expect(evaluated.getValue("cpId")).toBe(cpIdOf(step.cp));
      expect(evaluated.getValue("ev")).toBe(step.rater.address);
      expect(evaluated.getValue("chargingRecordNo")).toBe(recordNo);
      expect(evaluated.getValue("prevEvaluationOfCp")).toBe(lastOfCp.get(step.cp) ?? 0n);
      expect(evaluated.getValue("score")).toBe(BigInt(step.score));

      const reputation = await evaluations.reputation(cpIdOf(step.cp));
      expect(Math.abs(fromSd59x18(reputation) - after), `R of ${step.cp} after rating ${evaluationNo}`).toBeLessThanOrEqual(TOLERANCE);
      expect(evaluated.getValue("reputationAfter")).toBe(reputation);

      const record = await evaluations.evaluationRecord(evaluationNo);
      expect(record.globalNo).toBe(globalNo);
      expect(record.branchNo).toBe(evaluationNo);
      expect(record.chargingRecordNo).toBe(recordNo);
      expect(record.prevOfCp).toBe(lastOfCp.get(step.cp) ?? 0n);
      expect(record.prevOfEv).toBe(lastOfEv.get(step.rater.address) ?? 0n);
      expect(record.cpId).toBe(cpIdOf(step.cp));
      expect(record.ev).toBe(step.rater.address);
      expect(record.score).toBe(BigInt(step.score));
      expect(Math.abs(fromSd59x18(record.reputationBefore) - before)).toBeLessThanOrEqual(TOLERANCE);
      expect(record.reputationAfter).toBe(reputation);
      expect(await evaluations.evaluationOfRecord(recordNo)).toBe(evaluationNo);
      lastOfCp.set(step.cp, evaluationNo);
      lastOfEv.set(step.rater.address, evaluationNo);
    }

    // Hand-checked anchors: CP_A's first step is 0 + ⅓ · 1/(1 + e^(−4)) · 1 · 3 = 0.98201379003790845 (50 digits).
    const first = await evaluations.evaluationRecord(1n);
    expect(Math.abs(fromSd59x18(first.reputationAfter) - 0.98201379003790845)).toBeLessThanOrEqual(TOLERANCE);
    expect(twin.get(CP_A)).toBeGreaterThan(fromSd59x18(first.reputationAfter));

    const counts = await ledger.counts();
    expect([counts[1], counts[2], counts[3]]).toEqual([6n, 6n, 12n]);
    expect((await ledger.cpHead(cpIdOf(CP_A)))[1]).toBe(6n);
    expect((await ledger.cpHead(cpIdOf(CP_B)))[1]).toBe(3n);
    expect((await ledger.evHead(ev.address))[1]).toBe(5n);
    expect((await ledger.evHead(ev2.address))[1]).toBe(6n);
    expect(await evaluations.evaluationCount()).toBe(6n);

    const period = await evaluations.currentPeriod();
    expect(await evaluations.bookkeeper(1n, period)).toBe(ev.address); // R_v 4 against ev2's 2
    expect(await evaluations.bookkeeper(2n, period)).toBe(ev.address);
    expect(await evaluations.bookkeeper(3n, period)).toBe("0x0000000000000000000000000000000000000000");
  });

  it("records a rating by an EV with R_v < 0 without moving R_cp", async () => {
    const c = await cast();
    const { fixture, ev, ev2 } = c;
    const { sessionId: clean } = await settle(c, ev, CP_A);
    await mined("rating", () => fixture.evaluations(ev).rate(clean, 3));
    const reputation = await fixture.evaluations(ev).reputation(cpIdOf(CP_A));
    expect(reputation).toBeGreaterThan(0n);

    const { sessionId: violating } = await settle(c, ev2, CP_A, -1);
    expect(await fixture.ledger(ev2).credibility(ev2.address)).toBe(-1n);
    await mined("rating", () => fixture.evaluations(ev2).rate(violating, 1));
    expect(await fixture.evaluations(ev2).reputation(cpIdOf(CP_A))).toBe(reputation);
    const record = await fixture.evaluations(ev2).evaluationRecord(2n);
    expect([record.score, record.reputationBefore, record.reputationAfter, record.prevOfCp]).toEqual([1n, reputation, reputation, 1n]);
  });

  it("refuses rate with errors agent/chain/revert.ts decodes by name", async () => {
    const c = await cast();
    const { fixture, ev, ev2, signer } = c;
    const { sessionId } = await settle(c, ev, CP_A);

    await expectRevert(fixture.evaluations(ev).rate(sessionId, 0), "InvalidScore", [0n]);
    await expectRevert(fixture.evaluations(ev).rate(sessionId, 4), "InvalidScore", [4n]);
    await expectRevert(fixture.evaluations(ev2).rate(sessionId, 2), "NotSessionEv", [sessionId, ev2.address, ev.address]);
    await expectRevert(fixture.evaluations(signer).rate(sessionId, 2), "NotSessionEv", [sessionId, signer.address, ev.address]);
    await expectRevert(fixture.evaluations(ev).rate(999n, 2), "UnknownSession", [999n]);

    const { sessionId: opened } = await openSessionAt(fixture.ledger(ev), CP_A, 50_000, DEPOSIT_WEI);
    await expectRevert(fixture.evaluations(ev).rate(opened, 2), "WrongSessionStatus", [opened, 1n, 3n]);

    await mined("rating", () => fixture.evaluations(ev).rate(sessionId, 2));
    await expectRevert(fixture.evaluations(ev).rate(sessionId, 3), "AlreadyRated", [sessionId, 1n]);
    expect(await fixture.evaluations(ev).evaluationCount()).toBe(1n);
    await expectRevert(fixture.evaluations(ev).evaluationRecord(2n), "UnknownEvaluation", [2n, 1n]);
  });
});

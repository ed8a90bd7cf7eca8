/**
 * The EV side of the ledger's credibility rules (DESIGN §4.2, §4.3) through the real CLI on this worker's anvil:
 * debt from a meter overshoot blocks `ev open` until `ev pay-debt`; R_v < 0 asks for a doubled deposit; `ev rate`
 * moves the CP's reputation once per settled session; `ev status` shows what the ledger holds. The pile's side
 * (authorize, signed settle) is played in-process with the ledger helpers.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatUnits, type HDNodeWallet } from "ethers";
import { writeDeployment } from "../../../agent/chain/deployment.ts";
import { authorizeSession, signAndSettle } from "../../../agent/chain/operations.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import { SessionStatus } from "../../../agent/chain/contracts.ts";
import { PRICE_WEI_PER_KWH, deployLedgerFixture, testChainUrl, type LedgerFixture } from "../../helpers/chain.ts";
import { runCli, stderrLines, type CliResult } from "../../helpers/cli.ts";
import {
  accountOf,
  costOf,
  domainOf,
  requiredDepositOf,
  runSession,
  totalOf,
} from "../../helpers/ledger-helpers.ts";

const CP = "cp-cred-1";
const CP_ID = cpIdOf(CP);
/** Account numbers: 2 owner, 3 the pile's signer, 4..8 EVs (one per story, so their R_v and debts stay apart). */
const OWNER = 2;
const PILE = 3;

let fixture: LedgerFixture;
let dir: string;
let deploymentPath: string;
let rpcUrl: string;

beforeAll(async () => {
  fixture = await deployLedgerFixture();
  dir = mkdtempSync(join(tmpdir(), "trustpile-ev-cred-"));
  deploymentPath = join(dir, "deployment.json");
  writeDeployment(deploymentPath, fixture.deployment);
  rpcUrl = testChainUrl();
  const owner = accountOf(fixture, OWNER);
  await fixture.attestOwner(owner);
  await fixture.registerCp(owner, { chargePointId: CP, signer: accountOf(fixture, PILE).address });
  // Attested here, through the fixture's nonce manager, so the CLI never sends from account 0 behind its back.
  for (const n of [4, 5, 6, 7, 8]) await fixture.attestEv(accountOf(fixture, n));
}, 60_000);

afterAll(() => {
  fixture?.provider.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function ev(args: string[], account: number): Promise<CliResult> {
  return runCli(["ev", ...args, "--rpc", rpcUrl, "--deployment", deploymentPath, "--account", String(account)]);
}

function sessionIdOf(result: CliResult): bigint {
  const match = /^session (\d+) opened at /m.exec(result.stdout);
  if (!match?.[1]) throw new Error(`no session id in: ${result.stdout}${result.stderr}`);
  return BigInt(match[1]);
}

function txHashOf(result: CliResult): string {
  const match = /tx:\s+(0x[0-9a-f]{64})/.exec(result.stdout);
  if (!match?.[1]) throw new Error(`no tx hash in: ${result.stdout}`);
  return match[1];
}

/** The pile authorizes and signs a settle for `energyWh` (evBehaviour 0 unless given). */
async function pileSettles(sessionId: bigint, energyWh: bigint, evBehaviour = 0): Promise<void> {
  const pile = accountOf(fixture, PILE);
  await authorizeSession(fixture.ledger(pile), sessionId);
  await signAndSettle(fixture.ledger(pile), pile, domainOf(fixture), totalOf(sessionId, CP, energyWh, evBehaviour));
}

async function sessionsSoFar(): Promise<bigint> {
  return (await fixture.ledger(fixture.authority).counts()).sessions;
}

interface StatusJson {
  ev: string;
  credibility: string;
  debtWei: string;
  withdrawableWei: string;
  canCharge: boolean;
  doubledDeposit: boolean;
}

async function statusOf(account: number): Promise<StatusJson> {
  const result = await ev(["status", "--json"], account);
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as StatusJson;
}

describe("trustpile ev: debt, doubled deposit, rating and status on a real anvil", () => {
  it("debt from an overshoot blocks ev open until ev pay-debt pays it to the owner, to the wei", async () => {
    const n = 4;
    const evWallet: HDNodeWallet = accountOf(fixture, n);
    const owner = accountOf(fixture, OWNER);
    const ledger = fixture.ledger(evWallet);

    // A deposit for 100 Wh, but the pile signs 150 Wh: 45e12 wei cost, 30e12 paid from the deposit, 15e12 owed.
    const depositWei = (100n * PRICE_WEI_PER_KWH) / 1000n;
    const opened = await ev(["open", "--cp", CP, "--deposit", depositWei.toString(), "--max-energy-wh", "1000"], n);
    expect(opened.status, opened.stderr).toBe(0);
    const sessionId = sessionIdOf(opened);
    await pileSettles(sessionId, 150n);
    const debtWei = costOf(150n, PRICE_WEI_PER_KWH) - depositWei;
    expect(debtWei).toBe(15_000_000_000_000n);
    expect(await ledger.debt(evWallet.address)).toBe(debtWei);
    expect(await ledger.canCharge(evWallet.address)).toBe(false);
    // An overshoot is not malice: B_vi = 0.
    expect(await ledger.credibility(evWallet.address)).toBe(0n);

    const sessionsBefore = await sessionsSoFar();
    const refused = await ev(["open", "--cp", CP, "--deposit", "0.0003ether", "--max-energy-wh", "1000"], n);
    expect(refused.status).toBe(1);
    expect(stderrLines(refused)).toEqual([
      `trustpile: EV ${evWallet.address} owes a debt of 15000000000000 wei (0.000015 ether) from an earlier session, so the ledger opens no new session until it is paid: run trustpile ev pay-debt`,
    ]);
    expect(refused.stdout).toBe("");
    expect(await sessionsSoFar()).toBe(sessionsBefore); // nothing was sent

    expect(await statusOf(n)).toEqual({
      ev: evWallet.address,
      credibility: "0",
      debtWei: "15000000000000",
      withdrawableWei: "0",
      canCharge: false,
      doubledDeposit: false,
    });

    // More than the debt is bad usage; nothing is sent.
    const tooMuch = await ev(["pay-debt", "--amount", "15000000000001"], n);
    expect(tooMuch.status).toBe(2);
    expect(stderrLines(tooMuch)).toEqual([
      "trustpile: --amount: 15000000000001 wei is more than the debt of 15000000000000 wei (0.000015 ether)",
    ]);
    const zero = await ev(["pay-debt", "--amount", "0"], n);
    expect(zero.status).toBe(2);
    expect(stderrLines(zero)).toEqual(["trustpile: --amount: must be more than 0"]);

    // A part first: the owner is credited exactly that, and the EV still may not charge.
    const ownerBefore = await ledger.withdrawable(owner.address);
    const balanceBefore = await fixture.provider.getBalance(evWallet.address);
    const part = await ev(["pay-debt", "--amount", "5000000000000"], n);
    expect(part.status, part.stderr).toBe(0);
    expect(part.stdout).toContain("paid 5000000000000 wei (0.000005 ether) of debt");
    expect(part.stdout).toContain("remaining:  10000000000000 wei (0.00001 ether)");
    expect(part.stdout).toContain("canCharge:  no, until the rest is paid");
    const partReceipt = await fixture.provider.getTransactionReceipt(txHashOf(part));
    if (!partReceipt) throw new Error("no receipt for the partial payment");
    // The EV's wallet paid the part and the fee, nothing more.
    expect(balanceBefore - (await fixture.provider.getBalance(evWallet.address))).toBe(
      5_000_000_000_000n + partReceipt.gasUsed * partReceipt.gasPrice,
    );
    expect((await ledger.withdrawable(owner.address)) - ownerBefore).toBe(5_000_000_000_000n);
    const stillRefused = await ev(["open", "--cp", CP, "--deposit", "0.0003ether", "--max-energy-wh", "1000"], n);
    expect(stillRefused.status).toBe(1);
    expect(stderrLines(stillRefused)).toEqual([
      `trustpile: EV ${evWallet.address} owes a debt of 10000000000000 wei (0.00001 ether) from an earlier session, so the ledger opens no new session until it is paid: run trustpile ev pay-debt`,
    ]);

    // Then the rest, by default exactly what `debt(ev)` says.
    const rest = await ev(["pay-debt"], n);
    expect(rest.status, rest.stderr).toBe(0);
    expect(rest.stdout).toContain("paid 10000000000000 wei (0.00001 ether) of debt");
    expect(rest.stdout).toContain("remaining:  0 wei (0.0 ether)");
    expect(rest.stdout).toContain("canCharge:  yes");
    expect((await ledger.withdrawable(owner.address)) - ownerBefore).toBe(debtWei);
    expect(await ledger.debt(evWallet.address)).toBe(0n);
    expect(await ledger.canCharge(evWallet.address)).toBe(true);

    const none = await ev(["pay-debt"], n);
    expect(none.status).toBe(0);
    expect(none.stdout).toBe(`no debt: EV ${evWallet.address} owes nothing\n`);

    const reopened = await ev(["open", "--cp", CP, "--deposit", "0.0003ether", "--max-energy-wh", "1000"], n);
    expect(reopened.status, reopened.stderr).toBe(0);
    expect(sessionIdOf(reopened)).toBe(sessionsBefore + 1n);
  }, 180_000);

  it("R_v < 0 after a reported violation asks for the doubled deposit; a clean session earns the normal one back", async () => {
    const n = 5;
    const evWallet = accountOf(fixture, n);
    const ledger = fixture.ledger(evWallet);
    await runSession(fixture, {
      ev: evWallet,
      signer: accountOf(fixture, PILE),
      chargePointId: CP,
      depositWei: 300_000_000_000_000n,
      energyWh: 100n,
      evBehaviour: -1,
    });
    expect(await ledger.credibility(evWallet.address)).toBe(-1n);
    expect(await statusOf(n)).toMatchObject({ credibility: "-1", doubledDeposit: true, canCharge: true, debtWei: "0" });

    // 1000 Wh at 0.0003 ether/kWh cost 3e14 wei; with R_v < 0 the deposit must be ceil(2 × 1000 × price / 1000).
    const required = requiredDepositOf(1_000n, PRICE_WEI_PER_KWH);
    expect(required).toBe(600_000_000_000_000n);
    const sessionsBefore = await sessionsSoFar();
    for (const deposit of ["0.0003ether", "599999999999999"]) {
      const refused = await ev(["open", "--cp", CP, "--deposit", deposit, "--max-energy-wh", "1000"], n);
      expect(refused.status).toBe(1);
      const given = deposit === "0.0003ether" ? "300000000000000" : "599999999999999";
      expect(stderrLines(refused)).toEqual([
        `trustpile: EV ${evWallet.address} has credibility R_v = -1 (below 0), so a session of up to 1000 Wh at 300000000000000 wei/kWh needs a deposit of at least 600000000000000 wei (0.0006 ether) (twice its cost), more than the --deposit of ${given} wei`,
      ]);
    }
    expect(await sessionsSoFar()).toBe(sessionsBefore);

    const doubled = await ev(["open", "--cp", CP, "--deposit", "600000000000000", "--max-energy-wh", "1000"], n);
    expect(doubled.status, doubled.stderr).toBe(0);
    expect(doubled.stdout).toContain("note:     credibility R_v = -1 < 0: the deposit had to be at least 600000000000000 wei (twice the cost of 1000 Wh)");
    const sessionId = sessionIdOf(doubled);
    expect((await ledger.session(sessionId)).heldDeposit).toBe(600_000_000_000_000n);

    // A clean session, paid in full from the deposit: B_vi = +1, so R_v is back at 0.
    await pileSettles(sessionId, 500n);
    expect((await ledger.session(sessionId)).status).toBe(SessionStatus.Settled);
    expect(await ledger.withdrawable(evWallet.address)).toBe(
      300_000_000_000_000n - costOf(100n, PRICE_WEI_PER_KWH) + 600_000_000_000_000n - costOf(500n, PRICE_WEI_PER_KWH),
    );
    expect(await ledger.credibility(evWallet.address)).toBe(0n);

    const normal = await ev(["open", "--cp", CP, "--deposit", "0.0003ether", "--max-energy-wh", "1000"], n);
    expect(normal.status, normal.stderr).toBe(0);
    expect(normal.stdout).not.toContain("note:");
    expect((await ledger.session(sessionIdOf(normal))).heldDeposit).toBe(300_000_000_000_000n);
  }, 180_000);

  it("ev rate rates a settled session once, printing the evaluation and R_cp before → after; every refusal is one sentence", async () => {
    const n = 6;
    const evWallet = accountOf(fixture, n);
    const other = accountOf(fixture, 7);
    const evaluations = fixture.evaluations(evWallet);

    // R_v = 1 from a first clean session, so the rating below has weight.
    await runSession(fixture, { ev: evWallet, signer: accountOf(fixture, PILE), chargePointId: CP, depositWei: 300_000_000_000_000n, energyWh: 200n });
    const opened = await ev(["open", "--cp", CP, "--deposit", "0.0003ether", "--max-energy-wh", "1000"], n);
    expect(opened.status, opened.stderr).toBe(0);
    const sessionId = sessionIdOf(opened);
    await authorizeSession(fixture.ledger(accountOf(fixture, PILE)), sessionId);

    for (const score of ["0", "4", "x", "2.5"]) {
      const bad = await ev(["rate", "--session", sessionId.toString(), "--score", score], n);
      expect(bad.status).toBe(2);
      expect(stderrLines(bad)).toEqual([`trustpile: --score: a rating is 1, 2 or 3, got "${score}"`]);
    }

    const unsettled = await ev(["rate", "--session", sessionId.toString(), "--score", "3"], n);
    expect(unsettled.status).toBe(1);
    expect(stderrLines(unsettled)).toEqual([
      `trustpile: session ${sessionId} is authorized, not settled: only a settled session can be rated (WrongSessionStatus(${sessionId}, 2, 3))`,
    ]);
    const unknown = await ev(["rate", "--session", "999999", "--score", "3"], n);
    expect(unknown.status).toBe(1);
    expect(stderrLines(unknown)).toEqual(["trustpile: session 999999 does not exist on this ledger (UnknownSession(999999))"]);

    const pile = accountOf(fixture, PILE);
    await signAndSettle(fixture.ledger(pile), pile, domainOf(fixture), totalOf(sessionId, CP, 400n));
    expect(await fixture.ledger(evWallet).credibility(evWallet.address)).toBe(2n);

    const foreign = await ev(["rate", "--session", sessionId.toString(), "--score", "3"], 7);
    expect(foreign.status).toBe(1);
    expect(stderrLines(foreign)).toEqual([
      `trustpile: session ${sessionId} belongs to EV ${evWallet.address}, not to ${other.address}: only the session's own EV may rate it (NotSessionEv(${sessionId}, ${other.address}, ${evWallet.address}))`,
    ]);

    const before = await evaluations.reputation(CP_ID);
    const countBefore = await evaluations.evaluationCount();
    const [mu, sigma] = await evaluations.parameters();
    const expectedAfter = await evaluations.reputationUpdate(before, 3, 2n, mu, sigma);
    expect(expectedAfter).toBeGreaterThan(before);

    const rated = await ev(["rate", "--session", sessionId.toString(), "--score", "3"], n);
    expect(rated.status, rated.stderr).toBe(0);
    const evaluationNo = countBefore + 1n;
    const decimal = (value: bigint): string => formatUnits(value, 18).replace(/\.0$/, "");
    expect(rated.stdout).toContain(`session ${sessionId} rated 3: evaluation ${evaluationNo}\n`);
    expect(rated.stdout).toContain(`cp:         ${CP_ID}\n`);
    expect(rated.stdout).toContain(`reputation: ${decimal(before)} → ${decimal(expectedAfter)} (R_cp)\n`);
    expect(rated.stdout).toContain("weight:     your credibility R_v = 2\n");
    expect(await evaluations.reputation(CP_ID)).toBe(expectedAfter);
    const record = await evaluations.evaluationRecord(evaluationNo);
    expect(record.ev).toBe(evWallet.address);
    expect(record.score).toBe(3n);
    expect(record.reputationBefore).toBe(before);
    expect(record.reputationAfter).toBe(expectedAfter);

    const again = await ev(["rate", "--session", sessionId.toString(), "--score", "2"], n);
    expect(again.status).toBe(1);
    expect(stderrLines(again)).toEqual([
      `trustpile: session ${sessionId} was already rated (evaluation ${evaluationNo}): each session is rated once (AlreadyRated(${sessionId}, ${evaluationNo}))`,
    ]);
    expect(await evaluations.evaluationCount()).toBe(evaluationNo);
  }, 180_000);

  it("a rater with R_v ≤ 0 is recorded but moves nothing, and ev rate says so", async () => {
    const n = 8;
    const evWallet = accountOf(fixture, n);
    const { sessionId } = await runSession(fixture, {
      ev: evWallet,
      signer: accountOf(fixture, PILE),
      chargePointId: CP,
      depositWei: 300_000_000_000_000n,
      energyWh: 100n,
      evBehaviour: -1,
    });
    const before = await fixture.evaluations(evWallet).reputation(CP_ID);
    const rated = await ev(["rate", "--session", sessionId.toString(), "--score", "1"], n);
    expect(rated.status, rated.stderr).toBe(0);
    const decimal = formatUnits(before, 18).replace(/\.0$/, "");
    expect(rated.stdout).toContain(`reputation: ${decimal} → ${decimal} (R_cp)\n`);
    expect(rated.stdout).toContain("weight:     your credibility R_v = -1 (0 or less: the rating is recorded but moves nothing)\n");
    expect(await fixture.evaluations(evWallet).reputation(CP_ID)).toBe(before);
  }, 120_000);

  it("ev status prints R_v, debt, withdrawable and canCharge, for the signer or any --address", async () => {
    const n = 4; // the EV of the debt story: R_v 0, paid up, one open session
    const evWallet = accountOf(fixture, n);
    const ledger = fixture.ledger(evWallet);
    const withdrawableWei = await ledger.withdrawable(evWallet.address);
    const text = await ev(["status"], n);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toBe(
      [
        `EV ${evWallet.address}`,
        "  credibility:  R_v = 0",
        "  debt:         0 wei (0.0 ether)",
        `  withdrawable: ${withdrawableWei} wei (${formatUnits(withdrawableWei, 18)} ether)`,
        "  canCharge:    yes",
        "",
      ].join("\n"),
    );

    // An EV with R_v = -1 and a refund waiting, looked up by address (no signer needed).
    const violator = accountOf(fixture, 8);
    const refund = await ledger.withdrawable(violator.address);
    expect(refund).toBe(300_000_000_000_000n - costOf(100n, PRICE_WEI_PER_KWH));
    const byAddress = await runCli(["ev", "status", "--rpc", rpcUrl, "--deployment", deploymentPath, "--address", violator.address.toLowerCase()]);
    expect(byAddress.status, byAddress.stderr).toBe(0);
    expect(byAddress.stdout).toBe(
      [
        `EV ${violator.address}`,
        "  credibility:  R_v = -1 (below 0: a session needs a deposit of twice its cost)",
        "  debt:         0 wei (0.0 ether)",
        "  withdrawable: 270000000000000 wei (0.00027 ether)",
        "  canCharge:    yes",
        "",
      ].join("\n"),
    );

    // Not attested: canCharge is false without any debt.
    const stranger = accountOf(fixture, 9);
    const json = await runCli(["ev", "status", "--json", "--rpc", rpcUrl, "--deployment", deploymentPath, "--address", stranger.address]);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      ev: stranger.address,
      credibility: "0",
      debtWei: "0",
      withdrawableWei: "0",
      canCharge: false,
      doubledDeposit: false,
    });

    const bad = await runCli(["ev", "status", "--rpc", rpcUrl, "--deployment", deploymentPath, "--address", "0x1234"]);
    expect(bad.status).toBe(2);
    expect(stderrLines(bad)).toEqual(['trustpile: --address: expected a 0x address, got "0x1234"']);
  }, 120_000);
});

/**
 * `trustpile ev invite` (Algorithm 2, DESIGN §4.4) through the real CLI on this worker's anvil. Two registered piles
 * in neighbouring grid cells bid from the test itself, with ethers at known prices and powers; the chain clock is
 * moved past each window so the rounds take no wall time. The CLI must follow both rounds, close them itself, pick
 * the cheaper bid of the decisive round under a price-only weight, finalize, and open the session at that price.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hexlify, randomBytes, type HDNodeWallet } from "ethers";
import { AuctionPhase, SessionStatus, connectPricingAuction } from "../../../agent/chain/contracts.ts";
import { readDeployment, writeDeployment } from "../../../agent/chain/deployment.ts";
import { mined } from "../../../agent/chain/operations.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import { areaIdOfCell, decisionCommitmentOf, shortCpId } from "../../../agent/auction/ev-auction-rules.ts";
import type { PricingAuctionContract } from "../../../contracts/artifacts/PricingAuction.ts";
import { advanceTime, deployLedgerFixture, latestTimestamp, testChainUrl, type LedgerFixture } from "../../helpers/chain.ts";
import { runCli, stderrLines, type CliResult } from "../../helpers/cli.ts";
import { accountOf, costOf, runSession } from "../../helpers/ledger-helpers.ts";

/**
 * Account numbers: 2 and 3 own (and bid for, and sign for) the two piles, 4 is the EV, 5 an EV whose invitation gets
 * no bid, 6 an EV in debt.
 */
const OWNER_A = 2;
const OWNER_B = 3;
const EV = 4;
const LONELY_EV = 5;
const INDEBTED_EV = 6;
const CP_A = "cp-auction-a";
const CP_B = "cp-auction-b";
const CELL_A = { x: 40, y: 17 };
const CELL_B = { x: 41, y: 17 }; // one cell east: still invited, one cell away
const ROUND_SECONDS = 60;
const ENERGY_WH = 10_000;

let fixture: LedgerFixture;
let dir: string;
let deploymentPath: string;
let rpcUrl: string;

beforeAll(async () => {
  fixture = await deployLedgerFixture();
  dir = mkdtempSync(join(tmpdir(), "trustpile-ev-invite-"));
  deploymentPath = join(dir, "deployment.json");
  writeDeployment(deploymentPath, fixture.deployment);
  rpcUrl = testChainUrl();
  for (const [owner, chargePointId, cell, maxPowerW] of [
    [OWNER_A, CP_A, CELL_A, 7_400],
    [OWNER_B, CP_B, CELL_B, 11_000],
  ] as const) {
    const wallet = accountOf(fixture, owner);
    await fixture.attestOwner(wallet);
    await fixture.registerCp(wallet, { chargePointId, signer: wallet.address, areaId: areaIdOfCell(cell), maxPowerW });
  }
  // Attested here, through the fixture's nonce manager, so the CLI never sends from account 0 behind its back.
  for (const n of [EV, LONELY_EV, INDEBTED_EV]) await fixture.attestEv(accountOf(fixture, n));
}, 60_000);

afterAll(() => {
  fixture?.provider.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function evCli(args: string[], account: number, deployment = deploymentPath): Promise<CliResult> {
  return runCli(["ev", ...args, "--rpc", rpcUrl, "--deployment", deployment, "--account", String(account)], { timeoutMs: 90_000 });
}

function auctionAs(wallet: HDNodeWallet): PricingAuctionContract {
  const address = fixture.deployment.PricingAuction;
  if (!address) throw new Error("the fixture deployed no PricingAuction");
  return connectPricingAuction(address, wallet);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Moves chain time to at least `target` (s) and mines a block there. */
async function advanceChainTo(target: bigint): Promise<void> {
  const now = await latestTimestamp(fixture.provider);
  if (now < target) await advanceTime(fixture.provider, Number(target - now));
}

interface SealedBid {
  owner: HDNodeWallet;
  cpId: string;
  powerW: number;
  pricePerKWh: bigint;
  salt: string;
}

async function commit(invitationId: bigint, bid: SealedBid, bondWei: bigint): Promise<void> {
  const auction = auctionAs(bid.owner);
  const commitment = await auction.bidCommitment(invitationId, bid.cpId, bid.powerW, bid.pricePerKWh, bid.salt);
  await mined(`commit of ${bid.cpId}`, () => auction.commitBid(invitationId, bid.cpId, commitment, { value: bondWei }));
}

async function reveal(invitationId: bigint, bid: SealedBid): Promise<void> {
  await mined(`reveal of ${bid.cpId}`, () =>
    auctionAs(bid.owner).revealBid(invitationId, bid.cpId, bid.powerW, bid.pricePerKWh, bid.salt),
  );
}

function sealed(owner: number, chargePointId: string, powerW: number, pricePerKWh: bigint): SealedBid {
  return { owner: accountOf(fixture, owner), cpId: cpIdOf(chargePointId), powerW, pricePerKWh, salt: hexlify(randomBytes(32)) };
}

describe("trustpile ev invite on a real anvil", () => {
  it("follows two rounds, picks the cheaper pile of the decisive round and opens the session at its price", async () => {
    const viewer = auctionAs(fixture.authority);
    const { bidBond } = await viewer.parameters();
    const invitationsBefore = await viewer.invitationCount();

    const cli = evCli(
      [
        "invite",
        "--cell",
        `${CELL_A.x},${CELL_A.y}`,
        "--energy-wh",
        String(ENERGY_WH),
        "--min-power-w",
        "7000",
        "--weights",
        "1,0,0,0",
        "--round-seconds",
        String(ROUND_SECONDS),
        "--max-rounds",
        "2",
        "--open",
        "--poll-ms",
        "200",
      ],
      EV,
    );

    const invitationId = await waitFor("the invitation", async () => {
      const count = await viewer.invitationCount();
      return count > invitationsBefore ? count : undefined;
    });
    const invited = await viewer.invitation(invitationId);
    expect(invited.ev).toBe(accountOf(fixture, EV).address);
    expect(invited.areaId).toBe(areaIdOfCell(CELL_A));
    expect(invited.energyWh).toBe(BigInt(ENERGY_WH));
    expect(invited.weights).toEqual([1n, 0n, 0n, 0n]);

    // Round 1: B is cheaper. Round 2: A undercuts B's public price; only the decisive round counts.
    const round1 = [sealed(OWNER_A, CP_A, 7_400, 300_000_000_000_000n), sealed(OWNER_B, CP_B, 11_000, 280_000_000_000_000n)];
    const round2 = [sealed(OWNER_A, CP_A, 7_400, 270_000_000_000_000n), sealed(OWNER_B, CP_B, 11_000, 275_000_000_000_000n)];
    for (const [round, bids] of [
      [1n, round1],
      [2n, round2],
    ] as const) {
      const progress = await waitFor(`round ${round}`, async () => {
        const p = await viewer.progress(invitationId);
        return p.round === round && p.phase === AuctionPhase.Bidding ? p : undefined;
      });
      for (const bid of bids) await commit(invitationId, bid, round === 1n ? bidBond : 0n);
      await advanceChainTo(progress.commitEndsAt);
      for (const bid of bids) await reveal(invitationId, bid);
      // The round is over, and only the CLI closes it.
      await advanceChainTo(progress.revealEndsAt + 1n);
    }

    const result = await cli;
    expect(result.status, result.stderr + result.stdout).toBe(0);
    const lines = result.stdout.split("\n");
    const a = shortCpId(cpIdOf(CP_A));
    const b = shortCpId(cpIdOf(CP_B));
    expect(lines).toContain(
      `1      2     280000000000000       ${a}: 7400 W @ 300000000000000; ${b}: 11000 W @ 280000000000000`,
    );
    expect(lines).toContain(
      `2      2     270000000000000       ${a}: 7400 W @ 270000000000000; ${b}: 11000 W @ 275000000000000`,
    );
    expect(result.stdout).toContain(`winner:    cpId ${cpIdOf(CP_A)}`);
    expect(result.stdout).toContain("price:     270000000000000 wei/kWh");

    // The decision on chain: A at its round-2 price, and c as printed binds this EV, A and the r revealed on open.
    const progress = await viewer.progress(invitationId);
    expect(progress.phase).toBe(AuctionPhase.SessionOpened);
    expect(progress.winnerCpId).toBe(cpIdOf(CP_A));
    expect(result.stdout).toContain(`c:         ${progress.decisionCommitment}`);
    expect(result.stdout).not.toMatch(/^r:/m); // with --open, r is revealed on chain by the ledger call, not printed

    const sessionMatch = /^session (\d+) opened at cpId (0x[0-9a-f]{64})$/m.exec(result.stdout);
    expect(sessionMatch, result.stdout).not.toBeNull();
    const sessionId = BigInt(sessionMatch?.[1] ?? "0");
    const session = await fixture.ledger(fixture.authority).session(sessionId);
    expect(session.cpId).toBe(cpIdOf(CP_A));
    expect(session.ev).toBe(accountOf(fixture, EV).address);
    expect(session.status).toBe(SessionStatus.Opened);
    expect(session.pricePerKWh).toBe(270_000_000_000_000n);
    expect(session.maxEnergyWh).toBe(BigInt(ENERGY_WH));
    // Default deposit: the invited energy at the auction price, rounded up.
    expect(session.heldDeposit).toBe(costOf(BigInt(ENERGY_WH), 270_000_000_000_000n));

    // r is not printed, but the ledger accepted it: recompute c from the AuctionSessionOpened transaction's input.
    const openedLogs = await fixture.ledger(fixture.authority).queryFilter("AuctionSessionOpened");
    const opened = openedLogs.find((log) => log.transactionHash && result.stdout.includes(log.transactionHash));
    expect(opened).toBeDefined();
    const tx = await fixture.provider.getTransaction(opened?.transactionHash ?? "");
    const call = fixture.ledger(fixture.authority).interface.parseTransaction({ data: tx?.data ?? "0x" });
    expect(call?.name).toBe("openAuctionSession");
    expect(decisionCommitmentOf(accountOf(fixture, EV).address, cpIdOf(CP_A), call?.args[1] as string)).toBe(
      progress.decisionCommitment,
    );

    // The invitation deposit went back to the EV's credit in the auction; ev withdraw draws it.
    const ev = accountOf(fixture, EV);
    const credited = await viewer.withdrawable(ev.address);
    expect(credited).toBe(invited.deposit);
    const withdrawn = await evCli(["withdraw"], EV);
    expect(withdrawn.status, withdrawn.stderr).toBe(0);
    expect(withdrawn.stdout).toContain(`withdrew ${credited} wei`);
    expect(await viewer.withdrawable(ev.address)).toBe(0n);
  }, 120_000);

  it("without --open prints r, and ev open --invitation --r opens the decided session later (a wrong r is refused first)", async () => {
    const viewer = auctionAs(fixture.authority);
    const { bidBond } = await viewer.parameters();
    const invitationsBefore = await viewer.invitationCount();
    const cli = evCli(
      ["invite", "--cell", `${CELL_B.x},${CELL_B.y}`, "--energy-wh", "4000", "--round-seconds", String(ROUND_SECONDS), "--max-rounds", "1", "--poll-ms", "200"],
      EV,
    );
    const invitationId = await waitFor("the invitation", async () => {
      const count = await viewer.invitationCount();
      return count > invitationsBefore ? count : undefined;
    });
    const progress = await viewer.progress(invitationId);
    const bid = sealed(OWNER_B, CP_B, 11_000, 260_000_000_000_000n);
    await commit(invitationId, bid, bidBond);
    await advanceChainTo(progress.commitEndsAt);
    await reveal(invitationId, bid);
    await advanceChainTo(progress.revealEndsAt + 1n);

    const result = await cli;
    expect(result.status, result.stderr + result.stdout).toBe(0);
    expect(result.stdout).toContain(`1      1     260000000000000       ${shortCpId(cpIdOf(CP_B))}: 11000 W @ 260000000000000`);
    const r = /^r:\s+(0x[0-9a-f]{64})$/m.exec(result.stdout)?.[1];
    expect(r, result.stdout).toBeDefined();
    expect(result.stdout).toContain(`trustpile ev open --invitation ${invitationId} --r ${r}`);
    expect(result.stdout).not.toMatch(/^session \d+ opened/m);
    const decided = await viewer.progress(invitationId);
    expect(decided.phase).toBe(AuctionPhase.Decided);
    expect(decisionCommitmentOf(accountOf(fixture, EV).address, cpIdOf(CP_B), r ?? "")).toBe(decided.decisionCommitment);

    const wrongR = `0x${"00".repeat(31)}01`;
    const refused = await evCli(["open", "--invitation", String(invitationId), "--r", wrongR], EV);
    expect(refused.status).toBe(2);
    expect(stderrLines(refused)).toEqual([
      `trustpile: --r does not match the decision commitment ${decided.decisionCommitment} of invitation ${invitationId}`,
    ]);
    const notTheirs = await evCli(["open", "--invitation", String(invitationId), "--r", r ?? ""], LONELY_EV);
    expect(notTheirs.status).toBe(2);
    expect(stderrLines(notTheirs)).toEqual([
      `trustpile: invitation ${invitationId} belongs to EV ${accountOf(fixture, EV).address}, not to ${accountOf(fixture, LONELY_EV).address}: only its own EV may open its session`,
    ]);

    const opened = await evCli(["open", "--invitation", String(invitationId), "--r", r ?? "", "--deposit", "0.01ether"], EV);
    expect(opened.status, opened.stderr).toBe(0);
    const sessionId = BigInt(/^session (\d+) opened at cpId /m.exec(opened.stdout)?.[1] ?? "0");
    const session = await fixture.ledger(fixture.authority).session(sessionId);
    expect(session.cpId).toBe(cpIdOf(CP_B));
    expect(session.pricePerKWh).toBe(260_000_000_000_000n);
    expect(session.maxEnergyWh).toBe(4_000n);
    expect(session.heldDeposit).toBe(10_000_000_000_000_000n);
    expect((await viewer.progress(invitationId)).phase).toBe(AuctionPhase.SessionOpened);
  }, 120_000);

  it("says in one sentence that nobody bid, returns the deposit and exits 1", async () => {
    const viewer = auctionAs(fixture.authority);
    const lonely = accountOf(fixture, LONELY_EV);
    const result = await evCli(
      ["invite", "--cell", "900,900", "--energy-wh", "5000", "--round-seconds", "1", "--max-rounds", "1", "--poll-ms", "100"],
      LONELY_EV,
    );
    expect(result.status).toBe(1);
    const invitationId = await viewer.invitationCount();
    expect(stderrLines(result)).toEqual([
      `trustpile: no charge point revealed a bid for invitation ${invitationId} in its first round; the invitation deposit is withdrawable with trustpile ev withdraw`,
    ]);
    expect(result.stdout).toMatch(/^1      0     -                     no bid revealed$/m);
    expect((await viewer.progress(invitationId)).phase).toBe(AuctionPhase.Failed);
    expect(await viewer.withdrawable(lonely.address)).toBe((await viewer.parameters()).minDeposit);
  }, 60_000);

  it("refuses in one sentence, before inviting, an EV that cannot charge because it owes a debt", async () => {
    const indebted = accountOf(fixture, INDEBTED_EV);
    // A deposit for 100 Wh, 150 Wh signed: 15e12 wei of debt at the listed price.
    await runSession(fixture, {
      ev: indebted,
      signer: accountOf(fixture, OWNER_A),
      chargePointId: CP_A,
      depositWei: costOf(100n, 300_000_000_000_000n),
      energyWh: 150n,
    });
    const viewer = auctionAs(fixture.authority);
    const invitationsBefore = await viewer.invitationCount();
    const result = await evCli(["invite", "--cell", `${CELL_A.x},${CELL_A.y}`, "--energy-wh", "1000"], INDEBTED_EV);
    expect(result.status).toBe(1);
    expect(stderrLines(result)).toEqual([
      `trustpile: EV ${indebted.address} cannot charge while it owes a debt of 15000000000000 wei (0.000015 ether) from an earlier session, so the auction refuses its invitation: run trustpile ev pay-debt`,
    ]);
    expect(await viewer.invitationCount()).toBe(invitationsBefore); // nothing was sent
  }, 60_000);

  it("refuses in one sentence when the deployment file names no PricingAuction", async () => {
    const { PricingAuction: _dropped, ...withoutAuction } = fixture.deployment;
    const path = join(dir, "no-auction.json");
    writeDeployment(path, withoutAuction);
    const result = await evCli(["invite", "--cell", "1,1", "--energy-wh", "1000"], EV, path);
    expect(result.status).toBe(2);
    expect(stderrLines(result)).toEqual([
      `trustpile: the deployment file ${path} names no PricingAuction contract, so there is no auction to invite bids in: deploy again with trustpile chain deploy`,
    ]);
    expect(result.stdout).toBe("");
  });

  it("refuses bad usage before sending anything", async () => {
    const both = await evCli(["invite", "--cell", "1,1", "--area", "5", "--energy-wh", "1000"], EV);
    expect(both.status).toBe(2);
    expect(stderrLines(both)).toEqual(["trustpile: give exactly one of --area ID or --cell X,Y to say where to invite bids"]);
    const weights = await evCli(["invite", "--cell", "1,1", "--energy-wh", "1000", "--weights", "0,0,0,0"], EV);
    expect(weights.status).toBe(2);
    expect(stderrLines(weights)).toEqual([
      'trustpile: --weights: at least one of price,power,distance,reputation must weigh more than 0, got "0,0,0,0"',
    ]);
  });

  // Last: it deploys from another account, and nothing after it sends through the fixture.
  it("chain deploy sets the auction's terms from its flags, and refuses terms the contract would revert on", async () => {
    const out = join(dir, "terms.json");
    const deploy = (flags: string[]): Promise<CliResult> =>
      runCli(["chain", "deploy", "--rpc", rpcUrl, "--out", out, "--account", "7", ...flags], { timeoutMs: 60_000 });
    const deployed = await deploy([
      "--bid-bond",
      "0.002ether",
      "--min-invitation-deposit",
      "3000000000000000",
      "--convergence-bps",
      "250",
      "--max-bidders",
      "5",
      "--decision-seconds",
      "900",
    ]);
    expect(deployed.status, deployed.stderr).toBe(0);
    const address = readDeployment(out).PricingAuction;
    expect(address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    const terms = await connectPricingAuction(address ?? "", fixture.provider).parameters();
    expect([...terms]).toEqual([2_000_000_000_000_000n, 3_000_000_000_000_000n, 250n, 5n, 900n]);

    const tooMany = await deploy(["--max-bidders", "65"]);
    expect(tooMany.status).toBe(2);
    expect(stderrLines(tooMany)).toEqual(['trustpile: --max-bidders: expected a whole number 0..64, got "65"']);
    const noWindow = await deploy(["--decision-seconds", "0"]);
    expect(noWindow.status).toBe(2);
    expect(stderrLines(noWindow)).toEqual(["trustpile: --decision-seconds: must be more than 0"]);
  }, 60_000);
});

/**
 * kill -9 between commit and reveal (DESIGN §3: a kill at any point loses nothing): the sealed bid is in the journal
 * before its commit leaves the pile, so a fresh bidder process on the same journal file reveals it in the same round
 * and the bond is not forfeited.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Interface } from "ethers";
import { afterAll, describe, expect, it } from "vitest";
import { PricingAuctionAbi } from "../../../contracts/artifacts/PricingAuction.ts";
import { openJournal } from "../../../agent/journal/journal.ts";
import { REPO_ROOT } from "../../helpers/cli.ts";
import { testChainUrl } from "../../helpers/chain.ts";
import { auctionWorld, cell, chainNowS, cpIdOf, driveEv, invite, revealsOf, UNIT, type AuctionWorld, type PileSpec } from "./auction-world.ts";
import type { BidderProcessConfig } from "./bidder-process.ts";

const BIDDER_PROCESS = join(REPO_ROOT, "test/integration/bidder/bidder-process.ts");
const AREA = cell(3n, 4n);
const PILE: PileSpec = { chargePointId: "cp-auction-crash", areaId: AREA, listedPriceWeiPerKWh: 300n * UNIT, maxPowerW: 11_000, ownerAccount: 7, deviceAccount: 8 };
const auctionInterface = new Interface(PricingAuctionAbi);

interface Child {
  process: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<void>;
}

function spawnBidder(config: BidderProcessConfig): Child {
  const child = spawn(process.execPath, ["--import", "tsx", BIDDER_PROCESS, JSON.stringify(config)], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const lines: Record<string, unknown>[] = [];
  let partial = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    partial += chunk.toString();
    const complete = partial.split("\n");
    partial = complete.pop() ?? "";
    for (const line of complete) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => {
    if (stderr.trim()) process.stderr.write(`bidder process stderr: ${stderr}\n`);
  });
  return { process: child, lines, exited };
}

async function committedRounds(world: AuctionWorld, invitationId: bigint, cpId: string): Promise<number[]> {
  const logs = await world.fixture.provider.getLogs({
    address: world.fixture.deployment.PricingAuction!,
    topics: [auctionInterface.getEvent("BidCommitted")!.topicHash, auctionInterface.encodeFilterTopics("BidCommitted", [invitationId])[1] as string, cpId],
    fromBlock: world.fixture.deployment.deployedAtBlock ?? 0,
  });
  return logs.map((log) => Number(auctionInterface.parseLog(log)!.args.getValue("round")));
}

describe("a bidder killed between commit and reveal", () => {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-bidder-crash-"));
  const children: Child[] = [];

  afterAll(async () => {
    for (const child of children) {
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill("SIGKILL");
      await child.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("reveals its sealed bid after a restart on the same journal, and gets its bond back", async () => {
    const world = await auctionWorld([PILE], 9);
    const cpId = cpIdOf(PILE.chargePointId).toLowerCase();
    const config: BidderProcessConfig = {
      rpcUrl: testChainUrl(),
      deployment: world.fixture.deployment,
      deviceAccount: PILE.deviceAccount,
      cpId,
      journalPath: join(dir, "journal.sqlite"),
      floorPricePerKWh: (200n * UNIT).toString(),
      undercutStep: (20n * UNIT).toString(),
      pollIntervalMs: 100,
    };
    const first = spawnBidder(config);
    children.push(first);
    await waitFor(async () => first.lines.some((line) => line.ready === true), 20_000, "first bidder ready");

    // Long rounds, so the kill surely lands inside the commit window, before the reveal window opens.
    const { invitationId } = await invite(world, { areaId: AREA, energyWh: 10_000, minPowerW: 3_700, weights: [1, 0, 0, 0], roundSeconds: 6, maxRounds: 4 });
    await waitFor(async () => (await committedRounds(world, invitationId, cpId)).includes(1), 20_000, "commit of round 1 on chain");
    first.process.kill("SIGKILL");
    await first.exited;
    const progress = await world.auction(world.ev).progress(invitationId);
    expect(Number(progress.round)).toBe(1);
    // Killed before the reveal window opened: the reveal must come from the restarted process.
    expect(await chainNowS(world)).toBeLessThan(Number(progress.commitEndsAt));
    expect(await revealsOf(world, invitationId)).toEqual([]);
    expect(first.lines.some((line) => line.msg === "revealing bid")).toBe(false);

    // The sealed bid the dead process left behind, fsync'd before its commit was queued.
    const journal = openJournal(config.journalPath);
    const sealed = (journal.auctionBid(invitationId)?.entry as { sealed?: { round: number; priceWeiPerKWh: bigint; salt: string } } | undefined)?.sealed;
    journal.close();
    expect(sealed).toMatchObject({ round: 1, priceWeiPerKWh: 300n * UNIT });
    expect(sealed?.salt).toMatch(/^0x[0-9a-f]{64}$/);

    const second = spawnBidder(config);
    children.push(second);
    await waitFor(async () => (await revealsOf(world, invitationId)).some((r) => r.cpId === cpId && r.round === 1), 30_000, "reveal of round 1 after restart");
    expect(second.lines.some((line) => line.msg === "bidder resuming auctions from the journal")).toBe(true);
    expect(await revealsOf(world, invitationId)).toEqual([{ cpId, round: 1, priceWeiPerKWh: 300n * UNIT, powerW: 11_000 }]);
    // Exactly one commit in round 1: the restart revealed the old commit, it did not seal a new one.
    expect((await committedRounds(world, invitationId, cpId)).filter((round) => round === 1)).toEqual([1]);

    // The auction goes on to its end with the restarted bidder: alone, it keeps its price and wins at 300.
    const result = await driveEv(world, invitationId, 90_000);
    expect(result.winnerCpId.toLowerCase()).toBe(cpId);
    expect(result.priceWeiPerKWh).toBe(300n * UNIT);
    await waitFor(async () => (await world.auction(world.ev).bidOf(invitationId, cpId)).bond === 2n, 20_000, "bond settled");
    const settled = await world.fixture.provider.getLogs({
      address: world.fixture.deployment.PricingAuction!,
      topics: [auctionInterface.getEvent("BondSettled")!.topicHash, auctionInterface.encodeFilterTopics("BondSettled", [invitationId])[1] as string, cpId],
      fromBlock: world.fixture.deployment.deployedAtBlock ?? 0,
    });
    expect(settled.map((log) => auctionInterface.parseLog(log)!.args.getValue("forfeited"))).toEqual([false]);

    second.process.kill("SIGTERM");
    await second.exited;
  }, 180_000);
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

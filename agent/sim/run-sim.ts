/**
 * `trustpile sim` (= `npm start`): the whole system on one machine. anvil with a block every second, the contracts
 * deployed, a pile registered with a fresh device key, hw-sim's meter served over Modbus TCP on loopback with the
 * relay, feedback contact and EV on the sim GPIO, the real agent (journal, interlock, chain watcher, tx sender),
 * and an EV wallet that plugs in and pays deposits. Each session is checked to the wei and to the Wh; then the EV
 * rates the pile (paper §3.4) and the pile's reputation R_cp is shown moving by eq. 2, checked against the twin.
 */
import { formatEther } from "ethers";
import { connectEvaluations, connectLedger, SessionStatus } from "../chain/contracts.ts";
import { openSession, rateSession } from "../chain/operations.ts";
import { fromSd59x18, reputationUpdate, type Score } from "../reputation/eq2.ts";
import { cpIdOf } from "../chain/session-total.ts";
import type { Logger } from "../logging.ts";
import type { CoreState, Phase } from "../core/types.ts";
import {
  SIM_CHARGE_POINT_ID,
  SIM_POLL_INTERVAL_MS,
  SIM_PRICE_WEI_PER_KWH,
  costOf,
  startSimWorld,
  waitUntil,
} from "./world.ts";

/** How each simulated session ends, cycled over the sessions. */
type Scenario = { name: string; depositCoversWh: number; maxEnergyWh: number; pauseAndUnplugAtWh?: number };
const SCENARIOS: Scenario[] = [
  { name: "deposit used up", depositCoversWh: 300, maxEnergyWh: 20_000 },
  { name: "EV pauses and unplugs", depositCoversWh: 1_000, maxEnergyWh: 20_000, pauseAndUnplugAtWh: 150 },
  { name: "EV's own limit", depositCoversWh: 1_000, maxEnergyWh: 250 },
];

/** The EV's rating of the pile after a settled session, and what eq. 2 made of it. */
export interface SimRating {
  score: Score;
  evaluationNo: bigint;
  /** The rater's credibility R_v when it rated (its weight, capped at μ·D). */
  raterCredibility: bigint;
  /** R_cp before and after, SD59x18 (1e18 = 1.0). */
  reputationBefore: bigint;
  reputationAfter: bigint;
  txHash: string;
}

export interface SimSessionReport {
  sessionId: bigint;
  scenario: string;
  stopReason: string;
  energyWh: bigint;
  meterDeltaWh: number;
  depositWei: bigint;
  costWei: bigint;
  refundWei: bigint;
  ownerCreditWei: bigint;
  evCreditWei: bigint;
  settleTxHash: string;
  /** Undefined only when the rating failed (then `problems` says why). */
  rating?: SimRating;
  ok: boolean;
  problems: string[];
}

export interface SimOptions {
  sessions: number;
  /** Physics speed-up of the simulated EV and meter; the agent keeps real time. */
  speedup?: number;
  progress?: (line: string) => void;
  signal?: AbortSignal;
  /** The agent's structured log; silent unless given. */
  log?: Logger;
  /** Seed of the EV's ratings; the same seed gives the same scores. */
  ratingSeed?: number;
}

export const DEFAULT_RATING_SEED = 2019;

/**
 * The simulated EV's ratings: a seeded xorshift32 stream mapped to a satisfied but not uncritical customer,
 * W = 3 three times in four, else mostly 2 and now and then 1.
 */
export function ratingStream(seed: number): () => Score {
  // Spread the seed's bits (one multiply-xor round) so neighbouring small seeds start far apart.
  let state = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b) >>> 0;
  state = (state ^ (state >>> 13)) >>> 0 || 0x9e3779b9;
  const next = (): number => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4_294_967_296;
  };
  return () => {
    const u = next();
    return u < 0.75 ? 3 : u < 0.95 ? 2 : 1;
  };
}

/** R_cp (SD59x18) for the log: three decimals. */
function reputationText(value: bigint): string {
  return fromSd59x18(value).toFixed(3);
}

export async function runSim(options: SimOptions): Promise<SimSessionReport[]> {
  const progress = options.progress ?? (() => {});
  const speedup = options.speedup ?? 5;
  let lastPhase: Phase = "idle";
  const stopReasons = new Map<string, string>();
  const world = await startSimWorld({
    speedup,
    ...(options.log ? { log: options.log } : {}),
    onStep: (state: CoreState) => {
      if (state.phase === lastPhase) return;
      lastPhase = state.phase;
      if (state.session?.stopReason) stopReasons.set(state.session.sessionId.toString(), state.session.stopReason);
      progress(`  agent: ${describePhase(state)}`);
    },
  });
  try {
    const { chain, deployment, device, hwSim, evWallet, owner, ledger, agent } = world;
    progress(`chain: anvil at ${chain.rpcUrl} (pid ${chain.pid}), a block every second`);
    progress(`contracts: Registry ${deployment.Registry}, ChargingLedger ${deployment.ChargingLedger}`);
    progress(`pile: ${SIM_CHARGE_POINT_ID} registered, signer ${device.address}, ${formatEther(SIM_PRICE_WEI_PER_KWH)} ether/kWh`);
    progress(`hw-sim: SDM630 on Modbus TCP 127.0.0.1:${hwSim.meterTcpPort}, control ${hwSim.controlUrl}, physics ×${speedup}`);
    progress("agent: running (relay forced open, journal replayed)");

    const ledgerAsEv = connectLedger(deployment.ChargingLedger, evWallet);
    if (!deployment.Evaluations) throw new Error("the sim deployment has no Evaluations contract");
    const evaluationsAsEv = connectEvaluations(deployment.Evaluations, evWallet);
    const [mu, sigma] = await evaluationsAsEv.parameters();
    const parameters = { mu: fromSd59x18(mu), sigma: fromSd59x18(sigma) };
    const nextScore = ratingStream(options.ratingSeed ?? DEFAULT_RATING_SEED);
    const cpId = cpIdOf(SIM_CHARGE_POINT_ID);
    const reputationTrail: string[] = [reputationText(await evaluationsAsEv.reputation(cpId))];
    const reports: SimSessionReport[] = [];
    for (let n = 0; n < options.sessions; n++) {
      const scenario = SCENARIOS[n % SCENARIOS.length] as Scenario;
      const depositWei = (BigInt(scenario.depositCoversWh) * SIM_PRICE_WEI_PER_KWH) / 1000n;
      const meterBeforeWh = world.registerWh();
      const ownerBefore = await ledger.withdrawable(owner.address);
      const evBefore = await ledger.withdrawable(evWallet.address);

      hwSim.board.ev.plug();
      const opened = await openSession(ledgerAsEv, cpIdOf(SIM_CHARGE_POINT_ID), scenario.maxEnergyWh, depositWei);
      const sessionId = opened.sessionId;
      progress(`session ${sessionId} (${scenario.name}): EV plugged in, deposit ${formatEther(depositWei)} ether covers ${scenario.depositCoversWh} Wh, limit ${scenario.maxEnergyWh} Wh (tx ${opened.receipt.hash})`);

      if (scenario.pauseAndUnplugAtWh !== undefined) {
        const target = scenario.pauseAndUnplugAtWh;
        await waitUntil(`${target} Wh delivered`, () => world.registerWh() - meterBeforeWh >= target, 120_000, options.signal);
        hwSim.board.ev.pause();
        progress(`  ev: paused after ${world.registerWh() - meterBeforeWh} Wh, unplugging`);
        await new Promise((resolve) => setTimeout(resolve, 4 * SIM_POLL_INTERVAL_MS));
        hwSim.board.ev.unplug();
      }
      await waitUntil(`session ${sessionId} to settle`, async () => (await ledger.session(sessionId)).status === SessionStatus.Settled, 180_000, options.signal);
      if (hwSim.board.ev.state().plugged) hwSim.board.ev.unplug();
      await waitUntil("the agent to go idle", () => agent.state().phase === "idle", 30_000, options.signal);

      const onChain = await ledger.session(sessionId);
      const settledLog = (await ledger.queryFilter(ledger.getEvent("SessionSettled"))).find(
        (log) => ledger.interface.parseLog(log)?.args[0] === sessionId,
      );
      const energyWh = onChain.energyWh;
      const costWei = costOf(energyWh, SIM_PRICE_WEI_PER_KWH);
      const refundWei = costWei < depositWei ? depositWei - costWei : 0n;
      const ownerCreditWei = (await ledger.withdrawable(owner.address)) - ownerBefore;
      const evCreditWei = (await ledger.withdrawable(evWallet.address)) - evBefore;
      const meterDeltaWh = world.registerWh() - meterBeforeWh;
      const problems: string[] = [];
      if (ownerCreditWei !== (costWei < depositWei ? costWei : depositWei)) problems.push(`owner credited ${ownerCreditWei} wei, expected ${costWei}`);
      if (evCreditWei !== refundWei) problems.push(`EV refunded ${evCreditWei} wei, expected ${refundWei}`);
      if (BigInt(meterDeltaWh) !== energyWh) problems.push(`signed ${energyWh} Wh but the meter register moved ${meterDeltaWh} Wh`);
      if (costWei > depositWei) problems.push(`cost ${costWei} wei exceeds the deposit ${depositWei} wei (overshoot beyond the stop margin)`);
      progress(
        `session ${sessionId}: settled ${energyWh} Wh, cost ${costWei} wei, refund ${refundWei} wei, meter moved ${meterDeltaWh} Wh — ${problems.length === 0 ? "exact" : problems.join("; ")} (tx ${settledLog?.transactionHash ?? "?"})`,
      );

      // The EV rates the pile (paper §3.4): its credibility R_v weighs the score in eq. 2.
      let rating: SimRating | undefined;
      const score = nextScore();
      try {
        const raterCredibility = await ledger.credibility(evWallet.address);
        const rated = await rateSession(evaluationsAsEv, sessionId, score);
        rating = {
          score,
          evaluationNo: rated.evaluationNo,
          raterCredibility,
          reputationBefore: rated.reputationBefore,
          reputationAfter: rated.reputationAfter,
          txHash: rated.receipt.hash,
        };
        const twin = reputationUpdate(fromSd59x18(rated.reputationBefore), score, Number(raterCredibility), parameters);
        if (Math.abs(twin - fromSd59x18(rated.reputationAfter)) > 1e-12) {
          problems.push(`eq. 2 on chain gave R_cp ${fromSd59x18(rated.reputationAfter)}, its float64 twin ${twin}`);
        }
        reputationTrail.push(reputationText(rated.reputationAfter));
        progress(
          `session ${sessionId}: EV rated the pile ${score}/3 (evaluation ${rated.evaluationNo}, R_v = ${raterCredibility}); reputation R_cp ${reputationText(rated.reputationBefore)} → ${reputationText(rated.reputationAfter)} (tx ${rated.receipt.hash})`,
        );
      } catch (error) {
        problems.push(`rating session ${sessionId} failed: ${error instanceof Error ? error.message : String(error)}`);
        progress(`session ${sessionId}: rating ${score}/3 failed`);
      }

      const report: SimSessionReport = {
        sessionId,
        scenario: scenario.name,
        stopReason: stopReasons.get(sessionId.toString()) ?? "?",
        energyWh,
        meterDeltaWh,
        depositWei,
        costWei,
        refundWei,
        ownerCreditWei,
        evCreditWei,
        settleTxHash: settledLog?.transactionHash ?? "?",
        ...(rating ? { rating } : {}),
        ok: problems.length === 0,
        problems,
      };
      reports.push(report);
    }
    progress(`reputation of ${SIM_CHARGE_POINT_ID} after each rating (eq. 2, μ = ${parameters.mu}, σ = ${parameters.sigma}): ${reputationTrail.join(" → ")}`);
    return reports;
  } finally {
    await world.stop();
  }
}

function describePhase(state: CoreState): string {
  const session = state.session;
  if (!session) return state.phase;
  const id = `session ${session.sessionId}`;
  switch (state.phase) {
    case "depositPending":
      return `${id}: deposit seen in block ${session.depositBlock}, waiting for confirmations`;
    case "authorizing":
      return `${id}: deposit confirmed (head ${state.headBlock}), sending authorize`;
    case "authorized":
      return `${id}: authorize mined, waiting for the interlock`;
    case "energized":
      return `${id}: relay closed at meter ${session.meterStartWh} Wh, budget ${session.stopAtWh} Wh`;
    case "suspended":
      return `${id}: relay closed, EV not drawing`;
    case "stopping":
      return `${id}: stopping (${session.stopReason}) at ${(session.meterLastWh ?? 0) - (session.meterStartWh ?? 0)} Wh, relay open`;
    case "settling":
      return `${id}: ${session.stopReason ? `stopped (${session.stopReason}); ` : ""}signed total ${session.meterStartWh}..${session.meterStopWh} Wh (${(session.meterStopWh ?? 0) - (session.meterStartWh ?? 0)} Wh), settle queued`;
    default:
      return `${id}: ${state.phase}`;
  }
}

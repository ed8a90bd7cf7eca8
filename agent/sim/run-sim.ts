/**
 * `trustpile sim` (= `npm start`): the whole system on one machine. anvil with a block every second, the contracts
 * deployed, a pile registered with a fresh device key, hw-sim's meter served over Modbus TCP on loopback with the
 * relay, feedback contact and EV on the sim GPIO, the real agent (journal, interlock, chain watcher, tx sender),
 * and an EV wallet that plugs in and pays deposits. Each session is checked to the wei and to the Wh.
 */
import { formatEther } from "ethers";
import { connectLedger, SessionStatus } from "../chain/contracts.ts";
import { openSession } from "../chain/operations.ts";
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
        ok: problems.length === 0,
        problems,
      };
      reports.push(report);
      progress(
        `session ${sessionId}: settled ${energyWh} Wh, cost ${costWei} wei, refund ${refundWei} wei, meter moved ${meterDeltaWh} Wh — ${report.ok ? "exact" : problems.join("; ")} (tx ${report.settleTxHash})`,
      );
    }
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

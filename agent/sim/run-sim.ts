/**
 * `trustpile sim` (= `npm start`): the whole system on one machine. anvil with a block every second, the contracts
 * deployed, a pile registered with a fresh device key, hw-sim's meter served over Modbus TCP on loopback with the
 * relay, feedback contact and EV on the sim GPIO, the real agent (journal, interlock, chain watcher, tx sender),
 * and an EV wallet that plugs in and pays deposits. Each session is checked to the wei and to the Wh.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NonceManager, Wallet, formatEther, type JsonRpcProvider } from "ethers";
import { startDevChain, type DevChain } from "../chain/dev-chain.ts";
import { devAccount } from "../chain/dev-accounts.ts";
import { connectProvider } from "../chain/provider.ts";
import { deployContracts } from "../chain/deploy.ts";
import { connectLedger, connectRegistry, Role, SessionStatus } from "../chain/contracts.ts";
import { attest, mined, openSession, registerChargePoint } from "../chain/operations.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { openJournal, type Journal } from "../journal/journal.ts";
import { startAgent, type RunningAgent } from "../runtime/agent.ts";
import { silentLogger, type Logger } from "../logging.ts";
import { freePort } from "../net.ts";
import { sealTo, generateEncryptionKeyPair } from "../crypto/seal.ts";
import type { CoreConfig, CoreState, Phase } from "../core/types.ts";
import { createModbusMeter } from "../../drivers/meters/modbus-meter.ts";
import { meterModel } from "../../drivers/meters/models/index.ts";
import { openGpio } from "../../drivers/gpio/index.ts";
import { createSimGpio } from "../../drivers/gpio/sim.ts";
import { startHwSim, type HwSim } from "../../hw-sim/index.ts";
import { acceleratedClock } from "../../hw-sim/clock.ts";

export const SIM_CHARGE_POINT_ID = "cp-sim-1";
export const SIM_PRICE_WEI_PER_KWH = 300_000_000_000_000n; // 0.0003 ether per kWh
const STOP_MARGIN_WH = 20;
const POLL_INTERVAL_MS = 250;

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

function costOf(energyWh: bigint, priceWeiPerKWh: bigint): bigint {
  const product = energyWh * priceWeiPerKWh;
  return product === 0n ? 0n : (product - 1n) / 1000n + 1n;
}

async function waitUntil(what: string, condition: () => Promise<boolean> | boolean, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (signal?.aborted) throw new Error("interrupted");
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function runSim(options: SimOptions): Promise<SimSessionReport[]> {
  const progress = options.progress ?? (() => {});
  const speedup = options.speedup ?? 5;
  const dataDir = mkdtempSync(join(tmpdir(), "trustpile-sim-"));
  let chain: DevChain | undefined;
  let provider: JsonRpcProvider | undefined;
  let hwSim: HwSim | undefined;
  let journal: Journal | undefined;
  let agent: RunningAgent | undefined;
  try {
    chain = await startDevChain({ port: await freePort(), blockTimeS: 1 });
    provider = (await connectProvider(chain.rpcUrl)) as JsonRpcProvider;
    progress(`chain: anvil at ${chain.rpcUrl} (pid ${chain.pid}), a block every second`);

    const authority = devAccount(0, provider);
    const evWallet = devAccount(1, provider);
    const owner = devAccount(2, provider);
    const { deployment } = await deployContracts(new NonceManager(authority));
    progress(`contracts: Registry ${deployment.Registry}, ChargingLedger ${deployment.ChargingLedger}`);

    const device = Wallet.createRandom().connect(provider);
    const registry = connectRegistry(deployment.Registry, authority);
    const validUntil = BigInt(Math.floor(Date.now() / 1000) + 365 * 24 * 3600);
    await attest(registry, owner.address, Role.Owner, validUntil);
    await attest(registry, evWallet.address, Role.EV, validUntil);
    await (await owner.sendTransaction({ to: device.address, value: 10n ** 18n })).wait();
    await registerChargePoint(connectRegistry(deployment.Registry, owner), {
      chargePointId: SIM_CHARGE_POINT_ID,
      kind: "Private",
      areaId: 1n,
      signer: device.address,
      pricePerKWh: SIM_PRICE_WEI_PER_KWH,
      maxPowerW: 11_000,
      ownerContactSealed: sealTo(generateEncryptionKeyPair().publicKey, "Sim Owner, +00 000 000"),
    });
    progress(`pile: ${SIM_CHARGE_POINT_ID} registered, signer ${device.address}, ${formatEther(SIM_PRICE_WEI_PER_KWH)} ether/kWh`);

    const gpio = createSimGpio();
    const lines = { relay: { line: 17 }, feedback: { line: 27 }, evPresent: { line: 22 } };
    hwSim = await startHwSim({ meterTcpPort: 0, gpio, gpioLines: lines, clock: acceleratedClock(speedup), ev: { plugged: false, socPercent: 20 } });
    progress(`hw-sim: SDM630 on Modbus TCP 127.0.0.1:${hwSim.meterTcpPort}, control ${hwSim.controlUrl}, physics ×${speedup}`);

    const meter = createModbusMeter({ model: meterModel("sdm630"), transport: "tcp", host: "127.0.0.1", port: hwSim.meterTcpPort, unitId: 1, timeoutMs: 500 });
    const io = await openGpio({ driver: "sim", relay: lines.relay, feedback: lines.feedback, evPresent: lines.evPresent }, { sim: gpio });
    journal = openJournal(join(dataDir, "journal.sqlite"));
    const core: CoreConfig = {
      chargePointId: SIM_CHARGE_POINT_ID,
      confirmations: 2,
      stopMarginWh: STOP_MARGIN_WH,
      staleAfterMs: 3_000,
      feedbackTimeoutMs: 500,
      hasEvPresentInput: true,
      hasFeedbackInput: true,
      stopReadingDelayMs: POLL_INTERVAL_MS,
      stopReadingTimeoutMs: 10_000,
    };
    let lastPhase: Phase = "idle";
    const stopReasons = new Map<string, string>();
    agent = await startAgent({
      core,
      pollIntervalMs: POLL_INTERVAL_MS,
      io: { meter, relay: io.relay, ...(io.feedback ? { feedback: io.feedback } : {}), ...(io.evPresent ? { evPresent: io.evPresent } : {}) },
      chain: { provider, wallet: device, deployment, cpId: cpIdOf(SIM_CHARGE_POINT_ID) },
      journal,
      log: options.log ?? silentLogger(),
      chainPollIntervalMs: 500,
      onStep: (state: CoreState) => {
        if (state.phase === lastPhase) return;
        lastPhase = state.phase;
        if (state.session?.stopReason) stopReasons.set(state.session.sessionId.toString(), state.session.stopReason);
        progress(`  agent: ${describePhase(state)}`);
      },
    });
    progress("agent: running (relay forced open, journal replayed)");

    const ledgerAsEv = connectLedger(deployment.ChargingLedger, evWallet);
    const ledger = connectLedger(deployment.ChargingLedger, provider);
    const reports: SimSessionReport[] = [];
    for (let n = 0; n < options.sessions; n++) {
      const scenario = SCENARIOS[n % SCENARIOS.length] as Scenario;
      const depositWei = (BigInt(scenario.depositCoversWh) * SIM_PRICE_WEI_PER_KWH) / 1000n;
      const meterBeforeWh = registerWh(hwSim);
      const ownerBefore = await ledger.withdrawable(owner.address);
      const evBefore = await ledger.withdrawable(evWallet.address);

      hwSim.board.ev.plug();
      const opened = await openSession(ledgerAsEv, cpIdOf(SIM_CHARGE_POINT_ID), scenario.maxEnergyWh, depositWei);
      const sessionId = opened.sessionId;
      progress(`session ${sessionId} (${scenario.name}): EV plugged in, deposit ${formatEther(depositWei)} ether covers ${scenario.depositCoversWh} Wh, limit ${scenario.maxEnergyWh} Wh (tx ${opened.receipt.hash})`);

      if (scenario.pauseAndUnplugAtWh !== undefined) {
        const target = scenario.pauseAndUnplugAtWh;
        await waitUntil(`${target} Wh delivered`, () => registerWh(hwSim!) - meterBeforeWh >= target, 120_000, options.signal);
        hwSim.board.ev.pause();
        progress(`  ev: paused after ${registerWh(hwSim) - meterBeforeWh} Wh, unplugging`);
        await new Promise((resolve) => setTimeout(resolve, 4 * POLL_INTERVAL_MS));
        hwSim.board.ev.unplug();
      }
      await waitUntil(`session ${sessionId} to settle`, async () => (await ledger.session(sessionId)).status === SessionStatus.Settled, 180_000, options.signal);
      if (hwSim.board.ev.state().plugged) hwSim.board.ev.unplug();
      await waitUntil("the agent to go idle", () => agent!.state().phase === "idle", 30_000, options.signal);

      const onChain = await ledger.session(sessionId);
      const settledLog = (await ledger.queryFilter(ledger.getEvent("SessionSettled"))).find(
        (log) => ledger.interface.parseLog(log)?.args[0] === sessionId,
      );
      const energyWh = onChain.energyWh;
      const costWei = costOf(energyWh, SIM_PRICE_WEI_PER_KWH);
      const refundWei = costWei < depositWei ? depositWei - costWei : 0n;
      const ownerCreditWei = (await ledger.withdrawable(owner.address)) - ownerBefore;
      const evCreditWei = (await ledger.withdrawable(evWallet.address)) - evBefore;
      const meterDeltaWh = registerWh(hwSim) - meterBeforeWh;
      const problems: string[] = [];
      if (ownerCreditWei !== (costWei < depositWei ? costWei : depositWei)) problems.push(`owner credited ${ownerCreditWei} wei, expected ${costWei}`);
      if (evCreditWei !== refundWei) problems.push(`EV refunded ${evCreditWei} wei, expected ${refundWei}`);
      if (BigInt(meterDeltaWh) !== energyWh) problems.push(`signed ${energyWh} Wh but the meter register moved ${meterDeltaWh} Wh`);
      if (costWei > depositWei) problems.push(`cost ${costWei} wei exceeds the deposit ${depositWei} wei (overshoot beyond the stop margin)`);
      const stopReason = stopReasons.get(sessionId.toString()) ?? "?";
      const report: SimSessionReport = {
        sessionId,
        scenario: scenario.name,
        stopReason,
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
    await mined("owner withdraw", () => connectLedger(deployment.ChargingLedger, owner).withdraw()).catch(() => undefined);
    return reports;
  } finally {
    await agent?.stop().catch(() => undefined);
    journal?.close();
    await hwSim?.stop().catch(() => undefined);
    provider?.destroy();
    await chain?.stop().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** What the simulated meter's import register shows: whole Wh, as the agent reads it. */
function registerWh(sim: HwSim): number {
  return Math.floor(sim.board.meter.energyWh());
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

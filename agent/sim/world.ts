/**
 * The simulated world of `trustpile sim`, in one process: anvil, contracts, a registered pile with a fresh device
 * key, hw-sim (meter over Modbus TCP, relay with feedback, EV) on the sim GPIO, and the real agent. Integration
 * tests build the same world to check the agent's rules against real sockets and a real chain.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NonceManager, Wallet, type HDNodeWallet, type JsonRpcProvider } from "ethers";
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import { startDevChain, type DevChain } from "../chain/dev-chain.ts";
import { devAccount } from "../chain/dev-accounts.ts";
import { connectProvider } from "../chain/provider.ts";
import { deployContracts } from "../chain/deploy.ts";
import type { Deployment } from "../chain/deployment.ts";
import { connectLedger, connectRegistry, Role } from "../chain/contracts.ts";
import { attest, registerChargePoint } from "../chain/operations.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { costOf } from "../chain/cost.ts";

export { costOf };
import { openJournal, type Journal } from "../journal/journal.ts";
import { startAgent, type AgentOptions, type RunningAgent } from "../runtime/agent.ts";
import { silentLogger, type Logger } from "../logging.ts";
import { freePort } from "../net.ts";
import { generateEncryptionKeyPair, sealTo } from "../crypto/seal.ts";
import type { CoreCommand, CoreConfig, CoreEvent, CoreState } from "../core/types.ts";
import { createModbusMeter } from "../../drivers/meters/modbus-meter.ts";
import { meterModel } from "../../drivers/meters/models/index.ts";
import { openGpio, type GpioLines } from "../../drivers/gpio/index.ts";
import { createSimGpio } from "../../drivers/gpio/sim.ts";
import type { Meter, MeterSample } from "../../drivers/meters/types.ts";
import { startHwSim, type HwSim } from "../../hw-sim/index.ts";
import { acceleratedClock } from "../../hw-sim/clock.ts";
import { startBidder, type BiddingPolicyConfig, type RunningBidder } from "../bidder/index.ts";
import { areaIdOfCell, type GridCell } from "../auction/ev-auction-rules.ts";

export const SIM_CHARGE_POINT_ID = "cp-sim-1";
export const SIM_PRICE_WEI_PER_KWH = 300_000_000_000_000n; // 0.0003 ether per kWh
export const SIM_POLL_INTERVAL_MS = 250;
/** The sim pile's grid cell (x << 32 | y = area 1); invitations for it reach the eight cells around it too. */
export const SIM_CELL: GridCell = { x: 0, y: 1 };
export const SIM_AREA_ID = areaIdOfCell(SIM_CELL);
/** How often the sim's bidders look at the chain: well under the sim auction's 3 s windows at 1 s blocks. */
export const SIM_BIDDER_POLL_INTERVAL_MS = 250;

/**
 * A neighbouring pile that exists only as a bidder: registered with its own random device key (funded by the
 * owner, since bonds and gas come from the device key), with its own journal, but with no meter, relay or agent.
 */
export interface SimNeighbourSpec {
  chargePointId: string;
  cell: GridCell;
  listedPriceWeiPerKWh: bigint;
  maxPowerW: number;
  policy: BiddingPolicyConfig;
}

export interface SimNeighbour {
  spec: SimNeighbourSpec;
  cpId: string;
  device: Wallet | HDNodeWallet;
  bidder: RunningBidder;
}

export interface SimWorldOptions {
  /** Physics speed-up of the simulated EV and meter; the agent keeps real time. */
  speedup?: number;
  blockTimeS?: number;
  confirmations?: number;
  stopMarginWh?: number;
  staleAfterMs?: number;
  /** The pile's wall clock (agent and meter driver; default `Date.now`): clock-jump tests step it. */
  clock?: () => number;
  log?: Logger;
  onStep?: (state: CoreState, event: CoreEvent, commands: CoreCommand[]) => void;
  /** Every good meter sample the agent reads (telemetry). */
  onSample?: (sample: MeterSample) => void;
  /** The agent's `bidding` policy and hooks (agent/bidder), passed through to `startAgent`. */
  bidding?: Pick<AgentOptions, "bidding" | "onAuctionEvent" | "bidderPollIntervalMs">;
  /** Bidder-only piles registered around the sim pile (none by default). */
  neighbours?: readonly SimNeighbourSpec[];
}

export interface SimWorld {
  chain: DevChain;
  provider: JsonRpcProvider;
  deployment: Deployment;
  device: Wallet | HDNodeWallet;
  evWallet: HDNodeWallet;
  owner: HDNodeWallet;
  ledger: ChargingLedgerContract;
  hwSim: HwSim;
  agent: RunningAgent;
  core: CoreConfig;
  /** The agent's journal (OCPP joins the agent on it). */
  journal: Journal;
  /**
   * Stops the agent and starts a new one on the same journal and hardware, as a reboot of the pile would
   * (OCPP Reset in the sim, restart tests). `agent` then names the new one.
   */
  restartAgent(): Promise<RunningAgent>;
  neighbours: SimNeighbour[];
  /** What the simulated meter's import register shows: whole Wh, as the agent reads it. */
  registerWh(): number;
  stop(): Promise<void>;
}

export async function waitUntil(
  what: string,
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (signal?.aborted) throw new Error("interrupted");
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function startSimWorld(options: SimWorldOptions = {}): Promise<SimWorld> {
  const dataDir = mkdtempSync(join(tmpdir(), "trustpile-sim-"));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dataDir, { recursive: true, force: true })];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  };
  try {
    // Set-up runs on automine (every transaction its own block at once), then the chain switches to a block every
    // `blockTimeS`: waiting out a second per set-up transaction only made the sim slow to start.
    const chain = await startDevChain({ port: await freePort() });
    cleanups.push(() => chain.stop());
    const provider = (await connectProvider(chain.rpcUrl)) as JsonRpcProvider;
    cleanups.push(() => provider.destroy());

    const authority = devAccount(0, provider);
    const evWallet = devAccount(1, provider);
    const owner = devAccount(2, provider);
    const { deployment } = await deployContracts(new NonceManager(authority));
    const device = Wallet.createRandom().connect(provider);
    const neighbourSpecs = options.neighbours ?? [];
    const neighbourDevices = neighbourSpecs.map(() => Wallet.createRandom().connect(provider));
    // Independent transactions go out together (the nonce managers hand out the nonces), so start-up does not
    // grow by a round trip per neighbouring pile.
    const registry = connectRegistry(deployment.Registry, new NonceManager(authority));
    const ownerSigner = new NonceManager(owner);
    const validUntil = BigInt(Math.floor(Date.now() / 1000) + 365 * 24 * 3600);
    await Promise.all([
      attest(registry, owner.address, Role.Owner, validUntil),
      attest(registry, evWallet.address, Role.EV, validUntil),
      ...[device, ...neighbourDevices].map(async (key) => (await ownerSigner.sendTransaction({ to: key.address, value: 10n ** 18n })).wait()),
    ]);
    const registryAsOwner = connectRegistry(deployment.Registry, ownerSigner);
    await Promise.all([
      registerChargePoint(registryAsOwner, {
        chargePointId: SIM_CHARGE_POINT_ID,
        kind: "Private",
        areaId: SIM_AREA_ID,
        signer: device.address,
        pricePerKWh: SIM_PRICE_WEI_PER_KWH,
        maxPowerW: 11_000,
        ownerContactSealed: sealTo(generateEncryptionKeyPair().publicKey, "Sim Owner, +00 000 000"),
      }),
      ...neighbourSpecs.map((spec, i) =>
        registerChargePoint(registryAsOwner, {
          chargePointId: spec.chargePointId,
          kind: "Private",
          areaId: areaIdOfCell(spec.cell),
          signer: (neighbourDevices[i] as HDNodeWallet).address,
          pricePerKWh: spec.listedPriceWeiPerKWh,
          maxPowerW: spec.maxPowerW,
          ownerContactSealed: sealTo(generateEncryptionKeyPair().publicKey, "Sim Owner, +00 000 000"),
        }),
      ),
    ]);

    await provider.send("evm_setAutomine", [false]);
    await provider.send("evm_setIntervalMining", [options.blockTimeS ?? 1]);

    const gpio = createSimGpio();
    const lines = { relay: { line: 17 }, feedback: { line: 27 }, evPresent: { line: 22 } };
    const hwSim = await startHwSim({
      meterTcpPort: 0,
      gpio,
      gpioLines: lines,
      clock: acceleratedClock(options.speedup ?? 5),
      ev: { plugged: false, socPercent: 20 },
    });
    cleanups.push(() => hwSim.stop());
    const meter: Meter = createModbusMeter({ model: meterModel("sdm630"), transport: "tcp", host: "127.0.0.1", port: hwSim.meterTcpPort, unitId: 1, timeoutMs: 500, ...(options.clock ? { clock: options.clock } : {}) });
    cleanups.push(() => meter.close());
    const io: GpioLines = await openGpio({ driver: "sim", relay: lines.relay, feedback: lines.feedback, evPresent: lines.evPresent }, { sim: gpio });
    cleanups.push(() => io.close());
    const journal: Journal = openJournal(join(dataDir, "journal.sqlite"));
    cleanups.push(() => journal.close());
    const core: CoreConfig = {
      chargePointId: SIM_CHARGE_POINT_ID,
      confirmations: options.confirmations ?? 2,
      stopMarginWh: options.stopMarginWh ?? 20,
      staleAfterMs: options.staleAfterMs ?? 3_000,
      feedbackTimeoutMs: 500,
      hasEvPresentInput: true,
      hasFeedbackInput: true,
      stopReadingDelayMs: SIM_POLL_INTERVAL_MS,
      stopReadingTimeoutMs: 10_000,
    };
    const startSimAgent = (): Promise<RunningAgent> => startAgent({
      core,
      pollIntervalMs: SIM_POLL_INTERVAL_MS,
      io: { meter, relay: io.relay, ...(io.feedback ? { feedback: io.feedback } : {}), ...(io.evPresent ? { evPresent: io.evPresent } : {}) },
      chain: { provider, wallet: device, deployment, cpId: cpIdOf(SIM_CHARGE_POINT_ID) },
      journal,
      log: options.log ?? silentLogger(),
      chainPollIntervalMs: 250,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.onStep ? { onStep: options.onStep } : {}),
      ...(options.onSample ? { onSample: options.onSample } : {}),
      ...options.bidding,
    });
    let agent = await startSimAgent();
    cleanups.push(() => agent.stop());

    const neighbours: SimNeighbour[] = [];
    for (const [i, spec] of neighbourSpecs.entries()) {
      const neighbourJournal = openJournal(join(dataDir, `${spec.chargePointId}.journal.sqlite`));
      cleanups.push(() => neighbourJournal.close());
      const neighbourDevice = neighbourDevices[i] as HDNodeWallet;
      const bidder = startBidder({
        provider,
        wallet: neighbourDevice,
        deployment,
        cpId: cpIdOf(spec.chargePointId),
        journal: neighbourJournal,
        policy: spec.policy,
        log: (options.log ?? silentLogger()).child({ component: "bidder", chargePointId: spec.chargePointId }),
        pollIntervalMs: SIM_BIDDER_POLL_INTERVAL_MS,
      });
      cleanups.push(() => bidder.stop());
      neighbours.push({ spec, cpId: cpIdOf(spec.chargePointId), device: neighbourDevice, bidder });
    }
    const world: SimWorld = {
      chain,
      provider,
      deployment,
      device,
      evWallet,
      owner,
      ledger: connectLedger(deployment.ChargingLedger, provider),
      hwSim,
      agent,
      core,
      journal,
      async restartAgent() {
        await agent.stop();
        agent = await startSimAgent();
        world.agent = agent;
        return agent;
      },
      neighbours,
      registerWh: () => Math.floor(hwSim.board.meter.energyWh()),
      stop,
    };
    return world;
  } catch (error) {
    await stop();
    throw error;
  }
}

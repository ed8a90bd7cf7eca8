/**
 * The fault world: the whole system of `trustpile sim` with its agents as child processes, so faults can be
 * injected anywhere, including `kill -9`. Framework-free (no vitest import), so the short suite
 * (test/faults/faults.test.ts) and the soak (test/faults/soak.ts) drive the same world:
 *
 *   this process                                                 one agent process per pile (test/fixtures/agent-process.ts)
 *   ------------                                                 -----------------
 *   anvil (given), interval mining                 <-- RPC ----  through a per-pile TCP proxy (RPC outage: cut/restore)
 *   per pile: hw-sim (SDM630 on Modbus TCP, contactor, EV),
 *     a fake sysfs tree and its bridge              <-- Modbus, sysfs files
 *   CSMS simulator (OCPP 1.6J)                      <-- ws ------  OCPP adapter
 *   embedded MQTT broker (aedes)                    <-- mqtt ----  telemetry
 *
 * Recorders run all the time: the physical energy of each pile's meter (a register reset does not undo energy),
 * the relay line's edges (the bridge), the chain as the test sees it (when a deposit had its confirmations, when
 * a session was authorized), and each agent process's RSS. `sessionRecord` turns a finished session into the
 * checker's shape (test/faults/invariants.ts).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { NonceManager, Wallet, toBeHex, type HDNodeWallet, type JsonRpcProvider, type TransactionReceipt } from "ethers";
import { connectProvider } from "../../agent/chain/provider.ts";
import { devAccount } from "../../agent/chain/dev-accounts.ts";
import { deployContracts } from "../../agent/chain/deploy.ts";
import type { Deployment } from "../../agent/chain/deployment.ts";
import { connectLedger, connectRegistry, Role, SessionStatus } from "../../agent/chain/contracts.ts";
import { attest, registerChargePoint } from "../../agent/chain/operations.ts";
import { cpIdOf } from "../../agent/chain/session-total.ts";
import { parseTxKey } from "../../agent/chain/tx-sender.ts";
import { relayOff } from "../../agent/cli/relay-off-command.ts";
import { decodeJson } from "../../agent/journal/json.ts";
import { readJournalStats, type RetentionPolicy } from "../../agent/journal/journal.ts";
import type { CoreConfig, Phase } from "../../agent/core/types.ts";
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import { createSimGpio } from "../../drivers/gpio/sim.ts";
import { startHwSim, startCsmsSim, type CsmsSim, type HwSim } from "../../hw-sim/index.ts";
import { acceleratedClock } from "../../hw-sim/clock.ts";
import { startEmbeddedBroker, type EmbeddedBroker } from "../../agent/telemetry/embedded-broker.ts";
import {
  LINES,
  coreConfig,
  spawnAgentProcess,
  startSysfsBridge,
  startTcpProxy,
  type AgentLine,
  type AgentProcess,
  type SysfsBridge,
  type TcpProxy,
} from "../helpers/agent-world.ts";
import { createFakeSysfs, type FakeSysfs } from "../helpers/fake-sysfs.ts";
import type { AgentDownSpan, ChainSessionView, JournalSettleView, MeterPoint, PileRecord, RelayEdge, RssSample, SessionRecord } from "./invariants.ts";
import type { FaultKind, PlannedFault, PlannedSession } from "./schedule.ts";

export const FAULT_PRICE_WEI_PER_KWH = 300_000_000_000_000n;

/** A line of the agent process with the fault-suite fields (see test/fixtures/agent-process.ts). */
export type FaultAgentLine = AgentLine & { meterFault?: string; depositReorged?: string; faultCleared?: boolean; clockOffsetMs?: number };

export interface FaultWorldOptions {
  rpcUrl: string;
  piles: number;
  confirmations: number;
  /** hw-sim physics speed-up (11 kW look like speedup × 11 kW). */
  speedup: number;
  /** Seconds between blocks once the world is up (fractions allowed). */
  blockIntervalS: number;
  /**
   * Energy the deposit covers beyond the session's target. It must cover what a closed contactor delivers while a
   * killed agent restarts (the dead process cannot open it), or the "no Wh beyond the deposit" invariant breaks.
   */
  stopMarginWh: number;
  /** Progress and fault lines. */
  log: (message: string) => void;
  agentLogLevel?: string;
  /** The agents' journal retention (the soak keeps few rows, so compaction shows within its run). */
  journalRetention?: Partial<RetentionPolicy>;
}

export interface InjectedFault {
  kind: FaultKind;
  session: string;
  pile: string;
  atMs: number;
  /** What shows the fault happened (a kill's exit signal, a deposit gone from the chain, a meter fault seen by the agent). */
  evidence: string | undefined;
}

export type SessionOutcome = "settled" | "reorgedAway" | "lostToDeepReorg" | "notEnded";

export interface SessionResult {
  record: SessionRecord;
  outcome: SessionOutcome;
  fault?: InjectedFault;
  /** Lines of every agent process that ran during the session. */
  lines: FaultAgentLine[];
  stopReasons: string[];
}

/** Where a session's lines begin: the agent process (index into a pile's runs) and its line. */
interface LineCursor {
  run: number;
  line: number;
}

interface TrackedSession {
  sessionId: bigint;
  depositTxHash: string;
  confirmedSeenAtMs?: number;
  authorizedSeenAtMs?: number;
  depositBlock?: number;
}

export interface FaultPile {
  readonly name: string;
  readonly cpId: string;
  readonly device: Wallet | HDNodeWallet;
  readonly ev: HDNodeWallet;
  readonly core: CoreConfig;
  readonly journalPath: string;
  readonly hwSim: HwSim;
  readonly bridge: SysfsBridge;
  /** The fake sysfs GPIO class directory the pile's agent drives its lines through. */
  readonly sysfsRoot: string;
  readonly proxy: TcpProxy;
  /** The running agent process (replaced after a kill). */
  agent(): AgentProcess;
  /** Every agent process this pile ran, oldest first. */
  readonly runs: AgentProcess[];
  /** The last reported state line of the running process. */
  lastState(): FaultAgentLine | undefined;
  readonly meter: MeterPoint[];
  readonly rss: RssSample[];
  /**
   * From each kill -9 to the restarted process's first relay write (it forces the relay open first). The world
   * runs relay-off in between, as the systemd unit does, so next to nothing should flow in these spans.
   */
  readonly agentDown: AgentDownSpan[];
  physicalWh(): number;
}

export interface FaultWorld {
  readonly provider: JsonRpcProvider;
  readonly ledger: ChargingLedgerContract;
  readonly deployment: Deployment;
  readonly piles: FaultPile[];
  readonly csms: CsmsSim;
  readonly injected: InjectedFault[];
  /** Debts the EVs paid before a session (a shortfall after a long agent outage). */
  readonly debtsPaid: { pile: string; wei: bigint }[];
  /** Runs one session on `pile` with its planned fault, to its end; `label` names it in reports. */
  runSession(pile: FaultPile, plan: PlannedSession, label: string): Promise<SessionResult>;
  /** The recorders of `pile` as the checker wants them. */
  pileRecord(pile: FaultPile): PileRecord;
  /** Drops recorder history older than `beforeMs` (the soak checks session by session). */
  pruneBefore(beforeMs: number): void;
  /** Stops every pile's agent cleanly (SIGTERM: relay open, lines released), e.g. to replay their journals. */
  stopAgents(): Promise<void>;
  /** Journal file size and rows of `pile` (read-only). */
  journalStats(pile: FaultPile): JournalStats;
  close(): Promise<void>;
}

export interface JournalStats {
  /** page_count × page_size */
  fileBytes: number;
  /** (page_count − freelist_count) × page_size */
  usedBytes: number;
  walBytes: number;
  events: number;
  outbox: number;
  /** Outbox rows compaction reduced to their key and outcome. */
  tombstones: number;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number, pollMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

async function send<T>(provider: JsonRpcProvider, method: string, params: unknown[] = []): Promise<T> {
  return (await provider.send(method, params)) as T;
}

/** A shared/exclusive gate: reorg sessions rewrite the chain's recent blocks, so no other session may run meanwhile. */
class SessionGate {
  #shared = 0;
  #exclusive = false;
  #waiters: (() => void)[] = [];

  async shared(): Promise<() => void> {
    while (this.#exclusive) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    this.#shared++;
    return () => {
      this.#shared--;
      this.#wake();
    };
  }

  async exclusive(): Promise<() => void> {
    while (this.#exclusive) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    this.#exclusive = true;
    while (this.#shared > 0) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return () => {
      this.#exclusive = false;
      this.#wake();
    };
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

function readRssKb(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined; // the process is gone
  }
}

const STATUS_NAMES = new Map<bigint, ChainSessionView["status"]>(Object.entries(SessionStatus).map(([name, value]) => [value, name as ChainSessionView["status"]]));

export async function startFaultWorld(options: FaultWorldOptions): Promise<FaultWorld> {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-faults-"));
  const cleanups: (() => Promise<void>)[] = [];
  const piles: (FaultPile & { start(): Promise<void>; clockOffsetFile: string; stopRecorders(): void })[] = [];
  const injected: InjectedFault[] = [];
  const debtsPaid: { pile: string; wei: bigint }[] = [];
  const gate = new SessionGate();
  const log = options.log;
  try {
    const provider = (await connectProvider(options.rpcUrl)) as JsonRpcProvider;
    cleanups.push(async () => provider.destroy());
    // A block per transaction while contracts and piles are set up; interval mining once the world runs.
    await send(provider, "evm_setIntervalMining", [0]);
    await send(provider, "evm_setAutomine", [true]);
    const authority = new NonceManager(devAccount(0, provider));
    const owner = devAccount(1, provider);
    const { deployment } = await deployContracts(authority);
    const registry = connectRegistry(deployment.Registry, authority);
    const latest = await provider.getBlock("latest");
    const farFuture = BigInt(latest?.timestamp ?? 0) + 10n * 365n * 24n * 3600n;
    await attest(registry, owner.address, Role.Owner, farFuture);
    const ledger = connectLedger(deployment.ChargingLedger, provider);

    const csms = await startCsmsSim({});
    cleanups.push(() => csms.stop());
    let broker: EmbeddedBroker = await startEmbeddedBroker({});
    const brokerPort = broker.port;
    cleanups.push(() => broker.stop());

    for (let index = 0; index < options.piles; index++) {
      const name = `cp-fault-${index + 1}`;
      // Accounts: 0 authority, 1 owner, 2.. one EV per pile (its own nonces, so piles open deposits in parallel).
      const ev = devAccount(2 + index, provider);
      await attest(registry, ev.address, Role.EV, farFuture);
      const device = Wallet.createRandom().connect(provider);
      await (await owner.sendTransaction({ to: device.address, value: 10n ** 18n })).wait();
      await registerChargePoint(connectRegistry(deployment.Registry, owner), {
        chargePointId: name,
        kind: "Private",
        areaId: 1n,
        signer: device.address,
        pricePerKWh: FAULT_PRICE_WEI_PER_KWH,
        maxPowerW: 11_000,
        ownerContactSealed: new Uint8Array([1, 2, 3]),
      });
      const pileDir = join(dir, name);
      mkdirSync(pileDir, { recursive: true });
      const privateKeyFile = join(pileDir, "device.key");
      writeFileSync(privateKeyFile, `${device.privateKey}\n`, { mode: 0o600 });
      const clockOffsetFile = join(pileDir, "clock-offset");
      writeFileSync(clockOffsetFile, "0\n");

      const gpio = createSimGpio();
      // A battery far larger than the run delivers: the charge curve stays flat (no taper) for 1,000 sessions.
      const hwSim = await startHwSim({ meterTcpPort: 0, gpio, gpioLines: LINES, clock: acceleratedClock(options.speedup), ev: { plugged: false, socPercent: 20, capacityWh: 100_000_000 } });
      cleanups.push(() => hwSim.stop());
      const sysfs: FakeSysfs = await createFakeSysfs([{ base: 0, ngpio: 54, label: "pinctrl-bcm2835" }], { kernel: true });
      cleanups.push(() => sysfs.close());
      const bridge = await startSysfsBridge(sysfs, gpio);
      cleanups.push(() => bridge.stop());
      const proxy = await startTcpProxy(options.rpcUrl);
      cleanups.push(() => proxy.close());
      const core = coreConfig(name, { confirmations: options.confirmations, stopMarginWh: options.stopMarginWh });

      // Physical energy: the register's increments, and after a register reset the new register value.
      const meter: MeterPoint[] = [];
      let lastRegister = hwSim.board.meter.energyWh();
      let physical = 0;
      let lastPushed = -1;
      const sampleMeter = (): void => {
        const register = hwSim.board.meter.energyWh();
        physical += register >= lastRegister - 0.5 ? Math.max(0, register - lastRegister) : register;
        lastRegister = register;
        if (physical - lastPushed >= 0.05 || meter.length === 0) {
          meter.push({ atMs: Date.now(), physicalWh: physical, registerWh: register });
          lastPushed = physical;
        }
      };
      sampleMeter();
      const meterTimer = setInterval(sampleMeter, 20);
      const rss: RssSample[] = [];
      const agentDown: AgentDownSpan[] = [];
      const runs: AgentProcess[] = [];
      const rssTimer = setInterval(() => {
        const current = runs.at(-1);
        if (!current || current.exited()) return;
        const rssKb = readRssKb(current.pid);
        if (rssKb !== undefined) rss.push({ atMs: Date.now(), pid: current.pid, rssKb });
      }, 1_000);

      const pile = {
        name,
        cpId: cpIdOf(name),
        device,
        ev,
        core,
        journalPath: join(pileDir, "journal.sqlite"),
        hwSim,
        bridge,
        sysfsRoot: sysfs.root,
        proxy,
        runs,
        meter,
        rss,
        agentDown,
        clockOffsetFile,
        physicalWh: () => {
          sampleMeter();
          return physical;
        },
        agent(): AgentProcess {
          const current = runs.at(-1);
          if (!current) throw new Error(`${name}: no agent process started`);
          return current;
        },
        lastState(): FaultAgentLine | undefined {
          const current = runs.at(-1);
          if (!current) return undefined;
          for (let i = current.lines.length - 1; i >= 0; i--) if (current.lines[i]!.phase !== undefined) return current.lines[i];
          return undefined;
        },
        async start(): Promise<void> {
          const agent = spawnAgentProcess({
            rpcUrl: proxy.url,
            deployment,
            privateKeyFile,
            cpId: cpIdOf(name),
            meterHost: "127.0.0.1",
            meterPort: hwSim.meterTcpPort,
            sysfsRoot: sysfs.root,
            lines: LINES,
            journalPath: join(pileDir, "journal.sqlite"),
            core,
            pollIntervalMs: 250,
            chainPollIntervalMs: 250,
            txTickIntervalMs: 250,
            logLevel: options.agentLogLevel ?? "warn",
            clockOffsetFile,
            ...(options.journalRetention ? { journalRetention: options.journalRetention } : {}),
            ocpp: {
              config: { url: csms.url, version: "1.6", connectorId: 1, vendor: "trustpile", model: "trustpile-cp", reconnectMaxDelayS: 2 },
              chargePointId: name,
              reconnectInitialMs: 250,
            },
            mqtt: { config: { url: `mqtt://127.0.0.1:${brokerPort}`, topicPrefix: "trustpile", homeAssistant: false }, chargePointId: name },
          });
          runs.push(agent);
          await agent.waitForLine(`${name}: the agent to be ready`, (line) => line.ready === true, 60_000);
        },
        stopRecorders(): void {
          clearInterval(meterTimer);
          clearInterval(rssTimer);
        },
      };
      cleanups.push(async () => pile.stopRecorders());
      cleanups.push(async () => {
        await pile.runs.at(-1)?.terminate().catch(() => undefined);
      });
      piles.push(pile);
    }
    for (const pile of piles) await pile.start();
    log(`fault world: ${piles.length} pile(s) up, ledger ${deployment.ChargingLedger}`);

    // ---- the chain as the test sees it
    // When each block number was first seen, by a loop that does nothing else (one cheap call per 50 ms), so a
    // busy machine delays it as little as possible; sessions are judged on these times and the chain's own facts.
    const firstSeenAtMs = new Map<number, number>();
    let headPollerStopped = false;
    const headPoller = (async () => {
      let known = -1;
      while (!headPollerStopped) {
        try {
          const head = Number(await send<string>(provider, "eth_blockNumber"));
          const now = Date.now();
          for (let number = Math.max(known + 1, head - 64); number <= head; number++) if (!firstSeenAtMs.has(number)) firstSeenAtMs.set(number, now);
          known = Math.max(known, head);
        } catch {
          // anvil busy: next round
        }
        await sleep(50);
      }
    })();
    cleanups.push(async () => {
      headPollerStopped = true;
      await headPoller;
    });
    const observed = new Set<TrackedSession>();
    let observerStopped = false;
    const observer = (async () => {
      while (!observerStopped) {
        try {
          const head = Number(await send<string>(provider, "eth_blockNumber"));
          for (const session of [...observed]) {
            if (session.confirmedSeenAtMs === undefined) {
              const receipt = await send<{ blockNumber: string } | null>(provider, "eth_getTransactionReceipt", [session.depositTxHash]);
              if (receipt) {
                session.depositBlock = Number(receipt.blockNumber);
                if (head - session.depositBlock + 1 >= options.confirmations) session.confirmedSeenAtMs = Date.now();
              }
            } else if (session.authorizedSeenAtMs === undefined) {
              // A deep reorg takes the id away (UnknownSession) until another deposit gets it: that must not stop
              // the rounds for the other sessions.
              const status = await ledger.session(session.sessionId).then((view) => view.status, () => undefined);
              if (status === SessionStatus.Authorized || status === SessionStatus.Settled) session.authorizedSeenAtMs = Date.now();
            }
          }
        } catch {
          // anvil busy with a reorg: look again next round
        }
        await sleep(100);
      }
    })();
    cleanups.push(async () => {
      observerStopped = true;
      await observer;
    });

    // The world mines its own blocks (evm_mine on a timer): anvil's interval mining takes whole seconds only, and
    // a reorg below the confirmation depth needs the miner paused at an exact point.
    let miningPaused = true;
    let minerStopped = false;
    const miner = (async () => {
      while (!minerStopped) {
        await sleep(options.blockIntervalS * 1000);
        if (!miningPaused && !minerStopped) await send(provider, "evm_mine").catch(() => undefined);
      }
    })();
    const intervalMining = async (): Promise<void> => {
      await send(provider, "evm_setAutomine", [false]);
      miningPaused = false;
    };
    const pauseMining = async (): Promise<void> => {
      miningPaused = true;
      await send(provider, "evm_setAutomine", [false]);
    };
    await intervalMining();
    cleanups.push(async () => {
      minerStopped = true;
      await miner;
      await send(provider, "evm_setAutomine", [true]).catch(() => undefined);
    });

    // ---- faults
    let brokerDownUntilMs = 0;
    async function restartBroker(): Promise<void> {
      broker = await startEmbeddedBroker({ port: brokerPort });
    }

    /** Sets the pile's clock offset and waits until the agent process confirms it. */
    async function stepClock(pile: (typeof piles)[number], offsetMs: number): Promise<void> {
      writeFileSync(pile.clockOffsetFile, `${offsetMs}\n`);
      const agent = pile.agent();
      const from = agent.lines.length;
      process.kill(agent.pid, "SIGUSR2");
      await agent.waitForLine(`${pile.name}: clock offset ${offsetMs}`, (line) => (line as FaultAgentLine).clockOffsetMs === offsetMs, 10_000, from);
    }

    function currentOffset(pile: (typeof piles)[number]): number {
      return Number(readFileSync(pile.clockOffsetFile, "utf8").trim() || "0");
    }

    /** The agent's lines from `since` on, across restarts (a long-lived process's older lines are skipped). */
    function linesOf(pile: FaultPile, since: LineCursor): FaultAgentLine[] {
      return pile.runs.slice(since.run).flatMap((run, index) => (index === 0 ? run.lines.slice(since.line) : run.lines) as FaultAgentLine[]);
    }

    async function inject(pile: (typeof piles)[number], fault: PlannedFault, session: TrackedSession, label: string, sinceRun: LineCursor): Promise<InjectedFault> {
      const record: InjectedFault = { kind: fault.kind, session: label, pile: pile.name, atMs: Date.now(), evidence: undefined };
      const board = pile.hwSim.board;
      const meterFaultSeen = (): string | undefined => linesOf(pile, sinceRun).find((line) => line.meterFault !== undefined && line.receivedAtMs >= record.atMs)?.meterFault;
      switch (fault.kind) {
        case "kill9": {
          const victim = pile.agent();
          const phase = pile.lastState()?.phase ?? "start-up";
          const killedAtMs = Date.now();
          await victim.kill9();
          // What the installed unit does after any death (systemd/trustpile.service ExecStopPost): the real
          // `trustpile relay-off` code drives the relay line inactive before the agent is started again, so a kill
          // never leaves current flowing with nobody watching the budget.
          const relayOffReport = await relayOff({ driver: "onoff", relay: { line: LINES.relay.line, activeLow: false }, sysfsRoot: pile.sysfsRoot, feedbackTimeoutMs: 500 });
          record.evidence = victim.exited() ? `pid ${victim.pid} killed with SIGKILL in phase ${phase}; ${relayOffReport}` : undefined;
          await pile.start();
          const firstRelayWrite = pile.agent().lines.find((line) => line.relay !== undefined);
          pile.agentDown.push({ fromMs: killedAtMs, toMs: firstRelayWrite?.receivedAtMs ?? Date.now() });
          return record;
        }
        case "rpcDown":
          pile.proxy.cut();
          await sleep(fault.durationMs);
          record.evidence = pile.proxy.refused() > 0 ? `${pile.proxy.refused()} RPC connections refused so far` : "RPC cut (no connection attempted)";
          pile.proxy.restore();
          return record;
        case "csmsDown": {
          await csms.goOffline();
          record.evidence = csms.online ? undefined : `CSMS offline for ${fault.durationMs} ms`;
          await sleep(fault.durationMs);
          // Another pile's outage may have brought it back already.
          if (!csms.online) await csms.goOnline();
          return record;
        }
        case "brokerDown":
          // One outage at a time: piles share the broker, and a second stop would find it stopped.
          if (brokerDownUntilMs > Date.now()) return record;
          brokerDownUntilMs = Date.now() + fault.durationMs + 1_000;
          await broker.stop();
          await sleep(fault.durationMs);
          record.evidence = `broker on port ${brokerPort} stopped for ${fault.durationMs} ms`;
          await restartBroker();
          return record;
        case "meterOffline":
        case "meterCrcErrors":
        case "meterLateReplies":
          if (fault.kind === "meterOffline") board.faults.meterOffline(true);
          if (fault.kind === "meterCrcErrors") board.faults.meterCrcErrors(true);
          if (fault.kind === "meterLateReplies") board.faults.meterReplyDelayMs(fault.magnitude);
          await waitFor("the agent to see the meter fault", () => meterFaultSeen() !== undefined, fault.durationMs, 50).catch(() => undefined);
          await sleep(Math.max(0, record.atMs + fault.durationMs - Date.now()));
          board.faults.clear();
          record.evidence = meterFaultSeen() === undefined ? (fault.kind === "meterLateReplies" ? `replies ${fault.magnitude} ms late, all within the timeout` : undefined) : `agent saw meter fault "${meterFaultSeen()}"`;
          return record;
        case "meterEnergyReset":
          board.faults.meterEnergyReset();
          await waitFor("the agent to see the register reset", () => meterFaultSeen() !== undefined, 10_000).catch(() => undefined);
          record.evidence = meterFaultSeen() === undefined ? undefined : `agent saw meter fault "${meterFaultSeen()}" after the register reset`;
          return record;
        case "relayWeld":
          // Evidence (the agent faulting) is filled in when the session ends: the weld shows only at the stop.
          board.faults.relayWeld();
          return record;
        case "reorgBelowDepth":
        case "reorgAboveDepth": {
          await pauseMining();
          try {
            const head = Number(await send<string>(provider, "eth_blockNumber"));
            const receipt = await send<{ blockNumber: string } | null>(provider, "eth_getTransactionReceipt", [session.depositTxHash]);
            if (!receipt) return record;
            const depth = head - Number(receipt.blockNumber) + 1;
            await send(provider, "anvil_reorg", [depth, []]);
            const gone = (await send<unknown>(provider, "eth_getTransactionReceipt", [session.depositTxHash])) === null;
            const confirmations = depth;
            record.evidence = gone ? `deposit block ${Number(receipt.blockNumber)} replaced (reorg depth ${depth}, the deposit had ${confirmations} of ${options.confirmations} confirmations)` : undefined;
          } finally {
            await intervalMining();
          }
          return record;
        }
        case "clockJump":
          await stepClock(pile, currentOffset(pile) + fault.magnitude);
          record.evidence = `pile clock stepped ${fault.magnitude > 0 ? "+" : ""}${fault.magnitude / 1000} s`;
          return record;
      }
    }

    /** Resolves when the planned moment of the session arrives; false if the session ended without reaching it. */
    async function reached(pile: FaultPile, fault: PlannedFault, sessionId: bigint, targetWh: number, startPhysicalWh: number, ended: () => boolean, sinceRun: LineCursor): Promise<boolean> {
      const id = sessionId.toString();
      const inPhase = (phase: Phase): boolean => linesOf(pile, sinceRun).some((line) => line.phase === phase && line.sessionId === id);
      for (;;) {
        if (ended()) return false;
        if (fault.at.phase === "energized") {
          if (inPhase("energized") && pile.physicalWh() - startPhysicalWh >= fault.at.budgetShare * targetWh) return true;
        } else if (inPhase(fault.at.phase)) return true;
        await sleep(10);
      }
    }

    async function chainView(tracked: TrackedSession): Promise<ChainSessionView | undefined> {
      const receipt = await send<unknown>(provider, "eth_getTransactionReceipt", [tracked.depositTxHash]);
      if (receipt === null) return undefined;
      const session = await ledger.session(tracked.sessionId);
      const settledTopic = ledger.interface.getEvent("SessionSettled")!.topicHash;
      const logs = await provider.getLogs({
        address: deployment.ChargingLedger,
        topics: [settledTopic, toBeHex(tracked.sessionId, 32)],
        fromBlock: deployment.deployedAtBlock ?? 0,
        toBlock: "latest",
      });
      let chargingRecords = 0;
      if (session.status === SessionStatus.Settled) {
        const record = await ledger.chargingRecord(session.recordNo);
        if (record.sessionId === tracked.sessionId) chargingRecords = 1;
        // A second record for the same session would sit right behind it on the pile's chain of records.
        let previous = record.prevOfCp;
        for (let hops = 0; previous !== 0n && hops < 3; hops++) {
          const older = await ledger.chargingRecord(previous);
          if (older.sessionId === tracked.sessionId) chargingRecords++;
          previous = older.prevOfCp;
        }
      }
      return { status: STATUS_NAMES.get(session.status) ?? "None", settledEvents: logs.length, chargingRecords, energyWh: Number(session.energyWh) };
    }

    /**
     * After a reorg deeper than the confirmations the ledger hands the id out again, and the agent settles the new
     * deposit under `settle:<id>/r<N>` (txKey in agent/chain/tx-sender.ts): the newest generation is the session
     * just run (a pile runs one session at a time).
     */
    function newestSettleKey(db: Database.Database, sessionId: bigint): string {
      const base = `settle:${sessionId}`;
      const keysIn = (table: string): string[] =>
        db.prepare<[string, string], { key: string }>(`SELECT key FROM ${table} WHERE key = ? OR key LIKE ?`).all(base, `${base}/r%`).map((row) => row.key);
      const hasTombstones = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox_tombstones'").get() !== undefined;
      const keys = [...keysIn("outbox"), ...(hasTombstones ? keysIn("outbox_tombstones") : [])];
      const generationOf = (key: string): number => parseTxKey(key)?.generation ?? -1;
      return keys.sort((a, b) => generationOf(b) - generationOf(a))[0] ?? base;
    }

    function journalSettle(pile: FaultPile, sessionId: bigint): JournalSettleView | undefined {
      const db = new Database(pile.journalPath, { readonly: true, fileMustExist: true });
      try {
        const key = newestSettleKey(db, sessionId);
        const row = db.prepare<[string], { status: JournalSettleView["status"]; payload: string | null }>("SELECT status, payload FROM outbox WHERE key = ?").get(key);
        if (!row?.payload) {
          // Compacted (journal schema 3): only the outcome is left, no signed total to compare.
          const hasTombstones = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox_tombstones'").get() !== undefined;
          const tombstone = hasTombstones ? db.prepare<[string], { status: JournalSettleView["status"] }>("SELECT status FROM outbox_tombstones WHERE key = ?").get(key) : undefined;
          return tombstone ? { status: tombstone.status } : undefined;
        }
        const payload = decodeJson(row.payload) as { total?: { meterStartWh?: bigint | number; meterStopWh?: bigint | number } };
        const total = payload.total;
        if (!total || total.meterStartWh === undefined || total.meterStopWh === undefined) return undefined;
        return { status: row.status, signedEnergyWh: Number(BigInt(total.meterStopWh) - BigInt(total.meterStartWh)) };
      } finally {
        db.close();
      }
    }

    const world: FaultWorld = {
      provider,
      ledger,
      deployment,
      piles,
      csms,
      injected,
      debtsPaid,
      pileRecord: (pile) => ({ name: pile.name, relayEdges: [...pile.bridge.relayEdges] as RelayEdge[], meter: [...pile.meter], rss: [...pile.rss], agentDown: [...pile.agentDown] }),
      pruneBefore(beforeMs) {
        for (const pile of piles) {
          const keepMeter = Math.max(0, pile.meter.findIndex((point) => point.atMs >= beforeMs) - 1);
          pile.meter.splice(0, keepMeter);
          // Keep the edge that gives the level at `beforeMs`.
          const edges = pile.bridge.relayEdges;
          const firstKept = Math.max(0, edges.findIndex((edge) => edge.atMs >= beforeMs) - 1);
          if (firstKept > 0) edges.splice(0, firstKept);
        }
      },
      journalStats(pile) {
        const stats = readJournalStats(pile.journalPath);
        return { fileBytes: stats.fileBytes, usedBytes: stats.liveBytes, walBytes: stats.walBytes, events: stats.rows.events, outbox: stats.rows.outbox, tombstones: stats.rows.outbox_tombstones };
      },
      async runSession(pile, plan, label) {
        const fullPile = piles.find((candidate) => candidate === pile);
        if (!fullPile) throw new Error(`runSession: ${pile.name} is not a pile of this world`);
        const fault = plan.fault;
        const exclusive = fault?.kind === "reorgBelowDepth" || fault?.kind === "reorgAboveDepth";
        const release = exclusive ? await gate.exclusive() : await gate.shared();
        try {
          return await runOne(fullPile, plan, label);
        } finally {
          release();
        }
      },
      async stopAgents() {
        for (const pile of piles) await pile.runs.at(-1)?.terminate();
      },
      async close() {
        for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };

    async function runOne(pile: (typeof piles)[number], plan: PlannedSession, label: string): Promise<SessionResult> {
      const fault = plan.fault;
      const sinceRun: LineCursor = { run: pile.runs.length - 1, line: pile.agent().lines.length };
      const windowStartMs = Date.now();
      const startPhysicalWh = pile.physicalWh();
      const coversWh = plan.targetWh + options.stopMarginWh;
      const depositWei = (BigInt(coversWh) * FAULT_PRICE_WEI_PER_KWH) / 1000n;
      const maxEnergyWh = 1_000_000;
      const evLedger = connectLedger(deployment.ChargingLedger, pile.ev);
      // An EV whose last session cost more than its deposit (the contactor a killed agent left closed) owes the
      // rest and may not open another session until it pays, as a real EV's wallet would.
      const debt = await ledger.debt(pile.ev.address);
      if (debt > 0n) {
        await (await evLedger.payDebt({ value: debt })).wait();
        debtsPaid.push({ pile: pile.name, wei: debt });
        log(`${label} ${pile.name}: the EV paid ${debt} wei of debt first`);
      }
      pile.hwSim.board.ev.plug();

      // Below the confirmation depth: the deposit must still be unconfirmed when the reorg strikes, so it is mined
      // alone in a block of its own and no further block comes until the reorg.
      /** The session a mined deposit opened, tracked from here on by the chain observer. */
      const trackDeposit = (receipt: TransactionReceipt | null): TrackedSession => {
        if (!receipt) throw new Error(`${label}: deposit not mined`);
        const tracked: TrackedSession = { sessionId: sessionIdOf(receipt.logs), depositTxHash: receipt.hash, depositBlock: receipt.blockNumber };
        observed.add(tracked);
        return tracked;
      };
      if (fault?.kind === "reorgBelowDepth") {
        await pauseMining();
        try {
          const tx = await evLedger.openSession(pile.cpId, maxEnergyWh, { value: depositWei });
          await send(provider, "evm_mine");
          const tracked = trackDeposit(await tx.wait());
          const { sessionId, depositTxHash } = tracked;
          await waitForDepositPending(pile, sessionId, sinceRun);
          const injectedFault = await inject(pile, fault, tracked, label, sinceRun);
          injected.push(injectedFault);
          log(`${label} ${pile.name}: ${fault.kind} injected: ${injectedFault.evidence ?? "NO EVIDENCE"}`);
          return await finish(pile, plan, label, { sessionId, depositTxHash, depositWei, maxEnergyWh, windowStartMs, sinceRun, tracked, fault: injectedFault });
        } finally {
          await intervalMining();
        }
      }
      const tx = await evLedger.openSession(pile.cpId, maxEnergyWh, { value: depositWei });
      const tracked = trackDeposit(await tx.wait());
      const { sessionId, depositTxHash } = tracked;

      let endedFlag = false;
      let injectedFault: InjectedFault | undefined;
      const faultTask = fault
        ? (async () => {
            if (!(await reached(pile, fault, sessionId, plan.targetWh, startPhysicalWh, () => endedFlag, sinceRun))) {
              log(`${label} ${pile.name}: ${fault.kind} not injected: the session ended before ${fault.at.phase}`);
              return;
            }
            injectedFault = await inject(pile, fault, tracked, label, sinceRun);
            injected.push(injectedFault);
            log(`${label} ${pile.name}: ${fault.kind} injected${injectedFault.evidence === undefined ? "" : `: ${injectedFault.evidence}`}`);
          })()
        : Promise.resolve();
      try {
        return await finish(pile, plan, label, {
          sessionId,
          depositTxHash,
          depositWei,
          maxEnergyWh,
          windowStartMs,
          sinceRun,
          tracked,
          waitBeforeEnd: async () => {
            await faultTask;
          },
          markEnded: () => (endedFlag = true),
          fault: () => injectedFault,
        });
      } finally {
        endedFlag = true;
        await faultTask.catch(() => undefined);
      }
    }

    /** Waits until the agent has seen the deposit (depositPending). */
    async function waitForDepositPending(pile: FaultPile, sessionId: bigint, sinceRun: LineCursor): Promise<void> {
      const id = sessionId.toString();
      await waitFor(`${pile.name}: session ${id} pending`, () => linesOf(pile, sinceRun).some((line) => line.phase === "depositPending" && line.sessionId === id), 30_000);
    }

    interface FinishArgs {
      sessionId: bigint;
      depositTxHash: string;
      depositWei: bigint;
      maxEnergyWh: number;
      windowStartMs: number;
      sinceRun: LineCursor;
      tracked: TrackedSession;
      waitBeforeEnd?: () => Promise<void>;
      markEnded?: () => void;
      fault: InjectedFault | (() => InjectedFault | undefined) | undefined;
    }

    /** Drives the session to its end (settled, or gone with a reorg), then brings the pile back to idle. */
    async function finish(pile: (typeof piles)[number], plan: PlannedSession, label: string, args: FinishArgs): Promise<SessionResult> {
      const id = args.sessionId.toString();
      const faultOf = (): InjectedFault | undefined => (typeof args.fault === "function" ? args.fault() : args.fault);
      let outcome: SessionOutcome = "notEnded";
      const agentDone = (): boolean => {
        const state = pile.lastState();
        return state !== undefined && state.sessionId !== id && (state.phase === "idle" || state.phase === "faulted");
      };
      const everSeen = (): boolean => linesOf(pile, args.sinceRun).some((line) => line.sessionId === id);
      try {
        await waitFor(
          `${label} on ${pile.name} (session ${id}) to end`,
          async () => {
            const receipt = await send<unknown>(provider, "eth_getTransactionReceipt", [args.depositTxHash]);
            if (receipt === null) {
              if (!agentDone()) return false;
              outcome = linesOf(pile, args.sinceRun).some((line) => line.relay === true && line.receivedAtMs >= args.windowStartMs) ? "lostToDeepReorg" : "reorgedAway";
              return true;
            }
            // The receipt may be from just before a deep reorg that takes the id away (UnknownSession): look again.
            const status = await ledger.session(args.sessionId).then((view) => view.status, () => undefined);
            if (status === undefined) return false;
            if (status !== SessionStatus.Settled && status !== SessionStatus.Cancelled && status !== SessionStatus.Expired) return false;
            if (!everSeen() || !agentDone()) return false;
            outcome = "settled";
            return true;
          },
          120_000,
          100,
        );
      } catch (error) {
        pile.hwSim.board.ev.unplug();
        throw new Error(`${error instanceof Error ? error.message : String(error)}; last state ${JSON.stringify(pile.lastState())}`, { cause: error });
      }
      args.markEnded?.();
      await args.waitBeforeEnd?.();
      const fault = faultOf();

      // Back to a healthy pile for the next session: the weld repaired and the fault cleared by the operator, the
      // clock set right, the EV unplugged, the relay open and the contacts apart.
      if (fault?.kind === "relayWeld") {
        // The weld shows once the relay is commanded open and the feedback stays closed for feedbackTimeoutMs:
        // the agent must hold the pile faulted before the contactor is repaired.
        await waitFor(
          `${pile.name}: the weld of ${label} detected`,
          () => linesOf(pile, args.sinceRun).some((line) => line.receivedAtMs >= args.windowStartMs && line.phase === "faulted" && (line.fault ?? null) !== null),
          pile.core.feedbackTimeoutMs + 20_000,
        );
        const agent = pile.agent();
        fault.evidence = `contactor welded; agent faulted: ${pile.lastState()?.fault ?? "?"}`;
        pile.hwSim.board.faults.clear();
        const from = agent.lines.length;
        process.kill(agent.pid, "SIGUSR1");
        await agent.waitForLine(`${pile.name}: the fault cleared`, (line) => line.phase === "idle", 20_000, from);
      }
      if (currentOffset(pile) !== 0) await stepClock(pile, 0);
      pile.hwSim.board.ev.unplug();
      await waitFor(`${pile.name}: relay open and contacts apart`, () => pile.bridge.relayFileLevel() === false && !pile.hwSim.board.relay.contactsClosed(), 20_000, 20);
      await sleep(100);
      const windowEndMs = Date.now();
      pile.physicalWh();
      observed.delete(args.tracked);

      const chain = await chainView(args.tracked);
      if (chain) {
        // The chain's facts: the deposit's block plus confirmations − 1, and the block that mined the authorize.
        const depositReceipt = await provider.getTransactionReceipt(args.depositTxHash);
        const authorizedTopic = ledger.interface.getEvent("SessionAuthorized")!.topicHash;
        const [authorizeLog] = await provider.getLogs({ address: deployment.ChargingLedger, topics: [authorizedTopic, toBeHex(args.sessionId, 32)], fromBlock: depositReceipt?.blockNumber ?? 0, toBlock: "latest" });
        const confirmedAt = depositReceipt ? firstSeenAtMs.get(depositReceipt.blockNumber + options.confirmations - 1) : undefined;
        const authorizedAt = authorizeLog ? firstSeenAtMs.get(authorizeLog.blockNumber) : undefined;
        if (confirmedAt !== undefined) args.tracked.confirmedSeenAtMs = confirmedAt;
        if (authorizedAt !== undefined) args.tracked.authorizedSeenAtMs = authorizedAt;
      }
      // The ledger's SessionSettled log may reach the agent before its own receipt marks the outbox row done:
      // give the row a moment to catch up before comparing (a row pending for good is a violation).
      let journal = chain ? journalSettle(pile, args.sessionId) : undefined;
      const settleDeadline = Date.now() + 15_000;
      while (chain?.status === "Settled" && journal?.status === "pending" && Date.now() < settleDeadline) {
        await sleep(100);
        journal = journalSettle(pile, args.sessionId);
      }
      const lines = linesOf(pile, args.sinceRun).filter((line) => line.receivedAtMs >= args.windowStartMs);
      const record: SessionRecord = {
        label,
        pile: pile.name,
        sessionId: id,
        depositTxHash: args.depositTxHash,
        depositWei: args.depositWei,
        priceWeiPerKWh: FAULT_PRICE_WEI_PER_KWH,
        maxEnergyWh: args.maxEnergyWh,
        windowStartMs: args.windowStartMs,
        windowEndMs,
        ...(args.tracked.confirmedSeenAtMs !== undefined ? { confirmedSeenAtMs: args.tracked.confirmedSeenAtMs } : {}),
        ...(args.tracked.authorizedSeenAtMs !== undefined ? { authorizedSeenAtMs: args.tracked.authorizedSeenAtMs } : {}),
        faults: fault ? [fault.kind] : [],
        ...(chain ? { chain } : {}),
        ...(journal ? { journal } : {}),
      };
      const stopReasons = [...new Set(lines.filter((line) => line.sessionId === id && line.stopReason).map((line) => line.stopReason!))];
      return { record, outcome, ...(fault ? { fault } : {}), lines, stopReasons };
    }

    function sessionIdOf(logs: readonly { topics: readonly string[]; data: string }[]): bigint {
      for (const entry of logs) {
        const parsed = ledger.interface.parseLog(entry);
        if (parsed?.name === "SessionOpened") return parsed.args[0] as bigint;
      }
      throw new Error("no SessionOpened event in the deposit's receipt");
    }

    return world;
  } catch (error) {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

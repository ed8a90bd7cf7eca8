/**
 * A pile whose agent runs as a separate process that a test may kill -9 and restart, while the world it acts on
 * lives on in the test process (DESIGN §3, "A kill -9 at any point loses no energy and never settles twice"):
 *
 *   test process                                                    agent process (test/fixtures/agent-process.ts)
 *   ------------                                                    -------------
 *   anvil of this worker (interval mining, 1 block/s)  <-- RPC --   deposit watcher, tx sender (device key)
 *   hw-sim: SDM630 on Modbus TCP, contactor, EV       <-- Modbus -- meter driver
 *   fake sysfs tree (createFakeSysfs, kernel: true)   <-- files --  onoff driver: gpio17 relay, gpio27 feedback,
 *     + a bridge between its value files and the                    gpio22 EV present
 *       sim GPIO the board is wired to
 *
 * The bridge plays the wires: the relay's value file drives the board's contactor coil, and the board's feedback
 * contact and EV-present signal are written into the inputs' value files. When the agent process dies, sysfs stays
 * exported and every value keeps its level, as on a real Pi: a contactor closed at the kill stays closed until the
 * restarted agent opens it, which is what its start-up must do before anything else.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Wallet, type HDNodeWallet } from "ethers";
import { cpIdOf } from "../../agent/chain/session-total.ts";
import { openSession } from "../../agent/chain/operations.ts";
import { connectLedger } from "../../agent/chain/contracts.ts";
import { openJournal, type OutboxItem } from "../../agent/journal/journal.ts";
import { replayJournal } from "../../agent/runtime/agent.ts";
import type { CoreConfig, CoreState, Phase } from "../../agent/core/types.ts";
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import { createSimGpio, type SimGpio } from "../../drivers/gpio/sim.ts";
import type { DigitalIn, DigitalOut } from "../../drivers/gpio/types.ts";
import { startHwSim, type HwSim } from "../../hw-sim/index.ts";
import { acceleratedClock } from "../../hw-sim/clock.ts";
import { costOf as ledgerCostOf } from "../../agent/chain/cost.ts";
import type { AgentProcessConfig } from "../fixtures/agent-process.ts";
import type { MqttConfig, TelemetryStats } from "../../agent/telemetry/types.ts";
import { PRICE_WEI_PER_KWH, deployLedgerFixture, rpc, testChainUrl, type LedgerFixture } from "./chain.ts";
import { REPO_ROOT } from "./cli.ts";
import { createFakeSysfs, type FakeSysfs } from "./fake-sysfs.ts";
import { waitForEntry } from "./wait-for-entry.ts";

export const AGENT_PROCESS = join(REPO_ROOT, "test/fixtures/agent-process.ts");
export const LINES = { relay: { line: 17 }, feedback: { line: 27 }, evPresent: { line: 22 } } as const;
export const POLL_INTERVAL_MS = 250;
/** Physics speed-up: the EV's 11 kW look like 33 kW, about 9 Wh per real second. */
export const SPEEDUP = 3;

/** The session rules every pile in these tests runs with (what `coreConfigFrom` derives from a config). */
export function coreConfig(chargePointId: string, overrides: Partial<CoreConfig> = {}): CoreConfig {
  return {
    chargePointId,
    confirmations: 2,
    stopMarginWh: 30,
    staleAfterMs: 3_000,
    // The feedback contact reaches the child through files (fake sysfs) and a 5 ms polling bridge; on a loaded
    // two-core CI machine that round trip has exceeded 500 ms and raised a false weld. The weld rule itself is
    // tested in-process (test/integration/agent/agent.test.ts), where the sim GPIO answers at once.
    feedbackTimeoutMs: 3_000,
    hasEvPresentInput: true,
    hasFeedbackInput: true,
    // Longer than the one poll interval `coreConfigFrom` uses, so "stopping" lasts long enough to be killed in.
    stopReadingDelayMs: 1_000,
    stopReadingTimeoutMs: 10_000,
    ...overrides,
  };
}

/** cost = ceil(energyWh × price / 1000), as the ledger computes it; at the test price unless given. */
export function costOf(energyWh: bigint, priceWeiPerKWh: bigint = PRICE_WEI_PER_KWH): bigint {
  return ledgerCostOf(energyWh, priceWeiPerKWh);
}

export function depositFor(coversWh: number, priceWeiPerKWh: bigint = PRICE_WEI_PER_KWH): bigint {
  return (BigInt(coversWh) * priceWeiPerKWh) / 1000n;
}

export async function waitUntil(what: string, condition: () => Promise<boolean> | boolean, timeoutMs: number, pollMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ================================================================ sysfs <-> sim GPIO bridge

export interface RelayFileEdge {
  atMs: number;
  closed: boolean;
}

export interface SysfsBridge {
  /** Every level the relay's value file showed, oldest first (the first entry is its level when exported). */
  readonly relayEdges: RelayFileEdge[];
  /** The relay value file's level now, or undefined before the agent first exported the line. */
  relayFileLevel(): boolean | undefined;
  stop(): Promise<void>;
}

const BRIDGE_POLL_MS = 5;

/**
 * Wires the fake sysfs tree to the sim GPIO the board is wired to. Polls the value files every few ms (a file a
 * dead process left behind needs no watcher re-armed after a restart), writes an input's file only when its level
 * changes, so every write is one edge the agent's watcher sees.
 */
export async function startSysfsBridge(sysfs: FakeSysfs, gpio: SimGpio): Promise<SysfsBridge> {
  const valuePath = (line: number): string => join(sysfs.root, `gpio${line}`, "value");
  const relayOut: DigitalOut = gpio.openOutput(LINES.relay);
  const feedbackIn: DigitalIn = gpio.openInput(LINES.feedback);
  const evPresentIn: DigitalIn = gpio.openInput(LINES.evPresent);
  const wanted = new Map<number, boolean>([
    [LINES.feedback.line, await feedbackIn.read()],
    [LINES.evPresent.line, await evPresentIn.read()],
  ]);
  const relayEdges: RelayFileEdge[] = [];
  let relayLevel: boolean | undefined;

  const readLevel = (path: string): boolean | undefined => {
    try {
      const text = readFileSync(path, "utf8").trim();
      return text === "1" ? true : text === "0" ? false : undefined;
    } catch {
      return undefined; // not exported yet
    }
  };
  const sync = (): void => {
    const relay = readLevel(valuePath(LINES.relay.line));
    if (relay !== undefined && relay !== relayLevel) {
      relayLevel = relay;
      relayEdges.push({ atMs: Date.now(), closed: relay });
      void relayOut.write(relay);
    }
    for (const [line, level] of wanted) {
      const path = valuePath(line);
      if (!existsSync(path)) continue;
      const shown = readLevel(path);
      if (shown !== level) writeFileSync(path, level ? "1\n" : "0\n");
    }
  };
  const unwatch = [
    feedbackIn.watch((level) => {
      wanted.set(LINES.feedback.line, level);
      sync();
    }),
    evPresentIn.watch((level) => {
      wanted.set(LINES.evPresent.line, level);
      sync();
    }),
  ];
  const timer = setInterval(sync, BRIDGE_POLL_MS);
  sync();

  return {
    relayEdges,
    relayFileLevel: () => readLevel(valuePath(LINES.relay.line)),
    async stop() {
      clearInterval(timer);
      for (const stop of unwatch) stop();
      await relayOut.close();
      await feedbackIn.close();
      await evPresentIn.close();
    },
  };
}

// ================================================================ TCP proxy (RPC outage)

export interface TcpProxy {
  /** http://127.0.0.1:PORT, forwarding to the target. */
  readonly url: string;
  /** Drops every open connection and refuses new ones until `restore`. */
  cut(): void;
  /**
   * Cuts (as `cut`) the moment a client sends a chunk matching `pattern`, without forwarding it: that request is
   * in flight when the connection drops. Resolves once cut.
   */
  cutAtRequest(pattern: RegExp): Promise<void>;
  restore(): void;
  isCut(): boolean;
  /** Connections refused while cut. */
  refused(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port);
  const sockets = new Set<Socket>();
  let cut = false;
  let refused = 0;
  let armed: { pattern: RegExp; resolve: () => void } | undefined;
  const cutNow = (): void => {
    cut = true;
    for (const socket of [...sockets]) socket.destroy();
    sockets.clear();
  };
  const server: Server = createServer((client) => {
    if (cut) {
      refused++;
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.on("data", (chunk: Buffer) => {
      if (armed && armed.pattern.test(chunk.toString("latin1"))) {
        const { resolve } = armed;
        armed = undefined;
        cutNow();
        resolve();
        return;
      }
      upstream.write(chunk);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== "object") throw new Error("proxy: no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut: cutNow,
    cutAtRequest: (pattern) => new Promise<void>((resolve) => (armed = { pattern, resolve })),
    restore() {
      cut = false;
    },
    isCut: () => cut,
    refused: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of [...sockets]) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// ================================================================ the agent process

/** One stdout line of the agent process (see test/fixtures/agent-process.ts), with the time the test read it. */
export interface AgentLine {
  receivedAtMs: number;
  relay?: boolean;
  phase?: Phase;
  sessionId?: string | null;
  relayCommandedClosed?: boolean;
  stopReason?: string | null;
  seq?: number;
  meterStartWh?: number | null;
  meterLastWh?: number | null;
  meterStopWh?: number | null;
  stopAtWh?: number | null;
  fault?: string | null;
  authorize?: string;
  settle?: { sessionId: string; meterStartWh: number; meterStopWh: number; startedAtS: number; stoppedAtS: number; evBehaviour: number };
  ready?: boolean;
  pid?: number;
  /** Telemetry stats after a clean stop (SIGTERM) of an agent started with `mqtt`. */
  telemetry?: TelemetryStats;
  /** A notify command of the core (agents started with `mqtt` only): what the `event` topic should carry. */
  notify?: { kind: "session" | "fault" | "warning"; message: string; sessionId: string | null };
}

export interface AgentProcess {
  readonly pid: number;
  readonly lines: AgentLine[];
  stderr(): string;
  /** Resolves with the first line (from index `from`) matching `predicate`; rejects on timeout or if the process exits. */
  waitForLine(what: string, predicate: (line: AgentLine) => boolean, timeoutMs: number, from?: number): Promise<AgentLine>;
  /** SIGKILL, and wait until the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (clean stop: relay open, lines released), SIGKILL after 5 s. */
  terminate(): Promise<void>;
  exited(): boolean;
}

export function spawnAgentProcess(config: AgentProcessConfig): AgentProcess {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", AGENT_PROCESS, JSON.stringify(config)], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: AgentLine[] = [];
  let stderr = "";
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const listener of [...listeners]) listener();
  };
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    if (stderr.length > 2_000_000) stderr = stderr.slice(-1_000_000);
  });
  createInterface({ input: child.stdout! }).on("line", (text) => {
    try {
      lines.push({ receivedAtMs: Date.now(), ...(JSON.parse(text) as Omit<AgentLine, "receivedAtMs">) });
    } catch {
      stderr += `(unparsable stdout line) ${text}\n`;
    }
    notify();
  });
  const closed = new Promise<void>((resolve) => {
    child.on("close", (code, signal) => {
      exit = { code, signal };
      notify();
      resolve();
    });
  });
  const tail = (): string => stderr.split("\n").slice(-40).join("\n");

  return {
    pid: child.pid ?? -1,
    lines,
    stderr: () => stderr,
    waitForLine(what, predicate, timeoutMs, from = 0) {
      return waitForEntry(lines, listeners, {
        what,
        predicate,
        timeoutMs,
        from,
        onTimeout: () => `last lines:\n${lines.slice(-8).map((l) => JSON.stringify(l)).join("\n")}\nstderr:\n${tail()}`,
        failure: () =>
          exit ? `agent process exited (${exit.signal ?? exit.code}) while waiting for ${what}; stderr:\n${tail()}` : undefined,
      });
    },
    async kill9() {
      if (!exit) child.kill("SIGKILL");
      await closed;
    },
    async terminate() {
      if (exit) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await closed;
      clearTimeout(timer);
    },
    exited: () => exit !== undefined,
  };
}

// ================================================================ the world

export interface Pile {
  chargePointId: string;
  cpId: string;
  device: Wallet | HDNodeWallet;
  privateKeyFile: string;
  journalPath: string;
  core: CoreConfig;
}

export interface AgentWorld {
  fixture: LedgerFixture;
  owner: HDNodeWallet;
  ev: HDNodeWallet;
  /** Read-only view of the ledger through the test's own connection (never through a proxy). */
  ledger: ChargingLedgerContract;
  hwSim: HwSim;
  sysfs: FakeSysfs;
  bridge: SysfsBridge;
  dir: string;
  /** The meter's import register in whole Wh, as the agent reads it. */
  registerWh(): number;
  /** Registers a pile with a fresh device key (funded by the owner) and its own journal. */
  registerPile(chargePointId: string, core?: Partial<CoreConfig>): Promise<Pile>;
  /**
   * Starts the agent process of `pile` (on its journal); `rpcUrl` defaults to this worker's anvil. With `mqtt` the
   * process also publishes telemetry (as the `mqtt` config section; the pile's chargePointId names the topics).
   */
  startAgent(pile: Pile, options?: { rpcUrl?: string; chainPollIntervalMs?: number; mqtt?: MqttConfig }): AgentProcess;
  /** Opens a deposit as the EV and returns its session id. */
  openDeposit(pile: Pile, coversWh: number, maxEnergyWh?: number): Promise<{ sessionId: bigint; depositWei: bigint }>;
  /** 1 block per second from now on (confirmations take real time, a mined tx waits for its block). */
  intervalMining(): Promise<void>;
  /** No blocks at all: transactions stay in the mempool. */
  pauseMining(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Contracts on this worker's anvil (instant mining while it is set up), an owner and an EV attested, hw-sim with
 * the EV unplugged at 20 % SoC, the fake sysfs tree and its bridge. Call `intervalMining()` once the piles are
 * registered; `close()` restores instant mining for the next test file on this worker.
 */
export async function startAgentWorld(): Promise<AgentWorld> {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-agent-world-"));
  const agents: AgentProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const fixture = await deployLedgerFixture();
    cleanups.push(async () => fixture.provider.destroy());
    const ev = fixture.accounts[1]!;
    const owner = fixture.accounts[2]!;
    await fixture.attestOwner(owner);
    await fixture.attestEv(ev);
    const ledger = connectLedger(fixture.deployment.ChargingLedger, fixture.provider);

    const gpio = createSimGpio();
    const hwSim = await startHwSim({
      meterTcpPort: 0,
      gpio,
      gpioLines: LINES,
      clock: acceleratedClock(SPEEDUP),
      ev: { plugged: false, socPercent: 20 },
    });
    cleanups.push(() => hwSim.stop());
    const sysfs = await createFakeSysfs([{ base: 0, ngpio: 54, label: "pinctrl-bcm2835" }], { kernel: true });
    cleanups.push(() => sysfs.close());
    const bridge = await startSysfsBridge(sysfs, gpio);
    cleanups.push(() => bridge.stop());

    const world: AgentWorld = {
      fixture,
      owner,
      ev,
      ledger,
      hwSim,
      sysfs,
      bridge,
      dir,
      registerWh: () => Math.floor(hwSim.board.meter.energyWh()),
      async registerPile(chargePointId, core = {}) {
        const device = Wallet.createRandom().connect(fixture.provider);
        await (await owner.sendTransaction({ to: device.address, value: 10n ** 17n })).wait();
        await fixture.registerCp(owner, { chargePointId, signer: device.address });
        const privateKeyFile = join(dir, `${chargePointId}.key`);
        writeFileSync(privateKeyFile, `${device.privateKey}\n`, { mode: 0o600 });
        return {
          chargePointId,
          cpId: cpIdOf(chargePointId),
          device,
          privateKeyFile,
          journalPath: join(dir, chargePointId, "journal.sqlite"),
          core: coreConfig(chargePointId, core),
        };
      },
      startAgent(pile, options = {}) {
        const agent = spawnAgentProcess({
          rpcUrl: options.rpcUrl ?? testChainUrl(),
          deployment: fixture.deployment,
          privateKeyFile: pile.privateKeyFile,
          cpId: pile.cpId,
          meterHost: "127.0.0.1",
          meterPort: hwSim.meterTcpPort,
          sysfsRoot: sysfs.root,
          lines: LINES,
          journalPath: pile.journalPath,
          core: pile.core,
          pollIntervalMs: POLL_INTERVAL_MS,
          chainPollIntervalMs: options.chainPollIntervalMs ?? 250,
          txTickIntervalMs: 250,
          logLevel: process.env.AGENT_LOG_LEVEL ?? "info",
          ...(options.mqtt ? { mqtt: { config: options.mqtt, chargePointId: pile.chargePointId } } : {}),
        });
        agents.push(agent);
        return agent;
      },
      async openDeposit(pile, coversWh, maxEnergyWh = 20_000) {
        const depositWei = depositFor(coversWh);
        const opened = await openSession(fixture.ledger(ev), pile.cpId, maxEnergyWh, depositWei);
        return { sessionId: opened.sessionId, depositWei };
      },
      async intervalMining() {
        await rpc(fixture.provider, "evm_setAutomine", [false]);
        await rpc(fixture.provider, "evm_setIntervalMining", [1]);
      },
      async pauseMining() {
        await rpc(fixture.provider, "evm_setIntervalMining", [0]);
        await rpc(fixture.provider, "evm_setAutomine", [false]);
      },
      async close() {
        for (const agent of agents) await agent.kill9().catch(() => undefined);
        await rpc(fixture.provider, "evm_setIntervalMining", [0]).catch(() => undefined);
        await rpc(fixture.provider, "evm_setAutomine", [true]).catch(() => undefined);
        for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return world;
  } catch (error) {
    for (const agent of agents) await agent.kill9().catch(() => undefined);
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

// ================================================================ what the journal says after a kill

export interface JournalView {
  state: CoreState;
  lastSeq: number;
  settle: OutboxItem | undefined;
  authorize: OutboxItem | undefined;
}

/** Replays a dead agent's journal (the agent process must not be running). */
export function readJournal(pile: Pile, sessionId: bigint): JournalView {
  const journal = openJournal(pile.journalPath);
  try {
    const { state } = replayJournal(journal, pile.core);
    return {
      state,
      lastSeq: journal.lastSeq(),
      settle: journal.get(`settle:${sessionId}`),
      authorize: journal.get(`authorize:${sessionId}`),
    };
  } finally {
    journal.close();
  }
}

// ================================================================ what the chain says

export interface SettledView {
  status: bigint;
  energyWh: bigint;
  /** SessionSettled events for this session, all blocks. */
  settledEvents: number;
  /** Charging records of the pile (Algorithm 1: from cpHead along prevOfCp) that belong to this session. */
  records: number;
}

export async function settledView(world: AgentWorld, pile: Pile, sessionId: bigint): Promise<SettledView> {
  const { ledger } = world;
  const session = await ledger.session(sessionId);
  const logs = await ledger.queryFilter(ledger.getEvent("SessionSettled"), world.fixture.deployment.deployedAtBlock ?? 0);
  const settledEvents = logs.filter((log) => ledger.interface.parseLog(log)?.args[0] === sessionId).length;
  let records = 0;
  let recordNo = (await ledger.cpHead(pile.cpId)).lastChargingRecord;
  while (recordNo !== 0n) {
    const record = await ledger.chargingRecord(recordNo);
    if (record.sessionId === sessionId) records++;
    recordNo = record.prevOfCp;
  }
  return { status: session.status, energyWh: session.energyWh, settledEvents, records };
}

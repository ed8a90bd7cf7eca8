/**
 * The imperative shell around the session core (DESIGN §3). Every input — meter polls, GPIO edges, chain events,
 * transaction outcomes, timers, signals — becomes a core event, processed strictly one at a time:
 *
 *   step(state, event) -> journal the event (write-ahead) -> execute the commands
 *
 * so a `kill -9` anywhere leaves a journal from which the same state is rebuilt, and every side effect that
 * matters is either idempotent (outbox keys for chain transactions) or re-derived at start-up (the relay is forced
 * open first, and pending authorize/settle requests are re-issued).
 */
import type { Provider, Signer } from "ethers";
import type { Meter, MeterSample } from "../../drivers/meters/types.ts";
import { MeterFault } from "../../drivers/meters/types.ts";
import type { DigitalIn, DigitalOut } from "../../drivers/gpio/types.ts";
import { initialState, step } from "../core/step.ts";
import type { CoreCommand, CoreConfig, CoreEvent, CoreState, SignedTotalRequest } from "../core/types.ts";
import type { Journal, RetentionPolicy } from "../journal/journal.ts";
import { createRelayDriver, type RelayDriver } from "../relay/relay-driver.ts";
import type { Deployment } from "../chain/deployment.ts";
import { createDepositWatcher, type ChainEvent } from "../chain/deposit-watcher.ts";
import { createTxSender, parseTxKey, txKey, type SettlePayload, type TxOutcome } from "../chain/tx-sender.ts";
import { ledgerDomain, signSessionTotal } from "../chain/session-total.ts";
import type { Logger } from "../logging.ts";
import { describeError } from "../errors.ts";
import { pileIsIdle, startBidder, type BiddingPolicyConfig, type RunningBidder } from "../bidder/index.ts";
import type { AuctionEvent } from "../telemetry/messages.ts";

export interface AgentIo {
  meter: Meter;
  relay: DigitalOut;
  feedback?: DigitalIn;
  evPresent?: DigitalIn;
}

export interface AgentChain {
  provider: Provider;
  /** The device key, connected to `provider`: it signs totals and sends authorize/settle. */
  wallet: Signer;
  deployment: Deployment;
  cpId: string;
}

export interface AgentOptions {
  core: CoreConfig;
  pollIntervalMs: number;
  io: AgentIo;
  chain: AgentChain;
  journal: Journal;
  log: Logger;
  /**
   * Wall clock, unix ms (default `Date.now`): stamps what leaves the pile (signed totals, OCPP, relay edge history).
   * It may step; nothing times itself on it.
   */
  clock?: () => number;
  /**
   * Control clock, monotonic ms (default `monotonicNow`): every timing rule of the core (meter staleness, feedback
   * timeout, stop reading) and the meter poll interval run on it, so a step of the wall clock changes no decision.
   * A test that simulates a wall-clock jump steps `clock` only; this one models CLOCK_MONOTONIC and must never step.
   */
  controlClock?: () => number;
  chainPollIntervalMs?: number;
  txTickIntervalMs?: number;
  /** Called after every processed event with the new state and the commands it produced (telemetry, tests). */
  onStep?: (state: CoreState, event: CoreEvent, commands: CoreCommand[]) => void;
  /** Called with every good meter sample, per-phase values included, before the core sees it (telemetry). */
  onSample?: (sample: MeterSample) => void;
  /**
   * The config's `bidding` section. The bidder runs when it is enabled, and also when it is not but the journal
   * still holds auctions in progress (their commits must be revealed and their bonds recovered).
   */
  bidding?: BiddingPolicyConfig;
  /** The bidder's reports (an auction won), for telemetry. */
  onAuctionEvent?: (event: AuctionEvent) => void;
  /** Bidder poll interval; default 500 ms. */
  bidderPollIntervalMs?: number;
  /** How much finished outbox history the journal keeps (DEFAULT_RETENTION in agent/journal for what is not given). */
  journalRetention?: Partial<RetentionPolicy>;
}

/**
 * An edge adapter that follows the core after the agent started (OCPP). `onJournaled` runs synchronously inside
 * the journal transaction that appends the event, so whatever it writes to the journal (outbox rows) commits
 * atomically with the event: a `kill -9` keeps both or neither. It must not do I/O beyond the journal.
 */
export interface StepObserver {
  onJournaled?: (previous: CoreState, event: CoreEvent, next: CoreState) => void;
  onStep?: (state: CoreState, event: CoreEvent, commands: CoreCommand[]) => void;
  onSample?: (sample: MeterSample) => void;
}

export interface RunningAgent {
  readonly relay: RelayDriver;
  state(): CoreState;
  /** Adds an observer; returns a function that removes it. */
  observe(observer: StepObserver): () => void;
  /** Feeds an event from outside (remote stop from OCPP or an operator). */
  dispatch(event: CoreEvent): Promise<void>;
  /** Opens the relay, stops every loop and waits for the event queue to drain. The journal stays open. */
  stop(): Promise<void>;
}

const SNAPSHOT_EVERY_EVENTS = 100;
/**
 * Compaction runs at start-up and then every this many snapshots: with a meter sample journaled every poll that is
 * every few minutes, often enough that one run deletes a few sessions' rows, rarely enough to cost nothing.
 */
const COMPACT_EVERY_SNAPSHOTS = 10;

/**
 * performance.now() is monotonic (CLOCK_MONOTONIC: NTP slews it but never steps it, `date -s` leaves it alone);
 * adding the wall time at process start only makes its values read like dates in logs and journal dumps.
 */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

function fieldsOf(event: CoreEvent): Record<string, unknown> {
  const fields: Record<string, unknown> = { event: event.type };
  if ("sessionId" in event && event.sessionId !== undefined) fields.sessionId = event.sessionId.toString();
  if ("txHash" in event) fields.txHash = event.txHash;
  return fields;
}

/** Rebuilds the core state from the journal: the latest snapshot plus every event after it. */
export function replayJournal(journal: Journal, core: CoreConfig): { state: CoreState; replayed: number } {
  const snapshot = journal.loadSnapshot();
  let state = (snapshot?.state as CoreState | undefined) ?? initialState();
  let replayed = 0;
  let after = snapshot?.seq ?? 0;
  for (;;) {
    const batch = journal.eventsSince(after, 1_000);
    if (batch.length === 0) break;
    for (const entry of batch) {
      state = step(core, state, entry.event as unknown as CoreEvent).state;
      after = entry.seq;
      replayed += 1;
    }
  }
  return { state, replayed };
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { core, io, chain, journal, log } = options;
  const clock = options.clock ?? Date.now;
  const readControlClock = options.controlClock ?? monotonicNow;
  // Clamped, so that even an injected control clock that jumps back cannot move the core's time back mid-epoch.
  let lastControlMs = -Infinity;
  const controlClock = (): number => (lastControlMs = Math.max(lastControlMs, readControlClock()));
  const relay = createRelayDriver(io.relay, clock);
  // Before anything else, whatever the journal says: the contactor starts open.
  await relay.forceOpen("startup");

  const replay = replayJournal(journal, core);
  let state = replay.state;
  log.info({ replayed: replay.replayed, phase: state.phase }, "journal replayed");

  /** Bounds the journal; a failure is logged and retried next time, never allowed to stop the control loop. */
  function compactJournal(): void {
    try {
      const result = journal.compact(options.journalRetention);
      if (result.outboxRows > 0 || result.tombstones > 0) log.info({ ...result }, "journal compacted");
    } catch (error) {
      log.warn({ err: error }, "journal compaction failed; retrying at a later snapshot");
    }
  }
  compactJournal();

  const domain = ledgerDomain(BigInt(chain.deployment.chainId), chain.deployment.ChargingLedger);
  const sender = createTxSender({
    wallet: chain.wallet,
    ledgerAddress: chain.deployment.ChargingLedger,
    ...(chain.deployment.PricingAuction ? { auctionAddress: chain.deployment.PricingAuction } : {}),
    outbox: journal,
    // Resend timing is a timeout like the core's: on the wall clock a step back would hold a stuck settle an hour.
    now: controlClock,
    log: (message, fields) => log.info(fields ?? {}, message),
  });

  let stopped = false;
  let queue: Promise<void> = Promise.resolve();
  const observers = new Set<StepObserver>();
  const timers: NodeJS.Timeout[] = [];

  async function execute(command: CoreCommand): Promise<void> {
    switch (command.type) {
      case "setRelay":
        try {
          await relay.set(command.closed, command.reason);
          log.info({ closed: command.closed, reason: command.reason, sessionId: state.session?.sessionId.toString() }, "relay");
        } catch (error) {
          log.error({ err: error }, "relay write failed; forcing it open");
          await relay.forceOpen("write failed").catch(() => undefined);
        }
        return;
      case "sendAuthorize":
        sender.submit({ key: txKey("authorize", command.sessionId, command.generation), kind: "authorize", payload: { sessionId: command.sessionId } });
        return;
      case "sendSettle": {
        const payload = await settlePayload(command.total);
        sender.submit({ key: txKey("settle", command.total.sessionId, command.generation), kind: "settle", payload });
        log.info({ sessionId: command.total.sessionId.toString(), energyWh: command.total.meterStopWh - command.total.meterStartWh }, "settle queued");
        return;
      }
      case "notify": {
        const fields = command.sessionId === undefined ? {} : { sessionId: command.sessionId.toString() };
        if (command.kind === "fault") log.error(fields, command.message);
        else if (command.kind === "warning") log.warn(fields, command.message);
        else log.info(fields, command.message);
        return;
      }
    }
  }

  async function settlePayload(total: SignedTotalRequest): Promise<SettlePayload> {
    const signed = {
      sessionId: total.sessionId,
      cpId: chain.cpId,
      meterStartWh: BigInt(total.meterStartWh),
      meterStopWh: BigInt(total.meterStopWh),
      startedAt: BigInt(total.startedAtS),
      stoppedAt: BigInt(total.stoppedAtS),
      evBehaviour: total.evBehaviour,
    };
    // ECDSA signing is deterministic (RFC 6979): re-signing the same total after a restart gives the same bytes.
    const signature = await signSessionTotal(chain.wallet, domain, signed);
    return { total: signed, signature };
  }

  function process(input: CoreEvent): Promise<void> {
    // After stop() nothing may step this agent again: a late GPIO edge or meter reply would otherwise advance a
    // stale state and journal it next to the state of the agent that replaced this one (in-process restarts).
    if (stopped) return queue;
    // Events from outside (OCPP, operators, tests) carry wall time only: they get their control time on arrival.
    const event: CoreEvent = input.controlMs === undefined ? { ...input, controlMs: controlClock() } : input;
    queue = queue.then(async () => {
      const result = step(core, state, event);
      const changed = event.type !== "tick" || result.commands.length > 0 || result.state.phase !== state.phase;
      if (changed) {
        const previous = state;
        const seq = journal.transaction(() => {
          const appended = journal.append(event as unknown as { type: string });
          for (const observer of observers) {
            try {
              observer.onJournaled?.(previous, event, result.state);
            } catch (error) {
              // An adapter's bug must never roll back or block the control loop's own record.
              log.error({ err: error, ...fieldsOf(event) }, "step observer failed");
            }
          }
          return appended;
        });
        if (seq % SNAPSHOT_EVERY_EVENTS === 0) {
          journal.saveSnapshot(seq, result.state);
          journal.pruneEventsBefore(seq);
          if (seq % (SNAPSHOT_EVERY_EVENTS * COMPACT_EVERY_SNAPSHOTS) === 0) compactJournal();
        }
      }
      state = result.state;
      for (const command of result.commands) await execute(command);
      options.onStep?.(state, event, result.commands);
      for (const observer of observers) {
        try {
          observer.onStep?.(state, event, result.commands);
        } catch (error) {
          log.error({ err: error, ...fieldsOf(event) }, "step observer failed");
        }
      }
    }).catch((error: unknown) => {
      log.error({ err: error, ...fieldsOf(event) }, "event processing failed; opening the relay");
      void relay.forceOpen("error").catch(() => undefined);
    });
    return queue;
  }

  function toCoreEvent(event: ChainEvent): CoreEvent | undefined {
    const atMs = clock();
    switch (event.type) {
      case "depositSeen":
        return {
          type: "depositSeen",
          atMs,
          sessionId: event.sessionId,
          ev: event.ev,
          depositWei: event.depositWei,
          priceWeiPerKWh: event.pricePerKWh,
          maxEnergyWh: event.maxEnergyWh,
          depositBlock: event.blockNumber,
          depositBlockHash: event.blockHash,
          depositTxHash: event.txHash,
        };
      case "chainHead":
        return { type: "chainHead", atMs, blockNumber: event.blockNumber };
      case "depositReorged":
        return { type: "depositReorged", atMs, sessionId: event.sessionId };
      case "sessionAuthorized":
        return { type: "authorizeMined", atMs, sessionId: event.sessionId, txHash: event.txHash };
      case "sessionSettled":
        return { type: "sessionClosedOnChain", atMs, sessionId: event.sessionId, how: "settled", txHash: event.txHash };
      case "sessionCancelled":
        return { type: "sessionClosedOnChain", atMs, sessionId: event.sessionId, how: "cancelled" };
      case "sessionExpired":
        return { type: "sessionClosedOnChain", atMs, sessionId: event.sessionId, how: "expired" };
      default:
        return undefined;
    }
  }

  function outcomeEvent(outcome: TxOutcome): CoreEvent | undefined {
    const atMs = clock();
    const parsed = parseTxKey(outcome.key);
    if (!parsed) return undefined;
    // The generation tells the core which deposit with this id the outcome answers (see txKey).
    const { sessionId, generation } = parsed;
    const done = outcome.status === "mined" || outcome.status === "alreadyDone";
    if (outcome.kind === "authorize") {
      if (done) return { type: "authorizeMined", atMs, sessionId, txHash: outcome.txHash ?? "", generation };
      if (outcome.status === "failed") return { type: "authorizeFailed", atMs, sessionId, reason: outcome.error ?? "failed", generation };
    } else if (outcome.kind === "settle") {
      if (done) return { type: "settleMined", atMs, sessionId, txHash: outcome.txHash ?? "", generation };
      if (outcome.status === "failed") return { type: "settleFailed", atMs, sessionId, reason: outcome.error ?? "failed", generation };
    }
    return undefined;
  }

  await process({ type: "startup", atMs: clock() });

  // Inputs: read once now (start-up forgot the old levels), then follow their edges.
  // Watch first, then read: an edge between the two is then seen twice (harmless), never lost.
  const unwatchInputs: Array<() => void> = [];
  if (io.evPresent) {
    const input = io.evPresent;
    unwatchInputs.push(input.watch((present) => void process({ type: "evPresence", atMs: clock(), present })));
    await process({ type: "evPresence", atMs: clock(), present: await input.read() });
  }
  if (io.feedback) {
    const input = io.feedback;
    unwatchInputs.push(input.watch((closed) => void process({ type: "relayFeedback", atMs: clock(), closed })));
    await process({ type: "relayFeedback", atMs: clock(), closed: await input.read() });
  }

  const meterLoop = (async () => {
    while (!stopped) {
      // The reading is taken after its request leaves, so the poll's start is a safe (early) control time for it:
      // it never looks fresher than it is, and a request sent before the relay opened never passes for a reading
      // taken after it (the stop reading).
      const pollStartedAtMs = controlClock();
      try {
        const sample = await io.meter.read();
        options.onSample?.(sample);
        for (const observer of observers) {
          try {
            observer.onSample?.(sample);
          } catch (error) {
            log.error({ err: error }, "sample observer failed");
          }
        }
        await process({
          type: "meterSample",
          atMs: sample.readAtMs,
          controlMs: pollStartedAtMs,
          energyWh: sample.importEnergyWh,
          powerW: sample.powerW,
        });
      } catch (error) {
        const kind = error instanceof MeterFault ? error.kind : "disconnected";
        await process({ type: "meterFault", atMs: clock(), kind, message: describeError(error) });
      }
      // On the control clock: a wall clock set back an hour mid-poll must not make this loop sleep for an hour.
      const waitMs = Math.max(0, options.pollIntervalMs - (controlClock() - pollStartedAtMs));
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  })();

  const startBlock = journal.getCursor()?.blockNumber ?? chain.deployment.deployedAtBlock ?? 0;
  const watcher = createDepositWatcher({
    provider: chain.provider,
    ledgerAddress: chain.deployment.ChargingLedger,
    cpId: chain.cpId,
    confirmations: core.confirmations,
    startBlock,
    pollIntervalMs: options.chainPollIntervalMs ?? 1_000,
    cursor: journal,
    knownDeposits: [...(state.session ? [state.session] : []), ...state.queue].map((terms) => ({
      sessionId: terms.sessionId,
      blockNumber: terms.depositBlock,
      blockHash: terms.depositBlockHash,
    })),
    onEvent: async (event) => {
      const coreEvent = toCoreEvent(event);
      if (coreEvent) await process(coreEvent);
    },
    log: (message, fields) => log.debug(fields ?? {}, message),
  });
  watcher.start();

  let ticking = false;
  function tickTransactions(): void {
    if (ticking || stopped) return;
    ticking = true;
    void sender
      .tick()
      .then(async (outcomes) => {
        for (const outcome of outcomes) {
          if (outcome.status !== "pending") log.info({ key: outcome.key, status: outcome.status, txHash: outcome.txHash, error: outcome.error }, "transaction");
          const event = outcomeEvent(outcome);
          if (event) await process(event);
        }
      })
      .catch((error: unknown) => log.warn({ err: error }, "transaction tick failed"))
      .finally(() => (ticking = false));
  }

  // A new block is when deposits confirm and transactions mine: react to it at once instead of waiting for the
  // next timer (the block subscription is ethers' own: a real subscription over ws, a poll over http). The timers
  // stay as the fallback when no block event arrives.
  let watcherBusy = false;
  let watcherAgain = false;
  function pollChainSoon(): void {
    if (stopped) return;
    if (watcherBusy) {
      watcherAgain = true;
      return;
    }
    watcherBusy = true;
    // pollOnce rejects when the node fails (RPC down); the watcher's own timer retries, so this is only logged.
    // Unhandled, the rejection would kill the agent process mid-session.
    void watcher
      .pollOnce()
      .catch((error: unknown) => log.debug({ err: error }, "chain poll on a new block failed; the watcher retries"))
      .finally(() => {
        watcherBusy = false;
        if (watcherAgain) {
          watcherAgain = false;
          pollChainSoon();
        }
      });
  }
  const onBlock = (): void => {
    pollChainSoon();
    tickTransactions();
  };
  await chain.provider.on("block", onBlock);

  timers.push(
    setInterval(tickTransactions, options.txTickIntervalMs ?? 500),
    setInterval(() => void process({ type: "tick", atMs: clock() }), 250),
  );

  // The bidder shares this agent's tx sender (one nonce tracker for the device key) and asks the core's state
  // whether the pile is free; it never touches the relay.
  let bidder: RunningBidder | undefined;
  const bidding = options.bidding;
  if (bidding && (bidding.enabled || journal.activeAuctionBids().length > 0)) {
    if (!chain.deployment.PricingAuction) {
      log.warn("bidding is enabled but the deployment has no PricingAuction address; not bidding");
    } else {
      bidder = startBidder({
        provider: chain.provider,
        wallet: chain.wallet,
        deployment: chain.deployment,
        cpId: chain.cpId,
        journal,
        policy: bidding,
        log: log.child({ component: "bidder" }),
        sender,
        isIdle: () => pileIsIdle(state),
        ...(options.onAuctionEvent ? { onAuctionEvent: options.onAuctionEvent } : {}),
        ...(options.bidderPollIntervalMs !== undefined ? { pollIntervalMs: options.bidderPollIntervalMs } : {}),
      });
    }
  }

  return {
    relay,
    state: () => state,
    observe(observer) {
      observers.add(observer);
      return () => void observers.delete(observer);
    },
    dispatch: (event) => process(event),
    async stop() {
      if (stopped) return;
      await process({ type: "shutdown", atMs: clock() });
      stopped = true;
      for (const unwatch of unwatchInputs) unwatch();
      await bidder?.stop();
      for (const timer of timers) clearInterval(timer);
      await chain.provider.off("block", onBlock);
      await watcher.stop();
      await meterLoop;
      await queue;
      await relay.forceOpen("shutdown").catch(() => undefined);
    },
  };
}

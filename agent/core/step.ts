/**
 * The session core: `step(config, state, event) -> { state, commands }`, a pure function (DESIGN §3). Every rule
 * that protects money or current lives here — the deposit gate, the energy budget, meter loss, relay feedback,
 * start-up and shutdown — so each is unit-testable and the journal can replay it.
 *
 * The relay interlock is the last stage of every step: after the event is applied and the session has advanced,
 * `relayShouldBeClosed` is evaluated from scratch and a `setRelay` command is emitted whenever it differs from what
 * was last commanded. Nothing else ever emits `setRelay`, so no path can close the relay around the interlock.
 */
import type {
  CoreCommand,
  CoreConfig,
  CoreEvent,
  CoreState,
  Phase,
  Session,
  SessionTerms,
  SignedTotalRequest,
  StepResult,
  StopReason,
} from "./types.ts";

/** Below this the EV is drawing nothing (paused or full); above it an unplug is "under load". */
export const IDLE_POWER_W = 100;

export function initialState(): CoreState {
  return {
    phase: "idle",
    nowMs: 0,
    headBlock: 0,
    queue: [],
    relayCommandedClosed: false,
    evPresent: false,
    evPresenceKnown: false,
    meter: {},
    finishedSessionIds: [],
    shuttingDown: false,
  };
}

/**
 * Why a deposit's terms cannot be served at all, or undefined when they can. A price of 0 would make the covered
 * energy a division by zero, and a deposit of 0 pays for nothing; the deposit watcher refuses such logs already,
 * but the control loop must not be one malformed event away from an exception.
 */
export function unservableTermsReason(terms: Pick<SessionTerms, "depositWei" | "priceWeiPerKWh">): string | undefined {
  if (terms.priceWeiPerKWh <= 0n) return `its price is ${terms.priceWeiPerKWh} wei/kWh; expected a price above 0`;
  if (terms.depositWei <= 0n) return `its deposit is ${terms.depositWei} wei; expected a deposit above 0`;
  return undefined;
}

/** Energy the deposit pays for, in whole Wh: floor(deposit × 1000 / price). The price must be above 0. */
export function energyCoveredWh(depositWei: bigint, priceWeiPerKWh: bigint): number {
  return Number((depositWei * 1000n) / priceWeiPerKWh);
}

export function newSession(terms: SessionTerms, stopMarginWh: number): Session {
  const allowedWh = Math.min(terms.maxEnergyWh, energyCoveredWh(terms.depositWei, terms.priceWeiPerKWh));
  const budgetWh = allowedWh - stopMarginWh;
  return { ...terms, budgetWh, stopAtWh: budgetWh, authorizeMined: false, evBehaviour: 0 };
}

/**
 * How the core names one deposit of a session id in `finishedSessionIds` and the runtime in its outbox keys: the id,
 * plus `/r<N>` for the N-th deposit that took the id again after reorgs removed the earlier ones.
 */
export function sessionLabel(sessionId: bigint, generation: number | undefined): string {
  return generation ? `${sessionId}/r${generation}` : sessionId.toString();
}

/** The generation the next deposit with `sessionId` gets (see SessionTerms.generation). */
export function generationFor(state: CoreState, sessionId: bigint): number {
  return state.reorgedSessionGenerations?.[sessionId.toString()] ?? 0;
}

/** Bound on the remembered reorged ids: only the recent past can be reorged again or re-emitted. */
const MAX_REORGED_IDS = 256;

export function confirmationsOf(state: CoreState, session: SessionTerms): number {
  return state.headBlock >= session.depositBlock ? state.headBlock - session.depositBlock + 1 : 0;
}

/** Control time of an event (see types.ts): monotonic within a process, `atMs` for events that carry none. */
export function controlTimeOf(event: CoreEvent): number {
  return event.controlMs ?? event.atMs;
}

/**
 * How long ago (control time) `sinceMs` was, or undefined when it lies in the future of `nowMs`: the clock moved
 * under the value, so nobody can tell how long ago it was. Every rule below reads undefined as the safe side — the
 * meter is stale, a timeout has run out — never as "no time has passed".
 */
export function elapsedMs(state: CoreState, sinceMs: number): number | undefined {
  const elapsed = state.nowMs - sinceMs;
  return elapsed >= 0 ? elapsed : undefined;
}

/** A reading is fresh for `staleAfterMs` after its poll began; a reading dated after "now" is not fresh. */
export function meterFresh(config: CoreConfig, state: CoreState): boolean {
  const { lastSampleAtMs } = state.meter;
  if (lastSampleAtMs === undefined) return false;
  const ageMs = elapsedMs(state, lastSampleAtMs);
  return ageMs !== undefined && ageMs <= config.staleAfterMs;
}

function evPresentOrAssumed(config: CoreConfig, state: CoreState): boolean {
  return config.hasEvPresentInput ? state.evPresent : true;
}

export function deliveredWh(session: Session): number {
  if (session.meterStartWh === undefined || session.meterLastWh === undefined) return 0;
  return session.meterLastWh - session.meterStartWh;
}

/**
 * The interlock (DESIGN §3): closed only while a session with a confirmed deposit and a mined `authorize` is
 * delivering within its budget, the meter is healthy and fresh, an EV is present, and nothing is faulted.
 */
export function relayShouldBeClosed(config: CoreConfig, state: CoreState): boolean {
  const session = state.session;
  if (!session) return false;
  if (state.phase !== "energized" && state.phase !== "suspended") return false;
  return (
    !state.shuttingDown &&
    state.fault === undefined &&
    session.authorizeMined &&
    confirmationsOf(state, session) >= config.confirmations &&
    meterFresh(config, state) &&
    evPresentOrAssumed(config, state) &&
    deliveredWh(session) < session.stopAtWh
  );
}

class Stepper {
  readonly commands: CoreCommand[] = [];

  constructor(
    readonly config: CoreConfig,
    readonly state: CoreState,
  ) {}

  notify(kind: "session" | "fault" | "warning", message: string, sessionId?: bigint): void {
    this.commands.push({ type: "notify", kind, message, ...(sessionId === undefined ? {} : { sessionId }) });
  }

  setPhase(phase: Phase): void {
    if (this.state.phase === phase) return;
    const session = this.state.session;
    this.state.phase = phase;
    if (session) this.notify("session", `session ${session.sessionId}: ${phase}`, session.sessionId);
  }

  /**
   * Whether the current session has this id, and, when `generation` is given (outcomes of our own outbox rows),
   * belongs to that deposit of it: an outcome for an earlier deposit with the same id must not move a later one.
   */
  isCurrent(sessionId: bigint, generation?: number): boolean {
    const session = this.state.session;
    if (session?.sessionId !== sessionId) return false;
    return generation === undefined || generation === (session.generation ?? 0);
  }

  /** Whether the deposit the next `depositSeen` of `sessionId` would stand for is already served, queued or finished. */
  known(sessionId: bigint): boolean {
    const generation = generationFor(this.state, sessionId);
    const sameDeposit = (terms: SessionTerms): boolean => terms.sessionId === sessionId && (terms.generation ?? 0) === generation;
    return (
      (this.state.session !== undefined && sameDeposit(this.state.session)) ||
      this.state.queue.some(sameDeposit) ||
      this.state.finishedSessionIds.includes(sessionLabel(sessionId, generation))
    );
  }

  authorizeCommand(session: Session): CoreCommand {
    return { type: "sendAuthorize", sessionId: session.sessionId, ...(session.generation ? { generation: session.generation } : {}) };
  }

  settleCommand(session: Session): CoreCommand {
    return { type: "sendSettle", total: signedTotalOf(session), ...(session.generation ? { generation: session.generation } : {}) };
  }

  /** Starts serving `terms`, or refuses terms it cannot serve: a price or deposit of 0, or too little beyond the stop margin. */
  begin(terms: SessionTerms): void {
    const unservable = unservableTermsReason(terms);
    if (unservable !== undefined) {
      this.finish(terms.sessionId, terms.generation);
      this.notify("warning", `session ${terms.sessionId}: deposit refused, ${unservable}; not serving it`, terms.sessionId);
      return;
    }
    const session = newSession(terms, this.config.stopMarginWh);
    if (session.budgetWh <= 0) {
      this.finish(terms.sessionId, terms.generation);
      this.notify(
        "warning",
        `session ${terms.sessionId}: deposit of ${terms.depositWei} wei covers ${energyCoveredWh(terms.depositWei, terms.priceWeiPerKWh)} Wh, not more than the ${this.config.stopMarginWh} Wh stop margin; not serving it (the EV may cancel after authTimeout)`,
        terms.sessionId,
      );
      return;
    }
    this.state.session = session;
    this.setPhase("depositPending");
  }

  finish(sessionId: bigint, generation: number | undefined): void {
    const id = sessionLabel(sessionId, generation);
    if (!this.state.finishedSessionIds.includes(id)) this.state.finishedSessionIds.push(id);
    // Bounded: only the recent past can be replayed or re-emitted by the chain watcher.
    if (this.state.finishedSessionIds.length > 256) this.state.finishedSessionIds.shift();
  }

  /** Ends the current session (settled or abandoned) and serves the next queued deposit, if any. */
  closeSession(): void {
    const session = this.state.session;
    if (session) this.finish(session.sessionId, session.generation);
    this.state.session = undefined;
    this.state.phase = this.state.fault === undefined ? "idle" : "faulted";
    const next = this.state.fault === undefined ? this.state.queue.shift() : undefined;
    if (next) this.begin(next);
  }

  /** Drops the current session without settling: it never delivered and never will (cancelled, reorged, refused). */
  abandon(reason: string): void {
    const session = this.state.session;
    if (!session) return;
    this.notify("session", `session ${session.sessionId}: abandoned (${reason})`, session.sessionId);
    this.closeSession();
  }

  stop(reason: StopReason): void {
    const session = this.state.session;
    if (!session || session.stopReason) return;
    session.stopReason = reason;
    this.notify("session", `session ${session.sessionId}: stopping (${reason})`, session.sessionId);
    this.state.phase = "stopping";
  }

  apply(event: CoreEvent): void {
    const state = this.state;
    const atControlMs = controlTimeOf(event);
    // A new process counts control time from its own origin, which may lie before the journaled one (the wall clock
    // was set back between the two runs, or the board booted without an RTC): start-up begins a new epoch, and
    // every control-time value read after it is reset below (meter health, feedback mismatch, relayOpenedAtMs) or
    // rewritten before it is read again (energizedAtMs, on the next energize). Within an epoch control time never
    // goes back: a reading stamped when its poll began may arrive after a later tick and must not move "now" back.
    state.nowMs = event.type === "startup" ? atControlMs : Math.max(state.nowMs, atControlMs);
    state.wallNowMs = event.atMs;
    switch (event.type) {
      case "startup": {
        state.shuttingDown = false;
        // The relay is forced open before anything else: whatever the journal says, the contactor starts open and
        // an interrupted session resumes only through the interlock again.
        state.relayCommandedClosed = false;
        state.relayMismatchSinceMs = undefined;
        state.relayFeedbackClosed = undefined;
        // Readings and inputs from before the restart prove nothing about now: wait for fresh ones.
        state.meter = { ...(state.meter.lastEnergyWh === undefined ? {} : { lastEnergyWh: state.meter.lastEnergyWh }) };
        state.evPresent = false;
        state.evPresenceKnown = false;
        this.commands.push({ type: "setRelay", closed: false, reason: "startup" });
        const session = state.session;
        if (session && (state.phase === "energized" || state.phase === "suspended")) this.setPhase("authorized");
        if (session && state.phase === "stopping") session.relayOpenedAtMs = state.nowMs;
        if (session && state.phase === "authorizing") this.commands.push(this.authorizeCommand(session));
        if (session && state.phase === "settling") this.commands.push(this.settleCommand(session));
        return;
      }
      case "tick":
        return;
      case "meterSample": {
        state.meter = { lastSampleAtMs: atControlMs, lastEnergyWh: event.energyWh, lastPowerW: event.powerW };
        const session = state.session;
        if (session?.meterStartWh !== undefined && session.meterStopWh === undefined) session.meterLastWh = event.energyWh;
        return;
      }
      case "meterFault": {
        state.meter = { ...state.meter, faultKind: event.kind };
        if (event.kind === "implausible") {
          this.notify("fault", `meter: ${event.message}`);
          const session = state.session;
          if (session && (state.phase === "energized" || state.phase === "suspended")) {
            // Readings after an implausible one belong to another baseline: the last good one closes the session.
            session.meterStopWh = session.meterLastWh ?? session.meterStartWh;
            this.stop("fault");
          }
        }
        return;
      }
      case "evPresence": {
        const wasPresent = state.evPresent;
        state.evPresent = event.present;
        state.evPresenceKnown = true;
        const session = state.session;
        if (wasPresent && !event.present && session && (state.phase === "energized" || state.phase === "suspended")) {
          // Unplugging while current flows is the violation the pile reports (evBehaviour −1); after the EV
          // stopped drawing it is an ordinary end of charging.
          if ((state.meter.lastPowerW ?? 0) >= IDLE_POWER_W) session.evBehaviour = -1;
          this.stop("evUnplugged");
        }
        return;
      }
      case "relayFeedback": {
        state.relayFeedbackClosed = event.closed;
        if (event.closed === state.relayCommandedClosed) state.relayMismatchSinceMs = undefined;
        else state.relayMismatchSinceMs ??= atControlMs;
        return;
      }
      case "depositSeen": {
        if (this.known(event.sessionId)) return;
        const { type: _type, atMs: _atMs, controlMs: _controlMs, generation: _generation, ...seen } = event;
        const generation = generationFor(state, event.sessionId);
        const terms: SessionTerms = generation ? { ...seen, generation } : seen;
        const current = state.session;
        if (current?.sessionId === event.sessionId) {
          // An earlier deposit with this id was reorged away while its session was still stopping or settling.
          if (current.depositTxHash === event.depositTxHash) {
            // The same deposit mined again: the running session serves it; this generation must never start.
            this.finish(event.sessionId, generation);
            return;
          }
          // The id now belongs to another deposit, so the earlier one can never settle (the tx sender fails its
          // settle as superseded): let it go and serve the new deposit.
          this.notify("fault", `session ${sessionLabel(current.sessionId, current.generation)}: its deposit was replaced on chain by another deposit with the same id; what it delivered is not billed`, current.sessionId);
          state.queue.unshift(terms);
          this.closeSession();
          return;
        }
        if (!current && state.phase === "idle") this.begin(terms);
        else state.queue.push(terms);
        return;
      }
      case "chainHead":
        state.headBlock = Math.max(state.headBlock, event.blockNumber);
        return;
      case "depositReorged": {
        this.raiseGeneration(event.sessionId);
        state.queue = state.queue.filter((queued) => queued.sessionId !== event.sessionId);
        if (!this.isCurrent(event.sessionId)) return;
        if (state.phase === "energized" || state.phase === "suspended") {
          this.notify("fault", `session ${event.sessionId}: its deposit left the canonical chain after energizing`, event.sessionId);
          this.stop("reorged");
        } else if (state.phase === "depositPending" || state.phase === "authorizing" || state.phase === "authorized") {
          // Never energized: forget it entirely; if the deposit is mined again it is seen again.
          state.session = undefined;
          this.notify("session", `session ${event.sessionId}: deposit reorged away before energizing`, event.sessionId);
          this.state.phase = "idle";
          const next = state.queue.shift();
          if (next) this.begin(next);
        }
        return;
      }
      case "authorizeMined": {
        const session = state.session;
        if (!session || !this.isCurrent(event.sessionId, event.generation)) return;
        session.authorizeMined = true;
        if (state.phase === "authorizing") this.setPhase("authorized");
        return;
      }
      case "authorizeFailed":
        if (this.isCurrent(event.sessionId, event.generation) && !state.session?.authorizeMined) this.abandon(`authorize failed: ${event.reason}`);
        return;
      case "settleMined":
        if (this.isCurrent(event.sessionId, event.generation) && state.phase === "settling") this.settled(event.sessionId, event.txHash);
        return;
      case "settleFailed":
        if (this.isCurrent(event.sessionId, event.generation) && state.phase === "settling") {
          this.notify("fault", `session ${event.sessionId}: settlement failed for good: ${event.reason}`, event.sessionId);
          this.closeSession();
        }
        return;
      case "sessionClosedOnChain": {
        state.queue = state.queue.filter((queued) => queued.sessionId !== event.sessionId);
        if (!this.isCurrent(event.sessionId)) {
          this.finish(event.sessionId, generationFor(state, event.sessionId));
          return;
        }
        // The ledger's SessionSettled log often arrives before our own receipt: the same outcome, the same record.
        if (event.how === "settled" && state.phase === "settling") {
          this.settled(event.sessionId, event.txHash);
          return;
        }
        // Closed on chain while this pile still thinks it is open: a journal lost or started afresh replays old
        // deposits. Whatever the phase, the deposit no longer backs any energy: drop the session (the interlock
        // then holds the relay open) and never serve it again.
        this.notify(
          event.how === "cancelled" && !state.session?.authorizeMined ? "session" : "fault",
          `session ${event.sessionId} is already ${event.how} on chain; dropping it`,
          event.sessionId,
        );
        this.abandon(`${event.how} on chain`);
        return;
      }
      case "remoteStop":
        if (!state.session || (event.sessionId !== undefined && !this.isCurrent(event.sessionId))) return;
        if (state.phase === "energized" || state.phase === "suspended" || state.phase === "authorized") this.stop("remoteStop");
        return;
      case "clearFault":
        state.fault = undefined;
        state.relayMismatchSinceMs = undefined;
        if (state.phase === "faulted") this.closeSession();
        return;
      case "availability":
        state.inoperative = event.operative ? undefined : true;
        return;
      case "shutdown":
        state.shuttingDown = true;
        return;
    }
  }

  /**
   * A deposit with `sessionId` left the canonical chain: the ledger's counter went back with it, so the next deposit
   * with this id is another deposit and gets the next generation. Idempotent: the same reorg reported twice, or a
   * deposit this pile never saw, raises nothing more.
   */
  raiseGeneration(sessionId: bigint): void {
    const state = this.state;
    const next = generationFor(state, sessionId);
    const removed = [state.session, ...state.queue].find((terms) => terms?.sessionId === sessionId);
    const removedGeneration = removed ? (removed.generation ?? 0) : state.finishedSessionIds.includes(sessionLabel(sessionId, next)) ? next : undefined;
    if (removedGeneration === undefined || removedGeneration + 1 <= next) return;
    const generations = { ...state.reorgedSessionGenerations, [sessionId.toString()]: removedGeneration + 1 };
    const ids = Object.keys(generations);
    // Integer-like keys iterate in ascending order: the oldest session ids go first.
    for (const id of ids.slice(0, Math.max(0, ids.length - MAX_REORGED_IDS))) delete generations[id];
    state.reorgedSessionGenerations = generations;
  }

  /** Wall time of the latest event (control time for a snapshot written before wall time was tracked). */
  wallNowMs(): number {
    return this.state.wallNowMs ?? this.state.nowMs;
  }

  settled(sessionId: bigint, txHash: string | undefined): void {
    if (this.state.session && txHash !== undefined) this.state.session.settleTxHash = txHash;
    this.notify("session", `session ${sessionId}: settled${txHash === undefined ? "" : ` (tx ${txHash})`}`, sessionId);
    this.closeSession();
  }

  checkFeedback(): void {
    const state = this.state;
    if (!this.config.hasFeedbackInput || state.relayMismatchSinceMs === undefined || state.fault !== undefined) return;
    const mismatchMs = elapsedMs(state, state.relayMismatchSinceMs);
    if (mismatchMs !== undefined && mismatchMs < this.config.feedbackTimeoutMs) return;
    state.fault = state.relayCommandedClosed
      ? `contactor failed to close: feedback stayed open for ${this.config.feedbackTimeoutMs} ms`
      : `welded contactor: feedback stayed closed for ${this.config.feedbackTimeoutMs} ms after opening`;
    this.notify("fault", state.fault, state.session?.sessionId);
    if (state.session && (state.phase === "energized" || state.phase === "suspended")) this.stop("fault");
    else if (!state.session) state.phase = "faulted";
  }

  /** Moves the session forward as far as the current facts allow. */
  advance(): void {
    const { config, state } = this;
    for (let guard = 0; guard < 8; guard++) {
      const session = state.session;
      const before = state.phase;
      if (!session) return;
      switch (state.phase) {
        case "depositPending":
          // Inoperative: a confirmed deposit is held before authorize, so the EV may still cancel it after
          // authTimeout instead of being locked into a pile that will not charge.
          if (confirmationsOf(state, session) >= config.confirmations && state.inoperative !== true) {
            this.setPhase("authorizing");
            this.commands.push(this.authorizeCommand(session));
          }
          break;
        case "authorized":
          if (session.meterStartWh !== undefined && config.hasEvPresentInput && state.evPresenceKnown && !state.evPresent) {
            // Resumed after a restart, and the EV left while the agent was down: settle what was delivered.
            session.relayOpenedAtMs = state.nowMs;
            this.stop("evUnplugged");
          } else if (session.meterStartWh !== undefined && deliveredWh(session) >= session.stopAtWh) {
            // Only a session resumed after a restart is "authorized" with a start reading. If the EV used up the
            // budget through the contactor the dead process left closed, the interlock will never close it again:
            // stop now (the relay has been open since start-up) and settle what the meter shows.
            session.relayOpenedAtMs = state.nowMs;
            this.stop(this.budgetStopReason(session));
          } else if (this.canEnergize(session)) {
            // The relay is still open, so the last fresh reading is the register at the instant current starts.
            session.meterStartWh ??= state.meter.lastEnergyWh;
            session.startedAtMs ??= this.wallNowMs();
            session.meterLastWh ??= session.meterStartWh;
            session.energizedAtMs = state.nowMs;
            this.setPhase("energized");
          }
          break;
        case "energized":
        case "suspended": {
          const reason = this.stopReasonWhileDelivering(session);
          if (reason) this.stop(reason);
          // Whether the EV draws can only be told from a reading taken after the contacts closed; the one that
          // let them close was taken with them open (0 W), and would flag every start as a pause.
          else if ((state.meter.lastSampleAtMs ?? 0) > (session.energizedAtMs ?? 0)) {
            this.setPhase((state.meter.lastPowerW ?? 0) < IDLE_POWER_W ? "suspended" : "energized");
          }
          break;
        }
        case "stopping":
          this.takeStopReading(session);
          break;
        default:
          break;
      }
      if (state.phase === before) return;
    }
  }

  canEnergize(session: Session): boolean {
    const { config, state } = this;
    return (
      session.authorizeMined &&
      !state.shuttingDown &&
      state.fault === undefined &&
      confirmationsOf(state, session) >= config.confirmations &&
      meterFresh(config, state) &&
      state.meter.faultKind === undefined &&
      state.meter.lastEnergyWh !== undefined &&
      evPresentOrAssumed(config, state) &&
      deliveredWh(session) < session.stopAtWh
    );
  }

  stopReasonWhileDelivering(session: Session): StopReason | undefined {
    const { config, state } = this;
    if (state.fault !== undefined) return "fault";
    if (!meterFresh(config, state)) return "meterLost";
    if (!evPresentOrAssumed(config, state)) return "evUnplugged";
    if (deliveredWh(session) >= session.stopAtWh) return this.budgetStopReason(session);
    return undefined;
  }

  /** Why a session that reached `stopAtWh` stops: the EV's own limit or the deposit's. */
  budgetStopReason(session: Session): StopReason {
    const coveredWh = energyCoveredWh(session.depositWei, session.priceWeiPerKWh);
    return session.maxEnergyWh <= coveredWh ? "maxEnergy" : "budget";
  }

  /**
   * The stop reading must be taken after the contacts opened, or energy drawn between the last poll and the
   * opening would go unbilled; if the meter stays silent, the last good reading is used (the EV never overpays).
   */
  takeStopReading(session: Session): void {
    const { config, state } = this;
    if (state.relayCommandedClosed) return;
    const openedAt = session.relayOpenedAtMs ?? state.nowMs;
    const sampleAt = state.meter.lastSampleAtMs;
    if (session.meterStopWh === undefined) {
      if (sampleAt !== undefined && sampleAt >= openedAt + config.stopReadingDelayMs && state.meter.faultKind === undefined && state.meter.lastEnergyWh !== undefined) {
        session.meterStopWh = state.meter.lastEnergyWh;
      } else if ((elapsedMs(state, openedAt) ?? Infinity) >= config.stopReadingTimeoutMs) {
        session.meterStopWh = session.meterLastWh ?? session.meterStartWh ?? state.meter.lastEnergyWh ?? 0;
        this.notify("warning", `session ${session.sessionId}: no meter reading after the relay opened; settling on the last good reading`, session.sessionId);
      } else {
        return;
      }
    }
    // A session stopped before it ever energized settles at zero energy, refunding the EV in full.
    session.meterStartWh ??= session.meterStopWh;
    session.startedAtMs ??= this.wallNowMs();
    session.meterStopWh = Math.max(session.meterStopWh, session.meterStartWh);
    // Wall time, as the signed total and OCPP report it; a clock set back during the session must not make the
    // stop precede the start (the ledger reverts StopBeforeStart).
    session.stoppedAtMs = Math.max(this.wallNowMs(), session.startedAtMs);
    this.setPhase("settling");
    this.commands.push(this.settleCommand(session));
  }

  interlock(): void {
    const state = this.state;
    const closed = relayShouldBeClosed(this.config, state);
    if (closed === state.relayCommandedClosed) return;
    state.relayCommandedClosed = closed;
    state.relayMismatchSinceMs =
      state.relayFeedbackClosed === undefined || state.relayFeedbackClosed === closed ? undefined : state.nowMs;
    if (!closed && state.session) state.session.relayOpenedAtMs = state.nowMs;
    this.commands.push({ type: "setRelay", closed, reason: closed ? "energize" : (state.session?.stopReason ?? (state.shuttingDown ? "shutdown" : "interlock")) });
  }
}

export function signedTotalOf(session: Session): SignedTotalRequest {
  const meterStartWh = session.meterStartWh ?? 0;
  const startedAtS = Math.floor((session.startedAtMs ?? 0) / 1000);
  return {
    sessionId: session.sessionId,
    meterStartWh,
    meterStopWh: Math.max(session.meterStopWh ?? meterStartWh, meterStartWh),
    startedAtS,
    stoppedAtS: Math.max(Math.floor((session.stoppedAtMs ?? 0) / 1000), startedAtS),
    evBehaviour: session.evBehaviour,
  };
}

export function step(config: CoreConfig, state: CoreState, event: CoreEvent): StepResult {
  const stepper = new Stepper(config, structuredClone(state));
  stepper.apply(event);
  stepper.checkFeedback();
  stepper.advance();
  stepper.interlock();
  // Opening the relay may be what a stop was waiting for: advance once more so the stop reading can be taken.
  stepper.advance();
  stepper.checkFeedback();
  return { state: stepper.state, commands: stepper.commands };
}

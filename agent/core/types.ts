/**
 * The session core's vocabulary (DESIGN §3): events in, commands out, one state. Plain data only — no clock, no
 * I/O — so the journal can store every event and replay reproduces the same state and commands.
 * Energies are integer Wh; money is bigint wei. Times arrive inside events, on two clocks:
 *
 * - `atMs`, wall time (unix ms): what leaves the pile — the signed total's startedAt/stoppedAt, OCPP timestamps.
 *   It may step (NTP correction, an RTC-less board booting at 1970 then syncing, `date -s`).
 * - `controlMs`, control time: a monotonic ms count that never steps while the process runs. Every timing rule
 *   (meter staleness, feedback timeout, stop-reading delay and timeout) measures it, so a wall-clock step can neither
 *   keep a dead meter "fresh" nor make a live one "stale". Each process starts a new control epoch (the `startup`
 *   event), so values journaled by an earlier process are never compared with this one's. Absent (events journaled
 *   before it existed, tests), control time is `atMs`.
 */

export type Phase =
  | "idle" // no session
  | "depositPending" // a deposit for this pile is on chain, not yet buried under `confirmations` blocks
  | "authorizing" // confirmed; our `authorize` transaction is on its way
  | "authorized" // authorize mined: the EV can no longer cancel; energizing waits on the interlock
  | "energized" // relay closed, energy flowing within the budget
  | "suspended" // relay closed, the EV draws no power (paused or full)
  | "stopping" // relay commanded open; waiting for a meter reading taken after it opened
  | "settling" // the signed total is in the outbox
  | "faulted"; // a hardware fault holds the relay open until cleared

export type StopReason =
  | "budget" // the energy the deposit pays for (less the stop margin) is used up
  | "maxEnergy" // the EV's own maxEnergyWh
  | "evUnplugged"
  | "remoteStop" // CSMS or operator
  | "meterLost" // no fresh meter reading for staleAfterMs
  | "fault" // relay feedback mismatch (weld, failure to close) or an implausible meter
  | "reorged" // the deposit left the canonical chain after energizing
  | "shutdown";

export interface SessionTerms {
  sessionId: bigint;
  ev: string;
  depositWei: bigint;
  priceWeiPerKWh: bigint;
  maxEnergyWh: number;
  depositBlock: number;
  depositBlockHash: string;
  depositTxHash: string;
  /**
   * Set by the core, never by the chain watcher: how many reorgs (deeper than the confirmations) removed an earlier
   * deposit with this session id before this one was seen. The ledger's counter rewinds with such a reorg, so the
   * next deposit gets the same id although it is another deposit: its outbox keys carry the generation
   * (`authorize:<id>/r<N>`). Absent for 0, so journals and snapshots written before it existed read unchanged.
   */
  generation?: number;
}

export interface Session extends SessionTerms {
  /** Energy this session may deliver before stopping: min(maxEnergyWh, deposit/price) − stopMarginWh. */
  budgetWh: number;
  stopAtWh: number;
  authorizeMined: boolean;
  /** Meter register when the relay first closed, and when (wall time) the session began delivering. */
  meterStartWh?: number;
  startedAtMs?: number;
  /** When (control time) the relay last closed for this session; readings before it cannot tell whether the EV draws. */
  energizedAtMs?: number;
  /** Latest register reading during the session. */
  meterLastWh?: number;
  stopReason?: StopReason;
  /** The relay was last commanded open at this control time; the stop reading must be taken after it. */
  relayOpenedAtMs?: number;
  meterStopWh?: number;
  /** Wall time of the stop reading, never before `startedAtMs` (the ledger rejects stoppedAt < startedAt). */
  stoppedAtMs?: number;
  /** −1 when the EV was unplugged under load (a violation), else 0. */
  evBehaviour: 0 | -1;
  settleTxHash?: string;
}

export interface MeterHealth {
  /** Control time of the last good sample (when its poll began). */
  lastSampleAtMs?: number;
  lastEnergyWh?: number;
  lastPowerW?: number;
  /** Set by a meter fault, cleared by the next good sample. */
  faultKind?: string;
}

export interface CoreConfig {
  chargePointId: string;
  confirmations: number;
  stopMarginWh: number;
  staleAfterMs: number;
  feedbackTimeoutMs: number;
  /** Without EV-present sensing an EV counts as present from the confirmed deposit until the session stops. */
  hasEvPresentInput: boolean;
  hasFeedbackInput: boolean;
  /**
   * The stop reading must come from a poll that started after the contacts opened: at least one poll interval
   * after the open command. How long it may wait for the meter before the last good reading is used instead.
   */
  stopReadingDelayMs: number;
  stopReadingTimeoutMs: number;
}

export interface CoreState {
  phase: Phase;
  /** Control time: the latest `controlMs` seen in this epoch (never decreases between two `startup` events). */
  nowMs: number;
  /** Wall time of the latest event; follows the wall clock's steps. Optional: snapshots written before it existed. */
  wallNowMs?: number;
  headBlock: number;
  session?: Session;
  /** Deposits seen while another session runs; served one at a time in the order they were opened. */
  queue: SessionTerms[];
  relayCommandedClosed: boolean;
  /** Since when (control time) the commanded and fed-back positions disagree (feedback input only). */
  relayMismatchSinceMs?: number;
  relayFeedbackClosed?: boolean;
  evPresent: boolean;
  /** False from start-up until the EV-present input has been read again. */
  evPresenceKnown: boolean;
  meter: MeterHealth;
  fault?: string;
  /**
   * Made inoperative (OCPP ChangeAvailability): no new deposit is authorized while set; a running session finishes.
   * Optional so snapshots written before it existed still load (absent = operative).
   */
  inoperative?: boolean;
  /** After a shutdown event the relay never closes again in this process. */
  shuttingDown: boolean;
  /**
   * Sessions already settled or abandoned here, so a replayed or re-emitted deposit is never served twice; labelled
   * by `sessionLabel` (the id, plus `/r<N>` for a later generation of it).
   */
  finishedSessionIds: string[];
  /**
   * Session id → the generation its next deposit gets (see SessionTerms.generation): raised when a deposit with
   * the id left the canonical chain. Optional so snapshots written before it existed still load.
   */
  reorgedSessionGenerations?: Record<string, number>;
}

/** Every event's two timestamps (see the file comment). */
export interface EventTimes {
  /** Wall time, unix ms. */
  atMs: number;
  /** Control time, monotonic ms within one process; defaults to `atMs`. */
  controlMs?: number;
}

export type CoreEvent = EventTimes & (
  | { type: "startup"; atMs: number }
  | { type: "tick"; atMs: number }
  | { type: "meterSample"; atMs: number; energyWh: number; powerW: number }
  | { type: "meterFault"; atMs: number; kind: string; message: string }
  | { type: "evPresence"; atMs: number; present: boolean }
  | { type: "relayFeedback"; atMs: number; closed: boolean }
  | ({ type: "depositSeen"; atMs: number } & SessionTerms)
  | { type: "chainHead"; atMs: number; blockNumber: number }
  | { type: "depositReorged"; atMs: number; sessionId: bigint }
  /**
   * The four outcomes of the pile's own transactions carry the generation of the outbox row they answer, so an
   * outcome for an earlier deposit with the same id never moves the current one. Absent: from the ledger's own
   * logs (they describe the canonical chain, hence the current deposit), or journaled before generations existed.
   */
  | { type: "authorizeMined"; atMs: number; sessionId: bigint; txHash: string; generation?: number }
  | { type: "authorizeFailed"; atMs: number; sessionId: bigint; reason: string; generation?: number }
  | { type: "settleMined"; atMs: number; sessionId: bigint; txHash: string; generation?: number }
  | { type: "settleFailed"; atMs: number; sessionId: bigint; reason: string; generation?: number }
  | { type: "sessionClosedOnChain"; atMs: number; sessionId: bigint; how: "cancelled" | "expired" | "settled"; txHash?: string }
  | { type: "remoteStop"; atMs: number; sessionId?: bigint }
  | { type: "clearFault"; atMs: number }
  /** Operator/CSMS availability: `operative: false` holds every new deposit before authorize. */
  | { type: "availability"; atMs: number; operative: boolean }
  | { type: "shutdown"; atMs: number }
);

export interface SignedTotalRequest {
  sessionId: bigint;
  meterStartWh: number;
  meterStopWh: number;
  startedAtS: number;
  stoppedAtS: number;
  evBehaviour: 0 | -1;
}

export type CoreCommand =
  | { type: "setRelay"; closed: boolean; reason: string }
  /** `generation`: of the session's deposit (SessionTerms.generation), absent for 0; part of the outbox key. */
  | { type: "sendAuthorize"; sessionId: bigint; generation?: number }
  | { type: "sendSettle"; total: SignedTotalRequest; generation?: number }
  | { type: "notify"; kind: "session" | "fault" | "warning"; message: string; sessionId?: bigint };

export interface StepResult {
  state: CoreState;
  commands: CoreCommand[];
}

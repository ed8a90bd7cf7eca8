/**
 * From core steps and meter samples to MQTT messages (DESIGN §5.3; topics and payload shapes in ./types.ts).
 * Pure: no clock and no I/O. Every `ts` comes from the event or sample that caused the message, so a scripted
 * sequence of core events gives the same messages byte for byte.
 *
 * Payload details beyond types.ts:
 * - `state.energyWh` is the energy delivered in the current session (null without one); the meter register is on
 *   the `meter` topic. `state.powerW` is the last good meter power. `relayClosed` is the fed-back contact position
 *   where a feedback input exists, else the commanded one. Changes in energy and power alone are published at most
 *   once per `meterIntervalMs`; every other change at once.
 * - `session` is sent on every phase change of a session: for a new session (`previousPhase` "idle"), and once
 *   when the session leaves the core (settled, abandoned, reorged away) with the phase the pile went to ("idle",
 *   or "faulted") and the last known figures and hashes of that session. The session found in progress at
 *   start-up is announced once with `previousPhase` equal to `phase` (no transition was seen).
 * - `event` carries every `notify` command (fault → fault, warning → warning, session → info), a meter fault once
 *   per kind and outage (level warning, or fault when it stops the session), the meter's recovery and a cleared
 *   fault (info).
 */
import type { MeterSample } from "../../drivers/meters/types.ts";
import type { CoreCommand, CoreEvent, CoreState, Phase, Session, StopReason } from "../core/types.ts";
import type { TelemetryMessage, TelemetryTopic } from "./types.ts";

export type Topics = Record<TelemetryTopic, string>;

export function topicsFor(topicPrefix: string, chargePointId: string): Topics {
  const base = `${topicPrefix}/${chargePointId}`;
  return { status: `${base}/status`, state: `${base}/state`, meter: `${base}/meter`, session: `${base}/session`, event: `${base}/event` };
}

export interface StatePayload {
  ts: string;
  phase: Phase;
  sessionId: string | null;
  relayClosed: boolean;
  evPresent: boolean;
  fault: string | null;
  meterFault: string | null;
  energyWh: number | null;
  powerW: number | null;
}

export interface MeterPayload {
  ts: string;
  energyWh: number;
  powerW: number;
  frequencyHz?: number;
  phases: { voltageV: number; currentA: number; powerW: number }[];
}

export interface SessionPayload {
  ts: string;
  sessionId: string;
  phase: Phase;
  previousPhase: Phase;
  ev: string;
  depositWei: string;
  priceWeiPerKWh: string;
  budgetWh: number;
  meterStartWh: number | null;
  energyWh: number;
  stopReason: StopReason | null;
  depositTxHash: string;
  authorizeTxHash: string | null;
  settleTxHash: string | null;
}

export type EventLevel = "fault" | "warning" | "info";

export interface EventPayload {
  ts: string;
  level: EventLevel;
  message: string;
  sessionId: string | null;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Energy a session delivered so far, or in total once the stop reading is taken. */
export function sessionEnergyWh(session: Session): number {
  if (session.meterStartWh === undefined) return 0;
  const endWh = session.meterStopWh ?? session.meterLastWh ?? session.meterStartWh;
  return Math.max(0, endWh - session.meterStartWh);
}

export function statePayload(state: CoreState, atMs: number): StatePayload {
  return {
    ts: iso(atMs),
    phase: state.phase,
    sessionId: state.session ? state.session.sessionId.toString() : null,
    relayClosed: state.relayFeedbackClosed ?? state.relayCommandedClosed,
    evPresent: state.evPresent,
    fault: state.fault ?? null,
    meterFault: state.meter.faultKind ?? null,
    energyWh: state.session ? sessionEnergyWh(state.session) : null,
    powerW: state.meter.lastPowerW ?? null,
  };
}

function rounded(value: number, decimals: number): number {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
}

export function meterPayload(sample: MeterSample): MeterPayload {
  return {
    ts: iso(sample.readAtMs),
    energyWh: sample.importEnergyWh,
    powerW: rounded(sample.powerW, 1),
    ...(sample.frequencyHz === undefined ? {} : { frequencyHz: rounded(sample.frequencyHz, 2) }),
    // Meters send float32: widened to double they print as 229.8000030517578. Round to what they resolve.
    phases: sample.phases.map((p) => ({ voltageV: rounded(p.voltageV, 1), currentA: rounded(p.currentA, 3), powerW: rounded(p.powerW, 1) })),
  };
}

/** Transaction hashes the core does not keep (the authorize hash) or drops with the session (the settle hash). */
export interface SessionHashes {
  authorizeTxHash?: string;
  settleTxHash?: string;
}

export function sessionPayload(
  session: Session,
  phase: Phase,
  previousPhase: Phase,
  atMs: number,
  hashes: SessionHashes | undefined,
): SessionPayload {
  return {
    ts: iso(atMs),
    sessionId: session.sessionId.toString(),
    phase,
    previousPhase,
    ev: session.ev,
    depositWei: session.depositWei.toString(),
    priceWeiPerKWh: session.priceWeiPerKWh.toString(),
    budgetWh: session.budgetWh,
    meterStartWh: session.meterStartWh ?? null,
    energyWh: sessionEnergyWh(session),
    stopReason: session.stopReason ?? null,
    depositTxHash: session.depositTxHash,
    authorizeTxHash: hashes?.authorizeTxHash ?? null,
    settleTxHash: hashes?.settleTxHash ?? session.settleTxHash ?? null,
  };
}

const message = (topic: string, kind: TelemetryMessage["kind"], payload: object, retain = false): TelemetryMessage => ({
  topic,
  payload: JSON.stringify(payload),
  retain,
  kind,
});

export function eventMessage(topics: Topics, atMs: number, level: EventLevel, text: string, sessionId?: bigint): TelemetryMessage {
  const payload: EventPayload = { ts: iso(atMs), level, message: text, sessionId: sessionId === undefined ? null : sessionId.toString() };
  return message(topics.event, "event", payload);
}

/**
 * What the bidder reports (agent/bidder): `won` when the auction decided for this pile, so operators know a session
 * at the auction price is on its way (it then arrives through the ledger like any other).
 */
export interface AuctionEvent {
  type: "won";
  atMs: number;
  invitationId: bigint;
  pricePerKWh: bigint;
  /** The `Decided` transaction. */
  txHash: string;
}

/** Published on `event`, level info: { ts, level, message, sessionId: null, auction: { event, invitationId, pricePerKWh, txHash } }. */
export interface AuctionEventPayload extends EventPayload {
  auction: { event: AuctionEvent["type"]; invitationId: string; pricePerKWh: string; txHash: string };
}

export function auctionEventMessage(topics: Topics, event: AuctionEvent): TelemetryMessage {
  const payload: AuctionEventPayload = {
    ts: iso(event.atMs),
    level: "info",
    message: `won auction ${event.invitationId} at ${event.pricePerKWh} wei/kWh; expecting its session`,
    sessionId: null,
    auction: { event: event.type, invitationId: event.invitationId.toString(), pricePerKWh: event.pricePerKWh.toString(), txHash: event.txHash },
  };
  return message(topics.event, "event", payload);
}

/** `session` messages for one step: `previous` is undefined for the first step this process sees. */
export function sessionMessages(
  topics: Topics,
  previous: CoreState | undefined,
  next: CoreState,
  atMs: number,
  hashesOf: (sessionId: bigint) => SessionHashes | undefined,
): TelemetryMessage[] {
  const out: TelemetryMessage[] = [];
  const before = previous?.session;
  const after = next.session;
  if (before && previous && before.sessionId !== after?.sessionId) {
    // Closed: the pile is idle (or faulted) now, even if the next queued session has begun in the same step.
    const phaseAfter = after ? "idle" : next.phase;
    out.push(message(topics.session, "session", sessionPayload(before, phaseAfter, previous.phase, atMs, hashesOf(before.sessionId))));
  }
  if (after) {
    const same = before?.sessionId === after.sessionId;
    if (!previous) out.push(message(topics.session, "session", sessionPayload(after, next.phase, next.phase, atMs, hashesOf(after.sessionId))));
    else if (!same) out.push(message(topics.session, "session", sessionPayload(after, next.phase, "idle", atMs, hashesOf(after.sessionId))));
    else if (previous.phase !== next.phase) {
      out.push(message(topics.session, "session", sessionPayload(after, next.phase, previous.phase, atMs, hashesOf(after.sessionId))));
    }
  }
  return out;
}

const LEVEL_OF: Record<Extract<CoreCommand, { type: "notify" }>["kind"], EventLevel> = {
  fault: "fault",
  warning: "warning",
  session: "info",
};

/** `event` messages for one step. */
export function eventMessages(
  topics: Topics,
  previous: CoreState | undefined,
  next: CoreState,
  event: CoreEvent,
  commands: readonly CoreCommand[],
): TelemetryMessage[] {
  const out: TelemetryMessage[] = [];
  let faultNotified = false;
  for (const command of commands) {
    if (command.type !== "notify") continue;
    if (command.kind === "fault") faultNotified = true;
    out.push(eventMessage(topics, event.atMs, LEVEL_OF[command.kind], command.message, command.sessionId));
  }
  if (event.type === "meterFault" && !faultNotified) {
    const stoppedNow =
      next.session !== undefined &&
      next.session.stopReason !== undefined &&
      previous?.session?.sessionId === next.session.sessionId &&
      previous.session.stopReason === undefined;
    if (stoppedNow) {
      out.push(eventMessage(topics, event.atMs, "fault", `meter ${event.kind}: ${event.message}; session stopped`, next.session?.sessionId));
    } else if (previous?.meter.faultKind !== event.kind) {
      out.push(eventMessage(topics, event.atMs, "warning", `meter ${event.kind}: ${event.message}`, next.session?.sessionId));
    }
  }
  if (event.type === "meterSample" && previous?.meter.faultKind !== undefined) {
    out.push(eventMessage(topics, event.atMs, "info", `meter readings are back after a ${previous.meter.faultKind} fault`, next.session?.sessionId));
  }
  if (event.type === "clearFault" && previous?.fault !== undefined && next.fault === undefined) {
    out.push(eventMessage(topics, event.atMs, "info", `fault cleared: ${previous.fault}`, next.session?.sessionId));
  }
  return out;
}

export interface MessageBuilderOptions {
  topicPrefix: string;
  chargePointId: string;
  /** At most one meter message (and one energy/power-only state change) per this many ms; 0 = every sample. */
  meterIntervalMs: number;
}

export interface MessageBuilder {
  readonly topics: Topics;
  fromStep(state: CoreState, event: CoreEvent, commands: readonly CoreCommand[]): TelemetryMessage[];
  fromSample(sample: MeterSample): TelemetryMessage[];
}

/** `txHash` of a `sessionClosedOnChain` event, where the shell added it (the core's type does not require it). */
function settledTxHashOf(event: Extract<CoreEvent, { type: "sessionClosedOnChain" }>): string | undefined {
  const txHash: unknown = (event as { txHash?: unknown }).txHash;
  return typeof txHash === "string" && txHash.length > 0 ? txHash : undefined;
}

/** Sessions whose hashes are remembered: the current one, a few queued or just closed. */
const MAX_REMEMBERED_SESSIONS = 16;

/**
 * The stateful part: the previous core state, what `state` last said, when the last meter message was, and the
 * tx hashes per session. Owned by one telemetry instance; the core never sees it.
 */
export function createMessageBuilder(options: MessageBuilderOptions): MessageBuilder {
  const topics = topicsFor(options.topicPrefix, options.chargePointId);
  const interval = options.meterIntervalMs;
  let previous: CoreState | undefined;
  let lastState: StatePayload | undefined;
  let lastStateAtMs = 0;
  let lastMeterAtMs: number | undefined;
  const hashes = new Map<string, SessionHashes>();

  function remember(sessionId: bigint, update: SessionHashes): void {
    const key = sessionId.toString();
    const entry = hashes.get(key) ?? {};
    hashes.delete(key);
    hashes.set(key, { ...entry, ...update });
    while (hashes.size > MAX_REMEMBERED_SESSIONS) {
      const oldest = hashes.keys().next().value;
      if (oldest === undefined) break;
      hashes.delete(oldest);
    }
  }

  function stateChanged(now: StatePayload, atMs: number): boolean {
    const last = lastState;
    if (!last) return true;
    const otherChange =
      last.phase !== now.phase ||
      last.sessionId !== now.sessionId ||
      last.relayClosed !== now.relayClosed ||
      last.evPresent !== now.evPresent ||
      last.fault !== now.fault ||
      last.meterFault !== now.meterFault;
    if (otherChange) return true;
    if (last.energyWh === now.energyWh && last.powerW === now.powerW) return false;
    return interval === 0 || atMs - lastStateAtMs >= interval || atMs < lastStateAtMs;
  }

  return {
    topics,
    fromStep(state, event, commands) {
      if (event.type === "authorizeMined") remember(event.sessionId, { authorizeTxHash: event.txHash });
      if (event.type === "settleMined") remember(event.sessionId, { settleTxHash: event.txHash });
      // The chain watcher may see the SessionSettled log before the tx sender reports the receipt; then the close
      // comes as `sessionClosedOnChain`, whose tx hash the agent passes along where it has it.
      const closedTx = event.type === "sessionClosedOnChain" && event.how === "settled" ? settledTxHashOf(event) : undefined;
      if (event.type === "sessionClosedOnChain" && closedTx) remember(event.sessionId, { settleTxHash: closedTx });
      const out = sessionMessages(topics, previous, state, event.atMs, (id) => hashes.get(id.toString()));
      // A closed session's hashes were just published for the last time.
      if (previous?.session && previous.session.sessionId !== state.session?.sessionId) hashes.delete(previous.session.sessionId.toString());
      out.push(...eventMessages(topics, previous, state, event, commands));
      const payload = statePayload(state, event.atMs);
      if (stateChanged(payload, event.atMs)) {
        out.push(message(topics.state, "state", payload, true));
        lastState = payload;
        lastStateAtMs = event.atMs;
      }
      previous = state;
      return out;
    },
    fromSample(sample) {
      const at = sample.readAtMs;
      if (interval > 0 && lastMeterAtMs !== undefined && at >= lastMeterAtMs && at - lastMeterAtMs < interval) return [];
      lastMeterAtMs = at;
      return [message(topics.meter, "meter", meterPayload(sample))];
    },
  };
}

/**
 * Telemetry for operators (DESIGN §5.3): the agent's view published over MQTT under `<topicPrefix>/<chargePointId>/`.
 * The control loop only hands data to a `TelemetrySink`; nothing here may block or throw into it.
 *
 * Topics and payloads (JSON unless noted; units in key names; QoS 1):
 *   status   retained, plain text `online` / `offline` (`offline` is also the Last Will)
 *   state    retained: { ts, phase, sessionId|null, relayClosed, evPresent, fault|null, meterFault|null, energyWh|null, powerW|null }
 *   meter    at the poll rate, downsampled by `mqtt.meterIntervalMs`:
 *            { ts, energyWh, powerW, frequencyHz?, phases: [{ voltageV, currentA, powerW }] }
 *   session  on every phase transition of a session: { ts, sessionId, phase, previousPhase, ev, depositWei,
 *            priceWeiPerKWh, budgetWh, meterStartWh|null, energyWh, stopReason|null, depositTxHash,
 *            authorizeTxHash|null, settleTxHash|null } (wei as decimal strings)
 *   event    faults, warnings and notable info: { ts, level: "fault"|"warning"|"info", message, sessionId|null };
 *            an auction won adds auction: { event: "won", invitationId, pricePerKWh, txHash } (messages.ts)
 * `ts` is an ISO-8601 UTC string.
 */
import type { MeterSample } from "../../drivers/meters/types.ts";
import type { Config } from "../config/schema.ts";
import type { CoreCommand, CoreEvent, CoreState } from "../core/types.ts";
import type { Logger } from "../logging.ts";
import type { AuctionEvent } from "./messages.ts";

export type TelemetryTopic = "status" | "state" | "meter" | "session" | "event";

/** One message waiting for the broker. `retain` for status, state and discovery configs. */
export interface TelemetryMessage {
  topic: string;
  payload: string;
  retain: boolean;
  /** What the buffer may drop first when full: meter samples, then superseded state, never session/event first. */
  kind: TelemetryTopic | "discovery";
}

export interface TelemetrySink {
  /** After every processed core event (the agent's `onStep`). Returns at once; never throws. */
  onStep(state: CoreState, event: CoreEvent, commands: readonly CoreCommand[]): void;
  /** Every good meter sample (the agent's `onSample`). Returns at once; never throws. */
  onSample(sample: MeterSample): void;
  /** What the bidder reports (an auction won). Returns at once; never throws. */
  onAuctionEvent?(event: AuctionEvent): void;
}

export interface TelemetryStats {
  connected: boolean;
  /** Messages waiting for the broker now, and the most there ever were. */
  buffered: number;
  maxBuffered: number;
  bufferLimit: number;
  /** Messages acknowledged by the broker (PUBACK). */
  published: number;
  /** Messages dropped because the buffer was full, by kind. */
  dropped: Partial<Record<TelemetryMessage["kind"], number>>;
}

export interface Telemetry extends TelemetrySink {
  stats(): TelemetryStats;
  /** Publishes `offline` (retained), flushes what it can within `timeoutMs`, and disconnects. */
  close(timeoutMs?: number): Promise<void>;
}

/** The validated `mqtt` section of the config. */
export type MqttConfig = NonNullable<Config["mqtt"]>;

export interface TelemetryOptions {
  mqtt: MqttConfig;
  chargePointId: string;
  log: Logger;
  /** For the Home Assistant device block. */
  device?: { meterModel?: string; softwareVersion?: string };
  clock?: () => number;
}

/**
 * Implemented by `startTelemetry` in agent/telemetry/index.ts: returns at once and connects in the background
 * (with backoff); publishes `online` (retained) on every (re)connect and the discovery configs when enabled.
 */
export type StartTelemetry = (options: TelemetryOptions) => Telemetry;

/**
 * The MQTT side of the telemetry (DESIGN §3, §5.3): the control loop's `onStep`/`onSample` only note what they
 * were given; turning it into JSON messages for the bounded buffer (./buffer.ts) and publishing happen later, from
 * `setImmediate`, so the caller neither waits on the network nor pays for serialization. Deferring is safe because
 * the core never mutates a state it has returned (each step works on a clone) and samples are not reused.
 *
 * Delivery: QoS 1, in buffer order, at most `inflightWindow` unacknowledged at a time; a message leaves the buffer
 * only on its PUBACK. A lost connection puts every unacknowledged message back in line, so a broker outage loses
 * nothing but what the bounded buffer had to drop (QoS 1 is at least once: a message whose PUBACK was lost with
 * the connection is sent again). mqtt.js keeps no backlog of its own: every connection attempt gets a fresh client
 * (clean session, in-memory stores, `reconnectPeriod: 0`) and nothing is published while disconnected.
 *
 * Connection: `offline` (retained, QoS 1) is the Last Will; `online` (retained) and the Home Assistant discovery
 * configs go out on every connect before the backlog. Reconnects back off exponentially from `reconnectMinMs` to
 * `reconnectMaxMs` (mqtt.js only knows a fixed period). An outage is logged once when it starts (and again only if
 * its cause changes, e.g. unreachable → refused credentials) and once when it ends, never per attempt.
 */
import { readFileSync } from "node:fs";
import { connect, ErrorWithReasonCode, type IClientOptions, type MqttClient } from "mqtt";
import { describeError } from "../errors.ts";
import { TelemetryBuffer, type BufferEntry } from "./buffer.ts";
import { discoveryMessages } from "./discovery.ts";
import { auctionEventMessage, createMessageBuilder } from "./messages.ts";
import type { Telemetry, TelemetryMessage, TelemetryOptions, TelemetryStats } from "./types.ts";

/** What an unset `mqtt.meterIntervalMs` / `mqtt.bufferLimit` means. */
export const MQTT_DEFAULTS = { meterIntervalMs: 0, bufferLimit: 1000 } as const;

export function defaultClientId(chargePointId: string): string {
  return `trustpile-${chargePointId}`;
}

/** Timing knobs; the defaults suit a pile. Tests shorten the backoff to make an outage quick. */
export interface TelemetryTuning {
  /** First reconnect delay, doubled per failed attempt up to `reconnectMaxMs`. Default 1 s. */
  reconnectMinMs?: number;
  /** Default 30 s. */
  reconnectMaxMs?: number;
  /** How long a connection attempt may wait for the CONNACK. Default 10 s. */
  connectTimeoutMs?: number;
  /** Unacknowledged QoS-1 publishes at a time; capped at half the buffer limit. Default 32. */
  inflightWindow?: number;
  /** MQTT keepalive in seconds. Default 30. */
  keepaliveS?: number;
}

/** The broker URL as it may be logged: without a password written into it (`mqtt://user:secret@host`). */
export function loggableUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
  }
}

/** An outage is logged again only when its cause changes between these (a lost connection counts as unreachable). */
type OutageCause = "auth" | "unreachable";

/** CONNACK codes meaning "wrong credentials": MQTT 3.1.1 (4, 5) and MQTT 5 (0x86, 0x87). */
const REFUSED_CREDENTIALS: Record<number, string> = {
  4: "bad username or password",
  5: "not authorized",
  0x86: "bad username or password",
  0x87: "not authorized",
};

export function createTelemetry(options: TelemetryOptions, tuning: TelemetryTuning = {}): Telemetry {
  const { mqtt, chargePointId, log } = options;
  const clock = options.clock ?? Date.now;
  const limit = mqtt.bufferLimit ?? MQTT_DEFAULTS.bufferLimit;
  const reconnectMinMs = tuning.reconnectMinMs ?? 1_000;
  const reconnectMaxMs = Math.max(reconnectMinMs, tuning.reconnectMaxMs ?? 30_000);
  const window = Math.max(1, Math.min(tuning.inflightWindow ?? 32, Math.floor(limit / 2)));
  const url = loggableUrl(mqtt.url);
  const user = mqtt.username ?? "(none)";

  const builder = createMessageBuilder({
    topicPrefix: mqtt.topicPrefix,
    chargePointId,
    meterIntervalMs: mqtt.meterIntervalMs ?? MQTT_DEFAULTS.meterIntervalMs,
  });
  const statusTopic = builder.topics.status;
  const discovery = mqtt.homeAssistant
    ? discoveryMessages({
        chargePointId,
        topics: builder.topics,
        ...(options.device?.meterModel ? { meterModel: options.device.meterModel } : {}),
        ...(options.device?.softwareVersion ? { softwareVersion: options.device.softwareVersion } : {}),
      })
    : [];
  const buffer = new TelemetryBuffer(limit);

  let ca: Buffer | undefined;
  if (mqtt.caFile) {
    try {
      ca = readFileSync(mqtt.caFile);
    } catch (error) {
      throw new Error(`mqtt.caFile: cannot read ${mqtt.caFile}: ${describeError(error)}`, { cause: error });
    }
  }
  const clientOptions: IClientOptions = {
    clientId: mqtt.clientId ?? defaultClientId(chargePointId),
    ...(mqtt.username !== undefined ? { username: mqtt.username } : {}),
    ...(mqtt.password !== undefined ? { password: mqtt.password } : {}),
    ...(ca ? { ca } : {}),
    protocolVersion: 4,
    clean: true,
    keepalive: tuning.keepaliveS ?? 30,
    connectTimeout: tuning.connectTimeoutMs ?? 10_000,
    reconnectPeriod: 0,
    queueQoSZero: false,
    resubscribe: false,
    will: { topic: statusTopic, payload: Buffer.from("offline"), qos: 1, retain: true },
  };

  let client: MqttClient | undefined;
  /** Bumped per connection attempt: callbacks of an abandoned client are ignored. */
  let generation = 0;
  let connected = false;
  /** Set by close(): no more connection attempts. */
  let closing: Promise<void> | undefined;
  let published = 0;
  /** `online` and discovery configs sent on this connection and not yet acknowledged (not in the buffer). */
  let controlInFlight = 0;
  let backoffMs = reconnectMinMs;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let drainScheduled = false;
  let lastError: Error | undefined;
  let outage: { sinceMs: number; cause: OutageCause } | undefined;
  const idleWaiters = new Set<() => void>();

  function notifyIfIdle(): void {
    if (buffer.size > 0 || controlInFlight > 0) return;
    for (const resolve of idleWaiters) resolve();
    idleWaiters.clear();
  }

  function scheduleDrain(): void {
    if (drainScheduled || !connected) return;
    drainScheduled = true;
    setImmediate(drain);
  }

  function drain(): void {
    drainScheduled = false;
    const current = client;
    if (!connected || !current) return;
    const gen = generation;
    while (buffer.inFlight < window) {
      const entry = buffer.takeNext();
      if (!entry) break;
      send(current, gen, entry);
    }
  }

  function send(current: MqttClient, gen: number, entry: BufferEntry): void {
    const { topic, payload, retain } = entry.message;
    current.publish(topic, payload, { qos: 1, retain }, (error) => {
      if (gen !== generation) return; // that connection is gone; the message was put back in line
      if (error) return; // the connection is closing: `close` puts it back in line
      if (buffer.ack(entry)) published += 1;
      scheduleDrain();
      notifyIfIdle();
    });
  }

  function sendControl(current: MqttClient, gen: number, message: TelemetryMessage): void {
    controlInFlight += 1;
    current.publish(message.topic, message.payload, { qos: 1, retain: message.retain }, (error) => {
      if (gen !== generation) return;
      controlInFlight -= 1;
      if (!error) published += 1;
      notifyIfIdle();
    });
  }

  function describeCause(error: Error | undefined): { cause: OutageCause; text: string } {
    if (error instanceof ErrorWithReasonCode && REFUSED_CREDENTIALS[error.code] !== undefined) {
      return {
        cause: "auth",
        text: `mqtt broker ${url} refused the credentials for user ${user} (${REFUSED_CREDENTIALS[error.code]})`,
      };
    }
    return { cause: "unreachable", text: error ? describeError(error) : "connection closed" };
  }

  function onConnected(current: MqttClient, gen: number): void {
    connected = true;
    backoffMs = reconnectMinMs;
    lastError = undefined;
    if (outage) {
      log.info({ url, outageMs: clock() - outage.sinceMs, buffered: buffer.size, dropped: { ...buffer.dropped } }, `mqtt broker ${url} reached again; sending the buffered telemetry`);
      outage = undefined;
    } else {
      log.info({ url }, `mqtt broker ${url} connected`);
    }
    sendControl(current, gen, { topic: statusTopic, payload: "online", retain: true, kind: "status" });
    for (const message of discovery) sendControl(current, gen, message);
    scheduleDrain();
  }

  function onClosed(current: MqttClient): void {
    const wasConnected = connected;
    connected = false;
    controlInFlight = 0;
    generation += 1;
    client = undefined;
    buffer.requeueInFlight();
    current.end(true);
    const error = lastError;
    lastError = undefined;
    if (closing) {
      // Lost while close() flushes: nothing more will be delivered.
      for (const resolve of idleWaiters) resolve();
      idleWaiters.clear();
      return;
    }
    const { cause, text } = wasConnected && !error ? { cause: "unreachable" as const, text: "connection lost" } : describeCause(error);
    if (!outage || outage.cause !== cause) {
      const retry = `telemetry is buffered (up to ${limit} messages) and the connection retried with backoff up to ${Math.round(reconnectMaxMs / 1000)} s`;
      if (cause === "auth") log.error({ url, username: user }, `${text}; ${retry}`);
      else log.warn({ url, reason: text }, `mqtt broker ${url} ${wasConnected ? "connection lost" : "unreachable"} (${text}); ${retry}`);
      outage = { sinceMs: outage?.sinceMs ?? clock(), cause };
    }
    scheduleReconnect();
  }

  function scheduleReconnect(): void {
    if (closing || reconnectTimer) return;
    const delay = backoffMs;
    backoffMs = Math.min(backoffMs * 2, reconnectMaxMs);
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      attempt();
    }, delay);
    reconnectTimer.unref?.();
  }

  function attempt(): void {
    if (closing) return;
    generation += 1;
    const gen = generation;
    let current: MqttClient;
    try {
      current = connect(mqtt.url, clientOptions);
    } catch (error) {
      // A URL mqtt.js cannot use at all: the config schema should have caught it; keep trying, log once.
      lastError = error instanceof Error ? error : new Error(String(error));
      const failed = { cause: "unreachable" as const };
      if (!outage) {
        log.error({ url, err: lastError }, `mqtt broker ${url}: cannot connect (${describeError(error)})`);
        outage = { sinceMs: clock(), ...failed };
      }
      scheduleReconnect();
      return;
    }
    client = current;
    current.on("connect", () => {
      if (gen === generation) onConnected(current, gen);
    });
    current.on("error", (error) => {
      if (gen === generation) lastError = error;
    });
    current.on("close", () => {
      if (gen === generation) onClosed(current);
    });
  }

  attempt();

  function push(messages: readonly TelemetryMessage[]): void {
    if (messages.length === 0) return;
    for (const message of messages) buffer.push(message);
    scheduleDrain();
  }

  // What the control loop handed over, in order, not yet built into messages (the builder keeps state, so order
  // matters). Bounded like the buffer: should the event loop ever fall that far behind, building happens inline.
  const unbuilt: { what: string; build: () => readonly TelemetryMessage[] }[] = [];
  let buildScheduled = false;

  function buildPending(): void {
    buildScheduled = false;
    for (const item of unbuilt.splice(0)) {
      try {
        push(item.build());
      } catch (error) {
        log.warn({ err: error }, `telemetry: could not build the ${item.what}`);
      }
    }
  }

  function defer(what: string, build: () => readonly TelemetryMessage[]): void {
    unbuilt.push({ what, build });
    if (unbuilt.length >= limit) buildPending();
    else if (!buildScheduled) {
      buildScheduled = true;
      setImmediate(buildPending);
    }
  }

  return {
    onStep(state, event, commands) {
      defer("messages for a step", () => builder.fromStep(state, event, commands));
    },
    onSample(sample) {
      defer("meter message", () => builder.fromSample(sample));
    },
    onAuctionEvent(event) {
      defer("auction event", () => [auctionEventMessage(builder.topics, event)]);
    },
    stats(): TelemetryStats {
      buildPending();
      return {
        connected,
        buffered: buffer.size,
        maxBuffered: buffer.maxSize,
        bufferLimit: limit,
        published,
        dropped: { ...buffer.dropped },
      };
    },
    close(timeoutMs = 2_000): Promise<void> {
      buildPending();
      closing ??= shutDown(timeoutMs);
      return closing;
    },
  };

  async function shutDown(timeoutMs: number): Promise<void> {
    if (reconnectTimer) clearTimeout(reconnectTimer);
    reconnectTimer = undefined;
    const current = client;
    if (connected && current) {
      sendControl(current, generation, { topic: statusTopic, payload: "offline", retain: true, kind: "status" });
      scheduleDrain();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        idleWaiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
        notifyIfIdle();
      });
    }
    generation += 1;
    connected = false;
    client = undefined;
    if (current) {
      const graceful = buffer.inFlight === 0 && controlInFlight === 0;
      controlInFlight = 0;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          current.end(true);
          resolve();
        }, 500);
        current.end(!graceful, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (buffer.size > 0) log.warn({ url, unsent: buffer.size }, `mqtt: ${buffer.size} telemetry messages not delivered before shutdown`);
  }
}

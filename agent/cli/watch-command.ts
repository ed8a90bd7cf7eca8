/**
 * `trustpile watch`: the operator's live view of every charge point publishing under a topic prefix (DESIGN §5.3).
 * On a terminal the table is redrawn in place (at most ~4 times a second); into a pipe or file it prints one plain
 * line per change of a charge point (status, session, relay, fault, event at once; power and energy alone at most
 * every 5 s). `--once-after-ms N` collects for N ms, prints the table once and exits 0.
 */
import type { Command } from "commander";
import { connect as mqttConnect, type IClientOptions, type MqttClient } from "mqtt";
import { loadConfig } from "../config/load.ts";
import { readPasswordFile } from "../crypto/keystore.ts";
import { RuntimeError, UsageError, describeError } from "../errors.ts";
import { applyMessage, describeConnectFailure, emptyView, parseTopic, renderRowLine, renderView, watchSubscriptions, type CpRow, type WatchView } from "../telemetry/watch-view.ts";

interface WatchCommandOptions {
  url?: string;
  prefix?: string;
  config?: string;
  username?: string;
  passwordFile?: string;
  onceAfterMs?: string;
}

const DEFAULT_URL = "mqtt://127.0.0.1:1883";
const CONNECT_TIMEOUT_MS = 5_000;
const REDRAW_INTERVAL_MS = 250;
/** In line mode a charge point's changes of power and energy alone print at most this often. */
const METER_LINE_INTERVAL_MS = 5_000;

/** What makes a line worth printing at once: everything but the moving numbers (power, energy) and ages. */
function significantKey(row: CpRow): string {
  const event = row.lastEvent;
  return JSON.stringify([row.status, row.phase, row.sessionId, row.relayClosed, row.fault, event?.level, event?.message, event?.atMs]);
}

export function registerWatchCommand(program: Command): void {
  program
    .command("watch")
    .description("live view of every charge point's telemetry under a topic prefix (status, session, power, energy, relay, events)")
    .option("--url <url>", `MQTT broker (default: the config's mqtt.url, else ${DEFAULT_URL})`)
    .option("--prefix <prefix>", "topic prefix (default: the config's mqtt.topicPrefix, else trustpile)")
    .option("--config <file>", "take the broker URL, prefix and credentials from this agent config")
    .option("--username <name>", "MQTT username")
    .option("--password-file <file>", "MQTT password (first line)")
    .option("--once-after-ms <n>", "print the table once after N ms and exit (for scripts)")
    .action(async (options: WatchCommandOptions) => {
      const settings = resolveSettings(options);
      await watch(settings);
    });
}

interface WatchSettings {
  url: string;
  prefix: string;
  username?: string;
  password?: string;
  onceAfterMs?: number;
}

function resolveSettings(options: WatchCommandOptions): WatchSettings {
  const mqtt = options.config ? loadConfig(options.config).mqtt : undefined;
  const url = options.url ?? mqtt?.url ?? DEFAULT_URL;
  if (!/^(mqtts?|wss?):\/\/[^/]+/.test(url)) throw new UsageError(`--url: expected an mqtt(s):// or ws(s):// URL, got "${url}"`);
  const prefix = options.prefix ?? mqtt?.topicPrefix ?? "trustpile";
  if (!/^[^/#+\s]+(\/[^/#+\s]+)*$/.test(prefix)) {
    throw new UsageError(`--prefix: expected topic levels without +, # or empty levels, got "${prefix}"`);
  }
  const username = options.username ?? mqtt?.username;
  const password = options.passwordFile ? readPasswordFile(options.passwordFile) : mqtt?.password;
  let onceAfterMs: number | undefined;
  if (options.onceAfterMs !== undefined) {
    onceAfterMs = Number(options.onceAfterMs);
    if (!Number.isInteger(onceAfterMs) || onceAfterMs < 0 || onceAfterMs > 86_400_000) {
      throw new UsageError(`--once-after-ms: expected whole milliseconds 0..86400000, got "${options.onceAfterMs}"`);
    }
  }
  return {
    url,
    prefix,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(onceAfterMs !== undefined ? { onceAfterMs } : {}),
  };
}

/** Connects once (no retries): resolves when the broker accepted us, rejects with a one-sentence RuntimeError. */
function connectOnce(settings: WatchSettings): Promise<MqttClient> {
  const options: IClientOptions = {
    protocolVersion: 4,
    clientId: `trustpile-watch-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    clean: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    reconnectPeriod: 0,
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(settings.password !== undefined ? { password: settings.password } : {}),
  };
  return new Promise((resolve, reject) => {
    const client = mqttConnect(settings.url, options);
    let settled = false;
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      client.end(true);
      reject(new RuntimeError(message));
    };
    client.once("connect", () => {
      if (settled) return;
      settled = true;
      client.removeAllListeners("error");
      resolve(client);
    });
    client.on("error", (error) => fail(describeConnectFailure(settings.url, error)));
    client.once("close", () => fail(`cannot reach the MQTT broker at ${settings.url}: the connection closed before the broker answered`));
    setTimeout(() => fail(`cannot reach the MQTT broker at ${settings.url}: no answer within ${CONNECT_TIMEOUT_MS / 1000} s`), CONNECT_TIMEOUT_MS + 500).unref();
  });
}

function subscribe(client: MqttClient, topics: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    client.subscribe(topics, { qos: 1 }, (error, granted) => {
      if (error) return reject(new RuntimeError(`the MQTT broker refused the subscription: ${describeError(error)}`));
      const refused = (granted ?? []).filter((grant) => grant.qos === 128);
      if (refused.length > 0) {
        return reject(new RuntimeError(`the MQTT broker refused the subscription to ${refused.map((g) => g.topic).join(", ")}`));
      }
      resolve();
    });
  });
}

function endClient(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(false, {}, () => resolve()));
}

async function watch(settings: WatchSettings): Promise<void> {
  const client = await connectOnce(settings);
  let view: WatchView = emptyView(settings.prefix);
  const out = process.stdout;
  const tty = out.isTTY === true && settings.onceAfterMs === undefined;
  // A pseudo-terminal may report 0 columns.
  const width = (): number => (out.isTTY && out.columns > 0 ? out.columns : out.isTTY ? 120 : 200);
  let connection = "connected";
  const lastLine = new Map<string, { key: string; numbers: string; atMs: number }>();

  let redrawTimer: NodeJS.Timeout | undefined;
  let lastDrawMs = 0;
  const draw = (): void => {
    redrawTimer = undefined;
    lastDrawMs = Date.now();
    const status = `trustpile watch: ${settings.url}, prefix ${settings.prefix}/ (${connection}); Ctrl-C to quit`;
    out.write(`\x1b[H\x1b[2J${status}\n\n${renderView(view, Date.now(), { width: width() })}\n`);
  };
  const scheduleDraw = (): void => {
    if (redrawTimer) return;
    redrawTimer = setTimeout(draw, Math.max(0, lastDrawMs + REDRAW_INTERVAL_MS - Date.now()));
  };

  client.on("message", (topic, payload) => {
    const now = Date.now();
    const before = view;
    view = applyMessage(view, topic, payload, now);
    if (settings.onceAfterMs !== undefined || view.applied === before.applied) return;
    if (tty) return scheduleDraw();
    const parsed = parseTopic(view.prefix, topic);
    const row = parsed ? view.rows.get(parsed.chargePointId) : undefined;
    if (!row) return;
    const key = significantKey(row);
    const numbers = JSON.stringify([row.powerW, row.energyWh, row.sessionEnergyWh]);
    const last = lastLine.get(row.chargePointId);
    if (last && last.key === key && (last.numbers === numbers || now - last.atMs < METER_LINE_INTERVAL_MS)) return;
    lastLine.set(row.chargePointId, { key, numbers, atMs: now });
    out.write(`${new Date(now).toISOString()} ${renderRowLine(row, now)}\n`);
  });
  // After the first connection, ride out broker restarts instead of quitting.
  client.on("error", () => undefined);
  client.on("offline", () => {
    connection = "disconnected, reconnecting";
    if (tty) scheduleDraw();
    else if (settings.onceAfterMs === undefined) out.write(`${new Date().toISOString()} lost the broker at ${settings.url}; reconnecting\n`);
  });
  client.on("connect", () => {
    connection = "connected";
    if (tty) scheduleDraw();
  });
  client.options.reconnectPeriod = 2_000;

  try {
    await subscribe(client, watchSubscriptions(settings.prefix));
  } catch (error) {
    client.end(true);
    throw error;
  }

  if (settings.onceAfterMs !== undefined) {
    await new Promise((resolve) => setTimeout(resolve, settings.onceAfterMs));
    out.write(`${renderView(view, Date.now(), { width: width() })}\n`);
    await endClient(client);
    return;
  }

  if (tty) draw();
  else out.write(`watching ${settings.prefix}/+/{status,state,meter,session,event} at ${settings.url}; one line per change\n`);
  // Ages in the table move even without messages.
  const ticker = tty ? setInterval(scheduleDraw, 1_000) : undefined;
  await new Promise<void>((resolve) => {
    const quit = (): void => {
      process.off("SIGINT", quit);
      process.off("SIGTERM", quit);
      resolve();
    };
    process.once("SIGINT", quit);
    process.once("SIGTERM", quit);
  });
  if (ticker) clearInterval(ticker);
  if (redrawTimer) clearTimeout(redrawTimer);
  await endClient(client);
}

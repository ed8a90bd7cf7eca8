/**
 * The operator's view behind `trustpile watch`: a pure reducer from telemetry messages (DESIGN §5.3, payloads in
 * ./types.ts) to one row per charge point, and a plain-text renderer. Nothing here touches the network or the
 * clock; callers pass `nowMs`. Malformed input is counted in `ignored`, never thrown.
 */

export type Liveness = "online" | "offline" | "?";

export interface LastEvent {
  level: string;
  message: string;
  /** When the event happened: its `ts` when parseable, else when it arrived. */
  atMs: number;
}

export interface CpRow {
  chargePointId: string;
  status: Liveness;
  phase: string | null;
  sessionId: string | null;
  relayClosed: boolean | null;
  fault: string | null;
  powerW: number | null;
  /** The meter's import register (from `meter` messages). */
  energyWh: number | null;
  /** Energy of the current (or last) session: `state.energyWh`, `session.energyWh`, or register − meterStartWh. */
  sessionEnergyWh: number | null;
  /** Register at the start of the current session, to follow its energy between session messages. */
  meterStartWh: number | null;
  lastEvent: LastEvent | null;
  lastMessageMs: number;
}

export interface WatchView {
  /** Topic prefix without a trailing slash, e.g. `trustpile`. */
  prefix: string;
  rows: ReadonlyMap<string, CpRow>;
  /** Messages applied, and messages ignored (foreign topic, malformed payload). */
  applied: number;
  ignored: number;
}

export const WATCH_TOPICS = ["status", "state", "meter", "session", "event"] as const;
export type WatchTopic = (typeof WATCH_TOPICS)[number];

/** Subscriptions covering every charge point under `prefix`. */
export function watchSubscriptions(prefix: string): string[] {
  return WATCH_TOPICS.map((topic) => `${prefix}/+/${topic}`);
}

export function emptyView(prefix: string): WatchView {
  return { prefix: prefix.replace(/\/+$/, ""), rows: new Map(), applied: 0, ignored: 0 };
}

function emptyRow(chargePointId: string, nowMs: number): CpRow {
  return {
    chargePointId,
    status: "?",
    phase: null,
    sessionId: null,
    relayClosed: null,
    fault: null,
    powerW: null,
    energyWh: null,
    sessionEnergyWh: null,
    meterStartWh: null,
    lastEvent: null,
    lastMessageMs: nowMs,
  };
}

type Json = Record<string, unknown>;

function parseObject(text: string): Json | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : undefined;
  } catch {
    return undefined;
  }
}

function finiteNumber(value: unknown): number | null | undefined {
  if (value === null) return null;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  return undefined;
}

/** Session ids are uint256 on chain: accept a decimal string or a safe number. */
function idText(value: unknown): string | null | undefined {
  if (value === null) return null;
  if (typeof value === "string" && /^\d+$/.test(value)) return value;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return String(value);
  return undefined;
}

function optionalText(value: unknown): string | null | undefined {
  if (value === null) return null;
  if (typeof value === "string") return value;
  return undefined;
}

/** Phases in which energy may still flow, so a meter message moves the session's energy. */
const LIVE_PHASES = new Set(["energized", "suspended", "stopping"]);

function followSession(row: CpRow): void {
  if (row.phase !== null && LIVE_PHASES.has(row.phase) && row.meterStartWh !== null && row.energyWh !== null) {
    row.sessionEnergyWh = Math.max(row.sessionEnergyWh ?? 0, row.energyWh - row.meterStartWh);
  }
}

/** The row after one message, or undefined if the message makes no sense (then it is counted as ignored). */
function reduceRow(row: CpRow, topic: WatchTopic, text: string, nowMs: number): CpRow | undefined {
  const next: CpRow = { ...row, lastMessageMs: nowMs };
  if (topic === "status") {
    const status = text.trim();
    if (status !== "online" && status !== "offline") return undefined;
    next.status = status;
    return next;
  }
  const body = parseObject(text);
  if (!body) return undefined;
  switch (topic) {
    case "state": {
      const phase = optionalText(body.phase);
      const sessionId = idText(body.sessionId ?? null);
      if (typeof phase !== "string" || sessionId === undefined) return undefined;
      if (sessionId !== null && sessionId !== row.sessionId) {
        // A new session: what we knew of the previous one no longer applies.
        next.meterStartWh = null;
        next.sessionEnergyWh = null;
      }
      next.phase = phase;
      next.sessionId = sessionId;
      if (typeof body.relayClosed === "boolean") next.relayClosed = body.relayClosed;
      const fault = optionalText(body.fault ?? null);
      if (fault !== undefined) next.fault = fault;
      // `state.energyWh` is the current session's energy (the register is on `meter`); without a session the row
      // keeps the last session's energy.
      const energyWh = finiteNumber(body.energyWh);
      if (typeof energyWh === "number") next.sessionEnergyWh = energyWh;
      const powerW = finiteNumber(body.powerW);
      if (typeof powerW === "number") next.powerW = powerW;
      followSession(next);
      return next;
    }
    case "meter": {
      const energyWh = finiteNumber(body.energyWh);
      const powerW = finiteNumber(body.powerW);
      if (typeof energyWh !== "number" && typeof powerW !== "number") return undefined;
      if (typeof energyWh === "number") next.energyWh = energyWh;
      if (typeof powerW === "number") next.powerW = powerW;
      followSession(next);
      return next;
    }
    case "session": {
      const phase = optionalText(body.phase);
      const sessionId = idText(body.sessionId);
      if (typeof phase !== "string" || typeof sessionId !== "string") return undefined;
      if (sessionId !== row.sessionId) next.meterStartWh = null;
      const meterStartWh = finiteNumber(body.meterStartWh);
      if (typeof meterStartWh === "number") next.meterStartWh = meterStartWh;
      const energyWh = finiteNumber(body.energyWh);
      if (typeof energyWh === "number") next.sessionEnergyWh = energyWh;
      else if (sessionId !== row.sessionId) next.sessionEnergyWh = null;
      // A session that left the core ("closed") or went back to idle is over; the row keeps its energy as that
      // of the last session.
      const over = phase === "closed" || phase === "idle";
      next.phase = over ? "idle" : phase;
      next.sessionId = over ? null : sessionId;
      return next;
    }
    case "event": {
      const level = optionalText(body.level);
      const message = optionalText(body.message);
      if (typeof level !== "string" || typeof message !== "string") return undefined;
      const tsMs = typeof body.ts === "string" ? Date.parse(body.ts) : Number.NaN;
      next.lastEvent = { level, message, atMs: Number.isFinite(tsMs) ? tsMs : nowMs };
      return next;
    }
    default:
      return undefined;
  }
}

/** Splits `<prefix>/<chargePointId>/<topic>`; undefined for anything else. */
export function parseTopic(prefix: string, topic: string): { chargePointId: string; topic: WatchTopic } | undefined {
  const head = `${prefix}/`;
  if (!topic.startsWith(head)) return undefined;
  const rest = topic.slice(head.length).split("/");
  if (rest.length !== 2) return undefined;
  const [chargePointId, leaf] = rest as [string, string];
  if (chargePointId === "" || !(WATCH_TOPICS as readonly string[]).includes(leaf)) return undefined;
  return { chargePointId, topic: leaf as WatchTopic };
}

/** The view after one message. Returns a new view; the old one is left untouched. */
export function applyMessage(view: WatchView, topic: string, payload: string | Uint8Array, nowMs: number): WatchView {
  const ignore = (): WatchView => ({ ...view, ignored: view.ignored + 1 });
  const parsed = parseTopic(view.prefix, topic);
  if (!parsed) return ignore();
  const text = typeof payload === "string" ? payload : Buffer.from(payload).toString("utf8");
  const row = view.rows.get(parsed.chargePointId) ?? emptyRow(parsed.chargePointId, nowMs);
  const next = reduceRow(row, parsed.topic, text, nowMs);
  if (!next) return ignore();
  const rows = new Map(view.rows);
  rows.set(parsed.chargePointId, next);
  return { ...view, rows, applied: view.applied + 1 };
}

/** `12s`, `4m`, `3h`, `2d`: how long ago, coarse enough to stay short. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export const COLUMNS = ["charge point", "status", "session", "power W", "energy Wh", "session Wh", "relay", "last event"] as const;

const DASH = "-";

function numberCell(value: number | null): string {
  return value === null ? DASH : String(Math.round(value));
}

/** The cells of one row, in `COLUMNS` order. */
export function rowCells(row: CpRow, nowMs: number): string[] {
  let session = row.phase ?? DASH;
  if (row.sessionId !== null) session += ` #${row.sessionId}`;
  if (row.fault) session += ` (fault: ${row.fault})`;
  const relay = row.relayClosed === null ? DASH : row.relayClosed ? "closed" : "open";
  const event = row.lastEvent ? `${row.lastEvent.level}: ${row.lastEvent.message} (${formatAge(nowMs - row.lastEvent.atMs)} ago)` : DASH;
  return [
    row.chargePointId,
    row.status,
    session,
    numberCell(row.powerW),
    numberCell(row.energyWh),
    numberCell(row.sessionEnergyWh),
    relay,
    event,
  ];
}

function fit(line: string, width: number): string {
  if (line.length <= width) return line;
  return width <= 1 ? line.slice(0, width) : `${line.slice(0, width - 1)}…`;
}

/** The whole table: a header, one row per charge point (sorted by id), and a footer with the tallies. */
export function renderView(view: WatchView, nowMs: number, options: { width?: number } = {}): string {
  const width = Math.max(20, options.width ?? 120);
  const rows = [...view.rows.values()].sort((a, b) => (a.chargePointId < b.chargePointId ? -1 : a.chargePointId > b.chargePointId ? 1 : 0));
  const table = [[...COLUMNS], ...rows.map((row) => rowCells(row, nowMs))];
  const widths = COLUMNS.map((_, i) => Math.max(...table.map((cells) => (cells[i] ?? "").length)));
  const numeric = new Set([3, 4, 5]);
  const lines = table.map((cells) =>
    fit(
      cells
        .map((cell, i) => (i === cells.length - 1 ? cell : numeric.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
      width,
    ),
  );
  if (rows.length === 0) lines.push(`(no charge point has published under ${view.prefix}/ yet)`);
  const online = rows.filter((row) => row.status === "online").length;
  lines.push(
    fit(`${rows.length} charge point(s) under ${view.prefix}/, ${online} online; ${view.applied} message(s), ${view.ignored} ignored`, width),
  );
  return lines.join("\n");
}

/** One plain line for one charge point, for logs and pipes: `cp-1 online energized #3 7360 W 1234 Wh …`. */
export function renderRowLine(row: CpRow, nowMs: number): string {
  const [id, status, session, powerW, energyWh, sessionWh, relay, event] = rowCells(row, nowMs);
  return `${id} ${status} ${session} power ${powerW} W, meter ${energyWh} Wh, session ${sessionWh} Wh, relay ${relay}, last event ${event}`;
}

/** One sentence for a failed first connection to a broker (mqtt.js's CONNACK codes and socket errors). */
export function describeConnectFailure(url: string, error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 4 || code === 5) {
    return `the MQTT broker at ${url} refused the login: ${code === 4 ? "bad username or password" : "not authorized"}`;
  }
  const reasons: Record<string, string> = {
    ECONNREFUSED: "connection refused",
    ENOTFOUND: "unknown host",
    EHOSTUNREACH: "host unreachable",
    ETIMEDOUT: "timed out",
    ECONNRESET: "connection reset",
  };
  const reason = typeof code === "string" && reasons[code] ? reasons[code] : error instanceof Error ? error.message : String(error);
  return `cannot reach the MQTT broker at ${url}: ${reason}`;
}

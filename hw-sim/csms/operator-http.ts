/**
 * The operator's console of the CSMS simulator over plain HTTP on the CSMS port, for an installer driving a pile from
 * a shell (`curl`). Loopback clients only: the port may face the LAN for piles, and whoever can reach this can
 * start and stop charging.
 *
 *   GET  /operator                                   {online, connected: [{identity, protocol}]}
 *   GET  /operator/<id>/conversation                 every recorded message of that charge point
 *   POST /operator/<id>/remote-start          {"idTag":"…","connectorId":1}
 *   POST /operator/<id>/remote-stop           {"transactionId":41 | "tx-1"}
 *   POST /operator/<id>/change-configuration  {"key":"HeartbeatInterval","value":"60"}
 *   POST /operator/<id>/get-configuration     {"keys":["HeartbeatInterval"]}
 *   POST /operator/<id>/trigger               {"message":"StatusNotification","connectorId":1}
 *   POST /operator/<id>/reset                 {"kind":"Soft"|"Hard"}
 *   POST /operator/<id>/change-availability   {"availability":"Inoperative","connectorId":0}
 *   POST /operator/<id>/data-transfer         {"vendorId":"…","messageId":"…","data":"…"}
 *   POST /operator/boot                       {"status":"Rejected","intervalS":60}
 *   POST /operator/reply-delay                {"delayMs":5000}
 *   POST /operator/offline                    {"forMs":30000}  network outage: this port closes (console included)
 *                                                                and opens again after forMs
 * Answers `{"answer": <the pile's answer>}`; errors are `{"error": "one sentence"}` with 400 bad input, 403 not
 * loopback, 404 unknown route or charge point, 502 the pile answered with a CALLERROR (its `code` included) or not at all.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { CsmsSim } from "./index.ts";

const MAX_BODY_BYTES = 16 * 1024;

type Operator = Omit<CsmsSim, "stop">;

/** An outage longer than this is more likely a typo than a test; stop the simulator instead. */
const MAX_OFFLINE_MS = 3_600_000;

class HttpError extends Error {
  readonly status: number;
  readonly code: string | undefined;

  constructor(status: number, message: string, code?: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

function isLoopback(address: string | undefined): boolean {
  return address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1";
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, `expected a JSON object body, got ${show(text.slice(0, 80))}`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, `expected a JSON object body, got ${show(body)}`);
  }
  return body as Record<string, unknown>;
}

function text(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== "string" || value === "") throw new HttpError(400, `${key}: expected a non-empty string, got ${show(value)}`);
  return value;
}

function optionalText(body: Record<string, unknown>, key: string): string | undefined {
  return body[key] === undefined ? undefined : text(body, key);
}

function optionalInteger(body: Record<string, unknown>, key: string): number | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new HttpError(400, `${key}: expected an integer >= 0, got ${show(value)}`);
  }
  return value;
}

type Action = (operator: Operator, identity: string, body: Record<string, unknown>) => Promise<Record<string, unknown>>;

const ACTIONS: Readonly<Record<string, Action>> = {
  "remote-start": (op, id, body) => op.remoteStart(id, text(body, "idTag"), optionalInteger(body, "connectorId")),
  "remote-stop": (op, id, body) => {
    const transactionId = body.transactionId;
    if (typeof transactionId !== "string" && typeof transactionId !== "number") {
      throw new HttpError(400, `transactionId: expected a number (1.6) or a string (2.0.1), got ${show(transactionId)}`);
    }
    return op.remoteStop(id, transactionId);
  },
  "change-configuration": (op, id, body) => op.changeConfiguration(id, text(body, "key"), text(body, "value")),
  "get-configuration": (op, id, body) => {
    const keys = body.keys ?? [];
    if (!Array.isArray(keys) || !keys.every((key): key is string => typeof key === "string")) {
      throw new HttpError(400, `keys: expected an array of strings, got ${show(keys)}`);
    }
    return op.getConfiguration(id, keys);
  },
  trigger: (op, id, body) => op.trigger(id, text(body, "message"), optionalInteger(body, "connectorId")),
  reset: (op, id, body) => {
    const kind = text(body, "kind");
    if (kind !== "Soft" && kind !== "Hard") throw new HttpError(400, `kind: expected "Soft" or "Hard", got ${show(kind)}`);
    return op.reset(id, kind);
  },
  "change-availability": (op, id, body) => {
    const availability = text(body, "availability");
    if (availability !== "Operative" && availability !== "Inoperative") {
      throw new HttpError(400, `availability: expected "Operative" or "Inoperative", got ${show(availability)}`);
    }
    return op.changeAvailability(id, availability, optionalInteger(body, "connectorId") ?? 0);
  },
  "data-transfer": (op, id, body) =>
    op.dataTransfer(id, text(body, "vendorId"), optionalText(body, "messageId"), optionalText(body, "data")),
};

function send(response: ServerResponse, status: number, body: unknown): void {
  response.statusCode = status;
  response.setHeader("content-type", "application/json; charset=utf-8");
  response.end(`${JSON.stringify(body)}\n`);
}

/** Turns what an operator call threw into the HTTP answer: our input checks are 400, the pile's failures 502. */
function failure(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof RangeError) return new HttpError(400, error.message);
  const message = error instanceof Error ? error.message : String(error);
  if (/is not connected/.test(message)) return new HttpError(404, message);
  const rpcCode = (error as { rpcErrorCode?: unknown } | null)?.rpcErrorCode;
  if (typeof rpcCode === "string") return new HttpError(502, `the pile answered with CALLERROR ${rpcCode}: ${message}`, rpcCode);
  return new HttpError(502, `the pile did not answer: ${message}`);
}

/** Runs after the answer went out: the outage closes the very socket the request came on. */
function scheduleOutage(operator: Operator, forMs: number): void {
  void operator.goOffline().then(() => {
    setTimeout(() => void operator.goOnline().catch(() => undefined), forMs).unref();
  });
}

interface Routed {
  status: number;
  body: unknown;
  after?: () => void;
}

async function route(operator: Operator, request: IncomingMessage): Promise<Routed> {
  const url = new URL(request.url ?? "/", "http://localhost");
  const parts = url.pathname.split("/").filter((part) => part !== "").map((part) => decodeURIComponent(part));
  if (parts[0] !== "operator") throw new HttpError(404, `no route ${url.pathname}; the operator console is under /operator`);
  const method = request.method ?? "GET";

  if (parts.length === 1) {
    if (method !== "GET") throw new HttpError(405, `${url.pathname} answers GET only`);
    const connected = operator.connected().map((identity) => ({ identity, protocol: operator.protocolOf(identity) }));
    return { status: 200, body: { online: operator.online, connected } };
  }
  if (parts.length === 2 && parts[1] === "offline") {
    if (method !== "POST") throw new HttpError(405, `${url.pathname} answers POST only`);
    const forMs = optionalInteger(await readJson(request), "forMs");
    if (forMs === undefined || forMs < 1 || forMs > MAX_OFFLINE_MS) {
      throw new HttpError(400, `forMs: expected an integer 1..${MAX_OFFLINE_MS} ms, got ${show(forMs ?? null)}`);
    }
    return { status: 200, body: { offlineForMs: forMs }, after: () => scheduleOutage(operator, forMs) };
  }
  if (parts.length === 2 && (parts[1] === "boot" || parts[1] === "reply-delay")) {
    if (method !== "POST") throw new HttpError(405, `${url.pathname} answers POST only`);
    const body = await readJson(request);
    try {
      if (parts[1] === "boot") {
        const status = body.status;
        const intervalS = optionalInteger(body, "intervalS");
        operator.setBoot({
          ...(status !== undefined ? { status: status as "Accepted" } : {}),
          ...(intervalS !== undefined ? { intervalS } : {}),
        });
      } else {
        const delayMs = optionalInteger(body, "delayMs");
        if (delayMs === undefined) throw new HttpError(400, "delayMs: expected an integer >= 0, got nothing");
        operator.setReplyDelay(delayMs);
      }
    } catch (error) {
      throw failure(error);
    }
    return { status: 200, body: { ok: true } };
  }
  const [, identity, name] = parts;
  if (identity !== undefined && name === "conversation" && parts.length === 3) {
    if (method !== "GET") throw new HttpError(405, `${url.pathname} answers GET only`);
    return { status: 200, body: operator.conversation(identity) };
  }
  const action = name !== undefined && parts.length === 3 ? ACTIONS[name] : undefined;
  if (identity === undefined || action === undefined) {
    throw new HttpError(404, `no route ${url.pathname}; actions are ${Object.keys(ACTIONS).join(", ")}`);
  }
  if (method !== "POST") throw new HttpError(405, `${url.pathname} answers POST only`);
  const body = await readJson(request);
  try {
    return { status: 200, body: { answer: await action(operator, identity, body) } };
  } catch (error) {
    throw failure(error);
  }
}

export async function handleOperatorRequest(operator: Operator, request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (!isLoopback(request.socket.remoteAddress)) {
    send(response, 403, { error: "the operator console answers loopback clients only" });
    return;
  }
  try {
    const { status, body, after } = await route(operator, request);
    send(response, status, body);
    if (after) response.once("finish", after);
  } catch (error) {
    const problem = failure(error);
    send(response, problem.status, { error: problem.message, ...(problem.code !== undefined ? { code: problem.code } : {}) });
  }
}

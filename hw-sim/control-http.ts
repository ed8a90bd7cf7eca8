/**
 * The bench's remote control: plug the EV, inject faults, look at everything, over HTTP on loopback only (anyone
 * who can reach it can weld the contactor, so it is never exposed beyond the machine).
 *
 *   GET  /state                 {atMs, ev, relay, meter, faults}
 *   POST /ev/plug|unplug|pause|resume        -> {ev}
 *   POST /relay/energize|release             -> {relay}   drives the coil by hand when no agent is attached;
 *                                                          the agent's next change on the relay line wins
 *   POST /faults  {"meterOffline":true} {"meterReplyDelayMs":800} {"meterCrcErrors":true}
 *                 {"meterException":4} / {"meterException":null} {"meterEnergyReset":true}
 *                 {"relay":"weld"|"failToClose"|"none"} {"clear":true}     -> {faults}
 * A body may combine keys; it is checked whole before anything changes, and `clear` applies first.
 * Errors are JSON `{"error": "one sentence"}`: 400 bad input, 404 unknown route, 405 wrong method, 413 body too big.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { SimBoard } from "./board.ts";

export const CONTROL_HOST = "127.0.0.1";
const MAX_BODY_BYTES = 16 * 1024;
const MAX_REPLY_DELAY_MS = 600_000;

export interface ControlServerOptions {
  board: SimBoard;
  /** 0 or absent: any free port. */
  port?: number;
}

export interface ControlServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const FAULT_KEYS = [
  "meterOffline",
  "meterReplyDelayMs",
  "meterCrcErrors",
  "meterException",
  "meterEnergyReset",
  "relay",
  "clear",
] as const;
type FaultKey = (typeof FAULT_KEYS)[number];
const RELAY_FAULTS = ["weld", "failToClose", "none"] as const;

function isFaultKey(key: string): key is FaultKey {
  return (FAULT_KEYS as readonly string[]).includes(key);
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

function expectBoolean(key: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new HttpError(400, `${key}: expected true or false, got ${show(value)}`);
  return value;
}

function expectTrue(key: string, value: unknown): void {
  if (value !== true) throw new HttpError(400, `${key}: expected true, got ${show(value)}`);
}

/** Checks a whole /faults body and returns the changes to apply, in order; applies nothing. */
function planFaults(board: SimBoard, body: unknown): (() => void)[] {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, `expected a JSON object of faults such as {"meterOffline":true}, got ${show(body)}`);
  }
  const entries = Object.entries(body);
  if (entries.length === 0) {
    throw new HttpError(400, `expected at least one fault, one of ${FAULT_KEYS.join(", ")}`);
  }
  const { faults } = board;
  const first: (() => void)[] = [];
  const rest: (() => void)[] = [];
  for (const [key, value] of entries) {
    if (!isFaultKey(key)) {
      throw new HttpError(400, `unknown fault "${key}", expected one of ${FAULT_KEYS.join(", ")}`);
    }
    switch (key) {
      case "clear":
        expectTrue(key, value);
        first.push(() => faults.clear());
        break;
      case "meterOffline": {
        const on = expectBoolean(key, value);
        rest.push(() => faults.meterOffline(on));
        break;
      }
      case "meterCrcErrors": {
        const on = expectBoolean(key, value);
        rest.push(() => faults.meterCrcErrors(on));
        break;
      }
      case "meterReplyDelayMs": {
        if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_REPLY_DELAY_MS) {
          throw new HttpError(400, `${key}: expected an integer ms 0..${MAX_REPLY_DELAY_MS}, got ${show(value)}`);
        }
        rest.push(() => faults.meterReplyDelayMs(value));
        break;
      }
      case "meterException": {
        if (value !== null && (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 255)) {
          throw new HttpError(400, `${key}: expected a Modbus exception code 1..255 or null, got ${show(value)}`);
        }
        rest.push(() => faults.meterException(value ?? undefined));
        break;
      }
      case "meterEnergyReset":
        expectTrue(key, value);
        rest.push(() => faults.meterEnergyReset());
        break;
      case "relay": {
        if (!(RELAY_FAULTS as readonly unknown[]).includes(value)) {
          throw new HttpError(400, `relay: expected one of ${RELAY_FAULTS.map((f) => `"${f}"`).join(", ")}, got ${show(value)}`);
        }
        rest.push(() => {
          if (value === "weld") faults.relayWeld();
          else if (value === "failToClose") faults.relayFailToClose();
          else board.relay.clearFaults();
        });
        break;
      }
    }
  }
  return [...first, ...rest];
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `request body larger than ${MAX_BODY_BYTES} bytes`));
        request.resume();
        return;
      }
      chunks.push(chunk);
    });
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

async function jsonBody(request: IncomingMessage): Promise<unknown> {
  const text = await readBody(request);
  if (text.trim() === "") throw new HttpError(400, `expected a JSON body such as {"meterOffline":true}, got an empty body`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, `expected a JSON body such as {"meterOffline":true}, got invalid JSON`);
  }
}

type Handler = (request: IncomingMessage) => Promise<unknown> | unknown;

function routes(board: SimBoard): Map<string, Map<string, Handler>> {
  const ev = (act: () => void): Handler => () => {
    act();
    return { ev: board.state().ev };
  };
  const coil = (energize: boolean): Handler => () => {
    board.relay.command(energize);
    return { relay: board.relay.state() };
  };
  const table: [string, string, Handler][] = [
    ["GET", "/state", () => board.state()],
    ["POST", "/ev/plug", ev(() => board.ev.plug())],
    ["POST", "/ev/unplug", ev(() => board.ev.unplug())],
    ["POST", "/ev/pause", ev(() => board.ev.pause())],
    ["POST", "/ev/resume", ev(() => board.ev.resume())],
    ["POST", "/relay/energize", coil(true)],
    ["POST", "/relay/release", coil(false)],
    [
      "POST",
      "/faults",
      async (request) => {
        for (const apply of planFaults(board, await jsonBody(request))) apply();
        return { faults: board.faults.active() };
      },
    ],
  ];
  const byPath = new Map<string, Map<string, Handler>>();
  for (const [method, path, handler] of table) {
    const methods = byPath.get(path) ?? new Map<string, Handler>();
    methods.set(method, handler);
    byPath.set(path, methods);
  }
  return byPath;
}

function send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  response.end(text);
}

/** Starts the control endpoint on 127.0.0.1. */
export function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const table = routes(options.board);
  const routeList = [...table].flatMap(([path, methods]) => [...methods.keys()].map((method) => `${method} ${path}`));

  const server = createServer((request, response) => {
    const method = request.method ?? "GET";
    const path = new URL(request.url ?? "/", `http://${CONTROL_HOST}`).pathname;
    const methods = table.get(path);
    const handler = methods?.get(method);
    if (!methods) {
      request.resume();
      send(response, 404, { error: `no route ${method} ${path}, expected one of ${routeList.join(", ")}` });
      return;
    }
    if (!handler) {
      request.resume();
      const allowed = [...methods.keys()].join(", ");
      send(response, 405, { error: `${path} accepts ${allowed}, got ${method}` }, { allow: allowed });
      return;
    }
    Promise.resolve()
      .then(() => handler(request))
      .then(
        (body) => send(response, 200, body),
        (error: unknown) => {
          if (error instanceof HttpError) send(response, error.status, { error: error.message });
          else if (error instanceof RangeError) send(response, 400, { error: error.message });
          else send(response, 500, { error: error instanceof Error ? error.message : String(error) });
        },
      );
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, CONTROL_HOST, () => {
      server.off("error", reject);
      const { port } = server.address() as AddressInfo;
      resolve({
        port,
        url: `http://${CONTROL_HOST}:${port}`,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((error) => (error ? fail(error) : done()));
            // Keep-alive clients (fetch) would otherwise hold close() open until they time out.
            server.closeAllConnections();
          }),
      });
    });
  });
}

/**
 * The OCPP-J transport (the only file that touches ocpp-rpc's client): one RPCClient in strict mode, so every
 * frame in either direction is checked against the official JSON schemas of the negotiated version, and a bad
 * CSMS call is answered with the right CallError (FormationViolation, TypeConstraintViolation, NotImplemented…)
 * without reaching a handler.
 *
 * Reconnects are ours, not ocpp-rpc's: its automatic reconnect starts only after a first successful connection,
 * and a CSMS that is down when the pile boots must not leave the pile offline for good (nor hold the agent up:
 * `connectOcpp` returns at once and connects in the background, with capped exponential back-off).
 *
 * Security profile 1: HTTP Basic auth, user = identity, password = `ocpp.password`. Profile 2: the same over wss://
 * with the CSMS's CA from `ocpp.caFile`.
 */
import { readFileSync } from "node:fs";
import { RPCClient, createRPCError, type IHandlersOption } from "ocpp-rpc";
import type { Logger } from "../logging.ts";
import { describeError } from "../errors.ts";

export type OcppVersion = "1.6" | "2.0.1";

/** Defaults of the `ocpp` config keys a caller may leave out (the schema fills the same values in). */
export const OCPP_DEFAULTS = { vendor: "trustpile", model: "trustpile-cp", reconnectMaxDelayS: 60 } as const;

export const SUBPROTOCOL: Record<OcppVersion, string> = { "1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1" };

export interface OcppConnectionOptions {
  /** ws:// or wss:// base URL; the identity is appended as the last path segment. */
  url: string;
  /** The charge point's identity (chargePointId). */
  identity: string;
  version: OcppVersion;
  /** Basic-auth password (security profiles 1 and 2). Never logged. */
  password?: string;
  /** PEM of the CA that signed the CSMS's certificate (wss:// with a private CA). */
  caPem?: string | Buffer;
  log: Logger;
  /** Reconnect back-off: first wait and cap, ms. Defaults 1 000 and 60 000. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  /** How long a call waits for its reply (`ConnectionTimeOut`-like); default 30 000 ms. */
  callTimeoutMs?: number;
  /** WebSocket ping interval in s (`WebSocketPingInterval`); 0 disables pings. Default 60. */
  pingIntervalS?: number;
}

/** A CSMS-initiated call's parameters as ocpp-rpc delivers them, after strict validation. */
export type CallParams = Record<string, unknown>;
export type CallHandler = (params: CallParams, context: { method: string; messageId: string | undefined }) => Promise<Record<string, unknown>> | Record<string, unknown>;

export interface OcppConnection {
  readonly version: OcppVersion;
  /** True while the WebSocket is open. */
  isOnline(): boolean;
  /**
   * Sends a call and resolves with the CSMS's (validated) reply. Rejects with `OfflineError` when not connected —
   * nothing is buffered here, the transaction queue owns persistence — and with ocpp-rpc's RPCError on a CallError.
   */
  call(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Registers the handler of a CSMS-initiated call; anything it throws becomes a CallError, never a crash. */
  handle(method: string, handler: CallHandler): void;
  /** Called at every successful (re)connect. */
  onOpen(listener: () => void): void;
  /** Called when an open connection is lost. */
  onClose(listener: () => void): void;
  /** Closes for good: no reconnect afterwards. */
  close(): Promise<void>;
}

/** Reads `ocpp.caFile` (already resolved against the config file), with a one-sentence error naming the key. */
export function readCaFile(caFile: string): Buffer {
  try {
    return readFileSync(caFile);
  } catch (error) {
    throw new Error(`ocpp.caFile: cannot read ${caFile} (${describeError(error)}); expected a PEM file with the CSMS's CA certificate`, { cause: error });
  }
}

export class OfflineError extends Error {
  constructor(method: string) {
    super(`cannot send ${method}: not connected to the CSMS`);
    this.name = "OfflineError";
  }
}

const CERTIFICATE_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** One sentence an installer can act on, for why a connection attempt failed. */
export function describeConnectError(error: unknown, options: { url: string; identity: string }): string {
  const code = (error as { code?: unknown } | null)?.code;
  const endpoint = `${options.url.replace(/\/+$/, "")}/${options.identity}`;
  if (code === 401 || code === 403) {
    return `the CSMS at ${endpoint} refused the credentials of charge point ${options.identity} (HTTP ${code}); check ocpp.password and that the CSMS knows this identity`;
  }
  if (typeof code === "number") {
    return `the CSMS at ${endpoint} answered the WebSocket upgrade with HTTP ${code}; expected 101 Switching Protocols (check ocpp.url and ocpp.version)`;
  }
  if (typeof code === "string" && CERTIFICATE_CODES.has(code)) {
    return `the CSMS at ${endpoint} presented a certificate this pile does not trust (${code}); check ocpp.caFile and the certificate's host name`;
  }
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EHOSTUNREACH" || code === "ETIMEDOUT" || code === "EAI_AGAIN") {
    return `the CSMS at ${endpoint} is unreachable (${code}); retrying with back-off`;
  }
  return `cannot connect to the CSMS at ${endpoint}: ${describeError(error)}`;
}

export function connectOcpp(options: OcppConnectionOptions): OcppConnection {
  const { log } = options;
  const base = options.url.replace(/\/+$/, "");
  const initialMs = options.reconnectInitialMs ?? 1_000;
  const maxMs = options.reconnectMaxMs ?? 60_000;
  const client = new RPCClient({
    endpoint: base,
    identity: options.identity,
    protocols: [SUBPROTOCOL[options.version]],
    strictMode: true,
    strictModeValidators: [],
    reconnect: false,
    maxReconnects: 0,
    callTimeoutMs: options.callTimeoutMs ?? 30_000,
    pingIntervalMs: (options.pingIntervalS ?? 60) * 1000,
    deferPingsOnActivity: true,
    respondWithDetailedErrors: false,
    callConcurrency: 1,
    maxBadMessages: Infinity,
    password: options.password ?? null,
    wsOpts: options.caPem === undefined ? {} : { ca: options.caPem },
    headers: {},
    backoff: { initialDelay: initialMs, maxDelay: maxMs, factor: 2, randomisationFactor: 0.1 },
  });

  const openListeners: Array<() => void> = [];
  const closeListeners: Array<() => void> = [];
  let closing = false;
  let wasOpen = false;
  let failures = 0;
  let lastError: string | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;

  client.on("open", () => {
    wasOpen = true;
    failures = 0;
    lastError = undefined;
    log.info({ url: base, identity: options.identity, protocol: client.protocol }, "ocpp connected");
    for (const listener of openListeners) safely(listener);
  });
  client.on("close", () => {
    if (wasOpen) {
      wasOpen = false;
      log.warn({ url: base }, "ocpp connection lost");
      for (const listener of closeListeners) safely(listener);
    }
    scheduleReconnect();
  });
  client.on("badMessage", (event: { error?: unknown }) => log.warn({ error: describeError(event.error) }, "ocpp: bad frame from the CSMS answered with a CallError"));
  client.on("strictValidationFailure", (event: { error?: unknown }) => log.warn({ error: describeError(event.error) }, "ocpp: a frame failed schema validation"));
  client.on("socketError", (error: unknown) => log.debug({ error: describeError(error) }, "ocpp socket error"));

  function safely(listener: () => void): void {
    try {
      listener();
    } catch (error) {
      log.error({ err: error }, "ocpp connection listener failed");
    }
  }

  function scheduleReconnect(): void {
    if (closing || reconnectTimer) return;
    const delayMs = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 20));
    failures += 1;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      attempt();
    }, delayMs);
    reconnectTimer.unref?.();
  }

  function attempt(): void {
    if (closing) return;
    client.connect().catch((error: unknown) => {
      const message = describeConnectError(error, { url: base, identity: options.identity });
      // One line per distinct failure: a CSMS down for hours would otherwise fill the log with the same sentence.
      if (message !== lastError) log.warn({ url: base }, message);
      lastError = message;
      // ocpp-rpc emits "close" on a failed connect, which schedules the next attempt.
    });
  }

  attempt();

  return {
    version: options.version,
    isOnline: () => client.state === RPCClient.OPEN,
    async call(method, params) {
      if (client.state !== RPCClient.OPEN) throw new OfflineError(method);
      const reply = await client.call(method, params);
      return (reply ?? {}) as Record<string, unknown>;
    },
    handle(method, handler) {
      client.handle(method, async ({ params, messageId }: IHandlersOption) => {
        try {
          return await handler((params ?? {}) as CallParams, { method, messageId });
        } catch (error) {
          if (error instanceof Error && "rpcErrorCode" in error) throw error;
          log.error({ method, err: error }, "ocpp handler failed; answering InternalError");
          throw createRPCError("InternalError", `${method} could not be handled`);
        }
      });
    },
    onOpen: (listener) => void openListeners.push(listener),
    onClose: (listener) => void closeListeners.push(listener),
    async close() {
      closing = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      reconnectTimer = undefined;
      await client.close({ code: 1000, reason: "charge point stopping", force: false }).catch(() => undefined);
    },
  };
}

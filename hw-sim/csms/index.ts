/**
 * A CSMS simulator an installer (or a test) points a pile at: OCPP 1.6J and 2.0.1 on one port, strict schema
 * validation both ways, optional security profile 1 (basic auth) and 2 (TLS), a recorded and logged conversation per
 * charge point, operator actions (in-process, or over HTTP on the same port from loopback), and fault switches
 * (offline, boot rejection, slow replies).
 *
 * The listener is our own http/https server handing WebSocket upgrades to ocpp-rpc's RPCServer: an RPCServer that
 * listened itself cannot listen again once closed, and could not serve TLS.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import { timingSafeEqual } from "node:crypto";
import ocppRpc from "ocpp-rpc";
import type * as ServerClientModule from "ocpp-rpc/lib/server-client.js";
import { pino, type Logger } from "pino";
import { realClock, type Clock } from "../clock.ts";
import { handleOperatorRequest } from "./operator-http.ts";
import { Conversation, type CsmsMessage, type CsmsReply, type OcppProtocol } from "./conversation.ts";
import {
  dialects,
  redactForLog,
  type AnswerContext,
  type Availability,
  type DataTransferAnswer,
  type DataTransferRequest,
  type OperatorCall,
  type RegistrationStatus,
  type ResetKind,
} from "./dialects.ts";

export type { CsmsMessage, CsmsReply, OcppProtocol } from "./conversation.ts";
export type { Availability, DataTransferAnswer, DataTransferRequest, RegistrationStatus, ResetKind } from "./dialects.ts";

// ocpp-rpc spreads its error classes into module.exports, which Node's named-export detection for CommonJS misses.
const { RPCServer, TimeoutError } = ocppRpc;

/** Server preference when a pile offers both: the newer version first. */
export const CSMS_PROTOCOLS: readonly OcppProtocol[] = ["ocpp2.0.1", "ocpp1.6"];

export interface CsmsSimOptions {
  /** TCP port; 0 lets the OS pick. Default 0. */
  port?: number;
  /** Listen address. Default 127.0.0.1; "0.0.0.0" lets a pile on the LAN connect. */
  host?: string;
  /** URL path before the identity, as in `ws://host:port/ocpp/cp-001`. Default "/ocpp". */
  path?: string;
  /** Security profile 1: charge point identity → basic-auth password. Without it any identity is accepted. */
  passwords?: Readonly<Record<string, string>>;
  /** Security profile 2: serve wss:// with this certificate chain and key (PEM). */
  tls?: { certPem: string | Buffer; keyPem: string | Buffer };
  /** BootNotification answer. Default Accepted with a 300 s heartbeat interval. */
  boot?: { status?: RegistrationStatus; intervalS?: number };
  /** First 1.6 transactionId handed out (then +1 per StartTransaction, across all piles). Default 1. */
  firstTransactionId?: number;
  /** Answers a pile's DataTransfer. Default: UnknownVendorId, as a CSMS without vendor extensions answers. */
  onDataTransfer?: (identity: string, request: DataTransferRequest) => DataTransferAnswer;
  /** How long an operator action waits for the pile's answer. Default 30 000 ms. */
  callTimeoutMs?: number;
  /** Source of `currentTime` and of reply delays. Default wall clock. */
  clock?: Clock;
  /** One line per OCPP message and per connection event. Default silent. */
  logger?: Logger;
}

export interface CsmsSim {
  /** Where piles connect, without the identity: `ws://127.0.0.1:9000/ocpp` (wss:// with TLS). */
  readonly url: string;
  /** The operator console over plain HTTP(S) on the same port, loopback clients only (see operator-http.ts). */
  readonly operatorUrl: string;
  readonly port: number;
  /** False between goOffline() and goOnline(). */
  readonly online: boolean;
  /** Identities of the charge points connected now. */
  connected(): string[];
  /** The subprotocol a connected charge point agreed on. */
  protocolOf(identity: string): OcppProtocol | undefined;
  /** Every call both ways with its answer, oldest first; with an identity, that charge point's only. */
  conversation(identity?: string): CsmsMessage[];
  /** The first message (recorded or to come) matching `predicate`; rejects after `timeoutMs`. */
  waitFor(predicate: (message: CsmsMessage) => boolean, timeoutMs: number): Promise<CsmsMessage>;
  /** Resolves when `identity` is connected (at once if it is). */
  waitForConnection(identity: string, timeoutMs: number): Promise<void>;

  /** 1.6 RemoteStartTransaction / 2.0.1 RequestStartTransaction (remoteStartId counts from 1). Resolves to the pile's answer. */
  remoteStart(identity: string, idTag: string, connectorId?: number): Promise<Record<string, unknown>>;
  /** 1.6 RemoteStopTransaction (integer id) / 2.0.1 RequestStopTransaction (the station's string id). */
  remoteStop(identity: string, transactionId: number | string): Promise<Record<string, unknown>>;
  /** 1.6 ChangeConfiguration / 2.0.1 SetVariables; 2.0.1 keys are "Component.Variable" or a well-known 1.6 key. */
  changeConfiguration(identity: string, key: string, value: string): Promise<Record<string, unknown>>;
  /** 1.6 GetConfiguration (all keys when none given) / 2.0.1 GetVariables. */
  getConfiguration(identity: string, keys?: readonly string[]): Promise<Record<string, unknown>>;
  /** TriggerMessage for `message` (a name from the version's MessageTrigger list). */
  trigger(identity: string, message: string, connectorId?: number): Promise<Record<string, unknown>>;
  /** Reset; on 2.0.1 Soft is OnIdle and Hard is Immediate. */
  reset(identity: string, kind: ResetKind): Promise<Record<string, unknown>>;
  /** ChangeAvailability of a connector (EVSE on 2.0.1), or the whole pile with connectorId 0 (the default). */
  changeAvailability(identity: string, availability: Availability, connectorId?: number): Promise<Record<string, unknown>>;
  dataTransfer(identity: string, vendorId: string, messageId?: string, data?: string): Promise<Record<string, unknown>>;

  /** Changes the answer to later BootNotifications (e.g. Rejected to test a pile's retry). */
  setBoot(boot: { status?: RegistrationStatus; intervalS?: number }): void;
  /** Delays every answer to a pile's call by `delayMs` (0: answer at once). */
  setReplyDelay(delayMs: number): void;
  /** Network outage: closes the listener and drops every pile without a close handshake. */
  goOffline(): Promise<void>;
  /** Listens again on the same port; rejects once stop() was called. */
  goOnline(): Promise<void>;
  /** Closes everything. Idempotent. */
  stop(): Promise<void>;
}

/** ocpp-rpc's CommonJS typings reach the class only through the module's default under NodeNext. */
type RpcServerClient = ServerClientModule.default;

interface Connection {
  client: RpcServerClient;
  protocol: OcppProtocol;
}

const REGISTRATION_STATUSES: readonly RegistrationStatus[] = ["Accepted", "Pending", "Rejected"];

function checkBoot(boot: { status?: RegistrationStatus; intervalS?: number }): void {
  if (boot.status !== undefined && !REGISTRATION_STATUSES.includes(boot.status)) {
    throw new RangeError(`boot.status: expected one of ${REGISTRATION_STATUSES.join(", ")}, got "${String(boot.status)}"`);
  }
  if (boot.intervalS !== undefined && (!Number.isSafeInteger(boot.intervalS) || boot.intervalS < 0)) {
    throw new RangeError(`boot.intervalS: expected an integer number of seconds >= 0, got ${boot.intervalS}`);
  }
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`port: expected a TCP port 0..65535, got ${port}`);
  }
  return port;
}

function samePassword(given: Buffer | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const wanted = Buffer.from(expected, "utf8");
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

function isProtocol(value: string | undefined): value is OcppProtocol {
  return value === "ocpp1.6" || value === "ocpp2.0.1";
}

/** ocpp-rpc emits frames as arrays; these read them without trusting their shape. */
function frameOf(event: unknown): unknown[] {
  const payload = (event as { payload?: unknown } | null)?.payload;
  return Array.isArray(payload) ? payload : [];
}

function replyOf(frame: unknown[]): CsmsReply | undefined {
  if (frame[0] === 3) return { kind: "result", payload: frame[2] };
  if (frame[0] === 4) {
    return { kind: "error", code: String(frame[2]), description: String(frame[3] ?? ""), details: frame[4] ?? {} };
  }
  return undefined;
}

/**
 * Starts the CSMS simulator and resolves once it listens. `trustpile hw-sim --csms-port` and `trustpile sim` use it;
 * tests use the returned handle as the operator and read the conversation from it.
 */
export async function startCsmsSim(options: CsmsSimOptions = {}): Promise<CsmsSim> {
  const host = options.host ?? "127.0.0.1";
  let port = checkPort(options.port ?? 0);
  const path = `/${(options.path ?? "/ocpp").replace(/^\/+|\/+$/g, "")}`.replace(/^\/$/, "");
  const clock = options.clock ?? realClock;
  const log = options.logger ?? pino({ level: "silent" });
  const passwords = options.passwords;
  const callTimeoutMs = options.callTimeoutMs ?? 30_000;
  if (!Number.isSafeInteger(callTimeoutMs) || callTimeoutMs < 1) {
    throw new RangeError(`callTimeoutMs: expected an integer number of ms >= 1, got ${callTimeoutMs}`);
  }
  let boot = { status: "Accepted" as RegistrationStatus, intervalS: 300 };
  if (options.boot) {
    checkBoot(options.boot);
    boot = { ...boot, ...options.boot };
  }
  let nextTransactionId = options.firstTransactionId ?? 1;
  if (!Number.isSafeInteger(nextTransactionId) || nextTransactionId < 1) {
    throw new RangeError(`firstTransactionId: expected an integer >= 1, got ${nextTransactionId}`);
  }
  let replyDelayMs = 0;
  let remoteStartId = 0;
  const onDataTransfer = options.onDataTransfer ?? ((): DataTransferAnswer => ({ status: "UnknownVendorId" }));

  const conversation = new Conversation();
  const connections = new Map<string, Connection>();
  const connectionWaiters = new Set<{ identity: string; resolve: () => void }>();

  const rpc = new RPCServer({ protocols: [...CSMS_PROTOCOLS], strictMode: true, callTimeoutMs });

  rpc.auth((accept, reject, handshake) => {
    const identity = handshake.identity;
    const remoteAddress = handshake.remoteAddress;
    const refuse = (code: number, reason: string): void => {
      log.warn({ cp: identity, remoteAddress, status: code }, `csms: refused connection: ${reason}`);
      reject(code, reason);
    };
    if (identity === "") return refuse(400, "the URL path has no charge point identity");
    const protocol = CSMS_PROTOCOLS.find((p) => handshake.protocols.has(p));
    if (protocol === undefined) {
      const offered = [...handshake.protocols].join(", ") || "none";
      return refuse(400, `no common OCPP subprotocol (pile offered ${offered}; this CSMS speaks ${CSMS_PROTOCOLS.join(", ")})`);
    }
    if (passwords !== undefined) {
      const expected = Object.hasOwn(passwords, identity) ? passwords[identity] : undefined;
      if (expected === undefined) return refuse(401, "unknown charge point identity");
      if (handshake.password === undefined) return refuse(401, "no basic-auth password (security profile 1)");
      if (!samePassword(handshake.password, expected)) return refuse(401, "wrong basic-auth password");
    }
    accept({}, protocol);
  });

  rpc.on("client", (client: RpcServerClient) => {
    const identity = client.identity ?? "";
    const protocol = client.protocol;
    if (!isProtocol(protocol)) {
      void client.close({ code: 1002, reason: "unsupported subprotocol" });
      return;
    }
    // A pile that reconnects before its old socket timed out replaces it, as on a real CSMS.
    const previous = connections.get(identity);
    if (previous) void previous.client.close({ code: 1000, reason: "replaced by a new connection" });
    connections.set(identity, { client, protocol });
    log.info({ cp: identity, protocol, remoteAddress: client.handshake.remoteAddress }, "csms: charge point connected");
    for (const waiter of [...connectionWaiters]) {
      if (waiter.identity === identity) waiter.resolve();
    }
    attach(client, identity, protocol);
  });

  function attach(client: RpcServerClient, identity: string, protocol: OcppProtocol): void {
    const dialect = dialects[protocol];
    const context: AnswerContext = {
      identity,
      nowIso: () => new Date(clock.nowMs()).toISOString(),
      boot: () => ({ ...boot }),
      nextTransactionId: () => nextTransactionId++,
      dataTransfer: onDataTransfer,
    };
    const actions = new Map<string, string>();

    client.on("call", (event: unknown) => {
      const frame = frameOf(event);
      const outbound = (event as { outbound?: boolean }).outbound === true;
      const [, messageId, action, payload] = frame;
      if (typeof messageId !== "string" || typeof action !== "string") return;
      actions.set(messageId, action);
      conversation.add({
        atMs: clock.nowMs(),
        identity,
        protocol,
        from: outbound ? "csms" : "pile",
        messageId,
        action,
        payload,
        reply: undefined,
      });
      log.info(
        { cp: identity, direction: outbound ? "csms->pile" : "pile->csms", messageId, action, payload: redactForLog(action, payload) },
        `${outbound ? "->" : "<-"} ${identity} ${action}`,
      );
    });

    client.on("response", (event: unknown) => {
      const frame = frameOf(event);
      const outbound = (event as { outbound?: boolean }).outbound === true;
      const messageId = frame[1];
      const reply = replyOf(frame);
      if (typeof messageId !== "string" || reply === undefined) return;
      const action = actions.get(messageId) ?? "?";
      actions.delete(messageId);
      conversation.answer(identity, messageId, reply);
      const fields = { cp: identity, direction: outbound ? "csms->pile" : "pile->csms", messageId, action };
      const arrow = outbound ? "->" : "<-";
      if (reply.kind === "result") {
        log.info({ ...fields, payload: reply.payload }, `${arrow} ${identity} ${action} answered`);
      } else if (reply.kind === "error") {
        log.warn(
          { ...fields, error: { code: reply.code, description: reply.description } },
          `${arrow} ${identity} ${action} CALLERROR ${reply.code}`,
        );
      }
    });

    // Outbound calls that end without any answer (timeout, abort) leave no 'response' event.
    client.on("callError", (event: unknown) => {
      const { outbound, messageId, error } = event as { outbound?: boolean; messageId?: unknown; error?: unknown };
      if (outbound !== true || typeof messageId !== "string") return;
      // ocpp-rpc rejects calls cut off by a closing socket with an AbortError whose message varies with who closed.
      const reason =
        error instanceof Error && error.name === "AbortError"
          ? "connection closed"
          : error instanceof TimeoutError
            ? `no answer within ${callTimeoutMs} ms`
            : error instanceof Error ? error.message : String(error);
      if (conversation.answer(identity, messageId, { kind: "none", reason })) {
        log.warn({ cp: identity, messageId, action: actions.get(messageId), reason }, `-> ${identity} got no answer: ${reason}`);
      }
      actions.delete(messageId);
    });

    client.on("strictValidationFailure", (event: unknown) => {
      const { method, outbound, isCall, error } = event as { method?: unknown; outbound?: boolean; isCall?: boolean; error?: unknown };
      const what = `${outbound ? "csms" : "pile"} ${isCall ? "call" : "answer"} ${String(method)}`;
      log.warn(
        { cp: identity, action: method, reason: error instanceof Error ? error.message : String(error) },
        `csms: ${what} breaks the ${protocol} schema`,
      );
    });

    client.on("badMessage", (event: unknown) => {
      const { buffer, error } = event as { buffer?: unknown; error?: unknown };
      const text = Buffer.isBuffer(buffer) ? buffer.toString("utf8").slice(0, 200) : String(buffer).slice(0, 200);
      const reason = error instanceof Error ? error.message : String(error);
      log.warn({ cp: identity, message: text, reason }, "csms: malformed OCPP-J frame from pile");
    });

    client.on("close", (event: unknown) => {
      const { code, reason } = (event ?? {}) as { code?: number; reason?: string };
      // Only this connection's calls: a pile that reconnected already talks on a new one under the same identity.
      for (const messageId of actions.keys()) conversation.answer(identity, messageId, { kind: "none", reason: "connection closed" });
      actions.clear();
      if (connections.get(identity)?.client === client) connections.delete(identity);
      log.info({ cp: identity, code, reason }, "csms: charge point disconnected");
    });

    for (const [action, answer] of Object.entries(dialect.answers)) {
      client.handle(action, async ({ params }: { params?: Record<string, unknown> }) => {
        if (replyDelayMs > 0) await new Promise<void>((resolve) => clock.setTimer(replyDelayMs, resolve));
        return answer(context, (params ?? {}) as Record<string, unknown>);
      });
    }
  }

  async function operatorCall(identity: string, build: (protocol: OcppProtocol) => OperatorCall): Promise<Record<string, unknown>> {
    const connection = connections.get(identity);
    if (!connection) {
      const known = [...connections.keys()].join(", ") || "none";
      throw new Error(`charge point "${identity}" is not connected (connected: ${known})`);
    }
    const { action, params } = build(connection.protocol);
    const answer = await connection.client.call(action, params);
    return (answer ?? {}) as Record<string, unknown>;
  }

  const dialectCall =
    (build: (dialect: (typeof dialects)[OcppProtocol], protocol: OcppProtocol) => OperatorCall) =>
    (protocol: OcppProtocol): OperatorCall =>
      build(dialects[protocol], protocol);

  // Set once started; the listener's plain HTTP requests go to the operator console through it.
  let sim: CsmsSim | undefined;

  // The HTTP(S) server is ours, not ocpp-rpc's, so the same RPCServer survives an offline spell and TLS is possible.
  let httpServer: Server | undefined;
  const sockets = new Set<Socket>();

  async function listen(): Promise<void> {
    const operatorConsole = (request: IncomingMessage, response: ServerResponse): void => {
      if (sim === undefined) {
        response.statusCode = 503;
        response.end();
        return;
      }
      void handleOperatorRequest(sim, request, response);
    };
    const server: Server = options.tls
      ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, operatorConsole)
      : createHttpServer(operatorConsole);
    server.on("upgrade", (request: IncomingMessage, socket: Socket, head: Buffer) => {
      void rpc.handleUpgrade(request, socket, head);
    });
    server.on("connection", (socket: Socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
    server.on("tlsClientError", (error: Error) => log.warn({ reason: error.message }, "csms: TLS handshake failed"));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    port = (server.address() as { port: number }).port;
    httpServer = server;
  }

  async function closeListener(): Promise<void> {
    const server = httpServer;
    httpServer = undefined;
    for (const { client } of connections.values()) void client.close({ force: true });
    for (const socket of sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  await listen();
  const displayHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  const url = `${options.tls ? "wss" : "ws"}://${displayHost}:${port}${path}`;
  log.info({ url, protocols: CSMS_PROTOCOLS, basicAuth: passwords !== undefined, tls: options.tls !== undefined }, "csms: listening");

  let stopping: Promise<void> | undefined;

  sim = {
    url,
    operatorUrl: `${options.tls ? "https" : "http"}://${displayHost}:${port}/operator`,
    get port() {
      return port;
    },
    get online() {
      return httpServer !== undefined;
    },
    connected: () => [...connections.keys()],
    protocolOf: (identity) => connections.get(identity)?.protocol,
    conversation: (identity) => conversation.messages(identity),
    waitFor: (predicate, timeoutMs) => conversation.waitFor(predicate, timeoutMs),
    waitForConnection(identity, timeoutMs) {
      if (connections.has(identity)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const waiter = {
          identity,
          resolve: () => {
            clearTimeout(timer);
            connectionWaiters.delete(waiter);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          connectionWaiters.delete(waiter);
          reject(new Error(`waitForConnection: charge point "${identity}" did not connect within ${timeoutMs} ms`));
        }, timeoutMs);
        connectionWaiters.add(waiter);
      });
    },

    remoteStart: (identity, idTag, connectorId) =>
      operatorCall(identity, dialectCall((d) => d.remoteStart(idTag, connectorId, ++remoteStartId))),
    remoteStop: (identity, transactionId) => operatorCall(identity, dialectCall((d) => d.remoteStop(transactionId))),
    changeConfiguration: (identity, key, value) =>
      operatorCall(identity, dialectCall((d) => d.changeConfiguration(key, value))),
    getConfiguration: (identity, keys = []) => operatorCall(identity, dialectCall((d) => d.getConfiguration(keys))),
    trigger: (identity, message, connectorId) => operatorCall(identity, dialectCall((d) => d.trigger(message, connectorId))),
    reset(identity, kind) {
      if (kind !== "Soft" && kind !== "Hard") {
        return Promise.reject(new RangeError(`reset: expected "Soft" or "Hard", got "${String(kind)}"`));
      }
      return operatorCall(identity, dialectCall((d) => d.reset(kind)));
    },
    changeAvailability(identity, availability, connectorId = 0) {
      if (availability !== "Operative" && availability !== "Inoperative") {
        return Promise.reject(new RangeError(`changeAvailability: expected "Operative" or "Inoperative", got "${String(availability)}"`));
      }
      if (!Number.isSafeInteger(connectorId) || connectorId < 0) {
        return Promise.reject(new RangeError(`changeAvailability: expected connectorId >= 0, got ${connectorId}`));
      }
      return operatorCall(identity, dialectCall((d) => d.changeAvailability(availability, connectorId)));
    },
    dataTransfer: (identity, vendorId, messageId, data) =>
      operatorCall(
        identity,
        dialectCall((d) =>
          d.dataTransfer({ vendorId, ...(messageId !== undefined ? { messageId } : {}), ...(data !== undefined ? { data } : {}) }),
        ),
      ),

    setBoot(next) {
      checkBoot(next);
      boot = { ...boot, ...next };
      log.info({ status: boot.status, intervalS: boot.intervalS }, "csms: BootNotification answer changed");
    },
    setReplyDelay(delayMs) {
      if (!Number.isFinite(delayMs) || delayMs < 0) {
        throw new RangeError(`setReplyDelay: expected delayMs >= 0, got ${delayMs}`);
      }
      replyDelayMs = delayMs;
      log.info({ delayMs }, "csms: reply delay changed");
    },
    async goOffline() {
      if (!httpServer) return;
      await closeListener();
      log.warn({ port }, "csms: offline (listener closed, charge points dropped)");
    },
    async goOnline() {
      if (stopping) throw new Error("goOnline: the CSMS simulator was stopped");
      if (httpServer) return;
      await listen();
      log.info({ url }, "csms: online again");
    },
    stop: () =>
      (stopping ??= (async () => {
        await closeListener();
        await rpc.close({ force: true });
        log.info({ url }, "csms: stopped");
      })()),
  };
  return sim;
}

/**
 * A minimal OCPP 1.6J CSMS for tests: a real ocpp-rpc RPCServer in strict mode on loopback that records every call
 * a charge point makes, in order, answers them as a permissive CSMS would, and can call the charge point.
 */
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { RPCServer } from "ocpp-rpc";

export interface RecordedCall {
  method: string;
  params: Record<string, unknown>;
}

export interface TestCsms {
  readonly port: number;
  readonly url: string;
  readonly calls: RecordedCall[];
  /** Identities that connected, in order (one entry per connection). */
  readonly connections: string[];
  /** What later BootNotifications are answered with. */
  setBootStatus(status: "Accepted" | "Pending" | "Rejected"): void;
  /** Calls the connected charge point; rejects when none is connected. */
  call(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface TestCsmsOptions {
  port?: number;
  /** Required Basic-auth password; connections with another one get HTTP 401. */
  password?: string;
  bootStatus?: "Accepted" | "Pending" | "Rejected";
  bootIntervalS?: number;
  /** Serve wss:// with this certificate (security profile 2). */
  tls?: { certPem: string; keyPem: string };
}

interface ServerClient {
  identity: string;
  handle(handler: (call: { method: string; params: Record<string, unknown> }) => unknown): void;
  call(method: string, params: Record<string, unknown>): Promise<unknown>;
  once(event: "close", listener: () => void): void;
}

export async function startTestCsms(options: TestCsmsOptions = {}): Promise<TestCsms> {
  const server = new RPCServer({ protocols: ["ocpp1.6"], strictMode: true });
  const calls: RecordedCall[] = [];
  const connections: string[] = [];
  let current: ServerClient | undefined;
  let nextTransactionId = 4_001;
  let bootStatus = options.bootStatus ?? "Accepted";

  server.auth((accept, reject, handshake) => {
    if (options.password !== undefined) {
      const given = handshake.password?.toString("utf8");
      if (given !== options.password) {
        reject(401, "Unauthorized");
        return;
      }
    }
    accept();
  });

  server.on("client", (client: ServerClient) => {
    connections.push(client.identity);
    current = client;
    client.once("close", () => {
      if (current === client) current = undefined;
    });
    client.handle(({ method, params }) => {
      calls.push({ method, params });
      const now = new Date().toISOString();
      switch (method) {
        case "BootNotification":
          return { status: bootStatus, currentTime: now, interval: options.bootIntervalS ?? 300 };
        case "Heartbeat":
          return { currentTime: now };
        case "Authorize":
          return { idTagInfo: { status: "Accepted" } };
        case "StartTransaction":
          return { transactionId: nextTransactionId++, idTagInfo: { status: "Accepted" } };
        case "StopTransaction":
          return { idTagInfo: { status: "Accepted" } };
        default:
          return {};
      }
    });
  });

  let port: number;
  let closeTls: (() => Promise<void>) | undefined;
  if (options.tls) {
    const https = createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem });
    https.on("upgrade", server.handleUpgrade);
    await new Promise<void>((resolve) => https.listen(options.port ?? 0, "127.0.0.1", resolve));
    port = (https.address() as AddressInfo).port;
    closeTls = () => new Promise<void>((resolve) => {
      https.closeAllConnections();
      https.close(() => resolve());
    });
  } else {
    const http = await server.listen(options.port ?? 0, "127.0.0.1");
    port = (http.address() as AddressInfo).port;
  }
  return {
    port,
    url: `${options.tls ? "wss" : "ws"}://127.0.0.1:${port}/ocpp`,
    calls,
    connections,
    setBootStatus(status) {
      bootStatus = status;
    },
    async call(method, params) {
      if (!current) throw new Error(`no charge point connected to call ${method}`);
      return (await current.call(method, params)) as Record<string, unknown>;
    },
    async close() {
      await server.close({ force: true });
      await closeTls?.();
    },
  };
}

/** A call's short form for sequence assertions: "StatusNotification 1 Charging", "MeterValues", … */
export function describeCall(call: RecordedCall): string {
  if (call.method === "StatusNotification") return `StatusNotification ${String(call.params.connectorId)} ${String(call.params.status)}`;
  return call.method;
}

/** The call sequence with runs of MeterValues collapsed to one "MeterValues…". */
export function sequenceOf(calls: readonly RecordedCall[]): string[] {
  const out: string[] = [];
  for (const call of calls) {
    const short = describeCall(call);
    if (short === "MeterValues" && out.at(-1) === "MeterValues…") continue;
    out.push(short === "MeterValues" ? "MeterValues…" : short);
  }
  return out;
}

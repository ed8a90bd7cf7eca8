/**
 * A stand-in charge point for the CSMS simulator's tests: a raw ocpp-rpc RPCClient in strict mode (as the agent
 * uses it) on a real loopback socket. Closed by `closePiles()` after each test. Plus a throwaway CA and server
 * certificate for security profile 2.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RPCClient } from "ocpp-rpc";
import type * as ClientModule from "ocpp-rpc/lib/client.js";

type RpcClient = ClientModule.default;
type RpcClientOptions = ClientModule.RPC_ClientOptions;

const open = new Set<RpcClient>();

export interface PileOptions {
  endpoint: string;
  identity: string;
  protocol: "ocpp1.6" | "ocpp2.0.1";
  password?: string;
  /** Default true; false lets a test send what strict mode would refuse to send. */
  strict?: boolean;
  reconnect?: boolean;
  /** Extra `ws` options, e.g. `{ ca }` for TLS. */
  wsOpts?: Record<string, unknown>;
}

export function createPile(options: PileOptions): RpcClient {
  const settings: Partial<RpcClientOptions> = {
    endpoint: options.endpoint,
    identity: options.identity,
    protocols: [options.protocol],
    strictMode: options.strict ?? true,
    reconnect: options.reconnect ?? false,
    callTimeoutMs: 5_000,
    backoff: { initialDelay: 50, maxDelay: 200, factor: 2, randomisationFactor: 0 },
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(options.wsOpts !== undefined ? { wsOpts: options.wsOpts } : {}),
  };
  // The typings mark every option required although the library defaults each one it is not given.
  const pile = new RPCClient(settings as RpcClientOptions);
  open.add(pile);
  return pile;
}

export async function closePiles(): Promise<void> {
  await Promise.all([...open].map((pile) => pile.close({ force: true })));
  open.clear();
}

export interface TestCertificates {
  dir: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
  remove(): void;
}

/**
 * A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by it, made with the openssl CLI
 * (Debian package `openssl`; Node's crypto cannot issue X.509 certificates). P-256 keys, valid two days.
 */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-csms-tls-"));
  const openssl = (...args: string[]): void => {
    try {
      execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new Error(
        code === "ENOENT"
          ? "the TLS tests need the openssl CLI (Debian package openssl), which is not installed"
          : `openssl ${args[0] ?? ""} failed: ${String((error as { stderr?: unknown }).stderr ?? error)}`,
        { cause: error },
      );
    }
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=trustpile test CA");
  openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1");
  // Node checks the address against subjectAltName, not the CN.
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
    "-days", "2", "-extfile", "san.ext");
  return {
    dir,
    caPem: readFileSync(join(dir, "ca.pem"), "utf8"),
    certPem: readFileSync(join(dir, "server.pem"), "utf8"),
    keyPem: readFileSync(join(dir, "server.key"), "utf8"),
    certPath: join(dir, "server.pem"),
    keyPath: join(dir, "server.key"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

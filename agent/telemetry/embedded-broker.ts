/**
 * A small MQTT 3.1.1 broker in the agent's own process (aedes on a TCP server), for `trustpile sim` and tests: the
 * agent's telemetry and `trustpile watch` meet on it without a system broker. Retained messages and QoS 1 are kept
 * in memory for as long as the broker runs.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { Aedes, type AuthenticateError } from "aedes";

export interface EmbeddedBrokerOptions {
  host?: string;
  /** 0 (the default) lets the OS pick a free port. */
  port?: number;
  /** When given, only these users may connect; others are refused with CONNACK return code 4. */
  users?: { username: string; password: string }[];
}

export interface EmbeddedBroker {
  /** `mqtt://host:port` */
  url: string;
  port: number;
  /** Disconnects every client, closes the broker and resolves once the port is free again. */
  stop(): Promise<void>;
}

/** Both sides hashed first so the comparison takes the same time whatever the lengths are. */
function sameSecret(a: Buffer, b: Buffer): boolean {
  const digest = (value: Buffer): Buffer => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(a), digest(b));
}

function badCredentials(): AuthenticateError {
  const error = new Error("bad username or password") as AuthenticateError;
  error.returnCode = 4; // AuthErrorCode.BAD_USERNAME_OR_PASSWORD (a const enum, not importable under isolatedModules)
  return error;
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? "127.0.0.1";
  const users = options.users?.map((user) => ({ username: Buffer.from(user.username, "utf8"), password: Buffer.from(user.password, "utf8") }));
  const broker = await Aedes.createBroker({
    // No $SYS heartbeat chatter on the operators' broker.
    heartbeatInterval: 24 * 3600 * 1000,
    ...(users
      ? {
          authenticate: (_client, username, password, done) => {
            const name = Buffer.from(username ?? "", "utf8");
            const secret = password ?? Buffer.alloc(0);
            // Every user is compared, match or not, so the time taken does not tell which usernames exist.
            let accepted = false;
            for (const user of users) {
              const nameMatches = sameSecret(name, user.username);
              const passwordMatches = sameSecret(secret, user.password);
              if (nameMatches && passwordMatches) accepted = true;
            }
            if (accepted) done(null, true);
            else done(badCredentials(), false);
          },
        }
      : {}),
  });
  // A client's socket errors are its own business; without listeners they would be unhandled.
  broker.on("clientError", () => undefined);
  broker.on("connectionError", () => undefined);

  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    broker.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port: options.port ?? 0 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw error;
  }
  const address = server.address();
  if (!address || typeof address !== "object") throw new Error("the embedded MQTT broker has no TCP address");
  const port = address.port;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await serverClosed;
    })();
    return stopping;
  };
  return { url: `mqtt://${host.includes(":") ? `[${host}]` : host}:${port}`, port, stop };
}

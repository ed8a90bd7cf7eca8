/**
 * A real Debian mosquitto broker on a loopback port, for tests that must meet an independent MQTT peer
 * (`.ci/run` installs the package). Anonymous access unless `users` are given: then a password file made with
 * `mosquitto_passwd` and `allow_anonymous false`, as an operator would set it up.
 *
 * With a fixed `port` a test can stop the broker and start another one on the same port (a broker outage as a
 * client sees it: same URL, new broker). Without `persistenceDir` nothing survives the restart; with the same
 * `persistenceDir` retained messages, persistent sessions (clean: false) and their queued QoS 1 messages do, as
 * on an operator's broker.
 *
 * `observeMqtt` is an MQTT subscriber for any broker (this one or the agent's embedded one) that records what it
 * receives, for tests that assert on topics and payloads.
 */
import { execFile, spawn } from "node:child_process";
import { connect as mqttConnect, type IClientOptions, type MqttClient } from "mqtt";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../agent/net.ts";
import { waitForEntry } from "./wait-for-entry.ts";

export interface Mosquitto {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface MqttUser {
  username: string;
  password: string;
}

export interface MosquittoOptions {
  /** Fixed port (a restart on the same port); a free one by default. */
  port?: number;
  /** Only these accounts may connect; anonymous access when absent or empty. */
  users?: readonly MqttUser[];
  /** Keep retained messages and persistent sessions here, across a stop and a start with the same dir. */
  persistenceDir?: string;
}

const run = promisify(execFile);

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function writePasswordFile(path: string, users: readonly MqttUser[]): Promise<void> {
  for (const [index, user] of users.entries()) {
    // -b: password on the command line (batch mode); -c only for the first user, it truncates the file.
    const args = index === 0 ? ["-b", "-c", path, user.username, user.password] : ["-b", path, user.username, user.password];
    try {
      await run("mosquitto_passwd", args);
    } catch (error) {
      throw new Error(`mosquitto_passwd could not add user "${user.username}" (is mosquitto installed?): ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "trustpile-mosquitto-"));
  const configPath = join(dir, "mosquitto.conf");
  const lines = [`listener ${port} 127.0.0.1`];
  if (options.persistenceDir) {
    // Saved on SIGTERM (our stop) and read at start; no autosave, so the file only changes at a clean stop.
    lines.push("persistence true", `persistence_location ${options.persistenceDir.endsWith("/") ? options.persistenceDir : `${options.persistenceDir}/`}`, "autosave_interval 0");
  } else {
    lines.push("persistence false");
  }
  const users = options.users ?? [];
  if (users.length > 0) {
    const passwordPath = join(dir, "passwords");
    await writePasswordFile(passwordPath, users);
    lines.push("allow_anonymous false", `password_file ${passwordPath}`);
  } else {
    lines.push("allow_anonymous true");
  }
  // Started as root, mosquitto drops to the `mosquitto` user before it opens the password and persistence files,
  // and then cannot open them in our 0700 temp dirs ("Unable to open pwfile"). On loopback in a test, stay root.
  if ((users.length > 0 || options.persistenceDir) && process.getuid?.() === 0) lines.push("user root");
  writeFileSync(configPath, `${lines.join("\n")}\n`);
  const child = spawn("mosquitto", ["-c", configPath], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`mosquitto exited with code ${code}: ${stderr.trim()}`))),
  );
  exited.catch(() => undefined);
  const deadline = Date.now() + 5_000;
  while (!(await portAnswers(port))) {
    if (child.exitCode !== null) await exited;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`mosquitto did not listen on 127.0.0.1:${port} within 5 s: ${stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

// ================================================================ an observer on any broker

export interface ObservedMessage {
  topic: string;
  payload: string;
  retain: boolean;
  dup: boolean;
  receivedAtMs: number;
}

export interface MqttObserver {
  readonly client: MqttClient;
  /** Everything received so far, in arrival order. */
  readonly messages: ObservedMessage[];
  /** Resolves with the first message (from index `from`) matching `predicate`. */
  waitFor(what: string, predicate: (message: ObservedMessage) => boolean, timeoutMs: number, from?: number): Promise<ObservedMessage>;
  close(): Promise<void>;
}

export interface ObserveOptions {
  auth?: MqttUser;
  /** A persistent session (clean: false) under this client id: QoS 1 messages queue for it while it is away. */
  persistentClientId?: string;
  reconnectPeriodMs?: number;
}

/** Connects, subscribes to `filters` at QoS 1 and records every message; resolves once subscribed. */
export async function observeMqtt(url: string, filters: readonly string[], options: ObserveOptions = {}): Promise<MqttObserver> {
  const clientOptions: IClientOptions = {
    protocolVersion: 4,
    reconnectPeriod: options.reconnectPeriodMs ?? 200,
    connectTimeout: 5_000,
    ...(options.auth ? { username: options.auth.username, password: options.auth.password } : {}),
    ...(options.persistentClientId ? { clientId: options.persistentClientId, clean: false } : {}),
  };
  const client = mqttConnect(url, clientOptions);
  const messages: ObservedMessage[] = [];
  const listeners = new Set<() => void>();
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, payload: payload.toString("utf8"), retain: packet.retain, dup: packet.dup, receivedAtMs: Date.now() });
    for (const listener of [...listeners]) listener();
  });
  client.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`observer: no connection to ${url} within 5 s`)), 5_000);
    client.once("connect", () => {
      client.subscribe([...filters], { qos: 1 }, (error) => {
        clearTimeout(timer);
        if (error) reject(new Error(`observer: subscribe to ${filters.join(", ")} failed: ${error.message}`));
        else resolve();
      });
    });
  }).catch(async (error: unknown) => {
    await client.endAsync(true).catch(() => undefined);
    throw error;
  });
  return {
    client,
    messages,
    waitFor(what, predicate, timeoutMs, from = 0) {
      return waitForEntry(messages, listeners, {
        what,
        predicate,
        timeoutMs,
        from,
        onTimeout: () => `last messages:\n${messages.slice(-10).map((m) => `${m.topic} ${m.payload.slice(0, 200)}`).join("\n")}`,
      });
    },
    close: async () => {
      await client.endAsync(true).catch(() => undefined);
    },
  };
}

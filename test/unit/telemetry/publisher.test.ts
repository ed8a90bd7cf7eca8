/**
 * The publisher against a real MQTT broker: aedes embedded in the test, on a loopback port, so an outage is a
 * broker (and its listener) going away and a new one coming up on the same port.
 */
import { createServer, type Server } from "node:net";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { Aedes, type AuthenticateError } from "aedes";
import { connect, type MqttClient } from "mqtt";
import { configSchema } from "../../../agent/config/schema.ts";
import { initialState } from "../../../agent/core/step.ts";
import { createLogger } from "../../../agent/logging.ts";
import { freePort } from "../../../agent/net.ts";
import { createTelemetry, startTelemetry, type TelemetryTuning } from "../../../agent/telemetry/index.ts";
import type { MqttConfig, Telemetry } from "../../../agent/telemetry/types.ts";
import type { MeterSample } from "../../../drivers/meters/types.ts";

const CP = "cp-pub";
const PREFIX = `trustpile/${CP}`;
/** Fast reconnects, so an outage takes milliseconds. */
const FAST: TelemetryTuning = { reconnectMinMs: 20, reconnectMaxMs: 100, connectTimeoutMs: 2_000 };

interface Broker {
  port: number;
  url: string;
  stop(): Promise<void>;
}

async function startBroker(
  port: number,
  options: { users?: Record<string, string>; hold?: (topic: string, payload: string) => boolean } = {},
): Promise<Broker> {
  const { users, hold } = options;
  const broker = await Aedes.createBroker({
    // A held publish is never authorized: the broker never acknowledges it (a broker that dies mid-flight).
    ...(hold
      ? {
          authorizePublish: (_client, packet, callback) => {
            if (!hold(packet.topic, packet.payload.toString())) callback(null);
          },
        }
      : {}),
    ...(users
      ? {
          authenticate: (_client, username, password, done) => {
            if (username !== undefined && users[username] !== undefined && password?.toString("utf8") === users[username]) {
              done(null, true);
              return;
            }
            const error = new Error("bad username or password") as AuthenticateError;
            error.returnCode = 4; // AuthErrorCode.BAD_USERNAME_OR_PASSWORD (a const enum: not importable at run time)
            done(error, null);
          },
        }
      : {}),
  });
  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
  qos: number;
}

async function subscribe(url: string, topics: string[], auth?: { username: string; password: string }): Promise<{ messages: Received[]; client: MqttClient }> {
  const client = connect(url, { protocolVersion: 4, reconnectPeriod: 0, ...(auth ?? {}) });
  const messages: Received[] = [];
  client.on("message", (topic, payload, packet) => messages.push({ topic, payload: payload.toString("utf8"), retain: packet.retain, qos: packet.qos }));
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  await client.subscribeAsync(topics, { qos: 1 });
  return { messages, client };
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function mqttConfig(url: string, extra: Record<string, unknown> = {}): MqttConfig {
  const parsed = configSchema.shape.mqtt.parse({ url, homeAssistant: false, ...extra });
  if (!parsed) throw new Error("mqtt section did not parse");
  return parsed;
}

function logLines(): { lines: () => { level: string; msg: string }[]; raw: string[]; log: ReturnType<typeof createLogger> } {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(...chunk.toString("utf8").split("\n").filter((text) => text.length > 0));
      done();
    },
  });
  return { raw, lines: () => raw.map((text) => JSON.parse(text) as { level: string; msg: string }), log: createLogger({ destination: sink, level: "debug", name: "test" }) };
}

/** A step that makes exactly one `event` message (a warning numbered n) after the first. */
function warn(telemetry: Telemetry, n: number): void {
  telemetry.onStep(initialState(), { type: "tick", atMs: 1_000 + n }, [{ type: "notify", kind: "warning", message: `w${n}` }]);
}

const sample = (n: number): MeterSample => ({ readAtMs: 10_000 + n, importEnergyWh: n, powerW: 1, phases: [{ voltageV: 230, currentA: 0, powerW: 1 }] });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

describe("telemetry publisher against an embedded aedes broker", () => {
  it("says `online` (retained) after connecting, sends discovery configs, delivers QoS 1 in order, and `offline` on close", async () => {
    const broker = await startBroker(await freePort());
    cleanups.push(() => broker.stop());
    const watcher = await subscribe(broker.url, [`${PREFIX}/#`, "homeassistant/#"]);
    cleanups.push(() => watcher.client.endAsync());
    const { log } = logLines();
    const telemetry = startTelemetry({ mqtt: mqttConfig(broker.url, { homeAssistant: true }), chargePointId: CP, log, device: { meterModel: "sdm630" } });
    cleanups.push(() => telemetry.close(200));

    await until("connected", () => telemetry.stats().connected);
    for (let n = 0; n < 200; n++) warn(telemetry, n);
    await until("200 events delivered", () => watcher.messages.filter((m) => m.topic === `${PREFIX}/event`).length === 200);
    const events = watcher.messages.filter((m) => m.topic === `${PREFIX}/event`).map((m) => JSON.parse(m.payload) as { message: string });
    expect(events.map((e) => e.message)).toEqual(Array.from({ length: 200 }, (_, n) => `w${n}`));
    expect(watcher.messages.filter((m) => m.topic === `${PREFIX}/event`).every((m) => m.qos === 1)).toBe(true);
    expect(watcher.messages.filter((m) => m.topic.startsWith("homeassistant/"))).toHaveLength(6);

    // A subscriber arriving later gets the retained status and state at once.
    const late = await subscribe(broker.url, [`${PREFIX}/status`, `${PREFIX}/state`, "homeassistant/+/+/config"]);
    cleanups.push(() => late.client.endAsync());
    await until("retained messages", () => late.messages.length >= 8);
    expect(late.messages.find((m) => m.topic === `${PREFIX}/status`)).toMatchObject({ payload: "online", retain: true });
    expect(late.messages.find((m) => m.topic === `${PREFIX}/state`)).toMatchObject({ retain: true });
    expect(late.messages.filter((m) => m.topic.startsWith("homeassistant/") && m.retain)).toHaveLength(6);

    await until("all acknowledged", () => telemetry.stats().buffered === 0);
    // 200 events + 1 state + `online` + 6 discovery configs, each acknowledged once.
    expect(telemetry.stats()).toMatchObject({ connected: true, buffered: 0, published: 208, dropped: {}, bufferLimit: 1000 });

    await telemetry.close(2_000);
    await until("offline", () => late.messages.some((m) => m.topic === `${PREFIX}/status` && m.payload === "offline"));
    expect(telemetry.stats().connected).toBe(false);
  });

  it("buffers through a broker outage within its bound and delivers the backlog in order when the broker is back", async () => {
    const port = await freePort();
    let broker = await startBroker(port);
    cleanups.push(() => broker.stop());
    const { lines, log } = logLines();
    const telemetry = createTelemetry({ mqtt: mqttConfig(broker.url, { bufferLimit: 20 }), chargePointId: CP, log }, FAST);
    cleanups.push(() => telemetry.close(200));
    await until("connected", () => telemetry.stats().connected);
    warn(telemetry, 0);
    await until("first event acknowledged", () => telemetry.stats().buffered === 0);

    await broker.stop();
    await until("disconnected", () => !telemetry.stats().connected);
    // The outage: 10 warnings and 50 meter samples into a buffer of 20, while reconnects keep failing.
    const started = process.hrtime.bigint();
    for (let n = 1; n <= 50; n++) {
      telemetry.onSample(sample(n));
      if (n % 5 === 0) warn(telemetry, n / 5);
    }
    const pushMs = Number(process.hrtime.bigint() - started) / 1e6;
    expect(pushMs).toBeLessThan(50); // never waits on the network
    await new Promise((resolve) => setTimeout(resolve, 300)); // several failed reconnects
    const during = telemetry.stats();
    expect(during).toMatchObject({ connected: false, buffered: 20, maxBuffered: 20, bufferLimit: 20, dropped: { meter: 40 } });

    broker = await startBroker(port);
    const watcher = await subscribe(broker.url, [`${PREFIX}/#`]);
    cleanups.push(() => watcher.client.endAsync());
    await until("reconnected and the backlog delivered", () => telemetry.stats().connected && telemetry.stats().buffered === 0, 5_000);
    await until("the backlog at the subscriber", () => watcher.messages.filter((m) => m.topic !== `${PREFIX}/status`).length >= 20);

    const backlog = watcher.messages.filter((m) => m.topic !== `${PREFIX}/status`);
    // What survived, in the order it was made: the 10 warnings and the 10 newest meter samples.
    const labels = backlog.map((m) => {
      const body = JSON.parse(m.payload) as { message?: string; energyWh?: number };
      return m.topic.endsWith("/event") ? body.message : `m${body.energyWh}`;
    });
    const expected: string[] = [];
    for (let n = 1; n <= 50; n++) {
      if (n > 40) expected.push(`m${n}`);
      if (n % 5 === 0) expected.push(`w${n / 5}`);
    }
    expect(labels).toEqual(expected);
    expect(watcher.messages.find((m) => m.topic === `${PREFIX}/status`)?.payload).toBe("online");
    expect(telemetry.stats()).toMatchObject({ published: 1 + 1 + 1 + 20 + 1, maxBuffered: 20, dropped: { meter: 40 } });

    // One line when the outage began and one when it ended, not one per failed attempt.
    const outageLines = lines().filter((line) => /mqtt broker/.test(line.msg));
    expect(outageLines.map((line) => line.level)).toEqual(["info", "warn", "info"]);
    expect(outageLines[1]!.msg).toMatch(/connection lost/);
    expect(outageLines[2]!.msg).toMatch(/reached again/);
  });

  it("sends again, in order, what the broker never acknowledged before it went away", async () => {
    const port = await freePort();
    const number = (payload: string): number => Number((JSON.parse(payload) as { message: string }).message.slice(1));
    let broker = await startBroker(port, { hold: (topic, payload) => topic.endsWith("/event") && number(payload) >= 100 });
    cleanups.push(() => broker.stop());
    const before = await subscribe(broker.url, [`${PREFIX}/event`]);
    const { log } = logLines();
    const telemetry = createTelemetry({ mqtt: mqttConfig(broker.url), chargePointId: CP, log }, FAST);
    cleanups.push(() => telemetry.close(200));
    await until("connected", () => telemetry.stats().connected);
    for (let n = 0; n < 300; n++) warn(telemetry, n);
    await until("w0..w99 delivered", () => before.messages.length === 100);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // w100.. are in flight, unacknowledged: they stay in the buffer.
    expect(telemetry.stats().buffered).toBe(200);
    await before.client.endAsync(true);
    await broker.stop();

    broker = await startBroker(port);
    const after = await subscribe(broker.url, [`${PREFIX}/event`]);
    cleanups.push(() => after.client.endAsync());
    await until("the rest delivered", () => after.messages.length >= 200);
    expect(before.messages.map((m) => number(m.payload))).toEqual(Array.from({ length: 100 }, (_, n) => n));
    expect(after.messages.map((m) => number(m.payload))).toEqual(Array.from({ length: 200 }, (_, n) => n + 100));
    await until("all acknowledged", () => telemetry.stats().buffered === 0);
    expect(telemetry.stats().dropped).toEqual({});
  });

  it("logs refused credentials once, in one clear sentence without the password, and keeps the agent's calls instant", async () => {
    const broker = await startBroker(await freePort(), { users: { "pile-agent": "right-secret" } });
    cleanups.push(() => broker.stop());
    const { lines, raw, log } = logLines();
    const telemetry = createTelemetry(
      { mqtt: mqttConfig(broker.url, { username: "pile-agent", password: "wrong-secret-42" }), chargePointId: CP, log },
      FAST,
    );
    cleanups.push(() => telemetry.close(200));
    await until("the refusal logged", () => lines().some((line) => /refused the credentials/.test(line.msg)));
    await new Promise((resolve) => setTimeout(resolve, 300)); // more refused attempts
    const refusals = lines().filter((line) => /refused the credentials/.test(line.msg));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]!.level).toBe("error");
    expect(refusals[0]!.msg).toMatch(new RegExp(`^mqtt broker mqtt://127\\.0\\.0\\.1:${broker.port} refused the credentials for user pile-agent \\(bad username or password\\)`));
    expect(raw.join("\n")).not.toContain("wrong-secret-42");
    for (let n = 0; n < 5; n++) warn(telemetry, n);
    expect(telemetry.stats()).toMatchObject({ connected: false, published: 0, buffered: 6 });
  });

  it("runs with no broker at all: one warning, a bounded buffer, and a quick close", async () => {
    const port = await freePort(); // nothing listens here
    const { lines, log } = logLines();
    const telemetry = createTelemetry({ mqtt: mqttConfig(`mqtt://127.0.0.1:${port}`, { bufferLimit: 10 }), chargePointId: CP, log }, FAST);
    for (let n = 0; n < 1_000; n++) telemetry.onSample(sample(n));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(lines().filter((line) => /unreachable/.test(line.msg))).toHaveLength(1);
    expect(telemetry.stats()).toMatchObject({ connected: false, buffered: 10, maxBuffered: 10, published: 0, dropped: { meter: 990 } });
    const started = Date.now();
    await telemetry.close(2_000);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

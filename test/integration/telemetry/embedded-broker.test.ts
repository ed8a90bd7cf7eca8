import { connect, type IClientOptions, type MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { startEmbeddedBroker, type EmbeddedBroker } from "../../../agent/telemetry/embedded-broker.ts";

const brokers: EmbeddedBroker[] = [];
const clients: MqttClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.end(true);
  for (const broker of brokers.splice(0)) await broker.stop();
});

async function start(options: Parameters<typeof startEmbeddedBroker>[0] = {}): Promise<EmbeddedBroker> {
  const broker = await startEmbeddedBroker(options);
  brokers.push(broker);
  return broker;
}

/** Connects once without retries; rejects with mqtt.js's error. */
function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 3_000, ...options });
    clients.push(client);
    client.once("connect", () => resolve(client));
    client.once("error", reject);
  });
}

function publish(client: MqttClient, topic: string, payload: string, retain: boolean): Promise<void> {
  return new Promise((resolve, reject) => client.publish(topic, payload, { qos: 1, retain }, (error) => (error ? reject(error) : resolve())));
}

describe("startEmbeddedBroker", () => {
  it("listens on a free loopback port and keeps retained messages for late subscribers", async () => {
    const broker = await start();
    expect(broker.port).toBeGreaterThan(0);
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);

    const publisher = await connectClient(broker.url);
    await publish(publisher, "trustpile/cp-1/status", "online", true);
    await publish(publisher, "trustpile/cp-1/meter", '{"energyWh":1}', false);
    publisher.end(true);

    const late = await connectClient(broker.url);
    const received: [string, string, boolean][] = [];
    late.on("message", (topic, payload, packet) => received.push([topic, payload.toString(), packet.retain]));
    await late.subscribeAsync("trustpile/+/+", { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual([["trustpile/cp-1/status", "online", true]]);
  });

  it("accepts the configured user and refuses a wrong password with return code 4", async () => {
    const broker = await start({ users: [{ username: "agent", password: "s3cret" }] });

    const good = await connectClient(broker.url, { username: "agent", password: "s3cret" });
    expect(good.connected).toBe(true);

    const wrong = await connectClient(broker.url, { username: "agent", password: "guess" }).then(
      () => undefined,
      (error: unknown) => error as Error & { code?: number },
    );
    expect(wrong?.code).toBe(4);
    expect(wrong?.message).toMatch(/bad username or password/i);

    const anonymous = await connectClient(broker.url).then(
      () => undefined,
      (error: unknown) => error as Error & { code?: number },
    );
    expect(anonymous?.code).toBe(4);
  });

  it("frees its port on stop so a new broker can bind the same port", async () => {
    const first = await startEmbeddedBroker();
    const client = await connectClient(first.url);
    expect(client.connected).toBe(true);
    await first.stop();
    await first.stop(); // idempotent

    const second = await start({ port: first.port });
    expect(second.port).toBe(first.port);
    const again = await connectClient(second.url);
    expect(again.connected).toBe(true);
  });
});

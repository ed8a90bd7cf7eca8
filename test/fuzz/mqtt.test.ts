/**
 * MQTT fuzzing (issue 11 item 3): "an MQTT peer trying to energize" (docs/SECURITY.md cites this file as its control).
 * The agent runs in the sim world (anvil, contracts, hw-sim, the real agent) with telemetry on a broker — the embedded
 * aedes broker and Debian's mosquitto — and no deposit. A peer with its own broker account publishes seeded random
 * payloads and "commands" on every topic under `trustpile/<chargePointId>/#` (…/set, …/cmd, …/relay, …/relay/set,
 * retained overwrites of `state` and `status`) and on `homeassistant/#` (the pile's own discovery topics and their
 * command topics). The agent subscribes to nothing, so none of it can reach the core: the relay never closes (its edge
 * history), the agent keeps running and publishing, and its next state change puts its own correct retained `state`
 * back over the peer's. Until that change, a peer's retained overwrite stands: the agent does not watch its own
 * topics (what keeps peers off them is the broker's ACL). Replay with FUZZ_SEED=<seed>.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect as mqttConnect, type MqttClient } from "mqtt";
import { configSchema } from "../../agent/config/schema.ts";
import { silentLogger } from "../../agent/logging.ts";
import { startSimWorld, SIM_CHARGE_POINT_ID, waitUntil, type SimWorld } from "../../agent/sim/world.ts";
import { startEmbeddedBroker } from "../../agent/telemetry/embedded-broker.ts";
import { startTelemetry, type MqttConfig, type Telemetry } from "../../agent/telemetry/index.ts";
import { observeMqtt, startMosquitto, type MqttUser } from "../helpers/mosquitto.ts";
import { CategoryCounter, FuzzRandom, fuzzSeed } from "./fuzz-random.ts";

const SEED = fuzzSeed(0x3a77_0f22);
const MESSAGES_PER_BROKER = 400;
const AGENT_USER: MqttUser = { username: "pile-agent", password: "agent-secret-1" };
const PEER: MqttUser = { username: "peer", password: "peer-secret-2" };
const PREFIX = `trustpile/${SIM_CHARGE_POINT_ID}`;

const BROKERS = [
  { name: "the embedded aedes broker", start: (users: MqttUser[]) => startEmbeddedBroker({ users }) },
  { name: "mosquitto", start: (users: MqttUser[]) => startMosquitto({ users }) },
] as const;

interface Hostile {
  category: string;
  topic: string;
  payload: Buffer | string;
  retain: boolean;
  qos: 0 | 1;
}

function hostileMessage(random: FuzzRandom): Hostile {
  const category = random.pick([
    "relay command", "set/cmd command", "retained state overwrite", "retained status overwrite", "own topic garbage",
    "home assistant command", "home assistant config overwrite", "random topic under the prefix", "huge payload",
  ] as const);
  const command = (): string =>
    random.pick([
      "ON", "on", "1", "true", "close", "CLOSE", '{"relay":"on"}', '{"closed":true}', '{"cmd":"start","sessionId":"1"}',
      '{"type":"depositSeen","sessionId":"1"}', '{"phase":"energized","relayClosed":true}', random.text(random.int(0, 64)),
    ]);
  const qos = random.pick([0, 1] as const);
  switch (category) {
    case "relay command":
      return { category, topic: random.pick([`${PREFIX}/relay`, `${PREFIX}/relay/set`, `${PREFIX}/relay/cmd`]), payload: command(), retain: random.chance(0.3), qos };
    case "set/cmd command":
      return { category, topic: `${PREFIX}/${random.pick(["set", "cmd", "command", "session/set", "state/set", "control"])}`, payload: command(), retain: random.chance(0.3), qos };
    case "retained state overwrite":
      return {
        category,
        topic: `${PREFIX}/state`,
        payload: random.pick([
          JSON.stringify({ ts: new Date().toISOString(), phase: "energized", sessionId: "1", relayClosed: true, evPresent: true, fault: null, meterFault: null, energyWh: 5, powerW: 11_000 }),
          "garbage",
          "",
          random.text(random.int(1, 200)),
        ]),
        retain: true,
        qos,
      };
    case "retained status overwrite":
      return { category, topic: `${PREFIX}/status`, payload: random.pick(["online", "offline", "ON", ""]), retain: true, qos };
    case "own topic garbage":
      return { category, topic: `${PREFIX}/${random.pick(["meter", "session", "event"])}`, payload: random.bytes(random.int(0, 512)), retain: random.chance(0.2), qos };
    case "home assistant command":
      return {
        category,
        topic: `homeassistant/${random.pick(["switch", "binary_sensor", "sensor", "button"])}/${SIM_CHARGE_POINT_ID}_${random.pick(["relay", "charging", "power"])}/${random.pick(["set", "command", "cmd"])}`,
        payload: command(),
        retain: random.chance(0.3),
        qos,
      };
    case "home assistant config overwrite":
      return {
        category,
        topic: `homeassistant/${random.pick(["switch", "binary_sensor", "sensor"])}/${SIM_CHARGE_POINT_ID}_relay/config`,
        payload: random.pick([JSON.stringify({ name: "relay", command_topic: `${PREFIX}/relay/set`, state_topic: `${PREFIX}/state` }), "", random.text(50)]),
        retain: random.chance(0.5),
        qos,
      };
    case "random topic under the prefix":
      return { category, topic: `${PREFIX}/${random.text(random.int(1, 30)).replace(/[#+\s/]/g, "_")}`, payload: command(), retain: random.chance(0.2), qos };
    case "huge payload":
      return { category, topic: `${PREFIX}/${random.pick(["set", "relay", "cmd"])}`, payload: random.bytes(random.int(50_000, 250_000)), retain: false, qos };
  }
}

function mqttConfig(url: string): MqttConfig {
  const parsed = configSchema.shape.mqtt.parse({ url, username: AGENT_USER.username, password: AGENT_USER.password, homeAssistant: true });
  if (!parsed) throw new Error("mqtt section did not parse");
  return parsed;
}

async function connectPeer(url: string): Promise<MqttClient> {
  const client = mqttConnect(url, { protocolVersion: 4, username: PEER.username, password: PEER.password, reconnectPeriod: 0, connectTimeout: 5_000 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

function publish(client: MqttClient, message: Hostile): Promise<void> {
  return new Promise((resolve, reject) => {
    client.publish(message.topic, message.payload, { qos: message.qos, retain: message.retain }, (error) => (error ? reject(error) : resolve()));
  });
}

/** The retained `state` a new subscriber is given, parsed, or undefined if none came within 3 s. */
async function retainedState(url: string): Promise<unknown> {
  const observer = await observeMqtt(url, [`${PREFIX}/state`], { auth: PEER });
  try {
    const retained = await observer.waitFor("the retained state", (message) => message.retain, 3_000);
    return JSON.parse(retained.payload) as unknown;
  } catch {
    return undefined;
  } finally {
    await observer.close();
  }
}

let world: SimWorld;
let telemetry: Telemetry | undefined;

beforeAll(async () => {
  world = await startSimWorld({
    onStep: (state, event, commands) => telemetry?.onStep(state, event, commands),
    onSample: (sample) => telemetry?.onSample(sample),
  });
}, 120_000);

afterAll(async () => {
  await telemetry?.close(2_000);
  await world?.stop();
});

describe.each(BROKERS)(`MQTT fuzzing through $name (seed ${SEED}, FUZZ_SEED=${SEED} to replay)`, (kind) => {
  let broker: { url: string; stop(): Promise<void> };

  beforeAll(async () => {
    broker = await kind.start([AGENT_USER, PEER]);
    await telemetry?.close(2_000);
    telemetry = startTelemetry({ mqtt: mqttConfig(broker.url), chargePointId: SIM_CHARGE_POINT_ID, log: silentLogger() });
  }, 60_000);

  afterAll(async () => {
    await telemetry?.close(2_000);
    telemetry = undefined;
    await broker?.stop();
  });

  it(`${MESSAGES_PER_BROKER} hostile messages from a peer never close the relay, and the agent keeps publishing its own state`, async () => {
    const running = telemetry;
    if (!running) throw new Error("no telemetry");
    await waitUntil("the agent's telemetry connected", () => running.stats().connected, 30_000);
    const relayEdgesBefore = world.agent.relay.history().length;
    const peer = await connectPeer(broker.url);
    const random = new FuzzRandom(SEED);
    const counter = new CategoryCounter();
    try {
      for (let index = 0; index < MESSAGES_PER_BROKER; index++) {
        const message = hostileMessage(random);
        counter.add(message.category);
        await publish(peer, message).catch((error: unknown) => {
          throw new Error(`seed ${SEED} message ${index} (${message.category}) on ${message.topic}: the peer could not publish: ${String(error)}`);
        });
      }
      // The last word on the retained topics is the peer's: a forged "energized, relay closed" state.
      await publish(peer, {
        category: "final forged state",
        topic: `${PREFIX}/state`,
        payload: JSON.stringify({ phase: "energized", relayClosed: true, forged: true }),
        retain: true,
        qos: 1,
      });
    } finally {
      await new Promise<void>((resolve) => peer.end(false, {}, () => resolve()));
    }
    expect(counter.counts.size, `seed ${SEED}: ${counter.summary()}`).toBe(9);

    // The agent is alive and still stepping: a meter sample arrives after the barrage, and telemetry flows.
    const publishedBefore = running.stats().published;
    const stepsAt = world.agent.state().nowMs;
    await waitUntil("the agent stepping after the barrage", () => world.agent.state().nowMs > stepsAt, 10_000);
    expect(world.agent.relay.history().slice(relayEdgesBefore).filter((edge) => edge.closed), `seed ${SEED}: relay closed`).toEqual([]);
    expect(world.agent.relay.history().filter((edge) => edge.closed), `seed ${SEED}: relay ever closed`).toEqual([]);
    expect(world.agent.state().phase).toBe("idle");
    expect(world.agent.state().session).toBeUndefined();

    // Until the agent's state changes, a new subscriber meets the peer's retained forgery (the agent does not
    // watch its own topics) ...
    expect(await retainedState(broker.url)).toEqual({ phase: "energized", relayClosed: true, forged: true });
    // ... and its next state change (an EV plugs in) puts its own, true state back over it.
    world.hwSim.board.ev.plug();
    await waitUntil("telemetry publishing after the barrage", () => running.stats().published > publishedBefore, 15_000);
    await waitUntil("the agent saw the EV", () => world.agent.state().evPresent, 15_000);
    // A subscriber that arrives now gets the agent's state as the retained one (polled: the publish is on its way).
    let restored: unknown;
    try {
      await waitUntil("the agent's own retained state", async () => {
        restored = await retainedState(broker.url);
        return restored !== undefined && !JSON.stringify(restored).includes("forged");
      }, 20_000);
      expect(restored).toMatchObject({ phase: "idle", sessionId: null, relayClosed: false, evPresent: true, fault: null });
    } finally {
      world.hwSim.board.ev.unplug();
    }
    expect(world.agent.relay.history().filter((edge) => edge.closed), `seed ${SEED}: relay ever closed`).toEqual([]);
  }, 120_000);
});

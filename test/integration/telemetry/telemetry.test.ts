/**
 * The agent's telemetry (DESIGN §5.3) as an operator meets it, on both brokers a pile may talk to: the embedded
 * aedes broker (`trustpile sim`) and Debian's mosquitto (an independent peer). Both require a username and password.
 *
 * The agent runs in its own process (test/fixtures/agent-process.ts with an `mqtt` section), so a SIGKILL drops its
 * connection the way a crashed or unplugged pile does, and only the broker can say `offline`: the Last Will.
 * An operator's subscriber, connected before the agent, records everything; the chain is the reference for the
 * session messages (deposit, authorize and settle transactions, settled Wh), and the agent's own stdout report of
 * its phase changes is the reference for their order.
 */
import { expectSettledSessionPhases } from "../../helpers/session-phases.ts";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect as mqttConnect, ErrorWithReasonCode } from "mqtt";
import { z } from "zod";
import { SessionStatus } from "../../../agent/chain/contracts.ts";
import { configSchema } from "../../../agent/config/schema.ts";
import { createLogger } from "../../../agent/logging.ts";
import { startTelemetry } from "../../../agent/telemetry/index.ts";
import { startEmbeddedBroker } from "../../../agent/telemetry/embedded-broker.ts";
import type { MqttConfig } from "../../../agent/telemetry/types.ts";
import { startAgentWorld, waitUntil, type AgentProcess, type AgentWorld, type Pile } from "../../helpers/agent-world.ts";
import { observeMqtt, startMosquitto, type MqttObserver, type MqttUser, type ObservedMessage } from "../../helpers/mosquitto.ts";

const AGENT_USER: MqttUser = { username: "pile-agent", password: "agent-secret-1" };
const OPERATOR: MqttUser = { username: "operator", password: "operator-secret-2" };
const WRONG_PASSWORD = "not-the-agent-secret-3";

interface Broker {
  url: string;
  port: number;
  stop(): Promise<void>;
}

interface BrokerKind {
  name: string;
  id: string;
  start(users: MqttUser[]): Promise<Broker>;
  /** The CONNACK return code (MQTT 3.1.1) each broker answers a wrong password with. */
  refusedCode: number;
  refusedMessage: string;
}

const BROKERS: BrokerKind[] = [
  {
    name: "the embedded aedes broker",
    id: "embedded",
    start: (users) => startEmbeddedBroker({ users }),
    refusedCode: 4,
    refusedMessage: "Connection refused: Bad username or password",
  },
  {
    // mosquitto 2.0 answers any failed password check with 5 (not authorised), not 4.
    name: "mosquitto",
    id: "mosquitto",
    start: (users) => startMosquitto({ users }),
    refusedCode: 5,
    refusedMessage: "Connection refused: Not authorized",
  },
];

/** The `mqtt` config section as the loader would produce it (defaults filled in by the real schema). */
function mqttConfig(url: string, user: MqttUser): MqttConfig {
  const parsed = configSchema.shape.mqtt.parse({ url, username: user.username, password: user.password, homeAssistant: true });
  if (!parsed) throw new Error("mqtt section did not parse");
  return parsed;
}

const txHash = z.string().regex(/^0x[0-9a-f]{64}$/);
const sessionMessage = z.object({
  ts: z.iso.datetime(),
  sessionId: z.string().regex(/^[0-9]+$/),
  phase: z.string(),
  previousPhase: z.string(),
  ev: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  depositWei: z.string().regex(/^[0-9]+$/),
  priceWeiPerKWh: z.string().regex(/^[0-9]+$/),
  budgetWh: z.number().int(),
  meterStartWh: z.number().int().nullable(),
  energyWh: z.number().int(),
  stopReason: z.string().nullable(),
  depositTxHash: txHash,
  authorizeTxHash: txHash.nullable(),
  settleTxHash: txHash.nullable(),
});
type SessionMessage = z.infer<typeof sessionMessage>;

let world: AgentWorld;
const piles = new Map<string, Pile>();

beforeAll(async () => {
  world = await startAgentWorld();
  for (const kind of BROKERS) piles.set(kind.id, await world.registerPile(`cp-telemetry-${kind.id}`));
  await world.intervalMining();
}, 120_000);

afterAll(async () => {
  await world?.close();
});

async function txOf(eventName: "SessionOpened" | "SessionAuthorized" | "SessionSettled", sessionId: bigint): Promise<string[]> {
  const { ledger } = world;
  const logs = await ledger.queryFilter(ledger.getEvent(eventName), world.fixture.deployment.deployedAtBlock ?? 0);
  return logs.filter((log) => ledger.interface.parseLog(log)?.args[0] === sessionId).map((log) => log.transactionHash);
}

describe.each(BROKERS)("telemetry through $name", (kind) => {
  let broker: Broker;
  let pile: Pile;
  let agent: AgentProcess;
  /** Connected before the agent started: sees every message the agent publishes, live. */
  let operator: MqttObserver;
  let prefix: string;
  const observers: MqttObserver[] = [];

  beforeAll(async () => {
    pile = piles.get(kind.id)!;
    prefix = `trustpile/${pile.chargePointId}`;
    broker = await kind.start([AGENT_USER, OPERATOR]);
    operator = await observeMqtt(broker.url, [`${prefix}/#`, "homeassistant/#"], { auth: OPERATOR });
    observers.push(operator);
    agent = world.startAgent(pile, { mqtt: mqttConfig(broker.url, AGENT_USER) });
    await agent.waitForLine("the agent to be ready", (line) => line.ready === true, 30_000);
  }, 60_000);

  afterAll(async () => {
    await agent?.kill9();
    for (const observer of observers) await observer.close();
    await broker?.stop();
  });

  const ofTopic = (topic: string) => (message: ObservedMessage) => message.topic === `${prefix}/${topic}`;

  it("publishes `online` and the state retained: a subscriber that connects after the agent gets them at once", async () => {
    await operator.waitFor("status online (live)", (m) => ofTopic("status")(m) && m.payload === "online", 15_000);
    // Idle and unplugged, the state changes no more once the first meter reading is in: what a late subscriber
    // gets first must then be the newest state, retained (a live one could otherwise overtake the retained copy).
    await operator.waitFor("a state with a meter reading", (m) => ofTopic("state")(m) && JSON.parse(m.payload).powerW !== null, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const late = await observeMqtt(broker.url, [`${prefix}/status`, `${prefix}/state`], { auth: OPERATOR });
    observers.push(late);
    const status = await late.waitFor("the retained status", ofTopic("status"), 2_000);
    expect(status).toMatchObject({ payload: "online", retain: true });
    const state = await late.waitFor("the retained state", ofTopic("state"), 2_000);
    expect(state.retain).toBe(true);
    expect(state.payload).toBe(operator.messages.filter(ofTopic("state")).at(-1)?.payload);
    expect(JSON.parse(state.payload)).toMatchObject({ phase: "idle", sessionId: null, relayClosed: false, evPresent: false, fault: null, powerW: 0 });
  });

  it(
    "publishes every phase of a session in order, with the deposit, authorize and settle transactions and the settled Wh",
    async () => {
      world.hwSim.board.ev.plug();
      const registerBeforeWh = world.registerWh();
      const from = operator.messages.length;
      const { sessionId, depositWei } = await world.openDeposit(pile, 100);
      await waitUntil(
        `session ${sessionId} settled on chain`,
        async () => (await world.ledger.session(sessionId)).status === SessionStatus.Settled,
        60_000,
        200,
      );
      const last = await operator.waitFor(
        "the session message that ends the session",
        (m) => ofTopic("session")(m) && JSON.parse(m.payload).sessionId === sessionId.toString() && JSON.parse(m.payload).phase === "idle",
        15_000,
        from,
      );
      world.hwSim.board.ev.unplug();
      const registerAfterWh = world.registerWh();

      const messages: SessionMessage[] = operator.messages
        .slice(from, operator.messages.indexOf(last) + 1)
        .filter(ofTopic("session"))
        .map((m) => sessionMessage.parse(JSON.parse(m.payload)) as SessionMessage)
        .filter((m) => m.sessionId === sessionId.toString());

      // The agent's own record of this session's phases (stdout of the agent process, in processing order).
      const agentPhases: string[] = [];
      for (const line of agent.lines) {
        if (line.sessionId === sessionId.toString() && line.phase && agentPhases.at(-1) !== line.phase) agentPhases.push(line.phase);
      }
      expectSettledSessionPhases(agentPhases);
      // Then the session leaves the core: one last message, with the phase the pile went to.
      expect(messages.map((m) => m.phase)).toEqual([...agentPhases, "idle"]);
      // Each message names the phase it left: the chain of transitions has no gap.
      expect(messages.map((m) => m.previousPhase)).toEqual(["idle", ...agentPhases]);

      const [depositTx] = await txOf("SessionOpened", sessionId);
      const [authorizeTx] = await txOf("SessionAuthorized", sessionId);
      const settleTxs = await txOf("SessionSettled", sessionId);
      expect(settleTxs).toHaveLength(1);
      const settled = await world.ledger.session(sessionId);
      for (const message of messages) {
        expect(message.depositTxHash).toBe(depositTx);
        expect(message.depositWei).toBe(depositWei.toString());
        expect(message.ev.toLowerCase()).toBe(world.ev.address.toLowerCase());
      }
      const byPhase = new Map(messages.map((m) => [m.phase, m]));
      expect(byPhase.get("depositPending")?.authorizeTxHash).toBeNull();
      expect(byPhase.get("energized")?.authorizeTxHash).toBe(authorizeTx);
      expect(byPhase.get("energized")?.meterStartWh).toBe(registerBeforeWh);
      expect(byPhase.get("settling")?.settleTxHash).toBeNull();
      expect(byPhase.get("stopping")?.stopReason).toBe("budget");
      const end = byPhase.get("idle")!;
      // Null here when the chain watcher's SessionSettled log closed the session before the tx sender's receipt
      // did: the runtime turns that log into `sessionClosedOnChain` without its transaction hash.
      expect(end.settleTxHash, "settleTxHash of the session's last message").toBe(settleTxs[0]);
      expect(end.energyWh).toBe(Number(settled.energyWh));
      expect(end.energyWh).toBe(registerAfterWh - registerBeforeWh);
      expect(end.meterStartWh).toBe(registerBeforeWh);
      // Every notify command of the core for this session is an `event`, in order (the agent's own record).
      const events = operator.messages
        .slice(from, operator.messages.indexOf(last) + 2)
        .filter(ofTopic("event"))
        .map((m) => JSON.parse(m.payload) as { level: string; message: string; sessionId: string | null })
        .filter((e) => e.sessionId === sessionId.toString());
      const notified = agent.lines.flatMap((line) => (line.notify && line.notify.sessionId === sessionId.toString() ? [line.notify] : []));
      expect(notified.map((n) => n.message)).toEqual(expect.arrayContaining([`session ${sessionId}: energized`, `session ${sessionId}: stopping (budget)`]));
      expect(events).toEqual(notified.map((n) => ({ ts: expect.any(String), level: "info", message: n.message, sessionId: n.sessionId })));
      // Published while the session ran: the state follows it, the meter reports the register.
      const meters = operator.messages.slice(from).filter(ofTopic("meter")).map((m) => JSON.parse(m.payload) as { energyWh: number });
      expect(meters.length).toBeGreaterThan(5);
      expect(meters.at(-1)?.energyWh).toBe(registerAfterWh);
    },
    90_000,
  );

  it("announces Home Assistant discovery configs (retained JSON) whose topics are ones the agent publishes", async () => {
    const published = new Set(operator.messages.filter((m) => m.topic.startsWith(`${prefix}/`)).map((m) => m.topic));
    expect([...published].sort()).toEqual(expect.arrayContaining([`${prefix}/meter`, `${prefix}/session`, `${prefix}/state`, `${prefix}/status`]));

    const late = await observeMqtt(broker.url, ["homeassistant/#"], { auth: OPERATOR });
    observers.push(late);
    await late.waitFor("a discovery config", (m) => m.topic.endsWith("/config"), 2_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const configs = late.messages.filter((m) => m.topic.includes(`/${pile.chargePointId}_`));
    expect(configs.length).toBeGreaterThanOrEqual(3);
    const named: string[] = [];
    for (const config of configs) {
      expect(config.topic).toMatch(new RegExp(`^homeassistant/[a-z_]+/${pile.chargePointId}_[a-zA-Z0-9_-]+/config$`));
      expect(config.retain, `${config.topic} retained`).toBe(true);
      const body = JSON.parse(config.payload) as Record<string, unknown>;
      for (const key of ["state_topic", "availability_topic", "json_attributes_topic"]) {
        if (typeof body[key] === "string") named.push(body[key]);
      }
      if (Array.isArray(body.availability)) {
        for (const entry of body.availability as { topic?: unknown }[]) if (typeof entry.topic === "string") named.push(entry.topic);
      }
      expect(body.state_topic ?? body.json_attributes_topic, `${config.topic} names a topic to read`).toBeDefined();
    }
    expect(named.length).toBeGreaterThanOrEqual(configs.length);
    for (const topic of named) expect(published, `a discovery config names ${topic}`).toContain(topic);
  });

  it("has the broker say `offline` (the Last Will, retained) when the agent process is killed with SIGKILL", async () => {
    const from = operator.messages.length;
    const killedAtMs = Date.now();
    await agent.kill9();
    const will = await operator.waitFor("status offline", (m) => ofTopic("status")(m) && m.payload === "offline", 10_000, from);
    // The kernel closes the dead process's socket, so the broker publishes the Will at once, not after keepalive.
    expect(will.receivedAtMs - killedAtMs).toBeLessThan(3_000);
    const late = await observeMqtt(broker.url, [`${prefix}/status`], { auth: OPERATOR });
    observers.push(late);
    expect(await late.waitFor("the retained status", ofTopic("status"), 2_000)).toMatchObject({ payload: "offline", retain: true });
  });

  it("refuses a wrong password: the broker's CONNACK code, and the telemetry reports it and stays disconnected", async () => {
    const refused = await new Promise<unknown>((resolve) => {
      const client = mqttConnect(broker.url, { username: AGENT_USER.username, password: WRONG_PASSWORD, protocolVersion: 4, reconnectPeriod: 0 });
      client.once("connect", () => resolve(new Error("connected with a wrong password")));
      client.once("error", (error) => {
        client.end(true);
        resolve(error);
      });
    });
    expect(refused).toBeInstanceOf(ErrorWithReasonCode);
    expect((refused as ErrorWithReasonCode).code).toBe(kind.refusedCode);
    expect((refused as Error).message).toBe(kind.refusedMessage);

    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString("utf8").split("\n").filter((text) => text.length > 0));
        done();
      },
    });
    const telemetry = startTelemetry({
      mqtt: mqttConfig(broker.url, { username: AGENT_USER.username, password: WRONG_PASSWORD }),
      chargePointId: pile.chargePointId,
      log: createLogger({ destination: sink, level: "debug", name: "telemetry-test" }),
    });
    try {
      await waitUntil("the telemetry to log the refusal", () => lines.some((text) => /bad username or password|not authori[sz]ed/i.test(text)), 10_000);
      const line = JSON.parse(lines.find((text) => /bad username or password|not authori[sz]ed/i.test(text))!) as { level: string; msg: string };
      expect(["warn", "error"]).toContain(line.level);
      expect(line.msg).toMatch(new RegExp(kind.refusedMessage.replace("Connection refused: ", ""), "i"));
      expect(lines.join("\n"), "the password never reaches the log").not.toContain(WRONG_PASSWORD);
      const stats = telemetry.stats();
      expect(stats.connected).toBe(false);
      expect(stats.published).toBe(0);
    } finally {
      await telemetry.close(500);
    }
  });
});

/**
 * "A broker outage only drops or buffers telemetry" (DESIGN §3, Telemetry), against Debian's mosquitto: in the
 * middle of a session the broker is stopped for 60 s and then started again on the same port.
 *
 * - The control loop does not notice: the session stops at its budget, is signed and settles on chain while the
 *   broker is still down, and the settled Wh equals the meter register's delta.
 * - Nothing that matters is lost: every `session` and `event` message the agent made (its own record: the phase
 *   and notify lines of the agent process) reaches an operator's subscriber after the restart, in order. QoS 1
 *   may deliver a message twice; duplicates are removed by content (every payload carries its own `ts`).
 * - The backlog is bounded: with `bufferLimit: 50` and a meter message per poll (`meterIntervalMs: 0`), meter
 *   samples are dropped, sessions and events are not, and the buffer never held more than 50.
 *
 * The operator's subscriber has a persistent session (clean: false) on a broker with persistence, so the messages
 * the agent flushes right after the restart queue for it even if it reconnects after the agent.
 */
import { expectSettledSessionPhases } from "../../helpers/session-phases.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionStatus } from "../../../agent/chain/contracts.ts";
import { configSchema } from "../../../agent/config/schema.ts";
import { freePort } from "../../../agent/net.ts";
import type { MqttConfig } from "../../../agent/telemetry/types.ts";
import { sleep, startAgentWorld, waitUntil, type AgentLine, type AgentProcess, type AgentWorld, type Pile } from "../../helpers/agent-world.ts";
import { observeMqtt, startMosquitto, type Mosquitto, type MqttObserver, type MqttUser } from "../../helpers/mosquitto.ts";

const OUTAGE_MS = 60_000;
const BUFFER_LIMIT = 50;
const COVERS_WH = 200;
const AGENT_USER: MqttUser = { username: "pile-agent", password: "agent-secret-1" };
const OPERATOR: MqttUser = { username: "operator", password: "operator-secret-2" };

let world: AgentWorld;
let pile: Pile;
let broker: Mosquitto | undefined;
let operator: MqttObserver | undefined;
let agent: AgentProcess | undefined;
let persistenceDir: string;

beforeAll(async () => {
  persistenceDir = mkdtempSync(join(tmpdir(), "trustpile-broker-outage-"));
  world = await startAgentWorld();
  pile = await world.registerPile("cp-broker-outage");
  await world.intervalMining();
}, 120_000);

afterAll(async () => {
  await agent?.kill9();
  await operator?.close();
  await broker?.stop();
  await world?.close();
  rmSync(persistenceDir, { recursive: true, force: true });
});

interface SessionPayload {
  ts: string;
  sessionId: string;
  phase: string;
  previousPhase: string | null;
  energyWh: number;
  settleTxHash: string | null;
}

interface EventPayload {
  ts: string;
  level: string;
  message: string;
  sessionId: string | null;
}

/** Removes QoS 1 redeliveries: the same payload on the same topic is the same message (it carries its `ts`). */
function unique<T>(payloads: readonly string[], parse: (payload: string) => T): { items: T[]; duplicates: number } {
  const seen = new Set<string>();
  const items: T[] = [];
  for (const payload of payloads) {
    if (seen.has(payload)) continue;
    seen.add(payload);
    items.push(parse(payload));
  }
  return { items, duplicates: payloads.length - items.length };
}

const LEVEL_OF: Record<string, string> = { session: "info", warning: "warning", fault: "fault" };

describe("telemetry through a 60 s mosquitto outage in the middle of a session", () => {
  it(
    "charges and settles on time while the broker is down, then delivers every session and event message in order, with a bounded buffer",
    async () => {
      const port = await freePort();
      const users = [AGENT_USER, OPERATOR];
      broker = await startMosquitto({ port, users, persistenceDir });
      const prefix = `trustpile/${pile.chargePointId}`;
      operator = await observeMqtt(broker.url, [`${prefix}/#`], { auth: OPERATOR, persistentClientId: "operator-outage-test", reconnectPeriodMs: 250 });
      const mqtt: MqttConfig | undefined = configSchema.shape.mqtt.parse({
        url: broker.url,
        username: AGENT_USER.username,
        password: AGENT_USER.password,
        homeAssistant: false,
        meterIntervalMs: 0,
        bufferLimit: BUFFER_LIMIT,
      });
      if (!mqtt) throw new Error("mqtt section did not parse");
      const running = world.startAgent(pile, { mqtt });
      agent = running;
      await running.waitForLine("the agent to be ready", (line) => line.ready === true, 30_000);
      await operator.waitFor("status online", (m) => m.topic === `${prefix}/status` && m.payload === "online", 15_000);

      world.hwSim.board.ev.plug();
      const registerBeforeWh = world.registerWh();
      const { sessionId } = await world.openDeposit(pile, COVERS_WH);
      const isSession = (line: AgentLine): boolean => line.sessionId === sessionId.toString();
      const energized = await running.waitForLine("energized", (line) => isSession(line) && line.phase === "energized", 30_000);

      // ---- the outage: mosquitto goes away with the session running
      await broker.stop();
      const downAtMs = Date.now();
      const stopping = await running.waitForLine("stopping at the budget", (line) => isSession(line) && line.phase === "stopping", 40_000);
      await waitUntil(
        `session ${sessionId} settled on chain`,
        async () => (await world.ledger.session(sessionId)).status === SessionStatus.Settled,
        30_000,
        200,
      );
      const settledAtMs = Date.now();
      await running.waitForLine("idle after the settlement", (line) => line.phase === "idle" && line.sessionId === null && line.receivedAtMs >= stopping.receivedAtMs, 15_000);
      const registerAfterWh = world.registerWh();
      world.hwSim.board.ev.unplug();
      expect(settledAtMs - downAtMs, "settled while the broker was down").toBeLessThan(OUTAGE_MS);

      // On time: the budget stop came at the budget (the meter loop kept its pace), and the settlement right after.
      const stopAtWh = COVERS_WH - pile.core.stopMarginWh;
      expect(stopping.stopReason).toBe("budget");
      expect(stopping.stopAtWh).toBe(stopAtWh);
      // One poll (250 ms) at ~9 Wh/s is ~3 Wh past the stop point; 15 Wh would mean the loop stalled for ~1.5 s.
      expect(stopping.meterLastWh! - stopping.meterStartWh!).toBeGreaterThanOrEqual(stopAtWh);
      expect(stopping.meterLastWh! - stopping.meterStartWh!).toBeLessThan(stopAtWh + 15);
      expect(settledAtMs - stopping.receivedAtMs, "stop to settled on chain").toBeLessThan(15_000);
      const settled = await world.ledger.session(sessionId);
      expect(settled.energyWh).toBe(BigInt(registerAfterWh - registerBeforeWh));
      expect(Number(settled.energyWh)).toBeLessThan(COVERS_WH);
      expect(energized.receivedAtMs).toBeLessThan(downAtMs);

      // ---- the broker comes back on the same port, with the subscriptions and retained messages it saved
      await sleep(Math.max(0, downAtMs + OUTAGE_MS - Date.now()));
      broker = await startMosquitto({ port, users, persistenceDir });
      const upAtMs = Date.now();
      expect(upAtMs - downAtMs).toBeGreaterThanOrEqual(OUTAGE_MS);
      const closed = await operator.waitFor(
        "the session's last message after the restart",
        (m) => m.topic === `${prefix}/session` && m.receivedAtMs >= upAtMs && (JSON.parse(m.payload) as SessionPayload).phase === "idle",
        // The telemetry's reconnect backoff doubles up to 30 s: after a 60 s outage its next try may be ~30 s away.
        45_000,
      );
      await operator.waitFor("status online again", (m) => m.topic === `${prefix}/status` && m.payload === "online" && m.receivedAtMs >= upAtMs, 15_000);
      // Let the flush finish (it ends with the newest state), then stop the agent cleanly for its stats.
      await sleep(1_000);
      await running.terminate();
      const stats = running.lines.find((line) => line.telemetry !== undefined)?.telemetry;
      expect(stats, "telemetry stats printed at the clean stop").toBeDefined();

      // ---- session messages: the agent's own phases for this session, then "idle"; nothing lost, in order
      const sessionPayloads = operator.messages.filter((m) => m.topic === `${prefix}/session`).map((m) => m.payload);
      const sessions = unique(sessionPayloads, (p) => JSON.parse(p) as SessionPayload).items.filter((s) => s.sessionId === sessionId.toString());
      const agentPhases: string[] = [];
      for (const line of running.lines) {
        if (isSession(line) && line.phase && agentPhases.at(-1) !== line.phase) agentPhases.push(line.phase);
      }
      expectSettledSessionPhases(agentPhases);
      expect(sessions.map((s) => s.phase)).toEqual([...agentPhases, "idle"]);
      expect(sessions.map((s) => s.previousPhase)).toEqual(["idle", ...agentPhases]);
      expect(sessions.at(-1)?.energyWh).toBe(Number(settled.energyWh));
      const [settleLog] = (await world.ledger.queryFilter(world.ledger.getEvent("SessionSettled"), world.fixture.deployment.deployedAtBlock ?? 0)).filter(
        (log) => world.ledger.interface.parseLog(log)?.args[0] === sessionId,
      );
      expect(sessions.at(-1)?.settleTxHash, "settleTxHash of the last session message").toBe(settleLog?.transactionHash);
      expect(JSON.parse(closed.payload)).toEqual(sessions.at(-1));
      // At least the messages made during the outage arrived after it.
      expect(operator.messages.filter((m) => m.topic === `${prefix}/session` && m.receivedAtMs >= upAtMs).length).toBeGreaterThanOrEqual(3);

      // ---- event messages: exactly the core's notify commands, in order
      const eventPayloads = operator.messages.filter((m) => m.topic === `${prefix}/event`).map((m) => m.payload);
      const events = unique(eventPayloads, (p) => JSON.parse(p) as EventPayload).items;
      const notified = running.lines.flatMap((line) => (line.notify ? [line.notify] : []));
      expect(notified.length).toBeGreaterThanOrEqual(5);
      expect(events.map((e) => ({ level: e.level, message: e.message, sessionId: e.sessionId }))).toEqual(
        notified.map((n) => ({ level: LEVEL_OF[n.kind], message: n.message, sessionId: n.sessionId })),
      );

      // ---- the buffer: bounded, and only meter samples (and superseded states) made room
      expect(stats!.bufferLimit).toBe(BUFFER_LIMIT);
      expect(stats!.maxBuffered).toBeGreaterThan(BUFFER_LIMIT / 2);
      expect(stats!.maxBuffered).toBeLessThanOrEqual(BUFFER_LIMIT);
      // 60 s at 4 polls a second is ~240 meter samples: most had to go.
      expect(stats!.dropped.meter ?? 0).toBeGreaterThan(100);
      expect(stats!.dropped.session ?? 0).toBe(0);
      expect(stats!.dropped.event ?? 0).toBe(0);
    },
    150_000,
  );
});

/**
 * The pile's OCPP 2.0.1 side against a hostile CSMS — the 2.0.1 twin of test/integration/ocpp/malformed-frames.test.ts
 * (issue 11 item 3). A raw WebSocket server on loopback answers the pile like a CSMS would, and in the middle of a real
 * session (anvil, contracts, hw-sim, agent) sends 1,000 frames from a seeded generator in the same 13 categories —
 * broken JSON, wrong shapes, unknown message types, unknown actions, payloads of the wrong types, missing or extra
 * fields, values outside the enums, oversize strings, and results/errors for calls the pile never made. Each must get
 * exactly the CallError OCPP-J 2.0.1 prescribes — with 2.0.1's names: FormatViolation (1.6: FormationViolation) and,
 * as ocpp-rpc spells it for 2.0.1 (the OCA kept 1.6's spelling until 2.1), OccurenceConstraintViolation — or no reply
 * where a CALLRESULT or CALLERROR is never answered; the connection must stay up, the agent must not crash, no Reset
 * or availability change may take effect, and the session must settle on the register delta with the relay closed
 * once. Replay with FUZZ_SEED=<seed>.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { SessionStatus, connectLedger } from "../../agent/chain/contracts.ts";
import { openSession } from "../../agent/chain/operations.ts";
import { cpIdOf } from "../../agent/chain/session-total.ts";
import { startOcpp, type ResetKind, type RunningOcpp } from "../../agent/ocpp/index.ts";
import { silentLogger } from "../../agent/logging.ts";
import { SIM_CHARGE_POINT_ID, SIM_PRICE_WEI_PER_KWH, startSimWorld, waitUntil, type SimWorld } from "../../agent/sim/world.ts";
import { mulberry32 } from "../helpers/prng.ts";
import { fuzzSeed } from "./fuzz-random.ts";

const SEED = fuzzSeed(20261203);
const FRAMES = 1_000;
const CP_ID = cpIdOf(SIM_CHARGE_POINT_ID);

type Frame = { category: string; text: string } & (
  | { reply: "none" }
  /** A CALLERROR with this code, for this message id ("-1" when the frame carries no usable id). */
  | { reply: "error"; messageId: string; code: string }
);

/** The frames, from a seed; every category names the reply OCPP-J 2.0.1 (as ocpp-rpc implements it) requires. */
function hostileFrames(seed: number, count: number): Frame[] {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const junk = (length: number): string =>
    Array.from({ length }, () => String.fromCharCode(32 + Math.floor(random() * 95))).join("");
  const call = (id: string, action: string, payload: unknown): string => JSON.stringify([2, id, action, payload]);
  const idToken = { idToken: "fuzz-token", type: "Central" };
  const makers: ((id: string) => Frame)[] = [
    // Not JSON at all: no id to answer to, so the error goes to message id "-1".
    () => ({ category: "bad JSON", text: `[2, "${junk(6)}", ${junk(1 + Math.floor(random() * 40))}`, reply: "error", messageId: "-1", code: "RpcFrameworkError" }),
    () => ({ category: "not an array", text: pick([`{"action":"Reset"}`, "42", `"Heartbeat"`, "null", "true"]), reply: "error", messageId: "-1", code: "RpcFrameworkError" }),
    (id) => ({ category: "message type not a number", text: JSON.stringify(["2", id, "Reset", { type: "Immediate" }]), reply: "error", messageId: "-1", code: "RpcFrameworkError" }),
    (id) => ({ category: "message id not a string", text: JSON.stringify([2, Number(id.replace(/\D/g, "")), "Reset", { type: "Immediate" }]), reply: "error", messageId: "-1", code: "RpcFrameworkError" }),
    (id) => ({ category: "unknown message type", text: JSON.stringify([pick([0, 1, 5, 6, 7, 99]), id, "Reset", {}]), reply: "error", messageId: "-1", code: "MessageTypeNotSupported" }),
    (id) => ({ category: "unknown action", text: call(id, pick(["FooBar", "StartCharging", "reset", "RemoteStartTransaction"]), {}), reply: "error", messageId: id, code: "NotImplemented" }),
    (id) => ({
      category: "wrong type",
      text: pick([
        call(id, "RequestStartTransaction", { idToken: Math.floor(random() * 1e6), remoteStartId: 1 }),
        call(id, "Reset", { type: 1 }),
        call(id, "RequestStopTransaction", { transactionId: 5 }),
        call(id, "ChangeAvailability", { operationalStatus: 3 }),
        call(id, "GetVariables", { getVariableData: "HeartbeatInterval" }),
      ]),
      reply: "error",
      messageId: id,
      code: "TypeConstraintViolation",
    }),
    (id) => ({
      category: "missing field",
      text: pick([call(id, "RequestStopTransaction", {}), call(id, "Reset", {}), call(id, "TriggerMessage", {}), call(id, "RequestStartTransaction", { idToken })]),
      reply: "error",
      messageId: id,
      code: "OccurenceConstraintViolation",
    }),
    (id) => ({
      category: "extra field",
      text: pick([
        call(id, "Reset", { type: "Immediate", force: true }),
        call(id, "TriggerMessage", { requestedMessage: "Heartbeat", now: 1 }),
        call(id, "RequestStopTransaction", { transactionId: "1", reason: "x" }),
      ]),
      reply: "error",
      messageId: id,
      code: "PropertyConstraintViolation",
    }),
    (id) => ({
      category: "outside the enum",
      text: pick([
        call(id, "Reset", { type: pick(["Medium", "immediate", "Soft", ""]) }),
        call(id, "TriggerMessage", { requestedMessage: "Coffee" }),
        call(id, "ChangeAvailability", { operationalStatus: "Sleep" }),
      ]),
      reply: "error",
      messageId: id,
      code: "FormatViolation",
    }),
    (id) => ({
      category: "oversize",
      text: pick([
        call(id, "RequestStartTransaction", { idToken: { idToken: "x".repeat(37 + Math.floor(random() * 200_000)), type: "Central" }, remoteStartId: 1 }),
        call(id, "RequestStopTransaction", { transactionId: "t".repeat(37 + Math.floor(random() * 5_000)) }),
        call(id, "SetVariables", {
          setVariableData: [{ attributeValue: "v".repeat(1_001 + Math.floor(random() * 10_000)), component: { name: "OCPPCommCtrlr" }, variable: { name: "HeartbeatInterval" } }],
        }),
      ]),
      reply: "error",
      messageId: id,
      code: "FormatViolation",
    }),
    // Answers to calls the pile never made: OCPP-J never answers a CALLRESULT or CALLERROR.
    (id) => ({ category: "unexpected result", text: JSON.stringify([3, id, { status: "Accepted" }]), reply: "none" }),
    (id) => ({ category: "unexpected error", text: JSON.stringify([4, id, "GenericError", junk(12), {}]), reply: "none" }),
  ];
  return Array.from({ length: count }, (_, index) => pick(makers)(`fuzz-${seed}-${index}`));
}

/** What a permissive 2.0.1 CSMS answers to the pile's own calls (strict mode on the pile checks these too). */
function csmsAnswer(action: string, params: Record<string, unknown>): Record<string, unknown> {
  const now = new Date().toISOString();
  switch (action) {
    case "BootNotification":
      return { status: "Accepted", currentTime: now, interval: 300 };
    case "Heartbeat":
      return { currentTime: now };
    case "Authorize":
      return { idTokenInfo: { status: "Accepted" } };
    case "TransactionEvent":
      return params.idToken === undefined ? {} : { idTokenInfo: { status: "Accepted" } };
    default:
      return {};
  }
}

interface HostileCsms {
  url: string;
  /** Messages from the pile that are not its own calls (its replies to our frames), in arrival order. */
  replies: unknown[][];
  /** Actions of the pile's own calls, in order. */
  pileCalls: string[];
  connections: number;
  socket(): WebSocket;
  close(): Promise<void>;
}

async function startHostileCsms(): Promise<HostileCsms> {
  const server = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: (protocols) => (protocols.has("ocpp2.0.1") ? "ocpp2.0.1" : false) });
  await once(server, "listening");
  let current: WebSocket | undefined;
  const csms: HostileCsms = {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    replies: [],
    pileCalls: [],
    connections: 0,
    socket: () => {
      if (!current) throw new Error("the pile is not connected");
      return current;
    },
    close: async () => {
      for (const client of server.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on("connection", (socket) => {
    current = socket;
    csms.connections += 1;
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as unknown[];
      if (message[0] === 2) {
        const [, messageId, action, params] = message as [number, string, string, Record<string, unknown>];
        csms.pileCalls.push(action);
        socket.send(JSON.stringify([3, messageId, csmsAnswer(action, params)]));
        return;
      }
      csms.replies.push(message);
    });
  });
  return csms;
}

let world: SimWorld | undefined;
let ocpp: RunningOcpp | undefined;
let csms: HostileCsms | undefined;
afterEach(async () => {
  await ocpp?.stop();
  await csms?.close();
  await world?.stop();
  ocpp = undefined;
  csms = undefined;
  world = undefined;
});

describe("OCPP 2.0.1: 1,000 hostile frames in the middle of a session", () => {
  it(`answers each with the CallError 2.0.1 names (or nothing), keeps the connection, and the session settles (seed ${SEED}, FUZZ_SEED=${SEED} to replay)`, async () => {
    const resets: ResetKind[] = [];
    csms = await startHostileCsms();
    const w = (world = await startSimWorld());
    ocpp = startOcpp({
      config: { url: csms.url, version: "2.0.1", connectorId: 1, vendor: "trustpile", model: "trustpile-cp", reconnectMaxDelayS: 60 },
      chargePointId: SIM_CHARGE_POINT_ID,
      confirmations: w.core.confirmations,
      agent: w.agent,
      journal: w.journal,
      log: silentLogger(),
      onReset: (kind) => void resets.push(kind),
    });
    const running = ocpp;
    await waitUntil("the pile's boot accepted", () => running.isAccepted(), 15_000);

    const registerBefore = w.registerWh();
    w.hwSim.board.ev.plug();
    // Small enough to settle soon after the frames (the sim EV draws ~9 Wh/s), large enough to outlast most of them.
    const deposit = (250n * SIM_PRICE_WEI_PER_KWH) / 1000n;
    const { sessionId } = await openSession(connectLedger(w.deployment.ChargingLedger, w.evWallet), CP_ID, 20_000, deposit);
    await waitUntil("energy flowing", () => w.registerWh() - registerBefore >= 20, 60_000);

    const frames = hostileFrames(SEED, FRAMES);
    const hostile = csms;
    const socket = hostile.socket();
    const byCategory = new Map<string, number>();
    for (const [index, frame] of frames.entries()) {
      byCategory.set(frame.category, (byCategory.get(frame.category) ?? 0) + 1);
      const repliesBefore = hostile.replies.length;
      socket.send(frame.text);
      if (frame.reply === "none") continue;
      await waitUntil(`a reply to frame ${index} (${frame.category})`, () => hostile.replies.length > repliesBefore, 5_000);
      const reply = hostile.replies[repliesBefore];
      expect(reply?.slice(0, 3), `seed ${SEED} frame ${index} (${frame.category}): ${frame.text.slice(0, 120)}`).toEqual([4, frame.messageId, frame.code]);
    }
    // The frames that must go unanswered went unanswered: one reply for each of the others, no more.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(hostile.replies).toHaveLength(frames.filter((frame) => frame.reply !== "none").length);
    expect(byCategory.size, `seed ${SEED}: categories drawn: ${[...byCategory.keys()].join(", ")}`).toBe(13);
    expect(hostile.connections, "the pile never dropped the connection").toBe(1);

    // The session is unharmed: it still runs, settles on the register delta, and the relay closed exactly once.
    await waitUntil(`session ${sessionId} settled`, async () => (await w.ledger.session(sessionId)).status === SessionStatus.Settled, 120_000);
    const session = await w.ledger.session(sessionId);
    expect(BigInt(w.registerWh() - registerBefore)).toBe(session.energyWh);
    expect(w.agent.relay.history().filter((edge) => edge.closed)).toHaveLength(1);
    expect(w.agent.state().fault).toBeUndefined();
    // No hostile Reset or ChangeAvailability took effect: every one of them was refused before its handler ran.
    expect(resets).toEqual([]);
    expect(w.agent.state().inoperative).toBeUndefined();
    expect(hostile.pileCalls).toEqual(expect.arrayContaining(["BootNotification", "TransactionEvent"]));
  }, 240_000);
});

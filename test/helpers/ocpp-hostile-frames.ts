/**
 * A hostile CSMS for the OCPP-J robustness tests (1.6J in test/integration/ocpp/malformed-frames.test.ts, 2.0.1 in
 * test/fuzz/ocpp201-frames.test.ts): a raw WebSocket server on loopback that answers the pile's own calls like a
 * permissive CSMS, a seeded generator of frames in 13 categories, and the driver that sends them one at a time and
 * checks each reply. The framing categories (broken JSON, wrong shapes, unknown message types, answers to calls never
 * made) are the same for both versions; the payload categories and the error names are each version's own.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { expect } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { SessionStatus, connectLedger } from "../../agent/chain/contracts.ts";
import { openSession } from "../../agent/chain/operations.ts";
import { cpIdOf } from "../../agent/chain/session-total.ts";
import { silentLogger } from "../../agent/logging.ts";
import { startOcpp, type OcppConfig, type ResetKind, type RunningOcpp } from "../../agent/ocpp/index.ts";
import { SIM_CHARGE_POINT_ID, SIM_PRICE_WEI_PER_KWH, startSimWorld, waitUntil, type SimWorld } from "../../agent/sim/world.ts";
import { mulberry32 } from "./prng.ts";

export type HostileFrame = { category: string; text: string } & (
  | { reply: "none" }
  /** A CALLERROR with this code, for this message id ("-1" when the frame carries no usable id). */
  | { reply: "error"; messageId: string; code: string }
);

/** A frame that must be answered with a CALLERROR carrying `code`, for `messageId` ("-1" when it has no usable id). */
export function callErrorFrame(category: string, messageId: string, code: string, text: string): HostileFrame {
  return { category, text, reply: "error", messageId, code };
}

/** Makes one frame for a fresh message id. */
export type FrameMaker = (id: string) => HostileFrame;

/** Draws from the one seeded stream the frames come from. */
export interface FrameDraws {
  random: () => number;
  pick<T>(items: readonly T[]): T;
  /** Printable ASCII noise of this length. */
  junk(length: number): string;
  /** An OCPP-J CALL frame. */
  call(id: string, action: string, payload: unknown): string;
}

/** The frame categories every OCPP-J version shares, with the payloads that differ per version. */
export interface VersionFrames {
  /** A valid Reset payload, sent inside broken framing. */
  resetPayload: Record<string, unknown>;
  /** The unknown-action, wrong-type, missing-field, extra-field, outside-the-enum and oversize makers. */
  payloadMakers(draws: FrameDraws): FrameMaker[];
}

/**
 * `count` frames from `seed`, the category drawn uniformly from the 13: five framing errors, the version's six payload
 * categories, then the two answers to calls never made. Every category names the reply OCPP-J requires.
 */
export function hostileFrames(seed: number, count: number, version: VersionFrames): HostileFrame[] {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const junk = (length: number): string =>
    Array.from({ length }, () => String.fromCharCode(32 + Math.floor(random() * 95))).join("");
  const call = (id: string, action: string, payload: unknown): string => JSON.stringify([2, id, action, payload]);
  const draws: FrameDraws = { random, pick, junk, call };
  const reset = version.resetPayload;
  const makers: FrameMaker[] = [
    // Not JSON at all: no id to answer to, so the error goes to message id "-1".
    () => callErrorFrame("bad JSON", "-1", "RpcFrameworkError", `[2, "${junk(6)}", ${junk(1 + Math.floor(random() * 40))}`),
    () => callErrorFrame("not an array", "-1", "RpcFrameworkError", pick([`{"action":"Reset"}`, "42", `"Heartbeat"`, "null", "true"])),
    (id) => callErrorFrame("message type not a number", "-1", "RpcFrameworkError", JSON.stringify(["2", id, "Reset", reset])),
    (id) => callErrorFrame("message id not a string", "-1", "RpcFrameworkError", JSON.stringify([2, Number(id.replace(/\D/g, "")), "Reset", reset])),
    (id) => callErrorFrame("unknown message type", "-1", "MessageTypeNotSupported", JSON.stringify([pick([0, 1, 5, 6, 7, 99]), id, "Reset", {}])),
    ...version.payloadMakers(draws),
    // Answers to calls the pile never made: OCPP-J never answers a CALLRESULT or CALLERROR.
    (id) => ({ category: "unexpected result", text: JSON.stringify([3, id, { status: "Accepted" }]), reply: "none" }),
    (id) => ({ category: "unexpected error", text: JSON.stringify([4, id, "GenericError", junk(12), {}]), reply: "none" }),
  ];
  return Array.from({ length: count }, (_, index) => pick(makers)(`fuzz-${seed}-${index}`));
}

/** How the hostile CSMS answers one of the pile's own calls. */
export type CsmsAnswer = (action: string, params: Record<string, unknown>, messageId: string) => Record<string, unknown>;

export interface HostileCsms {
  url: string;
  /** Messages from the pile that are not its own calls (its replies to our frames), in arrival order. */
  replies: unknown[][];
  /** Actions of the pile's own calls, in order. */
  pileCalls: string[];
  connections: number;
  socket(): WebSocket;
  close(): Promise<void>;
}

/** A raw WebSocket CSMS speaking `protocol` ("ocpp1.6", "ocpp2.0.1"): answers the pile's calls, records the rest. */
export async function startHostileCsms(protocol: string, answer: CsmsAnswer): Promise<HostileCsms> {
  const server = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: (protocols) => (protocols.has(protocol) ? protocol : false) });
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
        socket.send(JSON.stringify([3, messageId, answer(action, params, messageId)]));
        return;
      }
      csms.replies.push(message);
    });
  });
  return csms;
}

/**
 * Sends the frames one at a time and checks each reply is exactly the CALLERROR the frame names (waiting for it), that
 * the frames needing no reply got none, that all 13 categories were drawn, and that the pile never reconnected.
 */
export async function expectEachFrameAnswered(csms: HostileCsms, frames: readonly HostileFrame[], seed: number): Promise<void> {
  const socket = csms.socket();
  const byCategory = new Map<string, number>();
  for (const [index, frame] of frames.entries()) {
    byCategory.set(frame.category, (byCategory.get(frame.category) ?? 0) + 1);
    const repliesBefore = csms.replies.length;
    socket.send(frame.text);
    if (frame.reply === "none") continue;
    await waitUntil(`a reply to frame ${index} (${frame.category})`, () => csms.replies.length > repliesBefore, 5_000);
    const reply = csms.replies[repliesBefore];
    expect(reply?.slice(0, 3), `seed ${seed} frame ${index} (${frame.category}): ${frame.text.slice(0, 120)}`).toEqual([4, frame.messageId, frame.code]);
  }
  // The frames that must go unanswered went unanswered: one reply for each of the others, no more. Half a second is
  // ample for a loopback reply; a late one would still fail the count.
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(csms.replies).toHaveLength(frames.filter((frame) => frame.reply !== "none").length);
  expect(byCategory.size, `seed ${seed}: categories drawn: ${[...byCategory.keys()].join(", ")}`).toBe(13);
  expect(csms.connections, "the pile never dropped the connection").toBe(1);
}

/** What a hostile-frames test runs; filled in as each part starts, so a failed start still stops what did start. */
export interface HostileRig {
  csms?: HostileCsms;
  world?: SimWorld;
  ocpp?: RunningOcpp;
}

/** Stops what the rig started (OCPP first, then the CSMS, then the world) and empties it; for afterEach. */
export async function stopHostileRig(rig: HostileRig): Promise<void> {
  await rig.ocpp?.stop();
  await rig.csms?.close();
  await rig.world?.stop();
  rig.ocpp = undefined;
  rig.csms = undefined;
  rig.world = undefined;
}

export interface HostileSessionOptions {
  version: OcppConfig["version"];
  answer: CsmsAnswer;
  /** The deposit covers this many Wh at the sim price: how long the session outlasts the frames. */
  depositWh: bigint;
  onReset: (kind: ResetKind) => void;
}

export interface HostileSession {
  csms: HostileCsms;
  world: SimWorld;
  sessionId: bigint;
  /** The meter register when the EV was plugged in. */
  registerBeforeWh: number;
}

/**
 * Starts the hostile CSMS, the sim world and the pile's OCPP side into `rig`, waits for the boot to be accepted, plugs
 * the EV in, opens a session and waits until energy flows (20 Wh), so the frames land in the middle of a session.
 */
export async function startHostileSession(rig: HostileRig, options: HostileSessionOptions): Promise<HostileSession> {
  const csms = (rig.csms = await startHostileCsms(`ocpp${options.version}`, options.answer));
  const world = (rig.world = await startSimWorld());
  const ocpp = (rig.ocpp = startOcpp({
    config: { url: csms.url, version: options.version, connectorId: 1, vendor: "trustpile", model: "trustpile-cp", reconnectMaxDelayS: 60 },
    chargePointId: SIM_CHARGE_POINT_ID,
    confirmations: world.core.confirmations,
    agent: world.agent,
    journal: world.journal,
    log: silentLogger(),
    onReset: options.onReset,
  }));
  await waitUntil("the pile's boot accepted", () => ocpp.isAccepted(), 15_000);

  const registerBeforeWh = world.registerWh();
  world.hwSim.board.ev.plug();
  const deposit = (options.depositWh * SIM_PRICE_WEI_PER_KWH) / 1000n;
  const { sessionId } = await openSession(connectLedger(world.deployment.ChargingLedger, world.evWallet), cpIdOf(SIM_CHARGE_POINT_ID), 20_000, deposit);
  await waitUntil("energy flowing", () => world.registerWh() - registerBeforeWh >= 20, 60_000);
  return { csms, world, sessionId, registerBeforeWh };
}

/** The session is unharmed: it still runs, settles on the register delta, the relay closed exactly once, no fault. */
export async function expectSessionSettledUnharmed(session: HostileSession): Promise<void> {
  const { world, sessionId } = session;
  await waitUntil(`session ${sessionId} settled`, async () => (await world.ledger.session(sessionId)).status === SessionStatus.Settled, 120_000);
  const settled = await world.ledger.session(sessionId);
  expect(BigInt(world.registerWh() - session.registerBeforeWh)).toBe(settled.energyWh);
  expect(world.agent.relay.history().filter((edge) => edge.closed)).toHaveLength(1);
  expect(world.agent.state().fault).toBeUndefined();
}

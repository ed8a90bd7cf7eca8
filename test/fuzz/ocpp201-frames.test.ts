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
 * once. Replay with FUZZ_SEED=<seed>. The CSMS, generator and driver are test/helpers/ocpp-hostile-frames.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ResetKind } from "../../agent/ocpp/index.ts";
import {
  expectEachFrameAnswered,
  callErrorFrame,
  expectSessionSettledUnharmed,
  hostileFrames,
  startHostileSession,
  stopHostileRig,
  type HostileRig,
  type VersionFrames,
} from "../helpers/ocpp-hostile-frames.ts";
import { permissiveCsmsAnswer201 } from "../helpers/ocpp-csms-answers.ts";
import { fuzzSeed } from "./fuzz-random.ts";

const SEED = fuzzSeed(20261203);
const FRAMES = 1_000;

const idToken = { idToken: "fuzz-token", type: "Central" };

/** 2.0.1's payload categories, with the CallError names OCPP-J 2.0.1 (as ocpp-rpc implements it) requires. */
const OCPP201_FRAMES: VersionFrames = {
  resetPayload: { type: "Immediate" },
  payloadMakers: ({ random, pick, call }) => [
    (id) => callErrorFrame("unknown action", id, "NotImplemented", call(id, pick(["FooBar", "StartCharging", "reset", "RemoteStartTransaction"]), {})),
    (id) => callErrorFrame("wrong type", id, "TypeConstraintViolation", pick([
      call(id, "RequestStartTransaction", { idToken: Math.floor(random() * 1e6), remoteStartId: 1 }),
      call(id, "Reset", { type: 1 }),
      call(id, "RequestStopTransaction", { transactionId: 5 }),
      call(id, "ChangeAvailability", { operationalStatus: 3 }),
      call(id, "GetVariables", { getVariableData: "HeartbeatInterval" }),
    ])),
    (id) => callErrorFrame("missing field", id, "OccurenceConstraintViolation", pick([call(id, "RequestStopTransaction", {}), call(id, "Reset", {}), call(id, "TriggerMessage", {}), call(id, "RequestStartTransaction", { idToken })])),
    (id) => callErrorFrame("extra field", id, "PropertyConstraintViolation", pick([
      call(id, "Reset", { type: "Immediate", force: true }),
      call(id, "TriggerMessage", { requestedMessage: "Heartbeat", now: 1 }),
      call(id, "RequestStopTransaction", { transactionId: "1", reason: "x" }),
    ])),
    (id) => callErrorFrame("outside the enum", id, "FormatViolation", pick([
      call(id, "Reset", { type: pick(["Medium", "immediate", "Soft", ""]) }),
      call(id, "TriggerMessage", { requestedMessage: "Coffee" }),
      call(id, "ChangeAvailability", { operationalStatus: "Sleep" }),
    ])),
    (id) => callErrorFrame("oversize", id, "FormatViolation", pick([
      call(id, "RequestStartTransaction", { idToken: { idToken: "x".repeat(37 + Math.floor(random() * 200_000)), type: "Central" }, remoteStartId: 1 }),
      call(id, "RequestStopTransaction", { transactionId: "t".repeat(37 + Math.floor(random() * 5_000)) }),
      call(id, "SetVariables", {
        setVariableData: [{ attributeValue: "v".repeat(1_001 + Math.floor(random() * 10_000)), component: { name: "OCPPCommCtrlr" }, variable: { name: "HeartbeatInterval" } }],
      }),
    ])),
  ],
};

const rig: HostileRig = {};
afterEach(() => stopHostileRig(rig));

describe("OCPP 2.0.1: 1,000 hostile frames in the middle of a session", () => {
  it(`answers each with the CallError 2.0.1 names (or nothing), keeps the connection, and the session settles (seed ${SEED}, FUZZ_SEED=${SEED} to replay)`, async () => {
    const resets: ResetKind[] = [];
    // 250 Wh: small enough to settle soon after the frames (the sim EV draws ~9 Wh/s), large enough to outlast most of them.
    const session = await startHostileSession(rig, { version: "2.0.1", answer: permissiveCsmsAnswer201, depositWh: 250n, onReset: (kind) => void resets.push(kind) });

    await expectEachFrameAnswered(session.csms, hostileFrames(SEED, FRAMES, OCPP201_FRAMES), SEED);

    await expectSessionSettledUnharmed(session);
    // No hostile Reset or ChangeAvailability took effect: every one of them was refused before its handler ran.
    expect(resets).toEqual([]);
    expect(session.world.agent.state().inoperative).toBeUndefined();
    expect(session.csms.pileCalls).toEqual(expect.arrayContaining(["BootNotification", "TransactionEvent"]));
  }, 240_000);
});

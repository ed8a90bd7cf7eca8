/**
 * The pile's OCPP 1.6J side against a hostile CSMS (issue 8, "1,000 malformed or unexpected frames"): a raw
 * WebSocket server on loopback answers the pile like a CSMS would, and in the middle of a real session (anvil,
 * contracts, hw-sim, agent) sends 1,000 frames drawn from a seeded generator — broken JSON, wrong shapes, unknown
 * message types, unknown actions, payloads of the wrong types, missing or extra fields, values outside the enums,
 * oversize strings, and results/errors for calls the pile never made. Each must get exactly the CallError OCPP-J
 * prescribes (ocpp-rpc's strict mode, with the 1.6 errata's names), or no reply where the spec says a CALLRESULT or
 * CALLERROR is never answered; the connection must stay up, the agent must not crash, and the session must settle
 * on the register delta with the relay closed once. The CSMS, generator and driver are
 * test/helpers/ocpp-hostile-frames.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  expectEachFrameAnswered,
  callErrorFrame,
  expectSessionSettledUnharmed,
  hostileFrames,
  startHostileSession,
  stopHostileRig,
  type HostileRig,
  type VersionFrames,
} from "../../helpers/ocpp-hostile-frames.ts";
import { permissiveCsmsAnswer16 } from "../../helpers/ocpp-csms-answers.ts";

const SEED = 20261203;
const FRAMES = 1_000;

/** 1.6's payload categories, with the CallError names OCPP-J (1.6 errata names) requires. */
const OCPP16_FRAMES: VersionFrames = {
  resetPayload: { type: "Soft" },
  payloadMakers: ({ random, pick, call }) => [
    (id) => callErrorFrame("unknown action", id, "NotImplemented", call(id, pick(["FooBar", "StartCharging", "reset", "Boot"]), {})),
    (id) => callErrorFrame("wrong type", id, "TypeConstraintViolation", pick([
      call(id, "RemoteStartTransaction", { idTag: Math.floor(random() * 1e6) }),
      call(id, "Reset", { type: 1 }),
      call(id, "ChangeConfiguration", { key: 7, value: "60" }),
      call(id, "RemoteStopTransaction", { transactionId: "one" }),
      call(id, "GetConfiguration", { key: "HeartbeatInterval" }),
    ])),
    (id) => callErrorFrame("missing field", id, "OccurrenceConstraintViolation", pick([call(id, "RemoteStopTransaction", {}), call(id, "Reset", {}), call(id, "ChangeConfiguration", { key: "HeartbeatInterval" }), call(id, "TriggerMessage", {})])),
    (id) => callErrorFrame("extra field", id, "PropertyConstraintViolation", pick([call(id, "Reset", { type: "Soft", force: true }), call(id, "ClearCache", { all: 1 }), call(id, "RemoteStopTransaction", { transactionId: 1, reason: "x" })])),
    (id) => callErrorFrame("outside the enum", id, "FormationViolation", pick([call(id, "Reset", { type: pick(["Medium", "soft", ""]) }), call(id, "TriggerMessage", { requestedMessage: "Coffee" }), call(id, "ChangeAvailability", { connectorId: 1, type: "Sleep" })])),
    (id) => callErrorFrame("oversize", id, "FormationViolation", pick([
      call(id, "RemoteStartTransaction", { idTag: "x".repeat(20_000 + Math.floor(random() * 200_000)) }),
      call(id, "ChangeConfiguration", { key: "K".repeat(51 + Math.floor(random() * 5_000)), value: "1" }),
      call(id, "DataTransfer", { vendorId: "v".repeat(256 + Math.floor(random() * 10_000)) }),
    ])),
  ],
};

const rig: HostileRig = {};
afterEach(() => stopHostileRig(rig));

describe("OCPP 1.6J: 1,000 hostile frames in the middle of a session", () => {
  it(`answers each with the CallError the spec names (or nothing), keeps the connection, and the session settles (seed ${SEED})`, async () => {
    const session = await startHostileSession(rig, { version: "1.6", answer: permissiveCsmsAnswer16(), depositWh: 1_000n, onReset: () => undefined });

    await expectEachFrameAnswered(session.csms, hostileFrames(SEED, FRAMES, OCPP16_FRAMES), SEED);

    await expectSessionSettledUnharmed(session);
    expect(session.csms.pileCalls).toEqual(expect.arrayContaining(["BootNotification", "StartTransaction", "StopTransaction"]));
  }, 240_000);
});

import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../../hw-sim/clock.ts";
import { startCsmsSim, type CsmsMessage, type CsmsSim, type CsmsSimOptions } from "../../../hw-sim/csms/index.ts";
import { closePiles, createPile, makeTestCertificates, type TestCertificates } from "./csms-pile.ts";

const T0 = Date.UTC(2026, 0, 15, 8, 30, 0);
const T0_ISO = "2026-01-15T08:30:00.000Z";

let csms: CsmsSim | undefined;

afterEach(async () => {
  await closePiles();
  await csms?.stop();
  csms = undefined;
});

/** A CSMS on a manual clock, so every `currentTime` and `atMs` is T0. */
async function start(options: CsmsSimOptions = {}): Promise<CsmsSim> {
  csms = await startCsmsSim({ clock: new ManualClock(T0), ...options });
  return csms;
}

/** A recorded exchange as tests spell it; messageIds are the client's random UUIDs. */
function exchange(
  identity: string,
  protocol: "ocpp1.6" | "ocpp2.0.1",
  from: "pile" | "csms",
  action: string,
  payload: unknown,
  reply: CsmsMessage["reply"],
): CsmsMessage {
  return { atMs: T0, identity, protocol, from, messageId: expect.any(String) as unknown as string, action, payload, reply };
}

const result = (payload: unknown): CsmsMessage["reply"] => ({ kind: "result", payload });

/** Captures the logger's JSON lines. */
function captureLog(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString("utf8"));
      done();
    },
  });
  return {
    logger: pino({ level: "info", base: undefined }, sink),
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe("CSMS simulator, OCPP 1.6J", () => {
  it("answers boot, heartbeat, status, authorize, a transaction and data transfer, and records them exactly", async () => {
    const sim = await start({ boot: { intervalS: 60 }, firstTransactionId: 41 });
    expect(sim.url).toBe(`ws://127.0.0.1:${sim.port}/ocpp`);
    const pile = createPile({ endpoint: sim.url, identity: "cp-16", protocol: "ocpp1.6" });
    await pile.connect();
    expect(pile.protocol).toBe("ocpp1.6");

    const boot = { chargePointVendor: "trustpile", chargePointModel: "sim", firmwareVersion: "0.1.0" };
    const status = { connectorId: 1, errorCode: "NoError", status: "Preparing" };
    const startTx = { connectorId: 1, idTag: "session-7", meterStart: 1000, timestamp: "2026-01-15T08:31:00.000Z" };
    const meterValues = {
      connectorId: 1,
      transactionId: 41,
      meterValue: [
        {
          timestamp: "2026-01-15T08:32:00.000Z",
          sampledValue: [{ value: "1500", context: "Sample.Periodic", measurand: "Energy.Active.Import.Register", unit: "Wh" }],
        },
      ],
    };
    const stopTx = { transactionId: 41, meterStop: 2000, timestamp: "2026-01-15T08:33:00.000Z", reason: "Remote" };
    const stopWithTag = { ...stopTx, transactionId: 42, idTag: "session-8" };

    expect(await pile.call("BootNotification", boot)).toEqual({ status: "Accepted", currentTime: T0_ISO, interval: 60 });
    expect(await pile.call("Heartbeat", {})).toEqual({ currentTime: T0_ISO });
    expect(await pile.call("StatusNotification", status)).toEqual({});
    expect(await pile.call("Authorize", { idTag: "session-7" })).toEqual({ idTagInfo: { status: "Accepted" } });
    expect(await pile.call("StartTransaction", startTx)).toEqual({ idTagInfo: { status: "Accepted" }, transactionId: 41 });
    expect(await pile.call("MeterValues", meterValues)).toEqual({});
    expect(await pile.call("StopTransaction", stopTx)).toEqual({});
    expect(await pile.call("StartTransaction", { ...startTx, idTag: "session-8" })).toEqual({
      idTagInfo: { status: "Accepted" },
      transactionId: 42,
    });
    expect(await pile.call("StopTransaction", stopWithTag)).toEqual({ idTagInfo: { status: "Accepted" } });
    expect(await pile.call("DataTransfer", { vendorId: "org.example", messageId: "hello", data: "x" })).toEqual({
      status: "UnknownVendorId",
    });

    const cp = (action: string, payload: unknown, reply: unknown) => exchange("cp-16", "ocpp1.6", "pile", action, payload, result(reply));
    expect(sim.conversation("cp-16")).toEqual([
      cp("BootNotification", boot, { status: "Accepted", currentTime: T0_ISO, interval: 60 }),
      cp("Heartbeat", {}, { currentTime: T0_ISO }),
      cp("StatusNotification", status, {}),
      cp("Authorize", { idTag: "session-7" }, { idTagInfo: { status: "Accepted" } }),
      cp("StartTransaction", startTx, { idTagInfo: { status: "Accepted" }, transactionId: 41 }),
      cp("MeterValues", meterValues, {}),
      cp("StopTransaction", stopTx, {}),
      cp("StartTransaction", { ...startTx, idTag: "session-8" }, { idTagInfo: { status: "Accepted" }, transactionId: 42 }),
      cp("StopTransaction", stopWithTag, { idTagInfo: { status: "Accepted" } }),
      cp("DataTransfer", { vendorId: "org.example", messageId: "hello", data: "x" }, { status: "UnknownVendorId" }),
    ]);
    expect(sim.connected()).toEqual(["cp-16"]);
    expect(sim.protocolOf("cp-16")).toBe("ocpp1.6");
  });

  it("answers a pile's DataTransfer through onDataTransfer", async () => {
    const sim = await start({
      onDataTransfer: (identity, request) =>
        request.vendorId === "org.trustpile" ? { status: "Accepted", data: `${identity}:${request.data ?? ""}` } : { status: "UnknownVendorId" },
    });
    const pile = createPile({ endpoint: sim.url, identity: "cp-dt", protocol: "ocpp1.6" });
    await pile.connect();
    expect(await pile.call("DataTransfer", { vendorId: "org.trustpile", data: "ping" })).toEqual({ status: "Accepted", data: "cp-dt:ping" });
  });

  it("answers a call that breaks the schema with the spec's CALLERROR, records and logs it", async () => {
    const { logger, lines } = captureLog();
    const sim = await start({ logger });
    // Not strict, so the stand-in pile sends what a buggy firmware would.
    const pile = createPile({ endpoint: sim.url, identity: "cp-bad", protocol: "ocpp1.6", strict: false });
    await pile.connect();
    await expect(pile.call("BootNotification", { chargePointVendor: "trustpile" })).rejects.toMatchObject({
      rpcErrorCode: "OccurrenceConstraintViolation",
    });
    await expect(pile.call("StartTransaction", { connectorId: "one", idTag: "t", meterStart: 0, timestamp: T0_ISO })).rejects.toMatchObject({
      rpcErrorCode: "TypeConstraintViolation",
    });
    await expect(pile.call("CancelReservation", { reservationId: 1 })).rejects.toMatchObject({ rpcErrorCode: "NotImplemented" });

    const recorded = sim.conversation("cp-bad");
    expect(recorded.map((m) => [m.action, m.reply?.kind, m.reply?.kind === "error" ? m.reply.code : undefined])).toEqual([
      ["BootNotification", "error", "OccurrenceConstraintViolation"],
      ["StartTransaction", "error", "TypeConstraintViolation"],
      ["CancelReservation", "error", "NotImplemented"],
    ]);
    const warnings = lines().filter((line) => line.level === 40).map((line) => line.msg);
    expect(warnings).toContain("csms: pile call BootNotification breaks the ocpp1.6 schema");
    expect(warnings).toContain("-> cp-bad BootNotification CALLERROR OccurrenceConstraintViolation");
  });

  it("logs one line per message, in order, for an installer to read", async () => {
    const { logger, lines } = captureLog();
    const sim = await start({ logger });
    const pile = createPile({ endpoint: sim.url, identity: "cp-log", protocol: "ocpp1.6" });
    await pile.connect();
    await pile.call("Heartbeat", {});
    pile.handle("Reset", () => Promise.resolve({ status: "Accepted" }));
    await sim.reset("cp-log", "Soft");
    const messages = lines().filter((line) => typeof line.messageId === "string");
    expect(messages.map((line) => [line.msg, line.direction, line.payload])).toEqual([
      ["<- cp-log Heartbeat", "pile->csms", {}],
      ["-> cp-log Heartbeat answered", "csms->pile", { currentTime: T0_ISO }],
      ["-> cp-log Reset", "csms->pile", { type: "Soft" }],
      ["<- cp-log Reset answered", "pile->csms", { status: "Accepted" }],
    ]);
  });

  it("acts as the operator: remote start/stop, configuration, trigger, reset, availability, data transfer", async () => {
    const sim = await start();
    const pile = createPile({ endpoint: sim.url, identity: "cp-op", protocol: "ocpp1.6" });
    const received: [string, unknown][] = [];
    const answers: Record<string, Record<string, unknown>> = {
      RemoteStartTransaction: { status: "Accepted" },
      RemoteStopTransaction: { status: "Rejected" },
      ChangeConfiguration: { status: "Accepted" },
      GetConfiguration: { configurationKey: [{ key: "HeartbeatInterval", readonly: false, value: "120" }], unknownKey: ["Nope"] },
      TriggerMessage: { status: "Accepted" },
      Reset: { status: "Accepted" },
      ChangeAvailability: { status: "Scheduled" },
      DataTransfer: { status: "Accepted", data: "pong" },
    };
    for (const [action, answer] of Object.entries(answers)) {
      pile.handle(action, ({ params }) => {
        received.push([action, params]);
        return Promise.resolve(answer);
      });
    }
    await pile.connect();
    await sim.waitForConnection("cp-op", 2_000);

    expect(await sim.remoteStart("cp-op", "session-9", 1)).toEqual({ status: "Accepted" });
    expect(await sim.remoteStop("cp-op", 41)).toEqual({ status: "Rejected" });
    expect(await sim.changeConfiguration("cp-op", "HeartbeatInterval", "120")).toEqual({ status: "Accepted" });
    expect(await sim.getConfiguration("cp-op", ["HeartbeatInterval", "Nope"])).toEqual(answers.GetConfiguration);
    expect(await sim.trigger("cp-op", "StatusNotification", 1)).toEqual({ status: "Accepted" });
    expect(await sim.reset("cp-op", "Hard")).toEqual({ status: "Accepted" });
    expect(await sim.changeAvailability("cp-op", "Inoperative", 1)).toEqual({ status: "Scheduled" });
    expect(await sim.dataTransfer("cp-op", "org.trustpile", "ping", "x")).toEqual({ status: "Accepted", data: "pong" });

    const sent: [string, unknown][] = [
      ["RemoteStartTransaction", { idTag: "session-9", connectorId: 1 }],
      ["RemoteStopTransaction", { transactionId: 41 }],
      ["ChangeConfiguration", { key: "HeartbeatInterval", value: "120" }],
      ["GetConfiguration", { key: ["HeartbeatInterval", "Nope"] }],
      ["TriggerMessage", { requestedMessage: "StatusNotification", connectorId: 1 }],
      ["Reset", { type: "Hard" }],
      ["ChangeAvailability", { connectorId: 1, type: "Inoperative" }],
      ["DataTransfer", { vendorId: "org.trustpile", messageId: "ping", data: "x" }],
    ];
    expect(received).toEqual(sent);
    expect(sim.conversation("cp-op")).toEqual(
      sent.map(([action, payload]) => exchange("cp-op", "ocpp1.6", "csms", action, payload, result(answers[action]))),
    );
  });

  it("records the pile's CALLERROR to an operator action and rejects with it", async () => {
    const sim = await start();
    const pile = createPile({ endpoint: sim.url, identity: "cp-no", protocol: "ocpp1.6" });
    await pile.connect();
    await sim.waitForConnection("cp-no", 2_000);
    await expect(sim.reset("cp-no", "Soft")).rejects.toMatchObject({ rpcErrorCode: "NotImplemented" });
    expect(sim.conversation("cp-no")).toEqual([
      exchange("cp-no", "ocpp1.6", "csms", "Reset", { type: "Soft" }, {
        kind: "error",
        code: "NotImplemented",
        description: "Unable to handle 'Reset' calls",
        details: {},
      }),
    ]);
  });

  it("refuses bad operator input with one clear sentence", async () => {
    const sim = await start();
    await expect(sim.remoteStart("cp-x", "t")).rejects.toThrow('charge point "cp-x" is not connected (connected: none)');
    const pile = createPile({ endpoint: sim.url, identity: "cp-in", protocol: "ocpp1.6" });
    await pile.connect();
    await sim.waitForConnection("cp-in", 2_000);
    await expect(sim.trigger("cp-in", "TransactionEvent")).rejects.toThrow(
      'trigger: ocpp1.6 cannot trigger "TransactionEvent"; expected one of BootNotification, DiagnosticsStatusNotification, FirmwareStatusNotification, Heartbeat, MeterValues, StatusNotification',
    );
    await expect(sim.remoteStop("cp-in", "abc")).rejects.toThrow('remoteStop: ocpp1.6 transaction ids are integers, got "abc"');
    await expect(sim.reset("cp-in", "Warm" as "Soft")).rejects.toThrow('reset: expected "Soft" or "Hard", got "Warm"');
    expect(() => sim.setBoot({ status: "Maybe" as "Accepted" })).toThrow('boot.status: expected one of Accepted, Pending, Rejected, got "Maybe"');
    expect(() => sim.setReplyDelay(-1)).toThrow("setReplyDelay: expected delayMs >= 0, got -1");
    expect(sim.conversation("cp-in")).toEqual([]);
  });
});

describe("CSMS simulator, OCPP 2.0.1", () => {
  it("answers boot, heartbeat, status, authorize, a transaction's events, meter values and NotifyEvent exactly", async () => {
    const sim = await start({ boot: { intervalS: 30 } });
    const pile = createPile({ endpoint: sim.url, identity: "cp-201", protocol: "ocpp2.0.1" });
    await pile.connect();
    expect(pile.protocol).toBe("ocpp2.0.1");

    const boot = { reason: "PowerUp", chargingStation: { model: "sim", vendorName: "trustpile" } };
    const status = { timestamp: T0_ISO, connectorStatus: "Occupied", evseId: 1, connectorId: 1 };
    const idToken = { idToken: "session-7", type: "Central" };
    const energy = (wh: number) => [{ timestamp: T0_ISO, sampledValue: [{ value: wh, measurand: "Energy.Active.Import.Register", unitOfMeasure: { unit: "Wh" } }] }];
    const started = {
      eventType: "Started", timestamp: T0_ISO, triggerReason: "RemoteStart", seqNo: 0,
      transactionInfo: { transactionId: "tx-1", remoteStartId: 1 }, idToken, evse: { id: 1, connectorId: 1 }, meterValue: energy(1000),
    };
    const updated = { eventType: "Updated", timestamp: T0_ISO, triggerReason: "MeterValuePeriodic", seqNo: 1, transactionInfo: { transactionId: "tx-1" }, meterValue: energy(1500) };
    const ended = {
      eventType: "Ended", timestamp: T0_ISO, triggerReason: "RemoteStop", seqNo: 2,
      transactionInfo: { transactionId: "tx-1", stoppedReason: "Remote" }, meterValue: energy(2000),
    };
    const meterValues = { evseId: 0, meterValue: energy(2000) };
    const notify = {
      generatedAt: T0_ISO, seqNo: 0, tbc: false,
      eventData: [{ eventId: 1, timestamp: T0_ISO, trigger: "Delta", actualValue: "Faulted", eventNotificationType: "HardWiredNotification", component: { name: "Connector" }, variable: { name: "AvailabilityState" } }],
    };

    expect(await pile.call("BootNotification", boot)).toEqual({ currentTime: T0_ISO, interval: 30, status: "Accepted" });
    expect(await pile.call("Heartbeat", {})).toEqual({ currentTime: T0_ISO });
    expect(await pile.call("StatusNotification", status)).toEqual({});
    expect(await pile.call("Authorize", { idToken })).toEqual({ idTokenInfo: { status: "Accepted" } });
    expect(await pile.call("TransactionEvent", started)).toEqual({ idTokenInfo: { status: "Accepted" } });
    expect(await pile.call("TransactionEvent", updated)).toEqual({});
    expect(await pile.call("TransactionEvent", ended)).toEqual({});
    expect(await pile.call("MeterValues", meterValues)).toEqual({});
    expect(await pile.call("NotifyEvent", notify)).toEqual({});
    expect(await pile.call("DataTransfer", { vendorId: "org.example" })).toEqual({ status: "UnknownVendorId" });

    const cp = (action: string, payload: unknown, reply: unknown) => exchange("cp-201", "ocpp2.0.1", "pile", action, payload, result(reply));
    expect(sim.conversation("cp-201")).toEqual([
      cp("BootNotification", boot, { currentTime: T0_ISO, interval: 30, status: "Accepted" }),
      cp("Heartbeat", {}, { currentTime: T0_ISO }),
      cp("StatusNotification", status, {}),
      cp("Authorize", { idToken }, { idTokenInfo: { status: "Accepted" } }),
      cp("TransactionEvent", started, { idTokenInfo: { status: "Accepted" } }),
      cp("TransactionEvent", updated, {}),
      cp("TransactionEvent", ended, {}),
      cp("MeterValues", meterValues, {}),
      cp("NotifyEvent", notify, {}),
      cp("DataTransfer", { vendorId: "org.example" }, { status: "UnknownVendorId" }),
    ]);
  });

  it("acts as the operator in 2.0.1 terms: RequestStart/StopTransaction, SetVariables, GetVariables, TriggerMessage, Reset", async () => {
    const sim = await start();
    const pile = createPile({ endpoint: sim.url, identity: "cp-op2", protocol: "ocpp2.0.1" });
    const received: [string, unknown][] = [];
    const heartbeat = { component: { name: "OCPPCommCtrlr" }, variable: { name: "HeartbeatInterval" } };
    const answers: Record<string, Record<string, unknown>> = {
      RequestStartTransaction: { status: "Accepted", transactionId: "tx-9" },
      RequestStopTransaction: { status: "Accepted" },
      SetVariables: { setVariableResult: [{ attributeStatus: "Accepted", ...heartbeat }] },
      GetVariables: { getVariableResult: [{ attributeStatus: "Accepted", attributeValue: "120", ...heartbeat }] },
      TriggerMessage: { status: "Accepted" },
      Reset: { status: "Scheduled" },
      ChangeAvailability: { status: "Accepted" },
    };
    for (const [action, answer] of Object.entries(answers)) {
      pile.handle(action, ({ params }) => {
        received.push([action, params]);
        return Promise.resolve(answer);
      });
    }
    await pile.connect();
    await sim.waitForConnection("cp-op2", 2_000);

    expect(await sim.remoteStart("cp-op2", "session-9", 1)).toEqual(answers.RequestStartTransaction);
    expect(await sim.remoteStart("cp-op2", "session-10")).toEqual(answers.RequestStartTransaction);
    expect(await sim.remoteStop("cp-op2", "tx-9")).toEqual(answers.RequestStopTransaction);
    expect(await sim.changeConfiguration("cp-op2", "HeartbeatInterval", "120")).toEqual(answers.SetVariables);
    expect(await sim.getConfiguration("cp-op2", ["OCPPCommCtrlr.HeartbeatInterval"])).toEqual(answers.GetVariables);
    expect(await sim.trigger("cp-op2", "TransactionEvent", 1)).toEqual(answers.TriggerMessage);
    expect(await sim.reset("cp-op2", "Soft")).toEqual(answers.Reset);
    expect(await sim.changeAvailability("cp-op2", "Inoperative")).toEqual(answers.ChangeAvailability);
    await expect(sim.changeConfiguration("cp-op2", "Heartbeat", "1")).rejects.toThrow(
      'configuration key "Heartbeat": ocpp2.0.1 needs "Component.Variable"',
    );

    expect(received).toEqual([
      ["RequestStartTransaction", { idToken: { idToken: "session-9", type: "Central" }, remoteStartId: 1, evseId: 1 }],
      ["RequestStartTransaction", { idToken: { idToken: "session-10", type: "Central" }, remoteStartId: 2 }],
      ["RequestStopTransaction", { transactionId: "tx-9" }],
      ["SetVariables", { setVariableData: [{ attributeValue: "120", ...heartbeat }] }],
      ["GetVariables", { getVariableData: [heartbeat] }],
      ["TriggerMessage", { requestedMessage: "TransactionEvent", evse: { id: 1 } }],
      ["Reset", { type: "OnIdle" }],
      ["ChangeAvailability", { operationalStatus: "Inoperative" }],
    ]);
    expect(sim.conversation("cp-op2").map((m) => [m.from, m.action, m.reply])).toEqual(
      received.map(([action]) => ["csms", action, result(answers[action])]),
    );
  });
});

describe("CSMS simulator, both versions on one port", () => {
  it("keeps each pile's conversation apart and waitFor sees messages still to come", async () => {
    const sim = await start();
    const old = createPile({ endpoint: sim.url, identity: "cp-a", protocol: "ocpp1.6" });
    const young = createPile({ endpoint: sim.url, identity: "cp-b", protocol: "ocpp2.0.1" });
    await Promise.all([old.connect(), young.connect()]);
    const heartbeatOfB = sim.waitFor((m) => m.identity === "cp-b" && m.action === "Heartbeat" && m.reply !== undefined, 2_000);
    await old.call("Heartbeat", {});
    await young.call("Heartbeat", {});
    expect(await heartbeatOfB).toEqual(exchange("cp-b", "ocpp2.0.1", "pile", "Heartbeat", {}, result({ currentTime: T0_ISO })));
    expect(sim.conversation().map((m) => [m.identity, m.protocol, m.action])).toEqual([
      ["cp-a", "ocpp1.6", "Heartbeat"],
      ["cp-b", "ocpp2.0.1", "Heartbeat"],
    ]);
    expect(sim.connected().sort()).toEqual(["cp-a", "cp-b"]);
    await expect(sim.waitFor((m) => m.action === "StopTransaction", 50)).rejects.toThrow(
      "waitFor: no matching OCPP message within 50 ms (seen: <- cp-a Heartbeat, <- cp-b Heartbeat)",
    );
  });

  it("refuses a pile that offers no OCPP version it speaks", async () => {
    const sim = await start();
    const pile = createPile({ endpoint: sim.url, identity: "cp-21", protocol: "ocpp2.1" as "ocpp1.6", strict: false });
    await expect(pile.connect()).rejects.toMatchObject({ code: 400 });
  });
});

describe("CSMS simulator, fault switches", () => {
  it("answers boot Pending or Rejected when told to", async () => {
    const sim = await start({ boot: { status: "Rejected", intervalS: 10 } });
    const pile = createPile({ endpoint: sim.url, identity: "cp-boot", protocol: "ocpp1.6" });
    await pile.connect();
    const boot = { chargePointVendor: "trustpile", chargePointModel: "sim" };
    expect(await pile.call("BootNotification", boot)).toEqual({ status: "Rejected", currentTime: T0_ISO, interval: 10 });
    sim.setBoot({ status: "Pending" });
    expect(await pile.call("BootNotification", boot)).toEqual({ status: "Pending", currentTime: T0_ISO, interval: 10 });
    sim.setBoot({ status: "Accepted", intervalS: 300 });
    expect(await pile.call("BootNotification", boot)).toEqual({ status: "Accepted", currentTime: T0_ISO, interval: 300 });
  });

  it("delays its answers and records the call as unanswered until then", async () => {
    const clock = new ManualClock(T0);
    const sim = await start({ clock });
    const pile = createPile({ endpoint: sim.url, identity: "cp-slow", protocol: "ocpp1.6" });
    await pile.connect();
    sim.setReplyDelay(5_000);
    let answered = false;
    const heartbeat = pile.call("Heartbeat", {}).then((answer) => {
      answered = true;
      return answer;
    });
    const pending = await sim.waitFor((m) => m.action === "Heartbeat", 2_000);
    expect(pending.reply).toBeUndefined();
    clock.advance(4_999);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(answered).toBe(false);
    clock.advance(1);
    expect(await heartbeat).toEqual({ currentTime: "2026-01-15T08:30:05.000Z" });
    expect(sim.conversation("cp-slow")[0]?.reply).toEqual(result({ currentTime: "2026-01-15T08:30:05.000Z" }));
  });

  it("goes offline (listener and sockets closed) and comes back on the same port; a reconnecting pile returns", async () => {
    const sim = await start();
    const port = sim.port;
    const pile = createPile({ endpoint: sim.url, identity: "cp-net", protocol: "ocpp1.6", reconnect: true });
    await pile.connect();
    await pile.call("Heartbeat", {});
    const disconnected = new Promise((resolve) => pile.once("disconnect", resolve));

    await sim.goOffline();
    expect(sim.online).toBe(false);
    await disconnected;
    expect(sim.connected()).toEqual([]);
    const probe = createPile({ endpoint: sim.url, identity: "cp-probe", protocol: "ocpp1.6" });
    await expect(probe.connect()).rejects.toMatchObject({ code: "ECONNREFUSED" });

    await sim.goOnline();
    expect(sim.online).toBe(true);
    expect(sim.port).toBe(port);
    await sim.waitForConnection("cp-net", 5_000);
    expect(await pile.call("Heartbeat", {})).toEqual({ currentTime: T0_ISO });
    expect(sim.conversation("cp-net").map((m) => m.action)).toEqual(["Heartbeat", "Heartbeat"]);
  });

  it("marks an operator action cut off by going offline as never answered", async () => {
    const sim = await start();
    const pile = createPile({ endpoint: sim.url, identity: "cp-cut", protocol: "ocpp1.6" });
    pile.handle("Reset", () => new Promise(() => undefined));
    await pile.connect();
    await sim.waitForConnection("cp-cut", 2_000);
    const reset = sim.reset("cp-cut", "Soft");
    await sim.waitFor((m) => m.action === "Reset", 2_000);
    await sim.goOffline();
    await expect(reset).rejects.toThrow();
    expect(sim.conversation("cp-cut")).toEqual([
      exchange("cp-cut", "ocpp1.6", "csms", "Reset", { type: "Soft" }, { kind: "none", reason: "connection closed" }),
    ]);
  });
});

describe("CSMS simulator, connections and timeouts", () => {
  it("records an operator action the pile never answers as such once callTimeoutMs passes", async () => {
    const sim = await start({ callTimeoutMs: 100 });
    const pile = createPile({ endpoint: sim.url, identity: "cp-mute", protocol: "ocpp2.0.1" });
    pile.handle("TriggerMessage", () => new Promise(() => undefined));
    await pile.connect();
    await sim.waitForConnection("cp-mute", 2_000);
    await expect(sim.trigger("cp-mute", "Heartbeat")).rejects.toThrow("Call timeout");
    expect(sim.conversation("cp-mute")).toEqual([
      exchange("cp-mute", "ocpp2.0.1", "csms", "TriggerMessage", { requestedMessage: "Heartbeat" }, { kind: "none", reason: "no answer within 100 ms" }),
    ]);
  });

  it("lets a reconnecting pile replace its old connection without losing the new one's calls", async () => {
    const clock = new ManualClock(T0);
    const sim = await start({ clock });
    const first = createPile({ endpoint: sim.url, identity: "cp-twice", protocol: "ocpp1.6" });
    await first.connect();
    const firstClosed = new Promise((resolve) => first.once("close", resolve));
    sim.setReplyDelay(1_000);
    const second = createPile({ endpoint: sim.url, identity: "cp-twice", protocol: "ocpp1.6" });
    await second.connect();
    // The new connection's call is in flight while the old connection closes.
    const heartbeat = second.call("Heartbeat", {});
    await sim.waitFor((m) => m.action === "Heartbeat", 2_000);
    await firstClosed;
    await new Promise((resolve) => setTimeout(resolve, 50));
    clock.advance(1_000);
    expect(await heartbeat).toEqual({ currentTime: "2026-01-15T08:30:01.000Z" });
    expect(sim.connected()).toEqual(["cp-twice"]);
    expect(sim.conversation("cp-twice").map((m) => m.reply)).toEqual([result({ currentTime: "2026-01-15T08:30:01.000Z" })]);
  });

  it("records a pile's call whose delayed answer was cut off by going offline as never answered", async () => {
    const sim = await start();
    const pile = createPile({ endpoint: sim.url, identity: "cp-late", protocol: "ocpp1.6" });
    await pile.connect();
    sim.setReplyDelay(60_000);
    const heartbeat = pile.call("Heartbeat", {});
    await sim.waitFor((m) => m.action === "Heartbeat", 2_000);
    await sim.goOffline();
    await expect(heartbeat).rejects.toThrow();
    expect(sim.conversation("cp-late")).toEqual([
      exchange("cp-late", "ocpp1.6", "pile", "Heartbeat", {}, { kind: "none", reason: "connection closed" }),
    ]);
  });

  it("refuses bad options with one sentence", async () => {
    await expect(startCsmsSim({ port: 70_000 })).rejects.toThrow("port: expected a TCP port 0..65535, got 70000");
    await expect(startCsmsSim({ boot: { intervalS: 1.5 } })).rejects.toThrow(
      "boot.intervalS: expected an integer number of seconds >= 0, got 1.5",
    );
    await expect(startCsmsSim({ firstTransactionId: 0 })).rejects.toThrow("firstTransactionId: expected an integer >= 1, got 0");
  });
});

describe("CSMS simulator, operator console over HTTP", () => {
  async function post(url: string, body: unknown): Promise<{ status: number; json: unknown }> {
    const response = await fetch(url, { method: "POST", body: JSON.stringify(body) });
    return { status: response.status, json: await response.json() };
  }

  it("lists piles, runs operator actions, shows the conversation, and answers bad requests with one sentence", async () => {
    const sim = await start();
    expect(sim.operatorUrl).toBe(`http://127.0.0.1:${sim.port}/operator`);
    const pile = createPile({ endpoint: sim.url, identity: "cp-http", protocol: "ocpp2.0.1" });
    pile.handle("RequestStopTransaction", () => Promise.resolve({ status: "Accepted" }));
    await pile.connect();
    await sim.waitForConnection("cp-http", 2_000);

    expect(await (await fetch(sim.operatorUrl)).json()).toEqual({ online: true, connected: [{ identity: "cp-http", protocol: "ocpp2.0.1" }] });
    expect(await post(`${sim.operatorUrl}/cp-http/remote-stop`, { transactionId: "tx-5" })).toEqual({
      status: 200,
      json: { answer: { status: "Accepted" } },
    });
    expect(await post(`${sim.operatorUrl}/cp-http/reset`, { kind: "Hard" })).toEqual({
      status: 502,
      json: { error: "the pile answered with CALLERROR NotImplemented: Unable to handle 'Reset' calls", code: "NotImplemented" },
    });
    expect(await post(`${sim.operatorUrl}/cp-http/reset`, { kind: "Warm" })).toEqual({
      status: 400,
      json: { error: 'kind: expected "Soft" or "Hard", got "Warm"' },
    });
    expect(await post(`${sim.operatorUrl}/cp-http/change-configuration`, { key: "Nope", value: "1" })).toMatchObject({
      status: 400,
      json: { error: expect.stringContaining('configuration key "Nope": ocpp2.0.1 needs "Component.Variable"') as unknown },
    });
    expect(await post(`${sim.operatorUrl}/cp-gone/remote-start`, { idTag: "t" })).toEqual({
      status: 404,
      json: { error: 'charge point "cp-gone" is not connected (connected: cp-http)' },
    });
    expect(await post(`${sim.operatorUrl}/cp-http/launch`, {})).toMatchObject({ status: 404 });
    expect(await post(`${sim.operatorUrl}/boot`, { status: "Rejected", intervalS: 5 })).toEqual({ status: 200, json: { ok: true } });
    expect(await post(`${sim.operatorUrl}/boot`, { status: "Nope" })).toEqual({
      status: 400,
      json: { error: 'boot.status: expected one of Accepted, Pending, Rejected, got "Nope"' },
    });
    expect(await pile.call("BootNotification", { reason: "PowerUp", chargingStation: { model: "m", vendorName: "v" } })).toEqual({
      currentTime: T0_ISO,
      interval: 5,
      status: "Rejected",
    });

    const conversation = (await (await fetch(`${sim.operatorUrl}/cp-http/conversation`)).json()) as CsmsMessage[];
    expect(conversation.map((m) => [m.from, m.action, m.reply?.kind])).toEqual([
      ["csms", "RequestStopTransaction", "result"],
      ["csms", "Reset", "error"],
      ["pile", "BootNotification", "result"],
    ]);
  });
});

describe("CSMS simulator, outage from the operator console", () => {
  it("POST /operator/offline answers, drops every pile, and listens again on the same port after forMs", async () => {
    const sim = await start();
    const port = sim.port;
    const pile = createPile({ endpoint: sim.url, identity: "cp-out", protocol: "ocpp1.6", reconnect: true });
    await pile.connect();
    const disconnected = new Promise((resolve) => pile.once("disconnect", resolve));
    const bad = await fetch(`${sim.operatorUrl}/offline`, { method: "POST", body: JSON.stringify({ forMs: 0 }) });
    expect({ status: bad.status, json: await bad.json() }).toEqual({
      status: 400,
      json: { error: "forMs: expected an integer 1..3600000 ms, got 0" },
    });

    const response = await fetch(`${sim.operatorUrl}/offline`, { method: "POST", body: JSON.stringify({ forMs: 400 }) });
    expect(await response.json()).toEqual({ offlineForMs: 400 });
    await disconnected;
    expect(sim.online).toBe(false);
    await sim.waitForConnection("cp-out", 5_000);
    expect(sim.online).toBe(true);
    expect(sim.port).toBe(port);
    expect(await pile.call("Heartbeat", {})).toEqual({ currentTime: T0_ISO });
  });

  it("does not come back after stop()", async () => {
    const sim = await start();
    await sim.goOffline();
    await sim.stop();
    await expect(sim.goOnline()).rejects.toThrow("goOnline: the CSMS simulator was stopped");
  });
});

describe("CSMS simulator, security profile 1 (basic auth)", () => {
  it("accepts the right password and refuses a wrong or missing one with 401, logging without the password", async () => {
    const { logger, lines } = captureLog();
    const sim = await start({ passwords: { "cp-auth": "s3cret-pass" }, logger });
    const good = createPile({ endpoint: sim.url, identity: "cp-auth", protocol: "ocpp1.6", password: "s3cret-pass" });
    await good.connect();
    expect(await good.call("Heartbeat", {})).toEqual({ currentTime: T0_ISO });

    const wrong = createPile({ endpoint: sim.url, identity: "cp-auth", protocol: "ocpp1.6", password: "guess" });
    await expect(wrong.connect()).rejects.toMatchObject({ code: 401 });
    const none = createPile({ endpoint: sim.url, identity: "cp-auth", protocol: "ocpp1.6" });
    await expect(none.connect()).rejects.toMatchObject({ code: 401 });
    const stranger = createPile({ endpoint: sim.url, identity: "cp-who", protocol: "ocpp1.6", password: "s3cret-pass" });
    await expect(stranger.connect()).rejects.toMatchObject({ code: 401 });

    const refusals = lines().filter((line) => line.level === 40).map((line) => [line.cp, line.status, line.msg]);
    expect(refusals).toEqual([
      ["cp-auth", 401, "csms: refused connection: wrong basic-auth password"],
      ["cp-auth", 401, "csms: refused connection: no basic-auth password (security profile 1)"],
      ["cp-who", 401, "csms: refused connection: unknown charge point identity"],
    ]);
    const text = lines().map((line) => JSON.stringify(line)).join("\n");
    expect(text).not.toContain("s3cret-pass");
    expect(text).not.toContain("guess");
  });
});

describe("CSMS simulator, security profile 2 (TLS)", () => {
  let certificates: TestCertificates;

  beforeAll(() => {
    certificates = makeTestCertificates();
    return () => certificates.remove();
  });

  it("serves wss:// that a pile trusting the test CA connects to, with basic auth on top", async () => {
    const { certPem, keyPem, caPem } = certificates;
    const sim = await start({ tls: { certPem, keyPem }, passwords: { "cp-tls": "pw-tls" } });
    expect(sim.url).toBe(`wss://127.0.0.1:${sim.port}/ocpp`);
    const pile = createPile({ endpoint: sim.url, identity: "cp-tls", protocol: "ocpp2.0.1", password: "pw-tls", wsOpts: { ca: caPem } });
    await pile.connect();
    expect(await pile.call("Heartbeat", {})).toEqual({ currentTime: T0_ISO });

    const untrusting = createPile({ endpoint: sim.url, identity: "cp-tls", protocol: "ocpp2.0.1", password: "pw-tls" });
    await expect(untrusting.connect()).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
  });
});

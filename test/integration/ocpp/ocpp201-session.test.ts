/**
 * The OCPP 2.0.1 charge point (`ocpp.version: "2.0.1"`) with the real agent in the sim world (anvil, contracts,
 * hw-sim's SDM630 over Modbus TCP, relay and EV on the sim GPIO) against a minimal CSMS: a real ocpp-rpc RPCServer
 * in strict mode on loopback, so every frame either way is checked against the official 2.0.1 schemas.
 */
import type { AddressInfo } from "node:net";
import { RPCServer } from "ocpp-rpc";
import { afterEach, describe, expect, it } from "vitest";
import { connectLedger, SessionStatus } from "../../../agent/chain/contracts.ts";
import { openSession } from "../../../agent/chain/operations.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import { createLogger, silentLogger } from "../../../agent/logging.ts";
import { freePort } from "../../../agent/net.ts";
import { startOcpp, type OcppConfig, type ResetKind, type RunningOcpp } from "../../../agent/ocpp/index.ts";
import { SIM_CHARGE_POINT_ID, SIM_PRICE_WEI_PER_KWH, startSimWorld, waitUntil, type SimWorld } from "../../../agent/sim/world.ts";
import { permissiveCsmsAnswer201 } from "../../helpers/ocpp-csms-answers.ts";

const CP_ID = cpIdOf(SIM_CHARGE_POINT_ID);
const PASSWORD = "s3cret-pw-201";
const depositFor = (wh: number): bigint => (BigInt(wh) * SIM_PRICE_WEI_PER_KWH) / 1000n;

// ------------------------------------------------------------------ a minimal 2.0.1 CSMS

interface RecordedCall {
  method: string;
  params: Record<string, unknown>;
}

interface Csms201 {
  readonly url: string;
  readonly calls: RecordedCall[];
  readonly connections: string[];
  call(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

interface ServerClient {
  identity: string;
  handle(handler: (call: { method: string; params: Record<string, unknown> }) => unknown): void;
  call(method: string, params: Record<string, unknown>): Promise<unknown>;
  once(event: "close", listener: () => void): void;
}

async function startCsms201(port = 0): Promise<Csms201> {
  const server = new RPCServer({ protocols: ["ocpp2.0.1"], strictMode: true });
  const calls: RecordedCall[] = [];
  const connections: string[] = [];
  let current: ServerClient | undefined;
  server.auth((accept, reject, handshake) => {
    if (handshake.password?.toString("utf8") !== PASSWORD) return reject(401, "Unauthorized");
    accept();
  });
  server.on("client", (client: ServerClient) => {
    connections.push(client.identity);
    current = client;
    client.once("close", () => {
      if (current === client) current = undefined;
    });
    client.handle(({ method, params }) => {
      calls.push({ method, params });
      return permissiveCsmsAnswer201(method, params);
    });
  });
  const http = await server.listen(port, "127.0.0.1");
  const bound = (http.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${bound}/ocpp`,
    calls,
    connections,
    async call(method, params) {
      if (!current) throw new Error(`no charge point connected to call ${method}`);
      return (await current.call(method, params)) as Record<string, unknown>;
    },
    close: () => server.close({ force: true }),
  };
}

// ------------------------------------------------------------------ the pile

let world: SimWorld | undefined;
let csms: Csms201 | undefined;
let ocpp: RunningOcpp | undefined;
afterEach(async () => {
  await ocpp?.stop();
  await csms?.close();
  await world?.stop();
  ocpp = undefined;
  csms = undefined;
  world = undefined;
});

function ocppConfig(url: string): OcppConfig {
  return { url, version: "2.0.1", password: PASSWORD, connectorId: 1, vendor: "trustpile", model: "trustpile-cp", reconnectMaxDelayS: 1 };
}

function startOcppOn(w: SimWorld, url: string, resets: ResetKind[] = []): RunningOcpp {
  return startOcpp({
    config: ocppConfig(url),
    chargePointId: SIM_CHARGE_POINT_ID,
    confirmations: w.core.confirmations,
    agent: w.agent,
    journal: w.journal,
    log: process.env.TRUSTPILE_TEST_LOG ? createLogger({ level: "debug", destination: process.stderr }) : silentLogger(),
    onReset: (kind) => void resets.push(kind),
    firmwareVersion: "0.1.0",
    reconnectInitialMs: 100,
    retryUnitMs: 100,
  });
}

async function openDeposit(w: SimWorld, coversWh: number, maxEnergyWh = 20_000): Promise<bigint> {
  const { sessionId } = await openSession(connectLedger(w.deployment.ChargingLedger, w.evWallet), CP_ID, maxEnergyWh, depositFor(coversWh));
  return sessionId;
}

async function settled(w: SimWorld, sessionId: bigint, timeoutMs = 90_000): Promise<bigint> {
  await waitUntil(`session ${sessionId} settled`, async () => (await w.ledger.session(sessionId)).status === SessionStatus.Settled, timeoutMs);
  return (await w.ledger.session(sessionId)).energyWh;
}

interface SampledValue {
  value: number;
  measurand: string;
  phase?: string;
  context: string;
  unitOfMeasure: { unit: string };
}

interface TransactionEvent {
  eventType: "Started" | "Updated" | "Ended";
  timestamp: string;
  triggerReason: string;
  seqNo: number;
  offline?: boolean;
  transactionInfo: { transactionId: string; chargingState?: string; stoppedReason?: string; remoteStartId?: number };
  evse?: { id: number; connectorId: number };
  idToken?: { idToken: string; type: string };
  meterValue?: { timestamp: string; sampledValue: SampledValue[] }[];
}

const callsOf = (c: Csms201, method: string): RecordedCall[] => c.calls.filter((call) => call.method === method);
const transactionEvents = (c: Csms201): TransactionEvent[] => callsOf(c, "TransactionEvent").map((call) => call.params as unknown as TransactionEvent);

/** One line per call, consecutive periodic meter values folded into one "…" line. */
function sequenceOf(calls: RecordedCall[]): string[] {
  const lines: string[] = [];
  for (const { method, params } of calls) {
    let line = method;
    if (method === "StatusNotification") line = `StatusNotification ${String(params.evseId)}/${String(params.connectorId)} ${String(params.connectorStatus)}`;
    if (method === "TransactionEvent") {
      const event = params as unknown as TransactionEvent;
      line = `TransactionEvent ${event.eventType} ${event.triggerReason}`;
      if (event.triggerReason === "MeterValuePeriodic") line += "…";
    }
    if (line !== lines.at(-1) || !line.endsWith("…")) lines.push(line);
  }
  return lines;
}

const registerOf = (event: TransactionEvent | undefined): number | undefined =>
  event?.meterValue?.[0]?.sampledValue.find((sample) => sample.measurand === "Energy.Active.Import.Register" && sample.phase === undefined)?.value;

describe("OCPP 2.0.1 charge point", () => {
  it("tells the CSMS one session in 2.0.1 order, and Ended's register − Started's is the energy settled on chain", async () => {
    const w = (world = await startSimWorld());
    const c = (csms = await startCsms201());
    ocpp = startOcppOn(w, c.url);
    await waitUntil("status of EVSE 1", () => callsOf(c, "StatusNotification").length >= 1, 15_000);
    // A transaction meter value every second, so a short session yields several.
    expect(
      await c.call("SetVariables", { setVariableData: [{ component: { name: "SampledDataCtrlr" }, variable: { name: "TxUpdatedInterval" }, attributeValue: "1" }] }),
    ).toEqual({ setVariableResult: [{ attributeStatus: "Accepted", component: { name: "SampledDataCtrlr" }, variable: { name: "TxUpdatedInterval" } }] });

    w.hwSim.board.ev.plug();
    const sessionId = await openDeposit(w, 150);
    const energyWh = await settled(w, sessionId);
    await waitUntil("TransactionEvent Ended", () => transactionEvents(c).some((event) => event.eventType === "Ended"), 15_000);
    w.hwSim.board.ev.unplug();
    await waitUntil("Available after the EV left", () => sequenceOf(c.calls).at(-1) === "StatusNotification 1/1 Available" && callsOf(c, "StatusNotification").length >= 3, 15_000);

    expect(c.connections).toEqual([SIM_CHARGE_POINT_ID]);
    expect(sequenceOf(c.calls.filter((call) => call.method !== "Heartbeat"))).toEqual([
      "BootNotification",
      "StatusNotification 1/1 Available",
      "StatusNotification 1/1 Occupied",
      "Authorize",
      "TransactionEvent Started Authorized",
      "TransactionEvent Updated MeterValuePeriodic…",
      "TransactionEvent Ended StopAuthorized",
      "StatusNotification 1/1 Available",
    ]);
    expect(callsOf(c, "BootNotification")[0]?.params).toEqual({
      reason: "PowerUp",
      chargingStation: { model: "trustpile-cp", vendorName: "trustpile", firmwareVersion: "0.1.0" },
    });
    expect(callsOf(c, "Authorize")[0]?.params).toEqual({ idToken: { idToken: sessionId.toString(), type: "Central" } });

    const events = transactionEvents(c);
    const started = events[0];
    const ended = events.at(-1);
    // seqNo counts 0, 1, 2 … within the transaction, and every event names the on-chain session.
    expect(events.map((event) => event.seqNo)).toEqual(events.map((_, index) => index));
    for (const event of events) expect(event.transactionInfo.transactionId).toBe(sessionId.toString());
    expect(started).toMatchObject({
      eventType: "Started",
      triggerReason: "Authorized",
      transactionInfo: { transactionId: sessionId.toString(), chargingState: "Charging" },
      evse: { id: 1, connectorId: 1 },
      idToken: { idToken: sessionId.toString(), type: "Central" },
    });
    expect(started?.offline).toBeUndefined();
    expect(ended).toMatchObject({
      eventType: "Ended",
      triggerReason: "StopAuthorized",
      // The budget stop: 1.6's Local, 2.0.1's Local.
      transactionInfo: { transactionId: sessionId.toString(), chargingState: "EVConnected", stoppedReason: "Local" },
      evse: { id: 1, connectorId: 1 },
    });
    expect(ended?.idToken).toBeUndefined();
    const startWh = registerOf(started) ?? Number.NaN;
    const stopWh = registerOf(ended) ?? Number.NaN;
    // 150 Wh covered − 20 Wh stop margin: the CSMS's energy is the chain's, to the Wh.
    expect(BigInt(stopWh - startWh)).toBe(energyWh);
    expect(Number(energyWh)).toBeGreaterThanOrEqual(130);
    expect(started?.meterValue?.[0]?.sampledValue.map((sample) => `${sample.measurand}${sample.phase ? ` ${sample.phase}` : ""} ${sample.unitOfMeasure.unit} ${sample.context}`)).toEqual([
      "Energy.Active.Import.Register Wh Transaction.Begin",
      "Power.Active.Import W Transaction.Begin",
      "Voltage L1-N V Transaction.Begin",
      "Current.Import L1 A Transaction.Begin",
      "Power.Active.Import L1 W Transaction.Begin",
      "Voltage L2-N V Transaction.Begin",
      "Current.Import L2 A Transaction.Begin",
      "Power.Active.Import L2 W Transaction.Begin",
      "Voltage L3-N V Transaction.Begin",
      "Current.Import L3 A Transaction.Begin",
      "Power.Active.Import L3 W Transaction.Begin",
    ]);
    // Ended reports StopTxnSampledData, the register only by default.
    expect(ended?.meterValue?.[0]?.sampledValue).toEqual([
      { value: stopWh, measurand: "Energy.Active.Import.Register", context: "Transaction.End", unitOfMeasure: { unit: "Wh" } },
    ]);
    // Updated: the register in Wh rising between start and stop, with the SDM630's phases.
    const updates = events.filter((event) => event.eventType === "Updated");
    expect(updates.length).toBeGreaterThanOrEqual(2);
    const registers = updates.map(registerOf);
    expect(registers).toEqual([...registers].sort((a, b) => (a ?? 0) - (b ?? 0)));
    expect(registers[0]).toBeGreaterThanOrEqual(startWh);
    expect(registers.at(-1)).toBeLessThanOrEqual(stopWh);
    expect(updates[0]?.meterValue?.[0]?.sampledValue.map((sample) => sample.measurand + (sample.phase ? ` ${sample.phase}` : ""))).toEqual([
      "Energy.Active.Import.Register",
      "Power.Active.Import",
      "Voltage L1-N",
      "Current.Import L1",
      "Power.Active.Import L1",
      "Voltage L2-N",
      "Current.Import L2",
      "Power.Active.Import L2",
      "Voltage L3-N",
      "Current.Import L3",
      "Power.Active.Import L3",
    ]);
  }, 150_000);
});

describe("OCPP 2.0.1 CSMS requests", () => {
  it("accepts RequestStartTransaction only for a waiting confirmed deposit; RequestStopTransaction stops that session", async () => {
    const w = (world = await startSimWorld());
    const c = (csms = await startCsms201());
    ocpp = startOcppOn(w, c.url);
    await waitUntil("accepted", () => ocpp?.isAccepted() === true, 15_000);
    const startFor = (idToken: string, evseId?: number): Record<string, unknown> => ({
      idToken: { idToken, type: "Central" },
      remoteStartId: 77,
      ...(evseId === undefined ? {} : { evseId }),
    });

    const noDeposit = await c.call("RequestStartTransaction", startFor("1"));
    expect(noDeposit).toMatchObject({ status: "Rejected", statusInfo: { reasonCode: "NoDeposit" } });
    // No EV plugged in: the confirmed, authorized deposit waits for one.
    const sessionId = await openDeposit(w, 500);
    await waitUntil("authorized", () => w.agent.state().phase === "authorized", 60_000);
    expect((await c.call("RequestStartTransaction", startFor((sessionId + 1n).toString()))).status).toBe("Rejected");
    expect((await c.call("RequestStartTransaction", startFor(sessionId.toString(), 2))).status).toBe("Rejected");
    expect(await c.call("RequestStartTransaction", startFor(sessionId.toString(), 1))).toEqual({ status: "Accepted" });
    expect(w.agent.relay.history().some((edge) => edge.closed)).toBe(false); // accepting energized nothing

    w.hwSim.board.ev.plug();
    await waitUntil("Started", () => transactionEvents(c).some((event) => event.eventType === "Started"), 30_000);
    const started = transactionEvents(c)[0];
    expect(started).toMatchObject({
      eventType: "Started",
      triggerReason: "RemoteStart",
      seqNo: 0,
      transactionInfo: { transactionId: sessionId.toString(), chargingState: "Charging", remoteStartId: 77 },
      idToken: { idToken: sessionId.toString(), type: "Central" },
    });
    expect(await c.call("RequestStopTransaction", { transactionId: "999" })).toMatchObject({ status: "Rejected", statusInfo: { reasonCode: "UnknownTransaction" } });
    expect(await c.call("RequestStopTransaction", { transactionId: sessionId.toString() })).toEqual({ status: "Accepted" });
    const energyWh = await settled(w, sessionId);
    await waitUntil("Ended", () => transactionEvents(c).some((event) => event.eventType === "Ended"), 15_000);
    const ended = transactionEvents(c).at(-1);
    expect(ended).toMatchObject({ triggerReason: "RemoteStop", transactionInfo: { transactionId: sessionId.toString(), stoppedReason: "Remote" } });
    expect(BigInt((registerOf(ended) ?? Number.NaN) - (registerOf(started) ?? Number.NaN))).toBe(energyWh);
    // Well short of the 480 Wh budget: the remote stop ended it.
    expect(Number(energyWh)).toBeLessThan(480);
  }, 150_000);

  it("answers GetVariables, SetVariables, TriggerMessage and malformed calls as 2.0.1 asks", async () => {
    const w = (world = await startSimWorld());
    const c = (csms = await startCsms201());
    ocpp = startOcppOn(w, c.url);
    await waitUntil("accepted", () => ocpp?.isAccepted() === true, 15_000);

    const heartbeat = { component: { name: "OCPPCommCtrlr" }, variable: { name: "HeartbeatInterval" } };
    const attempts = { component: { name: "OCPPCommCtrlr" }, variable: { name: "MessageAttempts", instance: "TransactionEvent" } };
    expect(
      await c.call("GetVariables", {
        getVariableData: [heartbeat, attempts, { component: { name: "SecurityCtrlr" }, variable: { name: "Identity" } }, { component: { name: "Nope" }, variable: { name: "X" } }],
      }),
    ).toEqual({
      getVariableResult: [
        // The accepted boot's interval is the heartbeat interval.
        { attributeStatus: "Accepted", attributeValue: "300", ...heartbeat },
        { attributeStatus: "Accepted", attributeValue: "3", ...attempts },
        { attributeStatus: "Accepted", attributeValue: SIM_CHARGE_POINT_ID, component: { name: "SecurityCtrlr" }, variable: { name: "Identity" } },
        { attributeStatus: "UnknownComponent", component: { name: "Nope" }, variable: { name: "X" } },
      ],
    });
    const set = await c.call("SetVariables", {
      setVariableData: [
        { ...attempts, attributeValue: "4" },
        { ...heartbeat, attributeValue: "ten" },
        { component: { name: "TxCtrlr" }, variable: { name: "TxStartPoint" }, attributeValue: "EVConnected" },
      ],
    });
    expect((set.setVariableResult as { attributeStatus: string }[]).map((result) => result.attributeStatus)).toEqual(["Accepted", "Rejected", "Rejected"]);
    // The same store as 1.6: the 1.6 key holds what 2.0.1 set, and a restarted adapter reads it back.
    expect(w.journal.getValue("ocpp.v16.configuration")).toMatchObject({ TransactionMessageAttempts: "4" });
    await ocpp.stop();
    ocpp = startOcppOn(w, c.url);
    await waitUntil("accepted again", () => ocpp?.isAccepted() === true, 15_000);
    expect(await c.call("GetVariables", { getVariableData: [attempts] })).toEqual({ getVariableResult: [{ attributeStatus: "Accepted", attributeValue: "4", ...attempts }] });

    // Triggers: answered first, then sent.
    const before = c.calls.length;
    expect(await c.call("TriggerMessage", { requestedMessage: "StatusNotification", evse: { id: 1, connectorId: 1 } })).toEqual({ status: "Accepted" });
    await waitUntil("triggered status", () => c.calls.length > before, 5_000);
    expect(await c.call("TriggerMessage", { requestedMessage: "Heartbeat" })).toEqual({ status: "Accepted" });
    await waitUntil("triggered heartbeat", () => c.calls.slice(before).some((call) => call.method === "Heartbeat"), 5_000);
    expect(await c.call("TriggerMessage", { requestedMessage: "MeterValues" })).toEqual({ status: "Accepted" });
    await waitUntil("triggered meter values", () => c.calls.slice(before).some((call) => call.method === "MeterValues"), 5_000);
    const triggered = c.calls.slice(before);
    expect(triggered.map((call) => call.method)).toEqual(["StatusNotification", "Heartbeat", "MeterValues"]);
    expect(triggered[0]?.params).toMatchObject({ connectorStatus: "Available", evseId: 1, connectorId: 1 });
    const meterValue = (triggered[2]?.params.meterValue as { sampledValue: SampledValue[] }[])[0];
    expect(meterValue?.sampledValue[0]).toEqual({ value: w.registerWh(), measurand: "Energy.Active.Import.Register", context: "Trigger", unitOfMeasure: { unit: "Wh" } });
    expect(await c.call("TriggerMessage", { requestedMessage: "BootNotification" })).toEqual({ status: "Rejected" });
    expect(await c.call("TriggerMessage", { requestedMessage: "TransactionEvent" })).toMatchObject({ status: "Rejected", statusInfo: { reasonCode: "NoTransaction" } });
    expect(await c.call("TriggerMessage", { requestedMessage: "StatusNotification", evse: { id: 2 } })).toMatchObject({ status: "Rejected" });
    expect(await c.call("TriggerMessage", { requestedMessage: "LogStatusNotification" })).toEqual({ status: "NotImplemented" });

    // Malformed: strict mode answers with the right CallError, and the agent runs on.
    await expect(c.call("RequestStopTransaction", {})).rejects.toMatchObject({ rpcErrorCode: expect.stringMatching(/^Occur+enceConstraintViolation$/) });
    await expect(c.call("RequestStopTransaction", { transactionId: 5 })).rejects.toMatchObject({ rpcErrorCode: "TypeConstraintViolation" });
    await expect(c.call("UnlockConnector", { evseId: 1, connectorId: 1 })).rejects.toMatchObject({ rpcErrorCode: "NotImplemented" });
    expect(ocpp.isAccepted()).toBe(true);
    expect(w.agent.state().phase).toBe("idle");
  }, 120_000);

  it("Reset Immediate mid-session: stops, settles, sends Ended (ImmediateReset), then resets; OnIdle on an idle pile resets at once", async () => {
    const w = (world = await startSimWorld());
    const c = (csms = await startCsms201());
    const resets: ResetKind[] = [];
    ocpp = startOcppOn(w, c.url, resets);
    await waitUntil("accepted", () => ocpp?.isAccepted() === true, 15_000);

    w.hwSim.board.ev.plug();
    const sessionId = await openDeposit(w, 2_000);
    await waitUntil("Started", () => transactionEvents(c).some((event) => event.eventType === "Started"), 60_000);
    await waitUntil("energy flowing", () => w.registerWh() - (registerOf(transactionEvents(c)[0]) ?? 0) >= 20, 30_000);
    expect(await c.call("Reset", { type: "Immediate", evseId: 1 })).toMatchObject({ status: "Rejected" });
    expect(await c.call("Reset", { type: "Immediate" })).toEqual({ status: "Accepted" });
    await waitUntil("the host's reset", () => resets.length === 1, 60_000);
    expect(resets).toEqual(["Hard"]);
    // By then the stop reading is taken and the signed total is on its way; Ended reached the CSMS.
    expect(["settling", "idle"]).toContain(w.agent.state().phase);
    const ended = transactionEvents(c).find((event) => event.eventType === "Ended");
    expect(ended).toMatchObject({ triggerReason: "ResetCommand", transactionInfo: { transactionId: sessionId.toString(), stoppedReason: "ImmediateReset" } });
    const energyWh = await settled(w, sessionId);
    expect(BigInt((registerOf(ended) ?? Number.NaN) - (registerOf(transactionEvents(c)[0]) ?? Number.NaN))).toBe(energyWh);
    expect(Number(energyWh)).toBeLessThan(1_980);

    await waitUntil("idle", () => w.agent.state().phase === "idle", 30_000);
    expect(await c.call("Reset", { type: "OnIdle" })).toEqual({ status: "Accepted" });
    await waitUntil("the second reset", () => resets.length === 2, 15_000);
    expect(resets).toEqual(["Hard", "Soft"]);
  }, 150_000);
});

describe("OCPP 2.0.1 offline", () => {
  it("delivers Started, every Updated and Ended in order, seqNo 0…n and marked offline, after a CSMS outage spanning the session and an adapter restart", async () => {
    const w = (world = await startSimWorld());
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}/ocpp`;
    // What a CSMS would have set earlier: a transaction meter value every second.
    w.journal.setValue("ocpp.v16.configuration", { MeterValueSampleInterval: "1" });
    ocpp = startOcppOn(w, url);

    w.hwSim.board.ev.plug();
    const sessionId = await openDeposit(w, 200);
    await waitUntil("energized", () => w.agent.state().phase === "energized", 60_000);
    await waitUntil("a few meter values queued", () => w.journal.pending("ocpp").length >= 3, 30_000);
    // The OCPP side restarts mid-session on the same journal (the queue and the seqNo bookkeeping must survive).
    // NOTE: the agent is deliberately not restarted here: after w.restartAgent() mid-session the chain settles the
    // register at the restart instead of the end (reproduced by ocpp16-session.test.ts "outage" too; reported).
    await ocpp.stop();
    ocpp = startOcppOn(w, url);
    const energyWh = await settled(w, sessionId);
    await waitUntil("Ended queued", () => w.journal.get(`ocpp:stop:${sessionId}`) !== undefined, 15_000);
    const queued = w.journal.pending("ocpp").length;

    const c = (csms = await startCsms201(port));
    await waitUntil("Ended delivered", () => transactionEvents(c).some((event) => event.eventType === "Ended"), 30_000);
    await waitUntil("queue empty", () => w.journal.pending("ocpp").length === 0, 10_000);

    expect(c.calls[0]?.method).toBe("BootNotification");
    const events = transactionEvents(c);
    expect(events.length).toBe(queued);
    expect(events.map((event) => event.eventType)).toEqual(["Started", ...Array<string>(queued - 2).fill("Updated"), "Ended"]);
    expect(events.map((event) => event.seqNo)).toEqual(events.map((_, index) => index));
    for (const event of events) {
      expect(event.offline).toBe(true);
      expect(event.transactionInfo.transactionId).toBe(sessionId.toString());
    }
    const timestamps = events.map((event) => event.timestamp);
    expect(timestamps).toEqual([...timestamps].sort());
    expect(new Set(timestamps.slice(1, -1)).size).toBe(queued - 2); // nothing twice
    expect(BigInt((registerOf(events.at(-1)) ?? Number.NaN) - (registerOf(events[0]) ?? Number.NaN))).toBe(energyWh);
  }, 180_000);
});

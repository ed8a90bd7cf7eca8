/**
 * The OCPP 1.6J charge point with the real agent in the sim world (anvil, contracts, hw-sim's meter over Modbus TCP,
 * relay and EV on the sim GPIO) against a real ocpp-rpc RPCServer on loopback as the CSMS.
 */
import { afterEach, describe, expect, it } from "vitest";
import { connectLedger, SessionStatus } from "../../../agent/chain/contracts.ts";
import { openSession } from "../../../agent/chain/operations.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import { silentLogger } from "../../../agent/logging.ts";
import { freePort } from "../../../agent/net.ts";
import { startOcpp, type OcppConfig, type ResetKind, type RunningOcpp } from "../../../agent/ocpp/index.ts";
import { SIM_CHARGE_POINT_ID, SIM_PRICE_WEI_PER_KWH, startSimWorld, waitUntil, type SimWorld } from "../../../agent/sim/world.ts";
import { sequenceOf, startTestCsms, type RecordedCall, type TestCsms } from "../../helpers/ocpp16-csms.ts";

const CP_ID = cpIdOf(SIM_CHARGE_POINT_ID);
const depositFor = (wh: number): bigint => (BigInt(wh) * SIM_PRICE_WEI_PER_KWH) / 1000n;

let world: SimWorld | undefined;
let csms: TestCsms | undefined;
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
  return { url, version: "1.6", password: "s3cret-pw", connectorId: 1, vendor: "trustpile", model: "trustpile-cp", reconnectMaxDelayS: 1 };
}

function startOcppOn(w: SimWorld, url: string, onReset: (kind: ResetKind) => void = () => undefined): RunningOcpp {
  return startOcpp({
    config: ocppConfig(url),
    chargePointId: SIM_CHARGE_POINT_ID,
    confirmations: w.core.confirmations,
    agent: w.agent,
    journal: w.journal,
    log: silentLogger(),
    onReset,
    meterStaleAfterMs: w.core.staleAfterMs,
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

const callsOf = (c: TestCsms, method: string): RecordedCall[] => c.calls.filter((call) => call.method === method);

describe("OCPP 1.6J charge point", () => {
  it("tells the CSMS one session in order, and meterStop − meterStart is the energy settled on chain", async () => {
    const w = (world = await startSimWorld());
    const c = (csms = await startTestCsms({ password: "s3cret-pw" }));
    ocpp = startOcppOn(w, c.url);
    await waitUntil("status of connector 1", () => c.calls.some((call) => call.method === "StatusNotification" && call.params.connectorId === 1), 15_000);
    // Every transaction meter value each second, so a short session yields several.
    expect(await c.call("ChangeConfiguration", { key: "MeterValueSampleInterval", value: "1" })).toEqual({ status: "Accepted" });

    w.hwSim.board.ev.plug();
    const sessionId = await openDeposit(w, 150);
    const energyWh = await settled(w, sessionId);
    await waitUntil("StopTransaction", () => callsOf(c, "StopTransaction").length === 1, 15_000);
    w.hwSim.board.ev.unplug();
    await waitUntil("Available after the EV left", () => sequenceOf(c.calls).at(-1) === "StatusNotification 1 Available" && c.calls.length > 8, 15_000);

    expect(c.connections).toEqual([SIM_CHARGE_POINT_ID]);
    // While delivering, a reading under load may show the EV drawing nothing for a poll (see
    // test/helpers/session-phases.ts): SuspendedEV ↔ Charging pairs there are the truth, and nothing else may appear.
    const raw = c.calls.filter((call) => call.method !== "Heartbeat");
    const firstCharging = raw.findIndex((call) => call.method === "StatusNotification" && call.params.status === "Charging");
    const stopIndex = raw.findIndex((call) => call.method === "StopTransaction");
    const delivering = raw.slice(firstCharging + 1, stopIndex);
    expect(delivering.filter((call) => call.method !== "MeterValues" && !(call.method === "StatusNotification" && ["SuspendedEV", "Charging"].includes(String(call.params.status))))).toEqual([]);
    const sequence = sequenceOf([...raw.slice(0, firstCharging + 1), ...delivering.filter((call) => call.method === "MeterValues"), ...raw.slice(stopIndex)]);
    expect(sequence, JSON.stringify(sequenceOf(raw))).toEqual([
      "BootNotification",
      "StatusNotification 0 Available",
      "StatusNotification 1 Available",
      "StatusNotification 1 Preparing",
      "Authorize",
      "StartTransaction",
      "StatusNotification 1 Charging",
      "MeterValues…",
      "StopTransaction",
      "StatusNotification 1 Finishing",
      "StatusNotification 1 Available",
    ]);
    expect(callsOf(c, "BootNotification")[0]?.params).toEqual({ chargePointVendor: "trustpile", chargePointModel: "trustpile-cp" });
    expect(callsOf(c, "Authorize")[0]?.params).toEqual({ idTag: sessionId.toString() });
    const start = callsOf(c, "StartTransaction")[0]?.params as { connectorId: number; idTag: string; meterStart: number; timestamp: string };
    const stop = callsOf(c, "StopTransaction")[0]?.params as { transactionId: number; idTag: string; meterStop: number; reason: string; transactionData: unknown[] };
    expect(start).toMatchObject({ connectorId: 1, idTag: sessionId.toString() });
    expect(stop).toMatchObject({ transactionId: 4_001, idTag: sessionId.toString(), reason: "Local" });
    // 150 Wh covered − 20 Wh stop margin: the budget stop; the CSMS's energy is the chain's.
    expect(BigInt(stop.meterStop - start.meterStart)).toBe(energyWh);
    expect(Number(energyWh)).toBeGreaterThanOrEqual(130);
    expect(stop.transactionData).toEqual([
      { timestamp: start.timestamp, sampledValue: [{ value: String(start.meterStart), context: "Transaction.Begin", measurand: "Energy.Active.Import.Register", unit: "Wh" }] },
      { timestamp: expect.any(String), sampledValue: [{ value: String(stop.meterStop), context: "Transaction.End", measurand: "Energy.Active.Import.Register", unit: "Wh" }] },
    ]);
    // Meter values: the transaction's id, the register in Wh rising between start and stop, per-phase values of the SDM630.
    const values = callsOf(c, "MeterValues").map((call) => call.params as { connectorId: number; transactionId: number; meterValue: Array<{ sampledValue: Array<Record<string, string>> }> });
    expect(values.length).toBeGreaterThanOrEqual(2);
    const registers = values.map((value) => Number(value.meterValue[0]?.sampledValue.find((sample) => sample.measurand === "Energy.Active.Import.Register")?.value));
    for (const value of values) expect(value).toMatchObject({ connectorId: 1, transactionId: 4_001 });
    expect(registers).toEqual([...registers].sort((a, b) => a - b));
    expect(registers[0]).toBeGreaterThanOrEqual(start.meterStart);
    expect(registers.at(-1)).toBeLessThanOrEqual(stop.meterStop);
    const first = values[0]?.meterValue[0]?.sampledValue ?? [];
    expect(first.map((sample) => `${sample.measurand}${sample.phase ? ` ${sample.phase}` : ""} ${sample.unit} ${sample.context}`)).toEqual([
      "Energy.Active.Import.Register Wh Sample.Periodic",
      "Power.Active.Import W Sample.Periodic",
      "Current.Import L1 A Sample.Periodic",
      "Current.Import L2 A Sample.Periodic",
      "Current.Import L3 A Sample.Periodic",
      "Voltage L1-N V Sample.Periodic",
      "Voltage L2-N V Sample.Periodic",
      "Voltage L3-N V Sample.Periodic",
    ]);
    // DataTransfer: the CSMS can look the transaction up on chain.
    const info = await c.call("DataTransfer", { vendorId: "trustpile", messageId: "sessionInfo", data: "4001" });
    expect(info.status).toBe("Accepted");
    const parsed = JSON.parse(String(info.data)) as Record<string, unknown>;
    expect(parsed).toMatchObject({ transactionId: 4_001, sessionId: sessionId.toString() });
    expect(parsed.depositTxHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(parsed.settleTxHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await c.call("DataTransfer", { vendorId: "acme" })).toEqual({ status: "UnknownVendorId" });
    expect(await c.call("DataTransfer", { vendorId: "trustpile", messageId: "other" })).toEqual({ status: "UnknownMessageId" });
  }, 150_000);

  it("delivers Start, every MeterValues and Stop in order after a CSMS outage spanning the session and an agent restart", async () => {
    const w = (world = await startSimWorld());
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}/ocpp`;
    expect(await c0ChangeInterval(w)).toBe(true);
    ocpp = startOcppOn(w, url);

    w.hwSim.board.ev.plug();
    const sessionId = await openDeposit(w, 200);
    await waitUntil("energized", () => w.agent.state().phase === "energized", 60_000);
    await waitUntil("a few meter values queued", () => w.journal.pending("ocpp").length >= 3, 30_000);

    // Reboot of the pile mid-session: OCPP and the agent stop, and start again on the same journal.
    await ocpp.stop();
    await w.restartAgent();
    ocpp = startOcppOn(w, url);
    const energyWh = await settled(w, sessionId);
    await waitUntil("StopTransaction queued", () => w.journal.get(`ocpp:stop:${sessionId}`) !== undefined, 15_000);
    const queued = w.journal.pending("ocpp").map((item) => item.key);
    expect(queued[0]).toBe(`ocpp:start:${sessionId}`);
    expect(queued.at(-1)).toBe(`ocpp:stop:${sessionId}`);
    const queuedValues = queued.filter((key) => key.startsWith("ocpp:meter:")).length;
    expect(queuedValues).toBeGreaterThanOrEqual(3);

    // The CSMS comes back.
    const c = (csms = await startTestCsms({ port, password: "s3cret-pw" }));
    await waitUntil("StopTransaction delivered", () => callsOf(c, "StopTransaction").length === 1, 30_000);
    await waitUntil("queue empty", () => w.journal.pending("ocpp").length === 0, 10_000);

    const transactionCalls = c.calls.filter((call) => ["StartTransaction", "MeterValues", "StopTransaction"].includes(call.method));
    expect(transactionCalls.map((call) => call.method)).toEqual(["StartTransaction", ...Array<string>(queuedValues).fill("MeterValues"), "StopTransaction"]);
    const timestamps = transactionCalls.slice(1, -1).map((call) => (call.params.meterValue as Array<{ timestamp: string }>)[0]?.timestamp ?? "");
    expect(new Set(timestamps).size).toBe(queuedValues); // nothing twice
    expect(timestamps).toEqual([...timestamps].sort());
    for (const call of transactionCalls.slice(1)) expect(call.params.transactionId).toBe(4_001);
    const start = transactionCalls[0]?.params as { meterStart: number };
    const stop = transactionCalls.at(-1)?.params as { meterStop: number; reason: string };
    expect(BigInt(stop.meterStop - start.meterStart)).toBe(energyWh);
    expect(stop.reason).toBe("Local");
    expect(c.calls[0]?.method).toBe("BootNotification");
  }, 180_000);

  it("accepts RemoteStart only for a waiting confirmed deposit, and RemoteStop stops the session (reason Remote)", async () => {
    const w = (world = await startSimWorld());
    const c = (csms = await startTestCsms({ password: "s3cret-pw" }));
    ocpp = startOcppOn(w, c.url);
    await waitUntil("accepted", () => ocpp?.isAccepted() === true, 15_000);

    expect(await c.call("RemoteStartTransaction", { idTag: "1", connectorId: 1 })).toEqual({ status: "Rejected" });
    // No EV plugged in: the confirmed, authorized deposit waits for one.
    const sessionId = await openDeposit(w, 500);
    await waitUntil("authorized", () => w.agent.state().phase === "authorized", 60_000);
    expect(await c.call("RemoteStartTransaction", { idTag: (sessionId + 1n).toString() })).toEqual({ status: "Rejected" });
    expect(await c.call("RemoteStartTransaction", { idTag: sessionId.toString(), connectorId: 2 })).toEqual({ status: "Rejected" });
    expect(await c.call("RemoteStartTransaction", { idTag: sessionId.toString(), connectorId: 1 })).toEqual({ status: "Accepted" });
    expect(w.agent.relay.history().some((edge) => edge.closed)).toBe(false); // accepting energized nothing

    w.hwSim.board.ev.plug();
    await waitUntil("StartTransaction", () => callsOf(c, "StartTransaction").length === 1, 30_000);
    expect(await c.call("RemoteStopTransaction", { transactionId: 999 })).toEqual({ status: "Rejected" });
    expect(await c.call("RemoteStopTransaction", { transactionId: 4_001 })).toEqual({ status: "Accepted" });
    const energyWh = await settled(w, sessionId);
    await waitUntil("StopTransaction", () => callsOf(c, "StopTransaction").length === 1, 15_000);
    const start = callsOf(c, "StartTransaction")[0]?.params as { meterStart: number };
    const stop = callsOf(c, "StopTransaction")[0]?.params as { meterStop: number; reason: string; transactionId: number };
    expect(stop).toMatchObject({ reason: "Remote", transactionId: 4_001 });
    expect(BigInt(stop.meterStop - start.meterStart)).toBe(energyWh);
    // Well short of the 480 Wh budget: the remote stop ended it.
    expect(Number(energyWh)).toBeLessThan(480);
  }, 150_000);

  it("on Reset stops the running session and queues its signed total before the host's reset runs (settled first)", async () => {
    const w = (world = await startSimWorld());
    const c = (csms = await startTestCsms({ password: "s3cret-pw" }));
    let sessionId = 0n;
    const resets: Array<{ kind: ResetKind; settleQueued: boolean; phase: string }> = [];
    ocpp = startOcppOn(w, c.url, (kind) => {
      resets.push({ kind, settleQueued: w.journal.get(`settle:${sessionId}`) !== undefined, phase: w.agent.state().phase });
    });
    await waitUntil("accepted", () => ocpp?.isAccepted() === true, 15_000);
    w.hwSim.board.ev.plug();
    sessionId = await openDeposit(w, 2_000);
    await waitUntil("StartTransaction", () => callsOf(c, "StartTransaction").length === 1, 60_000);
    expect(await c.call("Reset", { type: "Soft" })).toEqual({ status: "Accepted" });
    await waitUntil("reset callback", () => resets.length === 1, 30_000);
    expect(resets[0]).toMatchObject({ kind: "Soft", settleQueued: true });
    expect(["settling", "idle"]).toContain(resets[0]?.phase);
    await waitUntil("StopTransaction", () => callsOf(c, "StopTransaction").length === 1, 15_000);
    const energyWh = await settled(w, sessionId);
    const start = callsOf(c, "StartTransaction")[0]?.params as { meterStart: number };
    const stop = callsOf(c, "StopTransaction")[0]?.params as { meterStop: number; reason: string };
    expect(stop.reason).toBe("SoftReset");
    expect(BigInt(stop.meterStop - start.meterStart)).toBe(energyWh);
    expect(Number(energyWh)).toBeLessThan(1_980);
  }, 150_000);

  it("answers configuration, availability, trigger, unlock and malformed calls without harming the agent", async () => {
    const w = (world = await startSimWorld());
    const c = (csms = await startTestCsms({ password: "s3cret-pw" }));
    ocpp = startOcppOn(w, c.url);
    await waitUntil("accepted", () => ocpp?.isAccepted() === true, 15_000);

    expect(await c.call("GetConfiguration", { key: ["HeartbeatInterval", "NumberOfConnectors", "Nope"] })).toEqual({
      configurationKey: [
        { key: "HeartbeatInterval", readonly: false, value: "300" },
        { key: "NumberOfConnectors", readonly: true, value: "1" },
      ],
      unknownKey: ["Nope"],
    });
    expect(await c.call("ChangeConfiguration", { key: "NumberOfConnectors", value: "2" })).toEqual({ status: "Rejected" });
    expect(await c.call("ChangeConfiguration", { key: "Nope", value: "2" })).toEqual({ status: "NotSupported" });
    expect(await c.call("ChangeConfiguration", { key: "MeterValueSampleInterval", value: "ten" })).toEqual({ status: "Rejected" });
    expect(await c.call("ChangeConfiguration", { key: "WebSocketPingInterval", value: "30" })).toEqual({ status: "RebootRequired" });
    expect(await c.call("ChangeConfiguration", { key: "MeterValueSampleInterval", value: "15" })).toEqual({ status: "Accepted" });
    // Persisted in the journal: a restarted adapter reads it back.
    await ocpp.stop();
    const statusesBeforeRestart = callsOf(c, "StatusNotification").length;
    ocpp = startOcppOn(w, c.url);
    await waitUntil("booted again with both statuses", () => ocpp?.isAccepted() === true && callsOf(c, "StatusNotification").length === statusesBeforeRestart + 2, 15_000);
    expect(await c.call("GetConfiguration", { key: ["MeterValueSampleInterval"] })).toEqual({
      configurationKey: [{ key: "MeterValueSampleInterval", readonly: false, value: "15" }],
    });

    const before = c.calls.length;
    expect(await c.call("TriggerMessage", { requestedMessage: "StatusNotification", connectorId: 1 })).toEqual({ status: "Accepted" });
    expect(await c.call("TriggerMessage", { requestedMessage: "DiagnosticsStatusNotification" })).toEqual({ status: "NotImplemented" });
    await waitUntil("triggered status", () => c.calls.length > before, 5_000);
    expect(c.calls.slice(before).map((call) => `${call.method} ${String(call.params.connectorId)} ${String(call.params.status)}`)).toEqual([
      "StatusNotification 1 Available",
    ]);

    expect(await c.call("UnlockConnector", { connectorId: 1 })).toEqual({ status: "NotSupported" });
    expect(await c.call("ClearCache", {})).toEqual({ status: "Accepted" });

    // Malformed: strict mode answers with the right CallError, and the agent runs on.
    await expect(c.call("RemoteStopTransaction", { transactionId: "x" })).rejects.toMatchObject({ rpcErrorCode: "TypeConstraintViolation" });
    // Spelled as OCPP-J 1.6 §4.2.3 spells it.
    await expect(c.call("ChangeAvailability", {})).rejects.toMatchObject({ rpcErrorCode: "OccurenceConstraintViolation" });
    await expect(c.call("ReserveNow", { connectorId: 1, expiryDate: new Date().toISOString(), idTag: "a", reservationId: 1 })).rejects.toMatchObject({ rpcErrorCode: "NotImplemented" });

    // Inoperative on connector 0: Unavailable, and a confirmed deposit is held before authorize.
    const statusesBefore = c.calls.length;
    expect(await c.call("ChangeAvailability", { connectorId: 0, type: "Inoperative" })).toEqual({ status: "Accepted" });
    await waitUntil("Unavailable", () => c.calls.slice(statusesBefore).filter((call) => call.params.status === "Unavailable").length === 2, 5_000);
    const sessionId = await openDeposit(w, 100);
    await waitUntil("deposit seen", () => w.agent.state().session?.sessionId === sessionId, 30_000);
    const head = await w.provider.getBlockNumber();
    await waitUntil("three more blocks", async () => (await w.provider.getBlockNumber()) >= head + 3, 15_000);
    expect(w.agent.state().phase).toBe("depositPending");
    expect(await c.call("ChangeAvailability", { connectorId: 0, type: "Operative" })).toEqual({ status: "Accepted" });
    await waitUntil("authorized", () => ["authorizing", "authorized"].includes(w.agent.state().phase), 15_000);
  }, 150_000);
});

/** With no CSMS reachable, the configuration change goes straight to the journal (as a CSMS would have set it). */
async function c0ChangeInterval(w: SimWorld): Promise<boolean> {
  const key = "ocpp.v16.configuration";
  w.journal.setValue(key, { MeterValueSampleInterval: "1" });
  return (w.journal.getValue(key) as Record<string, string>).MeterValueSampleInterval === "1";
}

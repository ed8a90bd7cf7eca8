import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSimGpio } from "../../../drivers/gpio/sim.ts";
import { createSimBoard, type SimBoard } from "../../../hw-sim/board.ts";
import { ManualClock } from "../../../hw-sim/clock.ts";
import { startControlServer, type ControlServer } from "../../../hw-sim/control-http.ts";

const T0 = 1_700_000_000_000;

let clock: ManualClock;
let board: SimBoard;
let server: ControlServer;

beforeEach(async () => {
  clock = new ManualClock(T0);
  board = createSimBoard({
    gpio: createSimGpio(),
    clock,
    ev: { capacityWh: 50_000, socPercent: 20 },
    relay: { switchingDelayMs: 20 },
    meter: { voltageNoiseV: 0, importEnergyWh: 1_000 },
  });
  server = await startControlServer({ board });
});

afterEach(async () => {
  await server.close();
  board.close();
});

async function call(method: string, path: string, body?: string): Promise<{ status: number; json: unknown; type: string | null }> {
  const response = await fetch(`${server.url}${path}`, { method, ...(body !== undefined ? { body } : {}) });
  return { status: response.status, json: await response.json(), type: response.headers.get("content-type") };
}

const ev = (changes: Record<string, unknown>) => ({
  plugged: false,
  paused: false,
  pilot: "A",
  full: false,
  capacityWh: 50_000,
  storedEnergyWh: 10_000,
  socPercent: 20,
  maxPowerW: 11_000,
  powerDemandW: 0,
  pluggedAtMs: null,
  ...changes,
});

const noFaults = { meterOffline: false, meterReplyDelayMs: 0, meterCrcErrors: false, meterException: null, relay: "none" };

describe("hw-sim control endpoint", () => {
  it("listens on 127.0.0.1 only", () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);
  });

  it("GET /state shows EV, relay, meter and faults", async () => {
    const result = await call("GET", "/state");
    expect(result.status).toBe(200);
    expect(result.type).toBe("application/json; charset=utf-8");
    expect(result.json).toEqual({
      atMs: T0,
      ev: ev({}),
      relay: { commanded: false, contactsClosed: false, feedbackClosed: false, fault: "none", switchingDelayMs: 20 },
      meter: {
        model: "sdm630",
        importEnergyWh: 1_000,
        exportEnergyWh: 0,
        powerW: 0,
        frequencyHz: 50,
        phases: [
          { voltageV: 230, currentA: 0, powerW: 0 },
          { voltageV: 230, currentA: 0, powerW: 0 },
          { voltageV: 230, currentA: 0, powerW: 0 },
        ],
      },
      faults: noFaults,
    });
  });

  it("POST /ev/plug, /ev/pause, /ev/resume, /ev/unplug answer with the EV's new state", async () => {
    clock.advance(1_000);
    expect(await call("POST", "/ev/plug")).toMatchObject({
      status: 200,
      json: { ev: ev({ plugged: true, pilot: "C", powerDemandW: 11_000, pluggedAtMs: T0 + 1_000 }) },
    });
    expect((await call("POST", "/ev/pause")).json).toEqual({
      ev: ev({ plugged: true, paused: true, pilot: "B", pluggedAtMs: T0 + 1_000 }),
    });
    expect((await call("POST", "/ev/resume")).json).toEqual({
      ev: ev({ plugged: true, pilot: "C", powerDemandW: 11_000, pluggedAtMs: T0 + 1_000 }),
    });
    expect((await call("POST", "/ev/unplug")).json).toEqual({ ev: ev({}) });
    expect(board.ev.plugged).toBe(false);
  });

  it("GET /state shows power and energy once the coil is energized by hand and the EV charges", async () => {
    await call("POST", "/ev/plug");
    expect((await call("POST", "/relay/energize")).json).toEqual({
      relay: { commanded: true, contactsClosed: false, feedbackClosed: false, fault: "none", switchingDelayMs: 20 },
    });
    clock.advance(20 + 360_000);
    const state = (await call("GET", "/state")).json as { meter: { powerW: number; importEnergyWh: number }; ev: { storedEnergyWh: number } };
    expect(state.meter.powerW).toBe(11_000);
    expect(state.meter.importEnergyWh).toBe(2_100);
    expect(state.ev.storedEnergyWh).toBe(11_100);
    expect((await call("POST", "/relay/release")).json).toMatchObject({ relay: { commanded: false, contactsClosed: true } });
  });

  it("POST /faults sets each meter fault and answers with the faults in force", async () => {
    expect(await call("POST", "/faults", '{"meterOffline":true}')).toMatchObject({
      status: 200,
      json: { faults: { ...noFaults, meterOffline: true } },
    });
    expect((await call("POST", "/faults", '{"meterReplyDelayMs":800,"meterCrcErrors":true}')).json).toEqual({
      faults: { ...noFaults, meterOffline: true, meterReplyDelayMs: 800, meterCrcErrors: true },
    });
    expect((await call("POST", "/faults", '{"meterException":4}')).json).toEqual({
      faults: { ...noFaults, meterOffline: true, meterReplyDelayMs: 800, meterCrcErrors: true, meterException: 4 },
    });
    expect(board.modbusFaults).toEqual({ offline: true, replyDelayMs: 800, corruptCrc: true, exceptionCode: 4 });
    expect((await call("POST", "/faults", '{"meterException":null,"meterOffline":false}')).json).toEqual({
      faults: { ...noFaults, meterReplyDelayMs: 800, meterCrcErrors: true },
    });
  });

  it("POST /faults welds the relay, makes it fail to close, and clears", async () => {
    expect((await call("POST", "/faults", '{"relay":"weld"}')).json).toEqual({ faults: { ...noFaults, relay: "welded" } });
    expect(board.relay.contactsClosed()).toBe(true);
    expect((await call("POST", "/faults", '{"relay":"failToClose"}')).json).toEqual({
      faults: { ...noFaults, relay: "failToClose" },
    });
    expect((await call("POST", "/faults", '{"relay":"none","meterOffline":true}')).json).toEqual({
      faults: { ...noFaults, meterOffline: true },
    });
    // clear applies first, so it can be combined with the faults of the next scenario.
    expect((await call("POST", "/faults", '{"meterCrcErrors":true,"clear":true}')).json).toEqual({
      faults: { ...noFaults, meterCrcErrors: true },
    });
    expect((await call("POST", "/faults", '{"clear":true}')).json).toEqual({ faults: noFaults });
  });

  it("POST /faults meterEnergyReset drops the import register to 0", async () => {
    await call("POST", "/faults", '{"meterEnergyReset":true}');
    expect(((await call("GET", "/state")).json as { meter: { importEnergyWh: number } }).meter.importEnergyWh).toBe(0);
  });

  it("answers an unknown fault name with 400, listing the known ones, and changes nothing", async () => {
    expect(await call("POST", "/faults", '{"meterOffline":true,"meterOnFire":true}')).toEqual({
      status: 400,
      type: "application/json; charset=utf-8",
      json: {
        error:
          'unknown fault "meterOnFire", expected one of meterOffline, meterReplyDelayMs, meterCrcErrors, meterException, meterEnergyReset, relay, clear',
      },
    });
    expect(board.modbusFaults.offline).toBe(false);
  });

  it.each([
    ['{"meterOffline":"yes"}', 'meterOffline: expected true or false, got "yes"'],
    ['{"meterReplyDelayMs":-5}', "meterReplyDelayMs: expected an integer ms 0..600000, got -5"],
    ['{"meterReplyDelayMs":1.5}', "meterReplyDelayMs: expected an integer ms 0..600000, got 1.5"],
    ['{"meterException":0}', "meterException: expected a Modbus exception code 1..255 or null, got 0"],
    ['{"meterEnergyReset":false}', "meterEnergyReset: expected true, got false"],
    ['{"relay":"melt"}', 'relay: expected one of "weld", "failToClose", "none", got "melt"'],
    ['{"clear":1}', "clear: expected true, got 1"],
    ["{}", "expected at least one fault, one of meterOffline, meterReplyDelayMs, meterCrcErrors, meterException, meterEnergyReset, relay, clear"],
    ["[1]", 'expected a JSON object of faults such as {"meterOffline":true}, got [1]'],
    ["{not json", 'expected a JSON body such as {"meterOffline":true}, got invalid JSON'],
    ["", 'expected a JSON body such as {"meterOffline":true}, got an empty body'],
  ])("answers POST /faults %s with 400", async (body, error) => {
    expect(await call("POST", "/faults", body)).toMatchObject({ status: 400, json: { error } });
  });

  it("answers an unknown route with 404 listing the routes", async () => {
    expect(await call("GET", "/ev/charge")).toMatchObject({
      status: 404,
      json: {
        error:
          "no route GET /ev/charge, expected one of GET /state, POST /ev/plug, POST /ev/unplug, POST /ev/pause, POST /ev/resume, POST /relay/energize, POST /relay/release, POST /faults",
      },
    });
  });

  it("answers a wrong method with 405 and an Allow header", async () => {
    const response = await fetch(`${server.url}/ev/plug`);
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    expect(await response.json()).toEqual({ error: "/ev/plug accepts POST, got GET" });
    expect(board.ev.plugged).toBe(false);
  });

  it("refuses a body over 16 KiB with 413", async () => {
    const result = await call("POST", "/faults", JSON.stringify({ clear: true, pad: "x".repeat(20_000) }));
    expect(result).toMatchObject({ status: 413, json: { error: "request body larger than 16384 bytes" } });
  });
});

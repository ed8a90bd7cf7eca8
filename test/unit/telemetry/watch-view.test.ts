import { describe, expect, it } from "vitest";
import {
  COLUMNS,
  applyMessage,
  emptyView,
  formatAge,
  parseTopic,
  renderRowLine,
  renderView,
  rowCells,
  watchSubscriptions,
  type WatchView,
} from "../../../agent/telemetry/watch-view.ts";

const T0 = Date.parse("2024-05-01T12:00:00.000Z");

function feed(view: WatchView, messages: [string, string, number][]): WatchView {
  return messages.reduce((v, [topic, payload, at]) => applyMessage(v, topic, payload, at), view);
}

function cellsOf(view: WatchView, cp: string, nowMs: number): Record<string, string> {
  const row = view.rows.get(cp);
  if (!row) throw new Error(`no row for ${cp}`);
  const cells = rowCells(row, nowMs);
  return Object.fromEntries(COLUMNS.map((column, i) => [column, cells[i] ?? ""]));
}

const state = (fields: Record<string, unknown>): string =>
  JSON.stringify({ ts: "2024-05-01T12:00:00.000Z", phase: "idle", sessionId: null, relayClosed: false, evPresent: false, fault: null, meterFault: null, energyWh: null, powerW: null, ...fields });

describe("watch view", () => {
  it("subscribes to the five topics of every charge point under the prefix", () => {
    expect(watchSubscriptions("site/a")).toEqual(["site/a/+/status", "site/a/+/state", "site/a/+/meter", "site/a/+/session", "site/a/+/event"]);
    expect(parseTopic("site/a", "site/a/cp-1/meter")).toEqual({ chargePointId: "cp-1", topic: "meter" });
    expect(parseTopic("site/a", "site/b/cp-1/meter")).toBeUndefined();
    expect(parseTopic("site/a", "site/a/cp-1/meter/x")).toBeUndefined();
    expect(parseTopic("site/a", "site/a/cp-1/config")).toBeUndefined();
  });

  it("follows a scripted session to exact cells", () => {
    let view = emptyView("trustpile/");
    expect(view.prefix).toBe("trustpile");
    view = feed(view, [
      ["trustpile/cp-1/status", "online", T0],
      ["trustpile/cp-1/state", state({ powerW: 0 }), T0],
      ["trustpile/cp-1/meter", JSON.stringify({ ts: "x", energyWh: 10_000, powerW: 0, phases: [] }), T0 + 100],
    ]);
    expect(cellsOf(view, "cp-1", T0 + 200)).toEqual({
      "charge point": "cp-1",
      status: "online",
      session: "idle",
      "power W": "0",
      "energy Wh": "10000",
      "session Wh": "-",
      relay: "open",
      "last event": "-",
    });

    view = feed(view, [
      ["trustpile/cp-1/session", JSON.stringify({ ts: "x", sessionId: "7", phase: "energized", previousPhase: "authorized", meterStartWh: 10_000, energyWh: 0 }), T0 + 1_000],
      ["trustpile/cp-1/state", state({ phase: "energized", sessionId: "7", relayClosed: true, evPresent: true, energyWh: 0, powerW: 11_000 }), T0 + 1_000],
      ["trustpile/cp-1/meter", JSON.stringify({ ts: "x", energyWh: 10_042.6, powerW: 11_040.4, phases: [] }), T0 + 2_000],
      ["trustpile/cp-1/event", JSON.stringify({ ts: new Date(T0 + 2_000).toISOString(), level: "warning", message: "meter answered late", sessionId: "7" }), T0 + 2_000],
    ]);
    expect(cellsOf(view, "cp-1", T0 + 14_000)).toEqual({
      "charge point": "cp-1",
      status: "online",
      session: "energized #7",
      "power W": "11040",
      "energy Wh": "10043",
      "session Wh": "43",
      relay: "closed",
      "last event": "warning: meter answered late (12s ago)",
    });

    view = feed(view, [
      ["trustpile/cp-1/session", JSON.stringify({ ts: "x", sessionId: "7", phase: "settling", previousPhase: "stopping", meterStartWh: 10_000, energyWh: 300, stopReason: "deposit" }), T0 + 3_000],
      ["trustpile/cp-1/meter", JSON.stringify({ ts: "x", energyWh: 10_300, powerW: 0, phases: [] }), T0 + 3_000],
      ["trustpile/cp-1/session", JSON.stringify({ ts: "x", sessionId: "7", phase: "closed", previousPhase: "settling", meterStartWh: 10_000, energyWh: 300 }), T0 + 4_000],
      ["trustpile/cp-1/state", state({ relayClosed: false, powerW: 0 }), T0 + 4_000],
    ]);
    expect(cellsOf(view, "cp-1", T0 + 4_000)).toMatchObject({ session: "idle", "session Wh": "300", "energy Wh": "10300", relay: "open", "power W": "0" });
    expect(view.applied).toBe(11);
    expect(view.ignored).toBe(0);
  });

  it("shows a charge point offline from its status (the Last Will)", () => {
    const view = feed(emptyView("trustpile"), [
      ["trustpile/cp-2/status", "online", T0],
      ["trustpile/cp-2/status", "offline", T0 + 1],
    ]);
    expect(cellsOf(view, "cp-2", T0)).toMatchObject({ status: "offline", session: "-", relay: "-" });
  });

  it("ignores and counts malformed or foreign messages without changing rows", () => {
    const start = feed(emptyView("trustpile"), [["trustpile/cp-1/status", "online", T0]]);
    const view = feed(start, [
      ["trustpile/cp-1/state", "{not json", T0],
      ["trustpile/cp-1/state", "[1,2]", T0],
      ["trustpile/cp-1/state", JSON.stringify({ sessionId: null }), T0],
      ["trustpile/cp-1/meter", JSON.stringify({ energyWh: "12" }), T0],
      ["trustpile/cp-1/session", JSON.stringify({ phase: "energized", sessionId: -1 }), T0],
      ["trustpile/cp-1/event", JSON.stringify({ level: 3 }), T0],
      ["trustpile/cp-1/status", "maybe", T0],
      ["trustpile/cp-1/status", new Uint8Array([0xff, 0xfe]), T0],
      ["other/cp-1/status", "online", T0],
      ["trustpile/cp-1/extra/status", "online", T0],
    ] as [string, string, number][]);
    expect(view.ignored).toBe(10);
    expect(view.applied).toBe(1);
    expect(view.rows).toEqual(start.rows);
    expect(renderView(view, T0, { width: 200 }).split("\n").at(-1)).toBe("1 charge point(s) under trustpile/, 1 online; 1 message(s), 10 ignored");
  });

  it("renders an aligned table sorted by charge point, cut to the width", () => {
    const view = feed(emptyView("trustpile"), [
      ["trustpile/cp-b/status", "online", T0],
      ["trustpile/cp-b/meter", JSON.stringify({ energyWh: 5, powerW: 1500 }), T0],
      ["trustpile/cp-a/status", "offline", T0],
      ["trustpile/cp-a/event", JSON.stringify({ ts: "bad", level: "fault", message: "relay welded", sessionId: null }), T0 - 90_000],
    ]);
    const lines = renderView(view, T0, { width: 200 }).split("\n");
    expect(lines).toEqual([
      "charge point  status   session  power W  energy Wh  session Wh  relay  last event",
      "cp-a          offline  -              -          -           -  -      fault: relay welded (1m ago)",
      "cp-b          online   -           1500          5           -  -      -",
      "2 charge point(s) under trustpile/, 1 online; 4 message(s), 0 ignored",
    ]);
    const narrow = renderView(view, T0, { width: 40 }).split("\n");
    expect(narrow.every((line) => line.length <= 40)).toBe(true);
    expect(narrow[1]).toMatch(/…$/);
    expect(renderView(emptyView("x"), T0)).toContain("no charge point has published under x/ yet");
    const row = view.rows.get("cp-b");
    expect(row && renderRowLine(row, T0)).toBe("cp-b online - power 1500 W, meter 5 Wh, session - Wh, relay -, last event -");
  });

  it("formats ages coarsely", () => {
    expect([formatAge(-5), formatAge(59_999), formatAge(60_000), formatAge(3_600_000), formatAge(2 * 86_400_000)]).toEqual(["0s", "59s", "1m", "1h", "2d"]);
  });
});

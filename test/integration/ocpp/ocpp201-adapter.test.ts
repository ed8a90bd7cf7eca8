/**
 * The 2.0.1 adapter's own rules, driven step by step: the real session core and the real OCPP observer, a real
 * journal, a real ocpp-rpc RPCServer in strict mode on loopback as the CSMS; only the hardware and the chain are
 * replaced by events the test feeds the core (as agent/runtime/agent.ts would after its I/O).
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RPCServer } from "ocpp-rpc";
import { afterEach, describe, expect, it } from "vitest";
import { initialState, step } from "../../../agent/core/step.ts";
import type { CoreConfig, CoreEvent, CoreState } from "../../../agent/core/types.ts";
import { openJournal, type Journal } from "../../../agent/journal/journal.ts";
import { silentLogger } from "../../../agent/logging.ts";
import { startOcpp, type OcppAgentView, type ResetKind, type RunningOcpp } from "../../../agent/ocpp/index.ts";
import type { StepObserver } from "../../../agent/runtime/agent.ts";
import { waitUntil } from "../../../agent/sim/world.ts";

const core: CoreConfig = {
  chargePointId: "cp-201",
  confirmations: 1,
  stopMarginWh: 20,
  staleAfterMs: 3_000,
  feedbackTimeoutMs: 500,
  hasEvPresentInput: true,
  hasFeedbackInput: true,
  stopReadingDelayMs: 250,
  stopReadingTimeoutMs: 10_000,
};

/** Any core event without its time (the stepped agent's clock fills it in). */
type EventInput = CoreEvent extends infer E ? (E extends CoreEvent ? Omit<E, "atMs"> : never) : never;

/** The agent's step loop without its I/O: the real core, the journal write-ahead, observers as agent.ts runs them. */
class SteppedAgent implements OcppAgentView {
  current: CoreState = initialState();
  readonly observers = new Set<StepObserver>();
  readonly dispatched: CoreEvent[] = [];
  t = Date.now();

  constructor(readonly journal: Journal) {}

  state(): CoreState {
    return this.current;
  }

  observe(observer: StepObserver): () => void {
    this.observers.add(observer);
    return () => void this.observers.delete(observer);
  }

  async dispatch(event: CoreEvent): Promise<void> {
    this.dispatched.push(event);
    this.apply(event);
  }

  apply(event: CoreEvent): void {
    const previous = this.current;
    const result = step(core, previous, event);
    this.journal.transaction(() => {
      this.journal.append(event as unknown as { type: string });
      for (const observer of this.observers) observer.onJournaled?.(previous, event, result.state);
    });
    this.current = result.state;
    for (const observer of this.observers) observer.onStep?.(result.state, event, result.commands);
  }

  /** Advances the core's clock and feeds one event at that time. */
  feed(afterMs: number, event: EventInput): void {
    this.t += afterMs;
    this.apply({ ...event, atMs: this.t } as CoreEvent);
  }

  sample(afterMs: number, energyWh: number, powerW: number): void {
    // Events the adapter dispatches carry the wall clock: a reading must not look older than they are.
    this.t = Math.max(this.t, Date.now()) + afterMs;
    const sample = { readAtMs: this.t, importEnergyWh: energyWh, powerW, phases: [] };
    for (const observer of this.observers) observer.onSample?.(sample);
    this.apply({ type: "meterSample", atMs: this.t, energyWh, powerW });
  }
}

interface RecordedCall {
  method: string;
  params: Record<string, unknown>;
}

interface ServerClient {
  handle(handler: (call: { method: string; params: Record<string, unknown> }) => unknown): void;
  call(method: string, params: Record<string, unknown>): Promise<unknown>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(bootAnswers: ("Accepted" | "Pending")[]): Promise<{
  agent: SteppedAgent;
  ocpp: RunningOcpp;
  calls: RecordedCall[];
  csmsCall(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>>;
  resets: ResetKind[];
}> {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-ocpp201-"));
  const journal = openJournal(join(dir, "journal.sqlite"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => journal.close());
  const server = new RPCServer({ protocols: ["ocpp2.0.1"], strictMode: true });
  const calls: RecordedCall[] = [];
  let client: ServerClient | undefined;
  server.on("client", (connected: ServerClient) => {
    client = connected;
    connected.handle(({ method, params }) => {
      calls.push({ method, params });
      const now = new Date().toISOString();
      if (method === "BootNotification") return { status: bootAnswers.shift() ?? "Accepted", currentTime: now, interval: 1 };
      if (method === "Heartbeat") return { currentTime: now };
      if (method === "Authorize") return { idTokenInfo: { status: "Accepted" } };
      return {};
    });
  });
  const http = await server.listen(0, "127.0.0.1");
  cleanups.push(() => server.close({ force: true }));
  const agent = new SteppedAgent(journal);
  agent.feed(0, { type: "startup" });
  const resets: ResetKind[] = [];
  const ocpp = startOcpp({
    config: {
      url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp`,
      version: "2.0.1",
      connectorId: 1,
      vendor: "trustpile",
      model: "trustpile-cp",
      reconnectMaxDelayS: 1,
    },
    chargePointId: core.chargePointId,
    confirmations: core.confirmations,
    agent,
    journal,
    log: silentLogger(),
    onReset: (kind) => void resets.push(kind),
    reconnectInitialMs: 50,
    retryUnitMs: 50,
  });
  cleanups.push(() => ocpp.stop());
  return {
    agent,
    ocpp,
    calls,
    resets,
    async csmsCall(method, params) {
      if (!client) throw new Error("no charge point connected");
      return (await client.call(method, params)) as Record<string, unknown>;
    },
  };
}

/** One line per call: the action and what identifies it. */
function lineOf({ method, params }: RecordedCall): string {
  switch (method) {
    case "BootNotification":
      return `BootNotification ${String(params.reason)}`;
    case "StatusNotification":
      return `StatusNotification ${String(params.connectorStatus)}`;
    case "TransactionEvent": {
      const info = params.transactionInfo as { chargingState?: string; stoppedReason?: string };
      return `TransactionEvent ${String(params.eventType)} ${String(params.triggerReason)} #${String(params.seqNo)}${info.chargingState ? ` ${info.chargingState}` : ""}${info.stoppedReason ? ` ${info.stoppedReason}` : ""}`;
    }
    case "NotifyEvent": {
      const data = (params.eventData as { component: { name: string }; actualValue: string; techCode?: string }[])[0];
      return `NotifyEvent ${data?.component.name ?? "?"}.Problem=${data?.actualValue ?? "?"}${data?.techCode ? ` ${data.techCode}` : ""}`;
    }
    default:
      return method;
  }
}

const linesOf = (calls: RecordedCall[]): string[] => calls.filter((call) => call.method !== "Heartbeat").map(lineOf);

/** Energizes session 7: deposit seen and confirmed, authorize mined, EV present, a fresh reading, feedback closed. */
function energize(agent: SteppedAgent): void {
  agent.feed(10, {
    type: "depositSeen",
    sessionId: 7n,
    ev: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    depositWei: 3_000_000_000_000_000n,
    priceWeiPerKWh: 300_000_000_000_000n,
    maxEnergyWh: 50_000,
    depositBlock: 10,
    depositBlockHash: "0xaa",
    depositTxHash: "0xbb",
  });
  agent.feed(10, { type: "chainHead", blockNumber: 10 });
  agent.feed(10, { type: "authorizeMined", sessionId: 7n, txHash: "0xcc" });
  agent.feed(10, { type: "relayFeedback", closed: false });
  agent.sample(10, 5_000, 0);
  expect(agent.state().phase).toBe("energized");
  agent.feed(10, { type: "relayFeedback", closed: true });
}

describe("OCPP 2.0.1 adapter", () => {
  it("sends nothing but BootNotification until the CSMS accepts it, then the status", async () => {
    const { agent, calls, ocpp } = await setUp(["Pending"]);
    agent.feed(10, { type: "evPresence", present: false });
    agent.sample(10, 5_000, 0);
    await waitUntil("accepted after the Pending interval", () => ocpp.isAccepted(), 10_000);
    await waitUntil("status", () => calls.some((call) => call.method === "StatusNotification"), 5_000);
    expect(linesOf(calls)).toEqual(["BootNotification PowerUp", "BootNotification PowerUp", "StatusNotification Available"]);
  });

  it("reports charging-state changes as TransactionEvent Updated after Started, and a Trigger on request", async () => {
    const { agent, calls, ocpp, csmsCall } = await setUp([]);
    await waitUntil("accepted", () => ocpp.isAccepted(), 10_000);
    agent.feed(10, { type: "evPresence", present: true });
    energize(agent);
    await waitUntil("Started confirmed", () => ocpp.transactionIdOf(7n) === "7", 5_000);
    agent.sample(500, 5_010, 7_000);
    agent.sample(500, 5_011, 0); // the EV pauses
    expect(agent.state().phase).toBe("suspended");
    await waitUntil("SuspendedEV", () => calls.some((call) => lineOf(call).includes("SuspendedEV")), 5_000);
    agent.sample(500, 5_020, 7_000); // and resumes
    await waitUntil("Charging again", () => calls.filter((call) => lineOf(call).includes("ChargingStateChanged")).length === 2, 5_000);
    expect(await csmsCall("TriggerMessage", { requestedMessage: "TransactionEvent", evse: { id: 1 } })).toEqual({ status: "Accepted" });
    await waitUntil("triggered event", () => calls.some((call) => lineOf(call).includes(" Trigger ")), 5_000);

    expect(linesOf(calls)).toEqual([
      "BootNotification PowerUp",
      "StatusNotification Available",
      "StatusNotification Occupied",
      "Authorize",
      "TransactionEvent Started Authorized #0 Charging",
      "TransactionEvent Updated ChargingStateChanged #1 SuspendedEV",
      "TransactionEvent Updated ChargingStateChanged #2 Charging",
      "TransactionEvent Updated Trigger #3 Charging",
    ]);
    const triggered = calls.at(-1)?.params.meterValue as { sampledValue: { value: number; measurand: string; context: string }[] }[];
    expect(triggered[0]?.sampledValue[0]).toEqual({ value: 5_020, measurand: "Energy.Active.Import.Register", context: "Trigger", unitOfMeasure: { unit: "Wh" } });
  });

  it("reports a contactor fault as Faulted plus a PowerContactor Problem, ends the transaction, and clears the Problem", async () => {
    const { agent, calls, ocpp, csmsCall } = await setUp([]);
    await waitUntil("accepted", () => ocpp.isAccepted(), 10_000);
    agent.feed(10, { type: "evPresence", present: true });
    energize(agent);
    agent.sample(500, 5_040, 7_000);
    // The contactor drops out while commanded closed: after feedbackTimeoutMs it is a fault.
    agent.feed(10, { type: "relayFeedback", closed: false });
    agent.feed(600, { type: "tick" });
    expect(agent.state().fault).toMatch(/contactor failed to close/);
    agent.sample(300, 5_041, 0); // the stop reading, taken after the contacts opened
    expect(agent.state().phase).toBe("settling");
    agent.feed(10, { type: "settleMined", sessionId: 7n, txHash: "0xdd" });
    await waitUntil("Ended", () => calls.some((call) => lineOf(call).includes("Ended")), 5_000);
    expect(await csmsCall("ChangeAvailability", { operationalStatus: "Inoperative", evse: { id: 2 } })).toMatchObject({ status: "Rejected" });
    agent.feed(10, { type: "clearFault" });
    await waitUntil("Problem cleared", () => calls.some((call) => lineOf(call).endsWith("Problem=false")), 5_000);

    const lines = linesOf(calls);
    expect(lines.slice(0, 5)).toEqual([
      "BootNotification PowerUp",
      "StatusNotification Available",
      "StatusNotification Occupied",
      "Authorize",
      "TransactionEvent Started Authorized #0 Charging",
    ]);
    expect(lines.slice(5)).toEqual([
      // The model reports the whole pile (1.6 connector 0) first: 2.0.1 has no status for it, only the Problem.
      "NotifyEvent PowerContactor.Problem=true PowerSwitchFailure",
      "StatusNotification Faulted",
      "TransactionEvent Ended AbnormalCondition #1 EVConnected Other",
      "StatusNotification Occupied",
      "NotifyEvent PowerContactor.Problem=false",
    ]);
    const ended = calls.find((call) => lineOf(call).includes("Ended"))?.params.meterValue as { sampledValue: { value: number }[] }[];
    expect(ended[0]?.sampledValue[0]?.value).toBe(5_041);
    const raised = calls.find((call) => call.method === "NotifyEvent")?.params.eventData as Record<string, unknown>[];
    expect(raised[0]).toMatchObject({ transactionId: "7", component: { name: "PowerContactor", evse: { id: 1 } }, variable: { name: "Problem" }, cleared: false });
    expect(raised[0]?.techInfo).toMatch(/^contactor failed to close/);

    // Availability goes through the core; a session-free pile changes at once.
    expect(await csmsCall("ChangeAvailability", { operationalStatus: "Inoperative" })).toEqual({ status: "Accepted" });
    expect(agent.dispatched.at(-1)).toMatchObject({ type: "availability", operative: false });
    await waitUntil("Unavailable", () => linesOf(calls).at(-1) === "StatusNotification Unavailable", 5_000);
  });

  it("an Immediate Reset takes over from a waiting OnIdle one: the session ends as ImmediateReset and the host resets once", async () => {
    const { agent, calls, ocpp, csmsCall, resets } = await setUp([]);
    await waitUntil("accepted", () => ocpp.isAccepted(), 10_000);
    agent.feed(10, { type: "evPresence", present: true });
    energize(agent);
    agent.sample(300, 5_030, 7_000);
    expect(await csmsCall("Reset", { type: "OnIdle" })).toEqual({ status: "Scheduled" });
    expect(await csmsCall("Reset", { type: "OnIdle" })).toEqual({ status: "Scheduled" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(resets).toEqual([]); // the session runs on
    expect(await csmsCall("Reset", { type: "Immediate" })).toEqual({ status: "Accepted" });
    await waitUntil("stopping", () => agent.state().phase === "stopping", 5_000);
    agent.sample(300, 5_031, 0); // the stop reading
    await waitUntil("the host's reset", () => resets.length > 0, 10_000);
    expect(agent.dispatched).toEqual([expect.objectContaining({ type: "remoteStop", sessionId: 7n })]);
    const ended = calls.find((call) => lineOf(call).includes("Ended"));
    expect(ended && lineOf(ended)).toBe("TransactionEvent Ended ResetCommand #1 EVConnected ImmediateReset");
    // The superseded OnIdle never resets as well, even once the pile is idle.
    agent.feed(10, { type: "settleMined", sessionId: 7n, txHash: "0xdd" });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(resets).toEqual(["Hard"]);
  });
});

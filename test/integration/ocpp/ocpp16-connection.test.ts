/**
 * The 1.6 charge point's connection and boot against a real ocpp-rpc RPCServer on loopback (ws:// and wss://),
 * with a stand-in agent (no chain needed): credentials, certificates, a CSMS down at start-up, Boot Pending.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { initialState } from "../../../agent/core/step.ts";
import type { CoreEvent, CoreState } from "../../../agent/core/types.ts";
import { openJournal, type Journal } from "../../../agent/journal/journal.ts";
import { createLogger } from "../../../agent/logging.ts";
import { freePort } from "../../../agent/net.ts";
import { startOcpp, type OcppAgentView, type OcppConfig, type RunningOcpp } from "../../../agent/ocpp/index.ts";
import type { StepObserver } from "../../../agent/runtime/agent.ts";
import { waitUntil } from "../../../agent/sim/world.ts";
import { startTestCsms, type TestCsms } from "../../helpers/ocpp16-csms.ts";
import { makeTestCertificates, type TestCertificates } from "../hw-sim/csms-pile.ts";

const PASSWORD = "pw-0123456789abcdef";

let dir: string;
let journal: Journal;
let csms: TestCsms | undefined;
let ocpp: RunningOcpp | undefined;
let certificates: TestCertificates | undefined;
let logLines: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ocpp16-conn-"));
  journal = openJournal(join(dir, "journal.sqlite"));
  logLines = [];
});
afterEach(async () => {
  await ocpp?.stop();
  await csms?.close();
  journal.close();
  certificates?.remove();
  rmSync(dir, { recursive: true, force: true });
  ocpp = undefined;
  csms = undefined;
  certificates = undefined;
});

/** An idle pile: the core's initial state after start-up, recording what OCPP dispatches. */
function idleAgent(): OcppAgentView & { dispatched: CoreEvent[] } {
  const state: CoreState = { ...initialState(), nowMs: Date.now() };
  const dispatched: CoreEvent[] = [];
  return {
    dispatched,
    state: () => state,
    dispatch: async (event) => void dispatched.push(event),
    observe: (_observer: StepObserver) => () => undefined,
  };
}

function start(config: Partial<OcppConfig> & { url: string }, agent = idleAgent()): RunningOcpp {
  const log = createLogger({
    level: "debug",
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString("utf8"));
        done();
      },
    }),
  });
  return startOcpp({
    config: { version: "1.6", connectorId: 1, password: PASSWORD, vendor: "trustpile", model: "trustpile-cp", reconnectMaxDelayS: 1, ...config },
    chargePointId: "cp-test-1",
    confirmations: 2,
    agent,
    journal,
    log,
    onReset: () => undefined,
    reconnectInitialMs: 100,
  });
}

const logged = (text: string): boolean => logLines.some((line) => line.includes(text));

describe("OCPP 1.6 connection", () => {
  it("does not block start-up while the CSMS is down, and boots once it comes up", async () => {
    const port = await freePort();
    const startedAt = Date.now();
    ocpp = start({ url: `ws://127.0.0.1:${port}/ocpp` });
    expect(Date.now() - startedAt).toBeLessThan(500);
    expect(ocpp.isAccepted()).toBe(false);
    await waitUntil("unreachable logged", () => logged(`the CSMS at ws://127.0.0.1:${port}/ocpp/cp-test-1 is unreachable (ECONNREFUSED); retrying with back-off`), 5_000);
    csms = await startTestCsms({ port, password: PASSWORD });
    await waitUntil("boot and both statuses", () => ocpp?.isAccepted() === true && csms!.calls.length >= 3, 10_000);
    expect(csms.connections).toEqual(["cp-test-1"]);
    expect(csms.calls.map((call) => call.method)).toEqual(["BootNotification", "StatusNotification", "StatusNotification"]);
    expect(csms.calls[1]?.params).toMatchObject({ connectorId: 0, status: "Available", errorCode: "NoError" });
    expect(csms.calls[2]?.params).toMatchObject({ connectorId: 1, status: "Available", errorCode: "NoError" });
  });

  it("says in one sentence that the CSMS refused the credentials, and never logs the password", async () => {
    csms = await startTestCsms({ password: "another-password" });
    ocpp = start({ url: csms.url });
    await waitUntil("refusal logged", () => logged("refused the credentials of charge point cp-test-1 (HTTP 401); check ocpp.password"), 5_000);
    expect(ocpp.isAccepted()).toBe(false);
    expect(csms.calls).toEqual([]);
    expect(logLines.join("")).not.toContain(PASSWORD);
  });

  it("connects over wss:// with ocpp.caFile (security profile 2) and refuses a CSMS certificate it does not trust", async () => {
    certificates = makeTestCertificates();
    csms = await startTestCsms({ password: PASSWORD, tls: { certPem: certificates.certPem, keyPem: certificates.keyPem } });
    expect(csms.url.startsWith("wss://")).toBe(true);

    ocpp = start({ url: csms.url });
    await waitUntil("untrusted certificate logged", () => logged("presented a certificate this pile does not trust"), 5_000);
    expect(csms.calls).toEqual([]);
    await ocpp.stop();

    const caFile = join(dir, "csms-ca.pem");
    writeFileSync(caFile, certificates.caPem);
    ocpp = start({ url: csms.url, caFile });
    await waitUntil("accepted over TLS", () => ocpp?.isAccepted() === true, 10_000);
    expect(csms.calls[0]?.method).toBe("BootNotification");
  });

  it("rejects an unreadable ocpp.caFile with a sentence naming the key", () => {
    expect(() => start({ url: "wss://127.0.0.1:1/ocpp", caFile: join(dir, "missing.pem") })).toThrow(
      new RegExp(`^ocpp.caFile: cannot read ${join(dir, "missing.pem")} \\(.*\\); expected a PEM file with the CSMS's CA certificate$`),
    );
  });

  it("while Boot is Pending sends nothing but boots, answers GetConfiguration, and reports statuses once accepted", async () => {
    csms = await startTestCsms({ password: PASSWORD, bootStatus: "Pending", bootIntervalS: 1 });
    ocpp = start({ url: csms.url });
    await waitUntil("two boots", () => csms!.calls.filter((call) => call.method === "BootNotification").length >= 2, 10_000);
    expect(await csms.call("GetConfiguration", { key: ["AuthorizeRemoteTxRequests"] })).toEqual({
      configurationKey: [{ key: "AuthorizeRemoteTxRequests", readonly: true, value: "true" }],
    });
    expect(new Set(csms.calls.map((call) => call.method))).toEqual(new Set(["BootNotification"]));
    csms.setBootStatus("Accepted");
    await waitUntil("statuses", () => csms!.calls.some((call) => call.method === "StatusNotification"), 10_000);
    expect(ocpp.isAccepted()).toBe(true);
    // The Accepted boot's interval became the heartbeat interval.
    expect(await csms.call("GetConfiguration", { key: ["HeartbeatInterval"] })).toEqual({
      configurationKey: [{ key: "HeartbeatInterval", readonly: false, value: "1" }],
    });
    await waitUntil("a heartbeat", () => csms!.calls.some((call) => call.method === "Heartbeat"), 5_000);
  });

  it("answers ChangeAvailability by dispatching the core's availability event, Scheduled only with a session", async () => {
    const agent = idleAgent();
    csms = await startTestCsms({ password: PASSWORD });
    ocpp = start({ url: csms.url }, agent);
    await waitUntil("accepted", () => ocpp?.isAccepted() === true, 10_000);
    expect(await csms.call("ChangeAvailability", { connectorId: 1, type: "Inoperative" })).toEqual({ status: "Accepted" });
    expect(await csms.call("ChangeAvailability", { connectorId: 2, type: "Inoperative" })).toEqual({ status: "Rejected" });
    expect(await csms.call("ChangeAvailability", { connectorId: 0, type: "Operative" })).toEqual({ status: "Accepted" });
    expect(agent.dispatched.map((event) => (event.type === "availability" ? event.operative : event.type))).toEqual([false, true]);
  });
});

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedBroker, type EmbeddedBroker } from "../../../agent/telemetry/embedded-broker.ts";
import { freePort } from "../../../agent/net.ts";
import { runCli, stderrLines } from "../../helpers/cli.ts";

let broker: EmbeddedBroker;
let authBroker: EmbeddedBroker;
let publisher: MqttClient;
const tempDir = mkdtempSync(join(tmpdir(), "trustpile-watch-"));

function publish(topic: string, payload: string, retain: boolean): Promise<void> {
  return new Promise((resolve, reject) => publisher.publish(topic, payload, { qos: 1, retain }, (error) => (error ? reject(error) : resolve())));
}

beforeAll(async () => {
  broker = await startEmbeddedBroker();
  authBroker = await startEmbeddedBroker({ users: [{ username: "operator", password: "letmein" }] });
  publisher = await connect(broker.url, { protocolVersion: 4, reconnectPeriod: 0 }).on("error", () => undefined);
  await new Promise<void>((resolve) => (publisher.connected ? resolve() : publisher.once("connect", () => resolve())));
  const ts = new Date().toISOString();
  await publish("trustpile/cp-001/status", "online", true);
  await publish(
    "trustpile/cp-001/state",
    JSON.stringify({ ts, phase: "energized", sessionId: "12", relayClosed: true, evPresent: true, fault: null, meterFault: null, energyWh: 95, powerW: 7_200 }),
    true,
  );
  await publish("trustpile/cp-002/status", "offline", true);
  await publish(
    "trustpile/cp-002/state",
    JSON.stringify({ ts, phase: "idle", sessionId: null, relayClosed: false, evPresent: false, fault: null, meterFault: null, energyWh: null, powerW: 0 }),
    true,
  );
});

afterAll(async () => {
  publisher?.end(true);
  await broker?.stop();
  await authBroker?.stop();
  rmSync(tempDir, { recursive: true, force: true });
});

describe("trustpile watch", () => {
  it("prints the table of every charge point once after --once-after-ms", async () => {
    // A live meter message while the watcher is subscribed (not retained, so it must arrive in the window).
    const meter = setInterval(() => {
      void publish("trustpile/cp-001/meter", JSON.stringify({ ts: new Date().toISOString(), energyWh: 52_110, powerW: 7_350, phases: [] }), false);
    }, 200);
    try {
      const { status, stdout, stderr } = await runCli(["watch", "--url", broker.url, "--once-after-ms", "1500"]);
      expect(stderr).toBe("");
      expect(status).toBe(0);
      const lines = stdout.trimEnd().split("\n");
      expect(lines[0]).toBe("charge point  status   session        power W  energy Wh  session Wh  relay   last event");
      expect(lines[1]?.split(/\s{2,}/)).toEqual(["cp-001", "online", "energized #12", "7350", "52110", "95", "closed", "-"]);
      expect(lines[2]?.split(/\s{2,}/)).toEqual(["cp-002", "offline", "idle", "0", "-", "-", "open", "-"]);
      expect(lines[3]).toMatch(/^2 charge point\(s\) under trustpile\/, 1 online; \d+ message\(s\), 0 ignored$/);
    } finally {
      clearInterval(meter);
    }
  });

  it("sees nothing under another prefix", async () => {
    const { status, stdout } = await runCli(["watch", "--url", broker.url, "--prefix", "elsewhere", "--once-after-ms", "300"]);
    expect(status).toBe(0);
    expect(stdout).toContain("no charge point has published under elsewhere/ yet");
  });

  it("logs in with --username and --password-file", async () => {
    const passwordFile = join(tempDir, "pw");
    writeFileSync(passwordFile, "letmein\n", { mode: 0o600 });
    const { status, stdout } = await runCli(["watch", "--url", authBroker.url, "--username", "operator", "--password-file", passwordFile, "--once-after-ms", "100"]);
    expect(status).toBe(0);
    expect(stdout).toContain("0 charge point(s) under trustpile/");
  });

  it("exits 1 with one sentence on bad credentials", async () => {
    const passwordFile = join(tempDir, "wrong");
    writeFileSync(passwordFile, "guess\n", { mode: 0o600 });
    const result = await runCli(["watch", "--url", authBroker.url, "--username", "operator", "--password-file", passwordFile, "--once-after-ms", "100"]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    expect(stderrLines(result)).toEqual([`trustpile: the MQTT broker at ${authBroker.url} refused the login: bad username or password`]);
  });

  it("exits 1 with one sentence when the broker is unreachable", async () => {
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const result = await runCli(["watch", "--url", url, "--once-after-ms", "100"]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    expect(stderrLines(result)).toEqual([`trustpile: cannot reach the MQTT broker at ${url}: connection refused`]);
  });

  it("exits 2 on a bad --once-after-ms", async () => {
    const result = await runCli(["watch", "--url", broker.url, "--once-after-ms", "soon"]);
    expect(result.status).toBe(2);
    expect(stderrLines(result)).toEqual(['trustpile: --once-after-ms: expected whole milliseconds 0..86400000, got "soon"']);
  });
});

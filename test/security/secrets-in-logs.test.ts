/**
 * docs/SECURITY.md, "Secrets never in logs": a whole `trustpile start` run at LOG_LEVEL=debug, whose CSMS and broker
 * both refuse its credentials (so the code paths that hold ocpp.password and mqtt.password run and log), must not
 * print the OCPP password, the MQTT password, the keystore password or the device private key anywhere on stdout
 * or stderr, from start-up to a clean SIGTERM stop.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeystore, loadKeystore } from "../../agent/crypto/keystore.ts";
import { deployLedgerFixture } from "../helpers/chain.ts";
import { REPO_ROOT, cleanEnv } from "../helpers/cli.ts";
import { waitUntil } from "../helpers/agent-world.ts";
import { startMosquitto, type Mosquitto } from "../helpers/mosquitto.ts";
import { startTestCsms, type TestCsms } from "../helpers/ocpp16-csms.ts";

const KEYSTORE_PASSWORD = "keystore-secret-4b1d";
const OCPP_PASSWORD = "ocpp-secret-in-config-7f3a";
const MQTT_PASSWORD = "mqtt-secret-in-config-9c2e";

describe("trustpile start never logs a secret", () => {
  let dir: string;
  let config: string;
  let devicePrivateKeyHex: string;
  let csms: TestCsms;
  let broker: Mosquitto;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "trustpile-secrets-"));
    // Both peers know other passwords: the agent's credentials are sent, refused, and the refusals are logged.
    [csms, broker] = await Promise.all([
      startTestCsms({ password: "the-csms-expects-another-password" }),
      startMosquitto({ users: [{ username: "pile-agent", password: "the-broker-expects-another-password" }] }),
    ]);
    const fixture = await deployLedgerFixture();
    writeFileSync(join(dir, "deployment.json"), JSON.stringify(fixture.deployment));
    writeFileSync(join(dir, "pw"), `${KEYSTORE_PASSWORD}\n`, { mode: 0o600 });
    await createKeystore(join(dir, "device-key.json"), KEYSTORE_PASSWORD, { scryptN: 1024 });
    devicePrivateKeyHex = (await loadKeystore(join(dir, "device-key.json"), KEYSTORE_PASSWORD)).privateKey.slice(2);
    config = join(dir, "config.yaml");
    writeFileSync(
      config,
      [
        "chargePointId: cp-secrets",
        "dataDir: ./data",
        `chain: { rpcUrl: "${fixture.provider._getConnection().url}", deployment: ./deployment.json, keystore: ./device-key.json, passwordFile: ./pw }`,
        "meter: { driver: sim, pollIntervalMs: 250 }",
        "gpio: { driver: sim }",
        `ocpp: { url: "${csms.url}", version: "1.6", password: "${OCPP_PASSWORD}" }`,
        `mqtt: { url: "${broker.url}", username: pile-agent, password: "${MQTT_PASSWORD}" }`,
        "",
      ].join("\n"),
      { mode: 0o640 },
    );
    fixture.provider.destroy();
  }, 120_000);

  afterAll(async () => {
    await Promise.all([csms?.close(), broker?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("prints none of the four secrets while both refusals are logged and the agent runs and stops", async () => {
    const child = spawn(process.execPath, [join(REPO_ROOT, "bin/trustpile.js"), "start", "--config", config], {
      cwd: dir,
      env: cleanEnv({ LOG_LEVEL: "debug" }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    try {
      await waitUntil(
        "agent ready and both credential refusals logged",
        () =>
          child.exitCode !== null ||
          (output.includes('"msg":"agent ready"') &&
            output.includes("refused the credentials of charge point cp-secrets") &&
            output.includes(`mqtt broker ${broker.url} refused the credentials for user pile-agent`)),
        90_000,
        100,
      );
      expect(child.exitCode, output.slice(-3000)).toBeNull();
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited, output.slice(-3000)).toBe(0);
    expect(output.length).toBeGreaterThan(0);
    for (const [name, secret] of [
      ["ocpp.password", OCPP_PASSWORD],
      ["mqtt.password", MQTT_PASSWORD],
      ["keystore password", KEYSTORE_PASSWORD],
      ["device private key", devicePrivateKeyHex],
    ] as const) {
      expect(output.includes(secret), `${name} appears in the agent's output`).toBe(false);
    }
  }, 150_000);
});

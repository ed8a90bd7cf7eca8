/**
 * docs/SECURITY.md, "Secrets never in logs": a whole `trustpile start` run at LOG_LEVEL=debug, whose CSMS and broker
 * both refuse its credentials (so the code paths that hold ocpp.password and mqtt.password run and log), must not
 * print the OCPP password, the MQTT password, the keystore password or the device private key anywhere on stdout
 * or stderr, from start-up to a clean SIGTERM stop.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadKeystore } from "../../agent/crypto/keystore.ts";
import { deployLedgerFixture } from "../helpers/chain.ts";
import { cleanEnv } from "../helpers/cli.ts";
import { waitUntil } from "../helpers/agent-world.ts";
import { startMosquitto, type Mosquitto } from "../helpers/mosquitto.ts";
import { startTestCsms, type TestCsms } from "../helpers/ocpp16-csms.ts";
import { startTrustpile, writePileDir } from "../helpers/pile-dir.ts";

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
    const pileDir = await writePileDir(dir, {
      chargePointId: "cp-secrets",
      rpcUrl: fixture.provider._getConnection().url,
      deployment: fixture.deployment,
      keystorePassword: KEYSTORE_PASSWORD,
      moreConfig: [
        "meter: { driver: sim, pollIntervalMs: 250 }",
        "gpio: { driver: sim }",
        `ocpp: { url: "${csms.url}", version: "1.6", password: "${OCPP_PASSWORD}" }`,
        `mqtt: { url: "${broker.url}", username: pile-agent, password: "${MQTT_PASSWORD}" }`,
      ],
      configMode: 0o640,
    });
    config = pileDir.config;
    devicePrivateKeyHex = (await loadKeystore(pileDir.keystore, KEYSTORE_PASSWORD)).privateKey.slice(2);
    fixture.provider.destroy();
  }, 120_000);

  afterAll(async () => {
    await Promise.all([csms?.close(), broker?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("prints none of the four secrets while both refusals are logged and the agent runs and stops", async () => {
    const { child, output, exited } = startTrustpile(config, dir, cleanEnv({ LOG_LEVEL: "debug" }));
    try {
      await waitUntil(
        "agent ready and both credential refusals logged",
        () =>
          child.exitCode !== null ||
          (output().includes('"msg":"agent ready"') &&
            output().includes("refused the credentials of charge point cp-secrets") &&
            output().includes(`mqtt broker ${broker.url} refused the credentials for user pile-agent`)),
        90_000,
        100,
      );
      expect(child.exitCode, output().slice(-3000)).toBeNull();
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited, output().slice(-3000)).toBe(0);
    expect(output().length).toBeGreaterThan(0);
    for (const [name, secret] of [
      ["ocpp.password", OCPP_PASSWORD],
      ["mqtt.password", MQTT_PASSWORD],
      ["keystore password", KEYSTORE_PASSWORD],
      ["device private key", devicePrivateKeyHex],
    ] as const) {
      expect(output().includes(secret), `${name} appears in the agent's output`).toBe(false);
    }
  }, 150_000);
});

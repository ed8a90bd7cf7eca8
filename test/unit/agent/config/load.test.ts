import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { UsageError } from "../../../../agent/errors.ts";
import { ConfigError, checkConfig, loadConfig, parseConfig, validateConfig } from "../../../../agent/config/load.ts";

const tempDir = mkdtempSync(join(tmpdir(), "trustpile-config-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

let fileCount = 0;
/** Writes `text` to a fresh file in its own directory, so path resolution has a directory to resolve against. */
function writeConfig(fileName: string, text: string): string {
  const dir = join(tempDir, `case-${++fileCount}`);
  mkdirSync(dir);
  const path = join(dir, fileName);
  writeFileSync(path, text);
  return path;
}

const MINIMAL_YAML = `
chargePointId: cp-001
chain:
  keystore: ./device-key.json
gpio:
  relay: { line: 17 }
`;

// One wrong type, one missing key (chain.keystore) and one unknown key; the CLI test uses the same file.
const BAD_YAML = `
chargePointId: cp-001
meter:
  staleAfterMs: 5s
  baudRat: 9600
gpio:
  relay: { line: 17 }
`;

const BAD_YAML_PROBLEMS = [
  "chain.keystore: required, missing",
  'meter.staleAfterMs: expected integer ms > 0, got "5s"',
  "meter.baudRat: unknown key (did you mean baudRate?)",
];

const NO_ENV: NodeJS.ProcessEnv = {};

function problemsOf(path: string, env: NodeJS.ProcessEnv = NO_ENV): string[] {
  const check = checkConfig(path, env);
  return check.ok ? [] : check.problems;
}

function inlineProblems(raw: unknown): string[] {
  const check = validateConfig(raw, "inline");
  return check.ok ? [] : check.problems;
}

describe("loadConfig", () => {
  it("loads YAML and fills every default", () => {
    const config = loadConfig(writeConfig("config.yaml", MINIMAL_YAML), NO_ENV);

    expect(config.chargePointId).toBe("cp-001");
    expect(config.dataDir).toBe("/var/lib/trustpile");
    expect(config.chain.rpcUrl).toBe("http://127.0.0.1:8545");
    expect(config.chain.confirmations).toBe(2);
    expect(config.chain.passwordFile).toBeUndefined();
    expect(config.meter).toEqual({
      driver: "sdm630",
      transport: "rtu",
      device: "/dev/ttyUSB0",
      baudRate: 9600,
      parity: "none",
      unitId: 1,
      host: "127.0.0.1",
      port: 502,
      pollIntervalMs: 1000,
      timeoutMs: 500,
      staleAfterMs: 3000,
    });
    expect(config.gpio).toEqual({ driver: "onoff", relay: { line: 17, activeLow: false }, feedbackTimeoutMs: 500 });
    expect(config.session).toEqual({ stopMarginWh: 20, authTimeoutS: 600 });
    expect(config.ocpp).toBeUndefined();
    expect(config.mqtt).toBeUndefined();
    expect(config.bidding).toBeUndefined();
  });

  it("loads JSON, with section defaults and wei prices as bigint", () => {
    const path = writeConfig(
      "config.json",
      JSON.stringify({
        chargePointId: "cp-002",
        chain: { keystore: "/etc/trustpile/key.json", rpcUrl: "wss://rpc.example/ws" },
        meter: { driver: "sdm120", transport: "tcp", host: "10.0.0.5" },
        gpio: { driver: "sim" },
        ocpp: { url: "wss://csms.example/ocpp" },
        mqtt: { url: "mqtt://broker:1883" },
        bidding: { enabled: true, floorPricePerKWh: "250000000000000000000", undercutStep: "1000" },
      }),
    );

    const config = loadConfig(path, NO_ENV);

    expect(config.chain.rpcUrl).toBe("wss://rpc.example/ws");
    expect(config.meter).toMatchObject({ driver: "sdm120", transport: "tcp", host: "10.0.0.5", port: 502 });
    expect(config.gpio.relay).toBeUndefined();
    expect(config.ocpp).toEqual({
      url: "wss://csms.example/ocpp",
      version: "1.6",
      connectorId: 1,
      vendor: "trustpile",
      model: "trustpile-cp",
      reconnectMaxDelayS: 60,
    });
    expect(config.mqtt).toEqual({ url: "mqtt://broker:1883", topicPrefix: "trustpile", homeAssistant: true });
    // Above 2^53: a number would have lost the last digits.
    expect(config.bidding).toEqual({ enabled: true, floorPricePerKWh: 250_000_000_000_000_000_000n, undercutStep: 1000n });
  });

  it("loads the shipped example config", () => {
    const examplePath = fileURLToPath(new URL("../../../../agent/config/example.yaml", import.meta.url));
    const config = loadConfig(examplePath, NO_ENV);

    expect(config.chargePointId).toBe("cp-001");
    expect(config.gpio.feedback).toEqual({ line: 27, activeLow: false });
    expect(config.bidding?.floorPricePerKWh).toBe(250_000_000_000_000n);
  });

  it("resolves relative paths against the config file's directory", () => {
    const path = writeConfig(
      "config.yaml",
      `chargePointId: cp-001
dataDir: state
chain:
  keystore: ./keys/device.json
  passwordFile: /run/secrets/pw
gpio:
  relay: { line: 17 }
`,
    );
    const dir = dirname(path);

    const config = loadConfig(path, NO_ENV);

    expect(config.dataDir).toBe(join(dir, "state"));
    expect(config.chain.keystore).toBe(join(dir, "keys/device.json"));
    expect(config.chain.deployment).toBe(join(dir, "deployment.json"));
    expect(config.chain.passwordFile).toBe("/run/secrets/pw");
  });

  it("throws a ConfigError, a UsageError (exit 2), listing every problem", () => {
    const path = writeConfig("config.yaml", BAD_YAML);

    let thrown: unknown;
    try {
      loadConfig(path, NO_ENV);
    } catch (error) {
      thrown = error;
    }

    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toBeInstanceOf(UsageError);
    const configError = thrown as ConfigError;
    expect(configError.exitCode).toBe(2);
    expect(configError.problems).toEqual(BAD_YAML_PROBLEMS);
    for (const problem of BAD_YAML_PROBLEMS) expect(configError.message).toContain(problem);
  });
});

describe("env overrides", () => {
  it("override a nested number and a string, converting the number", () => {
    const path = writeConfig("config.yaml", MINIMAL_YAML);

    const config = loadConfig(path, {
      TRUSTPILE_METER__STALE_AFTER_MS: "5000",
      TRUSTPILE_CHAIN__RPC_URL: "ws://10.0.0.2:8546",
      TRUSTPILE_GPIO__RELAY__ACTIVE_LOW: "true",
      TRUSTPILE_CHARGE_POINT_ID: "cp-env",
      // Unset variables arrive as empty strings from compose files; they must not override.
      TRUSTPILE_DATA_DIR: "",
    });

    expect(config.meter.staleAfterMs).toBe(5000);
    expect(config.chain.rpcUrl).toBe("ws://10.0.0.2:8546");
    expect(config.gpio.relay?.activeLow).toBe(true);
    expect(config.chargePointId).toBe("cp-env");
    expect(config.dataDir).toBe("/var/lib/trustpile");
  });

  it("create an optional section and take keys with acronyms", () => {
    const config = parseConfig({ chargePointId: "cp-1", chain: { keystore: "/k" }, gpio: { driver: "sim" } }, "/etc/x.yaml", {
      env: {
        TRUSTPILE_BIDDING__ENABLED: "true",
        TRUSTPILE_BIDDING__FLOOR_PRICE_PER_KWH: "1000",
        TRUSTPILE_BIDDING__UNDERCUT_STEP: "10",
      },
    });

    expect(config.bidding).toEqual({ enabled: true, floorPricePerKWh: 1000n, undercutStep: 10n });
  });

  it("report a variable that names no key, with the nearest key's variable", () => {
    const path = writeConfig("config.yaml", MINIMAL_YAML);

    expect(problemsOf(path, { TRUSTPILE_METER__FOO: "1", TRUSTPILE_METER__BAUD_RAT: "9600" })).toEqual([
      "TRUSTPILE_METER__BAUD_RAT: no such config key meter.baudRat (did you mean TRUSTPILE_METER__BAUD_RATE?)",
      "TRUSTPILE_METER__FOO: no such config key meter.foo",
    ]);
  });

  it("report a bad value by the variable's name", () => {
    const path = writeConfig("config.yaml", MINIMAL_YAML);

    expect(problemsOf(path, { TRUSTPILE_METER__STALE_AFTER_MS: "5s" })).toEqual([
      'TRUSTPILE_METER__STALE_AFTER_MS (meter.staleAfterMs): expected integer ms > 0, got "5s"',
    ]);
  });
});

describe("problems", () => {
  it("are one line each for a wrong type, a missing key and an unknown key", () => {
    expect(problemsOf(writeConfig("config.yml", BAD_YAML))).toEqual(BAD_YAML_PROBLEMS);
  });

  it("name both values when staleAfterMs does not exceed pollIntervalMs", () => {
    const path = writeConfig("config.yaml", `${MINIMAL_YAML}meter: { pollIntervalMs: 2000, staleAfterMs: 1500 }\n`);

    expect(problemsOf(path)).toEqual(["meter.staleAfterMs: expected more than meter.pollIntervalMs (2000), got 1500"]);
  });

  it("name the duplicate GPIO line and both keys", () => {
    const config = { chargePointId: "cp-1", chain: { keystore: "/k" }, gpio: { relay: { line: 17 }, evPresent: { line: 17 } } };

    expect(inlineProblems(config)).toEqual([
      "gpio.evPresent.line: expected a line distinct from gpio.relay.line, got 17 for both gpio.relay.line and gpio.evPresent.line",
    ]);
  });

  it("require both prices when bidding is enabled", () => {
    const config = { chargePointId: "cp-1", chain: { keystore: "/k" }, gpio: { driver: "sim" }, bidding: { enabled: true } };

    expect(inlineProblems(config)).toEqual([
      "bidding.floorPricePerKWh: required when bidding.enabled is true, missing",
      "bidding.undercutStep: required when bidding.enabled is true, missing",
    ]);
  });

  it("hide the value of a mistyped password", () => {
    const path = writeConfig("config.yaml", `${MINIMAL_YAML}ocpp: { url: ws://csms/ocpp, password: 123456 }\n`);

    expect(problemsOf(path)).toEqual([
      "ocpp.password: expected string (quote digits-only passwords in YAML), got a number (value hidden)",
    ]);
  });

  it("give one line naming the file and the YAML line for a syntax error", () => {
    const path = writeConfig("config.yaml", "chargePointId: cp-001\nmeter: [\nchain: x: y\n");

    const problems = problemsOf(path);

    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${path.replaceAll(".", "\\.")}: invalid YAML at line \\d+ column \\d+: \\S`));
  });

  it("give one line naming the file when it cannot be read", () => {
    const path = join(tempDir, "missing.yaml");

    expect(problemsOf(path)).toEqual([`${path}: cannot read (ENOENT: no such file or directory)`]);
  });
});

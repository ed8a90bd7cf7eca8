/**
 * docs/SECURITY.md, "Device key files": `trustpile start` refuses (exit 2, one sentence on stderr) a device keystore,
 * password file or config that other users could read or rewrite, and signing commands refuse such a
 * `--private-key-file`. Real files, real chmod, the real CLI. CI runs as root, which reads any file, so these tests
 * never rely on a read being denied: only the mode bits decide.
 */
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadKeystore } from "../../agent/crypto/keystore.ts";
import { runCli, stderrLines } from "../helpers/cli.ts";
import { testChainUrl } from "../helpers/chain.ts";
import { writePileDir } from "../helpers/pile-dir.ts";

// Each run starts node + tsx (seconds on a loaded 2-core machine); the keystore is cheap thanks to the small scrypt N.
const CLI_TIMEOUT_MS = 60_000;
const KEYSTORE_PASSWORD = "pile password that must never be printed";
// Not a funded account anywhere: anvil's account 9 would do as well, but a key of our own makes the leak check sharp.
const RAW_PRIVATE_KEY = "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";

let dir: string;
let keystore: string;
let passwordFile: string;
let config: string;
let devicePrivateKey: string;
let missingDeployment: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trustpile-key-perms-"));
  missingDeployment = join(dir, "deployment.json");
  // The address book is missing on purpose: once the key files pass, `start` stops at the deployment with its own
  // exit-2 sentence, which proves the key checks passed without needing a chain.
  ({ config, keystore, passwordFile } = await writePileDir(dir, {
    chargePointId: "cp-perms",
    rpcUrl: "http://127.0.0.1:9",
    keystorePassword: KEYSTORE_PASSWORD,
    moreConfig: ["meter: { driver: sim }", "gpio: { driver: sim }"],
    configMode: 0o640,
  }));
  devicePrivateKey = (await loadKeystore(keystore, KEYSTORE_PASSWORD)).privateKey;
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function setModes(modes: { keystore: number; passwordFile: number; config?: number }): void {
  chmodSync(keystore, modes.keystore);
  chmodSync(passwordFile, modes.passwordFile);
  chmodSync(config, modes.config ?? 0o640);
}

function expectNoSecret(output: string): void {
  expect(output).not.toContain(KEYSTORE_PASSWORD);
  expect(output).not.toContain(devicePrivateKey.slice(2));
  expect(output).not.toContain(RAW_PRIVATE_KEY);
}

const deploymentMissing = (): string =>
  `trustpile: deployment file ${missingDeployment} cannot be read: ENOENT: no such file or directory, open '${missingDeployment}' (run trustpile chain deploy first)`;

describe("trustpile start: device key file permissions", () => {
  it.each([
    ["0644", 0o644, "readable by other users"],
    ["0666", 0o666, "readable and writable by other users and writable by its group"],
    ["0604", 0o604, "readable by other users"],
  ])(
    "refuses a keystore with mode %s: exit 2, one sentence naming the file, its mode and chmod 600",
    async (modeText, mode, problem) => {
      setModes({ keystore: mode, passwordFile: 0o600 });
      const result = await runCli(["start", "--config", config], { timeoutMs: CLI_TIMEOUT_MS });
      expect(stderrLines(result)).toEqual([
        `trustpile: keystore ${keystore} is ${problem} (mode ${modeText}); refusing to use it until you run: chmod 600 ${keystore}`,
      ]);
      expect(result.status).toBe(2);
      expectNoSecret(result.stdout + result.stderr);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "refuses a password file that other users can read, before the keystore is touched",
    async () => {
      setModes({ keystore: 0o600, passwordFile: 0o644 });
      const result = await runCli(["start", "--config", config], { timeoutMs: CLI_TIMEOUT_MS });
      expect(stderrLines(result)).toEqual([
        `trustpile: password file ${passwordFile} is readable by other users (mode 0644); refusing to use it until you run: chmod 600 ${passwordFile}`,
      ]);
      expect(result.status).toBe(2);
      expectNoSecret(result.stdout + result.stderr);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "refuses a group-writable keystore (0620): the group could swap the key",
    async () => {
      setModes({ keystore: 0o620, passwordFile: 0o600 });
      const result = await runCli(["start", "--config", config], { timeoutMs: CLI_TIMEOUT_MS });
      expect(stderrLines(result)).toEqual([
        `trustpile: keystore ${keystore} is writable by its group (mode 0620); refusing to use it until you run: chmod 600 ${keystore}`,
      ]);
      expect(result.status).toBe(2);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "refuses a world-writable config: whoever writes it chooses the chain the pile believes",
    async () => {
      setModes({ keystore: 0o600, passwordFile: 0o600, config: 0o646 });
      const result = await runCli(["start", "--config", config], { timeoutMs: CLI_TIMEOUT_MS });
      expect(stderrLines(result)).toEqual([
        `trustpile: config ${config} is writable by other users (mode 0646), so they could point the pile at another chain or key; refusing to start until you run: chmod 640 ${config}`,
      ]);
      expect(result.status).toBe(2);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "accepts 0600 key files silently: start goes on to the address book",
    async () => {
      setModes({ keystore: 0o600, passwordFile: 0o600 });
      const result = await runCli(["start", "--config", config], { timeoutMs: CLI_TIMEOUT_MS });
      expect(stderrLines(result)).toEqual([deploymentMissing()]);
      expect(result.status).toBe(2);
      expect(result.stdout).toBe("");
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "accepts 0640 key files (a dedicated service group) with one logged warning per file, and never logs the secret",
    async () => {
      setModes({ keystore: 0o640, passwordFile: 0o640 });
      const result = await runCli(["start", "--config", config], { timeoutMs: CLI_TIMEOUT_MS });
      expect(stderrLines(result)).toEqual([deploymentMissing()]);
      expect(result.status).toBe(2);
      const logged = result.stdout
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as { level: string; msg: string });
      const groupAdvice = "fine if only the trustpile service is in that group, otherwise run: chmod 600";
      expect(logged.map(({ level, msg }) => ({ level, msg }))).toEqual([
        { level: "warn", msg: `password file ${passwordFile} is readable by its group (mode 0640); ${groupAdvice} ${passwordFile}` },
        { level: "warn", msg: `keystore ${keystore} is readable by its group (mode 0640); ${groupAdvice} ${keystore}` },
      ]);
      expectNoSecret(result.stdout + result.stderr);
    },
    CLI_TIMEOUT_MS,
  );
});

describe("--private-key-file permissions (signing commands)", () => {
  it(
    "refuses a 0604 private key file with exit 2 and never prints the key",
    async () => {
      const keyFile = join(dir, "ev.key");
      writeFileSync(keyFile, `${RAW_PRIVATE_KEY}\n`, { mode: 0o600 });
      chmodSync(keyFile, 0o604);
      const result = await runCli(
        ["ev", "pay-debt", "--rpc", testChainUrl(), "--deployment", missingDeployment, "--private-key-file", keyFile],
        { timeoutMs: CLI_TIMEOUT_MS },
      );
      expect(stderrLines(result)).toEqual([
        `trustpile: private key file ${keyFile} is readable by other users (mode 0604); refusing to use it until you run: chmod 600 ${keyFile}`,
      ]);
      expect(result.status).toBe(2);
      expectNoSecret(result.stdout + result.stderr);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "accepts a 0600 private key file: the command goes on to the address book",
    async () => {
      const keyFile = join(dir, "ev-ok.key");
      writeFileSync(keyFile, `${RAW_PRIVATE_KEY}\n`, { mode: 0o600 });
      const result = await runCli(
        ["ev", "pay-debt", "--rpc", testChainUrl(), "--deployment", missingDeployment, "--private-key-file", keyFile],
        { timeoutMs: CLI_TIMEOUT_MS },
      );
      expect(stderrLines(result)).toEqual([deploymentMissing()]);
      expect(result.status).toBe(2);
      expectNoSecret(result.stdout + result.stderr);
    },
    CLI_TIMEOUT_MS,
  );
});

describe("keys new", () => {
  it(
    "still writes the keystore with mode 0600 (the mode start accepts silently)",
    async () => {
      const fresh = join(dir, "fresh-key.json");
      const result = await runCli(["keys", "new", "--keystore", fresh, "--password-file", passwordFile, "--insecure-scrypt-n", "1024"], {
        timeoutMs: CLI_TIMEOUT_MS,
      });
      expect(result.status).toBe(0);
      expect(statSync(fresh).mode & 0o777).toBe(0o600);
    },
    CLI_TIMEOUT_MS,
  );
});

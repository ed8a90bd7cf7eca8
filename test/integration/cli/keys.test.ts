import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REPO_ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
// Each run starts node + tsx; the keystore itself is cheap thanks to the small scrypt N below.
const CLI_TIMEOUT_MS = 60_000;

interface CliResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[]): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["bin/trustpile.js", ...args], {
      cwd: REPO_ROOT,
      // A pipe, not a TTY, on stdin: `keys new` must then insist on --password-file instead of prompting.
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, TRUSTPILE_KEYSTORE_SCRYPT_N: "1024" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.stdin.end();
    child.on("error", reject);
    child.on("close", (exitCode) => resolvePromise({ exitCode, stdout, stderr }));
  });
}

function field(stdout: string, name: string): string | undefined {
  return new RegExp(`^${name}: (0x[0-9a-fA-F]+)$`, "m").exec(stdout)?.[1];
}

let dir: string;
let keystore: string;
let passwordFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "trustpile-keys-cli-"));
  keystore = join(dir, "device-key.json");
  passwordFile = join(dir, "pw");
  writeFileSync(passwordFile, "pile password\n", { mode: 0o600 });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("trustpile keys", () => {
  let address: string | undefined;
  let encryptionPublicKey: string | undefined;

  it(
    "keys new writes a 0600 keystore and prints its address and encryption public key",
    async () => {
      const result = await runCli(["keys", "new", "--keystore", keystore, "--password-file", passwordFile]);
      expect(result.stderr).not.toMatch(/^trustpile: (?!warning)/m);
      expect(result.exitCode).toBe(0);
      address = field(result.stdout, "address");
      encryptionPublicKey = field(result.stdout, "encryptionPublicKey");
      expect(address).toMatch(/^0x[0-9a-fA-F]{40}$/);
      expect(encryptionPublicKey).toMatch(/^0x[0-9a-f]{64}$/);
      expect(result.stdout).not.toMatch(/private/i);
      expect(statSync(keystore).mode & 0o777).toBe(0o600);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys show prints the same address without a password",
    async () => {
      const result = await runCli(["keys", "show", "--keystore", keystore]);
      expect(result.exitCode).toBe(0);
      expect(field(result.stdout, "address")).toBe(address);
      expect(field(result.stdout, "encryptionPublicKey")).toBeUndefined();
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys show with a password checks it and prints the same encryption public key",
    async () => {
      const result = await runCli(["keys", "show", "--keystore", keystore, "--password-file", passwordFile]);
      expect(result.exitCode).toBe(0);
      expect(field(result.stdout, "address")).toBe(address);
      expect(field(result.stdout, "encryptionPublicKey")).toBe(encryptionPublicKey);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys show with a wrong password exits 2 with one line naming the keystore",
    async () => {
      const wrong = join(dir, "wrong-pw");
      writeFileSync(wrong, "not it\n", { mode: 0o600 });
      const result = await runCli(["keys", "show", "--keystore", keystore, "--password-file", wrong]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toBe(`trustpile: wrong password for keystore ${keystore}\n`);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys new on an existing file exits 2 with one line on stderr",
    async () => {
      const result = await runCli(["keys", "new", "--keystore", keystore, "--password-file", passwordFile]);
      expect(result.exitCode).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(result.stderr).toContain(`keystore ${keystore} already exists`);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys new without --password-file and without a terminal exits 2",
    async () => {
      const result = await runCli(["keys", "new", "--keystore", join(dir, "other.json")]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toBe(
        "trustpile: keys new: give --password-file FILE (no terminal to ask for a password)\n",
      );
    },
    CLI_TIMEOUT_MS,
  );
});

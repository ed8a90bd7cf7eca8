import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../helpers/cli.ts";

// Each run starts node + tsx; the keystore itself is cheap thanks to the small scrypt N below.
const CLI_TIMEOUT_MS = 60_000;
const FAST_SCRYPT = ["--insecure-scrypt-n", "1024"];

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
      const result = await runCli(["keys", "new", "--keystore", keystore, "--password-file", passwordFile, ...FAST_SCRYPT]);
      expect(result.stderr).not.toMatch(/^trustpile: (?!warning)/m);
      expect(result.status).toBe(0);
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
      expect(result.status).toBe(0);
      expect(field(result.stdout, "address")).toBe(address);
      expect(field(result.stdout, "encryptionPublicKey")).toBeUndefined();
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys show with a password checks it and prints the same encryption public key",
    async () => {
      const result = await runCli(["keys", "show", "--keystore", keystore, "--password-file", passwordFile]);
      expect(result.status).toBe(0);
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
      expect(result.status).toBe(2);
      expect(result.stderr).toBe(`trustpile: wrong password for keystore ${keystore}\n`);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys new on an existing file exits 2 with one line on stderr",
    async () => {
      const result = await runCli(["keys", "new", "--keystore", keystore, "--password-file", passwordFile, ...FAST_SCRYPT]);
      expect(result.status).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(result.stderr).toContain(`keystore ${keystore} already exists`);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "keys new without --password-file and without a terminal exits 2",
    async () => {
      const result = await runCli(["keys", "new", "--keystore", join(dir, "other.json"), ...FAST_SCRYPT]);
      expect(result.status).toBe(2);
      expect(result.stderr).toBe(
        "trustpile: keys new: give --password-file FILE (no terminal to ask for a password)\n",
      );
    },
    CLI_TIMEOUT_MS,
  );
});

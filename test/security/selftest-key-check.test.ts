/**
 * docs/SECURITY.md §2: `trustpile selftest` reports the device key files' permissions as its `keys` row, with the
 * verdict `trustpile start` would reach, before the installer enables the service. Only mode bits are read.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../agent/config/load.ts";
import type { Config } from "../../agent/config/schema.ts";
import { checkKeyFiles } from "../../agent/selftest/checks.ts";

let dir: string;
let keystore: string;
let passwordFile: string;

function configWith(lines: string[]): Config {
  const path = join(dir, "config.yaml");
  writeFileSync(path, ["chargePointId: cp-selftest-keys", ...lines, "meter: { driver: sim }", "gpio: { driver: sim }", ""].join("\n"));
  return loadConfig(path, {});
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "trustpile-selftest-keys-"));
  keystore = join(dir, "device-key.json");
  passwordFile = join(dir, "pw");
  // The row reads modes only, so the keystore's content does not matter here.
  writeFileSync(keystore, "{}\n", { mode: 0o600 });
  writeFileSync(passwordFile, "pw\n", { mode: 0o600 });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("selftest keys row", () => {
  it("passes for 0600 files, warns for a group-readable one, fails where start would refuse", () => {
    const config = configWith(["chain: { keystore: ./device-key.json, passwordFile: ./pw }"]);
    chmodSync(keystore, 0o600);
    chmodSync(passwordFile, 0o600);
    expect(checkKeyFiles(config)).toEqual({
      name: "keys",
      status: "pass",
      detail: `keystore ${keystore} and password file ${passwordFile}: readable by their owner only`,
    });

    chmodSync(keystore, 0o640);
    expect(checkKeyFiles(config)).toEqual({
      name: "keys",
      status: "warn",
      detail: `keystore ${keystore} is readable by its group (mode 0640); fine if only the trustpile service is in that group, otherwise run: chmod 600 ${keystore}`,
    });

    chmodSync(passwordFile, 0o644);
    expect(checkKeyFiles(config)).toEqual({
      name: "keys",
      status: "fail",
      detail: `password file ${passwordFile} is readable by other users (mode 0644); refusing to use it until you run: chmod 600 ${passwordFile}`,
    });
  });

  it("fails when start could not unlock the key at all: no chain.passwordFile, or a missing keystore", () => {
    chmodSync(keystore, 0o600);
    const config = configWith(["chain: { keystore: ./missing-key.json }"]);
    expect(checkKeyFiles(config)).toEqual({
      name: "keys",
      status: "fail",
      detail:
        `keystore ${join(dir, "missing-key.json")} does not exist (create one with: trustpile keys new --keystore ${join(dir, "missing-key.json")}); ` +
        "chain.passwordFile is not set: trustpile start needs it to unlock the device key",
    });
  });
});

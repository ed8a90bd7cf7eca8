import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  checkConfigFileMode,
  checkSecretFileMode,
  judgeConfigFileMode,
  judgeSecretFileMode,
  readSecretFile,
} from "../../../../agent/crypto/file-permissions.ts";
import { UsageError } from "../../../../agent/errors.ts";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "trustpile-file-permissions-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("judgeSecretFileMode", () => {
  it.each([
    [0o600, { verdict: "accept" }],
    [0o400, { verdict: "accept" }],
    [0o700, { verdict: "accept" }],
    [0o640, { verdict: "warn", problem: "readable by its group" }],
    [0o440, { verdict: "warn", problem: "readable by its group" }],
    [0o610, { verdict: "warn", problem: "accessible by its group" }],
    [0o644, { verdict: "refuse", problem: "readable by other users" }],
    [0o604, { verdict: "refuse", problem: "readable by other users" }],
    [0o602, { verdict: "refuse", problem: "writable by other users" }],
    [0o601, { verdict: "refuse", problem: "accessible by other users" }],
    [0o666, { verdict: "refuse", problem: "readable and writable by other users and writable by its group" }],
    [0o605, { verdict: "refuse", problem: "readable by other users" }],
    [0o620, { verdict: "refuse", problem: "writable by its group" }],
    [0o660, { verdict: "refuse", problem: "writable by its group" }],
  ])("mode 0%o: %o", (mode, expected) => {
    expect(judgeSecretFileMode(mode)).toEqual(expected);
  });
});

describe("judgeConfigFileMode", () => {
  it("refuses a world-writable config whatever it holds, and accepts a world-readable one without passwords", () => {
    expect(judgeConfigFileMode(0o646, [])).toEqual({ verdict: "refuse", problem: "writable by other users" });
    expect(judgeConfigFileMode(0o644, [])).toEqual({ verdict: "accept" });
    // User-private groups (umask 002) leave edited files g+w; the group is the owner's own.
    expect(judgeConfigFileMode(0o664, [])).toEqual({ verdict: "accept" });
    expect(judgeConfigFileMode(0o640, ["ocpp.password"])).toEqual({ verdict: "accept" });
  });

  it("warns when a world-readable config holds a password, naming each key", () => {
    expect(judgeConfigFileMode(0o644, ["ocpp.password", "mqtt.password"])).toEqual({
      verdict: "warn",
      problem: "readable by other users and holds ocpp.password and mqtt.password",
    });
  });
});

describe("readSecretFile", () => {
  it("names a symlink's target in the refusal and tells to chmod the path given (chmod follows the link)", () => {
    const target = join(dir, "real-key");
    writeFileSync(target, "secret-content\n");
    chmodSync(target, 0o644);
    const link = join(dir, "key-link");
    symlinkSync(target, link);
    expect(() => readSecretFile(link, "private key file")).toThrow(
      new UsageError(
        `private key file ${link} (a symlink to ${target}) is readable by other users (mode 0644); refusing to use it until you run: chmod 600 ${link}`,
      ),
    );
  });

  it("follows a symlink to a 0600 file, as secret stores deliver keys", () => {
    const target = join(dir, "real-key");
    writeFileSync(target, "secret-content\n", { mode: 0o600 });
    const link = join(dir, "key-link");
    symlinkSync(target, link);
    expect(readSecretFile(link, "private key file")).toEqual({ text: "secret-content\n", permissionWarning: undefined });
  });

  it("gives the same sentence without reading the file when only the mode is checked (selftest)", () => {
    const path = join(dir, "pw");
    writeFileSync(path, "x\n");
    chmodSync(path, 0o666);
    expect(checkSecretFileMode(path, "password file")).toEqual({
      verdict: "refuse",
      message: `password file ${path} is readable and writable by other users and writable by its group (mode 0666); refusing to use it until you run: chmod 600 ${path}`,
    });
  });
});

describe("checkConfigFileMode", () => {
  it("refuses a world-writable config with one sentence naming it, its mode and the chmod", () => {
    const path = join(dir, "config.yaml");
    writeFileSync(path, "chargePointId: cp-1\n");
    chmodSync(path, 0o666);
    expect(() => checkConfigFileMode(path, [])).toThrow(
      new UsageError(
        `config ${path} is writable by other users (mode 0666), so they could point the pile at another chain or key; refusing to start until you run: chmod 640 ${path}`,
      ),
    );
  });

  it("returns a warning for a world-readable config holding the OCPP password, and nothing for 0640", () => {
    const path = join(dir, "config.yaml");
    writeFileSync(path, "chargePointId: cp-1\n");
    chmodSync(path, 0o644);
    expect(checkConfigFileMode(path, ["ocpp.password"])).toBe(
      `config ${path} is readable by other users and holds ocpp.password (mode 0644); run: chmod 640 ${path}`,
    );
    chmodSync(path, 0o640);
    expect(checkConfigFileMode(path, ["ocpp.password"])).toBeUndefined();
  });
});

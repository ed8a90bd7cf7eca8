import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  KEYSTORE_FILE_MODE,
  createKeystore,
  deviceEncryptionKey,
  loadKeystore,
  readKeystoreAddress,
  readPasswordFile,
  readPasswordFileChecked,
  readPrivateKeyFile,
} from "../../../../agent/crypto/keystore.ts";
import { openSealed, sealTo } from "../../../../agent/crypto/seal.ts";
import { RuntimeError, UsageError } from "../../../../agent/errors.ts";

// The default scrypt N (2^17) costs seconds per keystore; the format is the same at any N.
const TEST_SCRYPT_N = 1024;
const PASSWORD = "correct horse battery staple";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "trustpile-keystore-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("createKeystore / loadKeystore", () => {
  it("writes a 0600 keystore that loads with the right password", async () => {
    const path = join(dir, "device-key.json");
    const created = await createKeystore(path, PASSWORD, { scryptN: TEST_SCRYPT_N });

    expect(created.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(statSync(path).mode & 0o777).toBe(KEYSTORE_FILE_MODE);
    expect(KEYSTORE_FILE_MODE).toBe(0o600);
    const json: unknown = JSON.parse(readFileSync(path, "utf8"));
    // ethers writes the v3 "Crypto" key capitalised (as geth does); no mnemonic is stored for a device key.
    expect(json).toMatchObject({ Crypto: { kdf: "scrypt", kdfparams: { n: TEST_SCRYPT_N } } });
    expect(json).not.toHaveProperty("x-ethers");

    const wallet = await loadKeystore(path, PASSWORD);
    expect(wallet.address).toBe(created.address);
    expect(readKeystoreAddress(path)).toBe(created.address);
    expect(deviceEncryptionKey(wallet).publicKey).toEqual(created.encryptionPublicKey);
  });

  it("rejects a wrong password with a usage error naming the file", async () => {
    const path = join(dir, "device-key.json");
    await createKeystore(path, PASSWORD, { scryptN: TEST_SCRYPT_N });
    const attempt = loadKeystore(path, "not the password");
    await expect(attempt).rejects.toBeInstanceOf(UsageError);
    await expect(attempt).rejects.toThrow(`wrong password for keystore ${path}`);
  });

  it("refuses to overwrite an existing file and leaves it untouched", async () => {
    const path = join(dir, "device-key.json");
    await createKeystore(path, PASSWORD, { scryptN: TEST_SCRYPT_N });
    const before = readFileSync(path, "utf8");
    const attempt = createKeystore(path, PASSWORD, { scryptN: TEST_SCRYPT_N });
    await expect(attempt).rejects.toBeInstanceOf(UsageError);
    await expect(attempt).rejects.toThrow(`keystore ${path} already exists`);
    expect(readFileSync(path, "utf8")).toBe(before);
  });

  it("refuses an empty password and a scrypt N that is not a power of two", async () => {
    await expect(createKeystore(join(dir, "a.json"), "", { scryptN: TEST_SCRYPT_N })).rejects.toThrow(
      "password must not be empty",
    );
    await expect(createKeystore(join(dir, "b.json"), PASSWORD, { scryptN: 1000 })).rejects.toThrow(
      "expected a power of two >= 2, got 1000",
    );
  });

  it("names the path when the keystore is missing, not JSON, or not a keystore", async () => {
    const missing = join(dir, "missing.json");
    await expect(loadKeystore(missing, PASSWORD)).rejects.toThrow(`keystore ${missing} does not exist`);
    expect(() => readKeystoreAddress(missing)).toThrow(`keystore ${missing} does not exist`);

    const garbage = join(dir, "garbage.json");
    writeFileSync(garbage, "not json", { mode: 0o600 });
    await expect(loadKeystore(garbage, PASSWORD)).rejects.toThrow(`keystore ${garbage} is not valid JSON`);

    const other = join(dir, "other.json");
    writeFileSync(other, JSON.stringify({ hello: "world" }), { mode: 0o600 });
    await expect(loadKeystore(other, PASSWORD)).rejects.toThrow(`keystore ${other} is not an encrypted JSON keystore`);
    expect(() => readKeystoreAddress(other)).toThrow(`keystore ${other} has no valid "address" field`);
  });

  it("refuses a directory given as the keystore with a usage error", async () => {
    await expect(loadKeystore(dir, PASSWORD)).rejects.toThrow(new UsageError(`keystore ${dir} is a directory; expected a file`));
  });

  it("reports a keystore it cannot open as a runtime error", async () => {
    const loop = join(dir, "loop.json");
    symlinkSync(loop, loop);
    await expect(loadKeystore(loop, PASSWORD)).rejects.toBeInstanceOf(RuntimeError);
  });

  it("derives an encryption key the pile can open its own sealed contacts with", async () => {
    const path = join(dir, "device-key.json");
    await createKeystore(path, PASSWORD, { scryptN: TEST_SCRYPT_N });
    const wallet = await loadKeystore(path, PASSWORD);
    const key = deviceEncryptionKey(wallet);
    expect(openSealed(key.privateKey, sealTo(key.publicKey, "Ana Ruiz, +34 600 000 000"))).toBe(
      "Ana Ruiz, +34 600 000 000",
    );
  });
});

describe("device key file permissions", () => {
  it.each([0o644, 0o666, 0o604, 0o620])("refuses a keystore with mode 0%o before decrypting it, naming file, mode and fix", async (mode) => {
    const path = join(dir, "device-key.json");
    await createKeystore(path, PASSWORD, { scryptN: TEST_SCRYPT_N });
    chmodSync(path, mode);
    // A wrong password: the permission refusal comes first, so nothing is decrypted from a file others could copy.
    const attempt = loadKeystore(path, "not the password");
    await expect(attempt).rejects.toBeInstanceOf(UsageError);
    await expect(attempt).rejects.toThrow(
      new RegExp(`^keystore ${path} is [a-z ]+ \\(mode 0${mode.toString(8)}\\); refusing to use it until you run: chmod 600 ${path}$`),
    );
  });

  it("loads a 0640 keystore and reports one warning sentence through the callback", async () => {
    const path = join(dir, "device-key.json");
    const created = await createKeystore(path, PASSWORD, { scryptN: TEST_SCRYPT_N });
    chmodSync(path, 0o640);
    const warnings: string[] = [];
    const wallet = await loadKeystore(path, PASSWORD, { onPermissionWarning: (warning) => warnings.push(warning) });
    expect(wallet.address).toBe(created.address);
    expect(warnings).toEqual([
      `keystore ${path} is readable by its group (mode 0640); fine if only the trustpile service is in that group, otherwise run: chmod 600 ${path}`,
    ]);
  });

  it("loads a 0600 and a 0400 keystore without a warning", async () => {
    const path = join(dir, "device-key.json");
    const created = await createKeystore(path, PASSWORD, { scryptN: TEST_SCRYPT_N });
    for (const mode of [0o600, 0o400]) {
      chmodSync(path, mode);
      const warnings: string[] = [];
      const wallet = await loadKeystore(path, PASSWORD, { onPermissionWarning: (warning) => warnings.push(warning) });
      expect(wallet.address).toBe(created.address);
      expect(warnings).toEqual([]);
    }
  });

  it("reads a 0600 private key file and refuses a 0604 one without echoing the key", () => {
    const privateKey = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    const path = join(dir, "device.key");
    writeFileSync(path, `${privateKey.slice(2)}\n`, { mode: 0o600 });
    expect(readPrivateKeyFile(path)).toEqual({ privateKey, permissionWarning: undefined });

    chmodSync(path, 0o604);
    let message = "";
    try {
      readPrivateKeyFile(path);
    } catch (error) {
      message = error instanceof Error ? error.message : String(error);
    }
    expect(message).toBe(`private key file ${path} is readable by other users (mode 0604); refusing to use it until you run: chmod 600 ${path}`);
    expect(message).not.toContain(privateKey.slice(2, 20));
  });

  it("rejects a private key file that is not 32 hex bytes without echoing its content", () => {
    const path = join(dir, "device.key");
    writeFileSync(path, "0xnot-a-key-but-maybe-a-secret\n", { mode: 0o600 });
    expect(() => readPrivateKeyFile(path)).toThrow(
      new UsageError(`private key file ${path}: expected a 32-byte hex private key (64 hex digits)`),
    );
  });
});

describe("readPasswordFile", () => {
  it("returns the first line trimmed, without a warning for mode 0600", () => {
    const path = join(dir, "pw");
    writeFileSync(path, "  s3cret \nsecond line\n", { mode: 0o600 });
    chmodSync(path, 0o600);
    expect(readPasswordFile(path)).toBe("s3cret");
    expect(readPasswordFileChecked(path).permissionWarning).toBeUndefined();
  });

  it("refuses a file other users can read, naming the file, its mode and the chmod", () => {
    const path = join(dir, "pw");
    writeFileSync(path, "s3cret\n");
    chmodSync(path, 0o644);
    expect(() => readPasswordFileChecked(path)).toThrow(
      new UsageError(`password file ${path} is readable by other users (mode 0644); refusing to use it until you run: chmod 600 ${path}`),
    );
  });

  it("accepts a group-readable file with one warning sentence", () => {
    const path = join(dir, "pw");
    writeFileSync(path, "s3cret\n");
    chmodSync(path, 0o640);
    const { password, permissionWarning } = readPasswordFileChecked(path);
    expect(password).toBe("s3cret");
    expect(permissionWarning).toBe(
      `password file ${path} is readable by its group (mode 0640); fine if only the trustpile service is in that group, otherwise run: chmod 600 ${path}`,
    );
  });

  it("rejects an empty or missing file", () => {
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n  \n", { mode: 0o600 });
    expect(() => readPasswordFile(empty)).toThrow(`password file ${empty} is empty`);
    const missing = join(dir, "missing");
    expect(() => readPasswordFile(missing)).toThrow(`password file ${missing} does not exist`);
  });
});

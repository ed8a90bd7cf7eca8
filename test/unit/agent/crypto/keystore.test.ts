import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
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
    writeFileSync(garbage, "not json");
    await expect(loadKeystore(garbage, PASSWORD)).rejects.toThrow(`keystore ${garbage} is not valid JSON`);

    const other = join(dir, "other.json");
    writeFileSync(other, JSON.stringify({ hello: "world" }));
    await expect(loadKeystore(other, PASSWORD)).rejects.toThrow(`keystore ${other} is not an encrypted JSON keystore`);
    expect(() => readKeystoreAddress(other)).toThrow(`keystore ${other} has no valid "address" field`);
  });

  it("reports an unreadable keystore as a runtime error", async () => {
    await expect(loadKeystore(dir, PASSWORD)).rejects.toBeInstanceOf(RuntimeError);
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

describe("readPasswordFile", () => {
  it("returns the first line trimmed, without a warning for mode 0600", () => {
    const path = join(dir, "pw");
    writeFileSync(path, "  s3cret \nsecond line\n", { mode: 0o600 });
    chmodSync(path, 0o600);
    expect(readPasswordFile(path)).toBe("s3cret");
    expect(readPasswordFileChecked(path).permissionWarning).toBeUndefined();
  });

  it("warns when group or others can read the file", () => {
    const path = join(dir, "pw");
    writeFileSync(path, "s3cret\n");
    chmodSync(path, 0o644);
    const { password, permissionWarning } = readPasswordFileChecked(path);
    expect(password).toBe("s3cret");
    expect(permissionWarning).toContain(`password file ${path}`);
    expect(permissionWarning).toContain("0644");
  });

  it("rejects an empty or missing file", () => {
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n  \n");
    expect(() => readPasswordFile(empty)).toThrow(`password file ${empty} is empty`);
    const missing = join(dir, "missing");
    expect(() => readPasswordFile(missing)).toThrow(`password file ${missing} does not exist`);
  });
});

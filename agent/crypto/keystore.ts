/**
 * The pile's device key: a secp256k1 Ethereum key that signs EIP-712 SessionTotal and sends transactions, kept on the
 * pile as an encrypted JSON keystore (Web3 Secret Storage v3, scrypt) with file mode 0600 (DESIGN §5.1).
 *
 * The keystore holds only the private key, no mnemonic: a pile never derives further accounts, and a mnemonic on
 * flash would be a second copy of the same secret in a form that is easier to misuse.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import {
  Wallet,
  concat,
  decryptKeystoreJson,
  encryptKeystoreJson,
  getAddress,
  getBytes,
  isKeystoreJson,
  keccak256,
  toUtf8Bytes,
} from "ethers";
import { RuntimeError, UsageError, describeError } from "../errors.ts";
import { encryptionKeyFromSeed, type EncryptionKeyPair } from "./seal.ts";

/** Mode of a new keystore: owner read/write only, so other local users cannot try passwords against it offline. */
export const KEYSTORE_FILE_MODE = 0o600;

// Domain tag so the seed of the encryption key can never equal a hash the device key signs or sends elsewhere.
const DEVICE_ENCRYPTION_SEED_TAG = "trustpile/device-encryption-seed/v1";

export interface CreateKeystoreOptions {
  /**
   * scrypt cost parameter N (power of two). Leave unset for real keys: ethers' default (2^17) is what makes an
   * offline password guess expensive. Tests pass a small N because the default costs seconds per keystore.
   */
  scryptN?: number;
}

export interface CreatedKeystore {
  /** Checksummed Ethereum address of the new device key. */
  address: string;
  /** Raw X25519 public key derived from the device key (see `deviceEncryptionKey`). */
  encryptionPublicKey: Uint8Array;
}

export interface PasswordFile {
  password: string;
  /** One sentence for the CLI to print when group or others have any access to the file; undefined when 0600/0400. */
  permissionWarning: string | undefined;
}

function errnoCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return undefined;
}

function validateScryptN(scryptN: number): void {
  // ethers checks this too, but its message names `options.N` and not where the value came from.
  if (!Number.isSafeInteger(scryptN) || scryptN < 2 || !Number.isInteger(Math.log2(scryptN))) {
    throw new UsageError(`keystore scryptN: expected a power of two >= 2, got ${scryptN}`);
  }
}

/**
 * Creates a new random device key and writes it encrypted to `path`. Refuses to overwrite an existing file: losing a
 * device key orphans the CP's registered signer.
 */
export async function createKeystore(
  path: string,
  password: string,
  options: CreateKeystoreOptions = {},
): Promise<CreatedKeystore> {
  if (password.length === 0) throw new UsageError(`keystore ${path}: the password must not be empty`);
  if (options.scryptN !== undefined) validateScryptN(options.scryptN);
  // Checked before scrypt so the user does not wait seconds to learn the path is taken; `wx` below is the real guard.
  if (existsSync(path)) throw alreadyExists(path);

  const wallet = Wallet.createRandom();
  const json = await encryptKeystoreJson(
    { address: wallet.address, privateKey: wallet.privateKey },
    password,
    options.scryptN === undefined ? {} : { scrypt: { N: options.scryptN } },
  );

  let fd: number;
  try {
    fd = openSync(path, "wx", KEYSTORE_FILE_MODE);
  } catch (error) {
    const code = errnoCode(error);
    if (code === "EEXIST") throw alreadyExists(path);
    if (code === "ENOENT") {
      throw new UsageError(`cannot create keystore ${path}: directory ${dirname(path)} does not exist`, { cause: error });
    }
    throw new RuntimeError(`cannot create keystore ${path}: ${describeError(error)}`, { cause: error });
  }
  try {
    writeSync(fd, `${json}\n`);
    // The pile may lose power right after `keys new`; a registered signer whose key never reached flash is lost.
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(path);
    throw new RuntimeError(`cannot write keystore ${path}: ${describeError(error)}`, { cause: error });
  }
  closeSync(fd);

  return { address: wallet.address, encryptionPublicKey: deviceEncryptionKey(wallet).publicKey };
}

function alreadyExists(path: string): UsageError {
  return new UsageError(`keystore ${path} already exists; refusing to overwrite it (choose another --keystore path)`);
}

function readKeystoreText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if (errnoCode(error) === "ENOENT") {
      throw new UsageError(`keystore ${path} does not exist (create one with: trustpile keys new --keystore ${path})`, {
        cause: error,
      });
    }
    throw new RuntimeError(`cannot read keystore ${path}: ${describeError(error)}`, { cause: error });
  }
}

function parseKeystoreJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`keystore ${path} is not valid JSON (${describeError(error)})`, { cause: error });
  }
}

/** Decrypts the keystore at `path`; every failure is one sentence naming the path. */
export async function loadKeystore(path: string, password: string): Promise<Wallet> {
  const text = readKeystoreText(path);
  parseKeystoreJson(path, text);
  if (!isKeystoreJson(text)) {
    throw new UsageError(`keystore ${path} is not an encrypted JSON keystore (expected version 3 with crypto.kdf)`);
  }
  try {
    const account = await decryptKeystoreJson(text, password);
    return new Wallet(account.privateKey);
  } catch (error) {
    if (describeError(error).includes("incorrect password")) {
      throw new UsageError(`wrong password for keystore ${path}`, { cause: error });
    }
    throw new UsageError(`keystore ${path} cannot be decrypted: ${describeError(error)}`, { cause: error });
  }
}

/** The keystore's address, read from its JSON without the password (v3 keystores store it in clear). */
export function readKeystoreAddress(path: string): string {
  const parsed = parseKeystoreJson(path, readKeystoreText(path));
  const address =
    typeof parsed === "object" && parsed !== null && "address" in parsed && typeof parsed.address === "string"
      ? parsed.address
      : undefined;
  if (address === undefined || !/^(0x)?[0-9a-fA-F]{40}$/.test(address)) {
    throw new UsageError(`keystore ${path} has no valid "address" field (expected 40 hex digits)`);
  }
  return getAddress(address.startsWith("0x") ? address : `0x${address}`);
}

/**
 * Reads a password file: the first line, trimmed (so a trailing newline from `echo` does not become part of the
 * password), plus a warning when group or others can access the file.
 */
export function readPasswordFileChecked(path: string): PasswordFile {
  let text: string;
  let modeBits: number;
  try {
    text = readFileSync(path, "utf8");
    modeBits = statSync(path).mode & 0o777;
  } catch (error) {
    if (errnoCode(error) === "ENOENT") throw new UsageError(`password file ${path} does not exist`, { cause: error });
    throw new RuntimeError(`cannot read password file ${path}: ${describeError(error)}`, { cause: error });
  }
  const password = (text.split(/\r?\n/, 1)[0] ?? "").trim();
  if (password.length === 0) {
    throw new UsageError(`password file ${path} is empty; expected the password on its first line`);
  }
  const permissionWarning =
    (modeBits & 0o077) !== 0
      ? `password file ${path} is accessible by group or others (mode 0${modeBits.toString(8)}); run: chmod 600 ${path}`
      : undefined;
  return { password, permissionWarning };
}

/** The password from `path` (first line, trimmed); see `readPasswordFileChecked` for the permission check. */
export function readPasswordFile(path: string): string {
  return readPasswordFileChecked(path).password;
}

/**
 * The pile's X25519 encryption key, derived from its device key so contacts sealed to the pile can be re-opened by
 * it without a second secret on disk. The private key is hashed with a domain tag first, so the X25519 key reveals
 * nothing usable about the signing key even if the derivation were misused elsewhere.
 */
export function deviceEncryptionKey(wallet: { readonly privateKey: string }): EncryptionKeyPair {
  const seed = getBytes(keccak256(concat([toUtf8Bytes(DEVICE_ENCRYPTION_SEED_TAG), getBytes(wallet.privateKey)])));
  return encryptionKeyFromSeed(seed);
}

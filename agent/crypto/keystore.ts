/**
 * The pile's device key: a secp256k1 Ethereum key that signs EIP-712 SessionTotal and sends transactions, kept on the
 * pile as an encrypted JSON keystore (Web3 Secret Storage v3, scrypt) with file mode 0600 (DESIGN §5.1).
 *
 * The keystore holds only the private key, no mnemonic: a pile never derives further accounts, and a mnemonic on
 * flash would be a second copy of the same secret in a form that is easier to misuse.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
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
import { errnoCode, missingSecretFile, readSecretFile } from "./file-permissions.ts";
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
  /** One sentence for the CLI to print when the file's group can read it (see `judgeSecretFileMode`); else undefined. */
  permissionWarning: string | undefined;
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
    if (errnoCode(error) === "ENOENT") throw missingSecretFile(path, "keystore", error);
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

export interface LoadKeystoreOptions {
  /** Called with one sentence when the keystore is readable by its group (accepted, see `judgeSecretFileMode`). */
  onPermissionWarning?: (warning: string) => void;
}

/**
 * Decrypts the keystore at `path`; every failure is one sentence naming the path. Refuses a keystore that other
 * users can access (see `judgeSecretFileMode`) before decrypting it.
 */
export async function loadKeystore(path: string, password: string, options: LoadKeystoreOptions = {}): Promise<Wallet> {
  const { text, permissionWarning } = readSecretFile(path, "keystore");
  if (permissionWarning !== undefined) options.onPermissionWarning?.(permissionWarning);
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
 * password). Refuses a file other users can access and warns when its group can read it (`judgeSecretFileMode`).
 */
export function readPasswordFileChecked(path: string): PasswordFile {
  const { text, permissionWarning } = readSecretFile(path, "password file");
  const password = (text.split(/\r?\n/, 1)[0] ?? "").trim();
  if (password.length === 0) {
    throw new UsageError(`password file ${path} is empty; expected the password on its first line`);
  }
  return { password, permissionWarning };
}

export interface PrivateKeyFile {
  /** The 0x-prefixed 32-byte private key. */
  privateKey: string;
  permissionWarning: string | undefined;
}

/**
 * Reads a raw hex private key (`--private-key-file`), under the same permission rule as the keystore; a raw key
 * has no password in front of it, so a readable file is the key itself.
 */
export function readPrivateKeyFile(path: string): PrivateKeyFile {
  const { text, permissionWarning } = readSecretFile(path, "private key file");
  const trimmed = text.trim();
  const privateKey = trimmed.startsWith("0x") ? trimmed : `0x${trimmed}`;
  // Checked here, not by ethers, so the message never echoes the file's content.
  if (!/^0x[0-9a-fA-F]{64}$/.test(privateKey)) {
    throw new UsageError(`private key file ${path}: expected a 32-byte hex private key (64 hex digits)`);
  }
  return { privateKey, permissionWarning };
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

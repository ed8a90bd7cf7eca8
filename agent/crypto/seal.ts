/**
 * Sealing the pile owner's contact to an EV's X25519 key (DESIGN §4.1, paper §3.1).
 *
 * The owner's identity is on chain only in sealed form: the Registry stores `ownerContactSealed` and
 * `answerOwnerContact` carries a contact sealed to the requesting EV's `evEncPubKey`. Only `node:crypto` is used so the
 * format can be reproduced by any X25519 + HKDF + AES-GCM implementation.
 *
 * Wire format (stored on chain as `bytes`, so it is versioned and self-contained):
 *
 *   offset  size  field
 *   0       1     version, 0x01
 *   1       32    ephemeral X25519 public key (raw, RFC 7748 little-endian u-coordinate)
 *   33      12    AES-GCM IV (random)
 *   45      16    AES-GCM authentication tag
 *   61      n     ciphertext of the UTF-8 plaintext (same length as the plaintext, GCM is a stream mode)
 *
 * Key schedule for version 0x01:
 *   shared = X25519(ephemeralPrivate, recipientPublic)
 *   key    = HKDF-SHA256(ikm = shared, salt = ephemeralPub || recipientPub, info = "trustpile/owner-contact/v1", 32 bytes)
 *   AES-256-GCM(key, iv), additional authenticated data = the version byte.
 * Both public keys go into the salt so a ciphertext is bound to the exact pair it was made for, and the version byte
 * is authenticated so a future format cannot be confused with this one by editing one byte.
 * A fresh ephemeral key per message makes a fixed IV safe already; the IV is random anyway so a buggy caller that
 * reused an ephemeral key would still not reuse a (key, IV) pair.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from "node:crypto";

export const SEALED_CONTACT_VERSION = 0x01;
export const X25519_KEY_BYTES = 32;
export const SEAL_IV_BYTES = 12;
export const SEAL_TAG_BYTES = 16;
/** Bytes a sealed message adds to its plaintext: version + ephemeral key + IV + tag = 61. */
export const SEAL_OVERHEAD_BYTES = 1 + X25519_KEY_BYTES + SEAL_IV_BYTES + SEAL_TAG_BYTES;

const SEAL_HKDF_INFO = "trustpile/owner-contact/v1";
const SEED_HKDF_INFO = "trustpile/x25519/v1";
const AES_KEY_BYTES = 32;

// DER headers for raw X25519 keys (RFC 8410): Node has no "raw" import format, so a raw key is wrapped in the fixed
// PKCS#8 / SPKI prefix for the X25519 OID 1.3.101.110.
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

export interface EncryptionKeyPair {
  /** 32 raw bytes; X25519 clamps it on use, so any 32 bytes are a valid private key. */
  privateKey: Uint8Array;
  /** 32 raw bytes (u-coordinate). */
  publicKey: Uint8Array;
}

function requireKeyLength(name: string, key: Uint8Array): void {
  if (key.length !== X25519_KEY_BYTES) {
    throw new Error(`${name}: expected ${X25519_KEY_BYTES} bytes of raw X25519 key, got ${key.length}`);
  }
}

function privateKeyObject(rawPrivateKey: Uint8Array): KeyObject {
  requireKeyLength("X25519 private key", rawPrivateKey);
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, rawPrivateKey]), format: "der", type: "pkcs8" });
}

function publicKeyObject(rawPublicKey: Uint8Array): KeyObject {
  requireKeyLength("X25519 public key", rawPublicKey);
  return createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, rawPublicKey]), format: "der", type: "spki" });
}

function rawPrivateKey(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_X25519_PREFIX.length));
}

function rawPublicKey(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: "der", type: "spki" }).subarray(SPKI_X25519_PREFIX.length));
}

function deriveAesKey(shared: Uint8Array, ephemeralPublicKey: Uint8Array, recipientPublicKey: Uint8Array): Buffer {
  const salt = Buffer.concat([ephemeralPublicKey, recipientPublicKey]);
  return Buffer.from(hkdfSync("sha256", shared, salt, SEAL_HKDF_INFO, AES_KEY_BYTES));
}

export function generateEncryptionKeyPair(): EncryptionKeyPair {
  const { privateKey } = generateKeyPairSync("x25519");
  return { privateKey: rawPrivateKey(privateKey), publicKey: rawPublicKey(createPublicKey(privateKey)) };
}

/**
 * Deterministic X25519 key pair from a 32-byte seed, so a pile can derive its encryption key from its device key
 * and needs no second secret on disk. HKDF (no salt) separates this use of the seed from any other.
 */
export function encryptionKeyFromSeed(seed: Uint8Array): EncryptionKeyPair {
  if (seed.length !== 32) throw new Error(`X25519 seed: expected 32 bytes, got ${seed.length}`);
  const privateKey = new Uint8Array(hkdfSync("sha256", seed, new Uint8Array(0), SEED_HKDF_INFO, X25519_KEY_BYTES));
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKeyObject(privateKey))) };
}

/** Public key of a raw X25519 private key. */
export function encryptionPublicKeyOf(privateKey: Uint8Array): Uint8Array {
  return rawPublicKey(createPublicKey(privateKeyObject(privateKey)));
}

/** Seals `plaintext` (UTF-8) to `recipientPublicKey`; the result is the wire format documented at the top. */
export function sealTo(recipientPublicKey: Uint8Array, plaintext: string): Uint8Array {
  const recipient = publicKeyObject(recipientPublicKey);
  const { privateKey: ephemeralPrivate } = generateKeyPairSync("x25519");
  const ephemeralPublicKey = rawPublicKey(createPublicKey(ephemeralPrivate));

  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: ephemeralPrivate, publicKey: recipient });
  } catch (error) {
    // OpenSSL refuses an all-zero shared secret, i.e. a low-order recipient key. The key comes from an EV's
    // on-chain request, so this is reachable with hostile input and must not look like an internal fault.
    throw new Error("sealed contact: recipient public key is not a usable X25519 key (low-order point)", {
      cause: error,
    });
  }

  const key = deriveAesKey(shared, ephemeralPublicKey, recipientPublicKey);
  const iv = randomBytes(SEAL_IV_BYTES);
  const version = Uint8Array.of(SEALED_CONTACT_VERSION);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: SEAL_TAG_BYTES });
  cipher.setAAD(version);
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  const tag = cipher.getAuthTag();

  return new Uint8Array(Buffer.concat([version, ephemeralPublicKey, iv, tag, ciphertext]));
}

/** Opens a sealed message with the recipient's raw private key; throws an Error saying which check failed. */
export function openSealed(recipientPrivateKey: Uint8Array, sealed: Uint8Array): string {
  if (sealed.length === 0) throw new Error(`sealed contact: too short (0 bytes), expected at least ${SEAL_OVERHEAD_BYTES}`);
  const version = sealed[0] ?? 0;
  if (version !== SEALED_CONTACT_VERSION) {
    throw new Error(`sealed contact: unsupported version 0x${version.toString(16).padStart(2, "0")}, expected 0x01`);
  }
  if (sealed.length < SEAL_OVERHEAD_BYTES) {
    throw new Error(`sealed contact: too short (${sealed.length} bytes), expected at least ${SEAL_OVERHEAD_BYTES}`);
  }

  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const ephemeralPublicKey = bytes.subarray(1, 1 + X25519_KEY_BYTES);
  const ivStart = 1 + X25519_KEY_BYTES;
  const iv = bytes.subarray(ivStart, ivStart + SEAL_IV_BYTES);
  const tag = bytes.subarray(ivStart + SEAL_IV_BYTES, SEAL_OVERHEAD_BYTES);
  const ciphertext = bytes.subarray(SEAL_OVERHEAD_BYTES);

  const recipient = privateKeyObject(recipientPrivateKey);
  const recipientPublicKey = rawPublicKey(createPublicKey(recipient));

  let plaintext: Buffer;
  try {
    const shared = diffieHellman({ privateKey: recipient, publicKey: publicKeyObject(ephemeralPublicKey) });
    const key = deriveAesKey(shared, ephemeralPublicKey, recipientPublicKey);
    const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: SEAL_TAG_BYTES });
    decipher.setAAD(Uint8Array.of(version));
    decipher.setAuthTag(tag);
    plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch (error) {
    // A tampered ephemeral key can land on a low-order point and fail in ECDH rather than in GCM; to the caller both
    // are the same fact, so both get the same message.
    throw new Error("sealed contact: authentication failed (wrong key or tampered data)", { cause: error });
  }
  return new TextDecoder("utf-8", { fatal: true }).decode(plaintext);
}

/** Raw 32-byte X25519 public key as the `bytes32 evEncPubKey` argument (0x + 64 lowercase hex digits). */
export function publicKeyToBytes32(publicKey: Uint8Array): string {
  requireKeyLength("X25519 public key", publicKey);
  return `0x${Buffer.from(publicKey).toString("hex")}`;
}

/** Inverse of `publicKeyToBytes32`; accepts either hex case, requires the 0x prefix and exactly 32 bytes. */
export function bytes32ToPublicKey(hex: string): Uint8Array {
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error(`X25519 public key: expected bytes32 as 0x followed by 64 hex digits, got "${hex}"`);
  }
  return new Uint8Array(Buffer.from(hex.slice(2), "hex"));
}

import { describe, expect, it } from "vitest";
import {
  SEAL_OVERHEAD_BYTES,
  bytes32ToPublicKey,
  encryptionKeyFromSeed,
  encryptionPublicKeyOf,
  generateEncryptionKeyPair,
  openSealed,
  publicKeyToBytes32,
  sealTo,
} from "../../../../agent/crypto/seal.ts";

const CONTACT = "Ana Ruiz, +34 600 000 000";

// Offsets of the wire format: version | ephemeral key (32) | iv (12) | tag (16) | ciphertext.
const EPHEMERAL_KEY_OFFSET = 1;
const IV_OFFSET = 33;
const TAG_OFFSET = 45;
const CIPHERTEXT_OFFSET = 61;

function flipped(bytes: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

describe("sealTo / openSealed", () => {
  it("round-trips a contact, including non-ASCII text", () => {
    const ev = generateEncryptionKeyPair();
    expect(openSealed(ev.privateKey, sealTo(ev.publicKey, CONTACT))).toBe(CONTACT);
    expect(openSealed(ev.privateKey, sealTo(ev.publicKey, "Iñés Müller ☎ 0049"))).toBe("Iñés Müller ☎ 0049");
    expect(openSealed(ev.privateKey, sealTo(ev.publicKey, ""))).toBe("");
  });

  it("uses a fresh ephemeral key and IV each time", () => {
    const ev = generateEncryptionKeyPair();
    const first = sealTo(ev.publicKey, CONTACT);
    const second = sealTo(ev.publicKey, CONTACT);
    expect(Buffer.from(first).equals(Buffer.from(second))).toBe(false);
  });

  it("has length 61 + plaintext UTF-8 bytes", () => {
    const ev = generateEncryptionKeyPair();
    expect(SEAL_OVERHEAD_BYTES).toBe(61);
    expect(sealTo(ev.publicKey, CONTACT).length).toBe(61 + Buffer.byteLength(CONTACT, "utf8"));
    expect(sealTo(ev.publicKey, "☎").length).toBe(61 + 3);
  });

  it("starts with version byte 0x01 and rejects other versions", () => {
    const ev = generateEncryptionKeyPair();
    const sealed = sealTo(ev.publicKey, CONTACT);
    expect(sealed[0]).toBe(0x01);
    const v2 = Uint8Array.from(sealed);
    v2[0] = 0x02;
    expect(() => openSealed(ev.privateKey, v2)).toThrow("sealed contact: unsupported version 0x02");
  });

  it("rejects input shorter than the header", () => {
    const ev = generateEncryptionKeyPair();
    const sealed = sealTo(ev.publicKey, CONTACT);
    expect(() => openSealed(ev.privateKey, sealed.subarray(0, 40))).toThrow("sealed contact: too short (40 bytes)");
    expect(() => openSealed(ev.privateKey, new Uint8Array(0))).toThrow("sealed contact: too short (0 bytes)");
  });

  it("fails to open with another key", () => {
    const ev = generateEncryptionKeyPair();
    const other = generateEncryptionKeyPair();
    expect(() => openSealed(other.privateKey, sealTo(ev.publicKey, CONTACT))).toThrow(
      "sealed contact: authentication failed (wrong key or tampered data)",
    );
  });

  it.each([
    ["ephemeral key", EPHEMERAL_KEY_OFFSET + 5],
    ["iv", IV_OFFSET + 3],
    ["tag", TAG_OFFSET + 7],
    ["ciphertext", CIPHERTEXT_OFFSET + 2],
  ])("fails when one bit of the %s is flipped", (_field, index) => {
    const ev = generateEncryptionKeyPair();
    const sealed = sealTo(ev.publicKey, CONTACT);
    expect(() => openSealed(ev.privateKey, flipped(sealed, index))).toThrow(
      "sealed contact: authentication failed (wrong key or tampered data)",
    );
  });

  it("fails when the ciphertext is truncated", () => {
    const ev = generateEncryptionKeyPair();
    const sealed = sealTo(ev.publicKey, CONTACT);
    expect(() => openSealed(ev.privateKey, sealed.subarray(0, sealed.length - 1))).toThrow("authentication failed");
  });

  // Regression guard: the recipient key comes from an EV's on-chain request, so a low-order point is hostile input.
  it("refuses a low-order recipient key with a clear message", () => {
    expect(() => sealTo(new Uint8Array(32), CONTACT)).toThrow("not a usable X25519 key");
  });

  it("rejects keys of the wrong length", () => {
    expect(() => sealTo(new Uint8Array(31), CONTACT)).toThrow("expected 32 bytes");
    const ev = generateEncryptionKeyPair();
    expect(() => openSealed(new Uint8Array(33), sealTo(ev.publicKey, CONTACT))).toThrow("expected 32 bytes");
  });
});

describe("encryptionKeyFromSeed", () => {
  it("is deterministic per seed and differs between seeds", () => {
    const seedA = new Uint8Array(32).fill(7);
    const seedB = new Uint8Array(32).fill(8);
    const a1 = encryptionKeyFromSeed(seedA);
    const a2 = encryptionKeyFromSeed(seedA);
    const b = encryptionKeyFromSeed(seedB);
    expect(a1.publicKey).toEqual(a2.publicKey);
    expect(a1.privateKey).toEqual(a2.privateKey);
    expect(a1.publicKey).not.toEqual(b.publicKey);
    expect(a1.publicKey.length).toBe(32);
    expect(a1.privateKey.length).toBe(32);
  });

  it("gives a key pair that opens what is sealed to it", () => {
    const pile = encryptionKeyFromSeed(new Uint8Array(32).fill(1));
    expect(encryptionPublicKeyOf(pile.privateKey)).toEqual(pile.publicKey);
    expect(openSealed(pile.privateKey, sealTo(pile.publicKey, CONTACT))).toBe(CONTACT);
  });

  it("requires 32 bytes of seed", () => {
    expect(() => encryptionKeyFromSeed(new Uint8Array(16))).toThrow("X25519 seed: expected 32 bytes, got 16");
  });
});

describe("bytes32 conversion", () => {
  it("round-trips a public key as 0x + 64 hex digits", () => {
    const { publicKey } = generateEncryptionKeyPair();
    const hex = publicKeyToBytes32(publicKey);
    expect(hex).toMatch(/^0x[0-9a-f]{64}$/);
    expect(bytes32ToPublicKey(hex)).toEqual(publicKey);
    expect(bytes32ToPublicKey(hex.toUpperCase().replace("0X", "0x"))).toEqual(publicKey);
  });

  it("rejects malformed bytes32", () => {
    expect(() => bytes32ToPublicKey("0x1234")).toThrow("expected bytes32");
    expect(() => bytes32ToPublicKey("ab".repeat(32))).toThrow("expected bytes32");
  });
});

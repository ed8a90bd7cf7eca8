import { beforeEach, describe, expect, it } from "vitest";
import { getBytes, hexlify, ZeroAddress, type ContractTransactionReceipt, type HDNodeWallet } from "ethers";
import { CpKind, Role, SessionStatus } from "../../agent/chain/contracts.ts";
import { attest, authorizeSession, mined, signAndSettle } from "../../agent/chain/operations.ts";
import { cpIdOf, signSessionTotal } from "../../agent/chain/session-total.ts";
import {
  bytes32ToPublicKey,
  generateEncryptionKeyPair,
  openSealed,
  publicKeyToBytes32,
  sealTo,
} from "../../agent/crypto/seal.ts";
import { deployLedgerFixture, PRICE_WEI_PER_KWH, type LedgerFixture } from "../helpers/chain.ts";
import {
  accountOf,
  costOf,
  domainOf,
  eventArgs,
  expectRevert,
  openSessionAt,
  settleWithSignature,
  totalOf,
} from "../helpers/ledger-helpers.ts";

const MAX_PRICE_PER_KWH = 2n ** 80n - 1n;
const FAR_FUTURE = 4_102_444_800n; // 2100-01-01
const CP = "CP-REGISTRY-1";
const SEALED_OWNER_CONTACT = getBytes("0x0badc0ffee");

interface Cast {
  fixture: LedgerFixture;
  owner: HDNodeWallet;
  signer: HDNodeWallet;
  ev: HDNodeWallet;
  stranger: HDNodeWallet;
  operator: HDNodeWallet;
  newSigner: HDNodeWallet;
}

async function freshCast(): Promise<Cast> {
  const fixture = await deployLedgerFixture();
  return {
    fixture,
    owner: accountOf(fixture, 1),
    signer: accountOf(fixture, 2),
    ev: accountOf(fixture, 3),
    stranger: accountOf(fixture, 4),
    operator: accountOf(fixture, 5),
    newSigner: accountOf(fixture, 6),
  };
}

interface RegistrationArgs {
  cpId: string;
  kind: number;
  areaId: bigint;
  signer: string;
  price: bigint;
  maxPowerW: number;
  sealed: Uint8Array;
}

/** registerChargePoint with every argument explicit, defaulting to a valid private CP of `cast.owner`. */
function register(
  cast: Cast,
  as: HDNodeWallet,
  overrides: Partial<RegistrationArgs> = {},
): Promise<ContractTransactionReceipt> {
  const args = {
    cpId: cpIdOf(CP),
    kind: CpKind.Private,
    areaId: 7n,
    signer: cast.signer.address,
    price: PRICE_WEI_PER_KWH,
    maxPowerW: 22_000,
    sealed: SEALED_OWNER_CONTACT,
    ...overrides,
  };
  return mined(`registering ${args.cpId}`, () =>
    cast.fixture
      .registry(as)
      .registerChargePoint(args.cpId, args.kind, args.areaId, args.signer, args.price, args.maxPowerW, args.sealed),
  );
}

describe("Registry identities", () => {
  let cast: Cast;
  beforeEach(async () => {
    cast = await freshCast();
  });

  it("accepts attestations only from the authority", async () => {
    const { fixture, stranger, ev } = cast;
    expect(await fixture.registry(stranger).authority()).toBe(fixture.authority.address);
    await expectRevert(fixture.registry(stranger).attest(ev.address, Role.EV, FAR_FUTURE), "NotAuthority", [stranger.address]);
    await expectRevert(fixture.registry(ev).attest(ev.address, Role.EV, FAR_FUTURE), "NotAuthority", [ev.address]);
    expect(await fixture.registry(stranger).isAttested(ev.address, Role.EV)).toBe(false);
  });

  it("knows roles 1..3 only, lets one account hold several and revokes with 0", async () => {
    const { fixture, ev } = cast;
    const registry = fixture.registry(fixture.authority);
    for (const role of [0, 4, 255]) {
      await expectRevert(registry.attest(ev.address, role, FAR_FUTURE), "InvalidRole", [BigInt(role)]);
    }
    for (const role of [Role.EV, Role.Owner, Role.Operator]) {
      const receipt = await attest(registry, ev.address, role, FAR_FUTURE + BigInt(role));
      expect([...eventArgs(receipt, registry, "Attested")]).toEqual([ev.address, BigInt(role), FAR_FUTURE + BigInt(role)]);
    }
    for (const role of [Role.EV, Role.Owner, Role.Operator]) {
      expect(await registry.isAttested(ev.address, role)).toBe(true);
      expect(await registry.attestedUntil(ev.address, role)).toBe(FAR_FUTURE + BigInt(role));
    }
    await attest(registry, ev.address, Role.Owner, 0n);
    expect(await registry.isAttested(ev.address, Role.Owner)).toBe(false);
    expect(await registry.isAttested(ev.address, Role.EV)).toBe(true);
    expect(await registry.isAttested(ev.address, Role.Operator)).toBe(true);
  });
});

describe("Registry charge point registration", () => {
  let cast: Cast;
  beforeEach(async () => {
    cast = await freshCast();
  });

  it("needs an attested owner for private and public piles and an attested operator for operator piles", async () => {
    const { fixture, owner, operator, ev } = cast;
    await expectRevert(register(cast, owner), "NotAttested", [owner.address, BigInt(Role.Owner)]);
    await fixture.attestEv(ev);
    await expectRevert(register(cast, ev), "NotAttested", [ev.address, BigInt(Role.Owner)]);

    await fixture.attestOwner(owner);
    await expectRevert(register(cast, owner, { kind: CpKind.Operator }), "NotAttested", [owner.address, BigInt(Role.Operator)]);
    await register(cast, owner, { kind: CpKind.Public, cpId: cpIdOf("CP-PUBLIC") });

    await attest(fixture.registry(fixture.authority), operator.address, Role.Operator, FAR_FUTURE);
    await expectRevert(register(cast, operator, { cpId: cpIdOf("CP-OP") }), "NotAttested", [operator.address, BigInt(Role.Owner)]);
    await register(cast, operator, { kind: CpKind.Operator, cpId: cpIdOf("CP-OP") });
    expect((await fixture.registry(ev).chargePoint(cpIdOf("CP-OP"))).kind).toBe(BigInt(CpKind.Operator));
    expect(await fixture.registry(ev).chargePointCount()).toBe(2n);
  });

  it("rejects a duplicate cpId, a zero signer, an out-of-range price, zero power and an empty sealed contact", async () => {
    const { fixture, owner, stranger } = cast;
    await fixture.attestOwner(owner);
    await fixture.attestOwner(stranger);
    const cpId = cpIdOf(CP);
    await expectRevert(register(cast, owner, { signer: ZeroAddress }), "ZeroSigner", []);
    await expectRevert(register(cast, owner, { price: 0n }), "InvalidPrice", [0n, MAX_PRICE_PER_KWH]);
    await expectRevert(register(cast, owner, { price: MAX_PRICE_PER_KWH + 1n }), "InvalidPrice", [
      MAX_PRICE_PER_KWH + 1n, MAX_PRICE_PER_KWH,
    ]);
    await expectRevert(register(cast, owner, { maxPowerW: 0 }), "InvalidMaxPower", [0n]);
    await expectRevert(register(cast, owner, { sealed: new Uint8Array() }), "EmptySealedContact", []);
    expect(await fixture.registry(owner).chargePointCount()).toBe(0n);

    await register(cast, owner, { price: MAX_PRICE_PER_KWH });
    expect((await fixture.registry(owner).chargePoint(cpId)).pricePerKWh).toBe(MAX_PRICE_PER_KWH);
    await expectRevert(register(cast, owner), "ChargePointAlreadyRegistered", [cpId]);
    await expectRevert(register(cast, stranger, { signer: stranger.address }), "ChargePointAlreadyRegistered", [cpId]);
  });

  it("returns every field of a registered charge point", async () => {
    const { fixture, owner, signer } = cast;
    await fixture.attestOwner(owner);
    const receipt = await register(cast, owner, {
      kind: CpKind.Public,
      areaId: 4_242n,
      price: 123_456_789n,
      maxPowerW: 7_400,
      sealed: getBytes("0x01020304ff"),
    });
    const registry = fixture.registry(owner);
    expect([...eventArgs(receipt, registry, "ChargePointRegistered")]).toEqual([
      cpIdOf(CP), owner.address, BigInt(CpKind.Public), 4_242n, signer.address,
    ]);
    expect([...(await registry.chargePoint(cpIdOf(CP)))]).toEqual([
      owner.address, BigInt(CpKind.Public), 4_242n, signer.address, 123_456_789n, 7_400n, true, "0x01020304ff",
    ]);
    expect(await registry.cpNoOf(cpIdOf(CP))).toBe(1n);
    expect(await registry.chargePointCount()).toBe(1n);
    await expectRevert(registry.chargePoint(cpIdOf("NOT-THERE")), "UnknownChargePoint", [cpIdOf("NOT-THERE")]);
  });
});

describe("Registry charge point changes", () => {
  let cast: Cast;
  const depositWei = 10n ** 16n;
  beforeEach(async () => {
    cast = await freshCast();
    await cast.fixture.attestOwner(cast.owner);
    await cast.fixture.attestEv(cast.ev);
    await cast.fixture.registerCp(cast.owner, { chargePointId: CP, signer: cast.signer.address });
  });

  it("lets only the owner change signer, price and activity", async () => {
    const { fixture, signer, stranger, newSigner } = cast;
    const cpId = cpIdOf(CP);
    for (const caller of [signer, stranger]) {
      const registry = fixture.registry(caller);
      await expectRevert(registry.setSigner(cpId, newSigner.address), "NotChargePointOwner", [cpId, caller.address]);
      await expectRevert(registry.setPrice(cpId, 1n), "NotChargePointOwner", [cpId, caller.address]);
      await expectRevert(registry.setActive(cpId, false), "NotChargePointOwner", [cpId, caller.address]);
    }
    const ownerRegistry = fixture.registry(cast.owner);
    await expectRevert(ownerRegistry.setSigner(cpIdOf("NOT-THERE"), newSigner.address), "UnknownChargePoint", [cpIdOf("NOT-THERE")]);
    await expectRevert(ownerRegistry.setSigner(cpId, ZeroAddress), "ZeroSigner", []);
    await expectRevert(ownerRegistry.setPrice(cpId, 0n), "InvalidPrice", [0n, MAX_PRICE_PER_KWH]);
    await expectRevert(ownerRegistry.setPrice(cpId, MAX_PRICE_PER_KWH + 1n), "InvalidPrice", [MAX_PRICE_PER_KWH + 1n, MAX_PRICE_PER_KWH]);

    const signerChanged = await mined("setSigner", () => ownerRegistry.setSigner(cpId, newSigner.address));
    expect([...eventArgs(signerChanged, ownerRegistry, "SignerChanged")]).toEqual([cpId, newSigner.address]);
    const priceChanged = await mined("setPrice", () => ownerRegistry.setPrice(cpId, 5n));
    expect([...eventArgs(priceChanged, ownerRegistry, "PriceChanged")]).toEqual([cpId, 5n]);
    const activeChanged = await mined("setActive", () => ownerRegistry.setActive(cpId, false));
    expect([...eventArgs(activeChanged, ownerRegistry, "ActiveChanged")]).toEqual([cpId, false]);
    const cp = await ownerRegistry.chargePoint(cpId);
    expect([cp.signer, cp.pricePerKWh, cp.active, cp.owner]).toEqual([newSigner.address, 5n, false, cast.owner.address]);
  });

  it("refuses new sessions at an inactive CP until it is active again", async () => {
    const { fixture, owner, ev, signer } = cast;
    const cpId = cpIdOf(CP);
    const opened = await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei);
    await mined("deactivate", () => fixture.registry(owner).setActive(cpId, false));
    await expectRevert(fixture.ledger(ev).openSession(cpId, 1_000, { value: depositWei }), "ChargePointInactive", [cpId]);
    // A session opened before the switch still completes, so no deposit is stranded.
    await authorizeSession(fixture.ledger(signer), opened.sessionId);
    await signAndSettle(fixture.ledger(ev), signer, domainOf(fixture), totalOf(opened.sessionId, CP, 100n));
    await mined("reactivate", () => fixture.registry(owner).setActive(cpId, true));
    const reopened = await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei);
    expect(reopened.sessionId).toBe(2n);
  });

  it("prices a session at the price listed when it opened", async () => {
    const { fixture, owner, ev, signer } = cast;
    const newPrice = 777_777_777_777_777n;
    const before = await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei);
    await mined("setPrice", () => fixture.registry(owner).setPrice(cpIdOf(CP), newPrice));
    const after = await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei);
    expect(eventArgs(after.receipt, fixture.ledger(ev), "SessionOpened").getValue("pricePerKWh")).toBe(newPrice);
    expect((await fixture.ledger(ev).session(before.sessionId)).pricePerKWh).toBe(PRICE_WEI_PER_KWH);
    expect((await fixture.ledger(ev).session(after.sessionId)).pricePerKWh).toBe(newPrice);

    for (const { sessionId } of [before, after]) await authorizeSession(fixture.ledger(signer), sessionId);
    const energyWh = 4_321n;
    const settledBefore = await signAndSettle(fixture.ledger(ev), signer, domainOf(fixture), totalOf(before.sessionId, CP, energyWh));
    const settledAfter = await signAndSettle(fixture.ledger(ev), signer, domainOf(fixture), totalOf(after.sessionId, CP, energyWh));
    const oldCost = costOf(energyWh, PRICE_WEI_PER_KWH);
    const newCost = costOf(energyWh, newPrice);
    expect(oldCost).toBe(1_296_300_000_000_000n);
    expect(newCost).toBe(3_360_777_777_777_775n);
    expect(eventArgs(settledBefore, fixture.ledger(ev), "SessionSettled").getValue("cost")).toBe(oldCost);
    expect(eventArgs(settledAfter, fixture.ledger(ev), "SessionSettled").getValue("cost")).toBe(newCost);
    expect(await fixture.ledger(ev).withdrawable(owner.address)).toBe(oldCost + newCost);
  });

  it("checks a settle against the signer registered at settle time", async () => {
    const { fixture, owner, ev, signer, newSigner } = cast;
    const cpId = cpIdOf(CP);
    const authorizedEarlier = await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei);
    await authorizeSession(fixture.ledger(signer), authorizedEarlier.sessionId);
    const openedEarlier = await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei);

    await mined("setSigner", () => fixture.registry(owner).setSigner(cpId, newSigner.address));
    await expectRevert(fixture.ledger(signer).authorize(openedEarlier.sessionId), "NotAuthorizer", [
      openedEarlier.sessionId, signer.address,
    ]);
    await authorizeSession(fixture.ledger(newSigner), openedEarlier.sessionId);

    const total = totalOf(authorizedEarlier.sessionId, CP, 1_000n);
    const oldSignature = await signSessionTotal(signer, domainOf(fixture), total);
    await expectRevert(settleWithSignature(fixture.ledger(ev), total, oldSignature), "InvalidSignature", [
      authorizedEarlier.sessionId, signer.address, newSigner.address,
    ]);
    const newSignature = await signSessionTotal(newSigner, domainOf(fixture), total);
    await settleWithSignature(fixture.ledger(ev), total, newSignature);
    await signAndSettle(fixture.ledger(ev), newSigner, domainOf(fixture), totalOf(openedEarlier.sessionId, CP, 2_000n));
    expect((await fixture.ledger(ev).session(authorizedEarlier.sessionId)).status).toBe(SessionStatus.Settled);
    expect((await fixture.ledger(ev).session(openedEarlier.sessionId)).status).toBe(SessionStatus.Settled);
  });
});

describe("Registry owner contact", () => {
  let cast: Cast;
  beforeEach(async () => {
    cast = await freshCast();
    await cast.fixture.attestOwner(cast.owner);
    await cast.fixture.attestEv(cast.ev);
    await cast.fixture.registerCp(cast.owner, { chargePointId: CP, signer: cast.signer.address });
  });

  it("carries the owner's contact sealed to the EV's key from request to answer", async () => {
    const { fixture, ev, signer, stranger } = cast;
    const cpId = cpIdOf(CP);
    const contact = "Ana Ruiz, +34 600 000 000";

    // EV side: a fresh X25519 key, its public half on chain.
    const evKey = generateEncryptionKeyPair();
    const requested = await mined("request contact", () =>
      fixture.registry(ev).requestOwnerContact(cpId, publicKeyToBytes32(evKey.publicKey)),
    );
    const request = eventArgs(requested, fixture.registry(ev), "OwnerContactRequested");
    expect([...request]).toEqual([1n, cpId, ev.address, publicKeyToBytes32(evKey.publicKey)]);
    expect([...(await fixture.registry(ev).contactRequest(1n))]).toEqual([cpId, ev.address, false]);

    // Pile side: seal to the key read from the event, never from the EV directly.
    const requestId = request.getValue("requestId") as bigint;
    const sealed = sealTo(bytes32ToPublicKey(request.getValue("evEncPubKey") as string), contact);
    await expectRevert(fixture.registry(stranger).answerOwnerContact(requestId, sealed), "NotChargePointResponder", [
      cpId, stranger.address,
    ]);
    await expectRevert(fixture.registry(ev).answerOwnerContact(requestId, sealed), "NotChargePointResponder", [cpId, ev.address]);
    await expectRevert(fixture.registry(signer).answerOwnerContact(requestId, new Uint8Array()), "EmptySealedContact", []);
    const answered = await mined("answer contact", () => fixture.registry(signer).answerOwnerContact(requestId, sealed));
    const answer = eventArgs(answered, fixture.registry(signer), "OwnerContactAnswered");
    expect(answer.getValue("requestId")).toBe(requestId);
    expect(answer.getValue("sealedContact")).toBe(hexlify(sealed));
    expect((await fixture.registry(ev).contactRequest(requestId)).answered).toBe(true);

    // EV side again: open the bytes from the answer event.
    expect(openSealed(evKey.privateKey, getBytes(answer.getValue("sealedContact") as string))).toBe(contact);
    // Nobody else's key opens it.
    expect(() => openSealed(generateEncryptionKeyPair().privateKey, sealed)).toThrow(/authentication failed/);

    await expectRevert(fixture.registry(signer).answerOwnerContact(requestId, sealed), "ContactRequestAlreadyAnswered", [requestId]);
    await expectRevert(fixture.registry(cast.owner).answerOwnerContact(requestId, sealed), "ContactRequestAlreadyAnswered", [
      requestId,
    ]);
  });

  it("lets the owner answer too, numbers requests and refuses unknown ones", async () => {
    const { fixture, ev, owner } = cast;
    const cpId = cpIdOf(CP);
    const key = publicKeyToBytes32(generateEncryptionKeyPair().publicKey);
    await mined("first request", () => fixture.registry(ev).requestOwnerContact(cpId, key));
    const second = await mined("second request", () => fixture.registry(ev).requestOwnerContact(cpId, key));
    expect(eventArgs(second, fixture.registry(ev), "OwnerContactRequested").getValue("requestId")).toBe(2n);
    await mined("owner answers", () => fixture.registry(owner).answerOwnerContact(2n, getBytes("0x01")));
    expect((await fixture.registry(ev).contactRequest(1n)).answered).toBe(false);
    expect((await fixture.registry(ev).contactRequest(2n)).answered).toBe(true);
    await expectRevert(fixture.registry(owner).answerOwnerContact(3n, getBytes("0x01")), "UnknownContactRequest", [3n]);
    await expectRevert(fixture.registry(owner).answerOwnerContact(0n, getBytes("0x01")), "UnknownContactRequest", [0n]);
  });

  it("takes requests only from attested EVs for registered CPs", async () => {
    const { fixture, ev, stranger } = cast;
    const key = publicKeyToBytes32(generateEncryptionKeyPair().publicKey);
    await expectRevert(fixture.registry(stranger).requestOwnerContact(cpIdOf(CP), key), "NotAttested", [
      stranger.address, BigInt(Role.EV),
    ]);
    await expectRevert(fixture.registry(ev).requestOwnerContact(cpIdOf("NOT-THERE"), key), "UnknownChargePoint", [
      cpIdOf("NOT-THERE"),
    ]);
  });
});

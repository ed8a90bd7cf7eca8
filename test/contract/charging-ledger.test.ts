import { beforeEach, describe, expect, it } from "vitest";
import { concat, recoverAddress, Signature, toBeHex, ZeroAddress, type HDNodeWallet } from "ethers";
import { Role, SessionStatus } from "../../agent/chain/contracts.ts";
import { DEV_CHAIN_ID } from "../../agent/chain/dev-chain.ts";
import { attest, authorizeSession, mined, signAndSettle } from "../../agent/chain/operations.ts";
import { cpIdOf, ledgerDomain, sessionTotalDigest, signSessionTotal } from "../../agent/chain/session-total.ts";
import {
  advanceTime,
  deployLedgerFixture,
  latestTimestamp,
  PRICE_WEI_PER_KWH,
  rpc,
  type LedgerFixture,
} from "../helpers/chain.ts";
import {
  accountOf,
  accountsNamed,
  costOf,
  domainOf,
  eventArgs,
  expectRevert,
  gasCostOf,
  METER_START_WH,
  openSessionAt,
  requiredDepositOf,
  runSession,
  settleWithSignature,
  totalOf,
} from "../helpers/ledger-helpers.ts";

/** A price that makes energy × price / 1000 fractional, so the ceiling in the cost is visible. */
const ODD_PRICE_WEI_PER_KWH = 333_333_333_333_333n;
const AUTH_TIMEOUT_S = 600;
const SECP256K1_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const SETTLE_TIMEOUT_S = 172_800;

interface Cast {
  fixture: LedgerFixture;
  ev: HDNodeWallet;
  owner: HDNodeWallet;
  signer: HDNodeWallet;
  stranger: HDNodeWallet;
}

const CP = "CP-LEDGER-1";

/** Fresh contracts, one attested EV, one attested owner whose CP `CP` signs with a separate device key. */
async function castWith(pricePerKWh: bigint = PRICE_WEI_PER_KWH): Promise<Cast> {
  const fixture = await deployLedgerFixture();
  const cast = { fixture, ...accountsNamed(fixture, ["ev", "owner", "signer", "stranger"]) };
  await fixture.attestEv(cast.ev);
  await fixture.attestOwner(cast.owner);
  await fixture.registerCp(cast.owner, { chargePointId: CP, signer: cast.signer.address, pricePerKWh });
  return cast;
}

async function openAuthorized(cast: Cast, depositWei = 10n ** 16n): Promise<bigint> {
  const { sessionId } = await openSessionAt(cast.fixture.ledger(cast.ev), CP, 20_000, depositWei);
  await authorizeSession(cast.fixture.ledger(cast.signer), sessionId);
  return sessionId;
}

describe("ChargingLedger happy path", () => {
  it("pays the owner ceil(energy × price / 1000), refunds the rest and lets both withdraw exactly that", async () => {
    const cast = await castWith(ODD_PRICE_WEI_PER_KWH);
    const { fixture, ev, owner, signer, stranger } = cast;
    const { provider } = fixture;
    const ledgerAddress = fixture.deployment.ChargingLedger;
    const depositWei = 5_000_000_000_000_000n;
    const energyWh = 7_531n;
    const costWei = 2_510_333_333_333_331n; // ceil(7531 × 333333333333333 / 1000)
    const refundWei = 2_489_666_666_666_669n;
    expect(costOf(energyWh, ODD_PRICE_WEI_PER_KWH)).toBe(costWei);

    const evBefore = await provider.getBalance(ev.address);
    const opened = await openSessionAt(fixture.ledger(ev), CP, 10_000, depositWei);
    expect(opened.sessionId).toBe(1n);
    expect([...eventArgs(opened.receipt, fixture.ledger(ev), "SessionOpened")]).toEqual([
      1n, cpIdOf(CP), ev.address, depositWei, ODD_PRICE_WEI_PER_KWH, 10_000n,
    ]);
    expect(await provider.getBalance(ev.address)).toBe(evBefore - depositWei - gasCostOf(opened.receipt));
    expect(await provider.getBalance(ledgerAddress)).toBe(depositWei);

    const authorized = await authorizeSession(fixture.ledger(signer), opened.sessionId);
    expect([...eventArgs(authorized, fixture.ledger(signer), "SessionAuthorized")]).toEqual([1n, cpIdOf(CP)]);
    expect((await fixture.ledger(ev).session(1n)).status).toBe(SessionStatus.Authorized);

    // A stranger relays: the pile's signature, not the sender, is the authority.
    const receipt = await signAndSettle(fixture.ledger(stranger), signer, domainOf(fixture), totalOf(1n, CP, energyWh));
    expect([...eventArgs(receipt, fixture.ledger(stranger), "SessionSettled")]).toEqual([
      1n, cpIdOf(CP), ev.address, energyWh, costWei, refundWei, 1n, 1n,
    ]);

    const ledger = fixture.ledger(ev);
    expect(await ledger.withdrawable(owner.address)).toBe(costWei);
    expect(await ledger.withdrawable(ev.address)).toBe(refundWei);
    expect(await ledger.withdrawable(signer.address)).toBe(0n);
    expect(await ledger.withdrawable(stranger.address)).toBe(0n);
    expect(await ledger.credibility(ev.address)).toBe(1n);
    expect(await ledger.canCharge(ev.address)).toBe(true);
    expect(await ledger.debt(ev.address)).toBe(0n);
    const s = await ledger.session(1n);
    expect([s.status, s.heldDeposit, s.energyWh, s.evScore, s.recordNo, s.pricePerKWh]).toEqual([
      SessionStatus.Settled, 0n, energyWh, 1n, 1n, ODD_PRICE_WEI_PER_KWH,
    ]);
    expect([...(await ledger.counts())]).toEqual([1n, 1n, 0n, 1n]);

    const ownerBefore = await provider.getBalance(owner.address);
    const ownerWithdrawal = await mined("owner withdraws", () => fixture.ledger(owner).withdraw());
    expect([...eventArgs(ownerWithdrawal, ledger, "Withdrawn")]).toEqual([owner.address, costWei]);
    expect(await provider.getBalance(owner.address)).toBe(ownerBefore + costWei - gasCostOf(ownerWithdrawal));
    expect(await provider.getBalance(ledgerAddress)).toBe(refundWei);

    const evBeforeWithdrawal = await provider.getBalance(ev.address);
    const evWithdrawal = await mined("EV withdraws", () => fixture.ledger(ev).withdraw());
    expect(await provider.getBalance(ev.address)).toBe(evBeforeWithdrawal + refundWei - gasCostOf(evWithdrawal));
    expect(await provider.getBalance(ledgerAddress)).toBe(0n);
    expect(await ledger.withdrawable(owner.address)).toBe(0n);
    expect(await ledger.withdrawable(ev.address)).toBe(0n);
    await expectRevert(fixture.ledger(ev).withdraw(), "NothingToWithdraw", [ev.address]);
  });

  it("lets the CP owner authorize in place of the pile signer, and nobody else", async () => {
    const cast = await castWith();
    const { sessionId } = await openSessionAt(cast.fixture.ledger(cast.ev), CP, 1_000, 10n ** 15n);
    await expectRevert(cast.fixture.ledger(cast.stranger).authorize(sessionId), "NotAuthorizer", [sessionId, cast.stranger.address]);
    await expectRevert(cast.fixture.ledger(cast.ev).authorize(sessionId), "NotAuthorizer", [sessionId, cast.ev.address]);
    await authorizeSession(cast.fixture.ledger(cast.owner), sessionId);
    expect((await cast.fixture.ledger(cast.ev).session(sessionId)).status).toBe(SessionStatus.Authorized);
  });
});

describe("ChargingLedger settle rejections", () => {
  let cast: Cast;
  beforeEach(async () => {
    cast = await castWith();
  });

  it("rejects a total signed by a key other than the registered signer", async () => {
    const sessionId = await openAuthorized(cast);
    const total = totalOf(sessionId, CP, 1_000n);
    const forged = await signSessionTotal(cast.stranger, domainOf(cast.fixture), total);
    await expectRevert(settleWithSignature(cast.fixture.ledger(cast.ev), total, forged), "InvalidSignature", [
      sessionId, cast.stranger.address, cast.signer.address,
    ]);
    expect((await cast.fixture.ledger(cast.ev).session(sessionId)).status).toBe(SessionStatus.Authorized);
  });

  it("rejects a signature for session A replayed on session B", async () => {
    const sessionA = await openAuthorized(cast);
    const sessionB = await openAuthorized(cast);
    const domain = domainOf(cast.fixture);
    const signatureA = await signSessionTotal(cast.signer, domain, totalOf(sessionA, CP, 1_000n));
    const totalB = totalOf(sessionB, CP, 1_000n);
    const recovered = recoverAddress(sessionTotalDigest(domain, totalB), signatureA);
    expect(recovered).not.toBe(cast.signer.address);
    await expectRevert(settleWithSignature(cast.fixture.ledger(cast.ev), totalB, signatureA), "InvalidSignature", [
      sessionB, recovered, cast.signer.address,
    ]);
    // A's own signature still settles A.
    await settleWithSignature(cast.fixture.ledger(cast.ev), totalOf(sessionA, CP, 1_000n), signatureA);
  });

  it("rejects a signature made for another ledger contract's domain", async () => {
    const other = await deployLedgerFixture();
    expect(other.deployment.ChargingLedger).not.toBe(cast.fixture.deployment.ChargingLedger);
    const sessionId = await openAuthorized(cast);
    const total = totalOf(sessionId, CP, 1_000n);
    const foreign = await signSessionTotal(cast.signer, ledgerDomain(BigInt(DEV_CHAIN_ID), other.deployment.ChargingLedger), total);
    const recovered = recoverAddress(sessionTotalDigest(domainOf(cast.fixture), total), foreign);
    expect(recovered).not.toBe(cast.signer.address);
    await expectRevert(settleWithSignature(cast.fixture.ledger(cast.ev), total, foreign), "InvalidSignature", [
      sessionId, recovered, cast.signer.address,
    ]);
  });

  it("rejects a signature made for chain id 1", async () => {
    const sessionId = await openAuthorized(cast);
    const total = totalOf(sessionId, CP, 1_000n);
    const mainnet = await signSessionTotal(cast.signer, ledgerDomain(1n, cast.fixture.deployment.ChargingLedger), total);
    const recovered = recoverAddress(sessionTotalDigest(domainOf(cast.fixture), total), mainnet);
    expect(recovered).not.toBe(cast.signer.address);
    await expectRevert(settleWithSignature(cast.fixture.ledger(cast.ev), total, mainnet), "InvalidSignature", [
      sessionId, recovered, cast.signer.address,
    ]);
  });

  it("rejects a signature for the same session under another cpId, even from the same signer", async () => {
    await cast.fixture.registerCp(cast.owner, { chargePointId: "CP-LEDGER-2", signer: cast.signer.address });
    const sessionId = await openAuthorized(cast);
    const total = totalOf(sessionId, CP, 1_000n);
    const otherCp = await signSessionTotal(cast.signer, domainOf(cast.fixture), { ...total, cpId: cpIdOf("CP-LEDGER-2") });
    const recovered = recoverAddress(sessionTotalDigest(domainOf(cast.fixture), total), otherCp);
    expect(recovered).not.toBe(cast.signer.address);
    await expectRevert(settleWithSignature(cast.fixture.ledger(cast.ev), total, otherCp), "InvalidSignature", [
      sessionId, recovered, cast.signer.address,
    ]);
  });

  it("rejects a signature over other energy than the one submitted", async () => {
    const sessionId = await openAuthorized(cast);
    const signed = await signSessionTotal(cast.signer, domainOf(cast.fixture), totalOf(sessionId, CP, 1_000n));
    const inflated = totalOf(sessionId, CP, 9_000n);
    const recovered = recoverAddress(sessionTotalDigest(domainOf(cast.fixture), inflated), signed);
    await expectRevert(settleWithSignature(cast.fixture.ledger(cast.ev), inflated, signed), "InvalidSignature", [
      sessionId, recovered, cast.signer.address,
    ]);
  });

  it("rejects a malleated (high-s), a 64-byte compact and an empty signature as recovering no one", async () => {
    const sessionId = await openAuthorized(cast);
    const total = totalOf(sessionId, CP, 1_000n);
    const valid = Signature.from(await signSessionTotal(cast.signer, domainOf(cast.fixture), total));
    const highS = concat([valid.r, toBeHex(SECP256K1_ORDER - BigInt(valid.s), 32), valid.v === 27 ? "0x1c" : "0x1b"]);
    for (const signature of [highS, valid.compactSerialized, "0x"]) {
      await expectRevert(settleWithSignature(cast.fixture.ledger(cast.ev), total, signature), "InvalidSignature", [
        sessionId, ZeroAddress, cast.signer.address,
      ]);
    }
    await settleWithSignature(cast.fixture.ledger(cast.ev), total, valid.serialized);
  });

  it("rejects a second settle with AlreadySettled", async () => {
    const sessionId = await openAuthorized(cast);
    const total = totalOf(sessionId, CP, 1_000n);
    const signature = await signSessionTotal(cast.signer, domainOf(cast.fixture), total);
    await settleWithSignature(cast.fixture.ledger(cast.ev), total, signature);
    await expectRevert(settleWithSignature(cast.fixture.ledger(cast.stranger), total, signature), "AlreadySettled", [sessionId]);
    await expectRevert(
      signAndSettle(cast.fixture.ledger(cast.ev), cast.signer, domainOf(cast.fixture), totalOf(sessionId, CP, 5n)),
      "AlreadySettled",
      [sessionId],
    );
    expect(await cast.fixture.ledger(cast.ev).withdrawable(cast.owner.address)).toBe(costOf(1_000n, PRICE_WEI_PER_KWH));
  });

  it("rejects settling an opened session the pile never authorized", async () => {
    const { sessionId } = await openSessionAt(cast.fixture.ledger(cast.ev), CP, 1_000, 10n ** 15n);
    await expectRevert(
      signAndSettle(cast.fixture.ledger(cast.ev), cast.signer, domainOf(cast.fixture), totalOf(sessionId, CP, 100n)),
      "WrongSessionStatus",
      [sessionId, SessionStatus.Opened, SessionStatus.Authorized],
    );
  });

  it("rejects settling a session that does not exist", async () => {
    await expectRevert(
      signAndSettle(cast.fixture.ledger(cast.ev), cast.signer, domainOf(cast.fixture), totalOf(42n, CP, 100n)),
      "UnknownSession",
      [42n],
    );
  });

  it("accepts only evBehaviour 0 or -1", async () => {
    const sessionId = await openAuthorized(cast);
    for (const evBehaviour of [1, -2, 127, -128]) {
      await expectRevert(
        signAndSettle(cast.fixture.ledger(cast.ev), cast.signer, domainOf(cast.fixture), totalOf(sessionId, CP, 100n, evBehaviour)),
        "InvalidEvBehaviour",
        [BigInt(evBehaviour)],
      );
    }
  });

  it("rejects a meter that went backwards and a stop before the start", async () => {
    const sessionId = await openAuthorized(cast);
    const backwards = { ...totalOf(sessionId, CP, 0n), meterStopWh: METER_START_WH - 1n };
    await expectRevert(
      signAndSettle(cast.fixture.ledger(cast.ev), cast.signer, domainOf(cast.fixture), backwards),
      "MeterWentBackwards",
      [METER_START_WH, METER_START_WH - 1n],
    );
    const reversed = { ...totalOf(sessionId, CP, 10n), stoppedAt: 5n, startedAt: 6n };
    await expectRevert(
      signAndSettle(cast.fixture.ledger(cast.ev), cast.signer, domainOf(cast.fixture), reversed),
      "StopBeforeStart",
      [6n, 5n],
    );
  });
});

describe("ChargingLedger timeouts", () => {
  let cast: Cast;
  const depositWei = 4_000_000_000_000_000n;
  beforeEach(async () => {
    cast = await castWith();
  });

  it("lets the EV cancel an unauthorized session only after authTimeout, refunding the full deposit", async () => {
    const { fixture, ev, stranger } = cast;
    const { sessionId } = await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei);
    const { stampedAt } = await fixture.ledger(ev).session(sessionId);
    const allowedFrom = stampedAt + BigInt(AUTH_TIMEOUT_S) + 1n;
    await expectRevert(fixture.ledger(ev).cancel(sessionId), "TooEarly", [sessionId, allowedFrom]);

    await advanceTime(fixture.provider, AUTH_TIMEOUT_S + 1);
    await expectRevert(fixture.ledger(stranger).cancel(sessionId), "NotSessionEv", [sessionId, stranger.address]);
    const receipt = await mined("cancel", () => fixture.ledger(ev).cancel(sessionId));
    expect([...eventArgs(receipt, fixture.ledger(ev), "SessionCancelled")]).toEqual([sessionId, cpIdOf(CP), ev.address]);
    expect(await fixture.ledger(ev).withdrawable(ev.address)).toBe(depositWei);
    const s = await fixture.ledger(ev).session(sessionId);
    expect([s.status, s.heldDeposit, s.recordNo]).toEqual([SessionStatus.Cancelled, 0n, 0n]);
    expect(await fixture.provider.getBalance(fixture.deployment.ChargingLedger)).toBe(depositWei);
    await expectRevert(fixture.ledger(ev).cancel(sessionId), "WrongSessionStatus", [
      sessionId, SessionStatus.Cancelled, SessionStatus.Opened,
    ]);
    // Cancelling writes no charging record and does not touch credibility.
    expect([...(await fixture.ledger(ev).counts())]).toEqual([1n, 0n, 0n, 0n]);
    expect(await fixture.ledger(ev).credibility(ev.address)).toBe(0n);
  });

  it("puts the last authorize second and the first cancel second next to each other", async () => {
    const { fixture, ev, signer } = cast;
    const first = (await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei)).sessionId;
    const { stampedAt } = await fixture.ledger(ev).session(first);
    const deadline = stampedAt + BigInt(AUTH_TIMEOUT_S);
    await rpc(fixture.provider, "evm_setNextBlockTimestamp", [Number(deadline)]);
    await authorizeSession(fixture.ledger(signer), first);
    expect((await fixture.ledger(ev).session(first)).stampedAt).toBe(deadline);

    const late = (await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei)).sessionId;
    const lateStamp = (await fixture.ledger(ev).session(late)).stampedAt;
    await rpc(fixture.provider, "evm_setNextBlockTimestamp", [Number(lateStamp + BigInt(AUTH_TIMEOUT_S) + 1n)]);
    await expectRevert(fixture.ledger(signer).authorize(late), "AuthorizationWindowClosed", [late, lateStamp + BigInt(AUTH_TIMEOUT_S)]);
    await rpc(fixture.provider, "evm_mine");

    const second = (await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei)).sessionId;
    const secondStamp = (await fixture.ledger(ev).session(second)).stampedAt;
    await rpc(fixture.provider, "evm_setNextBlockTimestamp", [Number(secondStamp + BigInt(AUTH_TIMEOUT_S))]);
    await expectRevert(fixture.ledger(ev).cancel(second), "TooEarly", [second, secondStamp + BigInt(AUTH_TIMEOUT_S) + 1n]);
    await rpc(fixture.provider, "evm_mine");
    await rpc(fixture.provider, "evm_setNextBlockTimestamp", [Number(secondStamp + BigInt(AUTH_TIMEOUT_S) + 1n)]);
    await mined("cancel at the first allowed second", () => fixture.ledger(ev).cancel(second));
    expect((await fixture.ledger(ev).session(second)).status).toBe(SessionStatus.Cancelled);
  });

  it("closes the authorization window after authTimeout", async () => {
    const { fixture, ev, signer } = cast;
    const { sessionId } = await openSessionAt(fixture.ledger(ev), CP, 1_000, depositWei);
    const { stampedAt } = await fixture.ledger(ev).session(sessionId);
    await advanceTime(fixture.provider, AUTH_TIMEOUT_S + 1);
    await expectRevert(fixture.ledger(signer).authorize(sessionId), "AuthorizationWindowClosed", [
      sessionId, stampedAt + BigInt(AUTH_TIMEOUT_S),
    ]);
  });

  it("forbids cancelling once authorized, even after authTimeout", async () => {
    const { fixture, ev } = cast;
    const sessionId = await openAuthorized(cast, depositWei);
    await advanceTime(fixture.provider, AUTH_TIMEOUT_S + 1);
    await expectRevert(fixture.ledger(ev).cancel(sessionId), "WrongSessionStatus", [
      sessionId, SessionStatus.Authorized, SessionStatus.Opened,
    ]);
  });

  it("lets anyone expire an unsettled authorized session after settleTimeout, refunding the EV in full", async () => {
    const { fixture, ev, owner, signer, stranger } = cast;
    const sessionId = await openAuthorized(cast, depositWei);
    const { stampedAt } = await fixture.ledger(ev).session(sessionId);
    // The settle timeout runs from the authorization, not from the opening.
    const allowedFrom = stampedAt + BigInt(SETTLE_TIMEOUT_S) + 1n;
    await expectRevert(fixture.ledger(stranger).expire(sessionId), "TooEarly", [sessionId, allowedFrom]);

    await advanceTime(fixture.provider, SETTLE_TIMEOUT_S + 1);
    expect(await latestTimestamp(fixture.provider)).toBeGreaterThanOrEqual(allowedFrom);
    const receipt = await mined("expire", () => fixture.ledger(stranger).expire(sessionId));
    expect([...eventArgs(receipt, fixture.ledger(stranger), "SessionExpired")]).toEqual([sessionId, cpIdOf(CP), ev.address]);
    const s = await fixture.ledger(ev).session(sessionId);
    expect([s.status, s.heldDeposit]).toEqual([SessionStatus.Expired, 0n]);
    expect(s.status).toBe(5n);
    expect(await fixture.ledger(ev).withdrawable(ev.address)).toBe(depositWei);
    expect(await fixture.ledger(ev).withdrawable(stranger.address)).toBe(0n);
    expect(await fixture.ledger(ev).withdrawable(owner.address)).toBe(0n);

    await expectRevert(
      signAndSettle(fixture.ledger(ev), signer, domainOf(fixture), totalOf(sessionId, CP, 1_000n)),
      "WrongSessionStatus",
      [sessionId, SessionStatus.Expired, SessionStatus.Authorized],
    );
    await expectRevert(fixture.ledger(stranger).expire(sessionId), "WrongSessionStatus", [
      sessionId, SessionStatus.Expired, SessionStatus.Authorized,
    ]);
  });

  it("still settles an authorized session after settleTimeout if nobody expired it", async () => {
    const { fixture, ev, signer } = cast;
    const sessionId = await openAuthorized(cast, depositWei);
    await advanceTime(fixture.provider, SETTLE_TIMEOUT_S + 1);
    await signAndSettle(fixture.ledger(ev), signer, domainOf(fixture), totalOf(sessionId, CP, 1_000n));
    expect((await fixture.ledger(ev).session(sessionId)).status).toBe(SessionStatus.Settled);
    await expectRevert(fixture.ledger(ev).expire(sessionId), "WrongSessionStatus", [
      sessionId, SessionStatus.Settled, SessionStatus.Authorized,
    ]);
  });
});

describe("ChargingLedger debt", () => {
  it("turns a cost above the deposit into debt that blocks charging until paid in full", async () => {
    const cast = await castWith();
    const { fixture, ev, owner, signer } = cast;
    const ledger = fixture.ledger(ev);
    const depositWei = 1_000_000_000_000_000n;
    const energyWh = 10_000n;
    const costWei = 3_000_000_000_000_000n; // 10 kWh × 3e14 wei/kWh
    expect(costOf(energyWh, PRICE_WEI_PER_KWH)).toBe(costWei);
    const debtWei = costWei - depositWei;

    const { settled, receipt } = await runSession(fixture, { ev, signer, chargePointId: CP, depositWei, energyWh });
    expect([...settled]).toEqual([1n, cpIdOf(CP), ev.address, energyWh, costWei, 0n, 0n, 1n]);
    expect([...eventArgs(receipt, ledger, "DebtIncurred")]).toEqual([ev.address, owner.address, debtWei]);
    expect(await ledger.withdrawable(owner.address)).toBe(depositWei);
    expect(await ledger.withdrawable(ev.address)).toBe(0n);
    expect(await ledger.debt(ev.address)).toBe(debtWei);
    expect(await ledger.credibility(ev.address)).toBe(0n);
    expect(await ledger.canCharge(ev.address)).toBe(false);
    await expectRevert(ledger.openSession(cpIdOf(CP), 1_000, { value: 10n ** 18n }), "OutstandingDebt", [ev.address, debtWei]);

    await expectRevert(ledger.payDebt({ value: debtWei + 1n }), "PaymentExceedsDebt", [debtWei + 1n, debtWei]);
    await expectRevert(ledger.payDebt({ value: 0n }), "ZeroPayment", []);

    const firstPayment = 500_000_000_000_000n;
    const evBefore = await fixture.provider.getBalance(ev.address);
    const paid = await mined("pay part of the debt", () => ledger.payDebt({ value: firstPayment }));
    expect(await fixture.provider.getBalance(ev.address)).toBe(evBefore - firstPayment - gasCostOf(paid));
    expect([...eventArgs(paid, ledger, "DebtPaid")]).toEqual([ev.address, owner.address, firstPayment]);
    expect(await ledger.debt(ev.address)).toBe(debtWei - firstPayment);
    expect(await ledger.canCharge(ev.address)).toBe(false);
    expect(await ledger.withdrawable(owner.address)).toBe(depositWei + firstPayment);
    await expectRevert(ledger.openSession(cpIdOf(CP), 1_000, { value: 10n ** 18n }), "OutstandingDebt", [
      ev.address, debtWei - firstPayment,
    ]);

    const rest = debtWei - firstPayment;
    await mined("pay the rest of the debt", () => ledger.payDebt({ value: rest }));
    expect(await ledger.debt(ev.address)).toBe(0n);
    expect(await ledger.canCharge(ev.address)).toBe(true);
    expect(await ledger.withdrawable(owner.address)).toBe(depositWei + firstPayment + rest);
    expect(await ledger.withdrawable(owner.address)).toBe(costWei);
    expect(await fixture.provider.getBalance(fixture.deployment.ChargingLedger)).toBe(costWei);
    await expectRevert(ledger.payDebt({ value: 1n }), "NoDebt", [ev.address]);

    const reopened = await openSessionAt(ledger, CP, 1_000, 10n ** 15n);
    expect(reopened.sessionId).toBe(2n);
  });

  it("pays debts oldest first across owners", async () => {
    const cast = await castWith();
    const { fixture, ev, owner, signer } = cast;
    const ownerB = accountOf(fixture, 5);
    const signerB = accountOf(fixture, 6);
    await fixture.attestOwner(ownerB);
    await fixture.registerCp(ownerB, { chargePointId: "CP-LEDGER-B", signer: signerB.address });
    const ledger = fixture.ledger(ev);
    const depositWei = 10n ** 15n;
    // Both sessions are open before either settles: once in debt, the EV could not open the second.
    const a = await openSessionAt(ledger, CP, 1_000, depositWei);
    const b = await openSessionAt(ledger, "CP-LEDGER-B", 1_000, depositWei);
    await authorizeSession(fixture.ledger(signer), a.sessionId);
    await authorizeSession(fixture.ledger(signerB), b.sessionId);
    await signAndSettle(ledger, signer, domainOf(fixture), totalOf(a.sessionId, CP, 5_000n)); // cost 1.5e15, debt 5e14
    await signAndSettle(ledger, signerB, domainOf(fixture), totalOf(b.sessionId, "CP-LEDGER-B", 10_000n)); // cost 3e15, debt 2e15
    expect(await ledger.debt(ev.address)).toBe(2_500_000_000_000_000n);

    const receipt = await mined("pay 1e15", () => ledger.payDebt({ value: 10n ** 15n }));
    const paidEvents = receipt.logs
      .map((log) => ledger.interface.parseLog(log))
      .filter((parsed) => parsed?.name === "DebtPaid")
      .map((parsed) => [...(parsed?.args ?? [])]);
    expect(paidEvents).toEqual([
      [ev.address, owner.address, 500_000_000_000_000n],
      [ev.address, ownerB.address, 500_000_000_000_000n],
    ]);
    expect(await ledger.withdrawable(owner.address)).toBe(1_500_000_000_000_000n);
    expect(await ledger.withdrawable(ownerB.address)).toBe(1_500_000_000_000_000n);
    expect(await ledger.debt(ev.address)).toBe(1_500_000_000_000_000n);
    expect(await ledger.canCharge(ev.address)).toBe(false);

    await mined("pay the rest", () => ledger.payDebt({ value: 1_500_000_000_000_000n }));
    expect(await ledger.withdrawable(ownerB.address)).toBe(3_000_000_000_000_000n);
    expect(await ledger.canCharge(ev.address)).toBe(true);
  });
});

describe("ChargingLedger credibility", () => {
  it("sums B_vi into R_v and, below zero, asks for a deposit of twice the requested energy", async () => {
    const cast = await castWith(ODD_PRICE_WEI_PER_KWH);
    const { fixture, ev, signer } = cast;
    const ledger = fixture.ledger(ev);
    const depositWei = 10n ** 16n;
    const steps: { energyWh: bigint; evBehaviour: number; score: bigint; credibility: bigint }[] = [
      { energyWh: 5_000n, evBehaviour: 0, score: 1n, credibility: 1n },
      { energyWh: 0n, evBehaviour: 0, score: 0n, credibility: 1n },
      { energyWh: 3_000n, evBehaviour: -1, score: -1n, credibility: 0n },
      { energyWh: 2_000n, evBehaviour: -1, score: -1n, credibility: -1n },
    ];
    for (const [index, step] of steps.entries()) {
      const { settled } = await runSession(fixture, { ev, signer, chargePointId: CP, depositWei, ...step });
      const costWei = costOf(step.energyWh, ODD_PRICE_WEI_PER_KWH);
      expect([...settled]).toEqual([
        BigInt(index + 1), cpIdOf(CP), ev.address, step.energyWh, costWei, depositWei - costWei, step.score, BigInt(index + 1),
      ]);
      expect(await ledger.credibility(ev.address)).toBe(step.credibility);
    }
    // A reported violation is still paid for in full.
    expect(await ledger.withdrawable(cast.owner.address)).toBe(1_666_666_666_666_665n + 999_999_999_999_999n + 666_666_666_666_666n);
    expect(await ledger.canCharge(ev.address)).toBe(true);

    const maxEnergyWh = 12_345n;
    const requiredWei = 8_229_999_999_999_992n; // ceil(2 × 12345 × 333333333333333 / 1000)
    expect(requiredDepositOf(maxEnergyWh, ODD_PRICE_WEI_PER_KWH)).toBe(requiredWei);
    await expectRevert(ledger.openSession(cpIdOf(CP), maxEnergyWh, { value: requiredWei - 1n }), "DepositBelowRequired", [
      requiredWei - 1n, requiredWei,
    ]);
    await expectRevert(ledger.openSession(cpIdOf(CP), maxEnergyWh, { value: 1n }), "DepositBelowRequired", [1n, requiredWei]);

    const { settled } = await runSession(fixture, {
      ev, signer, chargePointId: CP, depositWei: requiredWei, maxEnergyWh: Number(maxEnergyWh), energyWh: maxEnergyWh,
    });
    expect(settled.getValue("cost")).toBe(4_114_999_999_999_996n);
    expect(settled.getValue("refund")).toBe(requiredWei - 4_114_999_999_999_996n);
    expect(settled.getValue("evScore")).toBe(1n);
    expect(await ledger.credibility(ev.address)).toBe(0n);

    // Back at R_v = 0 the deposit rule no longer applies.
    const small = await openSessionAt(ledger, CP, Number(maxEnergyWh), 1n);
    expect((await ledger.session(small.sessionId)).heldDeposit).toBe(1n);
  });
});

describe("ChargingLedger attestation", () => {
  it("refuses an EV that was never attested", async () => {
    const cast = await castWith();
    const ledger = cast.fixture.ledger(cast.stranger);
    expect(await ledger.canCharge(cast.stranger.address)).toBe(false);
    await expectRevert(ledger.openSession(cpIdOf(CP), 1_000, { value: 10n ** 15n }), "NotAttestedEv", [cast.stranger.address]);
  });

  it("refuses an EV whose attestation lies in the past or has run out", async () => {
    const cast = await castWith();
    const { fixture, stranger } = cast;
    const authorityRegistry = fixture.registry(fixture.authority);
    const ledger = fixture.ledger(stranger);

    await attest(authorityRegistry, stranger.address, Role.EV, (await latestTimestamp(fixture.provider)) - 1n);
    expect(await ledger.canCharge(stranger.address)).toBe(false);
    await expectRevert(ledger.openSession(cpIdOf(CP), 1_000, { value: 10n ** 15n }), "NotAttestedEv", [stranger.address]);

    await attest(authorityRegistry, stranger.address, Role.EV, (await latestTimestamp(fixture.provider)) + 60n);
    expect(await ledger.canCharge(stranger.address)).toBe(true);
    await advanceTime(fixture.provider, 61);
    expect(await ledger.canCharge(stranger.address)).toBe(false);
    await expectRevert(ledger.openSession(cpIdOf(CP), 1_000, { value: 10n ** 15n }), "NotAttestedEv", [stranger.address]);

    // An owner attestation is not an EV attestation.
    await cast.fixture.attestOwner(stranger);
    expect(await ledger.canCharge(stranger.address)).toBe(false);
  });

  it("checks the CP, the energy and the deposit before opening", async () => {
    const cast = await castWith();
    const ledger = cast.fixture.ledger(cast.ev);
    await expectRevert(ledger.openSession(cpIdOf("NO-SUCH-CP"), 1_000, { value: 1n }), "UnknownChargePoint", [cpIdOf("NO-SUCH-CP")]);
    await expectRevert(ledger.openSession(cpIdOf(CP), 0, { value: 1n }), "ZeroMaxEnergy", []);
    await expectRevert(ledger.openSession(cpIdOf(CP), 1_000, { value: 0n }), "ZeroDeposit", []);

    // Deposits live in 88 bits of the EV's account slot; a richer EV is refused rather than truncated.
    const whale = accountOf(cast.fixture, 19);
    await cast.fixture.attestEv(whale);
    await rpc(cast.fixture.provider, "anvil_setBalance", [whale.address, toBeHex(2n ** 90n)]);
    const maxDeposit = 2n ** 88n - 1n;
    await expectRevert(cast.fixture.ledger(whale).openSession(cpIdOf(CP), 1_000, { value: maxDeposit + 1n }), "DepositTooLarge", [
      maxDeposit + 1n, maxDeposit,
    ]);
    const opened = await openSessionAt(cast.fixture.ledger(whale), CP, 1_000, maxDeposit);
    expect((await ledger.session(opened.sessionId)).heldDeposit).toBe(maxDeposit);
    await rpc(cast.fixture.provider, "anvil_setBalance", [whale.address, toBeHex(10n ** 22n)]);
  });
});

describe("ChargingLedger record pointers", () => {
  it("links each charging record to the CP's and the EV's previous records", async () => {
    const fixture = await deployLedgerFixture();
    const [x, y, ownerA, signerA, ownerB, signerB] = [1, 2, 3, 4, 5, 6].map((i) => accountOf(fixture, i)) as [
      HDNodeWallet, HDNodeWallet, HDNodeWallet, HDNodeWallet, HDNodeWallet, HDNodeWallet,
    ];
    const priceA = PRICE_WEI_PER_KWH;
    const priceB = ODD_PRICE_WEI_PER_KWH;
    await fixture.attestEv(x);
    await fixture.attestEv(y);
    await fixture.attestOwner(ownerA);
    await fixture.attestOwner(ownerB);
    await fixture.registerCp(ownerA, { chargePointId: "CP-A", signer: signerA.address, pricePerKWh: priceA });
    await fixture.registerCp(ownerB, { chargePointId: "CP-B", signer: signerB.address, pricePerKWh: priceB });

    const plan = [
      { ev: x, cp: "CP-A", signer: signerA, price: priceA, energyWh: 1_111n, evBehaviour: 0, score: 1n },
      { ev: y, cp: "CP-A", signer: signerA, price: priceA, energyWh: 2_222n, evBehaviour: -1, score: -1n },
      { ev: x, cp: "CP-B", signer: signerB, price: priceB, energyWh: 3_333n, evBehaviour: 0, score: 1n },
      { ev: y, cp: "CP-B", signer: signerB, price: priceB, energyWh: 0n, evBehaviour: 0, score: 0n },
      { ev: x, cp: "CP-A", signer: signerA, price: priceA, energyWh: 5_555n, evBehaviour: 0, score: 1n },
    ];
    // Open and authorize all five interleaved, then settle in plan order.
    const sessionIds: bigint[] = [];
    for (const step of plan) {
      const { sessionId } = await openSessionAt(fixture.ledger(step.ev), step.cp, 10_000, 10n ** 16n);
      sessionIds.push(sessionId);
    }
    for (const [i, step] of plan.entries()) await authorizeSession(fixture.ledger(step.signer), sessionIds[i] ?? 0n);
    for (const [i, step] of plan.entries()) {
      const total = totalOf(sessionIds[i] ?? 0n, step.cp, step.energyWh, step.evBehaviour);
      await signAndSettle(fixture.ledger(ownerA), step.signer, domainOf(fixture), total);
    }

    const ledger = fixture.ledger(x);
    const prevOfCp = [0n, 1n, 0n, 3n, 2n];
    const prevOfEv = [0n, 0n, 1n, 2n, 3n];
    for (const [i, step] of plan.entries()) {
      const recordNo = BigInt(i + 1);
      expect([...(await ledger.chargingRecord(recordNo))], `record ${recordNo}`).toEqual([
        recordNo, recordNo, BigInt(i + 1), cpIdOf(step.cp), step.ev.address, step.energyWh, costOf(step.energyWh, step.price),
        step.score, prevOfCp[i], prevOfEv[i],
      ]);
      expect((await ledger.session(recordNo)).recordNo).toBe(recordNo);
    }
    expect([...(await ledger.cpHead(cpIdOf("CP-A")))]).toEqual([5n, 0n]);
    expect([...(await ledger.cpHead(cpIdOf("CP-B")))]).toEqual([4n, 0n]);
    expect([...(await ledger.evHead(x.address))]).toEqual([5n, 0n]);
    expect([...(await ledger.evHead(y.address))]).toEqual([4n, 0n]);
    expect([...(await ledger.evHead(ownerA.address))]).toEqual([0n, 0n]);
    expect([...(await ledger.counts())]).toEqual([5n, 5n, 0n, 5n]);
    expect(await ledger.credibility(x.address)).toBe(3n);
    expect(await ledger.credibility(y.address)).toBe(-1n);
    expect(await ledger.withdrawable(ownerA.address)).toBe(costOf(1_111n, priceA) + costOf(2_222n, priceA) + costOf(5_555n, priceA));
    expect(await ledger.withdrawable(ownerB.address)).toBe(costOf(3_333n, priceB));

    await expectRevert(ledger.chargingRecord(0n), "UnknownRecord", [0n, 5n]);
    await expectRevert(ledger.chargingRecord(6n), "UnknownRecord", [6n, 5n]);
  });

  it("numbers records in settlement order, not opening order", async () => {
    const cast = await castWith();
    const { fixture, ev, signer } = cast;
    const ledger = fixture.ledger(ev);
    const s1 = (await openSessionAt(ledger, CP, 1_000, 10n ** 15n)).sessionId;
    const s2 = (await openSessionAt(ledger, CP, 1_000, 10n ** 15n)).sessionId;
    await authorizeSession(fixture.ledger(signer), s1);
    await authorizeSession(fixture.ledger(signer), s2);
    await expectRevert(ledger.chargingRecord(1n), "UnknownRecord", [1n, 0n]);

    const second = await signAndSettle(ledger, signer, domainOf(fixture), totalOf(s2, CP, 200n));
    expect(eventArgs(second, ledger, "SessionSettled").getValue("recordNo")).toBe(1n);
    const first = await signAndSettle(ledger, signer, domainOf(fixture), totalOf(s1, CP, 100n));
    expect(eventArgs(first, ledger, "SessionSettled").getValue("recordNo")).toBe(2n);

    const record1 = await ledger.chargingRecord(1n);
    const record2 = await ledger.chargingRecord(2n);
    expect([record1.sessionId, record1.energyWh, record1.prevOfCp, record1.prevOfEv]).toEqual([s2, 200n, 0n, 0n]);
    expect([record2.sessionId, record2.energyWh, record2.prevOfCp, record2.prevOfEv]).toEqual([s1, 100n, 1n, 1n]);
    expect((await ledger.session(s1)).recordNo).toBe(2n);
    expect((await ledger.session(s2)).recordNo).toBe(1n);
    expect([...(await ledger.cpHead(cpIdOf(CP)))]).toEqual([2n, 0n]);
    expect([...(await ledger.evHead(ev.address))]).toEqual([2n, 0n]);
    await expectRevert(ledger.chargingRecord(0n), "UnknownRecord", [0n, 2n]);
    await expectRevert(ledger.chargingRecord(3n), "UnknownRecord", [3n, 2n]);
  });
});

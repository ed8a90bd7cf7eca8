/**
 * docs/SECURITY.md threats 3 and 6: what a stolen device key (or an owner abusing it) can and cannot do on chain,
 * measured in wei on a real anvil. The key signs SessionTotal for its own charge point only; what it signs moves at
 * most the session's deposit to the owner (never to the key); the excess of an inflated total becomes EV debt (the
 * residual risk the document states); after `setSigner` its totals are refused.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { HDNodeWallet } from "ethers";
import { SessionStatus } from "../../agent/chain/contracts.ts";
import { authorizeSession, mined, signAndSettle } from "../../agent/chain/operations.ts";
import { cpIdOf, signSessionTotal, type SessionTotal } from "../../agent/chain/session-total.ts";
import { deployLedgerFixture, PRICE_WEI_PER_KWH, type LedgerFixture } from "../helpers/chain.ts";
import { accountsNamed, costOf, domainOf, eventArgs, expectRevert, openSessionAt, settleWithSignature, totalOf } from "../helpers/ledger-helpers.ts";

const CP_A = "cp-stolen-key-a";
const CP_B = "cp-stolen-key-b";
const MAX_ENERGY_WH = 2_000;
// Covers 2,000 Wh at 0.0003 ether/kWh: 600,000,000,000,000 wei.
const DEPOSIT_WEI = costOf(BigInt(MAX_ENERGY_WH), PRICE_WEI_PER_KWH);

interface Cast {
  fixture: LedgerFixture;
  owner: HDNodeWallet;
  /** CP A's device key, in the thief's hands. */
  stolenKey: HDNodeWallet;
  signerB: HDNodeWallet;
  ev: HDNodeWallet;
  replacementKey: HDNodeWallet;
}

let cast: Cast;

/**
 * Signs `total` with the stolen key and expects the ledger to refuse it because `registeredSigner` is the key the
 * Registry holds for that charge point.
 */
async function expectStolenKeyTotalRefused(total: SessionTotal, registeredSigner: string): Promise<void> {
  const { fixture, stolenKey } = cast;
  const signature = await signSessionTotal(stolenKey, domainOf(fixture), total);
  await expectRevert(settleWithSignature(fixture.ledger(stolenKey), total, signature), "InvalidSignature", [total.sessionId, stolenKey.address, registeredSigner]);
}

beforeEach(async () => {
  const fixture = await deployLedgerFixture();
  cast = { fixture, ...accountsNamed(fixture, ["owner", "stolenKey", "signerB", "ev", "replacementKey"]) };
  await fixture.attestOwner(cast.owner);
  await fixture.attestEv(cast.ev);
  await fixture.registerCp(cast.owner, { chargePointId: CP_A, signer: cast.stolenKey.address });
  await fixture.registerCp(cast.owner, { chargePointId: CP_B, signer: cast.signerB.address });
});

describe("a stolen device key", () => {
  it("cannot authorize or settle a session at another charge point", async () => {
    const { fixture, stolenKey, signerB, ev } = cast;
    const { sessionId } = await openSessionAt(fixture.ledger(ev), CP_B, MAX_ENERGY_WH, DEPOSIT_WEI);
    await expectRevert(fixture.ledger(stolenKey).authorize(sessionId), "NotAuthorizer", [sessionId, stolenKey.address]);
    await authorizeSession(fixture.ledger(signerB), sessionId);

    // Signed with the stolen key, naming CP B's own cpId: the ledger checks CP B's registered signer.
    await expectStolenKeyTotalRefused(totalOf(sessionId, CP_B, 1_500n), signerB.address);
    expect((await fixture.ledger(ev).session(sessionId)).status).toBe(SessionStatus.Authorized);
  });

  it("moves at most the deposit, to the owner and never to itself; the inflated rest becomes EV debt (residual risk)", async () => {
    const { fixture, owner, stolenKey, ev } = cast;
    const { sessionId } = await openSessionAt(fixture.ledger(ev), CP_A, MAX_ENERGY_WH, DEPOSIT_WEI);
    await authorizeSession(fixture.ledger(stolenKey), sessionId);
    // Ten times the EV's maxEnergyWh: maxEnergyWh stops the agent, it is not a settle check (DESIGN §4.2).
    const inflatedWh = 10n * BigInt(MAX_ENERGY_WH);
    const receipt = await signAndSettle(fixture.ledger(stolenKey), stolenKey, domainOf(fixture), totalOf(sessionId, CP_A, inflatedWh));

    const costWei = costOf(inflatedWh, PRICE_WEI_PER_KWH);
    expect(costWei).toBe(6_000_000_000_000_000n);
    const settled = eventArgs(receipt, fixture.ledger(ev), "SessionSettled");
    expect(settled.getValue("energyWh")).toBe(inflatedWh);
    expect(settled.getValue("cost")).toBe(costWei);
    expect(settled.getValue("refund")).toBe(0n);
    // A shortfall scores 0 (not a violation): the EV's credibility is not hurt by the forged total.
    expect(settled.getValue("evScore")).toBe(0n);
    const ledger = fixture.ledger(ev);
    expect(await ledger.withdrawable(owner.address)).toBe(DEPOSIT_WEI);
    expect(await ledger.withdrawable(stolenKey.address)).toBe(0n);
    expect(await ledger.withdrawable(ev.address)).toBe(0n);
    expect(await ledger.debt(ev.address)).toBe(costWei - DEPOSIT_WEI);
    expect(await ledger.canCharge(ev.address)).toBe(false);
    expect(await ledger.credibility(ev.address)).toBe(0n);
  });

  it("is refused once the owner rotates the signer with setSigner, and the new key settles the same session", async () => {
    const { fixture, owner, stolenKey, replacementKey, ev } = cast;
    const { sessionId } = await openSessionAt(fixture.ledger(ev), CP_A, MAX_ENERGY_WH, DEPOSIT_WEI);
    await authorizeSession(fixture.ledger(stolenKey), sessionId);
    await mined("setSigner", () => fixture.registry(owner).setSigner(cpIdOf(CP_A), replacementKey.address));

    const total = totalOf(sessionId, CP_A, 1_200n);
    await expectStolenKeyTotalRefused(total, replacementKey.address);
    const { sessionId: next } = await openSessionAt(fixture.ledger(ev), CP_A, MAX_ENERGY_WH, DEPOSIT_WEI);
    await expectRevert(fixture.ledger(stolenKey).authorize(next), "NotAuthorizer", [next, stolenKey.address]);

    const receipt = await signAndSettle(fixture.ledger(ev), replacementKey, domainOf(fixture), total);
    expect(eventArgs(receipt, fixture.ledger(ev), "SessionSettled").getValue("cost")).toBe(costOf(1_200n, PRICE_WEI_PER_KWH));
    expect(await fixture.ledger(ev).withdrawable(owner.address)).toBe(360_000_000_000_000n);
    expect(await fixture.ledger(ev).withdrawable(ev.address)).toBe(DEPOSIT_WEI - 360_000_000_000_000n);
  });
});

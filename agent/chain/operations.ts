/**
 * The chain operations the CLI, the simulator and the benchmarks share: each sends one transaction, waits for it
 * to be mined, and turns a revert into a RuntimeError that names the contract error.
 */
import type { ContractTransactionReceipt, ContractTransactionResponse, Signer, TypedDataDomain } from "ethers";
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import type { EvaluationsContract } from "../../contracts/artifacts/Evaluations.ts";
import type { PricingAuctionContract } from "../../contracts/artifacts/PricingAuction.ts";
import type { RegistryContract } from "../../contracts/artifacts/Registry.ts";
import { RuntimeError } from "../errors.ts";
import { CpKind, SessionStatus, type CpKindName } from "./contracts.ts";
import { costOf } from "./cost.ts";
import { decodeRevert, describeRevert } from "./revert.ts";
import { cpIdOf, signSessionTotal, type SessionTotal } from "./session-total.ts";

export async function mined(
  action: string,
  send: () => Promise<ContractTransactionResponse>,
): Promise<ContractTransactionReceipt> {
  let receipt: ContractTransactionReceipt | null;
  try {
    const tx = await send();
    receipt = await tx.wait();
  } catch (error) {
    throw new RuntimeError(`${action} was rejected: ${describeRevert(error)}`, { cause: error });
  }
  if (!receipt) throw new RuntimeError(`${action}: the transaction was dropped before it was mined`);
  return receipt;
}

export interface ChargePointRegistration {
  chargePointId: string;
  kind: CpKindName;
  areaId: bigint;
  signer: string;
  pricePerKWh: bigint;
  maxPowerW: number;
  ownerContactSealed: Uint8Array;
}

export function registerChargePoint(
  registry: RegistryContract,
  registration: ChargePointRegistration,
): Promise<ContractTransactionReceipt> {
  return mined(`registering charge point ${registration.chargePointId}`, () =>
    registry.registerChargePoint(
      cpIdOf(registration.chargePointId),
      CpKind[registration.kind],
      registration.areaId,
      registration.signer,
      registration.pricePerKWh,
      registration.maxPowerW,
      registration.ownerContactSealed,
    ),
  );
}

export function attest(
  registry: RegistryContract,
  who: string,
  role: number,
  validUntil: bigint,
): Promise<ContractTransactionReceipt> {
  return mined(`attesting ${who} for role ${role}`, () => registry.attest(who, role, validUntil));
}

export interface OpenedSession {
  sessionId: bigint;
  receipt: ContractTransactionReceipt;
}

export async function openSession(
  ledger: ChargingLedgerContract,
  cpId: string,
  maxEnergyWh: number,
  depositWei: bigint,
): Promise<OpenedSession> {
  const receipt = await mined(`opening a session at cpId ${cpId}`, () =>
    ledger.openSession(cpId, maxEnergyWh, { value: depositWei }),
  );
  for (const log of receipt.logs) {
    const parsed = ledger.interface.parseLog(log);
    if (parsed?.name === "SessionOpened") return { sessionId: parsed.args[0] as bigint, receipt };
  }
  throw new RuntimeError(`opening a session at cpId ${cpId}: no SessionOpened event in the receipt`);
}

export function authorizeSession(ledger: ChargingLedgerContract, sessionId: bigint): Promise<ContractTransactionReceipt> {
  return mined(`authorizing session ${sessionId}`, () => ledger.authorize(sessionId));
}

export async function signAndSettle(
  ledger: ChargingLedgerContract,
  pileSigner: Signer,
  domain: TypedDataDomain,
  total: SessionTotal,
): Promise<ContractTransactionReceipt> {
  const signature = await signSessionTotal(pileSigner, domain, total);
  return mined(`settling session ${total.sessionId}`, () =>
    ledger.settle(
      total.sessionId,
      total.meterStartWh,
      total.meterStopWh,
      total.startedAt,
      total.stoppedAt,
      total.evBehaviour,
      signature,
    ),
  );
}

// ================================================================ credibility gating (DESIGN §4.2)

/** What the ledger will say to an EV's `openSession`, read before sending it. */
export interface OpenGate {
  /** R_v = Σ B_vi (eq. 1). */
  credibility: bigint;
  /** Unpaid debt in wei; while it is above 0, `canCharge` is false and `openSession` reverts `OutstandingDebt`. */
  debtWei: bigint;
  canCharge: boolean;
  /** The least deposit `openSession` accepts: 2 × maxEnergyWh × price / 1000 (ceil) while R_v < 0, else 1 wei. */
  requiredDepositWei: bigint;
}

/** The deposit an EV with R_v < 0 must bring: the cost of twice the energy it asks for (ChargingLedger.openSession). */
export function doubledDepositOf(maxEnergyWh: bigint, priceWeiPerKWh: bigint): bigint {
  return costOf(2n * maxEnergyWh, priceWeiPerKWh);
}

export async function openGate(
  ledger: ChargingLedgerContract,
  ev: string,
  maxEnergyWh: number,
  priceWeiPerKWh: bigint,
): Promise<OpenGate> {
  const [credibility, debtWei, canCharge] = await Promise.all([ledger.credibility(ev), ledger.debt(ev), ledger.canCharge(ev)]);
  const requiredDepositWei = credibility < 0n ? doubledDepositOf(BigInt(maxEnergyWh), priceWeiPerKWh) : 1n;
  return { credibility, debtWei, canCharge, requiredDepositWei };
}

// ================================================================ debts

export interface DebtPayment {
  paidWei: bigint;
  remainingWei: bigint;
  receipt: ContractTransactionReceipt;
}

/** Pays `amountWei` of the signer's debt (oldest first, to the owners it is owed to). */
export async function payDebt(ledger: ChargingLedgerContract, ev: string, amountWei: bigint): Promise<DebtPayment> {
  const receipt = await mined(`paying ${amountWei} wei of debt`, () => ledger.payDebt({ value: amountWei }));
  return { paidWei: amountWei, remainingWei: await ledger.debt(ev, { blockTag: receipt.blockNumber }), receipt };
}

// ================================================================ evaluations (DESIGN §4.3)

export interface Rating {
  evaluationNo: bigint;
  cpId: string;
  chargingRecordNo: bigint;
  score: number;
  /** R_cp before and after, SD59x18 (1e18 = 1.0). */
  reputationBefore: bigint;
  reputationAfter: bigint;
  receipt: ContractTransactionReceipt;
}

/**
 * The session's EV rates its charge point (W in 1..3). A refusal becomes a RuntimeError whose message says in one
 * sentence why (not settled, another EV's session, rated already), with the decoded contract error in parentheses.
 */
export async function rateSession(evaluations: EvaluationsContract, sessionId: bigint, score: number): Promise<Rating> {
  let receipt: ContractTransactionReceipt;
  try {
    receipt = await mined(`rating session ${sessionId}`, () => evaluations.rate(sessionId, score));
  } catch (error) {
    const reason = explainRatingRefusal(sessionId, error);
    if (reason) throw new RuntimeError(reason, { cause: error });
    throw error;
  }
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== String(evaluations.target).toLowerCase()) continue;
    const parsed = evaluations.interface.parseLog(log);
    if (parsed?.name !== "Evaluated") continue;
    return {
      evaluationNo: parsed.args.getValue("evaluationNo") as bigint,
      cpId: parsed.args.getValue("cpId") as string,
      chargingRecordNo: parsed.args.getValue("chargingRecordNo") as bigint,
      score: Number(parsed.args.getValue("score") as bigint),
      reputationBefore: parsed.args.getValue("reputationBefore") as bigint,
      reputationAfter: parsed.args.getValue("reputationAfter") as bigint,
      receipt,
    };
  }
  throw new RuntimeError(`rating session ${sessionId}: no Evaluated event in the receipt`);
}

const STATUS_NAMES = new Map<bigint, string>(
  Object.entries(SessionStatus).map(([name, value]) => [value, name.toLowerCase()]),
);

/** One sentence for each way `Evaluations.rate` refuses, or undefined for anything else. */
export function explainRatingRefusal(sessionId: bigint, error: unknown): string | undefined {
  const decoded = decodeRevert(error) ?? decodeRevert((error as { cause?: unknown } | undefined)?.cause);
  if (!decoded) return undefined;
  const detail = `(${describeRevert((error as { cause?: unknown } | undefined)?.cause ?? error)})`;
  const [, second, third] = decoded.args;
  switch (decoded.name) {
    case "InvalidScore":
      return `session ${sessionId} cannot be rated ${String(decoded.args[0])}: a score is 1, 2 or 3 ${detail}`;
    case "UnknownSession":
      return `session ${sessionId} does not exist on this ledger ${detail}`;
    case "WrongSessionStatus": {
      const status = STATUS_NAMES.get(BigInt(second as bigint)) ?? String(second);
      return `session ${sessionId} is ${status}, not settled: only a settled session can be rated ${detail}`;
    }
    case "NotSessionEv":
      return `session ${sessionId} belongs to EV ${String(third)}, not to ${String(second)}: only the session's own EV may rate it ${detail}`;
    case "AlreadyRated":
      return `session ${sessionId} was already rated (evaluation ${String(second)}): each session is rated once ${detail}`;
    default:
      return undefined;
  }
}

// ================================================================ the EV's side of the pricing auction (DESIGN §4.4)

export interface AuctionInvitation {
  areaId: bigint;
  energyWh: number;
  minPowerW: number;
  /** (price, power, distance, reputation), the contract's order. */
  weights: readonly [number, number, number, number];
  roundSeconds: number;
  maxRounds: number;
}

export interface OpenedInvitation {
  invitationId: bigint;
  receipt: ContractTransactionReceipt;
}

/** Invites the charge points in and around `areaId` to bid, with the EV's invitation deposit. */
export async function inviteChargePoints(
  auction: PricingAuctionContract,
  invitation: AuctionInvitation,
  depositWei: bigint,
): Promise<OpenedInvitation> {
  const receipt = await mined(`inviting bids in area ${invitation.areaId}`, () =>
    auction.invite(
      invitation.areaId,
      invitation.energyWh,
      invitation.minPowerW,
      [...invitation.weights],
      invitation.roundSeconds,
      invitation.maxRounds,
      { value: depositWei },
    ),
  );
  for (const log of receipt.logs) {
    const parsed = auction.interface.parseLog(log);
    if (parsed?.name === "InvitationOpened") return { invitationId: parsed.args.getValue("invitationId") as bigint, receipt };
  }
  throw new RuntimeError(`inviting bids in area ${invitation.areaId}: no InvitationOpened event in the receipt`);
}

export function closeAuctionRound(auction: PricingAuctionContract, invitationId: bigint): Promise<ContractTransactionReceipt> {
  return mined(`closing the round of invitation ${invitationId}`, () => auction.closeRound(invitationId));
}

export function finalizeAuction(
  auction: PricingAuctionContract,
  invitationId: bigint,
  decisionCommitment: string,
): Promise<ContractTransactionReceipt> {
  return mined(`finalizing invitation ${invitationId}`, () => auction.finalize(invitationId, decisionCommitment));
}

export interface OpenedAuctionSession extends OpenedSession {
  cpId: string;
  pricePerKWh: bigint;
  maxEnergyWh: number;
  depositWei: bigint;
}

/**
 * The deposit an auction session needs by default: the cost of the invited energy at the auction price (ceil), or
 * twice that while the EV's credibility R_v is below 0 (the ledger's rule, DESIGN §4.2).
 */
export function auctionSessionDepositOf(energyWh: bigint, priceWeiPerKWh: bigint, credibility: bigint): bigint {
  return credibility < 0n ? doubledDepositOf(energyWh, priceWeiPerKWh) : costOf(energyWh, priceWeiPerKWh);
}

/**
 * Opens the session the auction decided: reveals r (checked against c = H(EV, CP, r)) and pays the deposit;
 * without `depositWei`, the default of `auctionSessionDepositOf` for this EV.
 */
export async function openAuctionSession(
  ledger: ChargingLedgerContract,
  ev: string,
  decided: { invitationId: bigint; r: string; energyWh: number; pricePerKWh: bigint },
  depositWei?: bigint,
): Promise<OpenedAuctionSession> {
  const deposit =
    depositWei ?? auctionSessionDepositOf(BigInt(decided.energyWh), decided.pricePerKWh, await ledger.credibility(ev));
  const receipt = await mined(`opening the session of invitation ${decided.invitationId}`, () =>
    ledger.openAuctionSession(decided.invitationId, decided.r, { value: deposit }),
  );
  for (const log of receipt.logs) {
    const parsed = ledger.interface.parseLog(log);
    if (parsed?.name !== "SessionOpened") continue;
    return {
      sessionId: parsed.args.getValue("sessionId") as bigint,
      cpId: parsed.args.getValue("cpId") as string,
      pricePerKWh: parsed.args.getValue("pricePerKWh") as bigint,
      maxEnergyWh: Number(parsed.args.getValue("maxEnergyWh") as bigint),
      depositWei: parsed.args.getValue("deposit") as bigint,
      receipt,
    };
  }
  throw new RuntimeError(`opening the session of invitation ${decided.invitationId}: no SessionOpened event in the receipt`);
}

/** Draws what the auction credited this account (returned deposits, forfeited bonds); 0n when there was nothing. */
export async function withdrawFromAuction(
  auction: PricingAuctionContract,
  account: string,
): Promise<{ amountWei: bigint; receipt?: ContractTransactionReceipt }> {
  const amountWei = await auction.withdrawable(account);
  if (amountWei === 0n) return { amountWei };
  return { amountWei, receipt: await mined("withdrawing from the pricing auction", () => auction.withdraw()) };
}

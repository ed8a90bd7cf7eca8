/**
 * The chain operations the CLI, the simulator and the benchmarks share: each sends one transaction, waits for it
 * to be mined, and turns a revert into a RuntimeError that names the contract error.
 */
import type { ContractTransactionReceipt, ContractTransactionResponse, Signer, TypedDataDomain } from "ethers";
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import type { RegistryContract } from "../../contracts/artifacts/Registry.ts";
import { RuntimeError } from "../errors.ts";
import { CpKind, type CpKindName } from "./contracts.ts";
import { describeRevert } from "./revert.ts";
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

import { Contract, type ContractRunner } from "ethers";
import { ChargingLedgerAbi, type ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import { EvaluationsAbi, type EvaluationsContract } from "../../contracts/artifacts/Evaluations.ts";
import { PricingAuctionAbi, type PricingAuctionContract } from "../../contracts/artifacts/PricingAuction.ts";
import { RegistryAbi, type RegistryContract } from "../../contracts/artifacts/Registry.ts";
import type { Deployment } from "./deployment.ts";

export interface TrustpileContracts {
  registry: RegistryContract;
  ledger: ChargingLedgerContract;
}

export function connectRegistry(address: string, runner: ContractRunner): RegistryContract {
  return new Contract(address, RegistryAbi, runner) as unknown as RegistryContract;
}

export function connectLedger(address: string, runner: ContractRunner): ChargingLedgerContract {
  return new Contract(address, ChargingLedgerAbi, runner) as unknown as ChargingLedgerContract;
}

export function connectEvaluations(address: string, runner: ContractRunner): EvaluationsContract {
  return new Contract(address, EvaluationsAbi, runner) as unknown as EvaluationsContract;
}

export function connectPricingAuction(address: string, runner: ContractRunner): PricingAuctionContract {
  return new Contract(address, PricingAuctionAbi, runner) as unknown as PricingAuctionContract;
}

export function connectContracts(deployment: Deployment, runner: ContractRunner): TrustpileContracts {
  return {
    registry: connectRegistry(deployment.Registry, runner),
    ledger: connectLedger(deployment.ChargingLedger, runner),
  };
}

/** Session status as the ledger's `Status` enum numbers it. */
export const SessionStatus = {
  None: 0n,
  Opened: 1n,
  Authorized: 2n,
  Settled: 3n,
  Cancelled: 4n,
  Expired: 5n,
} as const;

/** Auction phase as the PricingAuction's `Phase` enum numbers it. */
export const AuctionPhase = {
  None: 0n,
  Bidding: 1n,
  Ended: 2n,
  Decided: 3n,
  SessionOpened: 4n,
  Failed: 5n,
  Abandoned: 6n,
} as const;

export const CpKind = { Private: 0, Public: 1, Operator: 2 } as const;
export type CpKindName = keyof typeof CpKind;

export const Role = { EV: 1, Owner: 2, Operator: 3 } as const;

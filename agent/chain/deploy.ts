import { ContractFactory, type Signer } from "ethers";
import { ChargingLedgerAbi, ChargingLedgerBytecode } from "../../contracts/artifacts/ChargingLedger.ts";
import { EvaluationsAbi, EvaluationsBytecode } from "../../contracts/artifacts/Evaluations.ts";
import { PricingAuctionAbi, PricingAuctionBytecode } from "../../contracts/artifacts/PricingAuction.ts";
import { RegistryAbi, RegistryBytecode } from "../../contracts/artifacts/Registry.ts";
import { parseSd59x18 } from "../reputation/eq2.ts";
import { connectLedger } from "./contracts.ts";
import type { Deployment } from "./deployment.ts";

export interface DeployOptions {
  /** The identity authority; the deployer when omitted. */
  authority?: string;
  authTimeoutS?: bigint;
  settleTimeoutS?: bigint;
  /** eq. 2's μ as SD59x18 (default 2). */
  mu?: bigint;
  /** eq. 2's σ as SD59x18 (default 1.5). */
  sigma?: bigint;
  /** Length of a bookkeeper period T in seconds (default one day). */
  bookkeeperPeriodS?: bigint;
  /** The pricing auction's terms (Algorithm 2); defaults below. */
  auction?: Partial<AuctionTerms>;
  onProgress?: (step: string) => void;
}

export interface AuctionTerms {
  /** Wei a charge point puts up with its first commit to an invitation. */
  bidBondWei: bigint;
  /** Least deposit an EV puts up with an invitation. */
  minInvitationDepositWei: bigint;
  /** Bidding goes on while the best price improves by at least this share of the previous best (basis points). */
  convergenceBps: number;
  /** Most charge points that may bid for one invitation (bounds every loop over bids). */
  maxBidders: number;
  /** How long the EV has to decide, and then to open the session, before bidders may claim its deposit. */
  decisionSeconds: number;
}

export const DEFAULT_AUCTION_TERMS: AuctionTerms = {
  bidBondWei: 10n ** 15n,
  minInvitationDepositWei: 10n ** 15n,
  convergenceBps: 100,
  maxBidders: 16,
  decisionSeconds: 600,
};

export const DEFAULT_AUTH_TIMEOUT_S = 600n;
export const DEFAULT_SETTLE_TIMEOUT_S = 2n * 24n * 3600n;
export const DEFAULT_MU = parseSd59x18("2");
export const DEFAULT_SIGMA = parseSd59x18("1.5");
export const DEFAULT_BOOKKEEPER_PERIOD_S = 24n * 3600n;

export interface DeployResult {
  deployment: Deployment;
  gasUsed: Record<string, bigint>;
}

/** Deploys every contract in dependency order and returns the address book. */
export async function deployContracts(deployer: Signer, options: DeployOptions = {}): Promise<DeployResult> {
  const progress = options.onProgress ?? (() => {});
  const provider = deployer.provider;
  if (!provider) throw new Error("deployContracts: the deployer needs a provider");
  const { chainId } = await provider.getNetwork();
  const gasUsed: Record<string, bigint> = {};

  async function deploy(name: string, abi: readonly object[], bytecode: string, args: unknown[]): Promise<string> {
    progress(`deploying ${name}`);
    const factory = new ContractFactory(abi as object[], bytecode, deployer);
    const contract = await factory.deploy(...args);
    const receipt = await contract.deploymentTransaction()?.wait();
    if (!receipt) throw new Error(`${name} deployment produced no receipt`);
    gasUsed[name] = receipt.gasUsed;
    const address = await contract.getAddress();
    progress(`${name} at ${address} (${receipt.gasUsed} gas)`);
    return address;
  }

  const firstBlock = await provider.getBlockNumber();
  const authority = options.authority ?? (await deployer.getAddress());
  const registry = await deploy("Registry", RegistryAbi, RegistryBytecode, [authority]);
  const ledger = await deploy("ChargingLedger", ChargingLedgerAbi, ChargingLedgerBytecode, [
    registry,
    options.authTimeoutS ?? DEFAULT_AUTH_TIMEOUT_S,
    options.settleTimeoutS ?? DEFAULT_SETTLE_TIMEOUT_S,
  ]);
  const evaluations = await deploy("Evaluations", EvaluationsAbi, EvaluationsBytecode, [
    ledger,
    options.mu ?? DEFAULT_MU,
    options.sigma ?? DEFAULT_SIGMA,
    options.bookkeeperPeriodS ?? DEFAULT_BOOKKEEPER_PERIOD_S,
  ]);
  const terms = { ...DEFAULT_AUCTION_TERMS, ...options.auction };
  const pricingAuction = await deploy("PricingAuction", PricingAuctionAbi, PricingAuctionBytecode, [
    registry,
    ledger,
    evaluations,
    terms.bidBondWei,
    terms.minInvitationDepositWei,
    terms.convergenceBps,
    terms.maxBidders,
    terms.decisionSeconds,
  ]);
  progress("wiring Evaluations into ChargingLedger");
  const wiring = await (await connectLedger(ledger, deployer).setEvaluations(evaluations)).wait();
  if (!wiring) throw new Error("setEvaluations produced no receipt");
  gasUsed["setEvaluations"] = wiring.gasUsed;
  progress("wiring PricingAuction into ChargingLedger");
  const auctionWiring = await (await connectLedger(ledger, deployer).setPricingAuction(pricingAuction)).wait();
  if (!auctionWiring) throw new Error("setPricingAuction produced no receipt");
  gasUsed["setPricingAuction"] = auctionWiring.gasUsed;
  return {
    deployment: {
      chainId: Number(chainId),
      Registry: registry,
      ChargingLedger: ledger,
      Evaluations: evaluations,
      PricingAuction: pricingAuction,
      deployedAtBlock: firstBlock + 1,
    },
    gasUsed,
  };
}

import { ContractFactory, type Signer } from "ethers";
import { ChargingLedgerAbi, ChargingLedgerBytecode } from "../../contracts/artifacts/ChargingLedger.ts";
import { RegistryAbi, RegistryBytecode } from "../../contracts/artifacts/Registry.ts";
import type { Deployment } from "./deployment.ts";

export interface DeployOptions {
  /** The identity authority; the deployer when omitted. */
  authority?: string;
  authTimeoutS?: bigint;
  settleTimeoutS?: bigint;
  onProgress?: (step: string) => void;
}

export const DEFAULT_AUTH_TIMEOUT_S = 600n;
export const DEFAULT_SETTLE_TIMEOUT_S = 2n * 24n * 3600n;

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
  return {
    deployment: { chainId: Number(chainId), Registry: registry, ChargingLedger: ledger, deployedAtBlock: firstBlock + 1 },
    gasUsed,
  };
}

import { inject } from "vitest";
import { NonceManager, type HDNodeWallet, type JsonRpcProvider, type Provider } from "ethers";
import { connectProvider } from "../../agent/chain/provider.ts";
import { devAccount } from "../../agent/chain/dev-accounts.ts";
import { deployContracts, type DeployOptions } from "../../agent/chain/deploy.ts";
import { connectEvaluations, connectLedger, connectRegistry, Role } from "../../agent/chain/contracts.ts";
import { attest, registerChargePoint, type ChargePointRegistration } from "../../agent/chain/operations.ts";
import type { Deployment } from "../../agent/chain/deployment.ts";
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import type { EvaluationsContract } from "../../contracts/artifacts/Evaluations.ts";
import type { RegistryContract } from "../../contracts/artifacts/Registry.ts";

/** The anvil of this vitest worker (see anvil-global-setup.ts). */
export function testChainUrl(): string {
  const urls = inject("anvilUrls");
  const poolId = Number(process.env.VITEST_POOL_ID ?? "1");
  const url = urls[(poolId - 1) % urls.length];
  if (!url) throw new Error("no anvil was started for this worker");
  return url;
}

export async function testProvider(): Promise<JsonRpcProvider> {
  return (await connectProvider(testChainUrl())) as JsonRpcProvider;
}

export async function rpc<T>(provider: Provider, method: string, params: unknown[] = []): Promise<T> {
  return (await (provider as JsonRpcProvider).send(method, params)) as T;
}

/** Moves the chain's clock forward and mines a block, so the next transaction sees the new time. */
export async function advanceTime(provider: Provider, seconds: number): Promise<void> {
  await rpc(provider, "evm_increaseTime", [seconds]);
  await rpc(provider, "evm_mine");
}

export async function latestTimestamp(provider: Provider): Promise<bigint> {
  const block = await provider.getBlock("latest");
  if (!block) throw new Error("no latest block");
  return BigInt(block.timestamp);
}

export const PRICE_WEI_PER_KWH = 300_000_000_000_000n;

export interface LedgerFixture {
  provider: JsonRpcProvider;
  deployment: Deployment;
  authority: HDNodeWallet;
  accounts: HDNodeWallet[];
  registry: (as: HDNodeWallet) => RegistryContract;
  ledger: (as: HDNodeWallet) => ChargingLedgerContract;
  evaluations: (as: HDNodeWallet) => EvaluationsContract;
  attestEv(ev: HDNodeWallet): Promise<void>;
  attestOwner(owner: HDNodeWallet): Promise<void>;
  registerCp(owner: HDNodeWallet, registration: Partial<ChargePointRegistration> & { chargePointId: string; signer: string }): Promise<void>;
}

/**
 * Fresh contracts on this worker's anvil. Account 0 deploys and attests; accounts 1..19 are free for the test.
 * The authority's transactions go through a NonceManager so back-to-back sends never reuse a nonce.
 */
export async function deployLedgerFixture(options: DeployOptions = {}): Promise<LedgerFixture> {
  const provider = await testProvider();
  // The worker's anvil is shared by the test files that run on it one after another: a file that switched to
  // interval mining (agent worlds) and did not get to switch back would make every later transaction wait for a
  // block. Every fixture starts from the mode it assumes: a block per transaction.
  await rpc(provider, "evm_setIntervalMining", [0]);
  await rpc(provider, "evm_setAutomine", [true]);
  const authority = devAccount(0, provider);
  const accounts = Array.from({ length: 20 }, (_, i) => devAccount(i, provider));
  const { deployment } = await deployContracts(new NonceManager(authority), options);
  const farFuture = (await latestTimestamp(provider)) + 10n * 365n * 24n * 3600n;
  const registry = (as: HDNodeWallet): RegistryContract => connectRegistry(deployment.Registry, as);
  const ledger = (as: HDNodeWallet): ChargingLedgerContract => connectLedger(deployment.ChargingLedger, as);
  const evaluationsAddress = deployment.Evaluations;
  if (!evaluationsAddress) throw new Error("deployContracts wrote no Evaluations address");
  const evaluations = (as: HDNodeWallet): EvaluationsContract => connectEvaluations(evaluationsAddress, as);
  return {
    provider,
    deployment,
    authority,
    accounts,
    registry,
    ledger,
    evaluations,
    attestEv: async (ev) => void (await attest(registry(authority), ev.address, Role.EV, farFuture)),
    attestOwner: async (owner) => void (await attest(registry(authority), owner.address, Role.Owner, farFuture)),
    registerCp: async (owner, registration) =>
      void (await registerChargePoint(registry(owner), {
        kind: "Private",
        areaId: 1n,
        pricePerKWh: PRICE_WEI_PER_KWH,
        maxPowerW: 11_000,
        ownerContactSealed: new Uint8Array([1, 2, 3]),
        ...registration,
      })),
  };
}

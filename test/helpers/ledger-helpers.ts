/**
 * Helpers the contract suites share: exact-cost arithmetic mirrored from ChargingLedger, revert assertions on the
 * decoded custom error, event reading, gas accounting and a whole-session runner.
 */
import { expect } from "vitest";
import {
  JsonRpcProvider,
  Network,
  type BaseContract,
  type ContractTransactionReceipt,
  type HDNodeWallet,
  type Result,
  type TypedDataDomain,
} from "ethers";
import { DEV_CHAIN_ID } from "../../agent/chain/dev-chain.ts";
import { authorizeSession, mined, signAndSettle } from "../../agent/chain/operations.ts";
import { decodeRevert } from "../../agent/chain/revert.ts";
import { cpIdOf, ledgerDomain, type SessionTotal } from "../../agent/chain/session-total.ts";
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import { testChainUrl, type LedgerFixture } from "./chain.ts";

/** cost = ceil(energyWh × price / 1000): the ledger's rule, kept once in agent/chain/cost.ts. */
import { costOf } from "../../agent/chain/cost.ts";

export { costOf };

/** Deposit an EV with negative credibility must bring: the cost of twice the energy it asks for (DESIGN §4.2). */
export function requiredDepositOf(maxEnergyWh: bigint, priceWeiPerKWh: bigint): bigint {
  return costOf(2n * maxEnergyWh, priceWeiPerKWh);
}

/** The fee a mined transaction cost its sender, in wei. */
export function gasCostOf(receipt: ContractTransactionReceipt): bigint {
  return receipt.gasUsed * receipt.gasPrice;
}

/**
 * Awaits `action`, expects it to fail with our custom error `name` (and exactly `args` when given), and returns the
 * decoded arguments. Accepts both raw ethers errors and RuntimeErrors from agent/chain/operations.ts (via `cause`).
 */
export async function expectRevert(action: Promise<unknown>, name: string, args?: readonly unknown[]): Promise<unknown[]> {
  let failure: unknown;
  let succeeded = false;
  try {
    await action;
    succeeded = true;
  } catch (error) {
    failure = error;
  }
  if (succeeded) throw new Error(`expected a revert with ${name}, but the call succeeded`);
  const decoded = decodeRevert(failure) ?? decodeRevert((failure as { cause?: unknown } | undefined)?.cause);
  if (!decoded) throw new Error(`expected a revert with ${name}, got an undecodable error: ${String(failure)}`, { cause: failure });
  expect(decoded.name, `custom error of: ${String(failure)}`).toBe(name);
  if (args) expect(decoded.args).toEqual([...args]);
  return decoded.args;
}

/** Arguments of the first `name` event `contract` emitted in `receipt`; throws if there is none. */
export function eventArgs(receipt: ContractTransactionReceipt, contract: BaseContract, name: string): Result {
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== String(contract.target).toLowerCase()) continue;
    const parsed = contract.interface.parseLog(log);
    if (parsed?.name === name) return parsed.args;
  }
  throw new Error(`no ${name} event in transaction ${receipt.hash}`);
}

export function domainOf(fixture: LedgerFixture): TypedDataDomain {
  return ledgerDomain(BigInt(fixture.deployment.chainId), fixture.deployment.ChargingLedger);
}

export const METER_START_WH = 1_000_000n;
export const STARTED_AT = 1_700_000_000n;

/** A session total for `energyWh` delivered, with fixed meter start and times so tests only vary what they test. */
export function totalOf(sessionId: bigint, chargePointId: string, energyWh: bigint, evBehaviour = 0): SessionTotal {
  return {
    sessionId,
    cpId: cpIdOf(chargePointId),
    meterStartWh: METER_START_WH,
    meterStopWh: METER_START_WH + energyWh,
    startedAt: STARTED_AT,
    stoppedAt: STARTED_AT + 3_600n,
    evBehaviour,
  };
}

export interface OpenedAt {
  sessionId: bigint;
  receipt: ContractTransactionReceipt;
}

/** Opens a session at the CP named `chargePointId` (its OCPP identity, hashed to the cpId here). */
export async function openSessionAt(
  ledger: ChargingLedgerContract,
  chargePointId: string,
  maxEnergyWh: number | bigint,
  depositWei: bigint,
): Promise<OpenedAt> {
  const receipt = await mined(`opening a session at ${chargePointId}`, () =>
    ledger.openSession(cpIdOf(chargePointId), maxEnergyWh, { value: depositWei }),
  );
  return { sessionId: eventArgs(receipt, ledger, "SessionOpened").getValue("sessionId") as bigint, receipt };
}

export interface SessionRun {
  ev: HDNodeWallet;
  signer: HDNodeWallet;
  chargePointId: string;
  depositWei: bigint;
  maxEnergyWh?: number;
  energyWh: bigint;
  evBehaviour?: number;
  relayer?: HDNodeWallet;
}

export interface SettledSession {
  sessionId: bigint;
  receipt: ContractTransactionReceipt;
  settled: Result;
}

/** Opens, authorizes (by the pile signer) and settles one session; returns the SessionSettled arguments. */
export async function runSession(fixture: LedgerFixture, run: SessionRun): Promise<SettledSession> {
  const { sessionId } = await openSessionAt(fixture.ledger(run.ev), run.chargePointId, run.maxEnergyWh ?? 50_000, run.depositWei);
  await authorizeSession(fixture.ledger(run.signer), sessionId);
  const relayerLedger = fixture.ledger(run.relayer ?? run.ev);
  const receipt = await signAndSettle(
    relayerLedger,
    run.signer,
    domainOf(fixture),
    totalOf(sessionId, run.chargePointId, run.energyWh, run.evBehaviour ?? 0),
  );
  return { sessionId, receipt, settled: eventArgs(receipt, relayerLedger, "SessionSettled") };
}

/**
 * A provider on this worker's anvil (or `url`) without ethers' 10 ms request batching or response cache, for suites
 * that send hundreds of transactions (anvil mines each one instantly, so the stall is pure waiting) and for a lying
 * node in front of anvil, where every request must reach the node.
 */
export function unbatchedProvider(url: string = testChainUrl()): JsonRpcProvider {
  const network = Network.from(DEV_CHAIN_ID);
  return new JsonRpcProvider(url, network, {
    staticNetwork: network,
    batchMaxCount: 1,
    cacheTimeout: -1,
    pollingInterval: 50,
  });
}

/** Dev accounts 1, 2, 3, … of the fixture under the given names, in that order (a test's cast of parties). */
export function accountsNamed<const Name extends string>(fixture: LedgerFixture, names: readonly Name[]): Record<Name, HDNodeWallet> {
  return Object.fromEntries(names.map((name, index) => [name, accountOf(fixture, index + 1)])) as Record<Name, HDNodeWallet>;
}

/** Dev account `index` of the fixture (1..19 are free for tests). */
export function accountOf(fixture: LedgerFixture, index: number): HDNodeWallet {
  const account = fixture.accounts[index];
  if (!account) throw new Error(`the fixture has no dev account ${index}`);
  return account;
}

/** Sends `settle` for `total` with a ready-made signature, so a test can submit one signed over other fields. */
export function settleWithSignature(
  ledger: ChargingLedgerContract,
  total: SessionTotal,
  signature: string,
): Promise<ContractTransactionReceipt> {
  return mined(`settling session ${total.sessionId}`, () =>
    ledger.settle(total.sessionId, total.meterStartWh, total.meterStopWh, total.startedAt, total.stoppedAt, total.evBehaviour, signature),
  );
}

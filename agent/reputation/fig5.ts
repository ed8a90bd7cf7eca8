/**
 * The paper's Fig. 5 experiment (§4.1), run through the deployed Evaluations contract:
 *
 *   4 charge points × 180 ratings. CP1 ~ N(1, 0.6), CP2 ~ N(2, 0.6), CP3 ~ N(3, 0.6); CP4 ~ N(3, 0.6) for its first
 *   60 ratings, then N(0.3, 0.6) for the last 120 (a charge point that cashes in its reputation). Draws are rounded
 *   and clipped to the scores {1, 2, 3}; every rater has credibility R_v = 3.
 *
 * Every rating is a real `Evaluations.rate(sessionId, W)` sent by the session's EV after a real settled session
 * (open → authorize by the pile signer → settle with the pile's EIP-712 signed total). R_v comes from the ledger
 * (+1 per clean paid session with energy), so in each step one fresh EV charges once at CP1, CP2 and CP3 (R_v = 3)
 * and rates all three, and another fresh EV charges three times at CP4 and rates the last of those sessions. The
 * rater's R_v is read from the ledger before every rating and the run fails if it is not exactly 3.
 *
 * The pure pieces (sampling, schedule, statistics, CSV and SVG writers) sit beside the chain runner so the CLI
 * (tools/fig5.ts) and the test (test/contract/fig5.test.ts) share them.
 */
import {
  Interface,
  JsonRpcProvider,
  Network,
  NonceManager,
  Wallet,
  keccak256,
  toQuantity,
  toUtf8Bytes,
  type LogDescription,
  type TransactionRequest,
} from "ethers";
import { ChargingLedgerAbi } from "../../contracts/artifacts/ChargingLedger.ts";
import { EvaluationsAbi } from "../../contracts/artifacts/Evaluations.ts";
import { RegistryAbi } from "../../contracts/artifacts/Registry.ts";
import { CpKind, Role } from "../chain/contracts.ts";
import { costOf } from "../chain/cost.ts";
import { deployContracts } from "../chain/deploy.ts";
import type { Deployment } from "../chain/deployment.ts";
import { devAccount } from "../chain/dev-accounts.ts";
import { connectProvider } from "../chain/provider.ts";
import { describeRevert } from "../chain/revert.ts";
import { cpIdOf, ledgerDomain, signSessionTotal, type SessionTotal } from "../chain/session-total.ts";
import { RuntimeError, UsageError } from "../errors.ts";
import { D, fromSd59x18, parseSd59x18, reputationUpdate, type ReputationParameters, type Score } from "./eq2.ts";
import { mulberry32, standardNormal } from "./prng.ts";

// ================================================================ the experiment

export const FIG5_STEPS = 180;
/** CP4 behaves for this many ratings, then turns bad. */
export const FIG5_SWITCH_STEP = 60;
/** Statistics are taken over the last this-many steps. */
export const FIG5_WINDOW = 60;
export const FIG5_RATER_CREDIBILITY = 3;
export const FIG5_RATING_SD = 0.6;
export const DEFAULT_FIG5_SEED = 20_211_105;
export const DEFAULT_FIG5_MU = "2";
export const DEFAULT_FIG5_SIGMA = "1.5";

/** A run of ratings drawn from N(mean, sd). */
export interface RatingPhase {
  steps: number;
  mean: number;
  sd: number;
}

export interface Fig5ChargePoint {
  label: string;
  phases: readonly RatingPhase[];
}

export const FIG5_CHARGE_POINTS: readonly Fig5ChargePoint[] = [
  { label: "CP1 N(1, 0.6)", phases: [{ steps: FIG5_STEPS, mean: 1, sd: FIG5_RATING_SD }] },
  { label: "CP2 N(2, 0.6)", phases: [{ steps: FIG5_STEPS, mean: 2, sd: FIG5_RATING_SD }] },
  { label: "CP3 N(3, 0.6)", phases: [{ steps: FIG5_STEPS, mean: 3, sd: FIG5_RATING_SD }] },
  {
    label: "CP4 N(3, 0.6) → N(0.3, 0.6)",
    phases: [
      { steps: FIG5_SWITCH_STEP, mean: 3, sd: FIG5_RATING_SD },
      { steps: FIG5_STEPS - FIG5_SWITCH_STEP, mean: 0.3, sd: FIG5_RATING_SD },
    ],
  },
];

/** A draw rounded to the nearest integer (halves up) and clipped to the scores {1, 2, 3}. */
export function toScore(draw: number): Score {
  const rounded = Math.round(draw);
  if (!(rounded > 1)) return 1; // also catches NaN
  if (rounded >= 3) return 3;
  return 2;
}

/**
 * The ratings of every charge point, `ratings[cp][step]`, from one mulberry32 stream seeded with `seed`: all of CP1's
 * draws first, then CP2's, CP3's and CP4's, each a Box–Muller draw (two uniforms) scaled to its phase.
 */
export function fig5Ratings(seed: number, chargePoints: readonly Fig5ChargePoint[] = FIG5_CHARGE_POINTS): Score[][] {
  const normal = standardNormal(mulberry32(seed));
  return chargePoints.map((cp) => cp.phases.flatMap((phase) => Array.from({ length: phase.steps }, () => toScore(phase.mean + phase.sd * normal()))));
}

/** The float64 twin's curve: R after each rating, starting from R = 0. */
export function twinCurve(ratings: readonly Score[], raterCredibility: number, parameters: ReputationParameters): number[] {
  let reputation = 0;
  return ratings.map((score) => (reputation = reputationUpdate(reputation, score, raterCredibility, parameters)));
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("mean of no values");
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Population standard deviation. */
export function populationStdDev(values: readonly number[]): number {
  const m = mean(values);
  return Math.sqrt(mean(values.map((value) => (value - m) ** 2)));
}

export interface TailStats {
  /** Mean of R over the last `window` steps. */
  mean: number;
  /** Volatility: population standard deviation of R over the last `window` steps. */
  volatility: number;
}

export function tailStats(curve: readonly number[], window = FIG5_WINDOW): TailStats {
  if (curve.length < window) throw new RangeError(`a curve of ${curve.length} steps has no last ${window}`);
  const tail = curve.slice(curve.length - window);
  return { mean: mean(tail), volatility: populationStdDev(tail) };
}

/**
 * How CP4 answers its switch to bad service. Before: R after rating `switchStep`. New level: D·W̄ with W̄ the mean
 * score after the switch, the fixed point eq. 2 pulls towards under those scores. The claim "R falls at least halfway
 * to the new level" holds when the mean of the last `window` steps is at most the halfway mark
 * before − ½·(before − newLevel).
 */
export interface SwitchResponse {
  before: number;
  newLevel: number;
  halfway: number;
  tailMean: number;
  /** Share of the way from `before` to `newLevel` the tail mean has come (1 = all the way). */
  fractionFallen: number;
  holds: boolean;
}

export function switchResponse(
  curve: readonly number[],
  ratings: readonly Score[],
  switchStep = FIG5_SWITCH_STEP,
  window = FIG5_WINDOW,
): SwitchResponse {
  const before = curve[switchStep - 1];
  if (before === undefined) throw new RangeError(`the curve has no step ${switchStep}`);
  const newLevel = D * mean(ratings.slice(switchStep));
  const halfway = before - 0.5 * (before - newLevel);
  const tailMean = tailStats(curve, window).mean;
  return { before, newLevel, halfway, tailMean, fractionFallen: (before - tailMean) / (before - newLevel), holds: tailMean <= halfway };
}

// ================================================================ output

export interface Fig5Series {
  /** R after each step, `curves[cp][step]`. */
  curves: readonly (readonly number[])[];
  ratings: readonly (readonly number[])[];
}

/** `step,cp1..cp4,w1..w4`: one row per step (1-based) with R after the step and the score given in it. */
export function fig5Csv({ curves, ratings }: Fig5Series): string {
  const steps = curves[0]?.length ?? 0;
  const header = [
    "step",
    ...curves.map((_, cp) => `cp${cp + 1}`),
    ...ratings.map((_, cp) => `w${cp + 1}`),
  ].join(",");
  const rows = Array.from({ length: steps }, (_, step) =>
    [String(step + 1), ...curves.map((curve) => String(curve[step])), ...ratings.map((scores) => String(scores[step]))].join(","),
  );
  return [header, ...rows].join("\n") + "\n";
}

export interface SvgOptions {
  title: string;
  labels: readonly string[];
  /** Draws a dashed marker after this step (CP4's switch); omitted: none. */
  markerStep?: number;
  yMax?: number;
}

const CURVE_COLOURS = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4"];

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A line plot of the curves: x = step 1..N, y = R in [0, yMax], with axes, ticks, grid, legend and title. */
export function fig5Svg({ curves }: Pick<Fig5Series, "curves">, options: SvgOptions): string {
  const width = 900;
  const height = 520;
  const left = 60;
  const right = 230;
  const top = 50;
  const bottom = 60;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const yMax = options.yMax ?? 9;
  const steps = curves[0]?.length ?? 0;
  const xOf = (step: number): number => left + (step / Math.max(steps, 1)) * plotWidth;
  const yOf = (value: number): number => top + plotHeight - (Math.min(Math.max(value, 0), yMax) / yMax) * plotHeight;
  const f = (n: number): string => n.toFixed(2);
  const parts: string[] = [];
  parts.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${f(width / 2)}" y="28" text-anchor="middle" font-size="15">${escapeXml(options.title)}</text>`);

  // Grid and y ticks: one per unit of R.
  for (let y = 0; y <= yMax; y++) {
    const py = f(yOf(y));
    parts.push(`<line x1="${left}" y1="${py}" x2="${left + plotWidth}" y2="${py}" stroke="#e5e5e5" stroke-width="1"/>`);
    parts.push(`<line x1="${left - 5}" y1="${py}" x2="${left}" y2="${py}" stroke="#000000" stroke-width="1"/>`);
    parts.push(`<text x="${left - 8}" y="${py}" text-anchor="end" dominant-baseline="middle">${y}</text>`);
  }
  // x ticks every 20 steps.
  const xTickEvery = steps > 100 ? 20 : 10;
  for (let step = 0; step <= steps; step += xTickEvery) {
    const px = f(xOf(step));
    parts.push(`<line x1="${px}" y1="${top + plotHeight}" x2="${px}" y2="${top + plotHeight + 5}" stroke="#000000" stroke-width="1"/>`);
    parts.push(`<text x="${px}" y="${top + plotHeight + 20}" text-anchor="middle">${step}</text>`);
  }
  // Axes.
  parts.push(`<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${top + plotHeight}" stroke="#000000" stroke-width="1.5"/>`);
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#000000" stroke-width="1.5"/>`);
  parts.push(`<text x="${f(left + plotWidth / 2)}" y="${height - 15}" text-anchor="middle">evaluation number</text>`);
  parts.push(`<text x="18" y="${f(top + plotHeight / 2)}" text-anchor="middle" transform="rotate(-90 18 ${f(top + plotHeight / 2)})">reputation R (contract, SD59x18)</text>`);
  if (options.markerStep !== undefined) {
    const px = f(xOf(options.markerStep));
    parts.push(`<line x1="${px}" y1="${top}" x2="${px}" y2="${top + plotHeight}" stroke="#888888" stroke-width="1" stroke-dasharray="4 4"/>`);
  }

  // Curves: the point of step k (1-based) sits at x = k.
  curves.forEach((curve, cp) => {
    const colour = CURVE_COLOURS[cp % CURVE_COLOURS.length] ?? "#000000";
    const points = curve.map((value, step) => `${f(xOf(step + 1))},${f(yOf(value))}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.6" points="${points}"/>`);
  });

  // Legend.
  const legendX = left + plotWidth + 20;
  curves.forEach((_, cp) => {
    const colour = CURVE_COLOURS[cp % CURVE_COLOURS.length] ?? "#000000";
    const y = top + 10 + cp * 22;
    parts.push(`<line x1="${legendX}" y1="${y}" x2="${legendX + 28}" y2="${y}" stroke="${colour}" stroke-width="3"/>`);
    parts.push(`<text x="${legendX + 36}" y="${y}" dominant-baseline="middle">${escapeXml(options.labels[cp] ?? `CP${cp + 1}`)}</text>`);
  });
  parts.push(`</svg>`);
  return parts.join("\n") + "\n";
}

// ================================================================ on chain

export interface Fig5ChainOptions {
  /** The chain to run on: an anvil (the run uses anvil_setBalance, evm_mine and dev account 0 as authority). */
  rpcUrl?: string;
  /** Or a ready provider; without batching (or with batchStallTime 0) or every call waits 10 ms. */
  provider?: JsonRpcProvider;
  seed?: number;
  /** μ and σ as decimal strings, exact for the contract (SD59x18) and parsed as floats for the twin. */
  mu?: string;
  sigma?: string;
  onProgress?: (message: string) => void;
}

export interface Fig5Result {
  seed: number;
  mu: string;
  sigma: string;
  deployment: Deployment;
  labels: string[];
  /** Scores as the contract recorded them (checked against each Evaluated event), `ratings[cp][step]`. */
  ratings: Score[][];
  /** The contract's reputationAfter of each rating (Evaluated events), as floats. */
  contract: number[][];
  /** The float64 twin's curves over the same scores with R_v = 3. */
  twin: number[][];
  /** max over every cp and step of |contract − twin|. */
  maxTwinDifference: number;
  /** Transactions sent, the deployment's included. */
  transactions: number;
  /** Blocks the run mined. */
  blocks: number;
  elapsedMs: number;
}

const PRICE_WEI_PER_KWH = 300_000_000_000_000n;
const ENERGY_WH = 10_000n;
const MAX_ENERGY_WH = 50_000;
const METER_START_WH = 1_000_000n;
const STARTED_AT = 1_700_000_000n;
const FUNDING_WEI = 10n ** 21n; // 1000 ETH per derived wallet
const AREA_ID = 1n;
const BASE_FEE_WEI = 1_000_000_000n;
const MAX_FEE_WEI = 20_000_000_000n;
const PRIORITY_FEE_WEI = 1_000_000_000n;
const GAS = { attest: 80_000n, register: 300_000n, open: 200_000n, authorize: 80_000n, settle: 250_000n, rate: 400_000n };

const ledgerInterface = new Interface(ChargingLedgerAbi);
const evaluationsInterface = new Interface(EvaluationsAbi);
const registryInterface = new Interface(RegistryAbi);

/** A fresh wallet derived from the seed: the same seed names the same accounts on every run. */
function derivedWallet(seed: number, role: string, index: number): Wallet {
  return new Wallet(keccak256(toUtf8Bytes(`trustpile/fig5/${seed >>> 0}/${role}/${index}`)));
}

interface ReceiptLog {
  address: string;
  topics: string[];
  data: string;
}

interface RpcReceipt {
  transactionHash: string;
  status: string;
  blockNumber: string;
  gasUsed: string;
  logs: ReceiptLog[];
}

interface WaveItem {
  action: string;
  wallet: Wallet;
  request: { to: string; data: string; value?: bigint; gasLimit: bigint };
}

/**
 * Sends transactions in waves and mines each wave into as few blocks as fit, with anvil's automine off: a block per
 * transaction would make anvil write ~4000 state snapshots (it slows down as they pile up) and cost a round trip each.
 *
 * Nonces are kept here and taken in the order of a wave's items. Every wave is mined completely before the next one
 * is sent, so a wave may only hold transactions that do not depend on each other, and the order of transactions
 * within a block is never relied on. The base fee is pinned before each block so full blocks do not drive it up.
 */
class WaveMiner {
  private readonly nonces = new Map<string, number>();
  sent = 0;
  blocks = 0;

  constructor(
    private readonly provider: JsonRpcProvider,
    private readonly chainId: bigint,
  ) {}

  async prime(addresses: readonly string[]): Promise<void> {
    await Promise.all(
      addresses.map(async (address) => this.nonces.set(address, await this.provider.getTransactionCount(address, "pending"))),
    );
  }

  /** Sends every item, mines until all are in, and returns their receipts in item order; any revert fails the wave. */
  async wave(items: readonly WaveItem[]): Promise<RpcReceipt[]> {
    const signed: { item: WaveItem; tx: TransactionRequest; raw: string; hash: string }[] = [];
    for (const item of items) {
      const nonce = this.nonces.get(item.wallet.address);
      if (nonce === undefined) throw new RuntimeError(`${item.action}: no nonce primed for ${item.wallet.address}`);
      this.nonces.set(item.wallet.address, nonce + 1);
      const tx: TransactionRequest = {
        ...item.request,
        value: item.request.value ?? 0n,
        nonce,
        chainId: this.chainId,
        type: 2,
        maxFeePerGas: MAX_FEE_WEI,
        maxPriorityFeePerGas: PRIORITY_FEE_WEI,
      };
      const raw = await item.wallet.signTransaction(tx);
      signed.push({ item, tx, raw, hash: keccak256(raw) });
    }
    await Promise.all(
      signed.map(async ({ item, raw, hash }) => {
        let accepted: unknown;
        try {
          accepted = await this.provider.send("eth_sendRawTransaction", [raw]);
        } catch (error) {
          throw new RuntimeError(`${item.action} was rejected: ${describeRevert(error)}`, { cause: error });
        }
        if (typeof accepted !== "string" || accepted.toLowerCase() !== hash) {
          throw new RuntimeError(`${item.action}: the node answered ${String(accepted)} for transaction ${hash}`);
        }
      }),
    );
    this.sent += signed.length;

    const receipts = new Map<string, RpcReceipt>();
    const wanted = new Set(signed.map(({ hash }) => hash));
    for (let emptyBlocks = 0; receipts.size < wanted.size; ) {
      await this.provider.send("anvil_setNextBlockBaseFeePerGas", [toQuantity(BASE_FEE_WEI)]);
      await this.provider.send("evm_mine", []);
      this.blocks += 1;
      const blockNumber = (await this.provider.send("eth_blockNumber", [])) as string;
      const blockReceipts = (await this.provider.send("eth_getBlockReceipts", [blockNumber])) as RpcReceipt[] | null;
      let ours = 0;
      for (const receipt of blockReceipts ?? []) {
        const hash = receipt.transactionHash.toLowerCase();
        if (!wanted.has(hash)) continue;
        receipts.set(hash, receipt);
        ours += 1;
      }
      if (ours === 0 && ++emptyBlocks >= 3) {
        const missing = signed.find(({ hash }) => !receipts.has(hash));
        throw new RuntimeError(`${missing?.item.action ?? "a transaction"}: still not mined after ${emptyBlocks} empty blocks`);
      }
    }

    const ordered: RpcReceipt[] = [];
    for (const { item, tx, hash } of signed) {
      const receipt = receipts.get(hash);
      if (!receipt) throw new RuntimeError(`${item.action}: no receipt`);
      if (receipt.status !== "0x1") {
        const reason = await this.revertReason(item.wallet.address, tx, receipt);
        throw new RuntimeError(`${item.action} reverted in block ${Number(receipt.blockNumber)}: ${reason}`);
      }
      ordered.push(receipt);
    }
    return ordered;
  }

  /** Replays a reverted transaction as a call on the state before its block, to name the contract error. */
  private async revertReason(from: string, tx: TransactionRequest, receipt: RpcReceipt): Promise<string> {
    const gas = `gas used ${Number(receipt.gasUsed)} of ${String(tx.gasLimit)}`;
    try {
      await this.provider.call({ from, to: tx.to, data: tx.data, value: tx.value, gasLimit: tx.gasLimit, blockTag: Number(receipt.blockNumber) - 1 });
      return `status 0 (transaction ${receipt.transactionHash}, ${gas})`;
    } catch (error) {
      return `${describeRevert(error)} (${gas})`;
    }
  }
}

function eventOf(receipt: RpcReceipt, address: string, contractInterface: Interface, name: string, action: string): LogDescription {
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== address.toLowerCase()) continue;
    const parsed = contractInterface.parseLog({ topics: log.topics, data: log.data });
    if (parsed?.name === name) return parsed;
  }
  throw new RuntimeError(`${action}: no ${name} event in transaction ${receipt.transactionHash}`);
}

interface ChainCp {
  chargePointId: string;
  cpId: string;
  signer: Wallet;
}

/** One session to run: who charges where, and (once opened) its id. */
interface PlannedSession {
  step: number;
  ev: Wallet;
  cp: ChainCp;
  sessionId?: bigint;
}

/** Throws a UsageError unless `decimal` is a valid μ (> 1) or σ (> 0) for the contract. */
export function checkFig5Parameter(name: "mu" | "sigma", decimal: string): void {
  let value: bigint;
  try {
    value = parseSd59x18(decimal);
  } catch (error) {
    throw new UsageError(`${name} must be a decimal number with at most 18 fraction digits, got "${decimal}"`, { cause: error });
  }
  if (name === "mu" && value <= 10n ** 18n) throw new UsageError(`mu must be > 1, got ${decimal}`);
  if (name === "sigma" && value <= 0n) throw new UsageError(`sigma must be > 0, got ${decimal}`);
}

/** A provider that fixes the network once and sends concurrent calls as one JSON-RPC batch without waiting. */
async function fastProvider(rpcUrl: string): Promise<JsonRpcProvider> {
  const probe = await connectProvider(rpcUrl);
  const { chainId } = await probe.getNetwork();
  probe.destroy();
  const network = Network.from(chainId);
  return new JsonRpcProvider(rpcUrl, network, {
    staticNetwork: network,
    batchStallTime: 0,
    batchMaxCount: 200,
    cacheTimeout: -1,
    pollingInterval: 20,
  });
}

/**
 * Runs Fig. 5 on chain: fresh contracts, 4 charge points, 1080 settled sessions and 720 ratings. anvil's automine is
 * switched off for the run (waves of transactions are mined with evm_mine) and back on at the end, failure or not.
 */
export async function runFig5OnChain(options: Fig5ChainOptions): Promise<Fig5Result> {
  const started = performance.now();
  const seed = (options.seed ?? DEFAULT_FIG5_SEED) >>> 0;
  const mu = options.mu ?? DEFAULT_FIG5_MU;
  const sigma = options.sigma ?? DEFAULT_FIG5_SIGMA;
  checkFig5Parameter("mu", mu);
  checkFig5Parameter("sigma", sigma);
  const progress = options.onProgress ?? (() => {});
  const ownsProvider = options.provider === undefined;
  let provider: JsonRpcProvider;
  if (options.provider) provider = options.provider;
  else if (options.rpcUrl) provider = await fastProvider(options.rpcUrl);
  else throw new UsageError("runFig5OnChain needs rpcUrl or provider");

  try {
    return await runOn(provider, { seed, mu, sigma, progress, started });
  } finally {
    if (ownsProvider) provider.destroy();
  }
}

async function runOn(
  provider: JsonRpcProvider,
  run: { seed: number; mu: string; sigma: string; progress: (message: string) => void; started: number },
): Promise<Fig5Result> {
  const { seed, mu, sigma, progress } = run;
  const seconds = (): string => `${((performance.now() - run.started) / 1000).toFixed(1)} s`;
  const ratings = fig5Ratings(seed);
  const cpCount = FIG5_CHARGE_POINTS.length;
  const { chainId } = await provider.getNetwork();

  // ---- contracts (automine still on: deployContracts waits for each receipt)
  const authority = devAccount(0, provider);
  progress(`seed ${seed}, mu ${mu}, sigma ${sigma}: deploying fresh contracts`);
  const { deployment } = await deployContracts(new NonceManager(authority), { mu: parseSd59x18(mu), sigma: parseSd59x18(sigma) });
  const evaluationsAddress = deployment.Evaluations;
  if (!evaluationsAddress) throw new RuntimeError("deployContracts returned no Evaluations address");
  const ledgerAddress = deployment.ChargingLedger;
  const registryAddress = deployment.Registry;
  const domain = ledgerDomain(chainId, ledgerAddress);

  // ---- accounts: one owner, a signer per charge point, two fresh EVs per step
  const owner = derivedWallet(seed, "owner", 0);
  const cps: ChainCp[] = FIG5_CHARGE_POINTS.map((_, cp) => {
    const chargePointId = `FIG5-CP${cp + 1}`;
    return { chargePointId, cpId: cpIdOf(chargePointId), signer: derivedWallet(seed, "signer", cp) };
  });
  const evsA = Array.from({ length: FIG5_STEPS }, (_, step) => derivedWallet(seed, "ev-a", step));
  const evsB = Array.from({ length: FIG5_STEPS }, (_, step) => derivedWallet(seed, "ev-b", step));
  const evs = [...evsA, ...evsB];
  const authorityWallet = new Wallet(authority.privateKey);
  const funded = [owner, ...cps.map((cp) => cp.signer), ...evs];

  const block = await provider.getBlock("latest");
  if (!block) throw new RuntimeError("the chain has no latest block");
  const validUntil = BigInt(block.timestamp) + 10n * 365n * 24n * 3600n;

  progress(`funding ${funded.length} derived wallets (anvil_setBalance)`);
  const fundingHex = toQuantity(FUNDING_WEI);
  await Promise.all(funded.map((wallet) => provider.send("anvil_setBalance", [wallet.address, fundingHex])));

  const miner = new WaveMiner(provider, chainId);
  await miner.prime([authorityWallet, ...funded].map((wallet) => wallet.address));

  await provider.send("evm_setAutomine", [false]);
  try {
    progress(`attesting the owner and ${evs.length} EVs (${seconds()})`);
    await miner.wave([
      { who: owner.address, role: Role.Owner },
      ...evs.map((ev) => ({ who: ev.address, role: Role.EV })),
    ].map(({ who, role }) => ({
      action: `attesting ${who} for role ${role}`,
      wallet: authorityWallet,
      request: { to: registryAddress, data: registryInterface.encodeFunctionData("attest", [who, role, validUntil]), gasLimit: GAS.attest },
    })));

    progress(`registering ${cpCount} charge points in area ${AREA_ID} (${seconds()})`);
    await miner.wave(cps.map((cp) => ({
      action: `registering ${cp.chargePointId}`,
      wallet: owner,
      request: {
        to: registryAddress,
        data: registryInterface.encodeFunctionData("registerChargePoint", [
          cp.cpId, CpKind.Private, AREA_ID, cp.signer.address, PRICE_WEI_PER_KWH, 11_000, new Uint8Array([1, 2, 3]),
        ]),
        gasLimit: GAS.register,
      },
    })));

    // ---- sessions: EV A_s charges once at CP1..CP3, EV B_s three times at CP4
    const cp4 = cps[cpCount - 1];
    if (!cp4) throw new RuntimeError("no CP4");
    const sessions: PlannedSession[] = [];
    for (let step = 0; step < FIG5_STEPS; step++) {
      const evA = evsA[step];
      const evB = evsB[step];
      if (!evA || !evB) throw new RuntimeError(`no EVs for step ${step + 1}`);
      for (const cp of cps.slice(0, cpCount - 1)) sessions.push({ step, ev: evA, cp });
      for (let i = 0; i < 3; i++) sessions.push({ step, ev: evB, cp: cp4 });
    }
    const depositWei = costOf(ENERGY_WH, PRICE_WEI_PER_KWH);

    progress(`opening ${sessions.length} sessions (${seconds()})`);
    const opened = await miner.wave(sessions.map((session) => ({
      action: `step ${session.step + 1}: ${session.ev.address} opening a session at ${session.cp.chargePointId}`,
      wallet: session.ev,
      request: {
        to: ledgerAddress,
        data: ledgerInterface.encodeFunctionData("openSession", [session.cp.cpId, MAX_ENERGY_WH]),
        value: depositWei,
        gasLimit: GAS.open,
      },
    })));
    opened.forEach((receipt, i) => {
      const session = sessions[i];
      if (!session) return;
      session.sessionId = eventOf(receipt, ledgerAddress, ledgerInterface, "SessionOpened", "openSession").args.getValue("sessionId") as bigint;
    });
    const idOf = (session: PlannedSession): bigint => {
      if (session.sessionId === undefined) throw new RuntimeError(`step ${session.step + 1}: a session has no id`);
      return session.sessionId;
    };

    progress(`authorizing ${sessions.length} sessions by the pile signers (${seconds()})`);
    await miner.wave(sessions.map((session) => ({
      action: `authorizing session ${idOf(session)}`,
      wallet: session.cp.signer,
      request: { to: ledgerAddress, data: ledgerInterface.encodeFunctionData("authorize", [idOf(session)]), gasLimit: GAS.authorize },
    })));

    progress(`settling ${sessions.length} sessions with signed totals (${seconds()})`);
    const settleItems: WaveItem[] = [];
    for (const session of sessions) {
      const total: SessionTotal = {
        sessionId: idOf(session),
        cpId: session.cp.cpId,
        meterStartWh: METER_START_WH,
        meterStopWh: METER_START_WH + ENERGY_WH,
        startedAt: STARTED_AT,
        stoppedAt: STARTED_AT + 3_600n,
        evBehaviour: 0,
      };
      const signature = await signSessionTotal(session.cp.signer, domain, total);
      settleItems.push({
        action: `settling session ${total.sessionId}`,
        wallet: session.ev,
        request: {
          to: ledgerAddress,
          data: ledgerInterface.encodeFunctionData("settle", [
            total.sessionId, total.meterStartWh, total.meterStopWh, total.startedAt, total.stoppedAt, total.evBehaviour, signature,
          ]),
          gasLimit: GAS.settle,
        },
      });
    }
    const settled = await miner.wave(settleItems);
    settled.forEach((receipt, i) => {
      const evScore = eventOf(receipt, ledgerAddress, ledgerInterface, "SessionSettled", "settle").args.getValue("evScore") as bigint;
      if (evScore !== 1n) throw new RuntimeError(`session ${sessions[i]?.sessionId} settled with evScore ${evScore}, not a clean +1`);
    });

    // ---- ratings: one wave (one block) per step, so each charge point's ratings land in step order
    progress(`rating: ${FIG5_STEPS} steps × ${cpCount} charge points, R_v checked before each (${seconds()})`);
    const credibilityOf = async (ev: string): Promise<bigint> =>
      ledgerInterface.decodeFunctionResult(
        "credibility",
        await provider.call({ to: ledgerAddress, data: ledgerInterface.encodeFunctionData("credibility", [ev]) }),
      )[0] as bigint;
    const contract: number[][] = cps.map(() => []);
    const previous: bigint[] = cps.map(() => 0n);
    for (let step = 0; step < FIG5_STEPS; step++) {
      const stepSessions = sessions.filter((session) => session.step === step);
      // EV A rates its session at each of CP1..CP3; EV B rates only the last of its three sessions at CP4.
      const raters = cps.map((cp) => {
        const atCp = stepSessions.filter((session) => session.cp === cp);
        const last = atCp.reduce<PlannedSession | undefined>((best, s) => (best === undefined || idOf(s) > idOf(best) ? s : best), undefined);
        if (!last) throw new RuntimeError(`step ${step + 1}: no session at ${cp.chargePointId}`);
        return last;
      });
      const credibilities = await Promise.all(raters.map((rater) => credibilityOf(rater.ev.address)));
      credibilities.forEach((credibility, cpIndex) => {
        if (credibility !== BigInt(FIG5_RATER_CREDIBILITY)) {
          throw new RuntimeError(
            `step ${step + 1}, CP${cpIndex + 1}: rater ${raters[cpIndex]?.ev.address} has R_v = ${credibility} on the ledger, expected exactly ${FIG5_RATER_CREDIBILITY}`,
          );
        }
      });
      const actions = raters.map((rater, cpIndex) => `step ${step + 1}: rating CP${cpIndex + 1} ${ratings[cpIndex]?.[step]} (session ${idOf(rater)})`);
      const receipts = await miner.wave(raters.map((rater, cpIndex) => ({
        action: actions[cpIndex] ?? "rating",
        wallet: rater.ev,
        request: {
          to: evaluationsAddress,
          data: evaluationsInterface.encodeFunctionData("rate", [idOf(rater), ratings[cpIndex]?.[step]]),
          gasLimit: GAS.rate,
        },
      })));
      receipts.forEach((receipt, cpIndex) => {
        const action = actions[cpIndex] ?? "rating";
        const evaluated = eventOf(receipt, evaluationsAddress, evaluationsInterface, "Evaluated", action).args;
        const eventCp = evaluated.getValue("cpId") as string;
        const eventEv = evaluated.getValue("ev") as string;
        const eventScore = evaluated.getValue("score") as bigint;
        const before = evaluated.getValue("reputationBefore") as bigint;
        const after = evaluated.getValue("reputationAfter") as bigint;
        const rater = raters[cpIndex];
        if (eventCp !== cps[cpIndex]?.cpId || eventEv !== rater?.ev.address || eventScore !== BigInt(ratings[cpIndex]?.[step] ?? 0)) {
          throw new RuntimeError(`${action}: the Evaluated event names cp ${eventCp}, ev ${eventEv}, score ${eventScore}`);
        }
        if (before !== previous[cpIndex]) {
          throw new RuntimeError(`${action}: reputationBefore ${before} is not the previous reputationAfter ${previous[cpIndex]}`);
        }
        previous[cpIndex] = after;
        contract[cpIndex]?.push(fromSd59x18(after));
      });
      if ((step + 1) % 30 === 0) progress(`rated ${step + 1}/${FIG5_STEPS} steps (${seconds()})`);
    }

    // ---- the contract's state agrees with the events
    const count = evaluationsInterface.decodeFunctionResult(
      "evaluationCount",
      await provider.call({ to: evaluationsAddress, data: evaluationsInterface.encodeFunctionData("evaluationCount") }),
    )[0] as bigint;
    if (count !== BigInt(FIG5_STEPS * cpCount)) throw new RuntimeError(`the contract counts ${count} evaluations, expected ${FIG5_STEPS * cpCount}`);
    for (const [cpIndex, cp] of cps.entries()) {
      const stored = evaluationsInterface.decodeFunctionResult(
        "reputation",
        await provider.call({ to: evaluationsAddress, data: evaluationsInterface.encodeFunctionData("reputation", [cp.cpId]) }),
      )[0] as bigint;
      if (stored !== previous[cpIndex]) {
        throw new RuntimeError(`CP${cpIndex + 1}: reputation() is ${stored}, the last Evaluated event said ${previous[cpIndex]}`);
      }
    }

    // ---- the twin
    const parameters: ReputationParameters = { mu: Number(mu), sigma: Number(sigma) };
    const twin = ratings.map((scores) => twinCurve(scores, FIG5_RATER_CREDIBILITY, parameters));
    let maxTwinDifference = 0;
    contract.forEach((curve, cp) =>
      curve.forEach((value, step) => {
        maxTwinDifference = Math.max(maxTwinDifference, Math.abs(value - (twin[cp]?.[step] ?? Number.NaN)));
      }),
    );
    if (Number.isNaN(maxTwinDifference)) throw new RuntimeError("the twin and the contract curves differ in shape");
    const transactions = miner.sent + 4; // + the deployment's four transactions, each in its own block
    const blocks = miner.blocks + 4;
    progress(`done: ${transactions} transactions in ${blocks} blocks, ${seconds()}`);

    return {
      seed,
      mu,
      sigma,
      deployment,
      labels: FIG5_CHARGE_POINTS.map((cp) => cp.label),
      ratings,
      contract,
      twin,
      maxTwinDifference,
      transactions,
      blocks,
      elapsedMs: performance.now() - run.started,
    };
  } finally {
    // Whatever happened, leave the chain mining on its own again (pending leftovers go into one last block).
    await provider.send("evm_mine", []).catch(() => undefined);
    await provider.send("evm_setAutomine", [true]);
  }
}

import { resolve } from "node:path";
import { NonceManager, formatEther, isAddress, type Provider, type Signer } from "ethers";
import type { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import { deviceEncryptionKey, loadKeystore, readPasswordFileChecked } from "../crypto/keystore.ts";
import { sealTo } from "../crypto/seal.ts";
import { connectRegistry, CpKind, Role, type CpKindName } from "../chain/contracts.ts";
import {
  DEFAULT_AUCTION_TERMS,
  DEFAULT_AUTH_TIMEOUT_S,
  DEFAULT_BOOKKEEPER_PERIOD_S,
  DEFAULT_SETTLE_TIMEOUT_S,
  deployContracts,
  type AuctionTerms,
} from "../chain/deploy.ts";
import { parseSd59x18 } from "../reputation/eq2.ts";
import { writeDeployment } from "../chain/deployment.ts";
import { DEV_CHAIN_ID } from "../chain/dev-chain.ts";
import { devAccount } from "../chain/dev-accounts.ts";
import { attest, registerChargePoint } from "../chain/operations.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { RuntimeError, UsageError } from "../errors.ts";
import {
  addChainOptions,
  addSignerOptions,
  chainProvider,
  deploymentOf,
  parseUint,
  parseWei,
  resolveSigner,
  type SignerOptions,
} from "./chain-context.ts";

function parseDecimalOption(value: string, flag: string): bigint {
  try {
    return parseSd59x18(value);
  } catch {
    throw new UsageError(`${flag}: expected a decimal number such as 1.5, got "${value}"`);
  }
}

const progress = (line: string): void => void process.stderr.write(`${line}\n`);

interface DeployOptions extends SignerOptions {
  out: string;
  authority?: string;
  authTimeoutS: string;
  settleTimeoutS: string;
  mu: string;
  sigma: string;
  bookkeeperPeriodS: string;
  bidBond: string;
  minInvitationDeposit: string;
  convergenceBps: string;
  maxBidders: string;
  decisionSeconds: string;
}

/** PricingAuction.MAX_BIDDER_CAP: more bidders would let one invitation's loops outgrow a block. */
const MAX_BIDDER_CAP = 64;

interface RegisterOptions extends SignerOptions {
  config: string;
  kind: string;
  area: string;
  price: string;
  maxPowerW: string;
}

export function registerChainCommands(program: Command): void {
  const chain = program.command("chain").description("deploy contracts and register this charge point");

  addSignerOptions(
    addChainOptions(
      chain
        .command("deploy")
        .description("deploy all contracts and write the address book")
        .requiredOption("--out <file>", "where to write the address book JSON")
        .option("--authority <address>", "identity authority (default: the deployer)")
        .option("--auth-timeout-s <s>", "seconds the pile has to authorize an opened session", String(DEFAULT_AUTH_TIMEOUT_S))
        .option("--settle-timeout-s <s>", "seconds after authorization before anyone may expire a session", String(DEFAULT_SETTLE_TIMEOUT_S))
        .option("--mu <number>", "eq. 2's adjustment coefficient μ (> 1): larger moves reputations more slowly", "2")
        .option("--sigma <number>", "eq. 2's damping width σ (> 0)", "1.5")
        .option("--bookkeeper-period-s <s>", "length of a bookkeeper period T in seconds", String(DEFAULT_BOOKKEEPER_PERIOD_S))
        .option("--bid-bond <amount>", "auction: bond a pile puts up with its first bid, refunded unless it never reveals", `${DEFAULT_AUCTION_TERMS.bidBondWei}`)
        .option("--min-invitation-deposit <amount>", "auction: least deposit an EV puts up with an invitation", `${DEFAULT_AUCTION_TERMS.minInvitationDepositWei}`)
        .option("--convergence-bps <bps>", "auction: bidding goes on while the best price improves by at least this many basis points", String(DEFAULT_AUCTION_TERMS.convergenceBps))
        .option("--max-bidders <n>", `auction: most piles that may bid for one invitation (1..${MAX_BIDDER_CAP})`, String(DEFAULT_AUCTION_TERMS.maxBidders))
        .option("--decision-seconds <s>", "auction: time the EV has to decide, then to open the session, before bidders may claim its deposit", String(DEFAULT_AUCTION_TERMS.decisionSeconds)),
      { withConfig: false },
    ),
    0,
  ).action(async (options: DeployOptions) => {
    if (options.authority !== undefined && !isAddress(options.authority)) {
      throw new UsageError(`--authority: expected a 0x address, got "${options.authority}"`);
    }
    const authTimeoutS = BigInt(parseUint(options.authTimeoutS, "--auth-timeout-s"));
    const settleTimeoutS = BigInt(parseUint(options.settleTimeoutS, "--settle-timeout-s"));
    if (authTimeoutS === 0n || settleTimeoutS === 0n) throw new UsageError("--auth-timeout-s and --settle-timeout-s must be > 0");
    const mu = parseDecimalOption(options.mu, "--mu");
    const sigma = parseDecimalOption(options.sigma, "--sigma");
    if (mu <= 10n ** 18n) throw new UsageError(`--mu must be greater than 1, got ${options.mu}`);
    if (sigma <= 0n) throw new UsageError(`--sigma must be greater than 0, got ${options.sigma}`);
    const bookkeeperPeriodS = BigInt(parseUint(options.bookkeeperPeriodS, "--bookkeeper-period-s"));
    if (bookkeeperPeriodS === 0n) throw new UsageError("--bookkeeper-period-s must be > 0");
    const auction = parseAuctionTerms(options);
    const provider = await chainProvider(options);
    try {
      const deployer = await resolveSigner(options, provider);
      progress(`deploying from ${await deployer.getAddress()} to chain ${(await provider.getNetwork()).chainId}`);
      const { deployment } = await deployContracts(new NonceManager(deployer), {
        ...(options.authority ? { authority: options.authority } : {}),
        authTimeoutS,
        settleTimeoutS,
        mu,
        sigma,
        bookkeeperPeriodS,
        auction,
        onProgress: progress,
      });
      writeDeployment(options.out, deployment);
      process.stdout.write(`${JSON.stringify(deployment, null, 2)}\nwrote ${resolve(options.out)}\n`);
    } finally {
      provider.destroy();
    }
  });

  addSignerOptions(
    addChainOptions(
      chain
        .command("register")
        .description("register this charge point: kind, area, signer (device key), price and sealed owner contact")
        .requiredOption("--config <file>", "the agent config (chargePointId, chain.keystore, owner.contact)")
        .option("--kind <kind>", "private | public | operator", "private")
        .option("--area <id>", "area id the pile serves (for auctions)", "1")
        .requiredOption("--price <amount>", "price per kWh: wei, or with a unit (0.0003ether)")
        .option("--max-power-w <w>", "the pile's maximum power in W", "11000"),
      { withConfig: false },
    ),
    2,
  ).action(async (options: RegisterOptions) => {
    const config = loadConfig(options.config);
    const kind = parseKind(options.kind);
    const areaId = BigInt(parseUint(options.area, "--area"));
    const pricePerKWh = parseWei(options.price, "--price");
    if (pricePerKWh === 0n) throw new UsageError("--price: must be more than 0 wei per kWh");
    const maxPowerW = parseUint(options.maxPowerW, "--max-power-w", 0xffffffff);
    if (!config.owner?.contact) {
      throw new UsageError(`${options.config}: owner.contact: required to register (it is stored on chain sealed, never in clear)`);
    }
    if (!config.chain.passwordFile) throw new UsageError(`${options.config}: chain.passwordFile: required to unlock the device key`);
    const { password } = readPasswordFileChecked(config.chain.passwordFile);
    const device = await loadKeystore(config.chain.keystore, password);
    // Sealed to the pile's own encryption key: only the pile (and its owner, holding the device key) can open it;
    // the pile re-seals it to each EV that asks (paper §3.1).
    const sealedContact = sealTo(deviceEncryptionKey(device).publicKey, config.owner.contact);

    const provider = await chainProvider(options, config);
    try {
      const deployment = deploymentOf(options, config);
      const owner = await resolveSigner(options, provider);
      const registry = connectRegistry(deployment.Registry, owner);
      const ownerAddress = await owner.getAddress();
      const role = kind === "Operator" ? Role.Operator : Role.Owner;
      if (!(await registry.isAttested(ownerAddress, role))) {
        await attestOnDevChain(provider, deployment.Registry, ownerAddress, role);
      }
      await ensureSignerHasGas(provider, owner, device.address);
      const receipt = await registerChargePoint(registry, {
        chargePointId: config.chargePointId,
        kind,
        areaId,
        signer: device.address,
        pricePerKWh,
        maxPowerW,
        ownerContactSealed: sealedContact,
      });
      process.stdout.write(
        [
          `registered ${config.chargePointId}`,
          `  cpId:    ${cpIdOf(config.chargePointId)}`,
          `  owner:   ${ownerAddress}`,
          `  signer:  ${device.address}`,
          `  price:   ${pricePerKWh} wei/kWh (${formatEther(pricePerKWh)} per kWh)`,
          `  tx:      ${receipt.hash}`,
          `next: trustpile selftest --config ${options.config} --relay (with no EV plugged in)`,
          "",
        ].join("\n"),
      );
    } finally {
      provider.destroy();
    }
  });
}

/** The PricingAuction's constructor terms, checked as its constructor checks them (it reverts InvalidParameters). */
function parseAuctionTerms(options: DeployOptions): AuctionTerms {
  const bidBondWei = parseWei(options.bidBond, "--bid-bond");
  const minInvitationDepositWei = parseWei(options.minInvitationDeposit, "--min-invitation-deposit");
  if (minInvitationDepositWei >= 2n ** 96n) {
    throw new UsageError(`--min-invitation-deposit: must be below 2^96 wei (the contract's deposit field), got ${minInvitationDepositWei}`);
  }
  const convergenceBps = parseUint(options.convergenceBps, "--convergence-bps", 10_000);
  const maxBidders = parseUint(options.maxBidders, "--max-bidders", MAX_BIDDER_CAP);
  if (maxBidders === 0) throw new UsageError(`--max-bidders: must be 1..${MAX_BIDDER_CAP}, got 0`);
  const decisionSeconds = parseUint(options.decisionSeconds, "--decision-seconds", 0xffffffff);
  if (decisionSeconds === 0) throw new UsageError("--decision-seconds: must be more than 0");
  return { bidBondWei, minInvitationDepositWei, convergenceBps, maxBidders, decisionSeconds };
}

/** The pile's device key sends authorize and settle transactions, so it needs gas money. */
async function ensureSignerHasGas(provider: Provider, owner: Signer, signer: string): Promise<void> {
  if ((await provider.getBalance(signer)) > 0n) return;
  const { chainId } = await provider.getNetwork();
  if (chainId !== BigInt(DEV_CHAIN_ID)) {
    progress(`warning: the pile signer ${signer} has no balance; send it some gas money before the first session`);
    return;
  }
  progress(`dev chain: funding the pile signer ${signer} with ${formatEther(DEV_SIGNER_FUNDING_WEI)} from the owner`);
  const tx = await owner.sendTransaction({ to: signer, value: DEV_SIGNER_FUNDING_WEI });
  await tx.wait();
}

const DEV_SIGNER_FUNDING_WEI = 10n ** 18n;

function parseKind(value: string): CpKindName {
  const kinds = Object.keys(CpKind) as CpKindName[];
  const kind = kinds.find((k) => k.toLowerCase() === value.toLowerCase());
  if (!kind) throw new UsageError(`--kind: expected private, public or operator, got "${value}"`);
  return kind;
}

/**
 * On a dev chain anvil's account 0 is the identity authority, so the CLI attests for the newcomer; on any other
 * chain attestation is the authority's act and its absence is an error that says whom to ask.
 */
export async function attestOnDevChain(provider: Provider, registryAddress: string, who: string, role: number): Promise<void> {
  const { chainId } = await provider.getNetwork();
  const authority = devAccount(0, provider);
  const registry = connectRegistry(registryAddress, authority);
  if (chainId !== BigInt(DEV_CHAIN_ID) || (await registry.authority()) !== authority.address) {
    throw new RuntimeError(`${who} is not attested for role ${role}: ask the identity authority (${await registry.authority()}) to attest it`);
  }
  const block = await provider.getBlock("latest");
  const validUntil = BigInt((block?.timestamp ?? Math.floor(Date.now() / 1000)) + 365 * 24 * 3600);
  progress(`dev chain: attesting ${who} for role ${role} until ${new Date(Number(validUntil) * 1000).toISOString()}`);
  await attest(registry, who, role, validUntil);
}

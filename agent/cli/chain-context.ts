/**
 * What every chain command shares (DESIGN §5.1): where the node is (`--rpc`), where the address book is
 * (`--deployment`), and who signs (`--keystore` + `--password-file`, `--private-key-file`, or on a dev chain
 * anvil's well-known account `--account N`). Defaults come from `--config` when given, then the built-in ones.
 */
import { Option, type Command } from "commander";
import { Wallet, parseUnits, type Provider, type Signer } from "ethers";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { loadKeystore, readPasswordFileChecked, readPrivateKeyFile } from "../crypto/keystore.ts";
import { DEV_CHAIN_ID } from "../chain/dev-chain.ts";
import { devAccount } from "../chain/dev-accounts.ts";
import { readDeployment, type Deployment } from "../chain/deployment.ts";
import { connectProvider } from "../chain/provider.ts";
import { UsageError } from "../errors.ts";

export const DEFAULT_RPC_URL = "http://127.0.0.1:8545";
export const DEFAULT_DEPLOYMENT = "./deployment.json";

export interface ChainOptions {
  rpc?: string;
  deployment?: string;
  config?: string;
}

export interface SignerOptions extends ChainOptions {
  keystore?: string;
  passwordFile?: string;
  privateKeyFile?: string;
  account?: string;
}

export function addChainOptions(command: Command, { withConfig = true } = {}): Command {
  command
    .option("--rpc <url>", `chain RPC URL (default: config chain.rpcUrl, then ${DEFAULT_RPC_URL})`)
    .option("--deployment <file>", `address book (default: config chain.deployment, then ${DEFAULT_DEPLOYMENT})`);
  if (withConfig) command.option("--config <file>", "take defaults from this agent config");
  return command;
}

export function addSignerOptions(command: Command, defaultAccount: number): Command {
  return command
    .option("--keystore <file>", "sign with this encrypted JSON keystore")
    .option("--password-file <file>", "the keystore's password (first line)")
    .option("--private-key-file <file>", "sign with the hex private key in this file")
    .addOption(
      new Option("--account <n>", `on a dev chain (id ${DEV_CHAIN_ID}): anvil account number`).default(String(defaultAccount)),
    );
}

export function optionalConfig(options: ChainOptions): Config | undefined {
  return options.config ? loadConfig(options.config) : undefined;
}

export function rpcUrlOf(options: ChainOptions, config?: Config): string {
  return options.rpc ?? config?.chain.rpcUrl ?? DEFAULT_RPC_URL;
}

export function deploymentOf(options: ChainOptions, config?: Config): Deployment {
  return readDeployment(options.deployment ?? config?.chain.deployment ?? DEFAULT_DEPLOYMENT);
}

export async function chainProvider(options: ChainOptions, config?: Config): Promise<Provider> {
  return connectProvider(rpcUrlOf(options, config));
}

function warn(message: string): void {
  process.stderr.write(`trustpile: warning: ${message}\n`);
}

/** Resolves who signs: a keystore, a private key file, or (dev chains only) an anvil account. */
export async function resolveSigner(options: SignerOptions, provider: Provider): Promise<Signer> {
  if (options.keystore) {
    if (!options.passwordFile) throw new UsageError(`--keystore ${options.keystore} needs --password-file FILE`);
    const { password, permissionWarning } = readPasswordFileChecked(options.passwordFile);
    if (permissionWarning) warn(permissionWarning);
    return (await loadKeystore(options.keystore, password, { onPermissionWarning: warn })).connect(provider);
  }
  if (options.privateKeyFile) {
    // Same permission rule as the keystore (docs/SECURITY.md): a raw key file readable by others is the key itself.
    const { privateKey, permissionWarning } = readPrivateKeyFile(options.privateKeyFile);
    if (permissionWarning) warn(permissionWarning);
    return new Wallet(privateKey, provider);
  }
  const { chainId } = await provider.getNetwork();
  if (chainId !== BigInt(DEV_CHAIN_ID)) {
    throw new UsageError(
      `chain ${chainId} is not a dev chain: give --keystore FILE --password-file FILE or --private-key-file FILE`,
    );
  }
  return devAccount(parseAccountNumber(options.account), provider);
}

export function parseAccountNumber(value: string | undefined): number {
  const account = Number(value ?? "0");
  if (!Number.isInteger(account) || account < 0 || account > 9) {
    throw new UsageError(`--account: expected an anvil account number 0..9, got "${value}"`);
  }
  return account;
}

/** An amount of wei: a plain integer ("300000000000000") or a number with a unit ("0.0003ether", "300000 gwei"). */
export function parseWei(value: string, what: string): bigint {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(wei|gwei|ether)?\s*$/.exec(value);
  if (!match?.[1]) throw new UsageError(`${what}: expected an amount like 300000000000000, 300000gwei or 0.0003ether, got "${value}"`);
  const unit = match[2] ?? "wei";
  if (unit === "wei" && match[1].includes(".")) throw new UsageError(`${what}: wei amounts are whole numbers, got "${value}"`);
  try {
    return parseUnits(match[1], unit);
  } catch {
    throw new UsageError(`${what}: "${value}" has more decimals than ${unit} allows`);
  }
}

export function parseUint(value: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed > max) {
    throw new UsageError(`${what}: expected a whole number 0..${max}, got "${value}"`);
  }
  return parsed;
}

/** A charge point given as its OCPP identity ("cp-001") or its on-chain id (0x + 64 hex). */
export function isCpIdHex(value: string): boolean {
  return /^0x[0-9a-fA-F]{64}$/.test(value);
}

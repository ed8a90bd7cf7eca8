import { createInterface } from "node:readline/promises";
import { Writable } from "node:stream";
import { Option, type Command } from "commander";
import { formatEther, type Provider } from "ethers";
import { loadConfig } from "../config/load.ts";
import { connectProvider } from "../chain/provider.ts";
import {
  createKeystore,
  deviceEncryptionKey,
  loadKeystore,
  readKeystoreAddress,
  readPasswordFileChecked,
  type CreateKeystoreOptions,
} from "../crypto/keystore.ts";
import { publicKeyToBytes32 } from "../crypto/seal.ts";
import { UsageError, describeError } from "../errors.ts";

interface KeysOptions {
  keystore: string;
  passwordFile?: string;
  /** `keys show`: the chain to read the balance from (else the config's chain.rpcUrl). */
  rpc?: string;
  /** `keys show`: an agent config giving chain.rpcUrl and, without --keystore, chain.keystore. */
  config?: string;
  /**
   * For tests only (a hidden option): scrypt N for `keys new`. The default N costs seconds per keystore, which
   * integration tests cannot afford; a small N makes the keystore cheap to brute-force, so never use it on a pile.
   * Not an environment variable, because every TRUSTPILE_* variable is a config override.
   */
  insecureScryptN?: string;
}

function warn(message: string): void {
  process.stderr.write(`trustpile: warning: ${message}\n`);
}

function scryptOptionsOf(raw: string | undefined): CreateKeystoreOptions {
  if (raw === undefined || raw === "") return {};
  const scryptN = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(scryptN) || scryptN < 2 || !Number.isInteger(Math.log2(scryptN))) {
    throw new UsageError(`--insecure-scrypt-n: expected a power of two >= 2, got "${raw}"`);
  }
  return { scryptN };
}

function passwordFromFile(path: string): string {
  const { password, permissionWarning } = readPasswordFileChecked(path);
  if (permissionWarning !== undefined) warn(permissionWarning);
  return password;
}

/**
 * Reads one line from the terminal without echoing it. The prompt goes to stderr so stdout carries only results.
 * readline writes the prompt synchronously inside `question`, so muting right after the call hides only the typing.
 */
async function promptHidden(prompt: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
      if (!muted) process.stderr.write(chunk);
      callback();
    },
  });
  const abort = new AbortController();
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  // In raw mode Ctrl-C reaches readline, not the process; without this the prompt would just pause forever.
  rl.on("SIGINT", () => abort.abort());
  try {
    const pending = rl.question(prompt, { signal: abort.signal });
    muted = true;
    return await pending;
  } catch (error) {
    if (abort.signal.aborted) throw new UsageError("keys new: password prompt cancelled", { cause: error });
    throw error;
  } finally {
    process.stderr.write("\n");
    rl.close();
  }
}

async function newKeystorePassword(passwordFile: string | undefined): Promise<string> {
  if (passwordFile !== undefined) return passwordFromFile(passwordFile);
  if (process.stdin.isTTY !== true) {
    throw new UsageError("keys new: give --password-file FILE (no terminal to ask for a password)");
  }
  const password = await promptHidden("New keystore password: ");
  if (password.length === 0) throw new UsageError("keys new: the password must not be empty");
  const repeated = await promptHidden("Repeat the password: ");
  if (repeated !== password) throw new UsageError("keys new: the two passwords differ; nothing was written");
  return password;
}

export function registerKeysCommands(program: Command): void {
  const keys = program.command("keys").description("device key (encrypted JSON keystore, file mode 0600)");

  keys
    .command("new")
    .description("create a new device key; prints its address and X25519 encryption public key, never the private key")
    .requiredOption("--keystore <file>", "keystore to create (refuses to overwrite)")
    .option("--password-file <file>", "file whose first line is the password (else asked twice on the terminal)")
    .addOption(new Option("--insecure-scrypt-n <n>").hideHelp())
    .action(async (options: KeysOptions) => {
      const scryptOptions = scryptOptionsOf(options.insecureScryptN);
      const password = await newKeystorePassword(options.passwordFile);
      const created = await createKeystore(options.keystore, password, scryptOptions);
      process.stdout.write(
        `address: ${created.address}\n` +
          `encryptionPublicKey: ${publicKeyToBytes32(created.encryptionPublicKey)}\n` +
          `keystore: ${options.keystore}\n` +
          `next: send some gas money (e.g. ${SUGGESTED_FUNDING_ETHER} ether on your network) to ${created.address}, ` +
          `then run: trustpile chain register --config CONFIG --price PRICE_PER_KWH ` +
          `(CONFIG names this keystore as chain.keystore)\n`,
      );
      if (scryptOptions.scryptN !== undefined) {
        warn(`keystore written with scrypt N=${scryptOptions.scryptN} (--insecure-scrypt-n: for tests only)`);
      }
    });

  keys
    .command("show")
    .description(
      "print the device key's address; with a chain (--rpc or --config) also its balance, and warn when it cannot pay " +
        "for the next session; with a password also check it and print the encryption public key",
    )
    .option("--keystore <file>", "keystore to read (default: the config's chain.keystore)")
    .option("--password-file <file>", "file whose first line is the password; verifies that the keystore decrypts")
    .option("--rpc <url>", "read the balance from this chain RPC URL (default: the config's chain.rpcUrl)")
    .option("--config <file>", "agent config: chain.keystore and chain.rpcUrl")
    .action(async (options: Partial<KeysOptions>) => {
      const config = options.config === undefined ? undefined : loadConfig(options.config);
      const keystore = options.keystore ?? config?.chain.keystore;
      if (keystore === undefined) throw new UsageError("keys show: give --keystore FILE or --config FILE");
      let address = readKeystoreAddress(keystore);
      if (options.passwordFile === undefined) {
        process.stdout.write(`address: ${address}\n`);
      } else {
        const wallet = await loadKeystore(keystore, passwordFromFile(options.passwordFile));
        address = wallet.address;
        process.stdout.write(
          `address: ${wallet.address}\n` +
            `encryptionPublicKey: ${publicKeyToBytes32(deviceEncryptionKey(wallet).publicKey)}\n`,
        );
      }
      const rpcUrl = options.rpc ?? config?.chain.rpcUrl;
      if (rpcUrl !== undefined) await showBalance(rpcUrl, address);
    });
}

/**
 * Gas the pile's device key spends per session: one authorize and one settle (bench/gas.ts, `npm run gas`). The
 * settle figure is the cold one (the first settle of a pile writes fresh storage slots), the larger of the two
 * measured, so the warning errs on the side of funding. If the contracts change, re-measure and update these.
 */
export const AUTHORIZE_GAS = 36_419n;
export const SETTLE_GAS_COLD = 150_728n;
export const SESSION_GAS = AUTHORIZE_GAS + SETTLE_GAS_COLD;

/** What `keys new` suggests sending to a fresh device key: many sessions' worth at ordinary L2 gas prices. */
const SUGGESTED_FUNDING_ETHER = "0.05";

/**
 * What the next session's authorize + settle cost at the current price. The agent offers maxFeePerGas (EIP-1559)
 * or gasPrice (older chains), and a node accepts a transaction only if the balance covers gas × that offer, so the
 * estimate uses the same figure.
 */
export async function sessionGasCostWei(provider: Provider): Promise<bigint> {
  const fees = await provider.getFeeData();
  const pricePerGas = fees.maxFeePerGas ?? fees.gasPrice ?? 0n;
  return SESSION_GAS * pricePerGas;
}

/**
 * Prints the device key's balance. An unreachable chain is not an error here: the address is what the owner
 * came for (to fund it), so one warning line says why there is no balance and the command still succeeds.
 */
async function showBalance(rpcUrl: string, address: string): Promise<void> {
  let provider: Provider;
  try {
    provider = await connectProvider(rpcUrl);
  } catch (error) {
    warn(`balance not checked: ${describeError(error)}`);
    return;
  }
  try {
    const [balance, needed, network] = await Promise.all([
      provider.getBalance(address),
      sessionGasCostWei(provider),
      provider.getNetwork(),
    ]);
    process.stdout.write(`balance: ${formatEther(balance)} ether (${balance} wei) on chain ${network.chainId}\n`);
    if (balance < needed) {
      warn(
        `balance ${formatEther(balance)} ether cannot pay for the next session's authorize + settle ` +
          `(about ${formatEther(needed)} ether at the current gas price); fund ${address}`,
      );
    }
  } catch (error) {
    warn(`balance not checked: chain RPC ${rpcUrl} failed: ${describeError(error)}`);
  } finally {
    provider.destroy();
  }
}

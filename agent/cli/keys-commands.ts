import { createInterface } from "node:readline/promises";
import { Writable } from "node:stream";
import { Option, type Command } from "commander";
import {
  createKeystore,
  deviceEncryptionKey,
  loadKeystore,
  readKeystoreAddress,
  readPasswordFileChecked,
  type CreateKeystoreOptions,
} from "../crypto/keystore.ts";
import { publicKeyToBytes32 } from "../crypto/seal.ts";
import { UsageError } from "../errors.ts";

interface KeysOptions {
  keystore: string;
  passwordFile?: string;
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
          `keystore: ${options.keystore}\n`,
      );
      if (scryptOptions.scryptN !== undefined) {
        warn(`keystore written with scrypt N=${scryptOptions.scryptN} (--insecure-scrypt-n: for tests only)`);
      }
    });

  keys
    .command("show")
    .description("print the device key's address; with a password also check it and print the encryption public key")
    .requiredOption("--keystore <file>", "keystore to read")
    .option("--password-file <file>", "file whose first line is the password; verifies that the keystore decrypts")
    .action(async (options: KeysOptions) => {
      const address = readKeystoreAddress(options.keystore);
      if (options.passwordFile === undefined) {
        process.stdout.write(`address: ${address}\n`);
        return;
      }
      const wallet = await loadKeystore(options.keystore, passwordFromFile(options.passwordFile));
      process.stdout.write(
        `address: ${wallet.address}\n` +
          `encryptionPublicKey: ${publicKeyToBytes32(deviceEncryptionKey(wallet).publicKey)}\n`,
      );
    });
}

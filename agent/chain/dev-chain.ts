/**
 * The embedded chain: an anvil process on loopback, for `trustpile sim`, tests and benchmarks.
 * anvil ships as the optional npm package @foundry-rs/anvil-linux-amd64 (x86-64 Linux only); the pile itself
 * talks to a real network and never needs it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { RuntimeError } from "../errors.ts";

export const DEV_MNEMONIC = "test test test test test test test test test test test junk";
export const DEV_CHAIN_ID = 31337;

export interface DevChainOptions {
  port?: number;
  /** Seconds between blocks; omitted: a block per transaction (instant mining). */
  blockTimeS?: number;
  accounts?: number;
  chainId?: number;
}

export interface DevChain {
  rpcUrl: string;
  pid: number;
  stop(): Promise<void>;
}

export function anvilBinaryPath(): string {
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve("@foundry-rs/anvil-linux-amd64/package.json");
  } catch {
    throw new RuntimeError(
      "anvil is not installed: the embedded chain needs the optional package @foundry-rs/anvil-linux-amd64 (x86-64 Linux only); point chain.rpcUrl at a real node instead",
    );
  }
  const binary = packageJson.replace(/package\.json$/, "bin/anvil");
  if (!existsSync(binary)) throw new RuntimeError(`anvil binary missing at ${binary}; reinstall with npm ci`);
  return binary;
}

/** Starts anvil and resolves once it listens; rejects with anvil's own words if it exits first. */
export async function startDevChain(options: DevChainOptions = {}): Promise<DevChain> {
  const port = options.port ?? 8545;
  const args = [
    "--host", "127.0.0.1",
    "--port", String(port),
    "--accounts", String(options.accounts ?? 10),
    "--chain-id", String(options.chainId ?? DEV_CHAIN_ID),
    "--mnemonic", DEV_MNEMONIC,
    // Keep the last 256 block states in memory and none on disk: by default anvil writes every older state to
    // ~/.foundry/anvil/tmp, gigabytes for a long test run, never removed when the process is killed. 256 blocks
    // is far deeper than any reorg or evm_revert the tests and the sim make.
    "--prune-history", "256",
  ];
  if (options.blockTimeS !== undefined) args.push("--block-time", String(options.blockTimeS));
  const child: ChildProcess = spawn(anvilBinaryPath(), args, { stdio: ["ignore", "pipe", "pipe"] });

  await new Promise<void>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new RuntimeError(`anvil did not start listening on 127.0.0.1:${port} within 10 s: ${output.trim()}`));
    }, 10_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes("Listening on")) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        // Keep draining anvil's output so its pipe never fills and blocks it.
        child.stdout?.resume();
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new RuntimeError(`anvil exited with code ${code} before listening on port ${port}: ${output.trim()}`));
    });
  });

  const pid = child.pid;
  if (pid === undefined) throw new RuntimeError("anvil started without a process id");
  return {
    rpcUrl: `http://127.0.0.1:${port}`,
    pid,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/**
 * A pile's directory as `trustpile start --config <dir>/config.yaml` reads it, for the tests that run the real CLI:
 * the address book, a password file only its owner can read, the device keystore (small scrypt N, so it is cheap)
 * and config.yaml naming them by relative path.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createKeystore } from "../../agent/crypto/keystore.ts";
import { REPO_ROOT } from "./cli.ts";

export interface PileDirOptions {
  chargePointId: string;
  rpcUrl: string;
  /** Written as deployment.json; left out to test what `start` does without an address book. */
  deployment?: object;
  keystorePassword: string;
  /** The config lines after chargePointId, dataDir and chain: meter, gpio, ocpp, mqtt. */
  moreConfig: readonly string[];
  /** config.yaml's mode, when the umask's default is not what the test needs. */
  configMode?: number;
}

export interface PileDir {
  config: string;
  keystore: string;
  passwordFile: string;
}

export async function writePileDir(dir: string, options: PileDirOptions): Promise<PileDir> {
  const pileDir: PileDir = { config: join(dir, "config.yaml"), keystore: join(dir, "device-key.json"), passwordFile: join(dir, "pw") };
  if (options.deployment !== undefined) writeFileSync(join(dir, "deployment.json"), JSON.stringify(options.deployment));
  writeFileSync(pileDir.passwordFile, `${options.keystorePassword}\n`, { mode: 0o600 });
  await createKeystore(pileDir.keystore, options.keystorePassword, { scryptN: 1024 });
  writeFileSync(
    pileDir.config,
    [
      `chargePointId: ${options.chargePointId}`,
      "dataDir: ./data",
      `chain: { rpcUrl: "${options.rpcUrl}", deployment: ./deployment.json, keystore: ./device-key.json, passwordFile: ./pw }`,
      ...options.moreConfig,
      "",
    ].join("\n"),
    options.configMode === undefined ? undefined : { mode: options.configMode },
  );
  return pileDir;
}

export interface StartedPile {
  child: ChildProcess;
  /** Everything the agent printed so far, stdout and stderr interleaved as they arrived. */
  output(): string;
  /** The exit code once the process has closed (null when a signal ended it). */
  exited: Promise<number | null>;
}

/** `trustpile start --config <config>` as a child process in `dir` (the real CLI, as the systemd unit runs it). */
export function startTrustpile(config: string, dir: string, env: NodeJS.ProcessEnv): StartedPile {
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin/trustpile.js"), "start", "--config", config], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

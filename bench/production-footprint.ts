/**
 * The agent as a pile runs it (issue 10): a production install (`npm ci --omit=dev --omit=optional`) of the runtime
 * files only, then, in the same run and side by side, its start-up-to-ready time and resident memory at ready and
 * after 10 s idle, next to a bare `node -e "setInterval(()=>{},1000)"`.
 *
 * The agent runs against a dev chain with hw-sim in its own process (`meter.driver: sim`, `gpio.driver: sim`), so
 * the figure includes the simulator, which a real pile does not carry. The production install has no anvil (it is
 * an optional dependency, omitted): the chain comes from this dev checkout's anvil.
 *
 * About the root `prepare` script (`node tools/build.js`): npm ci runs it, and in a production install it cannot
 * work (tools/ is not shipped, and its tsc needs dev-only type packages such as @types/better-sqlite3). The pile
 * gets dist/ prebuilt, so this bench installs with --ignore-scripts and then runs the install scripts of the runtime
 * dependencies that have one (`npm rebuild NAME…`, e.g. better-sqlite3's native build) explicitly.
 *
 * Usage: npm run bench:production   (BENCH_KEEP=1 keeps the temp install; BENCH_IDLE_S changes the idle wait)
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NonceManager } from "ethers";
import { startDevChain, type DevChain } from "../agent/chain/dev-chain.ts";
import { connectProvider } from "../agent/chain/provider.ts";
import { devAccount } from "../agent/chain/dev-accounts.ts";
import { deployContracts } from "../agent/chain/deploy.ts";
import { writeDeployment } from "../agent/chain/deployment.ts";
import { connectRegistry, Role } from "../agent/chain/contracts.ts";
import { attest, registerChargePoint } from "../agent/chain/operations.ts";
import { createKeystore } from "../agent/crypto/keystore.ts";
import { freePort } from "../agent/net.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? "10");
const RUNTIME_FILES = ["package.json", "package-lock.json", "bin", "agent", "drivers", "hw-sim", join("contracts", "artifacts"), "dist"];
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

const progress = (line: string): void => void process.stderr.write(`${line}\n`);
const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0);
}

function sizeOf(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

/** Runs a command with its output on stderr and a line every 10 s, so a long native build shows it is alive. */
function run(command: string, args: string[], cwd: string): Promise<number> {
  const started = Date.now();
  progress(`$ ${command} ${args.join(" ")}`);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "inherit", "inherit"], env: cleanEnv() });
    const ticker = setInterval(() => progress(`  … still running (${Math.round((Date.now() - started) / 1000)} s)`), 10_000);
    child.on("error", (error) => {
      clearInterval(ticker);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearInterval(ticker);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (code === 0) {
        progress(`  done in ${seconds} s`);
        resolve(Date.now() - started);
      } else {
        reject(new Error(`${command} ${args.join(" ")} failed after ${seconds} s (${signal ?? `exit ${code}`})`));
      }
    });
  });
}

/** Every TRUSTPILE_* variable is a config override; the bench's agent must see only its config file. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("TRUSTPILE_")));
}

/** Runtime (not dev, not optional) packages of the lock file that have an install script, e.g. native builds. */
function runtimePackagesWithInstallScripts(lockPath: string): string[] {
  const lock = JSON.parse(readFileSync(lockPath, "utf8")) as {
    packages: Record<string, { hasInstallScript?: boolean; dev?: boolean; optional?: boolean; devOptional?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([path, entry]) => path !== "" && entry.hasInstallScript === true && !entry.dev && !entry.optional && !entry.devOptional)
    .map(([path]) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length));
}

function newestSourceMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** bin/trustpile.js falls back to tsx when dist/ is older than a source; a bench of that would measure the wrong thing. */
function assertBuildIsFresh(root: string): void {
  const builtAt = statSync(join(root, "dist", "BUILD_STAMP")).mtimeMs;
  for (const dir of ["agent", "drivers", "hw-sim", join("contracts", "artifacts")]) {
    if (newestSourceMs(join(root, dir)) > builtAt) throw new Error(`${join(root, dir)} has sources newer than dist/: the agent would run through tsx`);
  }
}

function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    child.on("exit", (code) => reject(new Error(`the agent exited (${code}) before ready:\n${output}`)));
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (pattern.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** Bare node's start-up: spawn to exit of `node -e ""`, the median of 5. */
function bareStartupMs(): number {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = process.hrtime.bigint();
    execFileSync(process.execPath, ["-e", ""]);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return times.sort((a, b) => a - b)[2] ?? 0;
}

const work = mkdtempSync(join(tmpdir(), "trustpile-production-"));
const prod = join(work, "pile");
const runDir = join(work, "run");
mkdirSync(prod);
mkdirSync(runDir);
let chain: DevChain | undefined;
let agent: ChildProcess | undefined;
let bare: ChildProcess | undefined;
try {
  progress(`building dist/ in ${REPO}`);
  await run(process.execPath, ["tools/build.js"], REPO);

  progress(`copying the runtime files to ${prod}`);
  for (const path of RUNTIME_FILES) {
    if (!existsSync(join(REPO, path))) throw new Error(`${path} is missing in ${REPO}`);
    // Timestamps kept: bin/trustpile.js compares them to choose dist/ over the TypeScript sources.
    cpSync(join(REPO, path), join(prod, path), { recursive: true, preserveTimestamps: true });
  }

  const scripted = runtimePackagesWithInstallScripts(join(prod, "package-lock.json"));
  const manifest = JSON.parse(readFileSync(join(prod, "package.json"), "utf8")) as { scripts?: Record<string, string> };
  if (manifest.scripts?.prepare !== undefined) {
    progress(`note: the root prepare script ("${manifest.scripts.prepare}") needs the dev toolchain; installing with --ignore-scripts,`);
    progress(`      then running the install scripts of ${scripted.join(", ")} (npm rebuild)`);
  }
  const ciMs = await run(NPM, ["ci", "--omit=dev", "--omit=optional", "--no-audit", "--no-fund", "--ignore-scripts"], prod);
  const rebuildMs = scripted.length > 0 ? await run(NPM, ["rebuild", ...scripted, "--no-audit", "--no-fund"], prod) : 0;
  for (const devOnly of ["vitest", "@foundry-rs/anvil-linux-amd64", "@foundry-rs/forge-linux-amd64", "@types/better-sqlite3"]) {
    if (existsSync(join(prod, "node_modules", devOnly))) throw new Error(`the production install has ${devOnly}`);
  }
  const nodeModulesBytes = sizeOf(join(prod, "node_modules"));
  assertBuildIsFresh(prod);

  progress("starting a dev chain (this checkout's anvil) and deploying the contracts");
  chain = await startDevChain({ port: await freePort(), blockTimeS: 1 });
  const provider = await connectProvider(chain.rpcUrl);
  const authority = devAccount(0, provider);
  const owner = devAccount(2, provider);
  const { deployment } = await deployContracts(new NonceManager(authority));
  writeDeployment(join(runDir, "deployment.json"), deployment);
  writeFileSync(join(runDir, "pw"), "bench password\n", { mode: 0o600 });
  const device = await createKeystore(join(runDir, "device-key.json"), "bench password", { scryptN: 1024 });
  const validUntil = BigInt(Math.floor(Date.now() / 1000) + 3600);
  await attest(connectRegistry(deployment.Registry, authority), owner.address, Role.Owner, validUntil);
  await (await owner.sendTransaction({ to: device.address, value: 10n ** 18n })).wait();
  await registerChargePoint(connectRegistry(deployment.Registry, owner), {
    chargePointId: "cp-bench", kind: "Private", areaId: 1n, signer: device.address, pricePerKWh: 300_000_000_000_000n, maxPowerW: 11_000, ownerContactSealed: new Uint8Array([1]),
  });
  provider.destroy();
  writeFileSync(
    join(runDir, "config.yaml"),
    [
      "chargePointId: cp-bench",
      "dataDir: ./data",
      `chain: { rpcUrl: "${chain.rpcUrl}", deployment: ./deployment.json, keystore: ./device-key.json, passwordFile: ./pw, confirmations: 1 }`,
      "meter: { driver: sim, pollIntervalMs: 1000 }",
      "gpio: { driver: sim, relay: { line: 17 }, feedback: { line: 27 } }",
      "",
    ].join("\n"),
  );

  progress("starting the bare node process and the production agent side by side");
  bare = spawn(process.execPath, ["-e", "setInterval(()=>{},1000)"], { stdio: "ignore" });
  const spawnedAt = Date.now();
  agent = spawn(process.execPath, [join(prod, "bin", "trustpile.js"), "start", "--config", join(runDir, "config.yaml")], {
    cwd: runDir,
    env: cleanEnv(),
    stdio: ["ignore", "pipe", "inherit"],
  });
  await waitForLine(agent, /"msg":"agent ready"/, 60_000);
  const readyMs = Date.now() - spawnedAt;
  const agentAtReady = rssKiB(agent.pid ?? 0);
  const bareAtReady = rssKiB(bare.pid ?? 0);
  progress(`agent ready after ${readyMs} ms; idling ${IDLE_S} s`);
  await new Promise((resolve) => setTimeout(resolve, IDLE_S * 1000));
  const agentIdle = rssKiB(agent.pid ?? 0);
  const bareIdle = rssKiB(bare.pid ?? 0);
  const bareMs = bareStartupMs();

  console.log(`production install (npm ci --omit=dev --omit=optional): ${(ciMs / 1000).toFixed(1)} s + install scripts ${(rebuildMs / 1000).toFixed(1)} s; node_modules ${(nodeModulesBytes / 1024 / 1024).toFixed(0)} MB`);
  console.log(`node ${process.version} on ${process.platform}/${process.arch}`);
  console.log(`${"".padEnd(34)}${"start-up to ready".padStart(18)}${"RSS at ready".padStart(14)}${`RSS after ${IDLE_S} s`.padStart(16)}`);
  console.log(`${"trustpile start (production)".padEnd(34)}${`${readyMs} ms`.padStart(18)}${mib(agentAtReady).padStart(14)}${mib(agentIdle).padStart(16)}`);
  console.log(`${'node -e "setInterval(()=>{},1000)"'.padEnd(34)}${`${bareMs.toFixed(0)} ms`.padStart(18)}${mib(bareAtReady).padStart(14)}${mib(bareIdle).padStart(16)}`);
  console.log(`ratio agent / bare node: start-up ${(readyMs / bareMs).toFixed(1)}x, RSS at ready ${(agentAtReady / bareAtReady).toFixed(2)}, RSS after ${IDLE_S} s ${(agentIdle / bareIdle).toFixed(2)}`);
  console.log("(the agent's figures include hw-sim in-process, which a real pile does not run; bare start-up is spawn to exit of node -e \"\")");
} finally {
  bare?.kill("SIGKILL");
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    const exited = new Promise((resolve) => agent?.once("exit", resolve));
    agent.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  }
  await chain?.stop();
  if (process.env.BENCH_KEEP === "1") progress(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

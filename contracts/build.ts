/**
 * Compiles contracts/*.sol with the npm solc (standard JSON) into contracts/artifacts/:
 * `<Name>.json` (ABI + bytecode, for other tools) and `<Name>.ts` (the same, `as const`, with a typed contract
 * interface), so the agent imports ABIs with types and the pile needs no compiler.
 *
 *   tsx contracts/build.ts           compile and write the artifacts
 *   tsx contracts/build.ts --check   compile and fail if the committed artifacts differ (deterministic output)
 */
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { METHOD_TYPES_MODULE, renderTypedArtifact, type AbiItem } from "./typegen.ts";

const require = createRequire(import.meta.url);
const solc = require("solc") as {
  compile(input: string, callbacks: { import: (path: string) => { contents: string } | { error: string } }): string;
  version(): string;
};

export const EVM_VERSION = "cancun";
const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const contractsDir = join(projectRoot, "contracts");
const artifactsDir = join(contractsDir, "artifacts");

interface SolcOutput {
  errors?: { severity: "error" | "warning" | "info"; formattedMessage: string }[];
  contracts?: Record<
    string,
    Record<string, { abi: AbiItem[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>
  >;
}

function findImport(importPath: string): { contents: string } | { error: string } {
  for (const base of [projectRoot, join(projectRoot, "node_modules")]) {
    const candidate = join(base, importPath);
    if (existsSync(candidate)) return { contents: readFileSync(candidate, "utf8") };
  }
  return { error: `import not found: ${importPath}` };
}

export function compileContracts(): { name: string; json: string; ts: string }[] {
  const sourceNames = readdirSync(contractsDir)
    .filter((file) => file.endsWith(".sol"))
    .sort();
  const sources = Object.fromEntries(
    sourceNames.map((file) => [`contracts/${file}`, { content: readFileSync(join(contractsDir, file), "utf8") }]),
  );
  const input = {
    language: "Solidity",
    sources,
    settings: {
      // Pinned below solc's default (osaka) so the bytecode runs on the chains a pile settles on (Besu, L2s).
      evmVersion: EVM_VERSION,
      viaIR: true,
      optimizer: { enabled: true, runs: 10_000 },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport })) as SolcOutput;
  const problems = output.errors ?? [];
  for (const problem of problems.filter((p) => p.severity === "warning")) process.stderr.write(problem.formattedMessage);
  const errors = problems.filter((p) => p.severity === "error");
  if (errors.length > 0) {
    throw new Error(`solc ${solc.version()} failed:\n${errors.map((e) => e.formattedMessage).join("\n")}`);
  }

  const artifacts: { name: string; json: string; ts: string }[] = [];
  for (const [sourceName, contracts] of Object.entries(output.contracts ?? {})) {
    for (const [name, compiled] of Object.entries(contracts)) {
      // Only the contracts defined in our own top-level sources, not libraries pulled in from node_modules.
      if (!sourceName.startsWith("contracts/")) continue;
      const bytecode = `0x${compiled.evm.bytecode.object}`;
      if (bytecode === "0x") continue; // interfaces and abstract contracts
      const artifact = {
        contractName: name,
        sourceName,
        compiler: { solc: solc.version(), evmVersion: EVM_VERSION },
        abi: compiled.abi,
        bytecode,
        deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      };
      artifacts.push({
        name,
        json: `${JSON.stringify(artifact, null, 2)}\n`,
        ts: renderTypedArtifact(name, compiled.abi, bytecode),
      });
    }
  }
  return artifacts.sort((a, b) => a.name.localeCompare(b.name));
}

/** Every generated file, by its path under contracts/artifacts/. */
function artifactFiles(artifacts: { name: string; json: string; ts: string }[]): [string, string][] {
  return [
    ["method-types.ts", METHOD_TYPES_MODULE],
    ...artifacts.flatMap((a): [string, string][] => [
      [`${a.name}.json`, a.json],
      [`${a.name}.ts`, a.ts],
    ]),
  ];
}

function main(): void {
  const check = process.argv.includes("--check");
  const started = Date.now();
  const artifacts = compileContracts();
  const stale: string[] = [];
  mkdirSync(artifactsDir, { recursive: true });
  for (const [file, content] of artifactFiles(artifacts)) {
    const path = join(artifactsDir, file);
    const current = existsSync(path) ? readFileSync(path, "utf8") : undefined;
    if (current === content) continue;
    if (check) stale.push(relative(projectRoot, path));
    else writeFileSync(path, content);
  }
  if (stale.length > 0) {
    process.stderr.write(`contract artifacts are out of date: ${stale.join(", ")}; run npm run build:contracts\n`);
    process.exit(1);
  }
  const names = artifacts.map((a) => a.name).join(", ");
  process.stdout.write(`compiled ${names} with solc ${solc.version()} (${EVM_VERSION}) in ${Date.now() - started} ms\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main();
}

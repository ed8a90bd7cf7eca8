#!/usr/bin/env node
// Runs Foundry's forge from its npm platform package, offline: `node tools/forge.js test [args…]`.
// Run it from the project root: foundry.toml points forge at `tools/solc` relative to the working directory.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const packageName = "@foundry-rs/forge-linux-amd64";

let binary;
try {
  binary = join(dirname(require.resolve(`${packageName}/package.json`)), "bin", "forge");
} catch {
  process.stderr.write(
    `tools/forge.js: cannot find ${packageName}: it is a devDependency built for linux-x64 only ` +
      `(this is ${process.platform}-${process.arch}); on linux-x64 run \`npm ci\`\n`,
  );
  process.exit(1);
}

const result = spawnSync(binary, process.argv.slice(2), { stdio: "inherit" });
if (result.error) {
  process.stderr.write(`tools/forge.js: cannot run ${binary}: ${result.error.message}\n`);
  process.exit(1);
}
// A signal kill has no exit code; fail rather than let `null` read as success.
if (result.status === null) {
  process.stderr.write(`tools/forge.js: forge killed by ${result.signal}\n`);
  process.exit(1);
}
process.exit(result.status);

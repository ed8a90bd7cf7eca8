#!/usr/bin/env node
// Compiles the agent to plain JavaScript in dist/ (tsc, .ts imports rewritten to .js), so a pile runs it without
// a TypeScript loader in memory (about 45 MB less resident memory). bin/trustpile.js uses dist/ only while it is
// newer than every source file, so a stale build can never run edited code.
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.build.json"], { stdio: "inherit" });
writeFileSync("dist/BUILD_STAMP", `${new Date().toISOString()}\n`);

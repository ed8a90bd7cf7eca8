#!/usr/bin/env node
// Runs the compiled agent from dist/ when it is up to date (npm ci builds it), otherwise the TypeScript sources
// through tsx's loader, so an edited source is never shadowed by a stale build.
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stamp = join(root, "dist", "BUILD_STAMP");

function newestSourceMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function buildIsFresh() {
  if (!existsSync(stamp)) return false;
  const builtAt = statSync(stamp).mtimeMs;
  return ["agent", "drivers", "hw-sim", join("contracts", "artifacts")].every(
    (dir) => !existsSync(join(root, dir)) || newestSourceMs(join(root, dir)) <= builtAt,
  );
}

if (buildIsFresh()) {
  await import("../dist/agent/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../agent/cli/main.ts");
}

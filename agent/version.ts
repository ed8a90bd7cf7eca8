import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * trustpile's version from its package.json, found by walking up from this module: the same code runs from the
 * sources (agent/) and from the build (dist/agent/), which sit at different depths.
 */
function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      const parsed = JSON.parse(readFileSync(candidate, "utf8")) as { name?: unknown; version?: unknown };
      if (parsed.name === "trustpile" && typeof parsed.version === "string") return parsed.version;
    }
    const parent = dirname(dir);
    if (parent === dir) return "unknown";
    dir = parent;
  }
}

export const TRUSTPILE_VERSION = readVersion();

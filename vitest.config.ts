import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/anvil-global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // One anvil per worker (test/helpers/anvil-global-setup.ts ANVIL_WORKERS); CI has two cores.
    maxWorkers: 2,
  },
});

/**
 * One anvil per vitest worker, started once for the whole run and killed by PID at teardown, so a crashed run
 * leaves no chain behind. Files in one worker run one after another, so they never race for nonces; a test file
 * deploys its own contracts and reaches its worker's chain with `testChainUrl()` (test/helpers/chain.ts).
 */
import type { TestProject } from "vitest/node";
import { startDevChain, type DevChain } from "../../agent/chain/dev-chain.ts";
import { freePort } from "../../agent/net.ts";

export const ANVIL_WORKERS = 2;

declare module "vitest" {
  export interface ProvidedContext {
    anvilUrls: string[];
  }
}

const chains: DevChain[] = [];

export async function setup(project: TestProject): Promise<void> {
  for (let i = 0; i < ANVIL_WORKERS; i++) {
    chains.push(await startDevChain({ port: await freePort(), accounts: 20 }));
  }
  project.provide("anvilUrls", chains.map((chain) => chain.rpcUrl));
}

export async function teardown(): Promise<void> {
  for (const chain of chains) {
    try {
      process.kill(chain.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

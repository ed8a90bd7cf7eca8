/**
 * The only code that drives the contactor (DESIGN §3). It executes the core's `setRelay` decisions — which the
 * core's interlock alone makes — and keeps a history of every edge it commanded, so tests and benchmarks can
 * check the relay against the chain's block numbers.
 */
import type { DigitalOut } from "../../drivers/gpio/types.ts";

export interface RelayEdge {
  atMs: number;
  closed: boolean;
  reason: string;
}

export interface RelayDriver {
  /** Drives the contactor; a failed write while closing leaves it commanded open and rethrows. */
  set(closed: boolean, reason: string): Promise<void>;
  /** Opens whatever happens: used at start-up, on shutdown and after any error. */
  forceOpen(reason: string): Promise<void>;
  history(): readonly RelayEdge[];
  isClosed(): boolean;
}

export function createRelayDriver(output: DigitalOut, clock: () => number = Date.now): RelayDriver {
  const edges: RelayEdge[] = [];
  let closed = false;

  async function write(next: boolean, reason: string): Promise<void> {
    try {
      await output.write(next);
    } catch (error) {
      if (next) await output.write(false).catch(() => undefined);
      closed = false;
      throw error;
    }
    if (next !== closed || edges.length === 0) edges.push({ atMs: clock(), closed: next, reason });
    closed = next;
    // A long-running pile would grow this forever; the recent past is what tests and operators look at.
    if (edges.length > 1_000) edges.shift();
  }

  return {
    set: (next, reason) => write(next, reason),
    forceOpen: (reason) => write(false, reason),
    history: () => edges,
    isClosed: () => closed,
  };
}

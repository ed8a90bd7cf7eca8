/**
 * Cutting a pile's recorders down to one session's window, so a long run (the soak) can check every session as it
 * ends and forget its history. Pure.
 */
import type { PileRecord, RelayEdge } from "./invariants.ts";

/** The level of the relay line at `atMs` per its edges (open before the first edge). */
export function relayLevelAt(edges: readonly RelayEdge[], atMs: number): boolean {
  let level = false;
  for (const edge of edges) {
    if (edge.atMs > atMs) break;
    level = edge.closed;
  }
  return level;
}

/** The part of `pile` between `fromMs` and `toMs`: edges in it (plus the level at `fromMs`), meter points covering it. */
export function slicePileRecord(pile: PileRecord, fromMs: number, toMs: number): PileRecord {
  const startLevel: RelayEdge = { atMs: fromMs, closed: relayLevelAt(pile.relayEdges, fromMs) };
  const edges = pile.relayEdges.filter((edge) => edge.atMs > fromMs && edge.atMs <= toMs);
  // The meter recorder adds a point only when energy moves: a window in which none flowed may have no point after
  // `fromMs`, and then the last point before it is the one that covers the window.
  const firstAfter = pile.meter.findIndex((point) => point.atMs > fromMs);
  const firstMeter = firstAfter === -1 ? Math.max(0, pile.meter.length - 1) : Math.max(0, firstAfter - 1);
  const lastMeter = pile.meter.findIndex((point) => point.atMs > toMs);
  return {
    name: pile.name,
    relayEdges: [startLevel, ...edges],
    meter: pile.meter.slice(firstMeter, lastMeter === -1 ? undefined : lastMeter),
    rss: pile.rss.filter((sample) => sample.atMs >= fromMs && sample.atMs <= toMs),
    agentDown: (pile.agentDown ?? []).filter((span) => span.toMs >= fromMs && span.fromMs <= toMs),
  };
}

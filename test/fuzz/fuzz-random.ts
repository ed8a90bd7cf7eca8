/**
 * Seeded randomness for the fuzz suites: one seed per file, overridable with FUZZ_SEED so a failure printed by CI
 * replays exactly (`FUZZ_SEED=<seed> npx vitest run test/fuzz/<file>`).
 */
import { mulberry32 } from "../helpers/prng.ts";

/** FUZZ_SEED if set (decimal or 0x-hex), else the file's fixed default. */
export function fuzzSeed(defaultSeed: number): number {
  const written = process.env.FUZZ_SEED;
  if (written === undefined || written.trim() === "") return defaultSeed;
  const seed = Number(written);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new Error(`FUZZ_SEED must be an integer 0..4294967295, got ${JSON.stringify(written)}`);
  }
  return seed;
}

/** Small conveniences over mulberry32; every draw comes from the one seeded stream. */
export class FuzzRandom {
  readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let index = 0; index < length; index++) out[index] = Math.floor(this.next() * 256);
    return out;
  }

  /** Printable ASCII junk. */
  text(length: number): string {
    return Array.from({ length }, () => String.fromCharCode(32 + Math.floor(this.next() * 95))).join("");
  }
}

/** Counts by category, for asserting that a generator really drew every category. */
export class CategoryCounter {
  readonly counts = new Map<string, number>();

  add(category: string): void {
    this.counts.set(category, (this.counts.get(category) ?? 0) + 1);
  }

  summary(): string {
    return [...this.counts.entries()].map(([category, count]) => `${category}=${count}`).join(", ");
  }
}

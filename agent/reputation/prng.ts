/**
 * Seeded randomness for reproducible experiments (Fig. 5): a 32-bit mulberry32 generator and Box–Muller normals
 * on top of it. Not for anything secret.
 */

/** mulberry32: uniform floats in [0, 1) from a 32-bit state; the same seed replays the same sequence. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * Standard normal draws by Box–Muller from `uniform` (values in [0, 1)). Each call consumes two uniforms and returns
 * the cosine branch only, so one draw always costs the same two numbers whatever was drawn before.
 */
export function standardNormal(uniform: () => number): () => number {
  return () => {
    const u1 = 1 - uniform(); // (0, 1]: the logarithm stays finite
    const u2 = uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}

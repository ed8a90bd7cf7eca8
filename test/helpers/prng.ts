/** Tests use the agent's seeded generator (agent/reputation/prng.ts), so a seed means the same thing everywhere. */
export { mulberry32 } from "../../agent/reputation/prng.ts";

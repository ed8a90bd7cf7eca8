/**
 * The agent compacts its journal by itself (agent/runtime/agent.ts): at start-up, and then every 10th snapshot. A
 * journal carried over from a version without compaction (thousands of done rows) is bounded at the first start.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_RETENTION } from "../../../agent/journal/journal.ts";
import { startSimWorld, type SimWorld } from "../../../agent/sim/world.ts";

let world: SimWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

describe("agent journal compaction", () => {
  it("bounds a journal full of finished outbox rows when the agent starts, keeping pending work and the dedupe", async () => {
    const w = (world = await startSimWorld());
    const extra = 1_200;
    const journal = w.journal;
    journal.transaction(() => {
      for (let i = 1; i <= DEFAULT_RETENTION.keepCompletedRows + extra; i++) {
        const key = `ocpp:meter:${1_000_000 + i}:${i}:Sample.Periodic`;
        journal.enqueue({ key, kind: "ocpp", payload: { energyWh: i } });
        journal.markDone(key);
      }
      journal.enqueue({ key: "ocpp:stop:999999", kind: "ocpp", payload: { energyWh: 1 } });
    });
    const before = journal.stats().rows;

    await w.restartAgent();

    const after = journal.stats().rows;
    expect(after.outbox).toBe(before.outbox - extra);
    expect(after.outbox_tombstones).toBe(before.outbox_tombstones + extra);
    expect(journal.get("ocpp:stop:999999")?.status).toBe("pending");
    const oldest = "ocpp:meter:1000001:1:Sample.Periodic";
    expect(journal.get(oldest)).toMatchObject({ status: "done", compacted: true });
    expect(journal.enqueue({ key: oldest, kind: "ocpp", payload: { energyWh: 1 } }).status).toBe("done");
    expect(journal.pending("ocpp").map((item) => item.key)).toEqual(["ocpp:stop:999999"]);
  }, 120_000);
});

/**
 * A reorg deeper than the confirmations (issue 11, found by the fault campaign, seed 1 of
 * `soak --kinds reorgAboveDepth --piles 1 --sessions 3`): the ledger's session counter rewinds with it, so the next
 * deposit gets the id of the one that left the chain. It is another deposit and must be served as a new session,
 * under outbox keys of its own (generation 1: `authorize:<id>/r1`), while outcomes for the earlier one move nothing.
 */
import { describe, expect, it } from "vitest";
import { coreConfig, sessionTerms } from "../../../helpers/core-fixtures.ts";
import { generationFor, initialState, sessionLabel, step } from "../../../../agent/core/step.ts";
import type { CoreCommand, CoreConfig, CoreEvent, CoreState, SessionTerms } from "../../../../agent/core/types.ts";

const config: CoreConfig = coreConfig({ hasFeedbackInput: false });


/** The deposit that took id 1 again after the reorg: another transaction in another block. */
const replacement = sessionTerms(1n, { depositBlock: 20, depositBlockHash: "0xcc", depositTxHash: "0xdd", depositWei: 1_500_000_000_000_000n });

type EventInput = CoreEvent extends infer E ? (E extends CoreEvent ? Omit<E, "atMs"> & { atMs?: number } : never) : never;

class Run {
  state: CoreState = initialState();
  commands: CoreCommand[] = [];
  t = 1_000_000;

  send(event: EventInput): CoreCommand[] {
    const result = step(config, this.state, { atMs: this.t, ...event } as CoreEvent);
    this.state = result.state;
    this.commands.push(...result.commands);
    return result.commands;
  }

  sample(energyWh: number, powerW = 7_000): CoreCommand[] {
    this.t += 1_000;
    return this.send({ type: "meterSample", energyWh, powerW });
  }

  /** Session 1 (generation 0) energized at meter 100,000 Wh and 300 Wh into its delivery. */
  energizeFirst(): void {
    this.send({ type: "startup" });
    this.send({ type: "evPresence", present: true });
    this.sample(100_000, 0);
    this.send({ type: "depositSeen", ...sessionTerms(1n) });
    this.send({ type: "chainHead", blockNumber: 11 });
    this.send({ type: "authorizeMined", sessionId: 1n, txHash: "0xauth0" });
    expect(this.state.phase).toBe("energized");
    this.sample(100_300);
  }

  /** Reorg of session 1 while energized, then the stop reading: returns the commands from the reorg on. */
  reorgFirstUntilSettling(): CoreCommand[] {
    const from = this.commands.length;
    this.send({ type: "depositReorged", sessionId: 1n });
    expect(this.state.phase).toBe("stopping");
    this.t += 1_500;
    this.send({ type: "meterSample", energyWh: 100_300, powerW: 0 });
    expect(this.state.phase).toBe("settling");
    return this.commands.slice(from);
  }

  of<T extends CoreCommand["type"]>(type: T, from = 0): Extract<CoreCommand, { type: T }>[] {
    return this.commands.slice(from).filter((c): c is Extract<CoreCommand, { type: T }> => c.type === type);
  }
}

describe("session core: a deposit that takes the id of one removed by a deep reorg", () => {
  it("is begun, authorized, energized and settled as generation 1, after the reorged session failed to settle", () => {
    const run = new Run();
    run.energizeFirst();
    const afterReorg = run.reorgFirstUntilSettling();
    expect(afterReorg).toContainEqual({ type: "setRelay", closed: false, reason: "reorged" });
    const firstSettle = afterReorg.filter((c) => c.type === "sendSettle");
    expect(firstSettle).toEqual([
      { type: "sendSettle", total: { sessionId: 1n, meterStartWh: 100_000, meterStopWh: 100_300, startedAtS: expect.any(Number) as number, stoppedAtS: expect.any(Number) as number, evBehaviour: 0 } },
    ]);
    expect(generationFor(run.state, 1n)).toBe(1);
    // The ledger no longer has session 1: the tx sender fails the settle of generation 0.
    run.send({ type: "settleFailed", sessionId: 1n, reason: "WrongSessionStatus(1, 0)", generation: 0 });
    expect(run.state.phase).toBe("idle");
    expect(run.state.finishedSessionIds).toEqual(["1"]);

    const from = run.commands.length;
    run.send({ type: "depositSeen", ...replacement });
    expect(run.state.phase).toBe("depositPending");
    expect(run.state.session).toMatchObject({ sessionId: 1n, generation: 1, depositTxHash: "0xdd", budgetWh: 4_980 });
    run.send({ type: "chainHead", blockNumber: 21 });
    expect(run.of("sendAuthorize", from)).toEqual([{ type: "sendAuthorize", sessionId: 1n, generation: 1 }]);
    run.send({ type: "authorizeMined", sessionId: 1n, txHash: "0xauth1", generation: 1 });
    expect(run.state.phase).toBe("energized");
    expect(run.state.session?.meterStartWh).toBe(100_300);
    run.sample(100_800);
    run.send({ type: "remoteStop" });
    run.t += 1_500;
    run.send({ type: "meterSample", energyWh: 100_810, powerW: 0 });
    expect(run.of("sendSettle", from)).toEqual([
      { type: "sendSettle", generation: 1, total: { sessionId: 1n, meterStartWh: 100_300, meterStopWh: 100_810, startedAtS: expect.any(Number) as number, stoppedAtS: expect.any(Number) as number, evBehaviour: 0 } },
    ]);
    run.send({ type: "settleMined", sessionId: 1n, txHash: "0xsettle1", generation: 1 });
    expect(run.state.phase).toBe("idle");
    expect(run.state.finishedSessionIds).toEqual(["1", "1/r1"]);
    expect(run.of("setRelay", from).map((c) => c.closed)).toEqual([true, false]);

    // A re-emission of the replacement deposit (a rescan) is never served again.
    run.send({ type: "depositSeen", ...replacement });
    expect(run.state.phase).toBe("idle");
  });

  it("ignores outcomes of generation 0's rows while generation 1 runs, and takes those of generation 1", () => {
    const run = new Run();
    run.energizeFirst();
    run.reorgFirstUntilSettling();
    run.send({ type: "settleFailed", sessionId: 1n, reason: "WrongSessionStatus(1, 0)", generation: 0 });
    run.send({ type: "depositSeen", ...replacement });
    run.send({ type: "chainHead", blockNumber: 21 });
    expect(run.state.phase).toBe("authorizing");

    run.send({ type: "authorizeMined", sessionId: 1n, txHash: "0xauth0", generation: 0 });
    run.send({ type: "authorizeFailed", sessionId: 1n, reason: "superseded", generation: 0 });
    run.send({ type: "settleFailed", sessionId: 1n, reason: "superseded", generation: 0 });
    expect(run.state.phase).toBe("authorizing");
    expect(run.state.session).toMatchObject({ generation: 1, authorizeMined: false });

    run.send({ type: "authorizeFailed", sessionId: 1n, reason: "AuthorizationWindowClosed", generation: 1 });
    expect(run.state.phase).toBe("idle");
    expect(run.state.finishedSessionIds).toEqual(["1", "1/r1"]);
  });

  it("lets the reorged session go when a different deposit takes its id while it still settles, and serves the new one", () => {
    const run = new Run();
    run.energizeFirst();
    run.reorgFirstUntilSettling();
    const from = run.commands.length;
    run.send({ type: "depositSeen", ...replacement });
    expect(run.of("notify", from)[0]).toEqual({
      type: "notify",
      kind: "fault",
      message: "session 1: its deposit was replaced on chain by another deposit with the same id; what it delivered is not billed",
      sessionId: 1n,
    });
    expect(run.state.phase).toBe("depositPending");
    expect(run.state.session).toMatchObject({ generation: 1, depositTxHash: "0xdd" });
    expect(run.state.finishedSessionIds).toEqual(["1"]);
    // The late failure of generation 0's settle (the tx sender fails it as superseded) changes nothing.
    run.send({ type: "settleFailed", sessionId: 1n, reason: "superseded", generation: 0 });
    expect(run.state.phase).toBe("depositPending");
  });

  it("keeps settling when the same deposit is mined again, and never serves that deposit as a new session", () => {
    const run = new Run();
    run.energizeFirst();
    run.reorgFirstUntilSettling();
    run.send({ type: "depositSeen", ...sessionTerms(1n, { depositBlock: 13, depositBlockHash: "0xee" }) });
    expect(run.state.phase).toBe("settling");
    expect(run.state.session?.generation).toBeUndefined();
    expect(run.state.finishedSessionIds).toEqual(["1/r1"]);
    run.send({ type: "settleMined", sessionId: 1n, txHash: "0xsettle0", generation: 0 });
    expect(run.state.phase).toBe("idle");
    run.send({ type: "depositSeen", ...sessionTerms(1n, { depositBlock: 13, depositBlockHash: "0xee" }) });
    expect(run.state.phase).toBe("idle");
    expect(run.state.finishedSessionIds).toEqual(["1/r1", "1"]);
  });

  it("sends authorize under generation 1 for a deposit reorged away after its authorize was mined, and mined again", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.send({ type: "depositSeen", ...sessionTerms(4n) });
    run.send({ type: "chainHead", blockNumber: 11 });
    run.send({ type: "authorizeMined", sessionId: 4n, txHash: "0xauth" }); // no meter yet: stays authorized
    expect(run.state.phase).toBe("authorized");
    run.send({ type: "depositReorged", sessionId: 4n });
    run.send({ type: "depositReorged", sessionId: 4n }); // reported twice: still one generation
    expect(run.state.phase).toBe("idle");
    expect(run.state.reorgedSessionGenerations).toEqual({ "4": 1 });
    const from = run.commands.length;
    run.send({ type: "depositSeen", ...sessionTerms(4n, { depositBlock: 12, depositBlockHash: "0xff" }) });
    run.send({ type: "chainHead", blockNumber: 13 });
    // `authorize:4` is done in the outbox: without its own key this authorize would never be sent.
    expect(run.of("sendAuthorize", from)).toEqual([{ type: "sendAuthorize", sessionId: 4n, generation: 1 }]);
  });

  it("labels generations as the outbox keys do", () => {
    expect(sessionLabel(7n, undefined)).toBe("7");
    expect(sessionLabel(7n, 0)).toBe("7");
    expect(sessionLabel(7n, 2)).toBe("7/r2");
  });
});

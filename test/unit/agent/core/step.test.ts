import { describe, expect, it } from "vitest";
import { coreConfig, sessionTerms } from "../../../helpers/core-fixtures.ts";
import { mulberry32 } from "../../../helpers/prng.ts";
import { confirmationsOf, initialState, meterFresh, step, unservableTermsReason } from "../../../../agent/core/step.ts";
import type { CoreCommand, CoreConfig, CoreEvent, CoreState, SessionTerms } from "../../../../agent/core/types.ts";

const config: CoreConfig = coreConfig();


/** Any core event, with its time optional (the run's clock fills it in). */
type EventInput = CoreEvent extends infer E ? (E extends CoreEvent ? Omit<E, "atMs"> & { atMs?: number } : never) : never;

class Run {
  state: CoreState = initialState();
  commands: CoreCommand[] = [];
  t = 1_000_000;

  constructor(readonly cfg: CoreConfig = config) {}

  send(event: EventInput): CoreCommand[] {
    const result = step(this.cfg, this.state, { atMs: this.t, ...event } as CoreEvent);
    this.state = result.state;
    this.commands.push(...result.commands);
    return result.commands;
  }

  at(ms: number): this {
    this.t = ms;
    return this;
  }

  sample(energyWh: number, powerW = 7_000): CoreCommand[] {
    return this.send({ type: "meterSample", energyWh, powerW });
  }

  relayCommands(): { closed: boolean; reason: string }[] {
    return this.commands.flatMap((c) => (c.type === "setRelay" ? [{ closed: c.closed, reason: c.reason }] : []));
  }

  /** From idle to energized at meter 100,000 Wh. */
  energize(sessionId = 1n): void {
    this.send({ type: "startup" });
    this.send({ type: "evPresence", present: true });
    this.sample(100_000, 0);
    this.send({ type: "depositSeen", ...sessionTerms(sessionId) });
    this.send({ type: "chainHead", blockNumber: 11 });
    this.send({ type: "authorizeMined", sessionId, txHash: "0xauth" });
    this.send({ type: "relayFeedback", closed: true });
  }
}

const settleOf = (commands: CoreCommand[]) => commands.find((c) => c.type === "sendSettle");

describe("session core: deposit gate", () => {
  it("waits for the confirmations, sends authorize, and closes the relay only after authorize is mined", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(100_000, 0);
    expect(run.send({ type: "depositSeen", ...sessionTerms(7n) })).toEqual([{ type: "notify", kind: "session", message: "session 7: depositPending", sessionId: 7n }]);
    run.send({ type: "chainHead", blockNumber: 10 });
    expect(run.state.phase).toBe("depositPending");
    expect(confirmationsOf(run.state, sessionTerms(7n))).toBe(1);
    expect(run.send({ type: "chainHead", blockNumber: 11 })).toContainEqual({ type: "sendAuthorize", sessionId: 7n });
    expect(run.state.phase).toBe("authorizing");
    expect(run.relayCommands()).toEqual([{ closed: false, reason: "startup" }]);

    expect(run.send({ type: "authorizeMined", sessionId: 7n, txHash: "0xa" })).toContainEqual({ type: "setRelay", closed: true, reason: "energize" });
    // Closed on a reading taken with the contacts open: whether the EV draws is not known yet, so no "suspended".
    expect(run.state.phase).toBe("energized");
    expect(run.state.session?.meterStartWh).toBe(100_000);
    run.at(run.t + 1_000).sample(100_000, 0);
    expect(run.state.phase).toBe("suspended"); // closed, but the EV has not started drawing yet
    run.at(run.t + 1_000).sample(100_500, 7_000);
    expect(run.state.phase).toBe("energized");
  });

  it("never closes on a deposit without its authorize mined, however deep it is buried", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(100_000);
    run.send({ type: "depositSeen", ...sessionTerms(1n) });
    for (let block = 10; block < 100; block++) run.send({ type: "chainHead", blockNumber: block });
    expect(run.relayCommands().filter((c) => c.closed)).toEqual([]);
  });

  it("does not energize with a stale meter, and energizes once a fresh reading arrives", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(100_000);
    run.send({ type: "depositSeen", ...sessionTerms(1n) });
    run.send({ type: "chainHead", blockNumber: 12 });
    run.at(run.t + 5_000);
    run.send({ type: "authorizeMined", sessionId: 1n, txHash: "0xa" });
    expect(meterFresh(config, run.state)).toBe(false);
    expect(run.state.phase).toBe("authorized");
    run.sample(100_000);
    expect(run.state.phase).not.toBe("authorized");
    expect(run.relayCommands().at(-1)).toEqual({ closed: true, reason: "energize" });
  });

  it("drops a deposit reorged away before energizing, and serves it again if it is mined again", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(100_000);
    run.send({ type: "depositSeen", ...sessionTerms(1n) });
    run.send({ type: "depositReorged", sessionId: 1n });
    expect(run.state.phase).toBe("idle");
    run.send({ type: "chainHead", blockNumber: 20 });
    expect(run.commands.some((c) => c.type === "sendAuthorize")).toBe(false);
    run.send({ type: "depositSeen", ...sessionTerms(1n, { depositBlock: 15, depositBlockHash: "0xcc" }) });
    expect(run.state.phase).toBe("authorizing");
    expect(run.relayCommands().filter((c) => c.closed)).toEqual([]);
  });

  it("refuses a deposit that covers no more than the stop margin", () => {
    const run = new Run();
    run.send({ type: "startup" });
    // 6,000,000,000,000 wei at 0.0003 ether/kWh covers 20 Wh = the stop margin.
    const commands = run.send({ type: "depositSeen", ...sessionTerms(3n, { depositWei: 6_000_000_000_000n }) });
    expect(run.state.phase).toBe("idle");
    expect(commands[0]).toMatchObject({ type: "notify", kind: "warning" });
    expect(run.state.finishedSessionIds).toEqual(["3"]);
  });

  it("refuses a deposit with a price or a deposit of 0 as a warning, without throwing, and serves the next one", () => {
    expect(unservableTermsReason(sessionTerms(1n, { priceWeiPerKWh: 0n }))).toBe("its price is 0 wei/kWh; expected a price above 0");
    expect(unservableTermsReason(sessionTerms(1n, { depositWei: 0n }))).toBe("its deposit is 0 wei; expected a deposit above 0");
    expect(unservableTermsReason(sessionTerms(1n))).toBeUndefined();

    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(100_000, 0);
    expect(run.send({ type: "depositSeen", ...sessionTerms(4n, { priceWeiPerKWh: 0n }) })).toEqual([
      { type: "notify", kind: "warning", message: "session 4: deposit refused, its price is 0 wei/kWh; expected a price above 0; not serving it", sessionId: 4n },
    ]);
    expect(run.state.phase).toBe("idle");
    expect(run.state.session).toBeUndefined();
    // Queued behind another session, a deposit of 0 is refused when its turn comes (here: the first is reorged away).
    run.send({ type: "depositSeen", ...sessionTerms(5n) });
    expect(run.state.session?.sessionId).toBe(5n);
    run.send({ type: "depositSeen", ...sessionTerms(6n, { depositWei: 0n, depositBlock: 12 }) });
    expect(run.state.queue.map((q) => q.sessionId)).toEqual([6n]);
    run.send({ type: "depositReorged", sessionId: 5n });
    expect(run.state.session).toBeUndefined();
    expect(run.state.phase).toBe("idle");
    expect(run.commands.filter((c) => c.type === "notify" && c.kind === "warning").map((c) => (c as { message: string }).message)).toEqual([
      "session 4: deposit refused, its price is 0 wei/kWh; expected a price above 0; not serving it",
      "session 6: deposit refused, its deposit is 0 wei; expected a deposit above 0; not serving it",
    ]);
    expect(run.state.finishedSessionIds).toEqual(["4", "6"]);
    expect(run.relayCommands().filter((c) => c.closed)).toEqual([]);
  });
});

describe("session core: stopping and the signed total", () => {
  it("stops at the budget less the stop margin and signs the register delta read after the relay opened", () => {
    const run = new Run();
    run.energize();
    // 10,000 Wh covered − 20 Wh margin = 9,980 Wh budget.
    expect(run.state.session?.stopAtWh).toBe(9_980);
    run.at(run.t + 1_000).sample(105_000);
    expect(run.state.phase).toBe("energized");
    run.at(run.t + 1_000).sample(109_979);
    expect(run.state.phase).toBe("energized");
    run.at(run.t + 1_000);
    expect(run.sample(109_980)).toContainEqual({ type: "setRelay", closed: false, reason: "budget" });
    expect(run.state.phase).toBe("stopping");
    const openedAt = run.t;
    run.send({ type: "relayFeedback", closed: false });
    // A poll that arrives sooner than one interval after the open command is not the stop reading.
    run.at(openedAt + 500).sample(109_985, 0);
    expect(run.state.phase).toBe("stopping");
    run.at(openedAt + 1_000);
    const settle = settleOf(run.sample(109_986, 0));
    expect(settle).toEqual({
      type: "sendSettle",
      total: { sessionId: 1n, meterStartWh: 100_000, meterStopWh: 109_986, startedAtS: 1_000, stoppedAtS: 1_004, evBehaviour: 0 },
    });
    expect(run.state.phase).toBe("settling");
    run.send({ type: "settleMined", sessionId: 1n, txHash: "0xs" });
    expect(run.state.phase).toBe("idle");
    expect(run.state.session).toBeUndefined();
  });

  it("closes a settling session the same way whether our receipt or the ledger's SessionSettled log comes first", () => {
    const viaLog = new Run();
    viaLog.energize();
    viaLog.send({ type: "remoteStop" });
    viaLog.send({ type: "relayFeedback", closed: false });
    viaLog.at(viaLog.t + 1_000).sample(100_050, 0);
    expect(viaLog.state.phase).toBe("settling");
    const commands = viaLog.send({ type: "sessionClosedOnChain", sessionId: 1n, how: "settled", txHash: "0x5e77" });
    expect(commands).toContainEqual({ type: "notify", kind: "session", message: "session 1: settled (tx 0x5e77)", sessionId: 1n });
    expect(viaLog.state.phase).toBe("idle");
    expect(viaLog.state.finishedSessionIds).toContain("1");
    // Our own receipt arriving afterwards changes nothing.
    expect(viaLog.send({ type: "settleMined", sessionId: 1n, txHash: "0x5e77" })).toEqual([]);
  });

  it("stops at the EV's own maxEnergyWh when it is below what the deposit covers", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(0, 0);
    run.send({ type: "depositSeen", ...sessionTerms(1n, { maxEnergyWh: 2_000 }) });
    run.send({ type: "chainHead", blockNumber: 11 });
    run.send({ type: "authorizeMined", sessionId: 1n, txHash: "0xa" });
    run.at(run.t + 1_000);
    expect(run.sample(1_980)).toContainEqual({ type: "setRelay", closed: false, reason: "maxEnergy" });
  });

  it("opens the relay when the meter is stale for staleAfterMs and settles on the last good reading", () => {
    const run = new Run();
    run.energize();
    run.at(run.t + 1_000).sample(100_700);
    const lastGood = run.t;
    run.at(lastGood + 3_000);
    expect(run.send({ type: "tick" }).filter((c) => c.type === "setRelay")).toEqual([]);
    run.at(lastGood + 3_001);
    expect(run.send({ type: "tick" })).toContainEqual({ type: "setRelay", closed: false, reason: "meterLost" });
    run.at(lastGood + 3_001 + 10_000);
    const settle = settleOf(run.send({ type: "tick" }));
    expect(settle?.type === "sendSettle" && settle.total).toMatchObject({ meterStartWh: 100_000, meterStopWh: 100_700 });
  });

  it("reports an unplug under load as a violation, and an unplug after charging as none", () => {
    const underLoad = new Run();
    underLoad.energize();
    underLoad.at(underLoad.t + 1_000).sample(100_400, 7_000);
    expect(underLoad.send({ type: "evPresence", present: false })).toContainEqual({ type: "setRelay", closed: false, reason: "evUnplugged" });
    expect(underLoad.state.session?.evBehaviour).toBe(-1);

    const afterCharging = new Run();
    afterCharging.energize();
    afterCharging.at(afterCharging.t + 1_000).sample(100_400, 0);
    afterCharging.send({ type: "evPresence", present: false });
    expect(afterCharging.state.session?.evBehaviour).toBe(0);
    expect(afterCharging.state.phase).toBe("stopping");
  });

  it("stops with the last good reading when the meter turns implausible", () => {
    const run = new Run();
    run.energize();
    run.at(run.t + 1_000).sample(100_300);
    run.send({ type: "meterFault", kind: "implausible", message: "import energy went backwards" });
    expect(run.state.phase).toBe("settling");
    const settle = settleOf(run.commands);
    expect(settle?.type === "sendSettle" && settle.total).toMatchObject({ meterStartWh: 100_000, meterStopWh: 100_300 });
  });
});

describe("session core: relay faults, start-up and shutdown", () => {
  it("raises a welded-contactor fault when feedback stays closed feedbackTimeoutMs after opening", () => {
    const run = new Run();
    run.energize();
    run.at(run.t + 1_000).sample(100_100);
    run.send({ type: "remoteStop" });
    run.at(run.t + 499).send({ type: "tick" });
    expect(run.state.fault).toBeUndefined();
    run.at(run.t + 1).send({ type: "tick" });
    expect(run.state.fault).toBe("welded contactor: feedback stayed closed for 500 ms after opening");
  });

  it("raises a failure-to-close fault and stops when feedback never closes", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(100_000);
    run.send({ type: "depositSeen", ...sessionTerms(1n) });
    run.send({ type: "chainHead", blockNumber: 11 });
    run.send({ type: "relayFeedback", closed: false });
    run.send({ type: "authorizeMined", sessionId: 1n, txHash: "0xa" });
    run.at(run.t + 500).sample(100_000);
    expect(run.state.fault).toBe("contactor failed to close: feedback stayed open for 500 ms");
    expect(run.relayCommands().at(-1)).toEqual({ closed: false, reason: "fault" });
  });

  it("forces the relay open at start-up and resumes an energized session only through the interlock", () => {
    const run = new Run();
    run.energize();
    run.at(run.t + 1_000).sample(101_000);
    // A crash: the process restarts from the journal's state.
    run.at(run.t + 60_000);
    const afterRestart = run.send({ type: "startup" });
    expect(afterRestart[0]).toEqual({ type: "setRelay", closed: false, reason: "startup" });
    expect(run.state.phase).toBe("authorized");
    expect(run.state.relayCommandedClosed).toBe(false);
    run.send({ type: "relayFeedback", closed: false });
    // Readings and inputs from before the restart do not count: no re-close until fresh ones arrive.
    run.sample(101_000);
    expect(run.relayCommands().at(-1)?.closed).toBe(false);
    run.send({ type: "evPresence", present: true });
    expect(run.relayCommands().at(-1)).toEqual({ closed: true, reason: "energize" });
    expect(run.state.session?.meterStartWh).toBe(100_000);
  });

  it("settles a resumed session whose budget ran out while the process was dead with the contactor closed", () => {
    const run = new Run();
    run.energize();
    run.at(run.t + 1_000).sample(105_000);
    // kill -9: the GPIO kept the contactor closed, and the EV drew past the budget before the restart.
    run.at(run.t + 30_000);
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.send({ type: "relayFeedback", closed: false });
    run.sample(110_050, 0);
    expect(run.state.session?.stopReason).toBe("budget");
    expect(run.relayCommands().at(-1)).toEqual({ closed: false, reason: "startup" });
    run.at(run.t + 1_000);
    const settle = settleOf(run.sample(110_050, 0));
    expect(settle?.type === "sendSettle" && settle.total).toMatchObject({ meterStartWh: 100_000, meterStopWh: 110_050 });
  });

  it("settles a resumed session whose EV left while the agent was down", () => {
    const run = new Run();
    run.energize();
    run.at(run.t + 1_000).sample(100_800);
    run.at(run.t + 30_000);
    run.send({ type: "startup" });
    run.sample(100_900, 0);
    expect(run.state.phase).toBe("authorized");
    run.send({ type: "evPresence", present: false });
    expect(run.state.session?.stopReason).toBe("evUnplugged");
    run.at(run.t + 1_000);
    const settle = settleOf(run.sample(100_900, 0));
    expect(settle?.type === "sendSettle" && settle.total).toMatchObject({ meterStartWh: 100_000, meterStopWh: 100_900, evBehaviour: 0 });
  });

  it("never energizes a deposit that the chain already shows settled (a journal started afresh)", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(100_000);
    run.send({ type: "depositSeen", ...sessionTerms(4n) });
    run.send({ type: "authorizeMined", sessionId: 4n, txHash: "0xold" });
    run.send({ type: "sessionClosedOnChain", sessionId: 4n, how: "settled" });
    run.send({ type: "chainHead", blockNumber: 50 });
    expect(run.state.phase).toBe("idle");
    expect(run.relayCommands().filter((c) => c.closed)).toEqual([]);
    run.send({ type: "depositSeen", ...sessionTerms(4n) });
    expect(run.state.session).toBeUndefined();
  });

  it("opens on shutdown and never closes again in that process", () => {
    const run = new Run();
    run.energize();
    expect(run.send({ type: "shutdown" })).toContainEqual({ type: "setRelay", closed: false, reason: "shutdown" });
    run.at(run.t + 1_000).sample(100_500);
    expect(run.relayCommands().at(-1)?.closed).toBe(false);
  });
});

describe("session core: availability (OCPP ChangeAvailability)", () => {
  it("holds a confirmed deposit before authorize while inoperative, and authorizes it once operative again", () => {
    const run = new Run();
    run.send({ type: "startup" });
    run.send({ type: "evPresence", present: true });
    run.sample(100_000, 0);
    run.send({ type: "availability", operative: false });
    expect(run.state.inoperative).toBe(true);
    run.send({ type: "depositSeen", ...sessionTerms(7n) });
    for (let block = 11; block < 30; block++) {
      expect(run.send({ type: "chainHead", blockNumber: block }).filter((c) => c.type === "sendAuthorize")).toEqual([]);
    }
    expect(run.state.phase).toBe("depositPending");
    expect(run.relayCommands().filter((c) => c.closed)).toEqual([]);
    expect(run.send({ type: "availability", operative: true })).toContainEqual({ type: "sendAuthorize", sessionId: 7n });
    expect(run.state.inoperative).toBeUndefined();
    expect(run.state.phase).toBe("authorizing");
  });

  it("lets a running session deliver to its end while inoperative, then holds the next queued deposit", () => {
    const run = new Run();
    run.energize(1n);
    run.send({ type: "depositSeen", ...sessionTerms(2n, { depositBlock: 12 }) });
    run.send({ type: "availability", operative: false });
    run.at(run.t + 1_000).sample(100_500, 7_000);
    expect(run.state.phase).toBe("energized");
    expect(run.state.relayCommandedClosed).toBe(true);
    run.send({ type: "remoteStop", sessionId: 1n });
    run.send({ type: "relayFeedback", closed: false });
    run.at(run.t + 1_500).sample(100_510, 0);
    expect(run.state.phase).toBe("settling");
    run.send({ type: "settleMined", sessionId: 1n, txHash: "0x5e" });
    run.send({ type: "chainHead", blockNumber: 40 });
    expect(run.state.session?.sessionId).toBe(2n);
    expect(run.state.phase).toBe("depositPending");
  });
});

describe("session core: several deposits", () => {
  it("serves a deposit that arrives during a session after that session settles, never a deposit twice", () => {
    const run = new Run();
    run.energize(1n);
    run.send({ type: "depositSeen", ...sessionTerms(2n, { depositBlock: 12 }) });
    run.send({ type: "depositSeen", ...sessionTerms(2n, { depositBlock: 12 }) });
    expect(run.state.queue.map((q) => q.sessionId)).toEqual([2n]);
    run.send({ type: "remoteStop" });
    run.send({ type: "relayFeedback", closed: false });
    run.at(run.t + 1_000).sample(100_000, 0);
    run.send({ type: "settleMined", sessionId: 1n, txHash: "0xs" });
    expect(run.state.session?.sessionId).toBe(2n);
    run.send({ type: "depositSeen", ...sessionTerms(1n) });
    expect(run.state.queue).toEqual([]);
  });
});


describe("session core: properties over random event sequences", () => {
  it("closes the relay only with a mined authorize, enough confirmations, a fresh meter and an EV; settles each session once", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const random = mulberry32(seed);
      const pick = <T,>(items: T[]): T => items[Math.floor(random() * items.length)] as T;
      let state = initialState();
      let t = 1_000_000;
      let energyWh = 50_000;
      let head = 5;
      const settled = new Map<string, string>();
      for (let i = 0; i < 200; i++) {
        t += Math.floor(random() * 1_500);
        const sessionId = BigInt(1 + Math.floor(random() * 4));
        const event: CoreEvent = pick<CoreEvent>([
          { type: "meterSample", atMs: t, energyWh: (energyWh += Math.floor(random() * 300)), powerW: random() < 0.3 ? 0 : 7_000 },
          { type: "meterSample", atMs: t, energyWh, powerW: 3_000 },
          { type: "meterFault", atMs: t, kind: pick(["timeout", "crc", "implausible"]), message: "x" },
          { type: "evPresence", atMs: t, present: random() < 0.7 },
          { type: "relayFeedback", atMs: t, closed: random() < 0.5 ? state.relayCommandedClosed : !state.relayCommandedClosed },
          { type: "depositSeen", atMs: t, ...sessionTerms(sessionId, { depositBlock: head, depositWei: BigInt(Math.floor(random() * 5e15)) }) },
          { type: "chainHead", atMs: t, blockNumber: (head += Math.floor(random() * 2)) },
          { type: "depositReorged", atMs: t, sessionId },
          { type: "authorizeMined", atMs: t, sessionId, txHash: "0x1" },
          { type: "settleMined", atMs: t, sessionId, txHash: "0x2" },
          { type: "remoteStop", atMs: t },
          { type: "tick", atMs: t },
          { type: "startup", atMs: t },
          { type: "clearFault", atMs: t },
        ]);
        const before = state;
        const result = step(config, state, event);
        state = result.state;
        for (const command of result.commands) {
          if (command.type === "setRelay" && command.closed) {
            const session = state.session;
            const context = `seed ${seed} op ${i} ${event.type}`;
            expect(session?.authorizeMined, context).toBe(true);
            expect(confirmationsOf(state, session!), context).toBeGreaterThanOrEqual(config.confirmations);
            expect(meterFresh(config, state), context).toBe(true);
            expect(state.evPresent, context).toBe(true);
            expect(state.fault, context).toBeUndefined();
            expect(before.relayCommandedClosed, context).toBe(false);
          }
          if (command.type === "sendSettle") {
            const key = command.total.sessionId.toString();
            const total = JSON.stringify(command.total, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
            // A re-sent settle (after a restart) must carry exactly the same signed total.
            if (settled.has(key)) expect(total, `seed ${seed} op ${i}`).toBe(settled.get(key));
            settled.set(key, total);
            expect(command.total.meterStopWh).toBeGreaterThanOrEqual(command.total.meterStartWh);
          }
        }
        if (state.relayCommandedClosed) expect(["energized", "suspended"]).toContain(state.phase);
      }
    }
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { initialState, step } from "../../../../agent/core/step.ts";
import type { CoreEvent, CoreState } from "../../../../agent/core/types.ts";
import { openJournal, type Journal } from "../../../../agent/journal/journal.ts";
import { silentLogger } from "../../../../agent/logging.ts";
import { createOcppObserver, type ObservedStep } from "../../../../agent/ocpp/observer.ts";
import { createTransactionQueue } from "../../../../agent/ocpp/queue.ts";
import { coreConfig, sessionTerms } from "../../../helpers/core-fixtures.ts";

const core = coreConfig({ confirmations: 1, hasEvPresentInput: false, hasFeedbackInput: false });

let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ocpp-observer-"));
  path = join(dir, "journal.sqlite");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function observerOn(journal: Journal, observed: ObservedStep[] = []) {
  const queue = createTransactionQueue({ journal, log: silentLogger(), retry: () => ({ attempts: 3, retryIntervalMs: 0 }) });
  const observer = createOcppObserver({
    journal,
    queue,
    log: silentLogger(),
    modelConfig: () => ({ connectorId: 1, meterValueSampleIntervalS: 60, clockAlignedDataIntervalS: 0 }),
    inputs: () => ({ chargePointInoperative: false }),
    onObserved: (step) => observed.push(step),
  });
  return { queue, observer };
}

/** Steps the core as the agent does: event and observation in one journal transaction, then onStep. */
function run(journal: Journal, observer: ReturnType<typeof observerOn>["observer"], state: CoreState, event: CoreEvent, options: { crashBeforeOnStep?: boolean } = {}): CoreState {
  const result = step(core, state, event);
  journal.transaction(() => {
    journal.append(event as unknown as { type: string });
    observer.stepObserver.onJournaled?.(state, event, result.state);
  });
  if (!options.crashBeforeOnStep) observer.stepObserver.onStep?.(result.state, event, result.commands);
  return result.state;
}

const deposit: CoreEvent = { type: "depositSeen", atMs: 1_000, ...sessionTerms(7n, { depositTxHash: "0xdeposit" }) };

describe("OCPP observer", () => {
  it("commits the StartTransaction intent with the step that energized, so a kill -9 before sending keeps it", () => {
    let journal = openJournal(path);
    const observed: ObservedStep[] = [];
    const first = observerOn(journal, observed);
    let state = initialState();
    state = run(journal, first.observer, state, { type: "startup", atMs: 1_000 });
    state = run(journal, first.observer, state, { type: "meterSample", atMs: 1_000, energyWh: 5_000, powerW: 0 });
    state = run(journal, first.observer, state, deposit);
    state = run(journal, first.observer, state, { type: "chainHead", atMs: 1_000, blockNumber: 10 });
    expect(observed.map((step) => step.authorizeSessionId)).toContain(7n);
    // The step that energizes is journaled, then the process dies before anything is sent.
    state = run(journal, first.observer, state, { type: "authorizeMined", atMs: 1_000, sessionId: 7n, txHash: "0xa" }, { crashBeforeOnStep: true });
    expect(state.phase).toBe("energized");
    journal.close();

    journal = openJournal(path);
    const second = observerOn(journal);
    expect(second.queue.pending().map((message) => [message.key, message.intent.type === "transactionStarted" ? message.intent.meterStartWh : undefined])).toEqual([
      ["ocpp:start:7", 5_000],
    ]);
    expect(journal.getValue("ocpp.depositTx.7")).toBe("0xdeposit");
    // The restarted observer knows the transaction is open: reconciling with the same state starts nothing twice.
    second.observer.reconcile(state, 2_000);
    expect(second.queue.pending()).toHaveLength(1);
    expect(second.observer.model().transaction?.sessionId).toBe("7");
    journal.close();
  });

  it("writes nothing when the step's journal transaction rolls back", () => {
    const journal = openJournal(path);
    const { queue, observer } = observerOn(journal);
    let state = initialState();
    state = run(journal, observer, state, { type: "startup", atMs: 1_000 });
    state = run(journal, observer, state, { type: "meterSample", atMs: 1_000, energyWh: 5_000, powerW: 0 });
    state = run(journal, observer, state, deposit);
    state = run(journal, observer, state, { type: "chainHead", atMs: 1_000, blockNumber: 10 });
    const event: CoreEvent = { type: "authorizeMined", atMs: 1_000, sessionId: 7n, txHash: "0xa" };
    const next = step(core, state, event).state;
    const eventsBefore = journal.lastSeq();
    expect(() =>
      journal.transaction(() => {
        journal.append(event as unknown as { type: string });
        observer.stepObserver.onJournaled?.(state, event, next);
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    expect(journal.lastSeq()).toBe(eventsBefore);
    expect(queue.pending()).toEqual([]);
    expect(observer.model().transaction).toBeUndefined();
    // The same step again (the agent retries nothing, but a later step sees the same state) starts it once.
    run(journal, observer, state, event);
    expect(queue.pending().map((message) => message.key)).toEqual(["ocpp:start:7"]);
    expect(observer.model().transaction?.sessionId).toBe("7");
    journal.close();
  });
});

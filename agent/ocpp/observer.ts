/**
 * The version-neutral half of an OCPP adapter: it follows the agent's steps (agent/runtime/agent.ts StepObserver),
 * runs the pure model, and
 * - writes transaction intents to the persisted queue and the model's own state to the journal, inside the journal
 *   transaction of the step that produced them (so an intent is never lost, nor produced twice, across `kill -9`);
 * - hands every intent, in order, to the version adapter once the step has committed (`onIntents`).
 */
import type { CoreEvent, CoreState } from "../core/types.ts";
import type { MeterSample } from "../../drivers/meters/types.ts";
import type { Journal } from "../journal/journal.ts";
import type { Logger } from "../logging.ts";
import type { StepObserver } from "../runtime/agent.ts";
import type { MeterReading, OcppIntent } from "./intents.ts";
import {
  authorizeDue,
  initialModelState,
  observeCore,
  observeReading,
  readingOf,
  type OcppModelConfig,
  type OcppModelInputs,
  type OcppModelState,
} from "./model.ts";
import { isTransactionIntent, type TransactionQueue } from "./queue.ts";
import { DEPOSIT_TX_PREFIX } from "./transaction-keys.ts";

const MODEL_STATE_KEY = "ocpp.model";

/** What the adapter is told after a step committed: intents in order, and an idTag to Authorize, if any. */
export interface ObservedStep {
  intents: OcppIntent[];
  authorizeSessionId?: bigint;
}

export interface OcppObserverOptions {
  journal: Journal;
  queue: TransactionQueue;
  log: Logger;
  modelConfig: () => OcppModelConfig;
  inputs: () => OcppModelInputs;
  onObserved: (step: ObservedStep) => void;
}

export interface OcppObserver {
  readonly stepObserver: StepObserver;
  /**
   * Brings the model up to the core's current state (at start-up: steps the observer did not see, e.g. the
   * agent's own start-up, or a crash between a step's commit and its observation) in one journal transaction.
   */
  reconcile(core: CoreState, atMs: number): void;
  model(): OcppModelState;
  lastReading(): MeterReading | undefined;
}

/** The deposit transaction of a session that became an OCPP transaction (DataTransfer sessionInfo). */
export function depositTxOf(journal: Journal, sessionId: bigint): string | undefined {
  const value = journal.getValue(DEPOSIT_TX_PREFIX + sessionId.toString());
  return typeof value === "string" ? value : undefined;
}

export function createOcppObserver(options: OcppObserverOptions): OcppObserver {
  const { journal, queue, log } = options;
  const stored = journal.getValue(MODEL_STATE_KEY) as OcppModelState | undefined;
  let model: OcppModelState = stored ?? initialModelState();
  let lastSample: MeterSample | undefined;
  // What the last journal transaction wrote, taken over by `flush` only once that transaction has committed (the
  // agent calls onStep after it): a rolled-back step leaves the model and the adapter untouched.
  let staged: { model: OcppModelState; step?: ObservedStep } | undefined;

  /** Runs inside the caller's journal transaction. */
  function apply(previous: CoreState | undefined, core: CoreState, atMs: number, sample: MeterSample | undefined): void {
    const config = options.modelConfig();
    const inputs = options.inputs();
    const intents: OcppIntent[] = [];
    let next = model;
    staged = undefined;
    if (sample) {
      // The reading first: a start in this step reports it as its Transaction.Begin values.
      next = { ...next, lastReading: readingOf(sample) };
    }
    const observed = observeCore(config, next, core, inputs, atMs);
    next = observed.state;
    intents.push(...observed.intents);
    if (sample) {
      const readings = observeReading(config, next, readingOf(sample));
      next = readings.state;
      intents.push(...readings.intents);
    }
    for (const intent of intents) {
      if (isTransactionIntent(intent)) queue.enqueue(intent);
      if (intent.type === "transactionStarted" && core.session?.sessionId === intent.sessionId) {
        journal.setValue(DEPOSIT_TX_PREFIX + intent.sessionId.toString(), core.session.depositTxHash);
      }
    }
    journal.setValue(MODEL_STATE_KEY, next);
    const authorizeSessionId = previous ? authorizeDue(previous, core) : undefined;
    const hasNews = intents.length > 0 || authorizeSessionId !== undefined;
    staged = { model: next, ...(hasNews ? { step: { intents, ...(authorizeSessionId === undefined ? {} : { authorizeSessionId }) } } : {}) };
  }

  function flush(): void {
    const committed = staged;
    staged = undefined;
    if (!committed) return;
    model = committed.model;
    if (!committed.step) return;
    try {
      options.onObserved(committed.step);
    } catch (error) {
      log.error({ err: error }, "ocpp adapter failed to take intents");
    }
  }

  const stepObserver: StepObserver = {
    onSample(sample) {
      lastSample = sample;
    },
    onJournaled(previous: CoreState, event: CoreEvent, next: CoreState) {
      const sample = event.type === "meterSample" && lastSample?.readAtMs === event.atMs ? lastSample : undefined;
      apply(previous, next, event.atMs, sample);
    },
    onStep() {
      flush();
    },
  };

  return {
    stepObserver,
    reconcile(core, atMs) {
      journal.transaction(() => apply(undefined, core, atMs, undefined));
      flush();
    },
    model: () => model,
    lastReading: () => model.lastReading,
  };
}

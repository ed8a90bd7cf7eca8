/**
 * OCPP for the pile (DESIGN §3): the CSMS is told about sessions; it never replaces the deposit. `startOcpp` joins
 * a running agent as a step observer and speaks to the CSMS in the configured version. It never blocks the agent:
 * it returns at once, connects in the background, and a CSMS that is down only delays its messages (transaction
 * messages wait in the journal, statuses are re-sent after each reconnect).
 */
import type { CoreEvent, CoreState } from "../core/types.ts";
import type { Config } from "../config/schema.ts";
import type { Journal } from "../journal/journal.ts";
import type { Logger } from "../logging.ts";
import type { StepObserver } from "../runtime/agent.ts";
import { startV16 } from "./v16.ts";
import { startV201 } from "./v201.ts";

export type OcppConfig = NonNullable<Config["ocpp"]>;

export { OCPP_DEFAULTS } from "./connection.ts";

/** The agent as OCPP needs it: read the state, feed events (remote stop, availability), follow steps. */
export interface OcppAgentView {
  state(): CoreState;
  dispatch(event: CoreEvent): Promise<void>;
  observe(observer: StepObserver): () => void;
}

/** What a CSMS Reset asked for; the host decides what a reset is (exit for systemd, restart in-process in the sim). */
export type ResetKind = "Soft" | "Hard";

export interface StartOcppOptions {
  /** The config's `ocpp` section (caFile already resolved relative to the config file by loadConfig). */
  config: OcppConfig;
  /** The OCPP identity: the last path segment of the endpoint and the Basic-auth user name. */
  chargePointId: string;
  /** `chain.confirmations`: a queued deposit counts as waiting for a RemoteStart only once confirmed. */
  confirmations: number;
  agent: OcppAgentView;
  /** The agent's journal: the transaction queue, the transactionId map and the configuration live in it. */
  journal: Journal;
  log: Logger;
  /**
   * Runs after a CSMS Reset was accepted and any running session was stopped with its signed total in the outbox
   * ("settled first"). The host stops the agent and restarts it.
   */
  onReset: (kind: ResetKind) => void | Promise<void>;
  /** Unix ms; defaults to Date.now. */
  clock?: () => number;
  /** `meter.staleAfterMs`: how long a meter fault must last before the connector reports it. Default 3 000. */
  meterStaleAfterMs?: number;
  /** BootNotification fields. */
  firmwareVersion?: string;
  meterType?: string;
  /** First reconnect delay, ms (default 1 000; tests shorten it). The cap is `config.reconnectMaxDelayS`. */
  reconnectInitialMs?: number;
  /** Overrides the journal's `TransactionMessageRetryInterval` unit, ms per attempt (tests). */
  retryUnitMs?: number;
}

export interface RunningOcpp {
  /** True while connected and the CSMS has accepted the BootNotification. */
  isAccepted(): boolean;
  /** Transaction messages waiting in the journal. */
  pendingTransactionMessages(): number;
  /** The CSMS's transactionId for a session, once its StartTransaction was confirmed. */
  transactionIdOf(sessionId: bigint): string | undefined;
  /** Stops observing the agent and closes the connection; queued messages stay in the journal for the next start. */
  stop(): Promise<void>;
}

/** Starts the adapter for `config.version`. Returns at once; the connection comes up in the background. */
export function startOcpp(options: StartOcppOptions): RunningOcpp {
  switch (options.config.version) {
    case "1.6":
      return startV16(options);
    case "2.0.1":
      return startV201(options);
  }
}

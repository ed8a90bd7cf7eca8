/**
 * The CSMS side of `trustpile sim` (issue 8): hw-sim's CSMS simulator on a free port, the pile's OCPP adapter
 * joined to the running agent, and what the sim prints of their conversation. The operator's actions are the ones
 * an installer tries first: a configuration change, a trigger, a remote start that must be refused without a
 * deposit and accepted with one, and a remote stop.
 */
import { startCsmsSim, type CsmsMessage, type CsmsSim } from "../../hw-sim/csms/index.ts";
import type { Logger } from "../logging.ts";
import { startOcpp, type RunningOcpp } from "../ocpp/index.ts";
import { SIM_CHARGE_POINT_ID, type SimWorld } from "./world.ts";

export type SimOcppVersion = "1.6" | "2.0.1";

export interface SimOcpp {
  csms: CsmsSim;
  version: SimOcppVersion;
  ocpp(): RunningOcpp;
  stop(): Promise<void>;
}

/** Starts the CSMS simulator and joins the pile to it; resolves once the CSMS has accepted the pile's boot. */
export async function startSimOcpp(world: SimWorld, version: SimOcppVersion, log: Logger, progress: (line: string) => void): Promise<SimOcpp> {
  const csms = await startCsmsSim({ port: 0, logger: log.child({ component: "csms-sim" }) });
  const start = (): RunningOcpp =>
    startOcpp({
      config: { url: csms.url, version, connectorId: 1, vendor: "trustpile", model: "trustpile-sim", reconnectMaxDelayS: 10 },
      chargePointId: SIM_CHARGE_POINT_ID,
      confirmations: world.core.confirmations,
      agent: { state: () => world.agent.state(), dispatch: (event) => world.agent.dispatch(event), observe: (observer) => world.agent.observe(observer) },
      journal: world.journal,
      log: log.child({ component: "ocpp" }),
      onReset: async (kind) => {
        // A reset restarts the agent on the same journal and hardware, as a reboot of the pile would.
        progress(`  ocpp: ${kind} reset accepted; restarting the agent`);
        await running.stop();
        await world.restartAgent();
        running = start();
      },
    });
  let running = start();
  const deadline = Date.now() + 15_000;
  while (!running.isAccepted()) {
    if (Date.now() > deadline) {
      await running.stop();
      await csms.stop();
      throw new Error(`the CSMS simulator at ${csms.url} did not accept the pile's BootNotification within 15 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    csms,
    version,
    ocpp: () => running,
    stop: async () => {
      await running.stop();
      await csms.stop();
    },
  };
}

/** One line for the operator's answer from the pile. */
export function answerText(answer: Record<string, unknown>): string {
  const status = answer.status;
  return typeof status === "string" ? status : JSON.stringify(answer);
}

/** What the CSMS heard about one session, from its conversation with the pile. */
export interface CsmsSessionView {
  transactionId?: string;
  meterStartWh?: number;
  meterStopWh?: number;
  stopReason?: string;
  meterValues: number;
  /** Actions the pile sent for this transaction, in order, with repeats collapsed ("MeterValues ×12"). */
  sequence: string[];
}

function numberOf(value: unknown): number | undefined {
  const parsed = typeof value === "number" ? value : typeof value === "string" ? Number(value) : Number.NaN;
  return Number.isFinite(parsed) ? parsed : undefined;
}

interface SampledValue {
  value?: unknown;
  measurand?: unknown;
}

/** The energy register in a 2.0.1 TransactionEvent's meter values, in Wh. */
function registerOf201(payload: Record<string, unknown>): number | undefined {
  const meterValues = payload.meterValue as { sampledValue?: SampledValue[] }[] | undefined;
  for (const meterValue of meterValues ?? []) {
    for (const sampled of meterValue.sampledValue ?? []) {
      if (sampled.measurand === undefined || sampled.measurand === "Energy.Active.Import.Register") return numberOf(sampled.value);
    }
  }
  return undefined;
}

/**
 * The session's transaction as the CSMS saw it. 1.6: StartTransaction with idTag = the session id, then the
 * MeterValues and the StopTransaction carrying the transactionId the CSMS assigned. 2.0.1: TransactionEvents whose
 * transactionId is the session id.
 */
export function csmsViewOfSession(messages: readonly CsmsMessage[], sessionId: bigint, version: SimOcppVersion): CsmsSessionView {
  const view: CsmsSessionView = { meterValues: 0, sequence: [] };
  const note = (action: string): void => {
    const last = view.sequence.at(-1);
    const match = last?.match(/^(\S+)(?: ×(\d+))?$/);
    if (match && match[1] === action) view.sequence[view.sequence.length - 1] = `${action} ×${Number(match[2] ?? 1) + 1}`;
    else view.sequence.push(action);
  };
  const fromPile = messages.filter((message) => message.from === "pile");
  if (version === "1.6") {
    const start = fromPile.find((m) => m.action === "StartTransaction" && (m.payload as { idTag?: unknown }).idTag === sessionId.toString());
    if (!start) return view;
    const reply = start.reply?.kind === "result" ? (start.reply.payload as { transactionId?: unknown }) : undefined;
    view.transactionId = reply?.transactionId === undefined ? undefined : String(reply.transactionId);
    view.meterStartWh = numberOf((start.payload as { meterStart?: unknown }).meterStart);
    note("StartTransaction");
    for (const message of fromPile) {
      const payload = message.payload as { transactionId?: unknown; meterStop?: unknown; reason?: unknown };
      if (view.transactionId === undefined || String(payload.transactionId) !== view.transactionId) continue;
      if (message.action === "MeterValues") {
        view.meterValues++;
        note("MeterValues");
      } else if (message.action === "StopTransaction") {
        view.meterStopWh = numberOf(payload.meterStop);
        view.stopReason = typeof payload.reason === "string" ? payload.reason : undefined;
        note("StopTransaction");
      }
    }
    return view;
  }
  for (const message of fromPile) {
    if (message.action !== "TransactionEvent") continue;
    const payload = message.payload as Record<string, unknown>;
    const info = payload.transactionInfo as { transactionId?: unknown; stoppedReason?: unknown } | undefined;
    if (String(info?.transactionId) !== sessionId.toString()) continue;
    view.transactionId = sessionId.toString();
    const eventType = String(payload.eventType);
    note(`TransactionEvent ${eventType}`);
    if (eventType === "Started") view.meterStartWh = registerOf201(payload);
    if (eventType === "Updated") view.meterValues++;
    if (eventType === "Ended") {
      view.meterStopWh = registerOf201(payload);
      view.stopReason = typeof info?.stoppedReason === "string" ? info.stoppedReason : undefined;
    }
  }
  return view;
}

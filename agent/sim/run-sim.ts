/**
 * `trustpile sim` (= `npm start`): the whole system on one machine. anvil with a block every second, the contracts
 * deployed, a pile registered with a fresh device key, hw-sim's meter served over Modbus TCP on loopback with the
 * relay, feedback contact and EV on the sim GPIO, the real agent (journal, interlock, chain watcher, tx sender),
 * and an EV wallet that plugs in and pays deposits. Each session is checked to the wei and to the Wh; then the EV
 * rates the pile (paper §3.4) and the pile's reputation R_cp is shown moving by eq. 2, checked against the twin.
 * Every `auctionEvery`-th session the EV first finds its pile by the pricing auction (Algorithm 2) among cp-sim-1
 * and two bidder-only neighbours (agent/sim/sim-auction.ts), and pays the auction's price instead of the listed one.
 */
import { formatEther } from "ethers";
import { connect as mqttConnect, type MqttClient } from "mqtt";
import { connectEvaluations, connectLedger, connectPricingAuction, SessionStatus } from "../chain/contracts.ts";
import { openAuctionSession, openSession, rateSession, withdrawFromAuction } from "../chain/operations.ts";
import type { RoundReport } from "../auction/ev-auction-rules.ts";
import { SIM_NEIGHBOURS, SIM_PILE_BIDDING, etherPerKWh, runSimAuction } from "./sim-auction.ts";
import { answerText, csmsViewOfSession, startSimOcpp, type SimOcpp, type SimOcppVersion } from "./sim-ocpp.ts";
import { fromSd59x18, reputationUpdate, type Score } from "../reputation/eq2.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { silentLogger, type Logger } from "../logging.ts";
import type { CoreState, Phase } from "../core/types.ts";
import type { MeterSample } from "../../drivers/meters/types.ts";
import { startEmbeddedBroker, type EmbeddedBroker } from "../telemetry/embedded-broker.ts";
import { startTelemetry } from "../telemetry/index.ts";
import type { Telemetry, TelemetryTopic } from "../telemetry/types.ts";
import { describeConnectFailure, parseTopic } from "../telemetry/watch-view.ts";
import {
  SIM_BIDDER_POLL_INTERVAL_MS,
  SIM_CHARGE_POINT_ID,
  SIM_POLL_INTERVAL_MS,
  SIM_PRICE_WEI_PER_KWH,
  costOf,
  startSimWorld,
  waitUntil,
  type SimWorld,
} from "./world.ts";

/** How each simulated session ends, cycled over the sessions. */
type Scenario = { name: string; depositCoversWh: number; maxEnergyWh: number; pauseAndUnplugAtWh?: number; remoteStopAtWh?: number };
const SCENARIOS: Scenario[] = [
  { name: "deposit used up", depositCoversWh: 300, maxEnergyWh: 20_000 },
  { name: "EV pauses and unplugs", depositCoversWh: 1_000, maxEnergyWh: 20_000, pauseAndUnplugAtWh: 150 },
  { name: "EV's own limit", depositCoversWh: 1_000, maxEnergyWh: 250 },
  // Without OCPP in the run nobody sends the remote stop, and the deposit ends this one.
  { name: "operator stops it from the CSMS", depositCoversWh: 400, maxEnergyWh: 20_000, remoteStopAtWh: 120 },
];

/** The EV's rating of the pile after a settled session, and what eq. 2 made of it. */
export interface SimRating {
  score: Score;
  evaluationNo: bigint;
  /** The rater's credibility R_v when it rated (its weight, capped at μ·D). */
  raterCredibility: bigint;
  /** R_cp before and after, SD59x18 (1e18 = 1.0). */
  reputationBefore: bigint;
  reputationAfter: bigint;
  txHash: string;
}

/** How the EV found the price of a session: the Registry's list, or a pricing auction it won. */
export type SimPricing = "listed" | "auction";

/** One auction of the sim as the EV saw it. */
export interface SimAuctionReport {
  invitationId: bigint;
  rounds: RoundReport[];
  /** chargePointId of the winner; undefined when the auction failed. */
  winner: string | undefined;
  /** The decided price (wei/kWh); undefined when the auction failed. */
  priceWeiPerKWh: bigint | undefined;
}

/** An auction session that opened no session: a pile without hardware won, or nobody bid. */
export interface SimSkippedAuction {
  /** 1-based position among the `sessions` the sim was asked for. */
  slot: number;
  auction: SimAuctionReport;
  reason: string;
}

export interface SimSessionReport {
  sessionId: bigint;
  scenario: string;
  pricing: SimPricing;
  /** The session's price on chain (wei/kWh). */
  priceWeiPerKWh: bigint;
  /** Set for `pricing: "auction"`. */
  auction?: SimAuctionReport;
  stopReason: string;
  energyWh: bigint;
  meterDeltaWh: number;
  depositWei: bigint;
  costWei: bigint;
  refundWei: bigint;
  ownerCreditWei: bigint;
  evCreditWei: bigint;
  settleTxHash: string;
  /** Undefined only when the rating failed (then `problems` says why). */
  rating?: SimRating;
  ok: boolean;
  problems: string[];
}

export interface SimOptions {
  sessions: number;
  /**
   * Every this many sessions (the 2nd, 4th, … for 2) goes through a pricing auction first; 0 for none. Default
   * `DEFAULT_AUCTION_EVERY`.
   */
  auctionEvery?: number;
  /** Physics speed-up of the simulated EV and meter; the agent keeps real time. */
  speedup?: number;
  progress?: (line: string) => void;
  signal?: AbortSignal;
  /** The agent's structured log; silent unless given. */
  log?: Logger;
  /** Seed of the EV's ratings; the same seed gives the same scores. */
  ratingSeed?: number;
  /**
   * Telemetry (DESIGN §5.3) of the in-process agent: published to this broker, else to an embedded one on a free
   * loopback port that stays up for the whole run. `false` runs without telemetry.
   */
  telemetry?: false | { mqttUrl?: string };
  /** The pile's OCPP link to hw-sim's CSMS simulator in this version (default "1.6"); `false` runs without OCPP. */
  ocpp?: false | { version: SimOcppVersion };
}

export const SIM_TOPIC_PREFIX = "trustpile";
const TELEMETRY_TOPICS: readonly TelemetryTopic[] = ["status", "state", "meter", "session", "event"];
/** How long a settled session's `session` messages may take to reach the sim's own subscriber. */
const SESSION_MESSAGE_WAIT_MS = 5_000;

/**
 * The sim's telemetry: a broker (embedded unless a URL is given), the agent's publisher, and a subscriber of the
 * sim's own that counts what actually arrived, per topic and per session.
 */
interface SimTelemetry {
  url: string;
  telemetry: Telemetry;
  received: Record<TelemetryTopic, number>;
  sessionMessages: Map<string, number>;
  summary(): string[];
  close(): Promise<void>;
}

function connectSubscriber(url: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqttConnect(url, {
      protocolVersion: 4,
      clientId: `trustpile-sim-subscriber-${process.pid}`,
      clean: true,
      connectTimeout: 5_000,
      reconnectPeriod: 0,
    });
    const fail = (error: unknown): void => {
      client.end(true);
      reject(new Error(describeConnectFailure(url, error)));
    };
    client.once("error", fail);
    client.once("connect", () => {
      client.off("error", fail);
      // From now on ride out broker hiccups: the counts simply stop growing while it is away.
      client.on("error", () => undefined);
      client.options.reconnectPeriod = 1_000;
      resolve(client);
    });
  });
}

async function startSimTelemetry(mqttUrl: string | undefined, log: Logger): Promise<SimTelemetry> {
  const cleanups: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  try {
    let broker: EmbeddedBroker | undefined;
    if (mqttUrl === undefined) {
      broker = await startEmbeddedBroker();
      const started = broker;
      cleanups.push(() => started.stop());
    }
    const url = mqttUrl ?? (broker as EmbeddedBroker).url;

    const received = Object.fromEntries(TELEMETRY_TOPICS.map((topic) => [topic, 0])) as Record<TelemetryTopic, number>;
    const sessionMessages = new Map<string, number>();
    const subscriber = await connectSubscriber(url);
    cleanups.push(() => new Promise<void>((resolve) => subscriber.end(false, {}, () => resolve())));
    subscriber.on("message", (topic, payload, packet) => {
      // Retained messages from before this run (an external broker) are not this run's telemetry.
      if (packet.retain) return;
      const parsed = parseTopic(SIM_TOPIC_PREFIX, topic);
      if (!parsed || parsed.chargePointId !== SIM_CHARGE_POINT_ID) return;
      received[parsed.topic] += 1;
      if (parsed.topic !== "session") return;
      try {
        const body: unknown = JSON.parse(payload.toString("utf8"));
        const id = (body as { sessionId?: unknown } | null)?.sessionId;
        if (typeof id === "string") sessionMessages.set(id, (sessionMessages.get(id) ?? 0) + 1);
      } catch {
        // A malformed session message counts for the topic but for no session.
      }
    });
    await subscriber.subscribeAsync(TELEMETRY_TOPICS.map((topic) => `${SIM_TOPIC_PREFIX}/${SIM_CHARGE_POINT_ID}/${topic}`), { qos: 1 });

    const telemetry = startTelemetry({
      mqtt: { url, topicPrefix: SIM_TOPIC_PREFIX, homeAssistant: true, meterIntervalMs: 0, bufferLimit: 1000 },
      chargePointId: SIM_CHARGE_POINT_ID,
      log,
    });
    // Before the subscriber and the broker, so `offline` still gets out.
    cleanups.push(() => telemetry.close(3_000));

    return {
      url,
      telemetry,
      received,
      sessionMessages,
      summary: () => {
        const stats = telemetry.stats();
        const dropped = Object.entries(stats.dropped)
          .filter((entry): entry is [string, number] => typeof entry[1] === "number" && entry[1] > 0)
          .map(([kind, n]) => `${kind} ${n}`);
        return [
          `telemetry: the agent published ${stats.published} message(s) to ${url} (${stats.connected ? "connected" : "NOT connected"}), ${stats.buffered} still buffered, at most ${stats.maxBuffered} of ${stats.bufferLimit}, dropped ${dropped.length === 0 ? "none" : dropped.join(", ")}`,
          `telemetry: the sim's subscriber received ${TELEMETRY_TOPICS.map((topic) => `${topic} ${received[topic]}`).join(", ")}`,
        ];
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

export const DEFAULT_RATING_SEED = 2019;
export const DEFAULT_AUCTION_EVERY = 2;

/** What a sim run did: the sessions that ran, and the auction slots that opened none. */
export interface SimRunReport {
  sessions: SimSessionReport[];
  skippedAuctions: SimSkippedAuction[];
}

/**
 * The simulated EV's ratings: a seeded xorshift32 stream mapped to a satisfied but not uncritical customer,
 * W = 3 three times in four, else mostly 2 and now and then 1.
 */
export function ratingStream(seed: number): () => Score {
  // Spread the seed's bits (one multiply-xor round) so neighbouring small seeds start far apart.
  let state = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b) >>> 0;
  state = (state ^ (state >>> 13)) >>> 0 || 0x9e3779b9;
  const next = (): number => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4_294_967_296;
  };
  return () => {
    const u = next();
    return u < 0.75 ? 3 : u < 0.95 ? 2 : 1;
  };
}

/** R_cp (SD59x18) for the log: three decimals. */
function reputationText(value: bigint): string {
  return fromSd59x18(value).toFixed(3);
}

export async function runSim(options: SimOptions): Promise<SimRunReport> {
  const progress = options.progress ?? (() => {});
  const speedup = options.speedup ?? 5;
  const auctionEvery = options.auctionEvery ?? DEFAULT_AUCTION_EVERY;
  const withAuctions = auctionEvery > 0 && options.sessions >= auctionEvery;
  let lastPhase: Phase = "idle";
  const stopReasons = new Map<string, string>();
  const log = options.log ?? silentLogger();
  let simTelemetry: SimTelemetry | undefined;
  let world: SimWorld | undefined;
  let simOcpp: SimOcpp | undefined;
  try {
    if (options.telemetry !== false) {
      simTelemetry = await startSimTelemetry(options.telemetry?.mqttUrl, log.child({ component: "telemetry" }));
      progress(`telemetry: ${simTelemetry.url} — watch with: npx trustpile watch --url ${simTelemetry.url}`);
    }
    const sink = simTelemetry?.telemetry;
    world = await startSimWorld({
      speedup,
      log,
      onStep: (state, event, commands) => {
        sink?.onStep(state, event, commands);
        if (state.phase === lastPhase) return;
        lastPhase = state.phase;
        if (state.session?.stopReason) stopReasons.set(state.session.sessionId.toString(), state.session.stopReason);
        progress(`  agent: ${describePhase(state)}`);
      },
      ...(sink ? { onSample: (sample: MeterSample) => sink.onSample(sample) } : {}),
      // Without an auction in the run, the neighbours and the bidder would only cost start-up time.
      ...(withAuctions
        ? {
            bidding: { bidding: SIM_PILE_BIDDING, bidderPollIntervalMs: SIM_BIDDER_POLL_INTERVAL_MS },
            neighbours: SIM_NEIGHBOURS,
          }
        : {}),
    });
    const { chain, deployment, device, hwSim, evWallet, owner, ledger, agent } = world;
    const registerWh = world.registerWh;
    progress(`chain: anvil at ${chain.rpcUrl} (pid ${chain.pid}), a block every second`);
    progress(`contracts: Registry ${deployment.Registry}, ChargingLedger ${deployment.ChargingLedger}`);
    progress(`pile: ${SIM_CHARGE_POINT_ID} registered, signer ${device.address}, ${formatEther(SIM_PRICE_WEI_PER_KWH)} ether/kWh`);
    progress(`hw-sim: SDM630 on Modbus TCP 127.0.0.1:${hwSim.meterTcpPort}, control ${hwSim.controlUrl}, physics ×${speedup}`);
    progress("agent: running (relay forced open, journal replayed)");
    if (withAuctions) {
      progress(
        `bidding: ${SIM_CHARGE_POINT_ID} bids from its listed ${etherPerKWh(SIM_PRICE_WEI_PER_KWH)} down to its owner's floor ${etherPerKWh(SIM_PILE_BIDDING.floorPricePerKWh)}, undercutting by ${etherPerKWh(SIM_PILE_BIDDING.undercutStep)}`,
      );
      for (const neighbour of world.neighbours) {
        const { spec } = neighbour;
        progress(
          `bidding: ${spec.chargePointId} (bidder only, no hardware) in cell ${spec.cell.x},${spec.cell.y}, signer ${neighbour.device.address}, lists ${etherPerKWh(spec.listedPriceWeiPerKWh)}, floor ${etherPerKWh(spec.policy.floorPricePerKWh)}, undercut ${etherPerKWh(spec.policy.undercutStep)}`,
        );
      }
      progress(
        `bidding: every ${auctionEvery === 1 ? "" : `${ordinal(auctionEvery)} `}session goes through an auction; ${SIM_CHARGE_POINT_ID} has the lowest floor and normally wins. A neighbour that wins has no hardware here: that session is skipped.`,
      );
    }

    if (options.ocpp !== false) {
      const version = options.ocpp?.version ?? "1.6";
      simOcpp = await startSimOcpp(world, version, log, progress);
      const { csms } = simOcpp;
      progress(`csms: OCPP ${version} CSMS simulator at ${csms.url} (operator console ${csms.operatorUrl}); ${SIM_CHARGE_POINT_ID} booted and was accepted`);
      const changed = await csms.changeConfiguration(SIM_CHARGE_POINT_ID, "MeterValueSampleInterval", "5");
      progress(`  csms: change configuration MeterValueSampleInterval = 5 s → ${answerText(changed)}`);
      const triggered = await csms.trigger(SIM_CHARGE_POINT_ID, "StatusNotification");
      progress(`  csms: trigger StatusNotification → ${answerText(triggered)}`);
      const refused = await csms.remoteStart(SIM_CHARGE_POINT_ID, "1");
      progress(`  csms: remote start with no deposit on chain → ${answerText(refused)} (only a confirmed deposit energizes)`);
    }

    const ledgerAsEv = connectLedger(deployment.ChargingLedger, evWallet);
    if (!deployment.Evaluations) throw new Error("the sim deployment has no Evaluations contract");
    const evaluationsAsEv = connectEvaluations(deployment.Evaluations, evWallet);
    const [mu, sigma] = await evaluationsAsEv.parameters();
    const parameters = { mu: fromSd59x18(mu), sigma: fromSd59x18(sigma) };
    const nextScore = ratingStream(options.ratingSeed ?? DEFAULT_RATING_SEED);
    const cpId = cpIdOf(SIM_CHARGE_POINT_ID);
    const reputationTrail: string[] = [reputationText(await evaluationsAsEv.reputation(cpId))];
    const reports: SimSessionReport[] = [];
    const skippedAuctions: SimSkippedAuction[] = [];
    const auctionAddress = deployment.PricingAuction;
    const pileNames = new Map<string, string>([
      [cpId.toLowerCase(), SIM_CHARGE_POINT_ID],
      ...world.neighbours.map((neighbour): [string, string] => [neighbour.cpId.toLowerCase(), neighbour.spec.chargePointId]),
    ]);
    for (let n = 0; n < options.sessions; n++) {
      const scenario = SCENARIOS[n % SCENARIOS.length] as Scenario;
      const slot = n + 1;
      const meterBeforeWh = registerWh();
      const ownerBefore = await ledger.withdrawable(owner.address);
      const evBefore = await ledger.withdrawable(evWallet.address);

      let pricing: SimPricing = "listed";
      let priceWeiPerKWh = SIM_PRICE_WEI_PER_KWH;
      let auctionReport: SimAuctionReport | undefined;
      let decided: { invitationId: bigint; r: string } | undefined;
      if (withAuctions && slot % auctionEvery === 0) {
        if (!auctionAddress) throw new Error("the sim deployment has no PricingAuction contract");
        progress(`auction for session slot ${slot} (${scenario.name}): the EV invites the piles around cell 0,1`);
        const auctionAsEv = connectPricingAuction(auctionAddress, evWallet);
        const run = await runSimAuction({
          auction: auctionAsEv,
          energyWh: scenario.maxEnergyWh,
          pileNames,
          progress,
          ...(options.signal ? { signal: options.signal } : {}),
        });
        const { outcome } = run;
        auctionReport = {
          invitationId: outcome.invitationId,
          rounds: outcome.rounds,
          winner: run.winnerName,
          priceWeiPerKWh: outcome.status === "decided" ? outcome.pricePerKWh : undefined,
        };
        if (outcome.status === "failed") {
          const reason = `auction ${outcome.invitationId} failed: ${outcome.message}, session skipped`;
          progress(`  auction: ${reason}`);
          skippedAuctions.push({ slot, auction: auctionReport, reason });
          continue;
        }
        if (run.winnerName !== SIM_CHARGE_POINT_ID) {
          // Opening a session at a pile without hardware would only wait out authTimeout before the refund.
          const reason = `won by ${run.winnerName ?? outcome.winnerCpId} (no hardware in the sim), session skipped`;
          progress(`  auction: ${reason}`);
          skippedAuctions.push({ slot, auction: auctionReport, reason });
          continue;
        }
        progress(
          `  auction: won by ${SIM_CHARGE_POINT_ID} at ${etherPerKWh(outcome.pricePerKWh)} (listed ${etherPerKWh(SIM_PRICE_WEI_PER_KWH)}) after ${outcome.rounds.length} round(s) (tx ${outcome.finalizeReceipt.hash})`,
        );
        pricing = "auction";
        priceWeiPerKWh = outcome.pricePerKWh;
        decided = { invitationId: outcome.invitationId, r: outcome.r };
      }

      const depositWei = (BigInt(scenario.depositCoversWh) * priceWeiPerKWh) / 1000n;
      hwSim.board.ev.plug();
      const opened = decided
        ? await openAuctionSession(ledgerAsEv, evWallet.address, { ...decided, energyWh: scenario.maxEnergyWh, pricePerKWh: priceWeiPerKWh }, depositWei)
        : await openSession(ledgerAsEv, cpId, scenario.maxEnergyWh, depositWei);
      const sessionId = opened.sessionId;
      progress(
        `session ${sessionId} (${scenario.name}, ${pricing} price ${etherPerKWh(priceWeiPerKWh)}): EV plugged in, deposit ${formatEther(depositWei)} ether covers ${scenario.depositCoversWh} Wh, limit ${scenario.maxEnergyWh} Wh (tx ${opened.receipt.hash})`,
      );
      if (decided && auctionAddress) {
        // The invitation deposit comes back once the session is open; the EV draws it rather than leave it lying.
        const drawn = await withdrawFromAuction(connectPricingAuction(auctionAddress, evWallet), evWallet.address);
        if (drawn.amountWei > 0n) progress(`  ev: withdrew its invitation deposit ${formatEther(drawn.amountWei)} ether from the auction`);
      }

      if (simOcpp) {
        const { csms } = simOcpp;
        await waitUntil(
          `the deposit of session ${sessionId} confirmed`,
          () => {
            const state = world?.agent.state();
            return state?.session?.sessionId === sessionId && state.phase !== "depositPending";
          },
          60_000,
          options.signal,
        );
        const accepted = await csms.remoteStart(SIM_CHARGE_POINT_ID, sessionId.toString());
        progress(`  csms: remote start for session ${sessionId} (its deposit is confirmed) → ${answerText(accepted)}`);
      }
      if (scenario.remoteStopAtWh !== undefined && simOcpp) {
        const target = scenario.remoteStopAtWh;
        const { csms, version } = simOcpp;
        await waitUntil(`${target} Wh delivered`, () => registerWh() - meterBeforeWh >= target, 120_000, options.signal);
        const running = simOcpp.ocpp();
        await waitUntil(`the CSMS's transaction id of session ${sessionId}`, () => running.transactionIdOf(sessionId) !== undefined || version === "2.0.1", 30_000, options.signal);
        const transactionId = version === "1.6" ? Number(running.transactionIdOf(sessionId)) : sessionId.toString();
        const stopped = await csms.remoteStop(SIM_CHARGE_POINT_ID, transactionId);
        progress(`  csms: remote stop of transaction ${transactionId} after ${registerWh() - meterBeforeWh} Wh → ${answerText(stopped)}`);
      }
      if (scenario.pauseAndUnplugAtWh !== undefined) {
        const target = scenario.pauseAndUnplugAtWh;
        await waitUntil(`${target} Wh delivered`, () => registerWh() - meterBeforeWh >= target, 120_000, options.signal);
        hwSim.board.ev.pause();
        progress(`  ev: paused after ${registerWh() - meterBeforeWh} Wh, unplugging`);
        await new Promise((resolve) => setTimeout(resolve, 4 * SIM_POLL_INTERVAL_MS));
        hwSim.board.ev.unplug();
      }
      await waitUntil(`session ${sessionId} to settle`, async () => (await ledger.session(sessionId)).status === SessionStatus.Settled, 180_000, options.signal);
      if (hwSim.board.ev.state().plugged) hwSim.board.ev.unplug();
      await waitUntil("the agent to go idle", () => agent.state().phase === "idle", 30_000, options.signal);

      const onChain = await ledger.session(sessionId);
      const settledLog = (await ledger.queryFilter(ledger.getEvent("SessionSettled"))).find(
        (log) => ledger.interface.parseLog(log)?.args[0] === sessionId,
      );
      const energyWh = onChain.energyWh;
      const costWei = costOf(energyWh, priceWeiPerKWh);
      const refundWei = costWei < depositWei ? depositWei - costWei : 0n;
      const ownerCreditWei = (await ledger.withdrawable(owner.address)) - ownerBefore;
      const evCreditWei = (await ledger.withdrawable(evWallet.address)) - evBefore;
      const meterDeltaWh = registerWh() - meterBeforeWh;
      const problems: string[] = [];
      if (onChain.pricePerKWh !== priceWeiPerKWh) problems.push(`session price on chain ${onChain.pricePerKWh} wei/kWh, expected the ${pricing} price ${priceWeiPerKWh}`);
      if (ownerCreditWei !== (costWei < depositWei ? costWei : depositWei)) problems.push(`owner credited ${ownerCreditWei} wei, expected ${costWei}`);
      if (evCreditWei !== refundWei) problems.push(`EV refunded ${evCreditWei} wei, expected ${refundWei}`);
      if (BigInt(meterDeltaWh) !== energyWh) problems.push(`signed ${energyWh} Wh but the meter register moved ${meterDeltaWh} Wh`);
      if (costWei > depositWei) problems.push(`cost ${costWei} wei exceeds the deposit ${depositWei} wei (overshoot beyond the stop margin)`);
      if (simTelemetry) {
        const counts = simTelemetry.sessionMessages;
        const key = sessionId.toString();
        await waitUntil(`telemetry of session ${sessionId}`, () => (counts.get(key) ?? 0) > 0, SESSION_MESSAGE_WAIT_MS, options.signal).catch(
          (error: unknown) => {
            if (options.signal?.aborted) throw error;
          },
        );
        if ((counts.get(key) ?? 0) === 0) problems.push(`no telemetry session message arrived for session ${sessionId} on ${simTelemetry.url}`);
      }
      if (simOcpp) {
        const { csms, version } = simOcpp;
        const sid = sessionId;
        // The Stop may still be on its way (the queue sends after the settle step); give it a moment.
        await waitUntil(
          `the CSMS to hear the end of session ${sid}`,
          () => csmsViewOfSession(csms.conversation(SIM_CHARGE_POINT_ID), sid, version).meterStopWh !== undefined,
          15_000,
          options.signal,
        ).catch((error: unknown) => {
          if (options.signal?.aborted) throw error;
        });
        const view = csmsViewOfSession(csms.conversation(SIM_CHARGE_POINT_ID), sid, version);
        progress(
          `  csms: transaction ${view.transactionId ?? "?"}: ${view.sequence.join(", ") || "nothing"}; meter ${view.meterStartWh ?? "?"} → ${view.meterStopWh ?? "?"} Wh${view.stopReason ? `, reason ${view.stopReason}` : ""}`,
        );
        if (view.meterStartWh === undefined || view.meterStopWh === undefined) {
          problems.push(`the CSMS never heard the start and stop of session ${sid}`);
        } else if (BigInt(view.meterStopWh - view.meterStartWh) !== energyWh) {
          problems.push(`the CSMS saw ${view.meterStopWh - view.meterStartWh} Wh (meterStop − meterStart), the chain settled ${energyWh} Wh`);
        }
      }
      progress(
        `session ${sessionId}: settled ${energyWh} Wh, cost ${costWei} wei, refund ${refundWei} wei, meter moved ${meterDeltaWh} Wh — ${problems.length === 0 ? "exact" : problems.join("; ")} (tx ${settledLog?.transactionHash ?? "?"})`,
      );

      // The EV rates the pile (paper §3.4): its credibility R_v weighs the score in eq. 2.
      let rating: SimRating | undefined;
      const score = nextScore();
      try {
        const raterCredibility = await ledger.credibility(evWallet.address);
        const rated = await rateSession(evaluationsAsEv, sessionId, score);
        rating = {
          score,
          evaluationNo: rated.evaluationNo,
          raterCredibility,
          reputationBefore: rated.reputationBefore,
          reputationAfter: rated.reputationAfter,
          txHash: rated.receipt.hash,
        };
        const twin = reputationUpdate(fromSd59x18(rated.reputationBefore), score, Number(raterCredibility), parameters);
        if (Math.abs(twin - fromSd59x18(rated.reputationAfter)) > 1e-12) {
          problems.push(`eq. 2 on chain gave R_cp ${fromSd59x18(rated.reputationAfter)}, its float64 twin ${twin}`);
        }
        reputationTrail.push(reputationText(rated.reputationAfter));
        progress(
          `session ${sessionId}: EV rated the pile ${score}/3 (evaluation ${rated.evaluationNo}, R_v = ${raterCredibility}); reputation R_cp ${reputationText(rated.reputationBefore)} → ${reputationText(rated.reputationAfter)} (tx ${rated.receipt.hash})`,
        );
      } catch (error) {
        problems.push(`rating session ${sessionId} failed: ${error instanceof Error ? error.message : String(error)}`);
        progress(`session ${sessionId}: rating ${score}/3 failed`);
      }

      const report: SimSessionReport = {
        sessionId,
        scenario: scenario.name,
        pricing,
        priceWeiPerKWh: onChain.pricePerKWh,
        ...(auctionReport ? { auction: auctionReport } : {}),
        stopReason: stopReasons.get(sessionId.toString()) ?? "?",
        energyWh,
        meterDeltaWh,
        depositWei,
        costWei,
        refundWei,
        ownerCreditWei,
        evCreditWei,
        settleTxHash: settledLog?.transactionHash ?? "?",
        ...(rating ? { rating } : {}),
        ok: problems.length === 0,
        problems,
      };
      reports.push(report);
    }
    progress(`reputation of ${SIM_CHARGE_POINT_ID} after each rating (eq. 2, μ = ${parameters.mu}, σ = ${parameters.sigma}): ${reputationTrail.join(" → ")}`);
    if (simTelemetry) {
      const { telemetry } = simTelemetry;
      // Let the last messages reach the broker before counting.
      await waitUntil("telemetry to flush", () => telemetry.stats().buffered === 0, 3_000, options.signal).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const line of simTelemetry.summary()) progress(line);
    }
    return { sessions: reports, skippedAuctions };
  } finally {
    await simOcpp?.stop();
    await world?.stop();
    await simTelemetry?.close();
  }
}

function ordinal(n: number): string {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${n % 10 === 1 ? "st" : n % 10 === 2 ? "nd" : n % 10 === 3 ? "rd" : "th"}`;
}

function describePhase(state: CoreState): string {
  const session = state.session;
  if (!session) return state.phase;
  const id = `session ${session.sessionId}`;
  switch (state.phase) {
    case "depositPending":
      return `${id}: deposit seen in block ${session.depositBlock}, waiting for confirmations`;
    case "authorizing":
      return `${id}: deposit confirmed (head ${state.headBlock}), sending authorize`;
    case "authorized":
      return `${id}: authorize mined, waiting for the interlock`;
    case "energized":
      return `${id}: relay closed at meter ${session.meterStartWh} Wh, budget ${session.stopAtWh} Wh`;
    case "suspended":
      return `${id}: relay closed, EV not drawing`;
    case "stopping":
      return `${id}: stopping (${session.stopReason}) at ${(session.meterLastWh ?? 0) - (session.meterStartWh ?? 0)} Wh, relay open`;
    case "settling":
      return `${id}: ${session.stopReason ? `stopped (${session.stopReason}); ` : ""}signed total ${session.meterStartWh}..${session.meterStopWh} Wh (${(session.meterStopWh ?? 0) - (session.meterStartWh ?? 0)} Wh), settle queued`;
    default:
      return `${id}: ${state.phase}`;
  }
}

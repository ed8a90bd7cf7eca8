/**
 * Algorithm 1 against a log scan (DESIGN §4.2): the pointer walk's cost must grow with the charge point's own
 * history, not with the chain's. One target charge point has 20 charging records, each rated; the chain then grows
 * with records of other charge points to 1,000, 10,000 and 50,000 charging records. At each size it times (median
 * of REPS runs, after warm-up):
 *
 *   pointer  cpHistory() of agent/chain/history.ts, in process, over connectWalkProvider (what `trustpile query`
 *            uses); "(stall)" is the same walk over connectProvider's default ethers batching, for reference
 *   scan     every SessionSettled and Evaluated log since the deployment block, in chunks of 10,000 blocks,
 *            decoded, then filtered to the target (the answer a client without the pointers would compute)
 *   topic    the same getLogs with the node filtering on the indexed cpId topic (reference only: the node still
 *            goes through every block's logs)
 *
 * The walk and both scans are checked to give the same records, evaluations and R_cp at every size.
 *
 * Filling the chain fast: the dev accounts send with eth_sendTransaction (no client signing), automine is off and
 * 2,500 sessions go into each block (evm_mine), sent as JSON-RPC batches. settle carries the pile signer's EIP-712
 * signature, signed here on the digest while anvil executes the opens; anyone may relay it, so the EV sends it.
 *
 * Env: BENCH_QUERY_SIZES (default "1000,10000,50000"), BENCH_QUERY_REPS (default 15).
 */
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToIo } from "node:timers/promises";
import { Interface, JsonRpcProvider, NonceManager, TypedDataEncoder, concat, keccak256, toBeHex, toTwos, zeroPadValue, fromTwos, getAddress, type EventFragment, type Result, type HDNodeWallet, type Provider } from "ethers";
import { ChargingLedgerAbi } from "../contracts/artifacts/ChargingLedger.ts";
import { EvaluationsAbi } from "../contracts/artifacts/Evaluations.ts";
import { startDevChain } from "../agent/chain/dev-chain.ts";
import { devAccount } from "../agent/chain/dev-accounts.ts";
import { connectProvider } from "../agent/chain/provider.ts";
import { deployContracts } from "../agent/chain/deploy.ts";
import { connectEvaluations, connectLedger, connectRegistry, Role } from "../agent/chain/contracts.ts";
import { attest, registerChargePoint } from "../agent/chain/operations.ts";
import { SESSION_TOTAL_TYPEHASH, cpIdOf, ledgerDomain, sessionTotalDigest, type SessionTotal } from "../agent/chain/session-total.ts";
import { contractReader, cpHistory, type CpHistory, type HistoryReader } from "../agent/chain/history.ts";
import { freePort } from "../agent/net.ts";

const SIZES = (process.env.BENCH_QUERY_SIZES ?? "1000,10000,50000").split(",").map((size) => Number(size.trim()));
const REPS = Number(process.env.BENCH_QUERY_REPS ?? "15");
const WARMUP = 3;
const TARGET_RECORDS = 20;
const OTHER_CPS = 7;
const EVS = 10;
/** Sessions per round: each round is three blocks (open, authorize, settle). */
const ROUND = 2_500;
const RPC_BATCH = 1_000;
const LOG_CHUNK_BLOCKS = 10_000;
const BLOCK_GAS_LIMIT = 3_000_000_000n;
const GAS_PRICE = 2_000_000_000n;
const PRICE_WEI_PER_KWH = 300_000_000_000_000n;
const DEPOSIT_WEI = 3_000_000_000_000_000n; // covers 10 kWh
const METER_START_WH = 1_000_000n;
const STARTED_AT = 1_700_000_000n;

const ledgerInterface = new Interface(ChargingLedgerAbi);
const evaluationsInterface = new Interface(EvaluationsAbi);
function eventOf(contract: Interface, name: string): EventFragment {
  const fragment = contract.getEvent(name);
  if (!fragment) throw new Error(`no event ${name} in the ABI`);
  return fragment;
}
const SETTLED = eventOf(ledgerInterface, "SessionSettled");
const EVALUATED = eventOf(evaluationsInterface, "Evaluated");
const SETTLED_TOPIC = SETTLED.topicHash;
const EVALUATED_TOPIC = EVALUATED.topicHash;
const OPENED_TOPIC = eventOf(ledgerInterface, "SessionOpened").topicHash;

function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`no item ${index} of ${items.length}`);
  return item;
}

function progress(message: string): void {
  process.stderr.write(`[bench:query ${(performance.now() / 1000).toFixed(1)} s] ${message}\n`);
}

// ================================================================ raw JSON-RPC

interface RpcRequest {
  method: string;
  params: unknown[];
}

interface RpcReply {
  id: number;
  result?: unknown;
  error?: { message: string };
}

class Rpc {
  private nextId = 1;

  constructor(private readonly url: string) {}

  async call<T>(method: string, params: unknown[] = []): Promise<T> {
    const [result] = await this.batch([{ method, params }]);
    return result as T;
  }

  /** Sends the requests as JSON-RPC batches of RPC_BATCH, in order; throws on the first error. */
  async batch(requests: RpcRequest[]): Promise<unknown[]> {
    const results: unknown[] = [];
    for (let i = 0; i < requests.length; i += RPC_BATCH) {
      const chunk = requests.slice(i, i + RPC_BATCH).map((request) => ({ jsonrpc: "2.0", id: this.nextId++, ...request }));
      const response = await fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chunk),
      });
      const body = await response.text();
      const parsed = JSON.parse(body) as unknown;
      if (!Array.isArray(parsed)) throw new Error(`${chunk[0]?.method ?? "batch"}: the node answered a batch with ${body.slice(0, 200)}`);
      const replies = parsed as RpcReply[];
      const byId = new Map(replies.map((reply) => [reply.id, reply]));
      for (const request of chunk) {
        const reply = byId.get(request.id);
        if (!reply) throw new Error(`${request.method}: no reply`);
        if (reply.error) throw new Error(`${request.method}: ${reply.error.message}`);
        results.push(reply.result);
      }
    }
    return results;
  }
}

// ================================================================ filling the chain

interface ChargePoint {
  name: string;
  cpId: string;
  signer: HDNodeWallet;
}

interface SessionSpec {
  ev: HDNodeWallet;
  cp: ChargePoint;
  energyWh: bigint;
}

interface Filler {
  rpc: Rpc;
  ledgerAddress: string;
  evaluationsAddress: string;
  domain: ReturnType<typeof ledgerDomain>;
  domainSeparator: string;
  nonces: Map<string, number>;
  nextSessionId: bigint;
  sessions: number;
  chargingRecords: number;
  evaluations: number;
}

function tx(filler: Filler, from: string, to: string, data: string, gas: bigint, value = 0n, gasPrice = GAS_PRICE): RpcRequest {
  const nonce = filler.nonces.get(from);
  if (nonce === undefined) throw new Error(`no nonce for ${from}`);
  filler.nonces.set(from, nonce + 1);
  return {
    method: "eth_sendTransaction",
    params: [{ from, to, data, gas: toBeHex(gas), gasPrice: toBeHex(gasPrice), value: toBeHex(value), nonce: toBeHex(nonce) }],
  };
}

async function mine(filler: Filler): Promise<void> {
  await filler.rpc.call("evm_mine");
}

async function counts(filler: Filler): Promise<{ sessions: number; chargingRecords: number; evaluations: number }> {
  const data = ledgerInterface.encodeFunctionData("counts", []);
  const raw = await filler.rpc.call<string>("eth_call", [{ to: filler.ledgerAddress, data }, "latest"]);
  const [sessions, chargingRecords, evaluations] = ledgerInterface.decodeFunctionResult("counts", raw) as unknown as bigint[];
  return { sessions: Number(sessions), chargingRecords: Number(chargingRecords), evaluations: Number(evaluations) };
}

async function expectCounts(filler: Filler, what: string): Promise<void> {
  const now = await counts(filler);
  if (now.sessions !== filler.sessions || now.chargingRecords !== filler.chargingRecords || now.evaluations !== filler.evaluations) {
    throw new Error(
      `${what}: the ledger counts ${JSON.stringify(now)}, expected ${JSON.stringify({
        sessions: filler.sessions,
        chargingRecords: filler.chargingRecords,
        evaluations: filler.evaluations,
      })} (a transaction reverted or was not mined)`,
    );
  }
}

/**
 * Session ids are sequential from counts(), so they are predicted in send order; the block's SessionOpened logs
 * confirm it (anvil orders equal-fee transactions of different senders by arrival, which the sequential batches
 * keep), and if a node ever reordered them the logs' own mapping is used instead.
 */
async function openedSessionIds(filler: Filler, specs: SessionSpec[], first: bigint): Promise<bigint[]> {
  const predicted = specs.map((_, i) => first + BigInt(i));
  const logs = await filler.rpc.call<{ topics: string[] }[]>("eth_getLogs", [
    { address: filler.ledgerAddress, topics: [OPENED_TOPIC], fromBlock: "latest", toBlock: "latest" },
  ]);
  const keyOf = (cpId: string, ev: string): string => `${cpId.toLowerCase()}:${ev.toLowerCase()}`;
  const actual = new Map<bigint, string>();
  for (const log of logs) {
    const [, sessionTopic, cpTopic, evTopic] = log.topics;
    if (!sessionTopic || !cpTopic || !evTopic) throw new Error("SessionOpened log without its indexed topics");
    actual.set(BigInt(sessionTopic), keyOf(cpTopic, `0x${evTopic.slice(26)}`));
  }
  if (specs.every((spec, i) => actual.get(predicted[i] ?? 0n) === keyOf(spec.cp.cpId, spec.ev.address))) return predicted;
  progress("session ids were mined out of send order; using the SessionOpened logs' mapping");
  const free = new Map<string, bigint[]>();
  for (const [sessionId, key] of [...actual].sort(([a], [b]) => (a < b ? -1 : 1))) free.set(key, [...(free.get(key) ?? []), sessionId]);
  return specs.map((spec) => {
    const id = free.get(keyOf(spec.cp.cpId, spec.ev.address))?.shift();
    if (id === undefined) throw new Error(`no SessionOpened log for a session of ${spec.ev.address} at ${spec.cp.name}`);
    return id;
  });
}

const word = (value: bigint): string => zeroPadValue(toBeHex(toTwos(value, 256)), 32);

/**
 * The EIP-712 digest of a session total, with the domain separator computed once: the same bytes as
 * session-total.ts's sessionTotalDigest (checked on each round's first total), at a fraction of the cost.
 */
function fastDigest(domainSeparator: string, total: SessionTotal): string {
  const structHash = keccak256(
    concat([
      SESSION_TOTAL_TYPEHASH,
      word(total.sessionId),
      total.cpId,
      word(total.meterStartWh),
      word(total.meterStopWh),
      word(total.startedAt),
      word(total.stoppedAt),
      word(BigInt(total.evBehaviour)),
    ]),
  );
  return keccak256(concat(["0x1901", domainSeparator, structHash]));
}

function totalOf(spec: SessionSpec, sessionId: bigint): SessionTotal {
  return {
    sessionId,
    cpId: spec.cp.cpId,
    meterStartWh: METER_START_WH,
    meterStopWh: METER_START_WH + spec.energyWh,
    startedAt: STARTED_AT,
    stoppedAt: STARTED_AT + 3_600n,
    evBehaviour: 0,
  };
}

/** settle calldata with the pile's signature, signed here; yields now and then so queued RPC batches keep flowing. */
async function signSettles(filler: Filler, round: SessionSpec[], sessionIds: bigint[]): Promise<string[]> {
  const calls: string[] = [];
  for (let i = 0; i < round.length; i++) {
    const spec = at(round, i);
    const total = totalOf(spec, at(sessionIds, i));
    const digest = fastDigest(filler.domainSeparator, total);
    if (i === 0 && digest !== sessionTotalDigest(filler.domain, total)) throw new Error("fastDigest differs from sessionTotalDigest");
    const signature = spec.cp.signer.signingKey.sign(digest).serialized;
    calls.push(
      ledgerInterface.encodeFunctionData("settle", [
        total.sessionId,
        total.meterStartWh,
        total.meterStopWh,
        total.startedAt,
        total.stoppedAt,
        total.evBehaviour,
        signature,
      ]),
    );
    if (i % 100 === 99) await yieldToIo();
  }
  return calls;
}

/**
 * Opens, authorizes and settles the sessions, ROUND at a time, three blocks per round. The opens carry gas prices
 * falling in send order, so the node mines them in send order and the session ids are known before they are
 * mined: the settle signatures are made while anvil executes the opens and authorizations. Returns the ids.
 */
async function fill(filler: Filler, specs: SessionSpec[]): Promise<bigint[]> {
  const ids: bigint[] = [];
  for (let start = 0; start < specs.length; start += ROUND) {
    const round = specs.slice(start, start + ROUND);
    const first = filler.nextSessionId;
    const predicted = round.map((_, i) => first + BigInt(i));
    const opening = filler.rpc.batch(
      round.map((s, i) =>
        tx(
          filler,
          s.ev.address,
          filler.ledgerAddress,
          ledgerInterface.encodeFunctionData("openSession", [s.cp.cpId, 50_000]),
          300_000n,
          DEPOSIT_WEI,
          GAS_PRICE + BigInt(round.length - i),
        ),
      ),
    );
    const signing = signSettles(filler, round, predicted);
    await opening;
    await mine(filler);
    filler.sessions += round.length;
    filler.nextSessionId += BigInt(round.length);
    await expectCounts(filler, "opening sessions");
    const sessionIds = await openedSessionIds(filler, round, first);

    const authorizing = filler.rpc.batch(
      round.map((s, i) => tx(filler, s.cp.signer.address, filler.ledgerAddress, ledgerInterface.encodeFunctionData("authorize", [at(sessionIds, i)]), 200_000n)),
    );
    let settles = await signing;
    if (sessionIds.some((id, i) => id !== predicted[i])) settles = await signSettles(filler, round, sessionIds);
    await authorizing;
    await mine(filler);

    await filler.rpc.batch(round.map((s, i) => tx(filler, s.ev.address, filler.ledgerAddress, at(settles, i), 300_000n)));
    await mine(filler);
    filler.chargingRecords += round.length;
    await expectCounts(filler, "settling sessions");
    ids.push(...sessionIds);
    progress(`${filler.chargingRecords} charging records`);
  }
  return ids;
}

async function rateAll(filler: Filler, ratings: { ev: HDNodeWallet; sessionId: bigint; score: number }[]): Promise<void> {
  await filler.rpc.batch(
    ratings.map((r) =>
      tx(filler, r.ev.address, filler.evaluationsAddress, evaluationsInterface.encodeFunctionData("rate", [r.sessionId, r.score]), 400_000n),
    ),
  );
  await mine(filler);
  filler.evaluations += ratings.length;
  await expectCounts(filler, "rating sessions");
}

// ================================================================ the two queries

interface Answer {
  recordNos: bigint[];
  evaluationNos: bigint[];
  reputation: bigint;
}

function answerOfWalk(history: CpHistory): Answer {
  return {
    recordNos: history.chargingRecords.map((r) => r.recordNo),
    evaluationNos: (history.evaluations ?? []).map((e) => e.evaluationNo),
    reputation: history.reputation ?? 0n,
  };
}

interface RawLog {
  address: string;
  topics: string[];
  data: string;
}

interface SettledLog {
  sessionId: bigint;
  cpId: string;
  ev: string;
  energyWh: bigint;
  cost: bigint;
  refund: bigint;
  evScore: bigint;
  recordNo: bigint;
}

interface EvaluatedLog {
  evaluationNo: bigint;
  cpId: string;
  ev: string;
  chargingRecordNo: bigint;
  prevEvaluationOfCp: bigint;
  score: bigint;
  reputationBefore: bigint;
  reputationAfter: bigint;
}

/** Every field of a log whose data is static words: the topics after the signature, then the data's words. */
function words(log: RawLog): { topic: (i: number) => string; unsigned: (i: number) => bigint; signed: (i: number) => bigint } {
  const word = (i: number): bigint => BigInt(`0x${log.data.slice(2 + 64 * i, 2 + 64 * (i + 1))}`);
  return {
    topic: (i) => at(log.topics, i),
    unsigned: word,
    signed: (i) => fromTwos(word(i), 256),
  };
}

function decodeSettled(log: RawLog): SettledLog {
  const w = words(log);
  return {
    sessionId: BigInt(w.topic(1)),
    cpId: w.topic(2),
    ev: getAddress(`0x${w.topic(3).slice(26)}`),
    energyWh: w.unsigned(0),
    cost: w.unsigned(1),
    refund: w.unsigned(2),
    evScore: w.signed(3),
    recordNo: w.unsigned(4),
  };
}

function decodeEvaluated(log: RawLog): EvaluatedLog {
  const w = words(log);
  return {
    evaluationNo: BigInt(w.topic(1)),
    cpId: w.topic(2),
    ev: getAddress(`0x${w.topic(3).slice(26)}`),
    chargingRecordNo: w.unsigned(0),
    prevEvaluationOfCp: w.unsigned(1),
    score: w.unsigned(2),
    reputationBefore: w.signed(3),
    reputationAfter: w.signed(4),
  };
}

/** The hand decoders above against ethers' ABI decoder, on one log of each kind. */
function checkDecoders(settled: RawLog | undefined, evaluated: RawLog | undefined): void {
  const same = (mine: object, abi: Result, kind: string): void => {
    for (const [key, value] of Object.entries(mine)) {
      if (String(abi.getValue(key)) !== String(value)) throw new Error(`${kind}.${key}: decoded ${String(value)}, the ABI says ${String(abi.getValue(key))}`);
    }
  };
  if (settled) same(decodeSettled(settled), ledgerInterface.decodeEventLog(SETTLED, settled.data, settled.topics), "SessionSettled");
  if (evaluated) same(decodeEvaluated(evaluated), evaluationsInterface.decodeEventLog(EVALUATED, evaluated.data, evaluated.topics), "Evaluated");
}

/**
 * The log-scan answer: every SessionSettled and Evaluated log since the deployment block (raw eth_getLogs in chunks
 * of LOG_CHUNK_BLOCKS blocks), every field decoded, then filtered to the charge point. Raw JSON-RPC and decoders for
 * the events' fixed layouts (checked against the ABI decoder) keep the scan as cheap as a client can make it, so
 * the ratio is not flattered by ethers' per-log formatting (which costs about 0.5 ms a log here). `byTopic` lets the
 * node filter on the indexed cpId instead (reference only).
 */
async function scan(rpc: Rpc, addresses: { ledger: string; evaluations: string }, fromBlock: number, cpId: string, byTopic: boolean): Promise<Answer> {
  const latest = Number(await rpc.call<string>("eth_blockNumber"));
  const records: SettledLog[] = [];
  const evaluations: EvaluatedLog[] = [];
  const topics = byTopic ? [[SETTLED_TOPIC, EVALUATED_TOPIC], null, cpId] : [[SETTLED_TOPIC, EVALUATED_TOPIC]];
  for (let from = fromBlock; from <= latest; from += LOG_CHUNK_BLOCKS) {
    const logs = await rpc.call<RawLog[]>("eth_getLogs", [
      {
        address: [addresses.ledger, addresses.evaluations],
        topics,
        fromBlock: toBeHex(from),
        toBlock: toBeHex(Math.min(from + LOG_CHUNK_BLOCKS - 1, latest)),
      },
    ]);
    for (const log of logs) {
      if (log.topics[0] === SETTLED_TOPIC) {
        const settled = decodeSettled(log);
        if (settled.cpId === cpId) records.push(settled);
      } else if (log.topics[0] === EVALUATED_TOPIC) {
        const evaluated = decodeEvaluated(log);
        if (evaluated.cpId === cpId) evaluations.push(evaluated);
      }
    }
  }
  const newestFirst = (a: bigint, b: bigint): number => (a > b ? -1 : a < b ? 1 : 0);
  records.sort((a, b) => newestFirst(a.recordNo, b.recordNo));
  evaluations.sort((a, b) => newestFirst(a.evaluationNo, b.evaluationNo));
  return {
    recordNos: records.map((r) => r.recordNo),
    evaluationNos: evaluations.map((e) => e.evaluationNo),
    reputation: evaluations[0]?.reputationAfter ?? 0n,
  };
}

function sameAnswer(a: Answer, b: Answer): boolean {
  const key = (x: Answer): string => JSON.stringify([x.recordNos.map(String), x.evaluationNos.map(String), String(x.reputation)]);
  return key(a) === key(b);
}

async function medianMs(reps: number, run: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARMUP; i++) await run();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const middle = Math.floor(times.length / 2);
  return times.length % 2 === 1 ? (times[middle] ?? 0) : ((times[middle - 1] ?? 0) + (times[middle] ?? 0)) / 2;
}

// ================================================================ main

interface Row {
  records: number;
  blocks: number;
  logs: number;
  pointerMs: number;
  stallMs: number;
  scanMs: number;
  topicMs: number;
}

const benchStarted = performance.now();
const chain = await startDevChain({ port: await freePort(), accounts: 20 });
try {
  const rpc = new Rpc(chain.rpcUrl);
  await rpc.call("evm_setBlockGasLimit", [toBeHex(BLOCK_GAS_LIMIT)]);
  // anvil would print every transaction it receives and mines: 150,000 lines.
  await rpc.call("anvil_setLoggingEnabled", [false]);
  await rpc.call("evm_mine");
  const provider = await connectProvider(chain.rpcUrl);
  const authority = devAccount(0, provider);
  const { deployment } = await deployContracts(new NonceManager(authority));
  const evaluationsAddress = deployment.Evaluations;
  if (!evaluationsAddress) throw new Error("deployContracts wrote no Evaluations address");
  const registry = connectRegistry(deployment.Registry, authority);
  const owner = devAccount(1, provider);
  const farFuture = BigInt(Math.floor(Date.now() / 1000) + 365 * 24 * 3600);
  await attest(registry, owner.address, Role.Owner, farFuture);
  const cpOf = (name: string, signerIndex: number): ChargePoint => ({ name, cpId: cpIdOf(name), signer: devAccount(signerIndex) });
  const target = cpOf("cp-target", 2);
  const others = Array.from({ length: OTHER_CPS }, (_, i) => cpOf(`cp-other-${i}`, 3 + i));
  for (const cp of [target, ...others]) {
    await registerChargePoint(connectRegistry(deployment.Registry, owner), {
      chargePointId: cp.name,
      kind: "Public",
      areaId: 1n,
      signer: cp.signer.address,
      pricePerKWh: PRICE_WEI_PER_KWH,
      maxPowerW: 22_000,
      ownerContactSealed: new Uint8Array([1]),
    });
  }
  const evs = Array.from({ length: EVS }, (_, i) => devAccount(10 + i));
  for (const ev of evs) await attest(registry, ev.address, Role.EV, farFuture);
  progress(`deployed at block ${deployment.deployedAtBlock}; ${OTHER_CPS + 1} charge points, ${EVS} EVs`);

  await rpc.call("evm_setAutomine", [false]);
  // The dev accounts send through eth_sendTransaction. Impersonated, anvil skips its own ECDSA signature of each
  // transaction (the contracts see the same sender and state); this makes sending ten times faster.
  await rpc.call("anvil_autoImpersonateAccount", [true]);
  const nonces = new Map<string, number>();
  for (const account of [...evs, target.signer, ...others.map((cp) => cp.signer)]) {
    nonces.set(account.address, Number(await rpc.call<string>("eth_getTransactionCount", [account.address, "pending"])));
  }
  const filler: Filler = {
    rpc,
    ledgerAddress: deployment.ChargingLedger,
    evaluationsAddress,
    domain: ledgerDomain(BigInt(deployment.chainId), deployment.ChargingLedger),
    domainSeparator: TypedDataEncoder.hashDomain(ledgerDomain(BigInt(deployment.chainId), deployment.ChargingLedger)),
    nonces,
    nextSessionId: 1n,
    sessions: 0,
    chargingRecords: 0,
    evaluations: 0,
  };
  let otherNo = 0;
  const otherSession = (): SessionSpec => {
    const n = otherNo++;
    return { ev: at(evs, n % EVS), cp: at(others, n % OTHER_CPS), energyWh: 1_000n + BigInt(n % 5_000) };
  };

  // The target's 20 records are spread over the first 1,000; every later record is another charge point's.
  const firstSize = SIZES[0] ?? 1_000;
  const spacing = Math.max(1, Math.floor(firstSize / TARGET_RECORDS));
  const initial: SessionSpec[] = [];
  const targetAt: number[] = [];
  for (let i = 0; i < firstSize; i++) {
    if (i % spacing === 0 && targetAt.length < TARGET_RECORDS) {
      targetAt.push(i);
      initial.push({ ev: at(evs, targetAt.length % EVS), cp: target, energyWh: 2_000n + BigInt(targetAt.length) });
    } else {
      initial.push(otherSession());
    }
  }
  const initialIds = await fill(filler, initial);
  await rateAll(
    filler,
    targetAt.map((i, k) => ({ ev: at(initial, i).ev, sessionId: at(initialIds, i), score: 1 + (k % 3) })),
  );
  progress(`target ${target.name} has ${TARGET_RECORDS} charging records, each rated`);

  // (a) runs over the provider `trustpile query` itself uses (connectProvider); "stall" repeats it over ethers'
  // default batching (a 10 ms stall before each batch), for reference.
  const network = await provider.getNetwork();
  const stallProvider = new JsonRpcProvider(chain.rpcUrl, network, { staticNetwork: network, cacheTimeout: -1 });
  const walkProvider = provider;
  const readerOf = (over: Provider): HistoryReader =>
    contractReader(connectLedger(deployment.ChargingLedger, over), connectEvaluations(evaluationsAddress, over));
  const reader = readerOf(walkProvider);
  const stallReader = readerOf(stallProvider);
  const addresses = { ledger: deployment.ChargingLedger, evaluations: evaluationsAddress };
  const fromBlock = deployment.deployedAtBlock ?? 0;
  const rows: Row[] = [];
  for (const size of SIZES) {
    if (filler.chargingRecords < size) {
      await fill(filler, Array.from({ length: size - filler.chargingRecords }, otherSession));
    }
    if (size === SIZES[0]) {
      const sample = await rpc.call<RawLog[]>("eth_getLogs", [
        { address: [addresses.ledger, addresses.evaluations], topics: [[SETTLED_TOPIC, EVALUATED_TOPIC]], fromBlock: toBeHex(fromBlock), toBlock: "latest" },
      ]);
      checkDecoders(
        sample.find((log) => log.topics[0] === SETTLED_TOPIC),
        sample.find((log) => log.topics[0] === EVALUATED_TOPIC),
      );
    }
    const walked = answerOfWalk(await cpHistory(reader, target.cpId));
    const scanned = await scan(rpc, addresses, fromBlock, target.cpId, false);
    const topicScanned = await scan(rpc, addresses, fromBlock, target.cpId, true);
    if (walked.recordNos.length !== TARGET_RECORDS || walked.evaluationNos.length !== TARGET_RECORDS) {
      throw new Error(`the walk found ${walked.recordNos.length} records and ${walked.evaluationNos.length} evaluations, expected ${TARGET_RECORDS} each`);
    }
    if (!sameAnswer(walked, scanned) || !sameAnswer(walked, topicScanned)) throw new Error(`at ${size} records the walk and the scans disagree`);
    const blocks = (await provider.getBlockNumber()) - fromBlock + 1;
    progress(`${size} records in ${blocks} blocks: timing ${REPS} repetitions of each query`);
    const pointerMs = await medianMs(REPS, () => cpHistory(reader, target.cpId));
    const stallMs = await medianMs(REPS, () => cpHistory(stallReader, target.cpId));
    const scanMs = await medianMs(REPS, () => scan(rpc, addresses, fromBlock, target.cpId, false));
    const topicMs = await medianMs(REPS, () => scan(rpc, addresses, fromBlock, target.cpId, true));
    rows.push({ records: size, blocks, logs: filler.chargingRecords + filler.evaluations, pointerMs, stallMs, scanMs, topicMs });
  }
  stallProvider.destroy();
  provider.destroy();

  const line = (cells: string[]): string => cells.map((cell, i) => (i === 0 ? cell.padEnd(17) : cell.padStart(14))).join("");
  const out: string[] = [];
  out.push(`Algorithm 1 (pointer walk) vs log scan for one charge point with ${TARGET_RECORDS} records + ${TARGET_RECORDS} evaluations`);
  out.push(`median of ${REPS} runs after ${WARMUP} warm-up runs; logs scanned in chunks of ${LOG_CHUNK_BLOCKS} blocks`);
  out.push(line(["charging records", "blocks", "scanned logs", "pointer ms", "(stall) ms", "scan ms", "topic scan ms", "scan/pointer"]));
  for (const row of rows) {
    out.push(
      line([
        row.records.toLocaleString("en-US"),
        String(row.blocks),
        String(row.logs),
        row.pointerMs.toFixed(1),
        row.stallMs.toFixed(1),
        row.scanMs.toFixed(1),
        row.topicMs.toFixed(1),
        (row.scanMs / row.pointerMs).toFixed(1),
      ]),
    );
  }
  const pointers = rows.map((row) => row.pointerMs);
  const spread = Math.max(...pointers) / Math.min(...pointers);
  const last = rows[rows.length - 1];
  out.push(`pointer max/min across sizes: ${spread.toFixed(2)} (target <= 1.3) ${spread <= 1.3 ? "OK" : "MISSED"}`);
  if (last) {
    const ratio = last.scanMs / last.pointerMs;
    out.push(`scan/pointer at ${last.records.toLocaleString("en-US")} records: ${ratio.toFixed(1)} (target >= 20) ${ratio >= 20 ? "OK" : "MISSED"}`);
  }
  out.push(`whole bench: ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`);
  process.stdout.write(`${out.join("\n")}\n`);
} finally {
  await chain.stop();
}

/**
 * Seeded random walk over ChargingLedger with a TypeScript model beside it.
 *
 * Invariant after every operation: the ledger's ETH balance is exactly the deposits its open and authorized sessions
 * hold plus what every address may withdraw. The model's withdrawable, debt and credibility must equal the chain's
 * every 20 operations and at the end. Reproduce a failure with TRUSTPILE_LEDGER_SEED=<seed printed in the error>.
 */
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../helpers/prng.ts";
import type { HDNodeWallet, JsonRpcProvider } from "ethers";
import { connectLedger, SessionStatus } from "../../agent/chain/contracts.ts";
import { mined, signAndSettle } from "../../agent/chain/operations.ts";
import { cpIdOf, signSessionTotal, type SessionTotal } from "../../agent/chain/session-total.ts";
import type { ChargingLedgerContract } from "../../contracts/artifacts/ChargingLedger.ts";
import { advanceTime, deployLedgerFixture, latestTimestamp, PRICE_WEI_PER_KWH } from "../helpers/chain.ts";
import {
  accountOf,
  costOf,
  domainOf,
  eventArgs,
  expectRevert,
  gasCostOf,
  openSessionAt,
  requiredDepositOf,
  settleWithSignature,
  unbatchedProvider,
} from "../helpers/ledger-helpers.ts";

const DEFAULT_SEED = 0x7e57_1ed6;
const OPERATIONS = 300;
const MAX_LIVE_SESSIONS = 6;
const FULL_CHECK_EVERY = 20;
const AUTH_TIMEOUT_S = 600;
const SETTLE_TIMEOUT_S = 172_800;


class Random {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  /** Uniform-ish in [min, max] for bigints of any size (53 bits of randomness scaled over the range). */
  bigint(min: bigint, max: bigint): bigint {
    if (max <= min) return min;
    const span = max - min + 1n;
    const fraction = BigInt(Math.floor(this.next() * 2 ** 53));
    return min + (span * fraction) / 2n ** 53n;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }
  weighted<T extends string>(weights: Record<T, number>): T {
    const entries = Object.entries(weights) as [T, number][];
    let roll = this.next() * entries.reduce((sum, [, weight]) => sum + weight, 0);
    for (const [key, weight] of entries) {
      roll -= weight;
      if (roll < 0) return key;
    }
    return (entries[entries.length - 1] as [T, number])[0];
  }
}

interface ModelCp {
  name: string;
  cpId: string;
  owner: HDNodeWallet;
  signer: HDNodeWallet;
  priceWeiPerKWh: bigint;
}

interface ModelSession {
  id: bigint;
  ev: HDNodeWallet;
  cp: ModelCp;
  depositWei: bigint;
  priceWeiPerKWh: bigint;
  status: bigint;
  stampedAt: bigint;
  total?: SessionTotal;
  signature?: string;
}

interface SettleOutcome {
  costWei: bigint;
  refundWei: bigint;
  evScore: bigint;
  recordNo: bigint;
}

interface DebtEntry {
  creditor: string;
  amountWei: bigint;
}

class LedgerModel {
  readonly withdrawable = new Map<string, bigint>();
  readonly debts = new Map<string, DebtEntry[]>();
  readonly credibility = new Map<string, bigint>();
  readonly sessions: ModelSession[] = [];
  chargingRecords = 0n;

  credit(address: string, amountWei: bigint): void {
    this.withdrawable.set(address, (this.withdrawable.get(address) ?? 0n) + amountWei);
  }
  withdrawableOf(address: string): bigint {
    return this.withdrawable.get(address) ?? 0n;
  }
  debtOf(ev: string): bigint {
    return (this.debts.get(ev) ?? []).reduce((sum, entry) => sum + entry.amountWei, 0n);
  }
  credibilityOf(ev: string): bigint {
    return this.credibility.get(ev) ?? 0n;
  }
  heldWei(): bigint {
    return this.sessions
      .filter((s) => s.status === SessionStatus.Opened || s.status === SessionStatus.Authorized)
      .reduce((sum, s) => sum + s.depositWei, 0n);
  }
  totalWithdrawableWei(): bigint {
    return [...this.withdrawable.values()].reduce((sum, amount) => sum + amount, 0n);
  }
  withStatus(status: bigint): ModelSession[] {
    return this.sessions.filter((s) => s.status === status);
  }

  /** ChargingLedger.settle's money and score rules, restated. */
  settle(session: ModelSession, energyWh: bigint, evBehaviour: number): SettleOutcome {
    const costWei = costOf(energyWh, session.priceWeiPerKWh);
    const paidWei = costWei < session.depositWei ? costWei : session.depositWei;
    const refundWei = session.depositWei - paidWei;
    const shortfallWei = costWei - paidWei;
    const evScore = evBehaviour === -1 ? -1n : energyWh === 0n || shortfallWei > 0n ? 0n : 1n;
    this.credit(session.ev.address, refundWei);
    this.credit(session.cp.owner.address, paidWei);
    if (shortfallWei > 0n) {
      const entries = this.debts.get(session.ev.address) ?? [];
      entries.push({ creditor: session.cp.owner.address, amountWei: shortfallWei });
      this.debts.set(session.ev.address, entries);
    }
    this.credibility.set(session.ev.address, this.credibilityOf(session.ev.address) + evScore);
    session.status = SessionStatus.Settled;
    this.chargingRecords += 1n;
    return { costWei, refundWei, evScore, recordNo: this.chargingRecords };
  }

  /** payDebt: oldest debt first. */
  payDebt(ev: string, amountWei: bigint): DebtEntry[] {
    const payments: DebtEntry[] = [];
    let remaining = amountWei;
    for (const entry of this.debts.get(ev) ?? []) {
      if (remaining === 0n) break;
      const part = entry.amountWei < remaining ? entry.amountWei : remaining;
      if (part === 0n) continue;
      entry.amountWei -= part;
      remaining -= part;
      this.credit(entry.creditor, part);
      payments.push({ creditor: entry.creditor, amountWei: part });
    }
    if (this.debtOf(ev) === 0n) this.debts.delete(ev);
    return payments;
  }
}

type Operation = "open" | "authorize" | "settle" | "cancel" | "expire" | "withdraw" | "payDebt" | "invalid";

const WEIGHTS: Record<Operation, number> = {
  open: 20,
  authorize: 20,
  settle: 24,
  cancel: 5,
  expire: 3,
  withdraw: 10,
  payDebt: 8,
  invalid: 10,
};

describe("ChargingLedger invariant", () => {
  it(`holds exactly deposits + withdrawable over ${OPERATIONS} random operations (3 CPs × 4 EVs)`, { timeout: 120_000 }, async () => {
    const seed = Number(process.env.TRUSTPILE_LEDGER_SEED ?? DEFAULT_SEED);
    const random = new Random(seed);
    const fixture = await deployLedgerFixture();
    const provider: JsonRpcProvider = unbatchedProvider();
    const wallet = (index: number): HDNodeWallet => accountOf(fixture, index).connect(provider);
    const owners = [1, 2, 3].map(wallet);
    const signers = [4, 5, 6].map(wallet);
    const evs = [7, 8, 9, 10].map(wallet);
    const stranger = wallet(11);
    const everyone = [...owners, ...signers, ...evs, stranger];
    const ledgerAddress = fixture.deployment.ChargingLedger;
    const ledgers = new Map<string, ChargingLedgerContract>();
    const ledgerOf = (as: HDNodeWallet): ChargingLedgerContract => {
      let ledger = ledgers.get(as.address);
      if (!ledger) ledgers.set(as.address, (ledger = connectLedger(ledgerAddress, as)));
      return ledger;
    };
    const domain = domainOf(fixture);

    const prices = [PRICE_WEI_PER_KWH, 333_333_333_333_333n, 1_000_003_000_007n];
    const cps: ModelCp[] = prices.map((priceWeiPerKWh, i) => ({
      name: `CP-INV-${i}`,
      cpId: cpIdOf(`CP-INV-${i}`),
      owner: owners[i] as HDNodeWallet,
      signer: signers[i] as HDNodeWallet,
      priceWeiPerKWh,
    }));
    for (const ev of evs) await fixture.attestEv(ev);
    for (const cp of cps) {
      await fixture.attestOwner(cp.owner);
      await fixture.registerCp(cp.owner, {
        chargePointId: cp.name,
        signer: cp.signer.address,
        pricePerKWh: cp.priceWeiPerKWh,
      });
    }

    const model = new LedgerModel();
    const executed = new Map<string, number>();
    const count = (what: string): void => void executed.set(what, (executed.get(what) ?? 0) + 1);

    async function stampOf(sessionId: bigint): Promise<bigint> {
      return (await ledgerOf(stranger).session(sessionId)).stampedAt;
    }

    async function assertBalanceInvariant(): Promise<void> {
      const balance = await provider.getBalance(ledgerAddress);
      expect(balance, "ledger ETH == held deposits + withdrawable").toBe(model.heldWei() + model.totalWithdrawableWei());
    }

    async function assertModelMatchesChain(): Promise<void> {
      const ledger = ledgerOf(stranger);
      for (const account of everyone) {
        expect(await ledger.withdrawable(account.address), `withdrawable of ${account.address}`).toBe(
          model.withdrawableOf(account.address),
        );
      }
      for (const ev of evs) {
        expect(await ledger.debt(ev.address), `debt of ${ev.address}`).toBe(model.debtOf(ev.address));
        expect(await ledger.credibility(ev.address), `credibility of ${ev.address}`).toBe(model.credibilityOf(ev.address));
        expect(await ledger.canCharge(ev.address), `canCharge of ${ev.address}`).toBe(model.debtOf(ev.address) === 0n);
      }
      for (const s of model.sessions) {
        const onChain = await ledger.session(s.id);
        const holding = s.status === SessionStatus.Opened || s.status === SessionStatus.Authorized;
        expect([onChain.status, onChain.heldDeposit, onChain.ev], `session ${s.id}`).toEqual([
          s.status, holding ? s.depositWei : 0n, s.ev.address,
        ]);
      }
      const counts = await ledger.counts();
      expect([counts.sessions, counts.chargingRecords]).toEqual([BigInt(model.sessions.length), model.chargingRecords]);
    }

    // ------------------------------------------------------------------ operations

    async function open(): Promise<string | undefined> {
      // Keep the pipeline short so sessions move on to authorize and settle instead of piling up.
      if (model.withStatus(SessionStatus.Opened).length + model.withStatus(SessionStatus.Authorized).length >= MAX_LIVE_SESSIONS) {
        return undefined;
      }
      const debtFree = evs.filter((e) => model.debtOf(e.address) === 0n);
      if (debtFree.length === 0) return undefined;
      const ev = random.pick(debtFree);
      const cp = random.pick(cps);
      const maxEnergyWh = BigInt(random.int(1, 60_000));
      let depositWei = random.bigint(10n ** 12n, 2n * 10n ** 16n);
      if (model.credibilityOf(ev.address) < 0n) {
        count("open:distrusted");
        const required = requiredDepositOf(maxEnergyWh, cp.priceWeiPerKWh);
        depositWei = random.chance(0.3) ? required : random.bigint(required, required * 2n);
      }
      const { sessionId, receipt } = await openSessionAt(ledgerOf(ev), cp.name, maxEnergyWh, depositWei);
      expect(sessionId).toBe(BigInt(model.sessions.length + 1));
      const opened = eventArgs(receipt, ledgerOf(ev), "SessionOpened");
      expect(opened.getValue("pricePerKWh")).toBe(cp.priceWeiPerKWh);
      model.sessions.push({
        id: sessionId,
        ev,
        cp,
        depositWei,
        priceWeiPerKWh: cp.priceWeiPerKWh,
        status: SessionStatus.Opened,
        stampedAt: await stampOf(sessionId),
      });
      return `open #${sessionId} ${ev.address.slice(0, 8)}@${cp.name} deposit ${depositWei} max ${maxEnergyWh} Wh`;
    }

    async function authorize(): Promise<string | undefined> {
      const now = await latestTimestamp(provider);
      // A margin of 5 s keeps the next block inside the window whatever anvil's clock does in between.
      const candidates = model.withStatus(SessionStatus.Opened).filter((s) => now + 5n <= s.stampedAt + BigInt(AUTH_TIMEOUT_S));
      if (candidates.length === 0) return undefined;
      const s = random.pick(candidates);
      const by = random.chance(0.8) ? s.cp.signer : s.cp.owner;
      await mined(`authorize ${s.id}`, () => ledgerOf(by).authorize(s.id));
      s.status = SessionStatus.Authorized;
      s.stampedAt = await stampOf(s.id);
      return `authorize #${s.id} by ${by === s.cp.signer ? "signer" : "owner"}`;
    }

    async function settle(): Promise<string | undefined> {
      const candidates = model.withStatus(SessionStatus.Authorized);
      if (candidates.length === 0) return undefined;
      const s = random.pick(candidates);
      const affordableWh = (s.depositWei * 1000n) / s.priceWeiPerKWh; // cost(affordableWh) <= deposit
      const roll = random.float();
      let energyWh: bigint;
      let kind: string;
      if (roll < 0.15) {
        energyWh = 0n;
        kind = "zero";
      } else if (roll < 0.4) {
        energyWh = affordableWh + random.bigint(1n, affordableWh / 2n + 1_000n);
        kind = "overshoot";
      } else {
        energyWh = random.bigint(1n, affordableWh > 0n ? affordableWh : 1n);
        kind = "covered";
      }
      const evBehaviour = random.chance(0.3) ? -1 : 0;
      const meterStartWh = random.bigint(0n, 10n ** 9n);
      const startedAt = random.bigint(1_600_000_000n, 1_800_000_000n);
      const total: SessionTotal = {
        sessionId: s.id,
        cpId: s.cp.cpId,
        meterStartWh,
        meterStopWh: meterStartWh + energyWh,
        startedAt,
        stoppedAt: startedAt + random.bigint(0n, 86_400n),
        evBehaviour,
      };
      const relayer = random.pick(everyone);
      const receipt = await signAndSettle(ledgerOf(relayer), s.cp.signer, domain, total);
      const expected = model.settle(s, energyWh, evBehaviour);
      if (expected.costWei > s.depositWei) count("settle:debt");
      count(`settle:${kind}`);
      expect([...eventArgs(receipt, ledgerOf(relayer), "SessionSettled")]).toEqual([
        s.id, s.cp.cpId, s.ev.address, energyWh, expected.costWei, expected.refundWei, expected.evScore, expected.recordNo,
      ]);
      s.total = total;
      s.signature = await signSessionTotal(s.cp.signer, domain, total);
      return `settle #${s.id} ${kind} ${energyWh} Wh behaviour ${evBehaviour} cost ${expected.costWei} of deposit ${s.depositWei}`;
    }

    async function cancel(): Promise<string | undefined> {
      const candidates = model.withStatus(SessionStatus.Opened);
      if (candidates.length === 0) return undefined;
      const s = random.pick(candidates);
      await advanceTime(provider, AUTH_TIMEOUT_S + 1);
      await mined(`cancel ${s.id}`, () => ledgerOf(s.ev).cancel(s.id));
      s.status = SessionStatus.Cancelled;
      model.credit(s.ev.address, s.depositWei);
      return `cancel #${s.id} after ${AUTH_TIMEOUT_S + 1} s`;
    }

    async function expire(): Promise<string | undefined> {
      const candidates = model.withStatus(SessionStatus.Authorized);
      if (candidates.length === 0) return undefined;
      const s = random.pick(candidates);
      await advanceTime(provider, SETTLE_TIMEOUT_S + 1);
      await mined(`expire ${s.id}`, () => ledgerOf(stranger).expire(s.id));
      s.status = SessionStatus.Expired;
      model.credit(s.ev.address, s.depositWei);
      return `expire #${s.id} after ${SETTLE_TIMEOUT_S + 1} s`;
    }

    async function withdraw(): Promise<string | undefined> {
      const candidates = everyone.filter((a) => model.withdrawableOf(a.address) > 0n);
      if (candidates.length === 0) return undefined;
      const account = random.pick(candidates);
      const amountWei = model.withdrawableOf(account.address);
      const before = await provider.getBalance(account.address);
      const receipt = await mined("withdraw", () => ledgerOf(account).withdraw());
      expect(await provider.getBalance(account.address), "withdrawer's ETH").toBe(before + amountWei - gasCostOf(receipt));
      model.withdrawable.set(account.address, 0n);
      return `withdraw ${amountWei} by ${account.address.slice(0, 8)}`;
    }

    async function payDebt(): Promise<string | undefined> {
      const candidates = evs.filter((ev) => model.debtOf(ev.address) > 0n);
      if (candidates.length === 0) return undefined;
      const ev = random.pick(candidates);
      const owedWei = model.debtOf(ev.address);
      const full = owedWei === 1n || random.chance(0.35);
      const amountWei = full ? owedWei : random.bigint(1n, owedWei - 1n);
      const receipt = await mined("payDebt", () => ledgerOf(ev).payDebt({ value: amountWei }));
      const payments = model.payDebt(ev.address, amountWei);
      const paidEvents = receipt.logs
        .map((log) => ledgerOf(ev).interface.parseLog(log))
        .filter((parsed) => parsed?.name === "DebtPaid")
        .map((parsed) => [parsed?.args.getValue("creditor"), parsed?.args.getValue("amount")]);
      expect(paidEvents).toEqual(payments.map((p) => [p.creditor, p.amountWei]));
      count(full ? "payDebt:full" : "payDebt:partial");
      return `payDebt ${amountWei} of ${owedWei} by ${ev.address.slice(0, 8)}`;
    }

    /** A call the model says must fail: it must revert with the named error and change nothing. */
    async function invalid(): Promise<string | undefined> {
      const settled = model.withStatus(SessionStatus.Settled);
      const opened = model.withStatus(SessionStatus.Opened);
      const authorized = model.withStatus(SessionStatus.Authorized);
      const inDebt = evs.filter((ev) => model.debtOf(ev.address) > 0n);
      const distrusted = evs.filter((ev) => model.debtOf(ev.address) === 0n && model.credibilityOf(ev.address) < 0n);
      const broke = everyone.filter((a) => model.withdrawableOf(a.address) === 0n);
      const choices: (() => Promise<string>)[] = [];
      if (settled.length > 0) {
        choices.push(async () => {
          const s = random.pick(settled);
          if (!s.total || !s.signature) throw new Error(`session ${s.id} settled without a kept total`);
          await expectRevert(settleWithSignature(ledgerOf(stranger), s.total, s.signature), "AlreadySettled", [s.id]);
          return `replay settle #${s.id}`;
        });
      }
      if (authorized.length > 0) {
        choices.push(async () => {
          const s = random.pick(authorized);
          const total: SessionTotal = {
            sessionId: s.id,
            cpId: s.cp.cpId,
            meterStartWh: 0n,
            meterStopWh: 1n,
            startedAt: 0n,
            stoppedAt: 0n,
            evBehaviour: 0,
          };
          const forged = await signSessionTotal(s.ev, domain, total);
          await expectRevert(settleWithSignature(ledgerOf(s.ev), total, forged), "InvalidSignature", [
            s.id, s.ev.address, s.cp.signer.address,
          ]);
          return `forged settle #${s.id}`;
        });
        choices.push(async () => {
          const s = random.pick(authorized);
          await expectRevert(ledgerOf(s.ev).cancel(s.id), "WrongSessionStatus", [s.id, SessionStatus.Authorized, SessionStatus.Opened]);
          return `cancel authorized #${s.id}`;
        });
      }
      const now = await latestTimestamp(provider);
      const authorizable = opened.filter((s) => now + 5n <= s.stampedAt + BigInt(AUTH_TIMEOUT_S));
      if (authorizable.length > 0) {
        choices.push(async () => {
          const s = random.pick(authorizable);
          await expectRevert(ledgerOf(stranger).authorize(s.id), "NotAuthorizer", [s.id, stranger.address]);
          return `authorize #${s.id} by a stranger`;
        });
      }
      const stale = opened.filter((s) => now > s.stampedAt + BigInt(AUTH_TIMEOUT_S));
      if (stale.length > 0) {
        choices.push(async () => {
          const s = random.pick(stale);
          await expectRevert(ledgerOf(s.cp.signer).authorize(s.id), "AuthorizationWindowClosed", [
            s.id, s.stampedAt + BigInt(AUTH_TIMEOUT_S),
          ]);
          return `authorize #${s.id} after its window`;
        });
      }
      if (inDebt.length > 0) {
        choices.push(async () => {
          const ev = random.pick(inDebt);
          const owed = model.debtOf(ev.address);
          const opening = ledgerOf(ev).openSession(random.pick(cps).cpId, 1_000, { value: 10n ** 15n });
          await expectRevert(opening, "OutstandingDebt", [ev.address, owed]);
          return `open while owing ${owed}`;
        });
        choices.push(async () => {
          const ev = random.pick(inDebt);
          const owed = model.debtOf(ev.address);
          await expectRevert(ledgerOf(ev).payDebt({ value: owed + 1n }), "PaymentExceedsDebt", [owed + 1n, owed]);
          return `overpay debt ${owed}`;
        });
      }
      if (distrusted.length > 0) {
        choices.push(async () => {
          const ev = random.pick(distrusted);
          const cp = random.pick(cps);
          const required = requiredDepositOf(5_000n, cp.priceWeiPerKWh);
          const opening = ledgerOf(ev).openSession(cp.cpId, 5_000, { value: required - 1n });
          await expectRevert(opening, "DepositBelowRequired", [required - 1n, required]);
          return `open below required ${required}`;
        });
      }
      if (broke.length > 0) {
        choices.push(async () => {
          const account = random.pick(broke);
          await expectRevert(ledgerOf(account).withdraw(), "NothingToWithdraw", [account.address]);
          return `withdraw nothing`;
        });
      }
      const choice = random.pick(choices);
      return choice();
    }

    const run: Record<Operation, () => Promise<string | undefined>> = {
      open,
      authorize,
      settle,
      cancel,
      expire,
      withdraw,
      payDebt,
      invalid,
    };

    const history: string[] = [];
    let performed = 0;
    let attempts = 0;
    while (performed < OPERATIONS) {
      attempts += 1;
      if (attempts > OPERATIONS * 10) throw new Error(`seed ${seed}: the walk got stuck after ${performed} operations`);
      const operation = random.weighted(WEIGHTS);
      const operationNo = performed + 1;
      try {
        const description = await run[operation]();
        if (description === undefined) continue; // nothing this operation could act on; the model said skip
        history.push(`${operationNo}: ${description}`);
        await assertBalanceInvariant();
        if (operationNo % FULL_CHECK_EVERY === 0) await assertModelMatchesChain();
        performed = operationNo;
        count(operation);
      } catch (error) {
        throw new Error(
          `ledger invariant broken with seed ${seed} (TRUSTPILE_LEDGER_SEED=${seed}) at operation ${operationNo} (${operation}): ${
            error instanceof Error ? error.message : String(error)
          }\nrecent operations:\n${history.slice(-8).map((line) => `  ${line}`).join("\n")}`,
          { cause: error },
        );
      }
    }
    await assertModelMatchesChain();

    // The walk must have exercised every path it claims to cover.
    for (const what of [
      "open", "authorize", "settle", "cancel", "expire", "withdraw", "payDebt", "invalid",
      "settle:zero", "settle:overshoot", "settle:covered", "settle:debt", "payDebt:partial", "payDebt:full", "open:distrusted",
    ]) {
      expect(executed.get(what) ?? 0, `seed ${seed}: operations of kind ${what}`).toBeGreaterThan(0);
    }
    expect(executed.get("invalid") ?? 0).toBeGreaterThanOrEqual(5);
  });
});

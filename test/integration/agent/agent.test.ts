/**
 * The agent against real parts on loopback: anvil (a block a second), the contracts, hw-sim's SDM630 over Modbus
 * TCP, the relay with its feedback contact and the EV on the sim GPIO. Each test builds its own world.
 */
import { afterEach, describe, expect, it } from "vitest";
import { connectLedger, SessionStatus } from "../../../agent/chain/contracts.ts";
import { openSession } from "../../../agent/chain/operations.ts";
import { cpIdOf } from "../../../agent/chain/session-total.ts";
import type { CoreCommand, CoreState } from "../../../agent/core/types.ts";
import {
  SIM_CHARGE_POINT_ID,
  SIM_POLL_INTERVAL_MS,
  SIM_PRICE_WEI_PER_KWH,
  costOf,
  startSimWorld,
  waitUntil,
  type SimWorld,
  type SimWorldOptions,
} from "../../../agent/sim/world.ts";

const CP_ID = cpIdOf(SIM_CHARGE_POINT_ID);
const depositFor = (wh: number): bigint => (BigInt(wh) * SIM_PRICE_WEI_PER_KWH) / 1000n;

let world: SimWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

interface Recorder {
  closes: { headBlock: number; depositBlock: number; authorizeMined: boolean; atMs: number }[];
  phases: string[];
  onStep: (state: CoreState, event: unknown, commands: CoreCommand[]) => void;
}

function recorder(): Recorder {
  const rec: Recorder = {
    closes: [],
    phases: [],
    onStep: (state, _event, commands) => {
      if (rec.phases.at(-1) !== state.phase) rec.phases.push(state.phase);
      for (const command of commands) {
        if (command.type === "setRelay" && command.closed && state.session) {
          rec.closes.push({ headBlock: state.headBlock, depositBlock: state.session.depositBlock, authorizeMined: state.session.authorizeMined, atMs: Date.now() });
        }
      }
    },
  };
  return rec;
}

async function startWorld(options: SimWorldOptions = {}): Promise<SimWorld> {
  world = await startSimWorld(options);
  return world;
}

async function open(w: SimWorld, coversWh: number, maxEnergyWh = 20_000): Promise<bigint> {
  w.hwSim.board.ev.plug();
  const { sessionId } = await openSession(connectLedger(w.deployment.ChargingLedger, w.evWallet), CP_ID, maxEnergyWh, depositFor(coversWh));
  return sessionId;
}

async function settled(w: SimWorld, sessionId: bigint, timeoutMs = 90_000): Promise<void> {
  await waitUntil(`session ${sessionId} settled`, async () => (await w.ledger.session(sessionId)).status === SessionStatus.Settled, timeoutMs);
}

describe("agent end to end", () => {
  it("stops at the budget, pays the owner ceil(Wh × price / 1000) and refunds the rest, signing the register delta", async () => {
    const w = await startWorld();
    const registerBefore = w.registerWh();
    const ownerBefore = await w.ledger.withdrawable(w.owner.address);
    const evBefore = await w.ledger.withdrawable(w.evWallet.address);
    const sessionId = await open(w, 200);
    await settled(w, sessionId);
    const session = await w.ledger.session(sessionId);
    const energyWh = session.energyWh;
    // Budget: 200 Wh covered − 20 Wh stop margin = 180 Wh; overshoot after the stop stays inside the margin.
    expect(Number(energyWh)).toBeGreaterThanOrEqual(180);
    expect(Number(energyWh)).toBeLessThan(200);
    expect(BigInt(w.registerWh() - registerBefore)).toBe(energyWh);
    const cost = costOf(energyWh, SIM_PRICE_WEI_PER_KWH);
    expect((await w.ledger.withdrawable(w.owner.address)) - ownerBefore).toBe(cost);
    expect((await w.ledger.withdrawable(w.evWallet.address)) - evBefore).toBe(depositFor(200) - cost);
    expect(session.evScore).toBe(1n);
    expect(await w.ledger.credibility(w.evWallet.address)).toBe(1n);
  }, 120_000);

  it("never closes the relay before the deposit has its confirmations and authorize is mined", async () => {
    const rec = recorder();
    const w = await startWorld({ confirmations: 3, onStep: rec.onStep });
    const sessionId = await open(w, 100);
    await settled(w, sessionId);
    expect(rec.closes.length).toBeGreaterThanOrEqual(1);
    for (const close of rec.closes) {
      expect(close.authorizeMined).toBe(true);
      expect(close.headBlock - close.depositBlock + 1).toBeGreaterThanOrEqual(3);
    }
    // The relay's own edge history agrees: the first close comes after the block that confirmed the deposit.
    const firstClose = w.agent.relay.history().find((edge) => edge.closed);
    const opened = (await w.ledger.queryFilter(w.ledger.getEvent("SessionOpened")))[0];
    const confirmingBlock = await w.provider.getBlock((opened?.blockNumber ?? 0) + 2);
    expect(firstClose).toBeDefined();
    expect(firstClose!.atMs).toBeGreaterThanOrEqual((confirmingBlock?.timestamp ?? 0) * 1000);
    // "authorized" lasts no longer than the step that mined it when the interlock holds, so it is not observed here.
    expect(rec.phases).toEqual(expect.arrayContaining(["depositPending", "authorizing", "energized", "settling", "idle"]));
  }, 120_000);

  it("stops and settles when the EV is unplugged under load, reporting the violation (score −1)", async () => {
    const w = await startWorld();
    const registerBefore = w.registerWh();
    const sessionId = await open(w, 2_000);
    await waitUntil("energy flowing", () => w.registerWh() - registerBefore >= 60, 60_000);
    w.hwSim.board.ev.unplug();
    await settled(w, sessionId);
    const session = await w.ledger.session(sessionId);
    expect(session.evScore).toBe(-1n);
    expect(BigInt(w.registerWh() - registerBefore)).toBe(session.energyWh);
    expect(await w.ledger.credibility(w.evWallet.address)).toBe(-1n);
  }, 120_000);

  it("opens the relay within staleAfterMs plus one poll when the meter goes silent", async () => {
    const w = await startWorld({ staleAfterMs: 2_000 });
    const registerBefore = w.registerWh();
    const sessionId = await open(w, 2_000);
    await waitUntil("energy flowing", () => w.registerWh() - registerBefore >= 30, 60_000);
    const lastGoodRegister = w.registerWh();
    w.hwSim.board.faults.meterOffline(true);
    const cutAt = Date.now();
    await waitUntil("relay open", () => !w.agent.relay.isClosed(), 10_000);
    const openedAfterMs = Date.now() - cutAt;
    expect(openedAfterMs).toBeLessThanOrEqual(2_000 + SIM_POLL_INTERVAL_MS + 500);
    expect(w.agent.relay.history().at(-1)?.reason).toBe("meterLost");
    w.hwSim.board.faults.meterOffline(false);
    await settled(w, sessionId);
    // Settled on the stop reading taken once the meter answered again, after the contacts opened.
    const session = await w.ledger.session(sessionId);
    expect(Number(session.energyWh)).toBeGreaterThanOrEqual(lastGoodRegister - registerBefore);
    expect(BigInt(w.registerWh() - registerBefore)).toBe(session.energyWh);
  }, 120_000);

  it("raises a welded-contactor fault when the feedback stays closed after opening", async () => {
    const w = await startWorld();
    const registerBefore = w.registerWh();
    await open(w, 2_000);
    await waitUntil("energy flowing", () => w.registerWh() - registerBefore >= 30, 60_000);
    w.hwSim.board.faults.relayWeld();
    await w.agent.dispatch({ type: "remoteStop", atMs: Date.now() });
    await waitUntil("a fault", () => w.agent.state().fault !== undefined, 5_000);
    expect(w.agent.state().fault).toMatch(/^welded contactor: feedback stayed closed for 500 ms after opening$/);
    expect(w.agent.relay.isClosed()).toBe(false);
  }, 120_000);

  it("drops a pending deposit that a reorg removes, and nothing energizes", async () => {
    const rec = recorder();
    const w = await startWorld({ confirmations: 4, onStep: rec.onStep });
    const snapshot = (await w.provider.send("evm_snapshot", [])) as string;
    const sessionId = await open(w, 200);
    await waitUntil("the agent sees the deposit", () => w.agent.state().session?.sessionId === sessionId, 10_000);
    expect(w.agent.state().phase).toBe("depositPending");
    // Roll the chain back past the deposit; interval mining continues on the new branch.
    await w.provider.send("evm_revert", [snapshot]);
    await w.provider.send("evm_mine", []);
    await w.provider.send("evm_mine", []);
    await waitUntil("the agent to drop the deposit", () => w.agent.state().session === undefined, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect(w.agent.state().phase).toBe("idle");
    expect(rec.closes).toEqual([]);
    expect(w.agent.relay.history().filter((edge) => edge.closed)).toEqual([]);
    await expect(w.ledger.session(sessionId)).rejects.toThrow();
  }, 120_000);
});

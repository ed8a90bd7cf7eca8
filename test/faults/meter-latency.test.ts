/**
 * Regression (fault suite, meterLateReplies; found with drivers at 55 kW, hw-sim speed-up 5, reply delay 410 ms):
 * a meter whose replies were late, then prompt again, was refused as implausible. Its register is latched when the
 * request arrives; the late reply carried a value 410 ms old, the prompt one after it a current value, and the
 * plausibility bound timed the pair from reply to reply (a few ms) although 410 ms of energy lay between the values.
 * The session stopped with a "fault" on a healthy meter and the last 410 ms were never billed. The bound now runs
 * from the previous request to this reply.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSimGpio } from "../../drivers/gpio/sim.ts";
import { createModbusMeter } from "../../drivers/meters/modbus-meter.ts";
import { meterModels } from "../../drivers/meters/models/index.ts";
import { createPlausibilityGuard } from "../../drivers/meters/plausibility.ts";
import { acceleratedClock } from "../../hw-sim/clock.ts";
import { startHwSim, type HwSim } from "../../hw-sim/index.ts";
import { LINES } from "../helpers/agent-world.ts";

const { sdm630 } = meterModels;

describe("plausibility bound with late replies", () => {
  it("times two samples from the earlier request to the later reply", () => {
    const guard = createPlausibilityGuard(sdm630);
    // 55 kW = 15.3 Wh/s. Latched at 0 ms, replied at 410 ms; the next latched at 410 ms, replied at 415 ms.
    expect(guard.check({ importEnergyWh: 10_000, requestedAtMs: 0, readAtMs: 410 })).toEqual({ ok: true, rebased: false });
    expect(guard.check({ importEnergyWh: 10_006, requestedAtMs: 410, readAtMs: 415 })).toEqual({ ok: true, rebased: false });
    // Without the request time the same pair is 5 ms apart and refused: the old behaviour, still the default.
    const replyOnly = createPlausibilityGuard(sdm630);
    replyOnly.check({ importEnergyWh: 10_000, readAtMs: 410 });
    expect(replyOnly.check({ importEnergyWh: 10_006, readAtMs: 415 })).toMatchObject({ ok: false, reason: expect.stringMatching(/rose by 6 Wh in 5 ms/) });
  });

  it("still refuses a register jump that no latency explains", () => {
    const guard = createPlausibilityGuard(sdm630);
    guard.check({ importEnergyWh: 10_000, requestedAtMs: 0, readAtMs: 410 });
    // 69 kW for 415 ms is 8 Wh, plus rounding and resolution: 30 Wh is a jump.
    expect(guard.check({ importEnergyWh: 10_030, requestedAtMs: 410, readAtMs: 415 })).toMatchObject({ ok: false });
  });
});

describe("Modbus meter driver against hw-sim at 55 kW, replies late then prompt", () => {
  let hwSim: HwSim;

  beforeAll(async () => {
    const gpio = createSimGpio();
    hwSim = await startHwSim({ meterTcpPort: 0, gpio, gpioLines: LINES, clock: acceleratedClock(5), ev: { plugged: true, socPercent: 20 } });
    // The contactor closed: the EV draws 11 kW, which the accelerated clock makes 55 kW.
    const relay = gpio.openOutput(LINES.relay);
    await relay.write(true);
  });

  afterAll(async () => {
    await hwSim?.stop();
  });

  it("accepts every reading across the change from 400 ms late replies to prompt ones", async () => {
    const meter = createModbusMeter({ model: sdm630, transport: "tcp", host: "127.0.0.1", port: hwSim.meterTcpPort, unitId: 1, timeoutMs: 1_000 });
    try {
      const first = await meter.read();
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Power shows the EV's 11 kW; energy accrues five times as fast (at least 7.6 Wh in 500 ms).
      expect((await meter.read()).importEnergyWh - first.importEnergyWh, "Wh in 500 ms at 55 kW").toBeGreaterThanOrEqual(7);
      hwSim.board.faults.meterReplyDelayMs(400);
      const late = await meter.read();
      hwSim.board.faults.meterReplyDelayMs(0);
      const prompt = await meter.read();
      expect(prompt.importEnergyWh).toBeGreaterThan(late.importEnergyWh);
      expect(late.importEnergyWh).toBeGreaterThan(first.importEnergyWh);
    } finally {
      await meter.close();
    }
  });
});

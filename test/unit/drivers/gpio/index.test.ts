import { afterEach, describe, expect, it, vi } from "vitest";
import { configSchema } from "../../../../agent/config/schema.ts";
import { DEFAULT_SIM_RELAY_LINE, openGpio, type GpioConfig, type GpioLines } from "../../../../drivers/gpio/index.ts";
import { createSimGpio } from "../../../../drivers/gpio/sim.ts";
import { createFakeSysfs, type FakeSysfs } from "../../../helpers/fake-sysfs.ts";

const waitOptions = { timeout: 2_000, interval: 5 };

describe("openGpio with gpio.driver sim", () => {
  it("takes the agent's parsed gpio config and opens the relay on line 17 by default, inactive", async () => {
    const config = configSchema.parse({ chargePointId: "cp-001", chain: { keystore: "./key.json" }, gpio: { driver: "sim" } });
    const sim = createSimGpio();
    const edges: boolean[] = [];
    sim.onOutputChange(DEFAULT_SIM_RELAY_LINE, (high) => edges.push(high));
    const gpio = await openGpio(config.gpio, { sim });
    expect(DEFAULT_SIM_RELAY_LINE).toBe(17);
    expect([gpio.relay.line, await gpio.relay.read(), sim.outputLevel(17)]).toEqual([17, false, false]);
    expect([gpio.feedback, gpio.evPresent]).toEqual([undefined, undefined]);
    await gpio.relay.write(true);
    expect(edges).toEqual([true]);
    await gpio.close();
    expect(sim.outputLevel(17)).toBe(false);
  });

  it("opens the configured lines with their polarity", async () => {
    const sim = createSimGpio();
    sim.driveInput(27, false); // mirror contact closed on an active-low input
    sim.driveInput(22, true);
    const gpio = await openGpio(
      {
        driver: "sim",
        relay: { line: 5, activeLow: true },
        feedback: { line: 27, activeLow: true },
        evPresent: { line: 22, activeLow: false },
      },
      { sim },
    );
    expect([gpio.relay.line, await gpio.relay.read(), sim.outputLevel(5)]).toEqual([5, false, true]);
    expect([gpio.feedback?.line, await gpio.feedback?.read()]).toEqual([27, true]);
    expect([gpio.evPresent?.line, await gpio.evPresent?.read()]).toEqual([22, true]);
    await gpio.close();
  });

  it("close closes every line once, relay left inactive", async () => {
    const sim = createSimGpio();
    const gpio = await openGpio({ driver: "sim", feedback: { line: 27 }, evPresent: { line: 22 } }, { sim });
    await gpio.relay.write(true);
    await Promise.all([gpio.close(), gpio.close()]);
    await gpio.close();
    expect(sim.outputLevel(17)).toBe(false);
    await expect(gpio.relay.read()).rejects.toThrow("line 17 is closed");
    await expect(gpio.feedback!.read()).rejects.toThrow("line 27 is closed");
    await expect(gpio.evPresent!.read()).rejects.toThrow("line 22 is closed");
  });

  it("closes the lines it opened when a later one fails", async () => {
    const sim = createSimGpio();
    await expect(
      openGpio({ driver: "sim", relay: { line: 17 }, feedback: { line: 27 }, evPresent: { line: 17 } }, { sim }),
    ).rejects.toThrow("line 17 is already open as an output");
    // Both lines are free again: they were closed, not leaked.
    expect(sim.openOutput({ line: 17 }).line).toBe(17);
    expect(sim.openInput({ line: 27 }).line).toBe(27);
  });

  it("needs the simulator", async () => {
    await expect(openGpio({ driver: "sim" })).rejects.toThrow(
      "[trustpile] [gpio:gpio] gpio.driver is sim but no simulator was given: pass `sim`",
    );
  });
});

describe("openGpio with gpio.driver onoff", () => {
  let fake: FakeSysfs;
  let gpio: GpioLines | undefined;
  afterEach(async () => {
    await gpio?.close();
    gpio = undefined;
    await fake.close();
  });
  const config: GpioConfig = {
    driver: "onoff",
    relay: { line: 17, activeLow: true },
    feedback: { line: 27 },
    evPresent: { line: 22, activeLow: true },
  };

  it("opens the relay first, inactive, then the inputs, on the sysfs numbers of a kernel >= 6.6 Pi", async () => {
    fake = await createFakeSysfs([{ base: 512, ngpio: 54, label: "pinctrl-bcm2711" }], { kernel: true });
    gpio = await openGpio(config, { sysfsRoot: fake.root });
    expect(fake.exported).toEqual([529, 539, 534]);
    expect([await gpio.relay.read(), fake.electricalLevel(529), fake.file(529, "direction")]).toEqual([false, true, "high"]);
    fake.driveElectrical(534, false);
    expect(await gpio.evPresent!.read()).toBe(true);
    const seen: boolean[] = [];
    gpio.feedback!.watch((closed) => seen.push(closed));
    await gpio.relay.write(true);
    expect(fake.electricalLevel(529)).toBe(false);
    fake.driveElectrical(539, true);
    await vi.waitFor(() => expect(seen).toEqual([true]), { timeout: 2_000, interval: 5 });
  });

  it("leaves the relay inactive after close", async () => {
    fake = await createFakeSysfs([{ base: 512, ngpio: 54, label: "pinctrl-bcm2711" }], { kernel: true });
    const lines = await openGpio(config, { sysfsRoot: fake.root });
    await lines.relay.write(true);
    await lines.close();
    expect(fake.electricalLevel(529)).toBe(true);
    await expect(lines.relay.write(true)).rejects.toThrow("line 17 (sysfs GPIO 529) is closed");
  });

  it("fails as a whole, relay released inactive, when an input is beyond the chip", async () => {
    fake = await createFakeSysfs([{ base: 512, ngpio: 54, label: "pinctrl-bcm2711" }], { kernel: true });
    await expect(openGpio({ ...config, evPresent: { line: 60 } }, { sysfsRoot: fake.root })).rejects.toThrow(
      "GPIO line 60 is beyond gpiochip512 (54 lines)",
    );
    expect(fake.electricalLevel(529)).toBe(true);
    await vi.waitFor(() => expect(fake.unexported.length).toBeGreaterThan(0), waitOptions);
  });

  it("requires gpio.relay", async () => {
    fake = await createFakeSysfs([], {});
    await expect(openGpio({ driver: "onoff" }, { sysfsRoot: fake.root })).rejects.toThrow(
      "gpio.relay.line: required with gpio.driver onoff, missing",
    );
  });
});

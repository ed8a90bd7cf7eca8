import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { BinaryValue, Direction, ValueCallback } from "onoff";
import {
  openOnoffInput,
  openOnoffOutput,
  type OnoffLikeGpio,
  type OnoffLikeOptions,
  type OpenOnoffLikeGpio,
} from "../../../../drivers/gpio/onoff.ts";
import type { DigitalIn, DigitalOut, LineConfig } from "../../../../drivers/gpio/types.ts";
import { createChipTree, createFakeSysfs, type FakeSysfs } from "../../../helpers/fake-sysfs.ts";
import { testDigitalIn, testDigitalOut } from "../../../helpers/gpio-conformance.ts";

const BASE = 512;
const PI4_KERNEL_6_6 = [{ base: BASE, ngpio: 54, label: "pinctrl-bcm2711" }];
const waitOptions = { timeout: 2_000, interval: 5 };

/**
 * A real kernel removes `gpioN/` inside the unexport write; the fake kernel does it a moment later, so a close is
 * awaited until it has, or a reopen right after could find the old directory on its way out.
 */
async function closedInKernel(fake: FakeSysfs, line: number): Promise<void> {
  await vi.waitFor(() => expect(existsSync(join(fake.root, `gpio${BASE + line}`))).toBe(false), waitOptions);
}

function harnessOver<T extends DigitalOut | DigitalIn>(fake: FakeSysfs, line: T): T {
  const close = line.close.bind(line);
  line.close = async () => {
    await close();
    await closedInKernel(fake, line.line);
  };
  return line;
}

testDigitalOut("onoff adapter over a fake sysfs tree (SysfsGpio)", async () => {
  const fake = await createFakeSysfs(PI4_KERNEL_6_6, { kernel: true });
  return {
    open: async (config) => harnessOver(fake, await openOnoffOutput(config, { sysfsRoot: fake.root })),
    electricalLevel: (line) => fake.electricalLevel(BASE + line),
    cleanup: () => fake.close(),
  };
});

testDigitalIn("onoff adapter over a fake sysfs tree (SysfsGpio)", async () => {
  const fake = await createFakeSysfs(PI4_KERNEL_6_6, { kernel: true });
  return {
    open: async (config) => harnessOver(fake, await openOnoffInput(config, { sysfsRoot: fake.root })),
    drive: (line, high) => fake.driveElectrical(BASE + line, high),
    cleanup: () => fake.close(),
  };
});

describe("onoff adapter over a fake sysfs tree", () => {
  let fake: FakeSysfs;
  const open: Array<DigitalOut | DigitalIn> = [];
  const setUp = async (): Promise<FakeSysfs> => (fake = await createFakeSysfs(PI4_KERNEL_6_6, { kernel: true }));
  afterEach(async () => {
    for (const line of open.splice(0)) await line.close();
    await fake.close();
  });
  const output = async (config: LineConfig): Promise<DigitalOut> => {
    const out = await openOnoffOutput(config, { sysfsRoot: fake.root });
    open.push(out);
    return out;
  };

  it("exports sysfs GPIO 529 for BCM line 17 and unexports it on close", async () => {
    await setUp();
    const out = await openOnoffOutput({ line: 17 }, { sysfsRoot: fake.root });
    expect(fake.exported).toEqual([529]);
    await out.close();
    await vi.waitFor(() => expect(fake.unexported).toEqual([529]), waitOptions);
  });

  // The kernel's direction file is electrical ("high" = gpiod_direction_output_raw(1)): "out" would close an
  // active-low relay at start-up.
  it("configures an output with its electrically inactive level in the direction word", async () => {
    await setUp();
    await output({ line: 17, activeLow: false });
    await output({ line: 18, activeLow: true });
    expect([fake.file(529, "direction"), fake.file(529, "active_low"), fake.file(529, "value")]).toEqual(["low", "0", "0"]);
    expect([fake.file(530, "direction"), fake.file(530, "active_low"), fake.file(530, "value")]).toEqual(["high", "1", "0"]);
  });

  it("configures an input for both edges with its polarity", async () => {
    await setUp();
    const input = await openOnoffInput({ line: 27, activeLow: true }, { sysfsRoot: fake.root });
    open.push(input);
    expect([fake.file(539, "direction"), fake.file(539, "edge"), fake.file(539, "active_low")]).toEqual(["in", "both", "1"]);
  });

  it("takes over a line another program exported, reconfiguring it", async () => {
    await setUp();
    fake.preExport(529, { direction: "in", active_low: "0", value: "1" });
    const out = await output({ line: 17, activeLow: true });
    expect(fake.exported).toEqual([]);
    expect([await out.read(), fake.electricalLevel(529), fake.file(529, "direction")]).toEqual([false, true, "high"]);
  });

  it("refuses a line beyond the chip before exporting anything", async () => {
    await setUp();
    await expect(openOnoffOutput({ line: 60 }, { sysfsRoot: fake.root })).rejects.toThrow(
      "[trustpile] [gpio:sysfs] GPIO line 60 is beyond gpiochip512 (54 lines)",
    );
    expect(fake.exported).toEqual([]);
  });

  it("reports a debounced input once it has settled, not every bounce", async () => {
    await setUp();
    const input = await openOnoffInput({ line: 27 }, { sysfsRoot: fake.root, debounceMs: 100 });
    open.push(input);
    const levels: boolean[] = [];
    input.watch((active) => levels.push(active));
    for (const high of [true, false, true, false, true]) {
      fake.driveElectrical(539, high);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(levels).toEqual([]);
    await vi.waitFor(() => expect(levels).toEqual([true]), waitOptions);
  });

  it("without debounce, every settled change is reported", async () => {
    await setUp();
    const input = await openOnoffInput({ line: 27 }, { sysfsRoot: fake.root });
    open.push(input);
    const levels: boolean[] = [];
    input.watch((active) => levels.push(active));
    for (const high of [true, false, true]) {
      fake.driveElectrical(539, high);
      await vi.waitFor(() => expect(levels.at(-1)).toBe(high), waitOptions);
    }
    expect(levels).toEqual([true, false, true]);
  });

  it("rejects a negative debounce, naming the line", async () => {
    await setUp();
    await expect(openOnoffInput({ line: 27 }, { sysfsRoot: fake.root, debounceMs: -5 })).rejects.toThrow(
      "debounceMs for line 27 (sysfs GPIO 539): expected ms >= 0, got -5",
    );
  });
});

/** onoff's Gpio as the kernel would configure it, with knobs for the failures onoff swallows. */
class FakeOnoffGpio implements OnoffLikeGpio {
  readonly log: string[] = [];
  listeners: ValueCallback[] = [];
  value: BinaryValue = 0;
  constructor(
    readonly requested: { sysfsNumber: number; direction: Direction; options: OnoffLikeOptions },
    readonly actual: { direction: Direction; activeLow: boolean },
  ) {}
  readSync(): BinaryValue {
    return this.value;
  }
  writeSync(value: BinaryValue): void {
    this.log.push(`write ${value}`);
    this.value = value;
  }
  watch(callback: ValueCallback): void {
    this.listeners.push(callback);
  }
  unwatch(callback?: ValueCallback): void {
    this.listeners = callback ? this.listeners.filter((l) => l !== callback) : [];
  }
  direction(): Direction {
    return this.actual.direction;
  }
  activeLow(): boolean {
    return this.actual.activeLow;
  }
  unexport(): void {
    this.log.push("unexport");
  }
  interrupt(value: BinaryValue, error: Error | null = null): void {
    this.value = value;
    for (const listener of [...this.listeners]) listener(error, value);
  }
}

describe("onoff adapter over an injected Gpio", () => {
  let sysfsRoot: string;
  const opened: FakeOnoffGpio[] = [];
  const opener =
    (actual?: Partial<{ direction: Direction; activeLow: boolean }>): OpenOnoffLikeGpio =>
    async (sysfsNumber, direction, _edge, options) => {
      const configured = { direction: direction === "in" ? "in" : "out", activeLow: options.activeLow } as const;
      const gpio = new FakeOnoffGpio({ sysfsNumber, direction, options }, { ...configured, ...actual });
      opened.push(gpio);
      return gpio;
    };
  const setUp = async (): Promise<void> => {
    sysfsRoot = await createChipTree(PI4_KERNEL_6_6);
  };
  afterEach(() => void opened.splice(0));

  it("asks onoff for the electrically inactive direction and passes activeLow and the sysfs number", async () => {
    await setUp();
    await openOnoffOutput({ line: 17, activeLow: true }, { sysfsRoot, openLine: opener() });
    await openOnoffOutput({ line: 18 }, { sysfsRoot, openLine: opener() });
    await openOnoffInput({ line: 27 }, { sysfsRoot, openLine: opener(), debounceMs: 15 });
    expect(opened.map((g) => g.requested)).toEqual([
      { sysfsNumber: 529, direction: "high", options: { activeLow: true } },
      { sysfsNumber: 530, direction: "low", options: { activeLow: false } },
      { sysfsNumber: 539, direction: "in", options: { activeLow: false, debounceTimeout: 15 } },
    ]);
  });

  // onoff ignores configuration errors on a GPIO exported before (configureGpio's throwIfNeeded).
  it("refuses an output whose active_low did not take, leaving it electrically inactive", async () => {
    await setUp();
    await expect(
      openOnoffOutput({ line: 17, activeLow: true }, { sysfsRoot, openLine: opener({ activeLow: false }) }),
    ).rejects.toThrow("line 17 (sysfs GPIO 529): active_low reads 0 after configuring 1");
    // active_low 0 in force: logical 1 is electrical high, the active-low relay's inactive level; never a write 0.
    expect(opened[0]!.log).toEqual(["write 1", "unexport"]);
  });

  it("refuses an output left as an input, and an input left as an output", async () => {
    await setUp();
    await expect(openOnoffOutput({ line: 17 }, { sysfsRoot, openLine: opener({ direction: "in" }) })).rejects.toThrow(
      'line 17 (sysfs GPIO 529): direction reads "in" after configuring it as an output',
    );
    await expect(openOnoffInput({ line: 27 }, { sysfsRoot, openLine: opener({ direction: "out" }) })).rejects.toThrow(
      'line 27 (sysfs GPIO 539): direction reads "out" after configuring it as an input',
    );
    expect(opened.map((g) => g.log)).toEqual([["unexport"], ["unexport"]]);
  });

  it("writes logical 0 after opening, and again before unexport on close", async () => {
    await setUp();
    const out = await openOnoffOutput({ line: 17 }, { sysfsRoot, openLine: opener() });
    await out.write(true);
    await out.close();
    await out.close();
    expect(opened[0]!.log).toEqual(["write 0", "write 1", "write 0", "unexport"]);
  });

  it("reports repeated interrupts of one level once and skips interrupts with an error", async () => {
    await setUp();
    const input = await openOnoffInput({ line: 27 }, { sysfsRoot, openLine: opener() });
    const levels: boolean[] = [];
    input.watch((active) => levels.push(active));
    const gpio = opened[0]!;
    gpio.interrupt(1);
    gpio.interrupt(1);
    gpio.interrupt(0, new Error("EPOLLERR"));
    gpio.interrupt(0);
    gpio.interrupt(0);
    expect(levels).toEqual([true, false]);
  });

  it("stops onoff's watch when the last listener leaves, and on close", async () => {
    await setUp();
    const input = await openOnoffInput({ line: 27 }, { sysfsRoot, openLine: opener() });
    const gpio = opened[0]!;
    const stopA = input.watch(() => undefined);
    const stopB = input.watch(() => undefined);
    expect(gpio.listeners).toHaveLength(1);
    stopA();
    expect(gpio.listeners).toHaveLength(1);
    stopB();
    expect(gpio.listeners).toHaveLength(0);
    input.watch(() => undefined);
    await input.close();
    expect(gpio.log).toEqual(["unexport"]);
  });
});

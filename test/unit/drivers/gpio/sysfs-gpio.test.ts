import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { BinaryValue } from "onoff";
import { openSysfsGpio, type SysfsGpio } from "../../../../drivers/gpio/sysfs-gpio.ts";
import { createFakeSysfs, type FakeSysfs } from "../../../helpers/fake-sysfs.ts";

const CHIPS = [{ base: 512, ngpio: 54, label: "pinctrl-bcm2711" }];
const waitOptions = { timeout: 2_000, interval: 5 };

describe("SysfsGpio", () => {
  let fake: FakeSysfs | undefined;
  const gpios: SysfsGpio[] = [];
  afterEach(async () => {
    for (const gpio of gpios.splice(0)) gpio.unexport();
    await fake?.close();
    fake = undefined;
  });
  const open = async (...args: Parameters<typeof openSysfsGpio>): Promise<SysfsGpio> => {
    const gpio = await openSysfsGpio(...args);
    gpios.push(gpio);
    return gpio;
  };

  it("exports, waits for gpioN/ and writes active_low, direction and edge", async () => {
    fake = await createFakeSysfs(CHIPS, { kernel: true });
    const gpio = await open(539, "in", "both", { sysfsRoot: fake.root, activeLow: true });
    expect(fake.exported).toEqual([539]);
    expect([fake.file(539, "active_low"), fake.file(539, "direction"), fake.file(539, "edge")]).toEqual(["1", "in", "both"]);
    expect([gpio.direction(), gpio.activeLow()]).toEqual(["in", true]);
  });

  it("reads and writes the value file", async () => {
    fake = await createFakeSysfs(CHIPS, { kernel: true });
    const gpio = await open(529, "low", "none", { sysfsRoot: fake.root, activeLow: false });
    gpio.writeSync(1);
    expect([fake.file(529, "value"), gpio.readSync()]).toEqual(["1", 1]);
    gpio.writeSync(0);
    expect([fake.file(529, "value"), gpio.readSync()]).toEqual(["0", 0]);
  });

  it("times out naming the GPIO and the file when gpioN/ never appears, and unexports again", async () => {
    fake = await createFakeSysfs(CHIPS); // no kernel: nobody answers the export
    await expect(open(529, "low", "none", { sysfsRoot: fake.root, activeLow: false, exportTimeoutMs: 50 })).rejects.toThrow(
      `[trustpile] [gpio:sysfs] GPIO 529: ${join(fake.root, "gpio529", "value")} was not there and writable within 50 ms of export`,
    );
    expect(readFileSync(join(fake.root, "unexport"), "utf8")).toBe("529");
  });

  it("names the export file and the usual causes when the export write fails", async () => {
    fake = await createFakeSysfs(CHIPS, { kernel: true });
    rmSync(join(fake.root, "export"));
    mkdirSync(join(fake.root, "export"));
    await expect(open(529, "low", "none", { sysfsRoot: fake.root, activeLow: false })).rejects.toThrow(
      `cannot export GPIO 529 by writing ${join(fake.root, "export")}`,
    );
  });

  it("rejects a value file that holds neither 0 nor 1", async () => {
    fake = await createFakeSysfs(CHIPS, { kernel: true });
    const gpio = await open(529, "in", "both", { sysfsRoot: fake.root, activeLow: false });
    writeFileSync(join(fake.root, "gpio529", "value"), "x\n");
    expect(() => gpio.readSync()).toThrow(`${join(fake.root, "gpio529", "value")} reads "x": expected 0 or 1`);
  });

  it("calls watchers on every value change, like onoff's interrupts, until unwatched", async () => {
    fake = await createFakeSysfs(CHIPS, { kernel: true });
    const gpio = await open(539, "in", "both", { sysfsRoot: fake.root, activeLow: false });
    const seen: BinaryValue[] = [];
    const callback = (error: Error | null | undefined, value: BinaryValue): void => {
      if (!error) seen.push(value);
    };
    gpio.watch(callback);
    fake.driveElectrical(539, true);
    await vi.waitFor(() => expect(seen.at(-1)).toBe(1), waitOptions);
    fake.driveElectrical(539, false);
    await vi.waitFor(() => expect(seen.at(-1)).toBe(0), waitOptions);
    gpio.unwatch(callback);
    const count = seen.length;
    fake.driveElectrical(539, true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toHaveLength(count);
  });

  it("unexport is idempotent (a second one does not touch the closed value fd)", async () => {
    fake = await createFakeSysfs(CHIPS, { kernel: true });
    const gpio = await openSysfsGpio(529, "low", "none", { sysfsRoot: fake.root, activeLow: false });
    gpio.unexport();
    expect(gpio.unexport()).toBeUndefined();
    await vi.waitFor(() => expect(fake?.unexported).toEqual([529]), waitOptions);
  });
});

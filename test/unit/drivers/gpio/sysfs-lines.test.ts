import { afterEach, describe, expect, it } from "vitest";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { listGpioChips, resolveLine, sysfsNumberOf } from "../../../../drivers/gpio/sysfs-lines.ts";
import { createChipTree, type FakeChip } from "../../../helpers/fake-sysfs.ts";

const roots: string[] = [];
async function tree(chips: FakeChip[]): Promise<string> {
  const root = await createChipTree(chips);
  roots.push(root);
  return root;
}
afterEach(async () => {
  for (const root of roots.splice(0)) await rm(root, { recursive: true, force: true });
});

const bank = (base: number, label = `gpio-${base}-${base + 31}`): FakeChip => ({ base, ngpio: 32, label });

describe("sysfsNumberOf", () => {
  it("Raspberry Pi OS, kernel >= 6.6: BCM 17 on gpiochip512 is sysfs 529", async () => {
    const sysfsRoot = await tree([{ base: 512, ngpio: 54, label: "pinctrl-bcm2711" }]);
    expect(sysfsNumberOf(17, { sysfsRoot })).toBe(529);
    expect(sysfsNumberOf(0, { sysfsRoot })).toBe(512);
    expect(sysfsNumberOf(53, { sysfsRoot })).toBe(565);
  });

  it("older kernels: BCM 17 on gpiochip0 is sysfs 17", async () => {
    const sysfsRoot = await tree([{ base: 0, ngpio: 54, label: "pinctrl-bcm2835" }]);
    expect(sysfsNumberOf(17, { sysfsRoot })).toBe(17);
  });

  it("picks the main controller over lower chips: Pi 4 with the firmware expander, Pi 5 with brcmstb banks", async () => {
    const pi4 = await tree([
      { base: 512, ngpio: 58, label: "pinctrl-bcm2711" },
      { base: 570, ngpio: 8, label: "raspberrypi-exp-gpio" },
    ]);
    expect(sysfsNumberOf(17, { sysfsRoot: pi4 })).toBe(529);
    const pi5 = await tree([
      { base: 512, ngpio: 32, label: "gpio-brcmstb@107d508500" },
      { base: 544, ngpio: 4, label: "gpio-brcmstb@107d508520" },
      { base: 548, ngpio: 17, label: "gpio-brcmstb@107d517c00" },
      { base: 565, ngpio: 6, label: "gpio-brcmstb@107d517c20" },
      { base: 571, ngpio: 54, label: "pinctrl-rp1" },
    ]);
    expect(sysfsNumberOf(17, { sysfsRoot: pi5 })).toBe(588);
  });

  it("BeagleBone banks 0/32/64/96: a line is the board's GPIO number, bank * 32 + offset", async () => {
    const sysfsRoot = await tree([bank(96), bank(0), bank(64), bank(32)]);
    expect(sysfsNumberOf(17, { sysfsRoot })).toBe(17); // gpio0_17
    expect(sysfsNumberOf(60, { sysfsRoot })).toBe(60); // P9_12, gpio1_28
    expect(sysfsNumberOf(127, { sysfsRoot })).toBe(127);
    expect(resolveLine(60, listGpioChips(sysfsRoot), { sysfsRoot })).toMatchObject({
      sysfsNumber: 60,
      offset: 28,
      chip: { name: "gpiochip32" },
    });
    expect(() => sysfsNumberOf(128, { sysfsRoot })).toThrow(
      "GPIO line 128 is beyond gpiochip0..gpiochip96 (128 lines numbered from 0 across the banks): expected a line 0..127",
    );
  });

  it("BeagleBone banks on a kernel with dynamic bases (512..) keep the same line numbers", async () => {
    const sysfsRoot = await tree([bank(512), bank(544), bank(576), bank(608)]);
    expect(sysfsNumberOf(60, { sysfsRoot })).toBe(572);
  });

  it("never crosses a gap in the numbering to reach another chip", async () => {
    const sysfsRoot = await tree([bank(0), { base: 100, ngpio: 32, label: "i2c-expander" }]);
    expect(() => sysfsNumberOf(110, { sysfsRoot })).toThrow("GPIO line 110 is beyond gpiochip0 (32 lines)");
  });

  it("a line beyond the chip is an error naming the chip, its size and the accepted range", async () => {
    const sysfsRoot = await tree([{ base: 512, ngpio: 54, label: "pinctrl-bcm2711" }]);
    expect(() => sysfsNumberOf(60, { sysfsRoot })).toThrow(
      'GPIO line 60 is beyond gpiochip512 (54 lines): expected a line 0..53 of "pinctrl-bcm2711"',
    );
  });

  it("recognizes a sysfs number written where the chip line belongs", async () => {
    const sysfsRoot = await tree([{ base: 512, ngpio: 54, label: "pinctrl-bcm2711" }]);
    expect(() => sysfsNumberOf(529, { sysfsRoot })).toThrow("529 looks like a sysfs number: write the chip line 17 instead");
  });

  it("no chips is an error that says what to check", async () => {
    const empty = await tree([]);
    expect(() => sysfsNumberOf(17, { sysfsRoot: empty })).toThrow(
      `no GPIO chips under ${empty}: is this a Linux board with sysfs GPIO enabled?`,
    );
    const missing = join(tmpdir(), "trustpile-no-such-sysfs");
    expect(() => sysfsNumberOf(17, { sysfsRoot: missing })).toThrow(`no GPIO chips under ${missing}`);
  });

  it("chipLabel picks a chip by label or by directory name, and an unknown one lists the chips", async () => {
    const sysfsRoot = await tree([
      { base: 512, ngpio: 54, label: "pinctrl-bcm2711" },
      { base: 570, ngpio: 8, label: "raspberrypi-exp-gpio" },
    ]);
    expect(sysfsNumberOf(2, { sysfsRoot, chipLabel: "raspberrypi-exp-gpio" })).toBe(572);
    expect(sysfsNumberOf(2, { sysfsRoot, chipLabel: "gpiochip570" })).toBe(572);
    expect(() => sysfsNumberOf(8, { sysfsRoot, chipLabel: "gpiochip570" })).toThrow("GPIO line 8 is beyond gpiochip570 (8 lines)");
    expect(() => sysfsNumberOf(2, { sysfsRoot, chipLabel: "pinctrl-rp1" })).toThrow(
      'no GPIO chip labelled or named "pinctrl-rp1" under ' +
        `${sysfsRoot}: expected one of gpiochip512 "pinctrl-bcm2711", gpiochip570 "raspberrypi-exp-gpio"`,
    );
  });

  it("rejects a line that is not a non-negative integer", async () => {
    const sysfsRoot = await tree([bank(0)]);
    expect(() => sysfsNumberOf(-1, { sysfsRoot })).toThrow("GPIO line -1 is not a line number: expected an integer >= 0");
    expect(() => sysfsNumberOf(1.5, { sysfsRoot })).toThrow("GPIO line 1.5 is not a line number");
  });

  it("a chip whose base is not a number is an error naming the file", async () => {
    const sysfsRoot = await tree([bank(0)]);
    const { writeFile } = await import("node:fs/promises");
    await writeFile(join(sysfsRoot, "gpiochip0", "base"), "zero\n");
    expect(() => sysfsNumberOf(1, { sysfsRoot })).toThrow(
      `${join(sysfsRoot, "gpiochip0", "base")}: expected a decimal integer, got "zero"`,
    );
  });

  it("lists chips lowest base first, ignoring other entries", async () => {
    const sysfsRoot = await tree([bank(64), bank(0)]);
    const { writeFile } = await import("node:fs/promises");
    await writeFile(join(sysfsRoot, "export"), "");
    expect(listGpioChips(sysfsRoot).map((c) => [c.name, c.base, c.ngpio, c.label])).toEqual([
      ["gpiochip0", 0, 32, "gpio-0-31"],
      ["gpiochip64", 64, 32, "gpio-64-95"],
    ]);
  });
});

/**
 * From a chip line number (what the config says, BCM numbering on a Raspberry Pi) to the number the sysfs GPIO
 * interface wants. They differ because the kernel numbers sysfs lines globally, chip after chip:
 *   Raspberry Pi OS, kernel >= 6.6   pinctrl-bcm2711/2835 is gpiochip512: BCM 17 is sysfs 529
 *   Raspberry Pi 5                   pinctrl-rp1 sits above the SoC's own brcmstb chips (e.g. gpiochip571: 588)
 *   older kernels                    the main chip is gpiochip0: BCM 17 is sysfs 17
 *   BeagleBone                       four 32-line banks gpiochip0/32/64/96 (or 512/544/576/608 on new kernels)
 *
 * Which chip a line belongs to:
 *   1. `chipLabel`, if given: the chip with that label, or that directory name (`gpiochip512`);
 *   2. else the SoC's main GPIO controller, when a chip carries one of MAIN_GPIO_CONTROLLER_LABELS (rp1 first: on a
 *      Pi 5 the lowest chips are the SoC's brcmstb banks, which do not reach the 40-pin header);
 *   3. else the chips' contiguous numbering from the lowest base: a single-chip board gets `base + line`, and a
 *      BeagleBone gets its documented GPIO numbers (P9_12 is gpio1_28 = 60: bank 1 at base+32, line 28).
 * A line beyond the chosen chip (1, 2) or beyond the contiguous run (3) is an error, never a guess on another chip:
 * driving the wrong pin could close a contactor.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gpioError } from "./errors.ts";

export const DEFAULT_SYSFS_ROOT = "/sys/class/gpio";

/** Labels of the chip that carries the header pins, in order of preference. */
export const MAIN_GPIO_CONTROLLER_LABELS: readonly string[] = Object.freeze([
  "pinctrl-rp1", // Raspberry Pi 5
  "pinctrl-bcm2711", // Raspberry Pi 4, 400, CM4
  "pinctrl-bcm2835", // Raspberry Pi 1-3, Zero
]);

export interface GpioChip {
  /** Directory name under the sysfs root, e.g. `gpiochip512`. */
  name: string;
  /** sysfs number of the chip's line 0. */
  base: number;
  ngpio: number;
  label: string;
}

export interface SysfsLineOptions {
  /** Where the sysfs GPIO class lives; tests point it at a fake tree. Default `/sys/class/gpio`. */
  sysfsRoot?: string;
  /** The chip's label (`pinctrl-bcm2711`) or directory name (`gpiochip512`); overrides the policy above. */
  chipLabel?: string;
}

export interface ResolvedLine {
  sysfsNumber: number;
  chip: GpioChip;
  /** Line on `chip`; equals the configured line except on multi-bank boards (BeagleBone). */
  offset: number;
}

/** The sysfs number of chip line `line` (see the module comment for the policy). */
export function sysfsNumberOf(line: number, options: SysfsLineOptions = {}): number {
  const sysfsRoot = options.sysfsRoot ?? DEFAULT_SYSFS_ROOT;
  return resolveLine(line, listGpioChips(sysfsRoot), { sysfsRoot, chipLabel: options.chipLabel }).sysfsNumber;
}

/** Every `gpiochipN` under `sysfsRoot`, lowest base first. */
export function listGpioChips(sysfsRoot: string = DEFAULT_SYSFS_ROOT): GpioChip[] {
  let names: string[];
  try {
    names = readdirSync(sysfsRoot).filter((name) => /^gpiochip\d+$/.test(name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
      throw gpioError("sysfs", `cannot list ${sysfsRoot}: ${(error as Error).message}`, { cause: error });
    }
    names = [];
  }
  const chips = names.map((name) => readChip(sysfsRoot, name));
  return chips.sort((a, b) => a.base - b.base);
}

/** Pure part of `sysfsNumberOf`, over chips already read. */
export function resolveLine(
  line: number,
  chips: readonly GpioChip[],
  options: { sysfsRoot?: string; chipLabel?: string | undefined } = {},
): ResolvedLine {
  const sysfsRoot = options.sysfsRoot ?? DEFAULT_SYSFS_ROOT;
  if (!Number.isInteger(line) || line < 0) {
    throw gpioError("sysfs", `GPIO line ${line} is not a line number: expected an integer >= 0`);
  }
  if (chips.length === 0) {
    throw gpioError("sysfs", `no GPIO chips under ${sysfsRoot}: is this a Linux board with sysfs GPIO enabled?`);
  }
  const sorted = [...chips].sort((a, b) => a.base - b.base);

  const chosen = options.chipLabel !== undefined ? chipNamed(options.chipLabel, sorted, sysfsRoot) : mainController(sorted);
  if (chosen) {
    if (line >= chosen.ngpio) throw beyondChip(line, chosen);
    return { sysfsNumber: chosen.base + line, chip: chosen, offset: line };
  }

  // Contiguous run from the lowest base: stop at the first gap, where a line number no longer means "base + line".
  const first = sorted[0]!;
  const run: GpioChip[] = [first];
  for (const chip of sorted.slice(1)) {
    const last = run[run.length - 1]!;
    if (chip.base !== last.base + last.ngpio) break;
    run.push(chip);
  }
  const sysfsNumber = first.base + line;
  const chip = run.find((c) => sysfsNumber >= c.base && sysfsNumber < c.base + c.ngpio);
  if (!chip) {
    if (run.length === 1) throw beyondChip(line, first);
    const last = run[run.length - 1]!;
    const lines = last.base + last.ngpio - first.base;
    throw gpioError(
      "sysfs",
      `GPIO line ${line} is beyond ${first.name}..${last.name} (${lines} lines numbered from 0 across the banks): ` +
        `expected a line 0..${lines - 1}`,
    );
  }
  return { sysfsNumber, chip, offset: sysfsNumber - chip.base };
}

function mainController(chips: readonly GpioChip[]): GpioChip | undefined {
  for (const label of MAIN_GPIO_CONTROLLER_LABELS) {
    const chip = chips.find((c) => c.label === label);
    if (chip) return chip;
  }
  return undefined;
}

function chipNamed(wanted: string, chips: readonly GpioChip[], sysfsRoot: string): GpioChip {
  const chip = chips.find((c) => c.label === wanted) ?? chips.find((c) => c.name === wanted);
  if (chip) return chip;
  const available = chips.map((c) => `${c.name} "${c.label}"`).join(", ");
  throw gpioError("sysfs", `no GPIO chip labelled or named "${wanted}" under ${sysfsRoot}: expected one of ${available}`);
}

function beyondChip(line: number, chip: GpioChip): Error {
  // The commonest mistake on kernel >= 6.6: writing the sysfs number (529) where the chip line (17) belongs.
  const hint =
    line >= chip.base && line < chip.base + chip.ngpio
      ? `; ${line} looks like a sysfs number: write the chip line ${line - chip.base} instead`
      : "";
  return gpioError(
    "sysfs",
    `GPIO line ${line} is beyond ${chip.name} (${chip.ngpio} lines): expected a line 0..${chip.ngpio - 1} ` +
      `of "${chip.label}" (the chip's own numbering, BCM on a Raspberry Pi, not the sysfs number)${hint}`,
  );
}

function readChip(sysfsRoot: string, name: string): GpioChip {
  const read = (file: string): string => {
    const path = join(sysfsRoot, name, file);
    try {
      return readFileSync(path, "utf8").trim();
    } catch (error) {
      throw gpioError("sysfs", `cannot read ${path}: ${(error as Error).message}`, { cause: error });
    }
  };
  const integer = (file: string): number => {
    const text = read(file);
    if (!/^\d+$/.test(text)) {
      throw gpioError("sysfs", `${join(sysfsRoot, name, file)}: expected a decimal integer, got "${text}"`);
    }
    return Number(text);
  };
  return { name, base: integer("base"), ngpio: integer("ngpio"), label: read("label") };
}

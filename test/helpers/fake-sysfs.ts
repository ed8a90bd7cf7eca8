/**
 * A fake `/sys/class/gpio` in a temp dir, for the sysfs backend and line resolution.
 *
 * With `kernel: true` a watcher plays the kernel's part of the protocol: a number written to `export` makes
 * `gpioN/` appear (direction "in", value 0, active_low 0, edge none, as a fresh export has), written to `unexport`
 * makes it disappear. What files cannot model: `value` holds the logical level and `active_low` the polarity, so
 * the electrical level is their XOR; and `direction` keeps "high"/"low" as written where the kernel reads back "out"
 * (tests assert on the raw word, which is the point: it sets the electrical level).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FakeChip {
  base: number;
  ngpio: number;
  label: string;
}

export interface FakeSysfs {
  readonly root: string;
  /** Numbers the kernel saw exported / unexported, in order. */
  readonly exported: number[];
  readonly unexported: number[];
  /** The level on the wire: value XOR active_low (after unexport: the level the line was left at). */
  electricalLevel(gpio: number): boolean;
  /** Wires an input high or low: writes `value` as the kernel would show it under the line's active_low. */
  driveElectrical(gpio: number, high: boolean): void;
  /** A file of `gpioN/`, trimmed. */
  file(gpio: number, name: "value" | "direction" | "active_low" | "edge"): string;
  /** Makes `gpioN/` exist as if another program had exported and configured it. */
  preExport(gpio: number, files?: Partial<Record<"value" | "direction" | "active_low" | "edge", string>>): void;
  close(): Promise<void>;
}

/** Just the chips (`gpiochipN/{base,ngpio,label}`), for line resolution tests; returns the root. */
export async function createChipTree(chips: readonly FakeChip[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "trustpile-sysfs-"));
  writeChips(root, chips);
  return root;
}

export async function createFakeSysfs(chips: readonly FakeChip[], options: { kernel?: boolean } = {}): Promise<FakeSysfs> {
  const root = await createChipTree(chips);
  writeFileSync(join(root, "export"), "");
  writeFileSync(join(root, "unexport"), "");
  const exported: number[] = [];
  const unexported: number[] = [];
  const released = new Map<number, boolean>();
  const watchers: FSWatcher[] = [];
  const dirOf = (gpio: number): string => join(root, `gpio${gpio}`);
  const read = (gpio: number, name: string): string => readFileSync(join(dirOf(gpio), name), "utf8").trim();
  const level = (gpio: number): boolean => (read(gpio, "value") === "1") !== (read(gpio, "active_low") === "1");
  const owned = (gpio: number): boolean => chips.some((c) => gpio >= c.base && gpio < c.base + c.ngpio);

  const create = (gpio: number, files: Record<string, string>): void => {
    // Built aside and renamed in, so a reader never sees half a directory (the kernel creates it atomically too).
    const staging = join(root, `.staging-gpio${gpio}`);
    mkdirSync(staging, { recursive: true });
    for (const [name, content] of Object.entries(files)) writeFileSync(join(staging, name), `${content}\n`);
    renameSync(staging, dirOf(gpio));
  };
  const numberIn = (file: string): number | undefined => {
    const text = readFileSync(join(root, file), "utf8").trim();
    return /^\d+$/.test(text) ? Number(text) : undefined; // "" between truncate and write: the write comes next
  };

  if (options.kernel) {
    watchers.push(
      watch(join(root, "export"), () => {
        const gpio = numberIn("export");
        if (gpio === undefined || !owned(gpio) || existsSync(dirOf(gpio))) return;
        create(gpio, { value: "0", direction: "in", active_low: "0", edge: "none" });
        exported.push(gpio);
      }),
      watch(join(root, "unexport"), () => {
        const gpio = numberIn("unexport");
        if (gpio === undefined || !existsSync(dirOf(gpio))) return;
        released.set(gpio, level(gpio));
        rmSync(dirOf(gpio), { recursive: true, force: true });
        unexported.push(gpio);
      }),
    );
  }

  return {
    root,
    exported,
    unexported,
    electricalLevel(gpio) {
      try {
        return level(gpio);
      } catch (error) {
        const last = released.get(gpio);
        if ((error as NodeJS.ErrnoException).code === "ENOENT" && last !== undefined) return last;
        throw error;
      }
    },
    driveElectrical(gpio, high) {
      const activeLow = read(gpio, "active_low") === "1";
      writeFileSync(join(dirOf(gpio), "value"), high !== activeLow ? "1\n" : "0\n");
    },
    file: read,
    preExport(gpio, files = {}) {
      create(gpio, { value: "0", direction: "in", active_low: "0", edge: "none", ...files });
    },
    async close() {
      for (const watcher of watchers) watcher.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

function writeChips(root: string, chips: readonly FakeChip[]): void {
  for (const chip of chips) {
    const dir = join(root, `gpiochip${chip.base}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "base"), `${chip.base}\n`);
    writeFileSync(join(dir, "ngpio"), `${chip.ngpio}\n`);
    writeFileSync(join(dir, "label"), `${chip.label}\n`);
  }
}

/**
 * DigitalOut and DigitalIn on Linux sysfs GPIO through onoff (`gpio.driver: onoff`).
 *
 * Layers: the config's chip line goes through sysfs-lines.ts to a sysfs number; one `OnoffLikeGpio` is opened for
 * it: onoff's `Gpio` on the real `/sys/class/gpio`, or SysfsGpio (sysfs-gpio.ts, same API, plain file I/O) under any
 * other `sysfsRoot`, which is how the tests run this file over a fake tree. Everything here is the same code on both.
 *
 * IMPORTANT, the relay's level at start-up (onoff 6.0.3 and kernel gpiolib-sysfs, read in their sources):
 * - onoff's constructor writes `active_low` first, then `direction` (configureGpio), then opens `value`.
 * - The kernel's `direction` file is electrical: "high" is gpiod_direction_output_raw(1), "out" and "low" are
 *   gpiod_direction_output_raw(0), whatever `active_low` says. The `value` file is logical (active_low applied), and
 *   with active_low the "rising"/"falling" edges are swapped to stay logical.
 * - So `direction: "out"` on an active-low relay drives it electrically low: the relay closes as the agent starts.
 *   An output is therefore opened with the electrically inactive level ("high" when activeLow, else "low"), which
 *   sets direction and level in one step with no glitch, and is then written logical 0 again through `value`.
 * - onoff swallows every configuration error when the GPIO was exported before (exportGpio/configureGpio), e.g. a
 *   `direction` file this user cannot write. The adapter reads `direction` and `active_low` back before it writes a
 *   value, and refuses the line (after driving it electrically inactive under the polarity it actually has) if
 *   either is not what was asked.
 * - onoff's watch callbacks fire on every interrupt, changed or not (a bouncing contact repeats levels); inputs
 *   report a level only when it differs from the last one reported. `debounceMs` is onoff's `debounceTimeout`
 *   (trailing: the level is read once the line has been quiet that long).
 */
import { createRequire } from "node:module";
import { resolve } from "node:path";
import type { BinaryValue, Direction, Edge, ValueCallback } from "onoff";
import { gpioError } from "./errors.ts";
import { openSysfsGpio } from "./sysfs-gpio.ts";
import { DEFAULT_SYSFS_ROOT, sysfsNumberOf, type SysfsLineOptions } from "./sysfs-lines.ts";
import type { DigitalIn, DigitalOut, LineConfig } from "./types.ts";

export const ONOFF_DRIVER = "onoff";

/** The part of onoff's `Gpio` this adapter uses; onoff's class and SysfsGpio both have it. */
export interface OnoffLikeGpio {
  readSync(): BinaryValue;
  writeSync(value: BinaryValue): void;
  watch(callback: ValueCallback): void;
  unwatch(callback?: ValueCallback): void;
  direction(): Direction;
  activeLow(): boolean;
  unexport(): void;
}

export interface OnoffLikeOptions {
  activeLow: boolean;
  debounceTimeout?: number;
}

/** Exports and configures one sysfs GPIO, like `new Gpio(sysfsNumber, direction, edge, options)`. */
export type OpenOnoffLikeGpio = (
  sysfsNumber: number,
  direction: Direction,
  edge: Edge,
  options: OnoffLikeOptions,
) => Promise<OnoffLikeGpio>;

export interface OnoffLineOptions extends SysfsLineOptions {
  /** Inputs: report a level once the line has been quiet this long, ms (onoff's debounceTimeout). Default 0. */
  debounceMs?: number;
  /** SysfsGpio (a non-default `sysfsRoot`): how long to wait for `gpioN/` after export, ms. Default 1000. */
  exportTimeoutMs?: number;
  /** Opens the sysfs GPIO; default onoff on /sys/class/gpio, SysfsGpio under any other `sysfsRoot`. */
  openLine?: OpenOnoffLikeGpio;
}

/** The line as an output, electrically inactive from the moment it is driven (see the module comment). */
export async function openOnoffOutput(config: LineConfig, options: OnoffLineOptions = {}): Promise<DigitalOut> {
  const activeLow = config.activeLow ?? false;
  const sysfsNumber = sysfsNumberOf(config.line, options);
  const where = `line ${config.line} (sysfs GPIO ${sysfsNumber})`;
  const gpio = await lineOpener(options)(sysfsNumber, activeLow ? "high" : "low", "none", { activeLow });
  try {
    checkConfigured(gpio, where, "out", activeLow);
    gpio.writeSync(0);
    if (gpio.readSync() !== 0) throw gpioError(ONOFF_DRIVER, `${where} reads active right after being driven inactive`);
  } catch (error) {
    gpio.unexport();
    throw error;
  }

  let closed = false;
  const ensureOpen = (): void => {
    if (closed) throw gpioError(ONOFF_DRIVER, `${where} is closed`);
  };
  return {
    line: config.line,
    async write(active: boolean): Promise<void> {
      ensureOpen();
      gpio.writeSync(active ? 1 : 0);
    },
    async read(): Promise<boolean> {
      ensureOpen();
      return gpio.readSync() === 1;
    },
    // Leaves the line driven inactive: whoever closes an output (shutdown, a crash path) must not leave a relay on.
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      try {
        gpio.writeSync(0);
      } finally {
        gpio.unexport();
      }
    },
  };
}

/** The line as an input watching both edges; listeners get logical levels, each change once. */
export async function openOnoffInput(config: LineConfig, options: OnoffLineOptions = {}): Promise<DigitalIn> {
  const activeLow = config.activeLow ?? false;
  const sysfsNumber = sysfsNumberOf(config.line, options);
  const where = `line ${config.line} (sysfs GPIO ${sysfsNumber})`;
  const debounceMs = options.debounceMs ?? 0;
  if (!Number.isFinite(debounceMs) || debounceMs < 0) {
    throw gpioError(ONOFF_DRIVER, `debounceMs for ${where}: expected ms >= 0, got ${debounceMs}`);
  }
  const gpio = await lineOpener(options)(sysfsNumber, "in", "both", {
    activeLow,
    ...(debounceMs > 0 ? { debounceTimeout: debounceMs } : {}),
  });
  try {
    checkConfigured(gpio, where, "in", activeLow);
  } catch (error) {
    gpio.unexport();
    throw error;
  }

  let closed = false;
  let lastReported: boolean | undefined;
  // A Set of wrappers, not of listeners: the same function subscribed twice is two subscriptions.
  const subscriptions = new Set<{ listener: (active: boolean) => void }>();
  const onEdge: ValueCallback = (error, value) => {
    if (error) return; // no level to report; the next edge (or a read) gives the truth
    const active = value === 1;
    if (active === lastReported) return;
    lastReported = active;
    for (const subscription of [...subscriptions]) {
      if (subscriptions.has(subscription)) subscription.listener(active);
    }
  };
  const ensureOpen = (): void => {
    if (closed) throw gpioError(ONOFF_DRIVER, `${where} is closed`);
  };

  return {
    line: config.line,
    async read(): Promise<boolean> {
      ensureOpen();
      return gpio.readSync() === 1;
    },
    watch(listener: (active: boolean) => void): () => void {
      ensureOpen();
      const subscription = { listener };
      subscriptions.add(subscription);
      if (subscriptions.size === 1) {
        lastReported = gpio.readSync() === 1;
        gpio.watch(onEdge);
      }
      return () => {
        if (!subscriptions.delete(subscription)) return;
        if (subscriptions.size === 0 && !closed) gpio.unwatch(onEdge);
      };
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      subscriptions.clear();
      gpio.unexport();
    },
  };
}

/**
 * Refuses a line whose direction or polarity is not what was asked (onoff ignores such errors on an already
 * exported GPIO). An output is first driven to its electrically inactive level under the polarity it really has.
 */
function checkConfigured(gpio: OnoffLikeGpio, where: string, direction: "in" | "out", activeLow: boolean): void {
  const actualDirection = gpio.direction();
  const actualActiveLow = gpio.activeLow();
  // The kernel reads back "in" or "out"; a fake tree keeps "high"/"low" as written, which are outputs too.
  const isOutput = actualDirection !== "in";
  if (direction === "out" && isOutput && actualActiveLow !== activeLow) {
    // Under the opposite polarity from the one configured, logical 1 is the electrically inactive level.
    gpio.writeSync(1);
  }
  if (isOutput !== (direction === "out")) {
    throw gpioError(
      ONOFF_DRIVER,
      `${where}: direction reads "${actualDirection}" after configuring it as ${direction === "out" ? "an output" : "an input"}: ` +
        "it was exported before and its direction file is not writable by this user, or another program holds it",
    );
  }
  if (actualActiveLow !== activeLow) {
    throw gpioError(
      ONOFF_DRIVER,
      `${where}: active_low reads ${actualActiveLow ? 1 : 0} after configuring ${activeLow ? 1 : 0}: ` +
        "it was exported before and its active_low file is not writable by this user, or another program holds it",
    );
  }
}

function lineOpener(options: OnoffLineOptions): OpenOnoffLikeGpio {
  if (options.openLine) return options.openLine;
  const sysfsRoot = options.sysfsRoot ?? DEFAULT_SYSFS_ROOT;
  if (resolve(sysfsRoot) === DEFAULT_SYSFS_ROOT) return openWithOnoff;
  return (sysfsNumber, direction, edge, lineOptions) =>
    openSysfsGpio(sysfsNumber, direction, edge, {
      ...lineOptions,
      sysfsRoot,
      ...(options.exportTimeoutMs !== undefined ? { exportTimeoutMs: options.exportTimeoutMs } : {}),
    });
}

// Loaded on first use: onoff loads the native epoll addon, which a machine running only `gpio.driver: sim` may lack.
const require = createRequire(import.meta.url);

async function openWithOnoff(
  sysfsNumber: number,
  direction: Direction,
  edge: Edge,
  options: OnoffLikeOptions,
): Promise<OnoffLikeGpio> {
  let onoff: typeof import("onoff");
  try {
    onoff = require("onoff") as typeof import("onoff");
  } catch (error) {
    throw gpioError(
      ONOFF_DRIVER,
      `cannot load onoff: ${(error as Error).message} (its epoll addon must be built for this Node on Linux: npm rebuild epoll)`,
      { cause: error },
    );
  }
  if (!onoff.Gpio.accessible) {
    throw gpioError(
      ONOFF_DRIVER,
      `cannot write ${DEFAULT_SYSFS_ROOT}/export: run as a member of the gpio group on a kernel with sysfs GPIO (CONFIG_GPIO_SYSFS)`,
    );
  }
  try {
    return new onoff.Gpio(sysfsNumber, direction, edge, options);
  } catch (error) {
    throw gpioError(ONOFF_DRIVER, `cannot open sysfs GPIO ${sysfsNumber}: ${(error as Error).message}`, { cause: error });
  }
}

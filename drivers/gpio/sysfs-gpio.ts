/**
 * The sysfs GPIO protocol in plain file I/O, under any root: export, wait for `gpioN/`, write `active_low`,
 * `direction` and `edge`, then read and write `value`; edges are seen with fs.watch (inotify) on `value`.
 *
 * Why this exists next to onoff: onoff hard-codes `/sys/class/gpio/`, so it cannot be pointed at a fake tree. This
 * class speaks the subset of onoff's `Gpio` API the adapter in onoff.ts uses (`OnoffLikeGpio`), so the adapter (line
 * resolution, initial level, polarity checks, edge dedup, close) runs unchanged over a fake tree in tests, or over
 * any sysfs mounted elsewhere. On the real `/sys/class/gpio` the adapter uses onoff itself: its epoll(POLLPRI)
 * interrupts are the documented way to wait for sysfs edges, while inotify on sysfs attributes depends on the
 * kernel's sysfs_notify also raising fsnotify events.
 *
 * Deliberate differences from onoff: configuration errors always throw (onoff ignores them when the GPIO was already
 * exported), waiting for udev permissions does not block the event loop, and nothing native is loaded.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, watch, writeFileSync, writeSync } from "node:fs";
import type { FSWatcher } from "node:fs";
import { join } from "node:path";
import type { BinaryValue, Direction, Edge, ValueCallback } from "onoff";
import { gpioError } from "./errors.ts";
import type { OnoffLikeGpio, OnoffLikeOptions } from "./onoff.ts";

export interface SysfsGpioOptions extends OnoffLikeOptions {
  sysfsRoot: string;
  /** How long to wait for `gpioN/` (and udev's permission change) after export, ms. Default 1000. */
  exportTimeoutMs?: number;
}

const POLL_EXPORT_MS = 5;

/** Exports (unless already exported) and configures sysfs GPIO `gpio`, like `new Gpio(gpio, direction, edge, options)`. */
export async function openSysfsGpio(
  gpio: number,
  direction: Direction,
  edge: Edge,
  options: SysfsGpioOptions,
): Promise<SysfsGpio> {
  const root = options.sysfsRoot;
  const dir = join(root, `gpio${gpio}`);
  const previouslyExported = existsSync(dir);
  if (!previouslyExported) {
    try {
      writeFileSync(join(root, "export"), String(gpio));
    } catch (error) {
      throw gpioError(
        "sysfs",
        `cannot export GPIO ${gpio} by writing ${join(root, "export")}: ${(error as Error).message} ` +
          "(EBUSY: a kernel driver or another program holds the line; EACCES: run as a member of the gpio group)",
        { cause: error },
      );
    }
  }
  try {
    const needed = ["value", "direction", "active_low", ...(direction === "in" && edge !== "none" ? ["edge"] : [])];
    await waitUntilWritable(
      needed.map((file) => join(dir, file)),
      options.exportTimeoutMs ?? 1000,
      gpio,
    );
    writeFileSync(join(dir, "active_low"), options.activeLow ? "1" : "0");
    writeFileSync(join(dir, "direction"), direction);
    if (direction === "in" && edge !== "none") writeFileSync(join(dir, "edge"), edge);
    return new SysfsGpio(gpio, root, openSync(join(dir, "value"), "r+"), options.debounceTimeout ?? 0);
  } catch (error) {
    if (!previouslyExported) unexportQuietly(root, gpio);
    if ((error as Error).name === "GpioError") throw error;
    throw gpioError("sysfs", `cannot configure GPIO ${gpio} under ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

export class SysfsGpio implements OnoffLikeGpio {
  readonly gpio: number;
  readonly #root: string;
  readonly #dir: string;
  readonly #valueFd: number;
  readonly #debounceMs: number;
  readonly #buffer = Buffer.alloc(16);
  #listeners: ValueCallback[] = [];
  #watcher: FSWatcher | undefined;
  #debounceTimer: NodeJS.Timeout | undefined;
  #unexported = false;

  constructor(gpio: number, root: string, valueFd: number, debounceMs: number) {
    this.gpio = gpio;
    this.#root = root;
    this.#dir = join(root, `gpio${gpio}`);
    this.#valueFd = valueFd;
    this.#debounceMs = debounceMs;
  }

  readSync(): BinaryValue {
    const bytes = readSync(this.#valueFd, this.#buffer, 0, this.#buffer.length, 0);
    const text = this.#buffer.subarray(0, bytes).toString("utf8").trim();
    if (text === "1") return 1;
    if (text === "0") return 0;
    throw gpioError("sysfs", `${join(this.#dir, "value")} reads "${text}": expected 0 or 1`);
  }

  writeSync(value: BinaryValue): void {
    writeSync(this.#valueFd, value === 1 ? "1" : "0", 0);
  }

  /** Like onoff: `callback` runs on every value event (after `debounceTimeout` of quiet), changed or not. */
  watch(callback: ValueCallback): void {
    this.#listeners.push(callback);
    if (this.#listeners.length === 1) {
      this.#watcher = watch(join(this.#dir, "value"), () => this.#onEvent());
      this.#watcher.on("error", (error) => {
        for (const listener of [...this.#listeners]) listener(error, 0);
      });
    }
  }

  unwatch(callback?: ValueCallback): void {
    this.#listeners = callback === undefined ? [] : this.#listeners.filter((l) => l !== callback);
    if (this.#listeners.length === 0) {
      this.#watcher?.close();
      this.#watcher = undefined;
      clearTimeout(this.#debounceTimer);
      this.#debounceTimer = undefined;
    }
  }

  unwatchAll(): void {
    this.unwatch();
  }

  direction(): Direction {
    return readFileSync(join(this.#dir, "direction"), "utf8").trim() as Direction;
  }

  activeLow(): boolean {
    return readFileSync(join(this.#dir, "active_low"), "utf8").trim() === "1";
  }

  unexport(): void {
    if (this.#unexported) return;
    this.#unexported = true;
    this.unwatchAll();
    closeSync(this.#valueFd);
    unexportQuietly(this.#root, this.gpio);
  }

  #onEvent(): void {
    if (this.#debounceMs <= 0) {
      this.#emit();
      return;
    }
    clearTimeout(this.#debounceTimer);
    this.#debounceTimer = setTimeout(() => {
      this.#debounceTimer = undefined;
      this.#emit();
    }, this.#debounceMs);
  }

  #emit(): void {
    if (this.#listeners.length === 0) return;
    let value: BinaryValue;
    try {
      value = this.readSync();
    } catch {
      return; // caught the file between truncate and write; the write raises its own event
    }
    for (const listener of [...this.#listeners]) listener(null, value);
  }
}

// Like onoff, unexport errors are not errors: on a BeagleBone with cape_universal the kernel refuses every unexport.
function unexportQuietly(root: string, gpio: number): void {
  try {
    writeFileSync(join(root, "unexport"), String(gpio));
  } catch {
    // nothing to undo
  }
}

async function waitUntilWritable(paths: readonly string[], timeoutMs: number, gpio: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const path of paths) {
    for (;;) {
      try {
        closeSync(openSync(path, "r+"));
        break;
      } catch (error) {
        if (Date.now() >= deadline) {
          throw gpioError(
            "sysfs",
            `GPIO ${gpio}: ${path} was not there and writable within ${timeoutMs} ms of export ` +
              `(${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): ` +
              "check that this user may write sysfs GPIO (group gpio, udev rules)",
            { cause: error },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_EXPORT_MS));
      }
    }
  }
}

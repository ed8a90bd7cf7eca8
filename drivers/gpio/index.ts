/**
 * The pile's digital lines from `gpio` config (DESIGN §5.2): the contactor relay output, and optionally the feedback
 * (mirror) contact and EV-present inputs. The relay is opened first and driven inactive (contactor open) before
 * anything else happens; on any failure to open, lines already open are closed again, so a half-opened set never
 * leaves a relay behind.
 *
 * `GpioConfig` is structural so drivers/ need not import the agent's config (dependency direction, DESIGN §2); the
 * agent's `Config["gpio"]` is assignable to it.
 */
import { gpioError } from "./errors.ts";
import { openOnoffInput, openOnoffOutput, type OnoffLineOptions } from "./onoff.ts";
import { DEFAULT_SIM_RELAY_LINE, type SimGpio } from "./sim.ts";
import type { DigitalIn, DigitalOut, LineConfig } from "./types.ts";

export { DEFAULT_SIM_RELAY_LINE } from "./sim.ts";
export type { DigitalIn, DigitalOut, LineConfig } from "./types.ts";

/**
 * Contactor auxiliary contacts and plug switches bounce for a few ms; 10 ms hides that and stays far below
 * `gpio.feedbackTimeoutMs` (default 500), which judges the contactor.
 */
export const DEFAULT_INPUT_DEBOUNCE_MS = 10;

export interface GpioConfig {
  driver: "onoff" | "sim";
  /** Required for `onoff`; `sim` falls back to DEFAULT_SIM_RELAY_LINE (17). */
  relay?: LineConfig | undefined;
  feedback?: LineConfig | undefined;
  evPresent?: LineConfig | undefined;
}

export interface GpioLines {
  relay: DigitalOut;
  feedback?: DigitalIn;
  evPresent?: DigitalIn;
  /** Closes every line, relay first (left inactive); safe to call more than once. */
  close(): Promise<void>;
}

export interface OpenGpioOptions {
  /** The in-process simulator; required by `gpio.driver: sim`. */
  sim?: SimGpio;
  /** `onoff` only: the sysfs GPIO root. Default `/sys/class/gpio`. */
  sysfsRoot?: string;
  /** `onoff` only: chip label or name the lines are on (see sysfs-lines.ts for the default policy). */
  chipLabel?: string;
  /** `onoff` inputs: debounce, ms. Default DEFAULT_INPUT_DEBOUNCE_MS. */
  debounceMs?: number;
  /** `onoff` under a non-default sysfsRoot: wait for `gpioN/` after export, ms. */
  exportTimeoutMs?: number;
}

export async function openGpio(config: GpioConfig, options: OpenGpioOptions = {}): Promise<GpioLines> {
  const backend = backendFor(config, options);
  const opened: Array<DigitalOut | DigitalIn> = [];
  try {
    const relay = await backend.output(backend.relayConfig);
    opened.push(relay);
    const feedback = config.feedback ? await backend.input(config.feedback) : undefined;
    if (feedback) opened.push(feedback);
    const evPresent = config.evPresent ? await backend.input(config.evPresent) : undefined;
    if (evPresent) opened.push(evPresent);

    let closing: Promise<void> | undefined;
    return {
      relay,
      ...(feedback ? { feedback } : {}),
      ...(evPresent ? { evPresent } : {}),
      close: () => (closing ??= closeAll(opened)),
    };
  } catch (error) {
    await closeAll(opened).catch(() => undefined);
    throw error;
  }
}

interface Backend {
  relayConfig: LineConfig;
  output(config: LineConfig): Promise<DigitalOut>;
  input(config: LineConfig): Promise<DigitalIn>;
}

function backendFor(config: GpioConfig, options: OpenGpioOptions): Backend {
  if (config.driver === "sim") {
    const sim = options.sim;
    if (!sim) {
      throw gpioError(
        "gpio",
        "gpio.driver is sim but no simulator was given: pass `sim` (createSimGpio(), shared with hw-sim), or set gpio.driver: onoff",
      );
    }
    return {
      relayConfig: config.relay ?? { line: DEFAULT_SIM_RELAY_LINE, activeLow: false },
      output: async (line) => sim.openOutput(line),
      input: async (line) => sim.openInput(line),
    };
  }
  if (config.driver === "onoff") {
    if (!config.relay) throw gpioError("gpio", "gpio.relay.line: required with gpio.driver onoff, missing");
    const lineOptions: OnoffLineOptions = {
      ...(options.sysfsRoot !== undefined ? { sysfsRoot: options.sysfsRoot } : {}),
      ...(options.chipLabel !== undefined ? { chipLabel: options.chipLabel } : {}),
      ...(options.exportTimeoutMs !== undefined ? { exportTimeoutMs: options.exportTimeoutMs } : {}),
    };
    const debounceMs = options.debounceMs ?? DEFAULT_INPUT_DEBOUNCE_MS;
    return {
      relayConfig: config.relay,
      output: (line) => openOnoffOutput(line, lineOptions),
      input: (line) => openOnoffInput(line, { ...lineOptions, debounceMs }),
    };
  }
  throw gpioError("gpio", `gpio.driver: expected one of onoff, sim, got ${JSON.stringify(config.driver)}`);
}

/** Closes in order (the relay was opened first, so it is closed first); every line is tried, the first error thrown. */
async function closeAll(lines: ReadonlyArray<DigitalOut | DigitalIn>): Promise<void> {
  const errors: unknown[] = [];
  for (const line of lines) {
    try {
      await line.close();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `[trustpile] [gpio] ${errors.length} lines failed to close`);
}

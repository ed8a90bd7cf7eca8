/**
 * GPIO inside the process (`gpio.driver: sim`): the agent opens lines as on a board, and hw-sim plays the wiring,
 * driving inputs and watching outputs by their electrical levels. `activeLow` sits between the two sides exactly as
 * the kernel puts it on hardware, so a test can check the wiring polarity an installer will meet.
 *
 * Timing follows hardware where it matters to the agent: an input's watch listeners never run inside the call that
 * changed the level (they run in a microtask, in order, one per change), so a relay write cannot re-enter the agent
 * through a simulated feedback contact. Output listeners (the simulator's side) run synchronously.
 */
import { gpioError } from "./errors.ts";
import type { DigitalIn, DigitalOut, LineConfig } from "./types.ts";

export const SIM_DRIVER = "sim";

/** The relay line `gpio.driver: sim` uses when the config has no `gpio.relay` (BCM 17, the example config's). */
export const DEFAULT_SIM_RELAY_LINE = 17;

export interface SimGpio {
  /** Agent side: opens `config.line` as an output, driven inactive. */
  openOutput(config: LineConfig): DigitalOut;
  /** Agent side: opens `config.line` as an input. */
  openInput(config: LineConfig): DigitalIn;
  /** Simulator side: the electrical level wired to an input (low until first driven; may precede the agent's open). */
  driveInput(line: number, electricalHigh: boolean): void;
  /**
   * Simulator side: the electrical level on an output line. Before the agent first opens it, nothing drives it and it
   * reads low, like a Raspberry Pi line with its default pull-down (an active-low relay wired that way is energized
   * while the agent is down: the simulator shows that); after the agent closes it, it stays at the inactive level.
   */
  outputLevel(line: number): boolean;
  /**
   * Simulator side: `listener` gets the output's electrical level on every change (from the undriven low level too,
   * so an active-low output reports `true` when the agent opens it). May be called before the agent opens the line.
   * Returns a function that stops listening.
   */
  onOutputChange(line: number, listener: (electricalHigh: boolean) => void): () => void;
}

interface OutputState {
  electricalHigh: boolean;
  readonly listeners: Set<{ listener: (electricalHigh: boolean) => void }>;
}

interface InputState {
  electricalHigh: boolean;
  /** The agent's open DigitalIn's subscriptions, with its polarity; undefined while no DigitalIn is open. */
  open: { activeLow: boolean; subscriptions: Set<{ listener: (active: boolean) => void }> } | undefined;
}

export function createSimGpio(): SimGpio {
  const openAs = new Map<number, "output" | "input">();
  const outputs = new Map<number, OutputState>();
  const inputs = new Map<number, InputState>();

  const outputState = (line: number): OutputState => {
    let state = outputs.get(line);
    if (!state) {
      state = { electricalHigh: false, listeners: new Set() };
      outputs.set(line, state);
    }
    return state;
  };
  const inputState = (line: number): InputState => {
    let state = inputs.get(line);
    if (!state) {
      state = { electricalHigh: false, open: undefined };
      inputs.set(line, state);
    }
    return state;
  };
  const drive = (line: number, electricalHigh: boolean): void => {
    const state = outputState(line);
    if (state.electricalHigh === electricalHigh) return;
    state.electricalHigh = electricalHigh;
    for (const subscription of [...state.listeners]) subscription.listener(electricalHigh);
  };
  const claim = (line: number, as: "output" | "input"): void => {
    checkLine(line);
    const current = openAs.get(line);
    if (current !== undefined) throw gpioError(SIM_DRIVER, `line ${line} is already open as an ${current}: close it first`);
    openAs.set(line, as);
  };

  return {
    openOutput(config: LineConfig): DigitalOut {
      const { line } = config;
      const activeLow = config.activeLow ?? false;
      claim(line, "output");
      const electricalOf = (active: boolean): boolean => active !== activeLow;
      let active = false;
      let closed = false;
      drive(line, electricalOf(false));
      const ensureOpen = (): void => {
        if (closed) throw gpioError(SIM_DRIVER, `line ${line} is closed`);
      };
      return {
        line,
        async write(next: boolean): Promise<void> {
          ensureOpen();
          active = next;
          drive(line, electricalOf(next));
        },
        async read(): Promise<boolean> {
          ensureOpen();
          return active;
        },
        // Leaves the line driven inactive, as the hardware backend does: a closed output must not hold a relay on.
        async close(): Promise<void> {
          if (closed) return;
          closed = true;
          active = false;
          drive(line, electricalOf(false));
          openAs.delete(line);
        },
      };
    },

    openInput(config: LineConfig): DigitalIn {
      const { line } = config;
      const activeLow = config.activeLow ?? false;
      claim(line, "input");
      const state = inputState(line);
      const open = { activeLow, subscriptions: new Set<{ listener: (active: boolean) => void }>() };
      state.open = open;
      let closed = false;
      const ensureOpen = (): void => {
        if (closed) throw gpioError(SIM_DRIVER, `line ${line} is closed`);
      };
      return {
        line,
        async read(): Promise<boolean> {
          ensureOpen();
          return state.electricalHigh !== activeLow;
        },
        watch(listener: (active: boolean) => void): () => void {
          ensureOpen();
          const subscription = { listener };
          open.subscriptions.add(subscription);
          return () => void open.subscriptions.delete(subscription);
        },
        async close(): Promise<void> {
          if (closed) return;
          closed = true;
          open.subscriptions.clear();
          if (state.open === open) state.open = undefined;
          openAs.delete(line);
        },
      };
    },

    driveInput(line: number, electricalHigh: boolean): void {
      checkLine(line);
      if (openAs.get(line) === "output") {
        throw gpioError(SIM_DRIVER, `line ${line} is open as an output: driveInput drives inputs only`);
      }
      const state = inputState(line);
      if (state.electricalHigh === electricalHigh) return;
      state.electricalHigh = electricalHigh;
      const open = state.open;
      if (!open) return;
      const active = electricalHigh !== open.activeLow;
      for (const subscription of [...open.subscriptions]) {
        queueMicrotask(() => {
          if (open.subscriptions.has(subscription)) subscription.listener(active);
        });
      }
    },

    outputLevel(line: number): boolean {
      checkLine(line);
      return outputs.get(line)?.electricalHigh ?? false;
    },

    onOutputChange(line: number, listener: (electricalHigh: boolean) => void): () => void {
      checkLine(line);
      const state = outputState(line);
      const subscription = { listener };
      state.listeners.add(subscription);
      return () => void state.listeners.delete(subscription);
    },
  };
}

function checkLine(line: number): void {
  if (!Number.isInteger(line) || line < 0) {
    throw gpioError(SIM_DRIVER, `line ${line} is not a line number: expected an integer >= 0`);
  }
}

/**
 * The simulated pile wiring: EV, contactor and meter physics, connected to the sim GPIO the way the real parts are
 * connected to the controller's header.
 *   relay line (output)     the agent drives it; its electrical level energizes the contactor coil
 *   feedback line (input)   the contactor's mirror contact
 *   evPresent line (input)  follows "EV plugged" (a pilot-sensing board's "state B or C")
 * Levels on the wire are electrical; `activeLow` per line is the same as the config's `gpio` section, so a config's
 * wiring and the board's agree when both use the same numbers (defaults: relay 17, feedback 27, evPresent 22).
 *
 * The board also holds the fault switches the Modbus server reads (`modbusFaults`) and the physical faults
 * (welded contactor, energy register reset), behind one `faults` object for tests and the control endpoint.
 */
import type { SimGpio } from "../drivers/gpio/sim.ts";
import type { LineConfig } from "../drivers/gpio/types.ts";
import type { MeterModel } from "../drivers/meters/model.ts";
import { sdm630 } from "../drivers/meters/models/sdm630.ts";
import type { MeterSample } from "../drivers/meters/types.ts";
import { realClock, type Clock } from "./clock.ts";
import { EvModel, type EvOptions, type EvState } from "./ev.ts";
import { MeterPhysics, type MeterPhysicsOptions } from "./meter-physics.ts";
import { createModbusFaults, type ModbusFaults } from "./modbus/index.ts";
import { Relay, type RelayFault, type RelayOptions, type RelayState } from "./relay.ts";

export const DEFAULT_LINES: Readonly<{ relay: LineConfig; feedback: LineConfig; evPresent: LineConfig }> = Object.freeze({
  relay: Object.freeze({ line: 17, activeLow: false }),
  feedback: Object.freeze({ line: 27, activeLow: false }),
  evPresent: Object.freeze({ line: 22, activeLow: false }),
});

/**
 * The wiring, read as the config's `gpio` section is (a config's `gpio` object can be passed as is): a missing
 * `feedback` or `evPresent` is a pile without that input, and the board leaves the line alone; a missing `relay` is
 * line 17, as `gpio.driver: sim` uses. Without any `lines` option the board is wired like the example config.
 */
export interface SimBoardLines {
  relay?: LineConfig | undefined;
  feedback?: LineConfig | null | undefined;
  evPresent?: LineConfig | null | undefined;
}

export interface SimBoardOptions {
  gpio: SimGpio;
  clock?: Clock;
  /** The meter's register table; its phase count is the supply's. Default SDM630 (three-phase). */
  meterModel?: MeterModel;
  lines?: SimBoardLines;
  ev?: EvOptions;
  relay?: RelayOptions;
  meter?: Omit<MeterPhysicsOptions, "phases">;
  /** Shared with the Modbus server(s); created here when not given. */
  modbusFaults?: ModbusFaults;
}

/** Faults in force, as plain JSON (`meterException: null` when the meter answers normally). */
export interface ActiveFaults {
  meterOffline: boolean;
  meterReplyDelayMs: number;
  meterCrcErrors: boolean;
  meterException: number | null;
  relay: RelayFault;
}

export interface BoardFaults {
  /** The meter stops answering (a cut RS-485 pair, a dead meter). */
  meterOffline(on: boolean): void;
  /** Every meter reply waits this long, ms (a slow meter; beyond meter.timeoutMs it is a timeout). */
  meterReplyDelayMs(ms: number): void;
  /** Meter replies carry a wrong CRC (RTU; on TCP the reply is corrupted the same way). */
  meterCrcErrors(on: boolean): void;
  /** The meter answers every request with this Modbus exception code; `undefined` ends it. */
  meterException(code: number | undefined): void;
  /** One-shot: the import register jumps to 0. */
  meterEnergyReset(): void;
  relayWeld(): void;
  relayFailToClose(): void;
  /** Ends every lasting fault (the energy register stays where it is). */
  clear(): void;
  active(): ActiveFaults;
}

export interface MeterState extends Omit<MeterSample, "readAtMs"> {
  model: string;
}

export interface BoardState {
  /** Clock time of this snapshot, ms. */
  atMs: number;
  ev: EvState;
  relay: RelayState;
  meter: MeterState;
  faults: ActiveFaults;
}

export interface SimBoard {
  readonly clock: Clock;
  readonly gpio: SimGpio;
  readonly meterModel: MeterModel;
  readonly ev: EvModel;
  readonly relay: Relay;
  readonly meter: MeterPhysics;
  readonly modbusFaults: ModbusFaults;
  readonly faults: BoardFaults;
  readonly lines: Readonly<{ relay: LineConfig; feedback: LineConfig | null; evPresent: LineConfig | null }>;
  /** What the meter's registers hold now (integrates energy up to now first). */
  meterValues(): Omit<MeterSample, "readAtMs">;
  /** Everything at once, current to the clock's now. */
  state(): BoardState;
  /** Unwires the board from the GPIO and cancels pending contact movements. */
  close(): void;
}

function checkMs(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name}: expected an integer ms >= 0, got ${value}`);
  return value;
}

function checkExceptionCode(code: number | undefined): number | undefined {
  if (code === undefined) return undefined;
  if (!Number.isInteger(code) || code < 1 || code > 255) {
    throw new RangeError(`meterException: expected a Modbus exception code 1..255, got ${code}`);
  }
  return code;
}

function wiringOf(given: SimBoardLines | undefined): SimBoard["lines"] {
  if (!given) return DEFAULT_LINES;
  const lines = {
    relay: given.relay ?? DEFAULT_LINES.relay,
    feedback: given.feedback ?? null,
    evPresent: given.evPresent ?? null,
  };
  // One line in two roles would feed the relay's own output back as feedback or EV presence.
  const seen = new Map<number, string>();
  for (const [role, line] of Object.entries(lines)) {
    if (!line) continue;
    const other = seen.get(line.line);
    if (other !== undefined) {
      throw new RangeError(`lines.${role}.line: expected a line distinct from lines.${other}.line, got ${line.line} for both`);
    }
    seen.set(line.line, role);
  }
  return lines;
}

export function createSimBoard(options: SimBoardOptions): SimBoard {
  const clock = options.clock ?? realClock;
  const { gpio } = options;
  const meterModel = options.meterModel ?? sdm630;
  const lines = wiringOf(options.lines);
  const evOptions = options.ev ?? {};
  // An EV's charger cannot use phases the supply does not have: a three-phase car on a single-phase meter draws L1 only.
  const ev = new EvModel(clock, { ...evOptions, phases: Math.min(evOptions.phases ?? 3, meterModel.phases) as 1 | 2 | 3 });
  const relay = new Relay(clock, options.relay);
  const meter = new MeterPhysics(clock, relay, ev, { ...options.meter, phases: meterModel.phases });
  const modbusFaults = options.modbusFaults ?? createModbusFaults();

  const electrical = (active: boolean, line: LineConfig): boolean => active !== (line.activeLow ?? false);
  const unwire: (() => void)[] = [];

  unwire.push(gpio.onOutputChange(lines.relay.line, (high) => relay.command(electrical(high, lines.relay))));
  relay.command(electrical(gpio.outputLevel(lines.relay.line), lines.relay));

  const { feedback, evPresent } = lines;
  if (feedback) {
    const drive = (): void => gpio.driveInput(feedback.line, electrical(relay.feedbackClosed(), feedback));
    drive();
    unwire.push(relay.onChange(drive));
  }
  if (evPresent) {
    const drive = (): void => gpio.driveInput(evPresent.line, electrical(ev.plugged, evPresent));
    drive();
    unwire.push(ev.onChange(drive));
  }

  const active = (): ActiveFaults => ({
    meterOffline: modbusFaults.offline,
    meterReplyDelayMs: modbusFaults.replyDelayMs,
    meterCrcErrors: modbusFaults.corruptCrc,
    meterException: modbusFaults.exceptionCode ?? null,
    relay: relay.fault,
  });

  const faults: BoardFaults = {
    meterOffline: (on) => {
      modbusFaults.offline = on;
    },
    meterReplyDelayMs: (ms) => {
      modbusFaults.replyDelayMs = checkMs("meterReplyDelayMs", ms);
    },
    meterCrcErrors: (on) => {
      modbusFaults.corruptCrc = on;
    },
    meterException: (code) => {
      const checked = checkExceptionCode(code);
      if (checked === undefined) delete modbusFaults.exceptionCode;
      else modbusFaults.exceptionCode = checked;
    },
    meterEnergyReset: () => meter.resetEnergyRegister(),
    relayWeld: () => relay.weld(),
    relayFailToClose: () => relay.failToClose(),
    clear: () => {
      modbusFaults.offline = false;
      modbusFaults.replyDelayMs = 0;
      modbusFaults.corruptCrc = false;
      delete modbusFaults.exceptionCode;
      relay.clearFaults();
    },
    active,
  };

  const meterValues = (): Omit<MeterSample, "readAtMs"> => meter.values();

  return {
    clock,
    gpio,
    meterModel,
    ev,
    relay,
    meter,
    modbusFaults,
    faults,
    lines,
    meterValues,
    state: () => {
      // Values first: integrating up to now also brings the EV's state of charge up to date.
      const values = meterValues();
      return {
        atMs: clock.nowMs(),
        ev: ev.state(),
        relay: relay.state(),
        meter: { model: meterModel.name, ...values },
        faults: active(),
      };
    },
    close: () => {
      for (const stop of unwire.splice(0)) stop();
      relay.dispose();
      meter.dispose();
    },
  };
}

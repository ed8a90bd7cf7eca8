/**
 * hw-sim as one unit: the simulated board (EV, contactor, meter physics on the sim GPIO), its meter as a real Modbus
 * slave (TCP always, RTU on a serial device when asked), the control endpoint and, when asked, the CSMS simulator.
 * `trustpile hw-sim` runs it alone; tests, `selftest` and `trustpile sim` run it in-process, sharing the SimGpio with
 * the agent.
 */
import { createSimGpio, type SimGpio } from "../drivers/gpio/sim.ts";
import type { MeterModel } from "../drivers/meters/model.ts";
import { meterModel as meterModelByName, type MeterModelName } from "../drivers/meters/models/index.ts";
import { createSimBoard, type SimBoard, type SimBoardLines } from "./board.ts";
import type { Clock } from "./clock.ts";
import { startControlServer } from "./control-http.ts";
import type { EvOptions } from "./ev.ts";
import type { MeterPhysicsOptions } from "./meter-physics.ts";
import { startCsmsSim, type CsmsSim, type CsmsSimOptions } from "./csms/index.ts";
import { openPtyPair, startModbusRtuServer, startModbusTcpServer, type PtyPair } from "./modbus/index.ts";
import type { RelayOptions } from "./relay.ts";

export { createSimBoard, type SimBoard } from "./board.ts";
export { ManualClock, realClock, type Clock } from "./clock.ts";
export { startCsmsSim, type CsmsSim, type CsmsSimOptions } from "./csms/index.ts";

/** `meterSerialPath` value that makes hw-sim open its own pty pair (socat) and serve the meter on one end. */
export const PTY_SERIAL_PATH = "pty";

export interface HwSimOptions {
  /** Register table of the simulated meter, by name. Default "sdm630". */
  meterModel?: MeterModelName;
  /** Modbus TCP port; 0 lets the OS pick. Default 0. */
  meterTcpPort?: number;
  /** Address the Modbus TCP server listens on. Default 127.0.0.1; "0.0.0.0" lets a pile on the LAN read it. */
  meterTcpHost?: string;
  /** "mbap" (Modbus TCP) or "rtu" (RTU frames over TCP, as a transparent RS-485 gateway). Default "mbap". */
  meterTcpFraming?: "mbap" | "rtu";
  /** Serial device to serve Modbus RTU on, or "pty" for a new pty pair whose other end the agent opens. */
  meterSerialPath?: string;
  /** Default 9600 (the Eastron default). */
  meterBaudRate?: number;
  /** Modbus unit id of the meter. Default 1. */
  unitId?: number;
  /** Control endpoint port on 127.0.0.1; 0 lets the OS pick. Default 0. */
  controlPort?: number;
  /** Shared with the agent for `gpio.driver: sim`; a new one when absent. */
  gpio?: SimGpio;
  /** Wiring, as the config's `gpio` section (see SimBoardLines). Default relay 17, feedback 27, evPresent 22. */
  gpioLines?: SimBoardLines;
  clock?: Clock;
  ev?: EvOptions;
  relay?: RelayOptions;
  meter?: Omit<MeterPhysicsOptions, "phases">;
  /** Also run the CSMS simulator (OCPP 1.6J and 2.0.1) with these options; absent: no CSMS. */
  csms?: CsmsSimOptions;
}

export interface HwSim {
  readonly board: SimBoard;
  readonly gpio: SimGpio;
  readonly meterModel: MeterModel;
  readonly unitId: number;
  readonly meterTcpHost: string;
  readonly meterTcpPort: number;
  /** The serial device the agent opens (the given path, or the agent end of the pty pair); absent without RTU. */
  readonly meterSerialPath?: string;
  readonly meterBaudRate: number;
  readonly controlPort: number;
  readonly controlUrl: string;
  /** The CSMS simulator, when `csms` options were given. */
  readonly csms?: CsmsSim;
  /** Stops the servers, the pty pair and the board. Idempotent. */
  stop(): Promise<void>;
}

function checkPort(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 65_535) {
    throw new RangeError(`${name}: expected a TCP port 0..65535, got ${value}`);
  }
  return value;
}

export async function startHwSim(options: HwSimOptions = {}): Promise<HwSim> {
  const model = meterModelByName(options.meterModel ?? "sdm630");
  const unitId = options.unitId ?? 1;
  if (!Number.isInteger(unitId) || unitId < 1 || unitId > 247) {
    throw new RangeError(`unitId: expected a Modbus unit id 1..247, got ${unitId}`);
  }
  const meterTcpPort = checkPort("meterTcpPort", options.meterTcpPort ?? 0);
  const controlPort = checkPort("controlPort", options.controlPort ?? 0);
  const meterTcpHost = options.meterTcpHost ?? "127.0.0.1";
  const meterBaudRate = options.meterBaudRate ?? 9600;
  const gpio = options.gpio ?? createSimGpio();

  const board = createSimBoard({
    gpio,
    meterModel: model,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.gpioLines ? { lines: options.gpioLines } : {}),
    ...(options.ev ? { ev: options.ev } : {}),
    ...(options.relay ? { relay: options.relay } : {}),
    ...(options.meter ? { meter: options.meter } : {}),
  });

  // Started parts, stopped in reverse order on stop() or when a later part fails to start.
  const stops: (() => Promise<void>)[] = [async () => board.close()];
  const stopAll = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const stop of stops.splice(0).reverse()) {
      await stop().catch((error: unknown) => errors.push(error));
    }
    if (errors.length > 0) throw errors[0];
  };

  try {
    const slave = { unitId, model, values: () => board.meterValues(), faults: board.modbusFaults };
    const tcp = await startModbusTcpServer({
      ...slave,
      host: meterTcpHost,
      port: meterTcpPort,
      framing: options.meterTcpFraming ?? "mbap",
    });
    stops.push(() => tcp.close());

    let meterSerialPath: string | undefined;
    if (options.meterSerialPath !== undefined) {
      let simPath = options.meterSerialPath;
      meterSerialPath = simPath;
      if (simPath === PTY_SERIAL_PATH) {
        const pty: PtyPair = await openPtyPair();
        stops.push(() => pty.close());
        simPath = pty.simPath;
        meterSerialPath = pty.agentPath;
      }
      const rtu = await startModbusRtuServer({ ...slave, path: simPath, baudRate: meterBaudRate });
      stops.push(() => rtu.close());
    }

    const control = await startControlServer({ board, port: controlPort });
    stops.push(() => control.close());

    let csms: CsmsSim | undefined;
    if (options.csms !== undefined) {
      const started = await startCsmsSim(options.csms);
      csms = started;
      stops.push(() => started.stop());
    }

    let stopping: Promise<void> | undefined;
    return {
      board,
      gpio,
      meterModel: model,
      unitId,
      meterTcpHost,
      meterTcpPort: tcp.port,
      ...(meterSerialPath !== undefined ? { meterSerialPath } : {}),
      meterBaudRate,
      controlPort: control.port,
      controlUrl: control.url,
      ...(csms !== undefined ? { csms } : {}),
      stop: () => (stopping ??= stopAll()),
    };
  } catch (error) {
    await stopAll().catch(() => undefined);
    throw error;
  }
}

/**
 * `trustpile hw-sim`: the hardware simulator alone, for an installer's bench or an agent in another process.
 * stdout carries one line per thing that listens (machine-readable `name: where`), nothing else; it runs until
 * SIGINT or SIGTERM and then closes every port, the pty pair and the board before exiting 0.
 */
import { Option, type Command } from "commander";
import { isMeterModelName, meterModels } from "../../drivers/meters/models/index.ts";
import { PTY_SERIAL_PATH, startHwSim, type HwSim } from "../../hw-sim/index.ts";
import { RuntimeError, UsageError, describeError } from "../errors.ts";

/** Unprivileged defaults: 502 needs root, and a bench machine runs hw-sim as a user. */
export const DEFAULT_METER_TCP_PORT = 1502;
export const DEFAULT_CONTROL_PORT = 8502;

interface HwSimCommandOptions {
  meterTcp: string;
  meterHost: string;
  meterSerial?: string;
  baudRate: string;
  model: string;
  unitId: string;
  controlPort: string;
  plugged?: boolean;
  soc: string;
}

function integerOption(flag: string, raw: string, min: number, max: number, what: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag}: expected ${what} ${min}..${max}, got "${raw}"`);
  }
  return value;
}

function listenError(error: unknown): RuntimeError {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "EADDRINUSE" || code === "EACCES") {
    const { address, port } = error as { address?: string; port?: number };
    const reason = code === "EADDRINUSE" ? "the port is in use" : "permission denied (ports below 1024 need root)";
    return new RuntimeError(`hw-sim: cannot listen on ${address ?? "?"}:${port ?? "?"}: ${reason}`, { cause: error });
  }
  return new RuntimeError(`hw-sim: could not start: ${describeError(error)}`, { cause: error });
}

function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve(signal);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

function describeListeners(sim: HwSim): string {
  const meter = `${sim.meterModel.name}, unit ${sim.unitId}`;
  return [
    `meter modbus-tcp: ${sim.meterTcpHost}:${sim.meterTcpPort} (${meter})`,
    ...(sim.meterSerialPath !== undefined
      ? [`meter modbus-rtu: ${sim.meterSerialPath} (${meter}, ${sim.meterBaudRate} baud 8N1)`]
      : []),
    `control http: ${sim.controlUrl}`,
  ].join("\n");
}

export function registerHwSimCommand(program: Command): void {
  program
    .command("hw-sim")
    .description("run the hardware simulator alone: meter (Modbus TCP/RTU), relay with feedback, EV, fault control")
    .option("--meter-tcp <port>", "Modbus TCP port of the simulated meter (0: any free port)", String(DEFAULT_METER_TCP_PORT))
    .option("--meter-host <address>", "address the Modbus TCP server listens on (0.0.0.0 for a pile on the LAN)", "127.0.0.1")
    .option("--meter-serial <path>", `also serve Modbus RTU on this serial device, or "${PTY_SERIAL_PATH}" for a new pty pair`)
    .option("--baud-rate <n>", "baud rate of --meter-serial", "9600")
    .addOption(
      new Option("--model <name>", "meter register table").choices(Object.keys(meterModels)).default("sdm630"),
    )
    .option("--unit-id <n>", "Modbus unit id of the meter", "1")
    .option("--control-port <port>", "control endpoint port on 127.0.0.1 (0: any free port)", String(DEFAULT_CONTROL_PORT))
    .option("--plugged", "start with the EV plugged in")
    .option("--soc <percent>", "EV state of charge at start", "20")
    .action(async (options: HwSimCommandOptions) => {
      if (!isMeterModelName(options.model)) {
        throw new UsageError(`--model: expected one of ${Object.keys(meterModels).join(", ")}, got "${options.model}"`);
      }
      const meterTcpPort = integerOption("--meter-tcp", options.meterTcp, 0, 65_535, "a TCP port");
      const controlPort = integerOption("--control-port", options.controlPort, 0, 65_535, "a TCP port");
      const unitId = integerOption("--unit-id", options.unitId, 1, 247, "a Modbus unit id");
      const meterBaudRate = integerOption("--baud-rate", options.baudRate, 300, 921_600, "a baud rate");
      const socPercent = integerOption("--soc", options.soc, 0, 100, "a percentage");

      let sim: HwSim;
      let stopSignal: Promise<NodeJS.Signals>;
      try {
        // Listening before start-up, so a Ctrl-C during start-up still stops cleanly instead of killing the process.
        stopSignal = waitForStopSignal();
        sim = await startHwSim({
          meterModel: options.model,
          meterTcpPort,
          meterTcpHost: options.meterHost,
          ...(options.meterSerial !== undefined ? { meterSerialPath: options.meterSerial } : {}),
          meterBaudRate,
          unitId,
          controlPort,
          ev: { plugged: options.plugged === true, socPercent },
        });
      } catch (error) {
        throw listenError(error);
      }
      process.stdout.write(`${describeListeners(sim)}\n`);
      process.stderr.write("trustpile: hw-sim running; stop with Ctrl-C (SIGINT) or SIGTERM\n");
      const signal = await stopSignal;
      process.stderr.write(`trustpile: hw-sim stopping (${signal})\n`);
      await sim.stop();
    });
}

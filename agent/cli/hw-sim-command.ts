/**
 * `trustpile hw-sim`: the hardware simulator alone, for an installer's bench or an agent in another process.
 * stdout carries one line per thing that listens (machine-readable `name: where`), nothing else; it runs until
 * SIGINT or SIGTERM and then closes every port, the pty pair and the board before exiting 0. With `--csms-port` it
 * also runs the CSMS simulator, whose conversation goes to stderr as JSON lines, one per OCPP message.
 */
import { readFileSync } from "node:fs";
import { Option, type Command } from "commander";
import { isMeterModelName, meterModels } from "../../drivers/meters/models/index.ts";
import { PTY_SERIAL_PATH, startHwSim, type CsmsSimOptions, type HwSim } from "../../hw-sim/index.ts";
import { RuntimeError, UsageError, describeError } from "../errors.ts";
import { createLogger } from "../logging.ts";

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
  csmsPort?: string;
  csmsHost: string;
  csmsPassword: string[];
  csmsTlsCert?: string;
  csmsTlsKey?: string;
  csmsBoot: "Accepted" | "Pending" | "Rejected";
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--csms-password identity=secret`, repeatable; the secret is never echoed back in errors or logs. */
function csmsPasswords(entries: readonly string[]): Record<string, string> | undefined {
  if (entries.length === 0) return undefined;
  const passwords: Record<string, string> = {};
  for (const entry of entries) {
    const split = entry.indexOf("=");
    const identity = split > 0 ? entry.slice(0, split) : "";
    if (identity === "" || split === entry.length - 1) {
      const shown = split > 0 ? `${identity}=…` : "a value without \"=\"";
      throw new UsageError(`--csms-password: expected identity=secret, got ${shown}`);
    }
    passwords[identity] = entry.slice(split + 1);
  }
  return passwords;
}

function readPem(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`${flag}: cannot read "${path}": ${describeError(error)}`, { cause: error });
  }
}

function csmsOptions(options: HwSimCommandOptions): CsmsSimOptions | undefined {
  if (options.csmsPort === undefined) {
    for (const [flag, given] of [
      ["--csms-password", options.csmsPassword.length > 0],
      ["--csms-tls-cert", options.csmsTlsCert !== undefined],
      ["--csms-tls-key", options.csmsTlsKey !== undefined],
    ] as const) {
      if (given) throw new UsageError(`${flag}: needs --csms-port, which starts the CSMS simulator`);
    }
    return undefined;
  }
  const port = integerOption("--csms-port", options.csmsPort, 0, 65_535, "a TCP port");
  if ((options.csmsTlsCert === undefined) !== (options.csmsTlsKey === undefined)) {
    throw new UsageError("--csms-tls-cert and --csms-tls-key: expected both (security profile 2) or neither");
  }
  const passwords = csmsPasswords(options.csmsPassword);
  return {
    port,
    host: options.csmsHost,
    boot: { status: options.csmsBoot },
    logger: createLogger({ name: "csms", destination: process.stderr }),
    ...(passwords !== undefined ? { passwords } : {}),
    ...(options.csmsTlsCert !== undefined && options.csmsTlsKey !== undefined
      ? { tls: { certPem: readPem("--csms-tls-cert", options.csmsTlsCert), keyPem: readPem("--csms-tls-key", options.csmsTlsKey) } }
      : {}),
  };
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
    ...(sim.csms !== undefined
      ? [
          `csms ocpp: ${sim.csms.url} (ocpp1.6, ocpp2.0.1; the pile appends /<chargePointId>)`,
          `csms operator: ${sim.csms.operatorUrl}`,
        ]
      : []),
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
    .option("--csms-port <port>", "also run the CSMS simulator (OCPP 1.6J and 2.0.1) on this port (0: any free port)")
    .option("--csms-host <address>", "address the CSMS simulator listens on (0.0.0.0 for a pile on the LAN)", "127.0.0.1")
    .option("--csms-password <identity=secret>", "security profile 1: basic-auth password of a charge point (repeatable)", collect, [])
    .option("--csms-tls-cert <file>", "security profile 2: serve wss:// with this PEM certificate chain")
    .option("--csms-tls-key <file>", "security profile 2: PEM private key of --csms-tls-cert")
    .addOption(
      new Option("--csms-boot <status>", "answer to BootNotification").choices(["Accepted", "Pending", "Rejected"]).default("Accepted"),
    )
    .action(async (options: HwSimCommandOptions) => {
      if (!isMeterModelName(options.model)) {
        throw new UsageError(`--model: expected one of ${Object.keys(meterModels).join(", ")}, got "${options.model}"`);
      }
      const meterTcpPort = integerOption("--meter-tcp", options.meterTcp, 0, 65_535, "a TCP port");
      const controlPort = integerOption("--control-port", options.controlPort, 0, 65_535, "a TCP port");
      const unitId = integerOption("--unit-id", options.unitId, 1, 247, "a Modbus unit id");
      const meterBaudRate = integerOption("--baud-rate", options.baudRate, 300, 921_600, "a baud rate");
      const socPercent = integerOption("--soc", options.soc, 0, 100, "a percentage");
      const csms = csmsOptions(options);

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
          ...(csms !== undefined ? { csms } : {}),
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

import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import ModbusSerial from "modbus-serial";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT, cleanEnv } from "../../helpers/cli.ts";

// The CommonJS class, as drivers/meters/modbus-meter.ts reaches it under NodeNext.
const ModbusRTU = ModbusSerial.default;

const CLI_TIMEOUT_MS = 60_000;

/**
 * Until agent/cli/run.ts registers `hw-sim`, the command runs in a harness that registers it on a bare program
 * and reports errors the way run.ts does; once run.ts has it, the real `bin/trustpile.js` runs.
 */
const registeredInMain = readFileSync(`${REPO_ROOT}/agent/cli/run.ts`, "utf8").includes("registerHwSimCommand");

const HARNESS = `
import { register } from "tsx/esm/api";
register();
const { Command, CommanderError } = await import("commander");
const { registerHwSimCommand } = await import("./agent/cli/hw-sim-command.ts");
const { TrustpileError } = await import("./agent/errors.ts");
const program = new Command().name("trustpile").exitOverride();
registerHwSimCommand(program);
try {
  await program.parseAsync(process.argv.slice(1), { from: "user" });
} catch (error) {
  if (error instanceof CommanderError) process.exitCode = error.exitCode === 0 ? 0 : 2;
  else if (error instanceof TrustpileError) {
    process.stderr.write("trustpile: " + error.message + "\\n");
    process.exitCode = error.exitCode;
  } else throw error;
}
`;

interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runHwSim(args: string[]): Running {
  const argv = registeredInMain
    ? [`${REPO_ROOT}/bin/trustpile.js`, "hw-sim", ...args]
    : ["--input-type=module", "-e", HARNESS, "--", "hw-sim", ...args];
  const child = spawn(process.execPath, argv, { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  child.stdin.end();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}

async function waitFor(running: Running, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(running.stdout());
    if (match) return match;
    if (running.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`no ${pattern} in stdout:\n${running.stdout()}\nstderr:\n${running.stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let running: Running | undefined;
let blocker: Server | undefined;

afterEach(async () => {
  if (running && running.child.exitCode === null && running.child.signalCode === null) {
    running.child.kill("SIGKILL");
    await running.exit;
  }
  running = undefined;
  await new Promise<void>((resolve) => (blocker ? blocker.close(() => resolve()) : resolve()));
  blocker = undefined;
});

describe("trustpile hw-sim", () => {
  it(
    "prints one line per listener, serves the meter and GET /state, and exits 0 on SIGTERM",
    async () => {
      running = runHwSim(["--meter-tcp", "0", "--control-port", "0", "--plugged", "--model", "sdm120", "--unit-id", "3"]);
      const control = await waitFor(running, /^control http: (http:\/\/127\.0\.0\.1:(\d+))$/m);
      const meter = /^meter modbus-tcp: 127\.0\.0\.1:(\d+) \(sdm120, unit 3\)$/m.exec(running.stdout());
      expect(meter).not.toBeNull();
      expect(running.stdout().trim().split("\n")).toHaveLength(2);

      const state = (await (await fetch(`${control[1]}/state`)).json()) as {
        ev: { plugged: boolean; pilot: string; socPercent: number };
        relay: { contactsClosed: boolean };
        meter: { model: string; importEnergyWh: number; phases: unknown[] };
      };
      expect(state.ev).toMatchObject({ plugged: true, pilot: "C", socPercent: 20 });
      expect(state.relay.contactsClosed).toBe(false);
      expect(state.meter).toMatchObject({ model: "sdm120", importEnergyWh: 0 });
      expect(state.meter.phases).toHaveLength(1);

      const modbus = new ModbusRTU();
      await modbus.connectTCP("127.0.0.1", { port: Number(meter?.[1]) });
      modbus.setID(3);
      modbus.setTimeout(2_000);
      // 0x46: frequency, float32 50.0 = 0x4248 0x0000
      expect((await modbus.readInputRegisters(0x46, 2)).data).toEqual([0x4248, 0x0000]);
      await new Promise<void>((resolve) => modbus.close(() => resolve()));

      running.child.kill("SIGTERM");
      expect(await running.exit).toEqual({ code: 0, signal: null });
      expect(running.stderr()).toContain("trustpile: hw-sim stopping (SIGTERM)");
      await expect(fetch(`${control[1]}/state`)).rejects.toThrow();
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "exits 0 on SIGINT too",
    async () => {
      running = runHwSim(["--meter-tcp", "0", "--control-port", "0"]);
      await waitFor(running, /^control http: /m);
      running.child.kill("SIGINT");
      expect((await running.exit).code).toBe(0);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "exits 2 naming the option on a bad port",
    async () => {
      running = runHwSim(["--meter-tcp", "15o2"]);
      expect((await running.exit).code).toBe(2);
      expect(running.stderr()).toBe('trustpile: --meter-tcp: expected a TCP port 0..65535, got "15o2"\n');
      expect(running.stdout()).toBe("");
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "exits 1 naming the address when the meter port is taken",
    async () => {
      const server = createServer();
      blocker = server;
      const port = await new Promise<number>((resolve) =>
        server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
      );
      running = runHwSim(["--meter-tcp", String(port), "--control-port", "0"]);
      expect((await running.exit).code).toBe(1);
      expect(running.stderr()).toBe(`trustpile: hw-sim: cannot listen on 127.0.0.1:${port}: the port is in use\n`);
    },
    CLI_TIMEOUT_MS,
  );
});

import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT, cleanEnv, runCli } from "../../helpers/cli.ts";
import { closePiles, createPile, makeTestCertificates } from "./csms-pile.ts";

const CLI_TIMEOUT_MS = 60_000;

interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runHwSim(args: string[]): Running {
  const child = spawn(process.execPath, [`${REPO_ROOT}/bin/trustpile.js`, "hw-sim", ...args], {
    cwd: REPO_ROOT,
    env: cleanEnv(),
    stdio: ["pipe", "pipe", "pipe"],
  });
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

async function waitForOutput(read: () => string, pattern: RegExp, running: Running, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(read());
    if (match) return match;
    if (running.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`no ${pattern} in output:\nstdout:\n${running.stdout()}\nstderr:\n${running.stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let running: Running | undefined;

afterEach(async () => {
  await closePiles();
  if (running && running.child.exitCode === null && running.child.signalCode === null) {
    running.child.kill("SIGKILL");
    await running.exit;
  }
  running = undefined;
});

describe("trustpile hw-sim --csms-port", () => {
  it(
    "prints the CSMS URL, accepts a pile with its password, refuses a wrong one, and logs the conversation on stderr",
    async () => {
      running = runHwSim(["--meter-tcp", "0", "--control-port", "0", "--csms-port", "0", "--csms-password", "cp-7=open-sesame"]);
      const line = await waitForOutput(running.stdout, /^csms ocpp: (ws:\/\/127\.0\.0\.1:\d+\/ocpp) \(ocpp1\.6, ocpp2\.0\.1; the pile appends \/<chargePointId>\)$/m, running);
      const url = line[1] ?? "";
      expect(running.stdout().trim().split("\n")).toHaveLength(4);
      const operatorUrl = /^csms operator: (http:\/\/127\.0\.0\.1:\d+\/operator)$/m.exec(running.stdout())?.[1];
      expect(operatorUrl).toBe(url.replace("ws://", "http://").replace(/\/ocpp$/, "/operator"));

      const pile = createPile({ endpoint: url, identity: "cp-7", protocol: "ocpp1.6", password: "open-sesame" });
      await pile.connect();
      const boot = await pile.call("BootNotification", { chargePointVendor: "trustpile", chargePointModel: "sim" });
      expect(boot).toMatchObject({ status: "Accepted", interval: 300 });

      pile.handle("RemoteStartTransaction", () => Promise.resolve({ status: "Accepted" }));
      const started = await fetch(`${operatorUrl}/cp-7/remote-start`, { method: "POST", body: JSON.stringify({ idTag: "session-3", connectorId: 1 }) });
      expect(started.status).toBe(200);
      expect(await started.json()).toEqual({ answer: { status: "Accepted" } });

      const intruder = createPile({ endpoint: url, identity: "cp-7", protocol: "ocpp1.6", password: "guess" });
      await expect(intruder.connect()).rejects.toMatchObject({ code: 401 });

      await waitForOutput(running.stderr, /"msg":"csms: refused connection: wrong basic-auth password"/, running);
      const logged = running
        .stderr()
        .split("\n")
        .filter((text) => text.startsWith("{"))
        .map((text) => JSON.parse(text) as Record<string, unknown>);
      expect(logged.filter((entry) => entry.cp === "cp-7").map((entry) => entry.msg)).toEqual([
        "csms: charge point connected",
        "<- cp-7 BootNotification",
        "-> cp-7 BootNotification answered",
        "-> cp-7 RemoteStartTransaction",
        "<- cp-7 RemoteStartTransaction answered",
        "csms: refused connection: wrong basic-auth password",
      ]);
      expect(running.stderr()).not.toContain("open-sesame");
      expect(running.stderr()).not.toContain("guess");

      running.child.kill("SIGTERM");
      expect(await running.exit).toEqual({ code: 0, signal: null });
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "serves wss:// from --csms-tls-cert and --csms-tls-key to a pile that trusts the CA, answering boot per --csms-boot",
    async () => {
      const certificates = makeTestCertificates();
      try {
        running = runHwSim([
          "--meter-tcp", "0", "--control-port", "0", "--csms-port", "0",
          "--csms-tls-cert", certificates.certPath, "--csms-tls-key", certificates.keyPath, "--csms-boot", "Rejected",
        ]);
        const line = await waitForOutput(running.stdout, /^csms ocpp: (wss:\/\/127\.0\.0\.1:\d+\/ocpp) /m, running);
        expect(running.stdout()).toMatch(/^csms operator: https:\/\/127\.0\.0\.1:\d+\/operator$/m);
        const pile = createPile({ endpoint: line[1] ?? "", identity: "cp-tls", protocol: "ocpp2.0.1", wsOpts: { ca: certificates.caPem } });
        await pile.connect();
        expect(await pile.call("BootNotification", { reason: "PowerUp", chargingStation: { model: "m", vendorName: "v" } })).toMatchObject({
          status: "Rejected",
          interval: 300,
        });
      } finally {
        certificates.remove();
      }
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "exits 2 with one sentence on a password without identity, or CSMS flags without --csms-port",
    async () => {
      const noIdentity = await runCli(["hw-sim", "--csms-port", "0", "--csms-password", "hunter2"]);
      expect(noIdentity.status).toBe(2);
      expect(noIdentity.stderr).toBe('trustpile: --csms-password: expected identity=secret, got a value without "="\n');

      const noPort = await runCli(["hw-sim", "--csms-password", "cp-1=x"]);
      expect(noPort.status).toBe(2);
      expect(noPort.stderr).toBe("trustpile: --csms-password: needs --csms-port, which starts the CSMS simulator\n");

      const halfTls = await runCli(["hw-sim", "--csms-port", "0", "--csms-tls-cert", "cert.pem"]);
      expect(halfTls.status).toBe(2);
      expect(halfTls.stderr).toBe("trustpile: --csms-tls-cert and --csms-tls-key: expected both (security profile 2) or neither\n");

      const missingCert = await runCli(["hw-sim", "--csms-port", "0", "--csms-tls-cert", "/nonexistent/cert.pem", "--csms-tls-key", "/nonexistent/key.pem"]);
      expect(missingCert.status).toBe(2);
      expect(missingCert.stderr).toMatch(/^trustpile: --csms-tls-cert: cannot read "\/nonexistent\/cert\.pem": ENOENT[^\n]*\n$/);
    },
    CLI_TIMEOUT_MS,
  );
});

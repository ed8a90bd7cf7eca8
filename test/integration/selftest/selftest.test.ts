import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { startHwSim, type HwSim } from "../../../hw-sim/index.ts";
import { createSimGpio } from "../../../drivers/gpio/sim.ts";
import { deployLedgerFixture } from "../../helpers/chain.ts";
import { runCli, stderrLines, type CliResult } from "../../helpers/cli.ts";
import { startMosquitto, type Mosquitto } from "../../helpers/mosquitto.ts";
import { freePort } from "../../../agent/net.ts";
import { createKeystore } from "../../../agent/crypto/keystore.ts";

/** A CSMS stand-in that accepts OCPP 1.6J WebSocket upgrades, as a real CSMS would. */
async function startOcppEndpoint(): Promise<{ url: string; identities: string[]; close(): Promise<void> }> {
  const identities: string[] = [];
  const http: Server = createServer();
  const wss = new WebSocketServer({
    server: http,
    handleProtocols: (protocols) => (protocols.has("ocpp1.6") ? "ocpp1.6" : false),
  });
  wss.on("connection", (_socket, request) => identities.push(decodeURIComponent(request.url?.split("/").pop() ?? "")));
  const port = await freePort();
  await new Promise<void>((resolve) => http.listen(port, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${port}/ocpp`,
    identities,
    close: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        http.close(() => resolve());
      }),
  };
}

function rowsOf(result: CliResult): Record<string, string> {
  const rows: Record<string, string> = {};
  for (const line of result.stdout.split("\n")) {
    const match = /^(meter|relay|chain|ocpp|mqtt)\s+(PASS|WARN|FAIL|SKIP)\s+(.*)$/.exec(line);
    if (match?.[1] && match[2]) rows[match[1]] = `${match[2]} ${match[3]}`;
  }
  return rows;
}

describe("trustpile selftest", () => {
  let dir: string;
  let mosquitto: Mosquitto;
  let ocpp: Awaited<ReturnType<typeof startOcppEndpoint>>;
  let hwSim: HwSim;
  let chainYaml: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "trustpile-selftest-"));
    [mosquitto, ocpp] = await Promise.all([startMosquitto(), startOcppEndpoint()]);
    // A hw-sim running beside the agent, as an installer would start it with `trustpile hw-sim`.
    hwSim = await startHwSim({ meterTcpPort: 0, gpio: createSimGpio(), unitId: 1 });

    const fixture = await deployLedgerFixture();
    writeFileSync(join(dir, "deployment.json"), JSON.stringify(fixture.deployment));
    writeFileSync(join(dir, "pw"), "pile password\n");
    chmodSync(join(dir, "pw"), 0o600);
    const device = await createKeystore(join(dir, "device-key.json"), "pile password", { scryptN: 1024 });
    const [owner, , ] = [fixture.accounts[5]!];
    await fixture.attestOwner(owner);
    await fixture.registerCp(owner, { chargePointId: "cp-selftest", signer: device.address });
    await (await fixture.accounts[6]!.sendTransaction({ to: device.address, value: 10n ** 17n })).wait();
    chainYaml = `chain: { rpcUrl: "${fixture.provider._getConnection().url}", deployment: ./deployment.json, keystore: ./device-key.json, passwordFile: ./pw }`;
  });

  afterAll(async () => {
    await Promise.all([mosquitto?.stop(), ocpp?.close(), hwSim?.stop()]);
  });

  function writeConfig(name: string, lines: string[]): string {
    writeFileSync(join(dir, name), [...lines, ""].join("\n"));
    return join(dir, name);
  }

  it("passes against hw-sim over Modbus TCP, anvil, an OCPP endpoint and mosquitto, printing the meter with units", async () => {
    const config = writeConfig("ok.yaml", [
      "chargePointId: cp-selftest",
      chainYaml,
      `meter: { driver: sdm630, transport: tcp, host: 127.0.0.1, port: ${hwSim.meterTcpPort}, unitId: 1, timeoutMs: 300, pollIntervalMs: 200 }`,
      "gpio: { driver: sim, relay: { line: 17 }, feedback: { line: 27 } }",
      `ocpp: { url: "${ocpp.url}", version: "1.6" }`,
      `mqtt: { url: "${mosquitto.url}" }`,
    ]);
    const result = await runCli(["selftest", "--config", config]);
    const rows = rowsOf(result);
    expect(rows.meter).toMatch(/^PASS sdm630 over tcp 127\.0\.0\.1:\d+ unit 1: L1 2\d\d\.\d V 0\.00 A 0 W \| L2 .* \| L3 .* total 0 W, 50\.00 Hz, import 0 Wh/);
    expect(rows.relay).toMatch(/^SKIP not toggled/);
    expect(rows.chain).toMatch(/^PASS chain 31337 block \d+; cp-selftest registered, signer 0x[0-9a-fA-F]{40} holds 0\.1$/);
    expect(rows.ocpp).toBe(`PASS ${ocpp.url}/cp-selftest accepted ocpp1.6`);
    expect(rows.mqtt).toBe(`PASS ${mosquitto.url} accepted the connection`);
    expect(result.stdout).toContain("selftest passed");
    // Without --relay the contactor is unchecked, so the owner is sent to check it before enabling the service.
    expect(result.stdout).toContain(
      `next: trustpile selftest --config ${config} --relay (with no EV plugged in) to check the contactor, then: sudo systemctl enable --now trustpile\n`,
    );
    expect(result.status).toBe(0);
    expect(ocpp.identities).toContain("cp-selftest");
  });

  it("toggles the sim relay and sees its feedback contact follow", async () => {
    const config = writeConfig("relay.yaml", [
      "chargePointId: cp-selftest",
      chainYaml,
      "meter: { driver: sim }",
      "gpio: { driver: sim, relay: { line: 17 }, feedback: { line: 27 }, feedbackTimeoutMs: 500 }",
    ]);
    const result = await runCli(["selftest", "--config", config, "--relay"]);
    const rows = rowsOf(result);
    expect(rows.relay).toBe("PASS line 17 closed and opened; feedback line 27 followed within 500 ms");
    expect(rows.meter).toMatch(/^PASS sim sdm630 \(hw-sim\) over tcp/);
    expect(rows.ocpp).toBe("SKIP not configured");
    expect(result.stdout).toMatch(/selftest passed\nnext: sudo systemctl enable --now trustpile\n$/);
    expect(result.status).toBe(0);
  });

  it("fails with one clear line when the serial device does not exist", async () => {
    const config = writeConfig("noserial.yaml", [
      "chargePointId: cp-selftest",
      chainYaml,
      "meter: { driver: sdm630, transport: rtu, device: /dev/ttyUSB97, timeoutMs: 300 }",
      "gpio: { driver: sim }",
    ]);
    const result = await runCli(["selftest", "--config", config]);
    expect(rowsOf(result).meter).toBe(
      "FAIL sdm630 over rtu /dev/ttyUSB97 (9600 8N1) unit 1: serial device /dev/ttyUSB97 does not exist",
    );
    expect(result.stdout).toContain("selftest FAILED: 1 check(s) failed");
    expect(result.stdout).toContain(
      "next: fix the meter check first (sdm630 over rtu /dev/ttyUSB97 (9600 8N1) unit 1: serial device /dev/ttyUSB97 does not exist), then run selftest again\n",
    );
    expect(result.status).toBe(1);
  });

  it("fails with a timeout when no meter answers at the configured unit id", async () => {
    const config = writeConfig("unit.yaml", [
      "chargePointId: cp-selftest",
      chainYaml,
      `meter: { driver: sdm630, transport: tcp, host: 127.0.0.1, port: ${hwSim.meterTcpPort}, unitId: 7, timeoutMs: 300 }`,
      "gpio: { driver: sim }",
    ]);
    const result = await runCli(["selftest", "--config", config]);
    expect(rowsOf(result).meter).toMatch(/^FAIL sdm630 over tcp 127\.0\.0\.1:\d+ unit 7: no reply from meter sdm630 \(unit 7 at 127\.0\.0\.1:\d+\) within 300 ms/);
    expect(result.status).toBe(1);
  });

  it("rejects an unknown meter model before touching any hardware, exit 2", async () => {
    const config = writeConfig("model.yaml", ["chargePointId: cp-selftest", chainYaml, "meter: { driver: sdm999 }", "gpio: { driver: sim }"]);
    const result = await runCli(["selftest", "--config", config]);
    expect(result.status).toBe(2);
    expect(stderrLines(result)).toEqual([`trustpile: config ${config}: meter.driver: expected one of sdm630, sdm120, em340, sim, got "sdm999"`]);
  });

  it("fails the mqtt check when the broker is unreachable", async () => {
    const closedPort = await freePort();
    const config = writeConfig("mqtt.yaml", [
      "chargePointId: cp-selftest",
      chainYaml,
      "meter: { driver: sim }",
      "gpio: { driver: sim }",
      `mqtt: { url: "mqtt://127.0.0.1:${closedPort}" }`,
    ]);
    const result = await runCli(["selftest", "--config", config]);
    expect(rowsOf(result).mqtt).toMatch(new RegExp(`^FAIL mqtt://127\\.0\\.0\\.1:${closedPort}: .*ECONNREFUSED`));
    expect(result.status).toBe(1);
  });
});

/**
 * Installer checks (`trustpile selftest`): each check talks to one real part (meter, relay, chain, CSMS, broker)
 * and reports one line. They work the same against hw-sim and real hardware; nothing here knows which it is.
 */
import { connect as mqttConnect } from "mqtt";
import WebSocket from "ws";
import { formatEther } from "ethers";
import type { Config } from "../config/schema.ts";
import type { Meter, MeterSample } from "../../drivers/meters/types.ts";
import type { DigitalIn, DigitalOut } from "../../drivers/gpio/types.ts";
import { connectProvider } from "../chain/provider.ts";
import { readDeployment } from "../chain/deployment.ts";
import { connectRegistry } from "../chain/contracts.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { readKeystoreAddress } from "../crypto/keystore.ts";
import { checkSecretFileMode } from "../crypto/file-permissions.ts";
import { describeError } from "../errors.ts";

export type CheckStatus = "pass" | "warn" | "fail" | "skip";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
}

const pass = (name: string, detail: string): CheckResult => ({ name, status: "pass", detail });
const warn = (name: string, detail: string): CheckResult => ({ name, status: "warn", detail });
const fail = (name: string, detail: string): CheckResult => ({ name, status: "fail", detail });
export const skip = (name: string, detail: string): CheckResult => ({ name, status: "skip", detail });

export function formatSample(sample: MeterSample): string {
  const phases = sample.phases
    .map((p, i) => `L${i + 1} ${p.voltageV.toFixed(1)} V ${p.currentA.toFixed(2)} A ${p.powerW.toFixed(0)} W`)
    .join(" | ");
  const frequency = sample.frequencyHz === undefined ? "" : `, ${sample.frequencyHz.toFixed(2)} Hz`;
  return `${phases} | total ${sample.powerW.toFixed(0)} W${frequency}, import ${sample.importEnergyWh} Wh`;
}

/** Two polls, so a meter that answers once and then stalls, or whose energy runs backwards, is caught. */
export async function checkMeter(meter: Meter, describe: string, pollIntervalMs: number): Promise<CheckResult> {
  try {
    const first = await meter.read();
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollIntervalMs, 1_000)));
    const second = await meter.read();
    return pass("meter", `${describe}: ${formatSample(second)} (2 polls, ${second.importEnergyWh - first.importEnergyWh} Wh between)`);
  } catch (error) {
    return fail("meter", `${describe}: ${describeError(error)}`);
  }
}

function waitForLevel(input: DigitalIn, wanted: boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop();
      resolve(ok);
    };
    const timer = setTimeout(() => void input.read().then((level) => finish(level === wanted), () => finish(false)), timeoutMs);
    const stop = input.watch((level) => {
      if (level === wanted) finish(true);
    });
    void input.read().then((level) => {
      if (level === wanted) finish(true);
    });
  });
}

/**
 * Closes the contactor for a moment and checks that the mirror contact follows both ways. Refuses while an EV is
 * present or power flows: an installer check must never energize a car.
 */
export async function checkRelay(
  io: { relay: DigitalOut; feedback?: DigitalIn; evPresent?: DigitalIn },
  feedbackTimeoutMs: number,
  powerNowW: () => Promise<number | undefined>,
): Promise<CheckResult> {
  if (io.evPresent && (await io.evPresent.read())) return fail("relay", "an EV is present: unplug it before testing the relay");
  const power = await powerNowW();
  if (power !== undefined && Math.abs(power) > 50) {
    return fail("relay", `the meter shows ${power.toFixed(0)} W flowing: make sure nothing is connected before testing the relay`);
  }
  try {
    await io.relay.write(true);
    if (!io.feedback) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await io.relay.write(false);
      return warn("relay", `line ${io.relay.line} toggled; no feedback contact configured, so the relay is trusted as commanded`);
    }
    const closed = await waitForLevel(io.feedback, true, feedbackTimeoutMs);
    await io.relay.write(false);
    const opened = await waitForLevel(io.feedback, false, feedbackTimeoutMs);
    if (!closed) return fail("relay", `commanded closed but feedback line ${io.feedback.line} stayed open for ${feedbackTimeoutMs} ms (failure to close)`);
    if (!opened) return fail("relay", `commanded open but feedback line ${io.feedback.line} stayed closed for ${feedbackTimeoutMs} ms (welded contactor?)`);
    return pass("relay", `line ${io.relay.line} closed and opened; feedback line ${io.feedback.line} followed within ${feedbackTimeoutMs} ms`);
  } catch (error) {
    return fail("relay", describeError(error));
  } finally {
    await io.relay.write(false).catch(() => undefined);
  }
}

/**
 * The permission rule `trustpile start` enforces on the device key files (docs/SECURITY.md), reported before the
 * service is enabled: a FAIL here is a start that would exit 2. Only the mode bits are read, never the secrets.
 */
export function checkKeyFiles(config: Config): CheckResult {
  const files: Array<[what: string, path: string | undefined]> = [
    ["keystore", config.chain.keystore],
    ["password file", config.chain.passwordFile],
  ];
  const refused: string[] = [];
  const warned: string[] = [];
  const checked: string[] = [];
  for (const [what, path] of files) {
    if (path === undefined) {
      refused.push("chain.passwordFile is not set: trustpile start needs it to unlock the device key");
      continue;
    }
    try {
      const judged = checkSecretFileMode(path, what);
      if (judged.verdict === "refuse") refused.push(judged.message);
      else if (judged.verdict === "warn") warned.push(judged.message);
      else checked.push(`${what} ${path}`);
    } catch (error) {
      refused.push(describeError(error));
    }
  }
  if (refused.length > 0) return fail("keys", refused.join("; "));
  if (warned.length > 0) return warn("keys", warned.join("; "));
  return pass("keys", `${checked.join(" and ")}: readable by their owner only`);
}

export async function checkChain(config: Config): Promise<CheckResult> {
  const where = config.chain.rpcUrl;
  let provider;
  try {
    provider = await connectProvider(where, 5_000);
  } catch (error) {
    return fail("chain", describeError(error));
  }
  try {
    const { chainId } = await provider.getNetwork();
    const block = await provider.getBlockNumber();
    const deployment = readDeployment(config.chain.deployment);
    if (BigInt(deployment.chainId) !== chainId) {
      return fail("chain", `${where} is chain ${chainId} but ${config.chain.deployment} was deployed on chain ${deployment.chainId}`);
    }
    if ((await provider.getCode(deployment.ChargingLedger)) === "0x") {
      return fail("chain", `no ChargingLedger contract at ${deployment.ChargingLedger} on chain ${chainId}`);
    }
    const signer = readKeystoreAddress(config.chain.keystore);
    const registry = connectRegistry(deployment.Registry, provider);
    const cpId = cpIdOf(config.chargePointId);
    if ((await registry.cpNoOf(cpId)) === 0n) {
      return fail("chain", `chain ${chainId} block ${block}: ${config.chargePointId} is not registered (run trustpile chain register)`);
    }
    const cp = await registry.chargePoint(cpId);
    if (cp.signer.toLowerCase() !== signer.toLowerCase()) {
      return fail("chain", `${config.chargePointId} is registered with signer ${cp.signer}, but the device key is ${signer}`);
    }
    const balance = await provider.getBalance(signer);
    const summary = `chain ${chainId} block ${block}; ${config.chargePointId} registered${cp.active ? "" : " (INACTIVE)"}, signer ${signer} holds ${formatEther(balance)}`;
    if (balance === 0n) return warn("chain", `${summary}: it needs gas money to authorize and settle`);
    return cp.active ? pass("chain", summary) : warn("chain", summary);
  } catch (error) {
    return fail("chain", describeError(error));
  } finally {
    provider.destroy();
  }
}

/** Opens the OCPP WebSocket as this charge point and checks that the CSMS accepts the subprotocol. */
export function checkOcpp(config: Config, timeoutMs = 5_000): Promise<CheckResult> {
  const ocpp = config.ocpp;
  if (!ocpp) return Promise.resolve(skip("ocpp", "not configured"));
  const protocol = ocpp.version === "1.6" ? "ocpp1.6" : "ocpp2.0.1";
  const url = `${ocpp.url.replace(/\/$/, "")}/${encodeURIComponent(config.chargePointId)}`;
  const headers: Record<string, string> = {};
  if (ocpp.password) {
    headers.authorization = `Basic ${Buffer.from(`${config.chargePointId}:${ocpp.password}`).toString("base64")}`;
  }
  return new Promise((resolve) => {
    const socket = new WebSocket(url, [protocol], { headers, handshakeTimeout: timeoutMs });
    socket.once("open", () => {
      const accepted = socket.protocol;
      socket.close();
      resolve(
        accepted === protocol
          ? pass("ocpp", `${url} accepted ${protocol}`)
          : fail("ocpp", `${url} answered without the ${protocol} subprotocol (got "${accepted}")`),
      );
    });
    socket.once("unexpected-response", (_request, response) => {
      socket.terminate();
      const hint = response.statusCode === 401 ? " (check ocpp.password)" : "";
      resolve(fail("ocpp", `${url} refused the connection: HTTP ${response.statusCode}${hint}`));
    });
    socket.once("error", (error) => resolve(fail("ocpp", `${url} is unreachable: ${describeError(error)}`)));
  });
}

export function checkMqtt(config: Config, timeoutMs = 5_000): Promise<CheckResult> {
  const mqtt = config.mqtt;
  if (!mqtt) return Promise.resolve(skip("mqtt", "not configured"));
  return new Promise((resolve) => {
    const client = mqttConnect(mqtt.url, {
      ...(mqtt.username ? { username: mqtt.username } : {}),
      ...(mqtt.password ? { password: mqtt.password } : {}),
      clientId: `${config.chargePointId}-selftest`,
      connectTimeout: timeoutMs,
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    const done = (result: CheckResult): void => {
      client.end(true);
      resolve(result);
    };
    client.once("connect", () => done(pass("mqtt", `${mqtt.url} accepted the connection`)));
    client.once("error", (error) => done(fail("mqtt", `${mqtt.url}: ${describeError(error)}`)));
    client.once("close", () => done(fail("mqtt", `${mqtt.url} closed the connection (unreachable or refused)`)));
  });
}

export function renderTable(results: CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length), 5);
  const lines = results.map((r) => `${r.name.padEnd(width)}  ${r.status.toUpperCase().padEnd(4)}  ${r.detail}`);
  return [`${"check".padEnd(width)}  ${"result".padEnd(4)}  detail`, ...lines].join("\n");
}

/** Passing means nothing failed: warnings and skipped checks are reported but do not fail the installer check. */
export function allPassed(results: CheckResult[]): boolean {
  return results.every((r) => r.status !== "fail");
}

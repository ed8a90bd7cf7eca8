import { join } from "node:path";
import type { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import type { BiddingPolicyConfig } from "../bidder/index.ts";
import { createLogger } from "../logging.ts";
import type { Provider, Wallet } from "ethers";
import { readPasswordFileChecked, loadKeystore } from "../crypto/keystore.ts";
import { checkConfigFileMode } from "../crypto/file-permissions.ts";
import { connectProvider } from "../chain/provider.ts";
import { readDeployment, type Deployment } from "../chain/deployment.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { openJournal } from "../journal/journal.ts";
import { startAgent } from "../runtime/agent.ts";
import { createServiceNotifications } from "../runtime/watchdog.ts";
import { startTelemetry } from "../telemetry/index.ts";
import { startOcpp, type ResetKind, type RunningOcpp } from "../ocpp/index.ts";
import { TRUSTPILE_VERSION } from "../version.ts";
import type { Telemetry } from "../telemetry/types.ts";
import { coreConfigFrom } from "../runtime/core-config.ts";
import { UsageError } from "../errors.ts";
import { createMeter } from "../../drivers/meters/index.ts";
import { createModbusMeter } from "../../drivers/meters/modbus-meter.ts";
import { meterModel } from "../../drivers/meters/models/index.ts";
import type { Meter } from "../../drivers/meters/types.ts";
import { openGpio } from "../../drivers/gpio/index.ts";
import { createSimGpio } from "../../drivers/gpio/sim.ts";
import { startHwSim, type HwSim } from "../../hw-sim/index.ts";

/**
 * Exit code after a CSMS Reset (EX_TEMPFAIL): the agent has stopped cleanly and wants to be started again, which
 * systemd's Restart=always does; distinct from 0 (stopped on request) and 1/2 (failures) in the service's log.
 */
export const RESET_EXIT_CODE = 75;

/** The config's `bidding` section as the bidder takes it; the schema requires both prices when it is enabled. */
function biddingPolicyOf(bidding: NonNullable<Config["bidding"]>): BiddingPolicyConfig {
  return { enabled: bidding.enabled, floorPricePerKWh: bidding.floorPricePerKWh ?? 0n, undercutStep: bidding.undercutStep ?? 0n };
}

/**
 * The device key, after the permission checks of docs/SECURITY.md: the config, the password file and the keystore
 * are refused (exit 2, before anything is decrypted or connected) when other users could read the key or rewrite
 * what the pile trusts; readable-by-group is a warning.
 */
async function loadDeviceKey(configPath: string, config: Config, warn: (warning: string) => void): Promise<Wallet> {
  const configWarning = checkConfigFileMode(configPath, passwordKeysSetByFile(config, process.env));
  if (configWarning) warn(configWarning);
  if (!config.chain.passwordFile) throw new UsageError(`${configPath}: chain.passwordFile: required to unlock the device key`);
  const { password, permissionWarning } = readPasswordFileChecked(config.chain.passwordFile);
  if (permissionWarning) warn(permissionWarning);
  return loadKeystore(config.chain.keystore, password, { onPermissionWarning: warn });
}

/**
 * The SessionTotal signatures carry the address book's chain id (EIP-712 domain), so on any other chain the pile
 * would deliver energy for deposits there and then never settle (InvalidSignature): refuse before anything runs.
 * The RPC URL is not printed: hosted endpoints carry an API key in it.
 */
async function refuseAnotherChain(provider: Provider, deployment: Deployment, deploymentPath: string): Promise<void> {
  const { chainId } = await provider.getNetwork();
  if (chainId === BigInt(deployment.chainId)) return;
  provider.destroy();
  throw new UsageError(
    `chain.rpcUrl answers as chain ${chainId}, but the address book ${deploymentPath} is for chain ${deployment.chainId}; refusing to start (point chain.rpcUrl at chain ${deployment.chainId} or use that chain's address book)`,
  );
}

/** The credentials the config file itself holds: a password given by environment is not in the file. */
function passwordKeysSetByFile(config: Config, env: NodeJS.ProcessEnv): string[] {
  const keys: string[] = [];
  if (config.ocpp?.password && !env.TRUSTPILE_OCPP__PASSWORD) keys.push("ocpp.password");
  if (config.mqtt?.password && !env.TRUSTPILE_MQTT__PASSWORD) keys.push("mqtt.password");
  return keys;
}

export function registerStartCommand(program: Command): void {
  program
    .command("start")
    .description("run the agent on the pile until SIGINT/SIGTERM")
    .requiredOption("--config <file>", "the agent config")
    .action(async (options: { config: string }) => {
      const config = loadConfig(options.config);
      const log = createLogger({ name: config.chargePointId });
      const device = await loadDeviceKey(options.config, config, (warning) => log.warn(warning));
      const deployment = readDeployment(config.chain.deployment);
      const provider = await connectProvider(config.chain.rpcUrl);
      await refuseAnotherChain(provider, deployment, config.chain.deployment);

      // `sim` drivers: hw-sim in this process, its meter read through the real Modbus driver over loopback.
      const usesSim = config.meter.driver === "sim" || config.gpio.driver === "sim";
      const simGpio = usesSim ? createSimGpio() : undefined;
      let hwSim: HwSim | undefined;
      if (usesSim) hwSim = await startHwSim({ meterTcpPort: 0, ...(simGpio ? { gpio: simGpio } : {}), gpioLines: config.gpio });
      const meter: Meter =
        config.meter.driver === "sim" && hwSim
          ? createModbusMeter({ model: meterModel("sdm630"), transport: "tcp", host: "127.0.0.1", port: hwSim.meterTcpPort, unitId: 1, timeoutMs: config.meter.timeoutMs })
          : createMeter(config.meter);
      const gpio = await openGpio(config.gpio, {
        ...(simGpio ? { sim: simGpio } : {}),
        ...(config.gpio.sysfsRoot !== undefined ? { sysfsRoot: config.gpio.sysfsRoot } : {}),
      });
      const journal = openJournal(join(config.dataDir, "journal.sqlite"));

      // Before the agent: the telemetry sees the start-up steps too. It connects in the background and never holds
      // the agent up: an unreachable broker only buffers (bounded) and is retried with backoff.
      const telemetry: Telemetry | undefined = config.mqtt
        ? startTelemetry({
            mqtt: config.mqtt,
            chargePointId: config.chargePointId,
            log: log.child({ component: "telemetry" }),
            device: { meterModel: meter.model, softwareVersion: TRUSTPILE_VERSION },
          })
        : undefined;

      // Under systemd (Type=notify): READY=1 below, and WATCHDOG=1 only while the control loop keeps stepping.
      const service = createServiceNotifications({ log: log.child({ component: "systemd" }) });

      const agent = await startAgent({
        core: coreConfigFrom(config),
        pollIntervalMs: config.meter.pollIntervalMs,
        io: { meter, relay: gpio.relay, ...(gpio.feedback ? { feedback: gpio.feedback } : {}), ...(gpio.evPresent ? { evPresent: gpio.evPresent } : {}) },
        chain: { provider, wallet: device.connect(provider), deployment, cpId: cpIdOf(config.chargePointId) },
        journal,
        log,
        onStep: (state, event, commands) => {
          service.stepped();
          telemetry?.onStep(state, event, commands);
        },
        ...(telemetry ? { onSample: telemetry.onSample.bind(telemetry) } : {}),
        ...(config.bidding ? { bidding: biddingPolicyOf(config.bidding) } : {}),
        ...(telemetry?.onAuctionEvent ? { onAuctionEvent: telemetry.onAuctionEvent.bind(telemetry) } : {}),
      }).catch(async (error: unknown) => {
        // The MQTT connection would keep the process alive after a failed start.
        await telemetry?.close(500).catch(() => undefined);
        throw error;
      });
      // After the agent, observing its steps: it connects in the background, so a CSMS that is down never holds
      // the pile up. A CSMS Reset ends this process (after the running session is stopped and its total queued).
      let requestStop: (reason: NodeJS.Signals | `reset ${ResetKind}`) => void = () => undefined;
      const stopRequested = new Promise<NodeJS.Signals | `reset ${ResetKind}`>((resolve) => (requestStop = resolve));
      let ocpp: RunningOcpp | undefined;
      if (config.ocpp) {
        try {
          ocpp = startOcpp({
            config: config.ocpp,
            chargePointId: config.chargePointId,
            confirmations: config.chain.confirmations,
            agent,
            journal,
            log,
            onReset: (kind) => requestStop(`reset ${kind}`),
            meterStaleAfterMs: config.meter.staleAfterMs,
            firmwareVersion: TRUSTPILE_VERSION,
            meterType: meter.model,
          });
        } catch (error) {
          await agent.stop();
          await telemetry?.close(500).catch(() => undefined);
          journal.close();
          throw new UsageError(`${options.config}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
        }
      }
      log.info({ chargePointId: config.chargePointId, signer: device.address, ledger: deployment.ChargingLedger, hwSimControl: hwSim?.controlUrl, ocpp: config.ocpp?.url }, "agent ready");
      await service.ready(`charge point ${config.chargePointId} running`);

      process.once("SIGINT", () => requestStop("SIGINT"));
      process.once("SIGTERM", () => requestStop("SIGTERM"));
      const signal = await stopRequested;
      log.info({ signal }, "stopping: relay open, journal closed");
      await service.stopping(`stopping on ${signal}: relay open, journal closed`);
      await agent.stop();
      // After the agent: the shutdown steps are observed; unsent transaction messages stay queued in the journal.
      await ocpp?.stop().catch((error: unknown) => log.warn({ err: error }, "ocpp stop failed"));
      if (signal.startsWith("reset")) process.exitCode = RESET_EXIT_CODE;
      // After the agent: its last steps (relay open, shutdown) are in the buffer; `offline` goes out, then the rest.
      await telemetry?.close(2_000).catch((error: unknown) => log.warn({ err: error }, "telemetry close failed"));
      journal.close();
      await meter.close().catch(() => undefined);
      await gpio.close().catch(() => undefined);
      await hwSim?.stop().catch(() => undefined);
      provider.destroy();
    });
}

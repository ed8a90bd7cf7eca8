/**
 * What both version adapters open alike: the journal's transaction queue and the connection to the CSMS, tuned by
 * the persisted settings (the 1.6 configuration keys, which 2.0.1 reaches under its own variable names), so a
 * `ChangeConfiguration` / `SetVariables` of a retry or timeout setting takes effect the same way in both.
 */
import type { Logger } from "../logging.ts";
import { connectOcpp, readCaFile, type OcppConnection, type OcppVersion } from "./connection.ts";
import type { StartOcppOptions } from "./index.ts";
import type { OcppModelConfig } from "./model.ts";
import { createTransactionQueue, type TransactionQueue } from "./queue.ts";
import type { V16Configuration } from "./v16-configuration.ts";

export interface OcppLink {
  queue: TransactionQueue;
  connection: OcppConnection;
}

export function openOcppLink(options: StartOcppOptions, version: OcppVersion, configuration: V16Configuration, log: Logger): OcppLink {
  const { config } = options;
  const retryUnitMs = options.retryUnitMs ?? 1000;
  const queue = createTransactionQueue({
    journal: options.journal,
    log,
    retry: () => ({
      attempts: Math.max(1, configuration.getInteger("TransactionMessageAttempts")),
      retryIntervalMs: configuration.getInteger("TransactionMessageRetryInterval") * retryUnitMs,
    }),
  });
  const connection = connectOcpp({
    url: config.url,
    identity: options.chargePointId,
    version,
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(config.caFile === undefined ? {} : { caPem: readCaFile(config.caFile) }),
    log,
    ...(options.reconnectInitialMs === undefined ? {} : { reconnectInitialMs: options.reconnectInitialMs }),
    reconnectMaxMs: config.reconnectMaxDelayS * 1000,
    callTimeoutMs: configuration.getInteger("ConnectionTimeOut") * 1000,
    pingIntervalS: configuration.getInteger("WebSocketPingInterval"),
  });
  return { queue, connection };
}

/**
 * The model's settings, read afresh at each step so a configuration change applies at once; the meter-fault
 * threshold is the agent's own `meter.staleAfterMs` in both versions.
 */
export function modelConfigOf(options: StartOcppOptions, configuration: V16Configuration, connectorId: number): OcppModelConfig {
  return {
    connectorId,
    meterValueSampleIntervalS: configuration.getInteger("MeterValueSampleInterval"),
    clockAlignedDataIntervalS: configuration.getInteger("ClockAlignedDataInterval"),
    ...(options.meterStaleAfterMs === undefined ? {} : { meterStaleAfterMs: options.meterStaleAfterMs }),
  };
}

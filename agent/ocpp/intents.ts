/**
 * What the charge point tells the CSMS, independent of the OCPP version (agent/ocpp/intents.ts).
 * The pure model (agent/ocpp/model.ts) derives intents from the session core's steps and meter samples; a version
 * adapter (1.6: agent/ocpp/v16.ts, 2.0.1: agent/ocpp/v201.ts) turns each into that version's messages. Intents of
 * kind "transaction*" and transaction meter values are queued in the journal (offline operation); status and
 * idle meter values are sent only while connected.
 */
export type ConnectorStatus =
  | "Available" | "Preparing" | "Charging" | "SuspendedEV" | "SuspendedEVSE" | "Finishing" | "Faulted" | "Unavailable";

/** OCPP 1.6 ChargePointErrorCode names; 2.0.1 adapters map them (Faulted + a notification). */
export type ConnectorErrorCode = "NoError" | "PowerMeterFailure" | "PowerSwitchFailure" | "InternalError" | "OtherError";

/** Why a transaction stopped, in OCPP 1.6 `Reason` names; the 2.0.1 adapter maps them to `stoppedReason`. */
export type TransactionStopReason =
  | "DeAuthorized" | "EmergencyStop" | "EVDisconnected" | "HardReset" | "Local" | "Other" | "PowerLoss" | "Reboot"
  | "Remote" | "SoftReset" | "UnlockCommand";

export interface PhaseValues { voltageV: number; currentA: number; powerW: number }

export interface MeterReading {
  atMs: number;
  energyWh: number;
  powerW: number;
  /** L1, L2, L3 in order, where the meter has them. */
  phases: PhaseValues[];
}

export type ReadingContext = "Transaction.Begin" | "Sample.Periodic" | "Sample.Clock" | "Transaction.End" | "Trigger";

export type OcppIntent =
  | { type: "status"; connectorId: number; status: ConnectorStatus; errorCode: ConnectorErrorCode; info?: string; atMs: number }
  /** The on-chain session id is the transaction's identity on the pile; the CSMS's transactionId is mapped to it. */
  | { type: "transactionStarted"; sessionId: bigint; connectorId: number; idTag: string; meterStartWh: number; atMs: number; reading: MeterReading }
  | { type: "meterValues"; sessionId?: bigint; connectorId: number; context: ReadingContext; reading: MeterReading }
  | { type: "transactionStopped"; sessionId: bigint; connectorId: number; meterStopWh: number; atMs: number; reason: TransactionStopReason; reading: MeterReading };

/**
 * The journal settings OCPP keeps per transaction, in one place: whoever writes one names its key here, so the
 * queue's retirement of finished transactions (queue.ts) deletes every one of them and the table stays bounded.
 */

/** Session id → the CSMS's transactionId, written when the CSMS confirms the start. */
export const TRANSACTION_ID_PREFIX = "ocpp.transactionId.";
/** The CSMS's transactionId → session id (RemoteStop, DataTransfer sessionInfo). */
export const SESSION_OF_TRANSACTION_PREFIX = "ocpp.sessionOfTransaction.";
/** Session id → the deposit transaction's hash (DataTransfer sessionInfo). */
export const DEPOSIT_TX_PREFIX = "ocpp.depositTx.";
/** Session id → its Start's reading, from the Start's enqueue until its Stop's enqueue copies it (queue.ts). */
export const BEGIN_READING_PREFIX = "ocpp.beginReading.";
/** Session id → the 2.0.1 adapter's seqNo bookkeeping and remote-start details. */
export const TRANSACTION_RECORD_201_PREFIX = "ocpp201.tx.";

/**
 * The per-transaction settings keyed by the session id. The reverse map (SESSION_OF_TRANSACTION_PREFIX) is keyed by
 * the CSMS's id, which a CSMS may hand out again after its own reset: it is deleted only while it still names the
 * session (see the queue's retirement).
 */
export function sessionSettingKeys(sessionId: string): string[] {
  return [TRANSACTION_ID_PREFIX + sessionId, DEPOSIT_TX_PREFIX + sessionId, BEGIN_READING_PREFIX + sessionId, TRANSACTION_RECORD_201_PREFIX + sessionId];
}

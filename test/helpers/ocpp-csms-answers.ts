/**
 * What a permissive CSMS answers to a charge point's own calls, per OCPP version; shared by the test CSMSs so each
 * answers the same way (the pile's strict mode checks these answers against the version's schemas too).
 */

/** BootNotification and Heartbeat are answered alike in 1.6 and 2.0.1; undefined for any other action. */
function bootOrHeartbeatAnswer(action: string): Record<string, unknown> | undefined {
  const now = new Date().toISOString();
  if (action === "BootNotification") return { status: "Accepted", currentTime: now, interval: 300 };
  if (action === "Heartbeat") return { currentTime: now };
  return undefined;
}

export function permissiveCsmsAnswer201(action: string, params: Record<string, unknown>): Record<string, unknown> {
  const common = bootOrHeartbeatAnswer(action);
  if (common) return common;
  if (action === "Authorize") return { idTokenInfo: { status: "Accepted" } };
  if (action === "TransactionEvent") return params.idToken === undefined ? {} : { idTokenInfo: { status: "Accepted" } };
  return {};
}

/** A 1.6 CSMS's answers; StartTransaction gets transaction ids 1, 2, 3, … in the order the pile asks. */
export function permissiveCsmsAnswer16(): (action: string, params: Record<string, unknown>, messageId: string) => Record<string, unknown> {
  const transactionIds = new Map<string, number>();
  return (action, _params, messageId) => {
    const common = bootOrHeartbeatAnswer(action);
    if (common) return common;
    if (action === "Authorize") return { idTagInfo: { status: "Accepted" } };
    if (action === "StartTransaction") {
      const transactionId = transactionIds.size + 1;
      transactionIds.set(messageId, transactionId);
      return { transactionId, idTagInfo: { status: "Accepted" } };
    }
    if (action === "DataTransfer") return { status: "Accepted" };
    return {};
  };
}

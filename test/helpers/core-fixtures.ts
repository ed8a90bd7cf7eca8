/**
 * Fixtures for tests that drive the session core (agent/core): the config most of them run with, and one set of
 * session terms, so a test states only what it changes.
 */
import type { CoreConfig, SessionTerms } from "../../agent/core/types.ts";

/** Anvil's dev account 1, the depositing EV in the core's unit tests. */
export const TEST_EV_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/** 0.0003 ether per kWh: the price in `sessionTerms`. */
export const TEST_PRICE_WEI_PER_KWH = 300_000_000_000_000n;

/** A pile with 2 confirmations, EV-present and relay-feedback inputs, 3 s staleness; `over` changes any of it. */
export function coreConfig(over: Partial<CoreConfig> = {}): CoreConfig {
  return {
    chargePointId: "cp-001",
    confirmations: 2,
    stopMarginWh: 20,
    staleAfterMs: 3_000,
    feedbackTimeoutMs: 500,
    hasEvPresentInput: true,
    hasFeedbackInput: true,
    stopReadingDelayMs: 1_000,
    stopReadingTimeoutMs: 10_000,
    ...over,
  };
}

/** A deposit of 0.003 ether at 0.0003 ether per kWh (exactly 10,000 Wh), mined in block 10; `over` changes any of it. */
export function sessionTerms(sessionId: bigint, over: Partial<SessionTerms> = {}): SessionTerms {
  return {
    sessionId,
    ev: TEST_EV_ADDRESS,
    depositWei: 3_000_000_000_000_000n,
    priceWeiPerKWh: TEST_PRICE_WEI_PER_KWH,
    maxEnergyWh: 50_000,
    depositBlock: 10,
    depositBlockHash: "0xaa",
    depositTxHash: "0xbb",
    ...over,
  };
}

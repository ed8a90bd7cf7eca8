import type { Config } from "../config/schema.ts";
import type { CoreConfig } from "../core/types.ts";

/** The core's rules, from the validated config. */
export function coreConfigFrom(config: Config): CoreConfig {
  return {
    chargePointId: config.chargePointId,
    confirmations: config.chain.confirmations,
    stopMarginWh: config.session.stopMarginWh,
    staleAfterMs: config.meter.staleAfterMs,
    feedbackTimeoutMs: config.gpio.feedbackTimeoutMs,
    hasEvPresentInput: config.gpio.evPresent !== undefined,
    hasFeedbackInput: config.gpio.feedback !== undefined,
    // One poll after the contacts opened is the earliest reading that includes every Wh delivered.
    stopReadingDelayMs: config.meter.pollIntervalMs,
    stopReadingTimeoutMs: Math.max(10_000, 5 * config.meter.staleAfterMs),
  };
}

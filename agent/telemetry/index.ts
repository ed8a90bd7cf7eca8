/**
 * The telemetry (DESIGN §5.3): `startTelemetry` returns at once and connects in the background. See ./publisher.ts
 * for delivery and reconnects, ./messages.ts for the payloads, ./discovery.ts for Home Assistant.
 */
import { createTelemetry } from "./publisher.ts";
import type { StartTelemetry } from "./types.ts";

export const startTelemetry: StartTelemetry = (options) => createTelemetry(options);

export { createTelemetry, defaultClientId, MQTT_DEFAULTS, type TelemetryTuning } from "./publisher.ts";
export type { MqttConfig, Telemetry, TelemetryMessage, TelemetryOptions, TelemetrySink, TelemetryStats, TelemetryTopic } from "./types.ts";

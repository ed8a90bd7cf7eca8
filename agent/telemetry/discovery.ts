/**
 * Home Assistant MQTT discovery (DESIGN §5.3): one retained config per entity under
 * `homeassistant/<component>/<chargePointId>_<object>/config`, each reading one of the agent's own topics
 * (`meter` or `state`) and marked unavailable while `status` says `offline` (the Last Will included).
 *
 * State classes follow Home Assistant's sensor rules: the meter register is `total_increasing` (what the energy
 * dashboard accepts for grid consumption); the session's energy restarts at 0 with every session, and an energy
 * sensor may not be `measurement`, so it is `total` (its statistics are not meant for the dashboard).
 */
import type { Phase } from "../core/types.ts";
import type { Topics } from "./messages.ts";
import type { TelemetryMessage } from "./types.ts";

export const DISCOVERY_PREFIX = "homeassistant";

/** Every phase, for the `enum` session-state sensor. Checked against the core's `Phase` in both directions. */
const PHASES = [
  "idle",
  "depositPending",
  "authorizing",
  "authorized",
  "energized",
  "suspended",
  "stopping",
  "settling",
  "faulted",
] as const satisfies readonly Phase[];
type MissingPhase = Exclude<Phase, (typeof PHASES)[number]>;
const allPhasesListed: MissingPhase extends never ? true : false = true;
void allPhasesListed;

export interface DiscoveryOptions {
  chargePointId: string;
  topics: Topics;
  meterModel?: string;
  softwareVersion?: string;
}

export interface DiscoveryDevice {
  identifiers: string[];
  name: string;
  manufacturer: string;
  model: string;
  sw_version?: string;
}

/** The keys this agent sets in a discovery payload (Home Assistant's abbreviations are not used). */
export interface DiscoveryConfig {
  name: string;
  unique_id: string;
  object_id: string;
  state_topic: string;
  value_template: string;
  availability_topic: string;
  payload_available: "online";
  payload_not_available: "offline";
  device: DiscoveryDevice;
  device_class?: string;
  unit_of_measurement?: string;
  state_class?: "measurement" | "total" | "total_increasing";
  options?: string[];
  payload_on?: string;
  payload_off?: string;
  json_attributes_topic?: string;
  entity_category?: "diagnostic";
}

export interface DiscoveryEntry {
  component: "sensor" | "binary_sensor";
  object: string;
  topic: string;
  config: DiscoveryConfig;
}

/** Home Assistant's discovery topic levels allow only [a-zA-Z0-9_-]; chargePointId may also hold `.` and `:`. */
export function discoveryNodeId(chargePointId: string): string {
  return chargePointId.replace(/[^A-Za-z0-9_-]/g, "_");
}

export function discoveryEntries(options: DiscoveryOptions): DiscoveryEntry[] {
  const node = discoveryNodeId(options.chargePointId);
  const { topics } = options;
  const device: DiscoveryDevice = {
    identifiers: [`trustpile_${node}`],
    name: `trustpile ${options.chargePointId}`,
    manufacturer: "trustpile",
    model: options.meterModel ? `charge point (${options.meterModel} meter)` : "charge point",
    ...(options.softwareVersion ? { sw_version: options.softwareVersion } : {}),
  };
  const common = (object: string, name: string) => ({
    name,
    unique_id: `trustpile_${node}_${object}`,
    object_id: `${node}_${object}`,
    availability_topic: topics.status,
    payload_available: "online" as const,
    payload_not_available: "offline" as const,
    device,
  });
  const entry = (component: DiscoveryEntry["component"], object: string, config: DiscoveryConfig): DiscoveryEntry => ({
    component,
    object,
    topic: `${DISCOVERY_PREFIX}/${component}/${node}_${object}/config`,
    config,
  });
  return [
    entry("sensor", "power", {
      ...common("power", "Power"),
      state_topic: topics.meter,
      value_template: "{{ value_json.powerW }}",
      device_class: "power",
      unit_of_measurement: "W",
      state_class: "measurement",
    }),
    entry("sensor", "energy", {
      ...common("energy", "Energy"),
      state_topic: topics.meter,
      value_template: "{{ value_json.energyWh }}",
      device_class: "energy",
      unit_of_measurement: "Wh",
      state_class: "total_increasing",
    }),
    entry("sensor", "session_energy", {
      ...common("session_energy", "Session energy"),
      state_topic: topics.state,
      // No session: 0 Wh rather than "unknown".
      value_template: "{{ value_json.energyWh if value_json.energyWh is not none else 0 }}",
      device_class: "energy",
      unit_of_measurement: "Wh",
      state_class: "total",
    }),
    entry("sensor", "session_state", {
      ...common("session_state", "Session state"),
      state_topic: topics.state,
      value_template: "{{ value_json.phase }}",
      device_class: "enum",
      options: [...PHASES],
    }),
    entry("binary_sensor", "relay", {
      ...common("relay", "Relay"),
      state_topic: topics.state,
      value_template: "{{ 'ON' if value_json.relayClosed else 'OFF' }}",
      payload_on: "ON",
      payload_off: "OFF",
      device_class: "power",
    }),
    entry("binary_sensor", "fault", {
      ...common("fault", "Fault"),
      state_topic: topics.state,
      value_template: "{{ 'ON' if value_json.fault is not none or value_json.meterFault is not none else 'OFF' }}",
      payload_on: "ON",
      payload_off: "OFF",
      device_class: "problem",
      // The fault text and the meter fault kind as attributes.
      json_attributes_topic: topics.state,
      entity_category: "diagnostic",
    }),
  ];
}

/** The retained discovery messages, published on every connect when `mqtt.homeAssistant` is on. */
export function discoveryMessages(options: DiscoveryOptions): TelemetryMessage[] {
  return discoveryEntries(options).map((entry) => ({
    topic: entry.topic,
    payload: JSON.stringify(entry.config),
    retain: true,
    kind: "discovery" as const,
  }));
}

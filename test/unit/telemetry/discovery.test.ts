import { describe, expect, it } from "vitest";
import { discoveryMessages, discoveryNodeId } from "../../../agent/telemetry/discovery.ts";
import { createMessageBuilder, topicsFor } from "../../../agent/telemetry/messages.ts";
import { initialState } from "../../../agent/core/step.ts";

const topics = topicsFor("trustpile", "cp-001");
const configs = discoveryMessages({ chargePointId: "cp-001", topics, meterModel: "sdm630", softwareVersion: "0.1.0" });
const byTopic = new Map(configs.map((m) => [m.topic, JSON.parse(m.payload) as Record<string, unknown>]));

describe("Home Assistant discovery configs", () => {
  it("are retained JSON under homeassistant/<component>/<cp>_<object>/config", () => {
    expect([...byTopic.keys()].sort()).toEqual([
      "homeassistant/binary_sensor/cp-001_fault/config",
      "homeassistant/binary_sensor/cp-001_relay/config",
      "homeassistant/sensor/cp-001_energy/config",
      "homeassistant/sensor/cp-001_power/config",
      "homeassistant/sensor/cp-001_session_energy/config",
      "homeassistant/sensor/cp-001_session_state/config",
    ]);
    for (const m of configs) {
      expect(m.retain).toBe(true);
      expect(m.kind).toBe("discovery");
    }
  });

  it("read only topics the agent publishes, and follow the status topic for availability", () => {
    const published = new Set([topics.meter, topics.state]);
    for (const [topic, config] of byTopic) {
      expect(published, `${topic} state_topic`).toContain(config.state_topic);
      if (config.json_attributes_topic !== undefined) expect(published).toContain(config.json_attributes_topic);
      expect(config).toMatchObject({ availability_topic: "trustpile/cp-001/status", payload_available: "online", payload_not_available: "offline" });
    }
  });

  it("name each entity uniquely and group them under one device", () => {
    const ids = [...byTopic.values()].map((c) => c.unique_id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const [topic, config] of byTopic) {
      const object = topic.split("/")[2];
      expect(config.object_id).toBe(object);
      expect(config.unique_id).toBe(`trustpile_${object}`);
      expect(typeof config.name).toBe("string");
      expect(config.device).toEqual({
        identifiers: ["trustpile_cp-001"],
        name: "trustpile cp-001",
        manufacturer: "trustpile",
        model: "charge point (sdm630 meter)",
        sw_version: "0.1.0",
      });
    }
  });

  it("give power, energy and session energy the device class, unit and state class Home Assistant needs", () => {
    expect(byTopic.get("homeassistant/sensor/cp-001_power/config")).toMatchObject({
      state_topic: topics.meter,
      value_template: "{{ value_json.powerW }}",
      device_class: "power",
      unit_of_measurement: "W",
      state_class: "measurement",
    });
    // The energy dashboard accepts a grid-consumption sensor with device_class energy and total_increasing.
    expect(byTopic.get("homeassistant/sensor/cp-001_energy/config")).toMatchObject({
      state_topic: topics.meter,
      value_template: "{{ value_json.energyWh }}",
      device_class: "energy",
      unit_of_measurement: "Wh",
      state_class: "total_increasing",
    });
    expect(byTopic.get("homeassistant/sensor/cp-001_session_energy/config")).toMatchObject({
      state_topic: topics.state,
      device_class: "energy",
      unit_of_measurement: "Wh",
      state_class: "total",
    });
    expect(byTopic.get("homeassistant/sensor/cp-001_session_state/config")).toMatchObject({
      state_topic: topics.state,
      value_template: "{{ value_json.phase }}",
      device_class: "enum",
      options: ["idle", "depositPending", "authorizing", "authorized", "energized", "suspended", "stopping", "settling", "faulted"],
    });
    expect(byTopic.get("homeassistant/binary_sensor/cp-001_relay/config")).toMatchObject({
      state_topic: topics.state,
      device_class: "power",
      payload_on: "ON",
      payload_off: "OFF",
    });
    expect(byTopic.get("homeassistant/binary_sensor/cp-001_fault/config")).toMatchObject({ state_topic: topics.state, device_class: "problem" });
  });

  it("template fields that exist in the payloads they read", () => {
    const builder = createMessageBuilder({ topicPrefix: "trustpile", chargePointId: "cp-001", meterIntervalMs: 0 });
    const [state] = builder.fromStep(initialState(), { type: "startup", atMs: 0 }, []);
    const [meter] = builder.fromSample({ readAtMs: 0, importEnergyWh: 1, powerW: 2, phases: [] });
    const fields = { [topics.state]: Object.keys(JSON.parse(state!.payload)), [topics.meter]: Object.keys(JSON.parse(meter!.payload)) };
    for (const [topic, config] of byTopic) {
      const used = [...String(config.value_template).matchAll(/value_json\.(\w+)/g)].map((match) => match[1]);
      expect(used.length, topic).toBeGreaterThan(0);
      for (const field of used) expect(fields[String(config.state_topic)], `${topic} reads ${field}`).toContain(field);
    }
  });

  it("make a charge point id with . or : a valid discovery topic level", () => {
    expect(discoveryNodeId("site.a:cp-1")).toBe("site_a_cp-1");
    const odd = discoveryMessages({ chargePointId: "site.a:cp-1", topics: topicsFor("trustpile", "site.a:cp-1") });
    for (const m of odd) expect(m.topic).toMatch(/^homeassistant\/(sensor|binary_sensor)\/site_a_cp-1_[a-z_]+\/config$/);
    expect(JSON.parse(odd[0]!.payload).device.model).toBe("charge point");
  });
});

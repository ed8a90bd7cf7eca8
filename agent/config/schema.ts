/**
 * The agent's config (DESIGN §5.2). Every leaf registers, in words, what a pile owner must write there; the loader
 * quotes it in errors (`meter.staleAfterMs: expected integer ms > 0, got "5s"`), so the schema states each
 * expectation once.
 *
 * Required keys are the ones no default can stand in for: `chargePointId`, `chain.keystore` (the device key signs
 * every settlement, so it is never generated silently) and `gpio.relay.line` (guessing a GPIO line could switch
 * the wrong pin); `gpio.relay` may be left out only with `gpio.driver: sim`, where hw-sim owns the relay.
 * Sections whose keys all have defaults (`meter`, `session`, and `chain`/`gpio` apart from the keys above) may be
 * left out; they are filled in as if written `{}`, so a missing `chain` reports `chain.keystore` by name.
 */
import { z } from "zod";

/** What a key expects, in words a pile owner reads in an error. */
export interface Expectation {
  expected: string;
}

export const expectations = z.registry<Expectation>();

function expecting<T extends z.ZodType>(schema: T, expected: string): T {
  expectations.add(schema, { expected });
  return schema;
}

const positiveMs = (): z.ZodNumber => expecting(z.number().int().positive(), "integer ms > 0");

// File paths; relative ones are resolved against the config file's directory by the loader.
const filePath = (what: string): z.ZodString => expecting(z.string().min(1), `${what} (file path)`);

const gpioLineNumber = (): z.ZodNumber => expecting(z.number().int().min(0).max(1023), "GPIO line offset, integer 0..1023");

const gpioLine = z.strictObject({
  line: gpioLineNumber(),
  activeLow: expecting(z.boolean(), "true or false").default(false),
});

// Prices are wei, beyond 2^53, so they are written as quoted decimal strings and parsed exactly.
const weiAmount = expecting(
  z.string().regex(/^[0-9]{1,78}$/),
  'decimal wei amount as a quoted string, e.g. "250000000000000"',
).transform((decimal) => BigInt(decimal));

export const METER_BAUD_RATES = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] as const;

const chainSchema = z.strictObject({
  rpcUrl: expecting(z.url({ protocol: /^(https?|wss?)$/ }), "http(s):// or ws(s):// URL of the chain's JSON-RPC").default(
    "http://127.0.0.1:8545",
  ),
  deployment: filePath("address book JSON written by `trustpile chain deploy`").default("./deployment.json"),
  confirmations: expecting(z.number().int().min(0).max(64), "integer block count 0..64").default(2),
  keystore: filePath("encrypted JSON keystore of the device key"),
  passwordFile: filePath("file holding the keystore password").optional(),
});

const meterSchema = z
  .strictObject({
    driver: expecting(z.enum(["sdm630", "sdm120", "em340", "sim"]), "one of sdm630, sdm120, em340, sim").default("sdm630"),
    transport: expecting(z.enum(["rtu", "tcp", "rtu-over-tcp"]), "one of rtu, tcp, rtu-over-tcp").default("rtu"),
    device: expecting(z.string().min(1), "serial device path, e.g. /dev/ttyUSB0").default("/dev/ttyUSB0"),
    baudRate: expecting(
      z.literal(METER_BAUD_RATES),
      `baud rate, one of ${METER_BAUD_RATES.join(", ")}`,
    ).default(9600),
    parity: expecting(z.enum(["none", "even", "odd"]), "one of none, even, odd").default("none"),
    unitId: expecting(z.number().int().min(1).max(247), "Modbus unit id, integer 1..247").default(1),
    host: expecting(z.string().min(1), "host name or IP address of the Modbus gateway").default("127.0.0.1"),
    port: expecting(z.number().int().min(1).max(65535), "TCP port, integer 1..65535").default(502),
    pollIntervalMs: positiveMs().default(1000),
    timeoutMs: positiveMs().default(500),
    staleAfterMs: positiveMs().default(3000),
  })
  .superRefine((meter, ctx) => {
    // A reading must be able to arrive at least once before it counts as stale, or every poll would be a fault.
    if (meter.staleAfterMs <= meter.pollIntervalMs) {
      ctx.addIssue({
        code: "custom",
        path: ["staleAfterMs"],
        message: `expected more than meter.pollIntervalMs (${meter.pollIntervalMs}), got ${meter.staleAfterMs}`,
      });
    }
  });

const GPIO_LINE_KEYS = ["relay", "feedback", "evPresent"] as const;

const gpioSchema = z
  .strictObject({
    driver: expecting(z.enum(["onoff", "sim"]), "one of onoff, sim").default("onoff"),
    relay: gpioLine.optional(),
    feedback: gpioLine.optional(),
    evPresent: gpioLine.optional(),
    feedbackTimeoutMs: positiveMs().default(500),
    // Where the sysfs GPIO class lives, for `driver: onoff`; absent means /sys/class/gpio (the drivers' default).
    // Only a board with sysfs mounted elsewhere, or a test pointing the real CLI at a fake tree, sets it. Absolute,
    // so it never depends on the directory the config file is in.
    sysfsRoot: expecting(
      z.string().regex(/^\/./),
      "absolute path of the sysfs GPIO class directory (default /sys/class/gpio)",
    ).optional(),
  })
  .superRefine((gpio, ctx) => {
    if (gpio.relay === undefined && gpio.driver !== "sim") {
      ctx.addIssue({ code: "custom", path: ["relay", "line"], message: "required unless gpio.driver is sim, missing" });
    }
    // One line wired to two roles would read the relay's own output as feedback or EV presence.
    const keyByLine = new Map<number, string>();
    for (const key of GPIO_LINE_KEYS) {
      const line = gpio[key]?.line;
      if (line === undefined) continue;
      const earlierKey = keyByLine.get(line);
      if (earlierKey === undefined) {
        keyByLine.set(line, key);
        continue;
      }
      ctx.addIssue({
        code: "custom",
        path: [key, "line"],
        message: `expected a line distinct from gpio.${earlierKey}.line, got ${line} for both gpio.${earlierKey}.line and gpio.${key}.line`,
      });
    }
  });

const ocppSchema = z.strictObject({
  url: expecting(z.url({ protocol: /^wss?$/ }), "ws:// or wss:// URL of the CSMS"),
  // Unquoted `version: 1.6` is a number in YAML; accept it rather than fail on a quoting detail.
  version: z
    .preprocess(
      (version) => (version === 1.6 ? "1.6" : version),
      expecting(z.enum(["1.6", "2.0.1"]), 'OCPP version "1.6" or "2.0.1"'),
    )
    .default("1.6"),
  password: expecting(z.string(), "string (quote digits-only passwords in YAML)").optional(),
  connectorId: expecting(z.number().int().min(1), "integer >= 1").default(1),
  // Security profile 2 (wss:// with a private CA); the system CAs otherwise. Relative to the config file.
  caFile: filePath("PEM file with the CSMS's CA certificate").optional(),
  // Boot fields the CSMS sees (BootNotification chargePointVendor/chargePointModel, CiString20).
  vendor: expecting(z.string().min(1).max(20), "1-20 characters").default("trustpile"),
  model: expecting(z.string().min(1).max(20), "1-20 characters").default("trustpile-cp"),
  // Reconnect back-off after a lost or failed connection: doubles from 1 s up to this cap.
  reconnectMaxDelayS: expecting(z.number().int().min(1).max(3600), "integer seconds 1..3600").default(60),
});

const mqttSchema = z.strictObject({
  url: expecting(z.url({ protocol: /^(mqtts?|wss?)$/ }), "mqtt(s):// or ws(s):// URL of the broker"),
  username: expecting(z.string(), "string").optional(),
  password: expecting(z.string(), "string (quote digits-only passwords in YAML)").optional(),
  // Wildcards and empty levels would make the agent's topics unsubscribable (MQTT 3.1.1 §4.7).
  topicPrefix: expecting(
    z.string().regex(/^[^/#+\s]+(\/[^/#+\s]+)*$/),
    "topic levels without +, # or empty levels, e.g. trustpile",
  ).default("trustpile"),
  homeAssistant: expecting(z.boolean(), "true or false").default(true),
  // TLS trust for mqtts:// and wss:// brokers with a private CA; the system CAs otherwise.
  caFile: filePath("PEM file with the broker's CA certificate").optional(),
  // Left unset they take the defaults in agent/telemetry/publisher.ts (MQTT_DEFAULTS): every poll, 1000 messages,
  // `trustpile-<chargePointId>`. Optional rather than defaulted so a parsed config lists only what was written.
  meterIntervalMs: expecting(z.number().int().min(0), "integer ms >= 0 (0 = every meter poll)").optional(),
  bufferLimit: expecting(z.number().int().min(10), "integer message count >= 10").optional(),
  clientId: expecting(
    z.string().min(1).max(64).regex(/^[A-Za-z0-9\-_.:]+$/),
    "1-64 characters of letters, digits and - _ . :",
  ).optional(),
});

const sessionSchema = z.strictObject({
  stopMarginWh: expecting(z.number().int().min(0), "integer Wh >= 0").default(20),
  authTimeoutS: expecting(z.number().int().positive(), "integer seconds > 0").default(600),
});

const biddingSchema = z
  .strictObject({
    enabled: expecting(z.boolean(), "true or false").default(false),
    floorPricePerKWh: weiAmount.optional(),
    undercutStep: weiAmount.optional(),
  })
  .superRefine((bidding, ctx) => {
    if (!bidding.enabled) return;
    for (const key of ["floorPricePerKWh", "undercutStep"] as const) {
      if (bidding[key] === undefined) {
        ctx.addIssue({ code: "custom", path: [key], message: "required when bidding.enabled is true, missing" });
      }
    }
  });

const ownerSchema = z.strictObject({
  contact: expecting(z.string().min(1), "non-empty contact text, e.g. name and phone"),
});

// A section written with every key commented out (`meter:`) is null in YAML; it means "all defaults" or "absent",
// not a type error. `.prefault({})` is not used: chain and gpio have required keys, so `{}` is no valid input to
// prefault with, while preprocessing lets them report those keys by name.
function sectionWithDefaults<T extends z.ZodType>(section: T): z.ZodPreprocess<T> {
  return z.preprocess((value) => value ?? {}, section);
}

function optionalSection<T extends z.ZodType>(section: T): z.ZodPreprocess<z.ZodOptional<T>> {
  return z.preprocess((value) => value ?? undefined, section.optional());
}

export const configSchema = z.strictObject({
  chargePointId: expecting(
    z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9\-_.:]+$/),
    "1-64 characters of letters, digits and - _ . :",
  ),
  dataDir: filePath("directory for the journal and state").default("/var/lib/trustpile"),
  chain: sectionWithDefaults(chainSchema),
  meter: sectionWithDefaults(meterSchema),
  gpio: sectionWithDefaults(gpioSchema),
  ocpp: optionalSection(ocppSchema),
  mqtt: optionalSection(mqttSchema),
  session: sectionWithDefaults(sessionSchema),
  bidding: optionalSection(biddingSchema),
  owner: optionalSection(ownerSchema),
});

export type Config = z.infer<typeof configSchema>;

/** The schema written at `path`, or undefined if no key has that path. */
export function schemaAtPath(path: readonly PropertyKey[]): z.ZodType | undefined {
  let schema: z.ZodType = configSchema;
  for (const key of path) {
    const section = unwrapSchema(schema);
    if (!(section instanceof z.ZodObject) || typeof key !== "string" || !Object.hasOwn(section.shape, key)) {
      return undefined;
    }
    schema = section.shape[key] as z.ZodType;
  }
  return schema;
}

/** The keys of the section at `path` (the top level for `[]`), or undefined if it is not a section. */
export function sectionKeys(path: readonly PropertyKey[]): string[] | undefined {
  const schema = schemaAtPath(path);
  const section = schema && unwrapSchema(schema);
  return section instanceof z.ZodObject ? Object.keys(section.shape) : undefined;
}

/** The first registered expectation met while unwrapping the schema at `path`. */
export function expectationAtPath(path: readonly PropertyKey[]): string | undefined {
  let schema = schemaAtPath(path);
  while (schema) {
    const expectation = expectations.get(schema);
    if (expectation) return expectation.expected;
    const inner = innerSchema(schema);
    if (inner === schema) return undefined;
    schema = inner;
  }
  return undefined;
}

/** Strips defaults, optionals and transforms down to the schema that checks the written value. */
export function unwrapSchema(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (let inner = innerSchema(current); inner !== current; inner = innerSchema(current)) current = inner;
  return current;
}

function innerSchema(schema: z.ZodType): z.ZodType {
  if (
    schema instanceof z.ZodDefault ||
    schema instanceof z.ZodPrefault ||
    schema instanceof z.ZodOptional ||
    schema instanceof z.ZodNullable
  ) {
    return schema.unwrap() as z.ZodType;
  }
  if (schema instanceof z.ZodPipe) {
    // A preprocess pipe checks the written value in `out`; a transform pipe checks it in `in`.
    return (schema.in instanceof z.core.$ZodTransform ? schema.out : schema.in) as z.ZodType;
  }
  return schema;
}

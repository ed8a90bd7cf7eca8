/**
 * Config fuzzing (issue 11 item 3): random mutations of valid configs (agent/config/example.yaml and a minimal
 * sim config) go through `loadConfig`, which must either accept them — and then its result validates again — or
 * throw a ConfigError (a UsageError, exit code 2) whose problems are single lines, each naming the key path, the
 * env var or the file it is about. Never another exception type. Replay a failure with FUZZ_SEED=<seed>.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../agent/config/load.ts";
import { configSchema, sectionKeys } from "../../agent/config/schema.ts";
import { UsageError } from "../../agent/errors.ts";
import { CategoryCounter, FuzzRandom, fuzzSeed } from "./fuzz-random.ts";

const SEED = fuzzSeed(0xc0_4f19);
const CASES = 1_000;

const EXAMPLE_YAML = readFileSync(new URL("../../agent/config/example.yaml", import.meta.url), "utf8");
const MINIMAL_SIM_YAML = [
  "chargePointId: sim-cp.01",
  "chain: { keystore: ./device-key.json, confirmations: 0 }",
  "meter: { driver: sim, pollIntervalMs: 200, staleAfterMs: 1000 }",
  "gpio: { driver: sim }",
  "ocpp: { url: wss://csms.example/ocpp, version: '2.0.1' }",
  "bidding: { enabled: true, floorPricePerKWh: '1', undercutStep: '1' }",
  "",
].join("\n");
const BASES = [
  { name: "example.yaml", text: EXAMPLE_YAML },
  { name: "minimal sim", text: MINIMAL_SIM_YAML },
];

const tempDir = mkdtempSync(join(tmpdir(), "trustpile-fuzz-config-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

type Raw = Record<string, unknown>;

interface Mutant {
  category: string;
  text: string;
  env: NodeJS.ProcessEnv;
  /** The problem label the mutation must produce if the config is rejected (a key path, env var or the file). */
  names?: string;
  /** The mutation certainly makes the config invalid. */
  mustReject: boolean;
}

function isMapping(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Every path in `raw` whose value is not a mapping (leaves), and every mapping (sections). */
function pathsOf(raw: Raw, prefix: string[] = []): { leaves: string[][]; sections: string[][] } {
  const leaves: string[][] = [];
  const sections: string[][] = [prefix];
  for (const [key, value] of Object.entries(raw)) {
    const path = [...prefix, key];
    if (isMapping(value)) {
      const inner = pathsOf(value, path);
      leaves.push(...inner.leaves);
      sections.push(...inner.sections);
    } else leaves.push(path);
  }
  return { leaves, sections };
}

function getAt(raw: Raw, path: string[]): unknown {
  let value: unknown = raw;
  for (const key of path) value = isMapping(value) ? value[key] : undefined;
  return value;
}

function setAt(raw: Raw, path: string[], value: unknown): void {
  const parent = getAt(raw, path.slice(0, -1));
  if (isMapping(parent)) parent[path.at(-1) as string] = value;
}

function deleteAt(raw: Raw, path: string[]): void {
  const parent = getAt(raw, path.slice(0, -1));
  if (isMapping(parent)) delete parent[path.at(-1) as string];
}

const label = (path: string[]): string => (path.length === 0 ? "(top level)" : path.join("."));
const envName = (path: string[]): string =>
  `TRUSTPILE_${path.map((key) => key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("__")}`;

/** A value of a different type than `value` that no key accepts in place of a value of that type. */
function wrongTypeFor(value: unknown, random: FuzzRandom): unknown {
  const byType: Record<string, unknown[]> = {
    number: ["not-a-number", true, [1, 2], { nested: 1 }],
    string: [4242, false, ["a"], { nested: "x" }],
    boolean: ["yes", 1, [true], { nested: true }],
  };
  return random.pick(byType[typeof value] ?? ["x"]);
}

const URL_KEYS: Record<string, string[]> = {
  "chain.rpcUrl": ["mqtt://127.0.0.1:1883", "ftp://rpc.example", "localhost:8545", "", "http//no-colon", "not a url"],
  "ocpp.url": ["http://csms.example/ocpp", "mqtt://csms.example", "csms.example/ocpp", "", "ws//x"],
  "mqtt.url": ["http://broker.example", "tcp://127.0.0.1:1883", "", "broker:1883", "mqtt//x"],
};

function mutate(base: { name: string; text: string }, random: FuzzRandom, file: string): Mutant {
  const raw = YAML.parse(base.text) as Raw;
  const { leaves, sections } = pathsOf(raw);
  const numericLeaves = leaves.filter((path) => typeof getAt(raw, path) === "number");
  const stringLeaves = leaves.filter((path) => typeof getAt(raw, path) === "string");
  const urlLeaves = leaves.filter((path) => URL_KEYS[label(path)] !== undefined);
  const yaml = (): string => YAML.stringify(raw, { aliasDuplicateObjects: false });
  const category = random.pick([
    "delete key",
    "unknown key",
    "wrong type",
    "out of range",
    "huge string",
    "bad url",
    "yaml syntax",
    "duplicate key",
    "deep nesting",
    "env garbage value",
    "env unknown name",
    "not a mapping",
    "prototype key",
  ] as const);
  switch (category) {
    case "delete key": {
      const path = random.pick([...leaves, ...sections.filter((section) => section.length > 0)]);
      deleteAt(raw, path);
      return { category, text: yaml(), env: {}, mustReject: false };
    }
    case "unknown key": {
      const section = random.pick(sections);
      const key = random.pick(["baudRat", "rpcURL", "relais", "x".repeat(random.int(1, 300)), `k${random.int(0, 1e6)}`, "chargepointid"]);
      const target = section.length === 0 ? raw : (getAt(raw, section) as Raw);
      if (Object.hasOwn(target, key)) return { category, text: yaml(), env: {}, mustReject: false };
      target[key] = random.pick([1, "x", true, null, { a: 1 }]);
      return { category, text: yaml(), env: {}, names: label([...section, key]), mustReject: true };
    }
    case "wrong type": {
      const path = random.pick(leaves);
      setAt(raw, path, wrongTypeFor(getAt(raw, path), random));
      return { category, text: yaml(), env: {}, names: label(path), mustReject: true };
    }
    case "out of range": {
      const path = random.pick(numericLeaves);
      setAt(raw, path, random.pick([-1, -1e9, 1.5, 0.001, 1e20, Number.NaN, Infinity, -Infinity, 2 ** 53 + 2]));
      return { category, text: yaml(), env: {}, names: label(path), mustReject: true };
    }
    case "huge string": {
      const path = random.pick(stringLeaves);
      setAt(raw, path, random.pick(["é", "x", "\u0000", "🔌", " "]).repeat(random.int(1_000, 30_000)));
      return { category, text: yaml(), env: {}, names: label(path), mustReject: false };
    }
    case "bad url": {
      const path = random.pick(urlLeaves);
      setAt(raw, path, random.pick(URL_KEYS[label(path)] ?? []));
      return { category, text: yaml(), env: {}, names: label(path), mustReject: true };
    }
    case "yaml syntax": {
      const lines = base.text.split("\n");
      const at = random.int(0, lines.length - 1);
      const breaker = random.pick(["  bad: [unclosed", 'key: "unterminated', "\tindented: 1", "}", "- a list item", "a: b: c", "? [", "&anchor *alias"]);
      lines.splice(at, 0, breaker);
      const text = lines.join("\n");
      const broken = YAML.parseDocument(text).errors.length > 0;
      return { category, text, env: {}, ...(broken && { names: file }), mustReject: broken };
    }
    case "duplicate key": {
      const key = random.pick(Object.keys(raw));
      return { category, text: `${base.text}\n${key}: ${random.pick(["1", "x", "{}", "[1]"])}\n`, env: {}, names: file, mustReject: true };
    }
    case "deep nesting": {
      const depth = random.int(50, 5_000);
      const deep = random.chance(0.5) ? `${"[".repeat(depth)}${"]".repeat(depth)}` : `${"{a: ".repeat(depth)}1${"}".repeat(depth)}`;
      const path = random.pick(leaves);
      // Written by hand: YAML.stringify would turn a deep value back into block style, lines thousands deep.
      setAt(raw, path, "DEEP_PLACEHOLDER");
      return { category, text: yaml().replace("DEEP_PLACEHOLDER", deep), env: {}, mustReject: true, names: depth > 500 ? undefined : label(path) };
    }
    case "env garbage value": {
      const path = random.pick(leaves);
      const value = random.pick(["garbage", "-1", "1e999", "0x10", "NaN", "true", "[1]", "{a: 1}", "é".repeat(random.int(1, 5_000)), " 5 "]);
      return { category, text: base.text, env: { [envName(path)]: value }, mustReject: false, names: envName(path) };
    }
    case "env unknown name": {
      const name = random.pick([
        "TRUSTPILE_",
        "TRUSTPILE____",
        "TRUSTPILE___PROTO__",
        "TRUSTPILE_CONSTRUCTOR",
        "TRUSTPILE_CHAIN",
        "TRUSTPILE_METER",
        "TRUSTPILE_CHARGE_POINT_ID__X",
        "TRUSTPILE_CHAIN__RPC_URL__HOST",
        "TRUSTPILE_METR__PORT",
        `TRUSTPILE_${"X".repeat(random.int(1, 200))}`,
        "TRUSTPILE_GPIO__RELAY",
      ]);
      return { category, text: base.text, env: { [name]: random.pick(["1", "x", "true"]) }, mustReject: true, names: name };
    }
    case "not a mapping":
      return { category, text: random.pick(["- a\n- b\n", "just a string\n", "42\n", "null\n", "~\n", "[]\n", '"quoted"\n']), env: {}, mustReject: true };
    case "prototype key": {
      const section = random.pick(sections);
      const key = random.pick(["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"]);
      const target = section.length === 0 ? raw : (getAt(raw, section) as Raw);
      // defineProperty makes `__proto__` an own key, so YAML writes it as a key rather than changing the prototype.
      Object.defineProperty(target, key, { value: { polluted: true }, enumerable: true, configurable: true, writable: true });
      return { category, text: yaml(), env: {}, names: label([...section, key]), mustReject: true };
    }
  }
}

/** The config as written, bigints back to the quoted decimal strings the schema parses. */
function asWritten(config: unknown): unknown {
  return JSON.parse(JSON.stringify(config, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value)));
}

const KNOWN_SECTION_KEYS = new Set(sectionKeys([]) ?? []);

describe(`config fuzzing: ${CASES} mutated configs (seed ${SEED}, FUZZ_SEED=${SEED} to replay)`, () => {
  it("accepts a mutant only if its result validates again, else throws a ConfigError naming the key", () => {
    const random = new FuzzRandom(SEED);
    const counter = new CategoryCounter();
    const outcomes = new CategoryCounter();
    for (let index = 0; index < CASES; index++) {
      const base = random.pick(BASES);
      const file = join(tempDir, `case-${index}.yaml`);
      const mutant = mutate(base, random, file);
      counter.add(mutant.category);
      writeFileSync(file, mutant.text);
      const where = `seed ${SEED} case ${index} (${mutant.category} of ${base.name}, env ${JSON.stringify(Object.keys(mutant.env))}): ${file}`;
      let thrown: unknown;
      let accepted: unknown;
      try {
        accepted = loadConfig(file, mutant.env);
      } catch (error) {
        thrown = error;
      }
      if (thrown === undefined) {
        outcomes.add("accepted");
        expect(mutant.mustReject, `${where}: accepted a config that must be rejected`).toBe(false);
        const again = configSchema.safeParse(asWritten(accepted));
        expect(again.success, `${where}: accepted config does not validate again: ${again.error?.message ?? ""}`).toBe(true);
        rmSync(file);
        continue;
      }
      outcomes.add("rejected");
      expect(thrown, `${where}: threw ${String(thrown)}`).toBeInstanceOf(ConfigError);
      const error = thrown as ConfigError;
      expect(error).toBeInstanceOf(UsageError);
      expect(error.exitCode, where).toBe(2);
      expect(error.problems.length, where).toBeGreaterThan(0);
      expect(error.message.startsWith(`config ${file}`), `${where}: ${error.message.slice(0, 200)}`).toBe(true);
      expect(error.message, where).not.toMatch(/\n\s+at /);
      for (const problem of error.problems) {
        expect(problem, `${where}: a problem spans lines`).not.toContain("\n");
        expect(problem.length, `${where}: problem too long: ${problem.slice(0, 200)}`).toBeLessThan(600);
        // Each problem begins with what it is about: the file, an env var, a key path, or "(top level)".
        const subject = problem.slice(0, problem.indexOf(": "));
        const namesSomething =
          subject === file ||
          subject === "(top level)" ||
          /^TRUSTPILE_\w*( \([\w.]+\))?$/.test(subject) ||
          (/^[\w.$-]+$/.test(subject) && (KNOWN_SECTION_KEYS.has(subject.split(".")[0] ?? "") || problem.includes("unknown key")));
        expect(namesSomething, `${where}: problem names nothing: ${problem.slice(0, 200)}`).toBe(true);
        expect(problem, `${where}: problem names an empty key`).not.toMatch(/no such config key\s*$/);
      }
      if (mutant.names !== undefined) {
        const named = error.problems.some((problem) => problem.startsWith(`${mutant.names}:`) || problem.startsWith(`${mutant.names} (`));
        expect(named, `${where}: no problem names ${mutant.names}: ${JSON.stringify(error.problems).slice(0, 400)}`).toBe(true);
      }
      rmSync(file);
    }
    // A generator that drew only some categories, or never one outcome, would test less than it claims.
    expect(counter.counts.size, `seed ${SEED}: categories drawn: ${counter.summary()}`).toBe(13);
    for (const [category, count] of counter.counts) expect(count, `seed ${SEED}: ${category}`).toBeGreaterThanOrEqual(40);
    expect(outcomes.counts.get("accepted") ?? 0, `seed ${SEED}: ${outcomes.summary()}`).toBeGreaterThan(50);
    expect(outcomes.counts.get("rejected") ?? 0, `seed ${SEED}: ${outcomes.summary()}`).toBeGreaterThan(CASES / 2);
  }, 120_000);
});

describe("config fuzzing: regressions", () => {
  // Found by seed 12603161 case 83: TRUSTPILE____ (and TRUSTPILE_, TRUSTPILE___PROTO__) reported
  // "no such config key " with an empty name, naming nothing the user could fix.
  it.each(["TRUSTPILE_", "TRUSTPILE____", "TRUSTPILE___PROTO__", "TRUSTPILE_CHAIN____RPC_URL"])(
    "an env var with an empty key segment (%s) is named with what was expected",
    (name) => {
      const file = join(tempDir, "example.yaml");
      writeFileSync(file, EXAMPLE_YAML);
      expect(() => loadConfig(file, { [name]: "1" })).toThrow(
        new ConfigError(file, [`${name}: empty key name, expected sections and keys joined by "__", e.g. TRUSTPILE_CHAIN__RPC_URL`]),
      );
    },
  );
});

/**
 * Reads, overrides and validates the config (DESIGN §5.2). Every problem is one line naming the key path, what was
 * expected and what was written (`meter.staleAfterMs: expected integer ms > 0, got "5s"`), so a pile owner can fix a
 * file without reading zod's issue JSON. All problems are collected before failing, so one run lists them all.
 */
import { readFileSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { UsageError } from "../errors.ts";
import { type Config, configSchema, expectationAtPath, schemaAtPath, sectionKeys, unwrapSchema } from "./schema.ts";

/** A config that failed to load; `problems` holds one line per problem, in the schema's key order. */
export class ConfigError extends UsageError {
  readonly problems: string[];

  constructor(source: string, problems: string[]) {
    super(
      problems.length === 1
        ? `config ${source}: ${problems[0]}`
        : `config ${source} has ${problems.length} problems:\n${problems.map((problem) => `  ${problem}`).join("\n")}`,
    );
    this.problems = problems;
  }
}

/** A checked config, or its problems. `envOverrides` names the env vars that overrode a key. */
export type ConfigCheck = { ok: true; config: Config; envOverrides: string[] } | { ok: false; problems: string[] };

export interface ParseOptions {
  /** Env vars to apply as `TRUSTPILE_<PATH>` overrides; none unless given. */
  env?: NodeJS.ProcessEnv;
  /** Directory relative paths are resolved against; defaults to the directory of `source`. */
  baseDir?: string;
}

const ENV_PREFIX = "TRUSTPILE_";
const ENV_PATH_SEPARATOR = "__";

/** Loads the config at `path`, with `TRUSTPILE_*` overrides from `env`; throws ConfigError listing every problem. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const check = checkConfig(path, env);
  if (!check.ok) throw new ConfigError(path, check.problems);
  return check.config;
}

/** Validates an already parsed config; throws ConfigError listing every problem. */
export function parseConfig(raw: unknown, source: string, options: ParseOptions = {}): Config {
  const check = validateConfig(raw, source, options);
  if (!check.ok) throw new ConfigError(source, check.problems);
  return check.config;
}

/** Like loadConfig, but returns the problems instead of throwing. */
export function checkConfig(path: string, env: NodeJS.ProcessEnv = process.env): ConfigCheck {
  const file = readConfigFile(path);
  if (!file.ok) return { ok: false, problems: [oneLine(file.problem)] };
  return validateConfig(file.raw, path, { env, baseDir: dirname(resolve(path)) });
}

/** Like parseConfig, but returns the problems instead of throwing. */
export function validateConfig(raw: unknown, source: string, options: ParseOptions = {}): ConfigCheck {
  const overridden = applyEnvOverrides(raw, options.env ?? {});
  const result = configSchema.safeParse(overridden.raw);
  const problems = [...overridden.problems];
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(...describeIssue(issue, overridden.raw, overridden.envNameByPath));
    }
  }
  if (!result.success || problems.length > 0) return { ok: false, problems: [...new Set(problems.map(oneLine))] };
  const config = resolvePaths(result.data, options.baseDir ?? dirname(resolve(source)));
  return { ok: true, config, envOverrides: [...overridden.envNameByPath.values()] };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading files

type FileRead = { ok: true; raw: unknown } | { ok: false; problem: string };

function readConfigFile(path: string): FileRead {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    // Node's message repeats the path after a comma ("ENOENT: no such file or directory, open 'x'").
    const reason = error instanceof Error ? (error.message.split(", ")[0] ?? error.message) : String(error);
    return { ok: false, problem: `${path}: cannot read (${reason})` };
  }
  if (text.trim() === "") return { ok: false, problem: `${path}: empty file, expected a mapping of config keys` };
  const extension = extname(path).toLowerCase();
  if (extension === ".json") return parseJson(path, text);
  if (extension === ".yaml" || extension === ".yml") return parseYaml(path, text);
  const json = parseJson(path, text);
  return json.ok ? json : parseYaml(path, text);
}

function parseJson(path: string, text: string): FileRead {
  try {
    return { ok: true, raw: JSON.parse(text) as unknown };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = /at position (\d+)/.exec(message)?.[1];
    // V8 words it either "… in JSON at position N" or "…, "<the source>" is not valid JSON"; keep only the reason.
    const reason = message.replace(/ in JSON at position \d+.*$/s, "").replace(/, ".*" is not valid JSON$/s, "");
    if (position === undefined) return { ok: false, problem: `${path}: invalid JSON: ${reason}` };
    const before = text.slice(0, Number(position)).split("\n");
    const line = before.length;
    const column = (before.at(-1)?.length ?? 0) + 1;
    return { ok: false, problem: `${path}: invalid JSON at line ${line} column ${column}: ${reason}` };
  }
}

function parseYaml(path: string, text: string): FileRead {
  const document = YAML.parseDocument(text);
  // Later YAML errors are usually knock-on effects of the first, so only the first is reported.
  const [error] = document.errors;
  if (error) {
    const reason = (error.message.split("\n")[0] ?? error.message).replace(/ at line \d+, column \d+:?$/, "");
    const position = error.linePos?.[0];
    const where = position ? ` at line ${position.line} column ${position.col}` : "";
    return { ok: false, problem: `${path}: invalid YAML${where}: ${reason}` };
  }
  try {
    return { ok: true, raw: document.toJS() as unknown };
  } catch (toJsError) {
    const reason = toJsError instanceof Error ? toJsError.message : String(toJsError);
    return { ok: false, problem: `${path}: invalid YAML: ${reason}` };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Env overrides: TRUSTPILE_CHAIN__RPC_URL -> chain.rpcUrl

interface Overridden {
  raw: unknown;
  problems: string[];
  /** The env var that set each overridden key, by dotted key path. */
  envNameByPath: Map<string, string>;
}

function applyEnvOverrides(raw: unknown, env: NodeJS.ProcessEnv): Overridden {
  const overridden: Overridden = { raw: structuredClone(raw), problems: [], envNameByPath: new Map() };
  const names = Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX))
    .sort();
  for (const name of names) {
    const value = env[name];
    // Compose files and unit templates pass unset variables as empty strings; an empty value overrides nothing.
    if (value === undefined || value === "") continue;
    const path = envNameToPath(name);
    if (typeof path === "string") {
      overridden.problems.push(path);
      continue;
    }
    const keysOfSection = sectionKeys(path);
    if (keysOfSection !== undefined) {
      const example = keysOfSection[0] ?? "";
      overridden.problems.push(
        `${name}: ${keyPathLabel(path)} is a section, expected one of its keys, e.g. ${pathToEnvName([...path, example])}`,
      );
      continue;
    }
    if (setAtPath(overridden.raw, path, coerceEnvValue(path, value))) {
      overridden.envNameByPath.set(keyPathLabel(path), name);
    }
  }
  return overridden;
}

/** The key path an env var names, or a problem line if it names no key. */
function envNameToPath(name: string): string[] | string {
  const segments = name.slice(ENV_PREFIX.length).split(ENV_PATH_SEPARATOR);
  const path: string[] = [];
  for (const segment of segments) {
    // A stray or doubled "__" leaves an empty segment, which names no key; say so rather than "no such key ''".
    if (segment === "") {
      return `${name}: empty key name, expected sections and keys joined by "__", e.g. ${pathToEnvName(["chain", "rpcUrl"])}`;
    }
    const keys = sectionKeys(path);
    if (keys === undefined) return `${name}: ${keyPathLabel(path)} is a single value, not a section with keys`;
    const key = keys.find((candidate) => normalizeEnvSegment(toEnvSegment(candidate)) === normalizeEnvSegment(segment));
    if (key === undefined) {
      const writtenKey = fromEnvSegment(segment);
      const suggestion = closestKey(writtenKey, keys);
      const hint = suggestion === undefined ? "" : ` (did you mean ${pathToEnvName([...path, suggestion])}?)`;
      return `${name}: no such config key ${keyPathLabel([...path, writtenKey])}${hint}`;
    }
    path.push(key);
  }
  return path;
}

// Underscores inside a segment are only word breaks, so FLOOR_PRICE_PER_KWH and FLOOR_PRICE_PER_K_WH both name
// floorPricePerKWh.
function normalizeEnvSegment(segment: string): string {
  return segment.replaceAll("_", "").toUpperCase();
}

function toEnvSegment(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

function fromEnvSegment(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase());
}

function pathToEnvName(path: readonly string[]): string {
  return ENV_PREFIX + path.map(toEnvSegment).join(ENV_PATH_SEPARATOR);
}

/**
 * Env values are strings; turn them into the type the key expects. A value that does not convert stays a string,
 * so validation reports it against the env var with the expectation of its key.
 */
function coerceEnvValue(path: readonly string[], value: string): unknown {
  const schema = schemaAtPath(path);
  const leaf = schema && unwrapSchema(schema);
  const expectsNumber =
    leaf instanceof z.ZodNumber ||
    (leaf instanceof z.ZodLiteral && [...leaf.values].some((literal) => typeof literal === "number"));
  if (expectsNumber && /^\s*[+-]?\d+(\.\d+)?([eE][+-]?\d+)?\s*$/.test(value)) return Number(value);
  if (leaf instanceof z.ZodBoolean && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === "true";
  return value;
}

/** Sets `value` at `path` inside `root`, creating missing sections; false if a non-mapping is in the way. */
function setAtPath(root: unknown, path: readonly string[], value: unknown): boolean {
  if (!isMapping(root)) return false;
  let section: Record<string, unknown> = root;
  for (const key of path.slice(0, -1)) {
    const next = section[key] ?? {};
    // Leave a wrongly typed section as written: validation reports it by its own key path.
    if (!isMapping(next)) return false;
    section[key] = next;
    section = next;
  }
  const lastKey = path.at(-1);
  if (lastKey === undefined) return false;
  section[lastKey] = value;
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Problem lines from zod issues

function describeIssue(issue: z.core.$ZodIssue, input: unknown, envNameByPath: Map<string, string>): string[] {
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") {
    const siblings = sectionKeys(path) ?? [];
    return issue.keys.map((key) => {
      const suggestion = closestKey(key, siblings);
      const hint = suggestion === undefined ? "" : ` (did you mean ${suggestion}?)`;
      return `${keyPathLabel([...path, key])}: unknown key${hint}`;
    });
  }
  const envName = envNameByPath.get(keyPathLabel(path));
  const label = envName === undefined ? keyPathLabel(path) : `${envName} (${keyPathLabel(path)})`;
  // Cross-field rules in the schema word their own message as "expected …, got …".
  if (issue.code === "custom") return [`${label}: ${issue.message}`];
  const received = valueAtPath(input, path);
  if (received === undefined) return [`${label}: required, missing`];
  return [`${label}: expected ${expectationFor(issue, path)}, got ${describeValue(received, path)}`];
}

function expectationFor(issue: z.core.$ZodIssue, path: readonly string[]): string {
  const registered = expectationAtPath(path);
  if (registered !== undefined) return registered;
  if (sectionKeys(path) !== undefined) return `a mapping of ${path.length === 0 ? "config" : keyPathLabel(path)} keys`;
  switch (issue.code) {
    case "invalid_type":
      return issue.expected;
    case "invalid_value":
      return `one of ${issue.values.map((value) => JSON.stringify(value)).join(", ")}`;
    case "too_small":
      return `${issue.origin} ${issue.inclusive ? ">=" : ">"} ${issue.minimum}`;
    case "too_big":
      return `${issue.origin} ${issue.inclusive ? "<=" : "<"} ${issue.maximum}`;
    case "invalid_format":
      return issue.format;
    default:
      return issue.message;
  }
}

const MAX_SHOWN_STRING_CHARS = 60;

function describeValue(value: unknown, path: readonly string[]): string {
  // A mistyped secret (an unquoted numeric password) must not end up in logs through the error.
  if (/password/i.test(path.at(-1) ?? "")) return `a ${typeOf(value)} (value hidden)`;
  if (typeof value === "string") {
    const shown = value.length > MAX_SHOWN_STRING_CHARS ? `${value.slice(0, MAX_SHOWN_STRING_CHARS)}…` : value;
    return JSON.stringify(shown);
  }
  if (value === null) return "an empty value";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

function typeOf(value: unknown): string {
  if (value === null) return "empty value";
  if (Array.isArray(value)) return "list";
  if (typeof value === "object") return "mapping";
  return typeof value;
}

// Keys and parser messages may carry line breaks; a problem must stay one line so callers can count them.
function oneLine(problem: string): string {
  return problem.replace(/\s*\n\s*/g, " ");
}

function keyPathLabel(path: readonly string[]): string {
  return path.length === 0 ? "(top level)" : path.join(".");
}

function valueAtPath(root: unknown, path: readonly string[]): unknown {
  let value = root;
  for (const key of path) {
    if (!isMapping(value) || !Object.hasOwn(value, key)) return undefined;
    value = value[key];
  }
  return value;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The sibling key a misspelt key most likely meant, if one is within a few edits. */
function closestKey(written: string, candidates: readonly string[]): string | undefined {
  const maxDistance = Math.max(1, Math.floor(written.length / 3));
  let best: { key: string; distance: number } | undefined;
  for (const key of candidates) {
    const distance = editDistance(written.toLowerCase(), key.toLowerCase());
    if (distance <= maxDistance && (best === undefined || distance < best.distance)) best = { key, distance };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_unused, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Paths

// File paths are resolved against the config file's directory, env overrides included: under systemd the agent's
// working directory is `/`, so the file's own location is the only stable anchor.
function resolvePaths(config: Config, baseDir: string): Config {
  const { chain } = config;
  return {
    ...config,
    dataDir: resolve(baseDir, config.dataDir),
    chain: {
      ...chain,
      deployment: resolve(baseDir, chain.deployment),
      keystore: resolve(baseDir, chain.keystore),
      ...(chain.passwordFile !== undefined && { passwordFile: resolve(baseDir, chain.passwordFile) }),
    },
    ...(config.mqtt?.caFile !== undefined && { mqtt: { ...config.mqtt, caFile: resolve(baseDir, config.mqtt.caFile) } }),
    ...(config.ocpp?.caFile !== undefined && { ocpp: { ...config.ocpp, caFile: resolve(baseDir, config.ocpp.caFile) } }),
  };
}

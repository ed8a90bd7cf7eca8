/**
 * JSON for the journal that round-trips `bigint` (wei amounts, session ids) exactly.
 *
 * A bigint is written as `{"$bigint":"123"}`. So that no plain object can ever be mistaken for that tag, object keys
 * that start with `$` are escaped by one more `$` on the way in (`$x` -> `$$x`) and unescaped on the way out.
 *
 * Plain `JSON.stringify` loses data silently where a money journal must not: it throws on bigint, turns NaN and
 * Infinity into `null`, and writes a Map or Set as `{}`. `encodeJson` refuses all of these with the path of the
 * offending value instead, so a bad event fails at `append` time, before any command that depends on it runs.
 */

const BIGINT_TAG = "$bigint";
const BIGINT_DIGITS = /^-?(0|[1-9][0-9]*)$/;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export class JournalJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JournalJsonError";
  }
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return (value as object).constructor?.name ?? "object";
  return typeof value;
}

function escapeKey(key: string): string {
  return key.startsWith("$") ? `$${key}` : key;
}

function unescapeKey(key: string, path: string): string {
  if (!key.startsWith("$")) return key;
  if (!key.startsWith("$$")) {
    throw new JournalJsonError(`cannot decode journal JSON at ${path}: unknown tag key "${key}", expected "$bigint" or an escaped "$$…" key`);
  }
  return key.slice(1);
}

function toJson(value: unknown, path: string): Json | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) {
        throw new JournalJsonError(`cannot encode ${path}: expected a finite number, got ${value}`);
      }
      return value;
    case "bigint":
      return { [BIGINT_TAG]: value.toString() };
    case "undefined":
      return undefined;
    case "function":
    case "symbol":
      throw new JournalJsonError(`cannot encode ${path}: expected JSON data or bigint, got a ${typeof value}`);
    case "object":
      break;
  }
  if (value === null) return null;
  if (Array.isArray(value)) {
    return value.map((item, index) => {
      const encoded = toJson(item, `${path}[${index}]`);
      if (encoded === undefined) {
        throw new JournalJsonError(`cannot encode ${path}[${index}]: undefined in an array would come back as null`);
      }
      return encoded;
    });
  }
  // Date and other types that define their own JSON form keep it, as with JSON.stringify.
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return toJson(toJSON.call(value), path);
  if (!isPlainObject(value as object)) {
    throw new JournalJsonError(`cannot encode ${path}: expected a plain object, array or bigint, got ${describe(value)}`);
  }
  const out: { [key: string]: Json } = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const encoded = toJson(item, `${path}.${key}`);
    // Like JSON.stringify: an undefined property is an absent property.
    if (encoded !== undefined) out[escapeKey(key)] = encoded;
  }
  return out;
}

function fromJson(value: Json, path: string): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((item, index) => fromJson(item, `${path}[${index}]`));
  const keys = Object.keys(value);
  if (keys.includes(BIGINT_TAG)) {
    const digits = value[BIGINT_TAG];
    if (keys.length !== 1 || typeof digits !== "string" || !BIGINT_DIGITS.test(digits)) {
      throw new JournalJsonError(`cannot decode journal JSON at ${path}: expected {"$bigint":"<decimal digits>"}, got ${JSON.stringify(value)}`);
    }
    return BigInt(digits);
  }
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    out[unescapeKey(key, path)] = fromJson(value[key] as Json, `${path}.${key}`);
  }
  return out;
}

/** JSON text for `value`; bigints are tagged, non-JSON values (NaN, Map, functions, …) throw naming their path. */
export function encodeJson(value: unknown): string {
  const json = toJson(value, "$");
  if (json === undefined) throw new JournalJsonError("cannot encode $: expected a value, got undefined");
  return JSON.stringify(json);
}

/** The value `encodeJson` was given, bigints included. */
export function decodeJson(text: string): unknown {
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch (error) {
    throw new JournalJsonError(`cannot decode journal JSON: ${(error as Error).message}`);
  }
  return fromJson(parsed, "$");
}

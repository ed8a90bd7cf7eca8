/**
 * CLI argument fuzzing (issue 11 item 3): random bad command lines — unknown commands and flags, missing values,
 * bad numbers, bad addresses, bad grid cells, negative energies, very long arguments — to the CLI. Each must exit 2
 * (bad usage, DESIGN §5.1) with exactly one line on stderr that names what was wrong, no stack trace, nothing on
 * stdout, and without touching the network: the chain RPC given points at a closed port, so a command that got as
 * far as the network would exit 1 instead.
 *
 * Most cases run in-process through `runCli` (agent/cli/run.ts, what main.ts runs); a sample also goes through the
 * real `node bin/trustpile.js` (test/helpers/cli.ts), which costs a second or more per case. Replay with
 * FUZZ_SEED=<seed>.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli as runCliInProcess } from "../../agent/cli/run.ts";
import { runCli, stderrLines } from "../helpers/cli.ts";
import { CategoryCounter, FuzzRandom, fuzzSeed } from "./fuzz-random.ts";

const SEED = fuzzSeed(0xc11_f022);
const CASES = 400;
const SPAWNED_CASES = 4;
/** Nothing listens here: a command that reached the network would fail with exit 1, not 2. */
const DEAD_RPC = "http://127.0.0.1:9";

const tempDir = mkdtempSync(join(tmpdir(), "trustpile-fuzz-cli-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));
const validConfig = join(tempDir, "config.yaml");
writeFileSync(validConfig, "chargePointId: cp-fuzz\nchain: { keystore: ./key.json }\ngpio: { driver: sim }\nmeter: { driver: sim }\n");

interface Case {
  category: string;
  argv: string[];
  /** Text the one stderr line must contain (the offending option, value or name). */
  names: string;
}

function randomCase(random: FuzzRandom): Case {
  const junk = (length: number): string => random.text(length).replace(/^-+/, "").replace(/\s/g, "_") || "x";
  const badNumber = (): string => random.pick(["abc", "1.5.2", "0x", "NaN", "Infinity", "--", "1e999", "٣", "12abc", ""]);
  const badAddress = (): string => random.pick(["0x1234", "0xZZ00000000000000000000000000000000000000", "nothex", `0x${"a".repeat(41)}`, "0x"]);
  const category = random.pick([
    "unknown command", "unknown subcommand", "unknown flag", "missing value", "bad number", "bad address", "bad cell",
    "negative energy", "very long argument", "missing required option",
  ] as const);
  const chain = ["--rpc", DEAD_RPC];
  switch (category) {
    case "unknown command": {
      const name = random.pick(["strat", "deploy", "relay", "STARt", "constructor", "__proto__", "toString", junk(random.int(1, 30))]);
      return { category, argv: [name], names: name };
    }
    case "unknown subcommand": {
      const [group, name] = random.pick([["config", "validate"], ["keys", "delete"], ["chain", "undeploy"], ["ev", "steal"], ["query", "all"]] as const);
      return { category, argv: [group, name], names: name };
    }
    case "unknown flag": {
      const flag = `--${random.pick(["verbos", "force", "rpc-url", "dry-run", junk(random.int(1, 20)).toLowerCase().replace(/[^a-z]/g, "") || "zz"])}`;
      const argv = random.pick([["config", "check", validConfig, flag], ["ev", "status", flag, ...chain], ["selftest", "--config", validConfig, flag], ["relay-off", "--config", validConfig, flag]]);
      return { category, argv, names: flag };
    }
    case "missing value": {
      const [argv, option] = random.pick([
        [["ev", "rate", "--score", "2", "--session"], "--session"],
        [["ev", "open", "--cp"], "--cp"],
        [["chain", "deploy", "--out"], "--out"],
        [["query", "ev", "0x0000000000000000000000000000000000000001", "--limit"], "--limit"],
        [["ev", "status", "--rpc"], "--rpc"],
      ] as const);
      return { category, argv: [...argv], names: option };
    }
    case "bad number": {
      const value = badNumber();
      const [argv, names] = random.pick([
        [["ev", "rate", "--session", value, "--score", "2", ...chain], "--session"],
        [["ev", "rate", "--session", "1", "--score", random.pick(["0", "4", "-1", value]), ...chain], "--score"],
        [["ev", "cancel", "--session", value, ...chain], "--session"],
        [["ev", "invite", "--cell", "1,2", "--energy-wh", value, ...chain], "--energy-wh"],
        [["query", "ev", "0x0000000000000000000000000000000000000001", "--limit", value, ...chain], "--limit"],
      ] as const);
      return { category, argv: [...argv], names };
    }
    case "bad address": {
      const value = badAddress();
      const [argv, names] = random.pick([
        [["ev", "status", "--address", value, ...chain], value],
        [["query", "ev", value, ...chain], value],
      ] as const);
      return { category, argv: [...argv], names };
    }
    case "bad cell": {
      const cell = random.pick(["1", "1,", ",2", "a,b", "1,2,3", "1.5,2", "99999999999,1", "-1;2", ""]);
      return { category, argv: ["ev", "invite", "--cell", cell, "--energy-wh", "1000", ...chain], names: "--cell" };
    }
    case "negative energy": {
      const value = String(-random.int(1, 1e6));
      const [argv, names] = random.pick([
        [["ev", "invite", "--cell", "1,2", `--energy-wh=${value}`, ...chain], "--energy-wh"],
        [["ev", "open", "--cp", "cp-001", "--deposit", "1000", `--max-energy-wh=${value}`, ...chain], "--max-energy-wh"],
        [["ev", "open", "--cp", "cp-001", `--deposit=${value}`, ...chain], "--deposit"],
      ] as const);
      return { category, argv: [...argv], names };
    }
    case "very long argument": {
      const long = "x".repeat(random.int(5_000, 60_000));
      const [argv, names] = random.pick([
        [[long], "unknown command"],
        [["config", "check", join(tempDir, long.slice(0, 200))], "cannot read"],
        [["ev", "rate", "--session", long, "--score", "2", ...chain], "--session"],
      ] as const);
      return { category, argv: [...argv], names };
    }
    case "missing required option": {
      const [argv, names] = random.pick([
        [["chain", "deploy", ...chain], "--out"],
        [["ev", "rate", "--score", "2", ...chain], "--session"],
        [["ev", "cancel", ...chain], "--session"],
        [["chain", "register", "--config", validConfig, ...chain], "--price"],
      ] as const);
      return { category, argv: [...argv], names };
    }
  }
}

interface Outcome {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** What is wrong with an outcome, if anything. */
function problemsOf(fuzzCase: Case, outcome: Outcome): string[] {
  const lines = outcome.stderr.split("\n").filter((line) => line.trim() !== "");
  const line = lines[0] ?? "";
  return [
    outcome.status === 2 ? undefined : `exit ${outcome.status}`,
    lines.length === 1 ? undefined : `${lines.length} stderr lines`,
    /\n\s+at /.test(outcome.stderr) ? "a stack trace" : undefined,
    outcome.stdout === "" ? undefined : `stdout ${JSON.stringify(outcome.stdout.slice(0, 100))}`,
    line.includes(fuzzCase.names.slice(0, 60)) ? undefined : `the line does not name ${JSON.stringify(fuzzCase.names.slice(0, 60))}`,
    line.length <= 300 ? undefined : `a ${line.length}-character line`,
  ].filter((problem) => problem !== undefined);
}

function describeCase(index: number, fuzzCase: Case): string {
  const argv = JSON.stringify(fuzzCase.argv.map((arg) => (arg.length > 60 ? `${arg.slice(0, 20)}…(${arg.length} chars)` : arg)));
  return `seed ${SEED} case ${index} (${fuzzCase.category}) ${argv}`;
}

/** Runs the CLI in this process with stdout captured; process.exitCode is the CLI's to set, so it is reset. */
async function runInProcess(argv: readonly string[]): Promise<Outcome> {
  let stderr = "";
  let stdout = "";
  const realWrite = process.stdout.write.bind(process.stdout);
  const realErrWrite = process.stderr.write.bind(process.stderr);
  process.exitCode = undefined;
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const status = await runCliInProcess(argv, { write: (text: string) => (stderr += text) });
    return { status, stdout, stderr };
  } finally {
    process.stdout.write = realWrite;
    process.stderr.write = realErrWrite;
    process.exitCode = undefined;
  }
}

describe(`CLI argument fuzzing (seed ${SEED}, FUZZ_SEED=${SEED} to replay)`, () => {
  const cases = ((): Case[] => {
    const random = new FuzzRandom(SEED);
    return Array.from({ length: CASES }, () => randomCase(random));
  })();

  it(`${CASES} bad command lines in-process: each exits 2 with one stderr line naming what was wrong`, async () => {
    const counter = new CategoryCounter();
    const failures: string[] = [];
    for (const [index, fuzzCase] of cases.entries()) {
      counter.add(fuzzCase.category);
      const problems = problemsOf(fuzzCase, await runInProcess(fuzzCase.argv));
      if (problems.length > 0) failures.push(`${describeCase(index, fuzzCase)}: ${problems.join(", ")}`);
    }
    expect(failures).toEqual([]);
    expect(counter.counts.size, `seed ${SEED}: ${counter.summary()}`).toBe(10);
    for (const [category, count] of counter.counts) expect(count, `seed ${SEED}: ${category}`).toBeGreaterThanOrEqual(20);
  }, 120_000);

  it(`the first ${SPAWNED_CASES} of them through the real bin/trustpile.js behave the same`, async () => {
    const failures: string[] = [];
    for (const [index, fuzzCase] of cases.slice(0, SPAWNED_CASES).entries()) {
      const result = await runCli(fuzzCase.argv, { cwd: tempDir, timeoutMs: 90_000 });
      const problems = problemsOf(fuzzCase, result);
      if (stderrLines(result).length !== 1) problems.push("not one line");
      if (problems.length > 0) failures.push(`${describeCase(index, fuzzCase)}: ${problems.join(", ")}; stderr ${JSON.stringify(result.stderr.slice(0, 200))}`);
    }
    expect(failures).toEqual([]);
  }, 300_000);
});

describe("CLI argument fuzzing: regressions", () => {
  // Found by seed 202502178 case 14: commander's suggestion came on a second stderr line.
  it("an unknown command is one line with the suggestion", async () => {
    expect(await runInProcess(["strat"])).toEqual({ status: 2, stdout: "", stderr: "error: unknown command 'strat' (Did you mean start?)\n" });
  });

  // Found by seed 202502178 cases 17 and 22: a 59,000-character argument was echoed whole in the error line.
  it("a very long argument is cut in the error line", async () => {
    const long = "x".repeat(59_000);
    expect(await runInProcess([long])).toEqual({ status: 2, stdout: "", stderr: `error: unknown command '${"x".repeat(60)}…' (59000 characters)\n` });
    expect(await runInProcess(["ev", "rate", "--session", long, "--score", "2", "--rpc", DEAD_RPC])).toEqual({
      status: 2,
      stdout: "",
      stderr: `trustpile: --session: expected a whole number 0..9007199254740991, got "${"x".repeat(60)}…" (59000 characters)\n`,
    });
  });

  // Found while adding the run(argv) seam (the old main.ts looked the command up with COMMANDS[name]):
  // `trustpile constructor` called Object's constructor as a command loader and crashed with
  // "TypeError: (intermediate value) is not a function", a stack trace and exit 1.
  it.each(["constructor", "__proto__", "toString", "hasOwnProperty"])("an unknown command named like an Object property (%s) is bad usage", async (name) => {
    expect(await runInProcess([name])).toEqual({ status: 2, stdout: "", stderr: `error: unknown command '${name}'\n` });
  });
});

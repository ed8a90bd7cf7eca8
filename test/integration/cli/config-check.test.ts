import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "../../helpers/cli.ts";

const tempDir = mkdtempSync(join(tmpdir(), "trustpile-config-check-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

function configCheck(file: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(["config", "check", file], { env });
}

describe("trustpile config check", () => {
  it("exits 2 with one stderr line per problem", async () => {
    const file = join(tempDir, "bad.yaml");
    writeFileSync(file, "chargePointId: cp-001\nmeter:\n  staleAfterMs: 5s\n  baudRat: 9600\ngpio:\n  relay: { line: 17 }\n");

    const { status, stdout, stderr } = await configCheck(file);

    expect(status).toBe(2);
    expect(stdout).toBe("");
    expect(stderr.trimEnd().split("\n")).toEqual([
      "chain.keystore: required, missing",
      'meter.staleAfterMs: expected integer ms > 0, got "5s"',
      "meter.baudRat: unknown key (did you mean baudRate?)",
    ]);
  });

  it("exits 0 with a one-line summary for the example config", async () => {
    const { status, stdout, stderr } = await configCheck("agent/config/example.yaml");

    expect(stderr).toBe("");
    expect(status).toBe(0);
    expect(stdout).toBe(
      "agent/config/example.yaml: ok (chargePointId cp-001, meter sdm630/rtu, gpio onoff, ocpp 1.6, mqtt on, bidding off)\n",
    );
  });

  it("applies env overrides and names them", async () => {
    const { status, stdout } = await configCheck("agent/config/example.yaml", { TRUSTPILE_OCPP__VERSION: "2.0.1" });

    expect(status).toBe(0);
    expect(stdout).toContain("ocpp 2.0.1");
    expect(stdout).toContain("env overrides TRUSTPILE_OCPP__VERSION");
  });

  it("exits 2 naming the file when it cannot be read", async () => {
    const file = join(tempDir, "missing.yaml");

    const { status, stderr } = await configCheck(file);

    expect(status).toBe(2);
    expect(stderr).toBe(`${file}: cannot read (ENOENT: no such file or directory)\n`);
  });
});

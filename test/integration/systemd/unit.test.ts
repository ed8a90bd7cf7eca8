/**
 * systemd/trustpile.service checked by systemd's own tools (Debian's systemd, installed by .ci/run):
 *
 * - `systemd-analyze verify` passes with no output at all (it exits 0 even on directives it ignores as malformed,
 *   so its silence is what is asserted). verify checks that every Exec*= binary exists, so the
 *   unit is verified inside a temp root (`--root`) holding the unit, a stub /usr/bin/trustpile and a copy of the
 *   host's system units (verify loads the unit's default dependencies, sysinit.target and friends, from the root).
 *   The same check on a broken copy must fail, so the test can fail.
 * - `systemd-analyze security --offline` rates its exposure "OK" (<= 4.0 of 10).
 * - The directives the relay and the watchdog depend on are there, as written.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../helpers/cli.ts";

const UNIT = join(REPO_ROOT, "systemd/trustpile.service");
const SYSTEM_UNITS = ["/usr/lib/systemd/system", "/lib/systemd/system"].find((dir) => existsSync(join(dir, "sysinit.target")));
const ANALYZE = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
const HAVE_ANALYZE = ANALYZE.status === 0 && SYSTEM_UNITS !== undefined;
const SKIP_REASON = "systemd-analyze (Debian package systemd, installed by .ci/run) or the system units are missing";

interface Run {
  status: number | null;
  output: string;
}

/** A root with the unit (as `text`), a stub /usr/bin/trustpile and the host's system units. */
function makeRoot(text: string): string {
  const root = mkdtempSync(join(tmpdir(), "trustpile-unit-"));
  mkdirSync(join(root, "usr/bin"), { recursive: true });
  writeFileSync(join(root, "usr/bin/trustpile"), "#!/bin/sh\nexit 0\n");
  chmodSync(join(root, "usr/bin/trustpile"), 0o755);
  mkdirSync(join(root, "etc/systemd/system"), { recursive: true });
  writeFileSync(join(root, "etc/systemd/system/trustpile.service"), text);
  cpSync(SYSTEM_UNITS ?? "/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true, dereference: false });
  return root;
}

function analyze(args: string[]): Run {
  const result = spawnSync("systemd-analyze", args, { encoding: "utf8", timeout: 30_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

function verify(root: string): Run {
  return analyze(["verify", "--man=no", `--root=${root}`, join(root, "etc/systemd/system/trustpile.service")]);
}

/** Every `Key=value` of the unit, in order, comments and blank lines left out. */
function directives(text: string): Array<[string, string]> {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#") && !line.startsWith("["))
    .map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1)] as [string, string];
    });
}

const text = readFileSync(UNIT, "utf8");
const roots: string[] = [];

afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!HAVE_ANALYZE)(`systemd-analyze on systemd/trustpile.service (${ANALYZE.stdout?.split("\n")[0] ?? ""})`, () => {
  let root: string;

  beforeAll(() => {
    root = makeRoot(text);
    roots.push(root);
  });

  it("verify passes with nothing to say", () => {
    const run = verify(root);
    expect(run.output).toBe("");
    expect(run.status).toBe(0);
  });

  it("verify reports a broken copy and a missing binary (so the check above can fail)", () => {
    const broken = makeRoot(text.replace(/^ProtectSystem=strict$/m, "ProtectSystem=strickt").replace(/^Type=notify$/m, "Typ=notify"));
    roots.push(broken);
    const run = verify(broken);
    expect(run.output).toContain("Failed to parse protect system value, ignoring: strickt");
    expect(run.output).toContain("Unknown key 'Typ' in section [Service], ignoring.");
    // verify exits 0 on directives it ignores: only its silence proves the unit means what it says.
    expect(run.status).toBe(0);

    const noBinary = makeRoot(text);
    roots.push(noBinary);
    rmSync(join(noBinary, "usr/bin/trustpile"));
    const missing = verify(noBinary);
    expect(missing.status).not.toBe(0);
    expect(missing.output).toContain("Command /usr/bin/trustpile is not executable");
  });

  it("security rates its exposure OK (<= 4.0)", () => {
    const run = analyze(["security", "--offline=yes", `--root=${root}`, "--no-pager", "trustpile.service"]);
    const match = /Overall exposure level for trustpile\.service: (\d+\.\d)/.exec(run.output);
    expect(match, run.output.slice(-500)).not.toBeNull();
    expect(Number(match?.[1])).toBeLessThanOrEqual(4.0);
  });
});

if (!HAVE_ANALYZE) {
  describe("systemd-analyze", () => {
    it.skip(`skipped: ${SKIP_REASON}`, () => undefined);
  });
}

describe("the unit's directives", () => {
  const all = directives(text);
  const values = (key: string): string[] => all.filter(([k]) => k === key).map(([, v]) => v);
  const RELAY_OFF = "/usr/bin/trustpile relay-off --config /etc/trustpile/config.yaml";

  it("runs the agent as a notify service fed by a watchdog, restarted always", () => {
    expect(values("ExecStart")).toEqual(["/usr/bin/trustpile start --config /etc/trustpile/config.yaml"]);
    expect(values("Type")).toEqual(["notify"]);
    expect(values("NotifyAccess"), "systemd-notify is a child of the agent").toEqual(["all"]);
    expect(values("WatchdogSec")).toEqual(["30"]);
    expect(values("Restart")).toEqual(["always"]);
    expect(values("User")).toEqual(["trustpile"]);
    expect(values("SupplementaryGroups")).toEqual(["gpio dialout"]);
    expect(values("StateDirectory")).toEqual(["trustpile"]);
  });

  it("opens the relay before every start and after every stop", () => {
    expect(values("ExecStartPre")).toEqual([RELAY_OFF]);
    expect(values("ExecStopPost")).toEqual([RELAY_OFF]);
  });

  it("is hardened: no capabilities, closed device policy with only serial and GPIO devices, IP and unix sockets only", () => {
    expect(values("CapabilityBoundingSet")).toEqual([""]);
    expect(values("AmbientCapabilities")).toEqual([""]);
    expect(values("ProtectSystem")).toEqual(["strict"]);
    expect(values("NoNewPrivileges")).toEqual(["yes"]);
    expect(values("DevicePolicy")).toEqual(["closed"]);
    expect(values("DeviceAllow")).toEqual(["char-ttyUSB rw", "char-ttyAMA rw", "char-ttyS rw", "char-gpiochip rw"]);
    expect(values("ReadWritePaths")).toEqual(["-/sys/class/gpio"]);
    expect(values("RestrictAddressFamilies")).toEqual(["AF_UNIX AF_INET AF_INET6"]);
    expect(values("MemoryMax")).toEqual(["256M"]);
    // Would break the agent: V8's JIT, the serial adapter, the sysfs GPIO files.
    expect(values("MemoryDenyWriteExecute")).toEqual([]);
    expect(values("PrivateDevices")).toEqual([]);
    expect(values("ProtectKernelTunables")).toEqual([]);
  });
});

// systemd/install.sh and uninstall.sh into a temporary DESTDIR: files, modes, owners, the symlink, the config
// template, an upgrade that keeps an edited config, and uninstall with and without --purge.
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const hasShadowUtils = ["/usr/sbin/useradd", "/usr/sbin/groupadd", "/usr/sbin/userdel"].every((tool) => existsSync(tool));
const skipReason = !isRoot
  ? "not root: useradd --prefix and chown need root (CI runs the suite as root)"
  : !hasShadowUtils
    ? "shadow-utils (useradd, groupadd, userdel) not installed"
    : undefined;
if (skipReason !== undefined) process.stderr.write(`test/integration/systemd/install.test.ts skipped: ${skipReason}\n`);

const repo = process.cwd();
let destdir = "";

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(script: string, args: string[] = []): RunResult {
  const result = spawnSync("sh", [join(repo, "systemd", script), ...args], {
    cwd: repo,
    encoding: "utf8",
    env: { ...process.env, DESTDIR: destdir, PREFIX: "/usr", TRUSTPILE_SKIP_NPM: "1", TRUSTPILE_SKIP_USER: "" },
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function expectOk(result: RunResult): void {
  expect(result.stderr, result.stdout).toBe("");
  expect(result.status, result.stdout).toBe(0);
}

/** Field `index` (2 = uid/gid, 3 = primary gid) of `name` in $DESTDIR/etc/passwd or group, or undefined. */
function accountField(file: "passwd" | "group", name: string, index: number): string | undefined {
  const line = readFileSync(join(destdir, "etc", file), "utf8")
    .split("\n")
    .find((entry) => entry.split(":")[0] === name);
  return line?.split(":")[index];
}

function accountId(file: "passwd" | "group", name: string): number {
  const id = accountField(file, name, 2);
  if (id === undefined) throw new Error(`no ${name} in ${file}`);
  return Number(id);
}

function d(path: string): string {
  return join(destdir, path);
}

function mode(path: string): number {
  return statSync(d(path)).mode & 0o7777;
}

function owner(path: string): [number, number] {
  const stat = statSync(d(path));
  return [stat.uid, stat.gid];
}

describe.skipIf(skipReason !== undefined)("systemd/install.sh and uninstall.sh into a DESTDIR", () => {
  let installOutput = "";

  beforeAll(() => {
    destdir = mkdtempSync(join(tmpdir(), "trustpile-install-"));
    // Minimal account files: useradd/groupadd --prefix edit these instead of the build host's.
    mkdirSync(d("etc"));
    writeFileSync(d("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    writeFileSync(d("etc/group"), "root:x:0:\n");
    writeFileSync(d("etc/shadow"), "root:*:19000:0:99999:7:::\n", { mode: 0o640 });
    writeFileSync(d("etc/gshadow"), "root:*::\n", { mode: 0o640 });
    const result = run("install.sh");
    expectOk(result);
    installOutput = result.stdout;
  });

  afterAll(() => {
    if (destdir !== "") rmSync(destdir, { recursive: true, force: true });
  });

  it("creates the system user trustpile with no login shell, home /var/lib/trustpile, in gpio and dialout", () => {
    const passwd = accountField("passwd", "trustpile", 0);
    expect(passwd).toBe("trustpile");
    expect(accountField("passwd", "trustpile", 5)).toBe("/var/lib/trustpile");
    expect(accountField("passwd", "trustpile", 6)).toBe("/usr/sbin/nologin");
    expect(Number(accountField("passwd", "trustpile", 3))).toBe(accountId("group", "trustpile"));
    for (const group of ["gpio", "dialout"]) {
      expect(accountField("group", group, 3)?.split(",")).toContain("trustpile");
    }
    // A system account: below the ordinary users' range.
    expect(accountId("passwd", "trustpile")).toBeLessThan(1000);
  });

  it("installs the program without tests, benchmarks or node_modules, and links bin/trustpile", () => {
    const app = "usr/lib/trustpile";
    for (const path of ["package.json", "package-lock.json", "bin/trustpile.js", "agent/cli/main.ts", "drivers", "hw-sim", "contracts/artifacts"]) {
      expect(existsSync(d(join(app, path))), path).toBe(true);
    }
    for (const path of ["test", "bench", "node_modules", "tools", "contracts/Registry.sol"]) {
      expect(existsSync(d(join(app, path))), path).toBe(false);
    }
    // The checkout's dist/ is copied while it is up to date; otherwise (TRUSTPILE_SKIP_NPM: no compile) it says so.
    if (!existsSync(d(join(app, "dist/BUILD_STAMP")))) expect(installOutput).toContain("WARNING: no compiled dist/");
    expect(owner(app)).toEqual([0, 0]);
    expect(mode(join(app, "bin/trustpile.js"))).toBe(0o755);

    expect(lstatSync(d("usr/bin/trustpile")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(d("usr/bin/trustpile"))).toBe("../lib/trustpile/bin/trustpile.js");
    expect(statSync(d("usr/bin/trustpile")).isFile()).toBe(true); // the relative link resolves inside DESTDIR
  });

  it("creates /etc/trustpile root:trustpile 0750 and /var/lib/trustpile trustpile:trustpile 0750", () => {
    const uid = accountId("passwd", "trustpile");
    const gid = accountId("group", "trustpile");
    expect(owner("etc/trustpile")).toEqual([0, gid]);
    expect(mode("etc/trustpile")).toBe(0o750);
    expect(owner("var/lib/trustpile")).toEqual([uid, gid]);
    expect(mode("var/lib/trustpile")).toBe(0o750);
  });

  it("writes the config template root:trustpile 0640 with the pile's paths, otherwise the example config", () => {
    expect(owner("etc/trustpile/config.yaml")).toEqual([0, accountId("group", "trustpile")]);
    expect(mode("etc/trustpile/config.yaml")).toBe(0o640);
    const text = readFileSync(d("etc/trustpile/config.yaml"), "utf8");
    expect(text).toMatch(/^# /); // still the commented template
    const template = parse(text) as Record<string, Record<string, unknown>>;
    expect(template.dataDir).toBe("/var/lib/trustpile");
    expect(template.chain?.keystore).toBe("/etc/trustpile/device-key.json");
    expect(template.chain?.deployment).toBe("/etc/trustpile/deployment.json");
    expect(template.chain?.passwordFile).toBe("/etc/trustpile/device-key.password");
    const example = parse(readFileSync(join(repo, "agent/config/example.yaml"), "utf8")) as Record<string, Record<string, unknown>>;
    expect(template).toEqual({
      ...example,
      dataDir: "/var/lib/trustpile",
      chain: {
        ...example.chain,
        keystore: "/etc/trustpile/device-key.json",
        deployment: "/etc/trustpile/deployment.json",
        passwordFile: "/etc/trustpile/device-key.password",
      },
    });
  });

  it("installs the unit and the udev rule 0644", () => {
    const unit = "lib/systemd/system/trustpile.service";
    expect(mode(unit)).toBe(0o644);
    expect(readFileSync(d(unit), "utf8")).toBe(readFileSync(join(repo, "systemd/trustpile.service"), "utf8"));
    const rule = "etc/udev/rules.d/99-trustpile-rs485.rules";
    expect(mode(rule)).toBe(0o644);
    const rules = readFileSync(d(rule), "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.startsWith("#"));
    expect(rules.length).toBeGreaterThan(0);
    for (const line of rules) {
      expect(line).toMatch(/ATTRS\{idVendor\}=="[0-9a-f]{4}", ATTRS\{idProduct\}=="[0-9a-f]{4}"/);
      expect(line).toContain('SYMLINK+="trustpile-meter"');
      expect(line).toContain('GROUP="dialout"');
      expect(line).toContain('MODE="0660"');
    }
  });

  it("prints one line per step, leaves systemd alone in a DESTDIR and ends with the owner's next steps", () => {
    expect(installOutput).toContain("systemd not touched");
    const order = ["keys new", "keys show", "chain register", "selftest", "--relay", "systemctl enable --now trustpile"];
    const positions = order.map((text) => installOutput.indexOf(text));
    expect(positions.every((position) => position >= 0), installOutput).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });

  it("a second install keeps an edited config and writes the new template beside it", () => {
    const config = d("etc/trustpile/config.yaml");
    const edited = readFileSync(config, "utf8").replace("chargePointId: cp-001", "chargePointId: my-pile");
    writeFileSync(config, edited);
    const usersBefore = readFileSync(d("etc/passwd"), "utf8");

    const result = run("install.sh");

    expectOk(result);
    expect(result.stdout).toContain("config.yaml.new");
    expect(readFileSync(config, "utf8")).toBe(edited);
    expect(readFileSync(d("etc/trustpile/config.yaml.new"), "utf8")).toContain("chargePointId: cp-001");
    expect(mode("etc/trustpile/config.yaml.new")).toBe(0o640);
    expect(owner("etc/trustpile/config.yaml.new")).toEqual([0, accountId("group", "trustpile")]);
    expect(readFileSync(d("etc/passwd"), "utf8")).toBe(usersBefore); // the user is reused, not added twice
  });

  it("uninstall removes program, link, unit and rule, and keeps config, journal and the user", () => {
    writeFileSync(d("var/lib/trustpile/journal.sqlite"), "journal");
    writeFileSync(d("etc/trustpile/device-key.json"), "{}");

    const result = run("uninstall.sh");

    expectOk(result);
    for (const path of ["usr/lib/trustpile", "lib/systemd/system/trustpile.service", "etc/udev/rules.d/99-trustpile-rs485.rules"]) {
      expect(existsSync(d(path)), path).toBe(false);
    }
    expect(() => lstatSync(d("usr/bin/trustpile"))).toThrow();
    expect(readFileSync(d("etc/trustpile/device-key.json"), "utf8")).toBe("{}");
    expect(readFileSync(d("etc/trustpile/config.yaml"), "utf8")).toContain("chargePointId: my-pile");
    expect(readFileSync(d("var/lib/trustpile/journal.sqlite"), "utf8")).toBe("journal");
    expect(accountField("passwd", "trustpile", 0)).toBe("trustpile");
  });

  it("uninstall --purge deletes /etc/trustpile, /var/lib/trustpile and the user, keeping gpio and dialout", () => {
    const result = run("uninstall.sh", ["--purge"]);

    expectOk(result);
    expect(existsSync(d("etc/trustpile"))).toBe(false);
    expect(existsSync(d("var/lib/trustpile"))).toBe(false);
    expect(accountField("passwd", "trustpile", 0)).toBeUndefined();
    expect(accountField("group", "trustpile", 0)).toBeUndefined();
    expect(accountField("group", "gpio", 0)).toBe("gpio");
    expect(accountField("group", "dialout", 0)).toBe("dialout");
  });
});

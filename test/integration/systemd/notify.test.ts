/**
 * `trustpile start` under a (fake) systemd: the real CLI process, started as the unit starts it (Type=notify,
 * NOTIFY_SOCKET and WATCHDOG_USEC in its environment), with a fake `systemd-notify` first on PATH that records every
 * message. The agent must say READY=1 once it runs, feed the watchdog every WATCHDOG_USEC/2 while its control loop
 * steps, and say STOPPING=1 on SIGTERM before it exits 0. (Whether it stops feeding when the loop hangs is shown
 * with fake timers in test/unit/agent/runtime/watchdog.test.ts.)
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deployLedgerFixture } from "../../helpers/chain.ts";
import { cleanEnv } from "../../helpers/cli.ts";
import { waitUntil } from "../../helpers/agent-world.ts";
import { startTrustpile, writePileDir } from "../../helpers/pile-dir.ts";

interface Message {
  atMs: number;
  args: string[];
}

describe("trustpile start under systemd Type=notify", () => {
  let dir: string;
  let config: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "trustpile-notify-"));
    const fixture = await deployLedgerFixture();
    ({ config } = await writePileDir(dir, {
      chargePointId: "cp-notify",
      rpcUrl: fixture.provider._getConnection().url,
      deployment: fixture.deployment,
      keystorePassword: "pile password",
      moreConfig: ["meter: { driver: sim, pollIntervalMs: 250, staleAfterMs: 3000 }", "gpio: { driver: sim }"],
    }));
    fixture.provider.destroy();
    // One line per message: "<ms since epoch>|<NOTIFY_SOCKET>|<assignment>|<assignment>...".
    const script = [
      "#!/bin/sh",
      'line="$(date +%s%3N)|$NOTIFY_SOCKET"',
      'for a in "$@"; do line="$line|$a"; done',
      `echo "$line" >> '${join(dir, "notify.log")}'`,
      "exit 0",
      "",
    ].join("\n");
    writeFileSync(join(dir, "systemd-notify"), script);
    chmodSync(join(dir, "systemd-notify"), 0o755);
    writeFileSync(join(dir, "notify.log"), "");
  }, 60_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const messages = (): Message[] =>
    readFileSync(join(dir, "notify.log"), "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => {
        const [at, socket, ...args] = line.split("|");
        expect(socket).toBe("/run/fake-systemd/notify");
        return { atMs: Number(at), args };
      });
  const named = (prefix: string): Message[] => messages().filter((m) => m.args[0]?.startsWith(prefix));

  it("says READY=1, feeds the watchdog every WATCHDOG_USEC/2, and says STOPPING=1 on SIGTERM", async () => {
    const { child, output, exited } = startTrustpile(
      config,
      dir,
      cleanEnv({
        PATH: `${dir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
        NOTIFY_SOCKET: "/run/fake-systemd/notify",
        // WatchdogSec=2: a ping every second.
        WATCHDOG_USEC: "2000000",
        LOG_LEVEL: "warn",
      }),
    );
    try {
      await waitUntil("READY=1", () => named("READY=1").length > 0 || child.exitCode !== null, 60_000, 50);
      expect(child.exitCode, output().slice(-2000)).toBeNull();
      await waitUntil("three watchdog pings", () => named("WATCHDOG=1").length >= 3, 10_000, 50);

      const ready = named("READY=1");
      expect(ready).toHaveLength(1);
      expect(ready[0]?.args).toEqual(["READY=1", "STATUS=charge point cp-notify running"]);
      const pings = named("WATCHDOG=1").map((m) => m.atMs);
      expect(pings[0]).toBeGreaterThan(ready[0]?.atMs ?? Infinity);
      // Every second, well inside the 2 s watchdog (spawn jitter on a busy machine allowed for).
      for (let i = 1; i < pings.length; i++) expect((pings[i] ?? 0) - (pings[i - 1] ?? 0)).toBeLessThan(1_800);
    } finally {
      child.kill("SIGTERM");
    }
    const code = await exited;
    expect(code, output().slice(-2000)).toBe(0);
    const stopping = named("STOPPING=1");
    expect(stopping.map((m) => m.args)).toEqual([["STOPPING=1", "STATUS=stopping on SIGTERM: relay open, journal closed"]]);
    expect(messages().slice(-1)[0]?.args[0], "nothing after STOPPING=1").toBe("STOPPING=1");
  }, 90_000);
});

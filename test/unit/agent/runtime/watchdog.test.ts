/**
 * The systemd notifications of `trustpile start` (agent/runtime/watchdog.ts): the pure feed decision, the settings
 * read from the environment, the schedule (READY=1 once, WATCHDOG=1 only while the control loop steps, STOPPING=1)
 * with a fake notifier on fake timers, and the spawn wiring through a fake `systemd-notify` executable on PATH.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  createServiceNotifications,
  notifySettingsFromEnv,
  shouldFeed,
  systemdNotifyCommand,
  type Notifier,
  type NotifyLog,
} from "../../../../agent/runtime/watchdog.ts";

const WATCHDOG_SEC = 30;
const NOTIFY_ENV = { NOTIFY_SOCKET: "/run/systemd/notify", WATCHDOG_USEC: String(WATCHDOG_SEC * 1_000_000) };

describe("shouldFeed", () => {
  it.each([
    { lastStepAtMs: undefined, nowMs: 1_000, windowMs: 15_000, feed: false, why: "no step yet" },
    { lastStepAtMs: 1_000, nowMs: 1_000, windowMs: 15_000, feed: true, why: "a step just now" },
    { lastStepAtMs: 1_000, nowMs: 16_000, windowMs: 15_000, feed: true, why: "a step exactly one window ago" },
    { lastStepAtMs: 1_000, nowMs: 16_001, windowMs: 15_000, feed: false, why: "the last step older than the window" },
    { lastStepAtMs: 1_000, nowMs: 600_000, windowMs: 15_000, feed: false, why: "a loop silent for minutes" },
  ])("$why: $feed", ({ lastStepAtMs, nowMs, windowMs, feed }) => {
    expect(shouldFeed(lastStepAtMs, nowMs, windowMs)).toBe(feed);
  });
});

describe("notifySettingsFromEnv", () => {
  it("is off without NOTIFY_SOCKET, even with a watchdog period", () => {
    expect(notifySettingsFromEnv({ WATCHDOG_USEC: "30000000" }, 42)).toBeUndefined();
    expect(notifySettingsFromEnv({ NOTIFY_SOCKET: "" }, 42)).toBeUndefined();
  });

  it("feeds every WATCHDOG_USEC/2, in ms", () => {
    expect(notifySettingsFromEnv(NOTIFY_ENV, 42)).toEqual({ notifySocket: "/run/systemd/notify", watchdogIntervalMs: 15_000 });
  });

  it("has no watchdog without WATCHDOG_USEC, with a malformed one, or when WATCHDOG_PID names another process", () => {
    expect(notifySettingsFromEnv({ NOTIFY_SOCKET: "@notify" }, 42)?.watchdogIntervalMs).toBeUndefined();
    expect(notifySettingsFromEnv({ NOTIFY_SOCKET: "@notify", WATCHDOG_USEC: "30s" }, 42)?.watchdogIntervalMs).toBeUndefined();
    expect(notifySettingsFromEnv({ ...NOTIFY_ENV, WATCHDOG_PID: "41" }, 42)?.watchdogIntervalMs).toBeUndefined();
    expect(notifySettingsFromEnv({ ...NOTIFY_ENV, WATCHDOG_PID: "42" }, 42)?.watchdogIntervalMs).toBe(15_000);
  });
});

// ---------------------------------------------------------------- the schedule, with a fake notifier

interface Recorded {
  atMs: number;
  assignments: string[];
}

function fakeNotifier(sent: Recorded[], startedAt: number): Notifier {
  return {
    async send(assignments) {
      sent.push({ atMs: Date.now() - startedAt, assignments: [...assignments] });
    },
  };
}

function recordingLog(): NotifyLog & { warnings: string[]; infos: string[] } {
  const warnings: string[] = [];
  const infos: string[] = [];
  return {
    warnings,
    infos,
    warn: (_fields, message) => void warnings.push(message),
    info: (_fields, message) => void infos.push(message),
  };
}

describe("createServiceNotifications", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("sends READY=1 once, WATCHDOG=1 every 15 s while the loop steps, none while it is hung, and STOPPING=1", async () => {
    const startedAt = Date.now();
    const sent: Recorded[] = [];
    const log = recordingLog();
    const service = createServiceNotifications({
      env: NOTIFY_ENV,
      pid: 42,
      notifier: fakeNotifier(sent, startedAt),
      clock: () => Date.now(),
      log,
    });
    expect(service.enabled).toBe(true);
    expect(service.watchdogIntervalMs).toBe(15_000);

    // The control loop: a step every 250 ms (the agent's tick), while `alive`.
    let alive = true;
    const loop = setInterval(() => {
      if (alive) service.stepped();
    }, 250);
    service.stepped();
    await service.ready("charge point cp-1 running");
    expect(sent).toEqual([{ atMs: 0, assignments: ["READY=1", "STATUS=charge point cp-1 running"] }]);

    await vi.advanceTimersByTimeAsync(60_000);
    const feeds = (): number[] => sent.filter((s) => s.assignments.join() === "WATCHDOG=1").map((s) => s.atMs);
    expect(feeds()).toEqual([15_000, 30_000, 45_000, 60_000]);

    // The loop hangs at 60 s: the feed at 75 s still sees a step within 15 s (the one at 60 000), none after.
    alive = false;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(feeds()).toEqual([15_000, 30_000, 45_000, 60_000, 75_000]);
    // systemd would abort the agent at 75 s + WatchdogSec = 105 s: within 1.5 × WatchdogSec of the hang.
    expect(log.warnings).toEqual(["control loop silent: not feeding the systemd watchdog"]);

    // Alive again (e.g. a long meter timeout that ended): feeding resumes at the next period.
    alive = true;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(feeds().slice(-1)).toEqual([135_000]);
    expect(log.infos).toEqual(["control loop alive again: feeding the systemd watchdog"]);

    await service.stopping("stopping on SIGTERM");
    expect(sent.slice(-1)[0]?.assignments).toEqual(["STOPPING=1", "STATUS=stopping on SIGTERM"]);
    const countAtStop = sent.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sent.length, "nothing after STOPPING=1").toBe(countAtStop);
    clearInterval(loop);
  });

  it("never feeds before the first step, and not at all without a watchdog period", async () => {
    const sent: Recorded[] = [];
    const noStep = createServiceNotifications({ env: NOTIFY_ENV, pid: 42, notifier: fakeNotifier(sent, Date.now()), log: recordingLog() });
    await noStep.ready("up");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sent.map((s) => s.assignments[0])).toEqual(["READY=1"]);
    noStep.close();

    const sentNoWatchdog: Recorded[] = [];
    const noWatchdog = createServiceNotifications({
      env: { NOTIFY_SOCKET: "/run/systemd/notify" },
      notifier: fakeNotifier(sentNoWatchdog, Date.now()),
      log: recordingLog(),
    });
    expect(noWatchdog.watchdogIntervalMs).toBeUndefined();
    const loop = setInterval(() => noWatchdog.stepped(), 250);
    await noWatchdog.ready("up");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sentNoWatchdog.map((s) => s.assignments[0])).toEqual(["READY=1"]);
    clearInterval(loop);
    noWatchdog.close();
  });

  it("does nothing outside systemd (no NOTIFY_SOCKET)", async () => {
    const sent: Recorded[] = [];
    const service = createServiceNotifications({ env: {}, notifier: fakeNotifier(sent, Date.now()), log: recordingLog() });
    expect(service.enabled).toBe(false);
    service.stepped();
    await service.ready("up");
    await vi.advanceTimersByTimeAsync(60_000);
    await service.stopping("bye");
    expect(sent).toEqual([]);
  });

  it("keeps one ping in flight at a time, and a failing notifier only logs", async () => {
    let calls = 0;
    let release: (() => void) | undefined;
    const notifier: Notifier = {
      send(assignments) {
        calls++;
        if (assignments[0] === "READY=1") return Promise.resolve();
        if (calls === 2) return new Promise<void>((resolve) => (release = resolve)); // a manager slow to answer
        return Promise.reject(new Error("systemd-notify exited with 1"));
      },
    };
    const log = recordingLog();
    const service = createServiceNotifications({ env: NOTIFY_ENV, pid: 42, notifier, clock: () => Date.now(), log });
    const loop = setInterval(() => service.stepped(), 250);
    await service.ready("up");
    await vi.advanceTimersByTimeAsync(45_000);
    expect(calls, "READY=1 and the one ping still in flight").toBe(2);
    release?.();
    await vi.advanceTimersByTimeAsync(15_000);
    expect(calls).toBe(3);
    expect(log.warnings).toEqual(["systemd watchdog ping failed"]);
    clearInterval(loop);
    service.close();
  });
});

// ---------------------------------------------------------------- the spawn wiring, with a fake systemd-notify

describe("systemdNotifyCommand", () => {
  let dir: string;
  let record: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "trustpile-notify-"));
    record = join(dir, "calls.txt");
    // Records what the real one would send: the socket it was given and every assignment, one per line.
    const script = [
      "#!/bin/sh",
      `printf 'socket=%s\\n' "$NOTIFY_SOCKET" >> '${record}'`,
      `for a in "$@"; do printf 'arg=%s\\n' "$a" >> '${record}'; done`,
      'case "$1" in FAIL=*) echo "Failed to notify init system: Connection refused" >&2; exit 1;; esac',
      "exit 0",
      "",
    ].join("\n");
    writeFileSync(join(dir, "systemd-notify"), script);
    chmodSync(join(dir, "systemd-notify"), 0o755);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const envWithFake = (): NodeJS.ProcessEnv => ({
    PATH: `${dir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    NOTIFY_SOCKET: "/run/systemd/notify",
    WATCHDOG_USEC: "30000000",
  });

  it("runs systemd-notify from PATH with each assignment as one argument and NOTIFY_SOCKET in its environment", async () => {
    writeFileSync(record, "");
    await systemdNotifyCommand({ env: envWithFake() }).send(["READY=1", "STATUS=charge point cp-1 running"]);
    expect(readFileSync(record, "utf8")).toBe("socket=/run/systemd/notify\narg=READY=1\narg=STATUS=charge point cp-1 running\n");
  });

  it("is what createServiceNotifications uses by default", async () => {
    writeFileSync(record, "");
    const service = createServiceNotifications({ env: envWithFake(), log: recordingLog() });
    await service.ready("up");
    await service.stopping("bye");
    expect(readFileSync(record, "utf8").split("\n").filter((line) => line.startsWith("arg="))).toEqual([
      "arg=READY=1",
      "arg=STATUS=up",
      "arg=STOPPING=1",
      "arg=STATUS=bye",
    ]);
  });

  it("rejects with the tool's own message when it fails, and names a missing tool", async () => {
    await expect(systemdNotifyCommand({ env: envWithFake() }).send(["FAIL=1"])).rejects.toThrow(
      "systemd-notify FAIL=1 exited with 1: Failed to notify init system: Connection refused",
    );
    await expect(
      systemdNotifyCommand({ env: envWithFake(), command: join(dir, "no-such-systemd-notify") }).send(["READY=1"]),
    ).rejects.toThrow("no-such-systemd-notify not found: install systemd's systemd-notify");
  });
});

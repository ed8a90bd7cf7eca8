/**
 * systemd service notifications for `trustpile start` under systemd/trustpile.service (Type=notify, WatchdogSec=):
 * READY=1 once the agent runs, WATCHDOG=1 while its control loop is alive, STOPPING=1 when it shuts down.
 *
 * The watchdog proves the control loop, not the process: it is fed only when the agent has processed a step (a
 * meter poll, a 250 ms tick, any event) within the last half watchdog period. A loop stuck on an await that never
 * settles still has a live process with running timers; without fresh steps systemd stops hearing from it, aborts it
 * after WatchdogSec and restarts it, with the unit's relay-off step in between.
 *
 * Sending: sd_notify(3) is a datagram on the AF_UNIX socket in $NOTIFY_SOCKET, and Node has no unix datagram
 * sockets (node:dgram is UDP only; node:net unix sockets are streams, which the manager's SOCK_DGRAM socket
 * refuses). So every message is one run of `systemd-notify VAR=VALUE...`, a child of the agent, accepted because the
 * unit sets NotifyAccess=all. systemd-notify (since systemd 246) waits until the manager has processed the message
 * (sd_notify_barrier) before it exits, so the manager still finds the sender in the unit's cgroup and attributes the
 * message correctly; the race that made short-lived senders unreliable is gone. A native addon could send the
 * datagram from the main PID instead, at the cost of a compiled dependency on the pile; one process spawn every
 * WatchdogSec/2 (15 s) costs far less.
 *
 * Time is measured on a monotonic clock: a Raspberry Pi has no RTC, and NTP moving the wall clock by years at boot
 * must neither starve nor fake-feed the watchdog.
 */
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";

/** What the agent's environment says about the service manager; undefined when not started by systemd Type=notify. */
export interface NotifySettings {
  notifySocket: string;
  /** Half of WATCHDOG_USEC, in ms: how often to feed, and how fresh the last step must be. Undefined: no watchdog. */
  watchdogIntervalMs: number | undefined;
}

/**
 * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as sd_watchdog_enabled(3) does: the watchdog is ours only if
 * WATCHDOG_PID is unset or names this process.
 */
export function notifySettingsFromEnv(env: NodeJS.ProcessEnv, pid: number = process.pid): NotifySettings | undefined {
  const notifySocket = env.NOTIFY_SOCKET;
  if (notifySocket === undefined || notifySocket === "") return undefined;
  const usecText = env.WATCHDOG_USEC;
  const pidText = env.WATCHDOG_PID;
  const forUs = pidText === undefined || pidText === "" || Number(pidText) === pid;
  const usec = usecText !== undefined && /^[0-9]+$/.test(usecText) ? Number(usecText) : 0;
  const watchdogIntervalMs = forUs && usec > 0 ? usec / 2 / 1000 : undefined;
  return { notifySocket, watchdogIntervalMs };
}

/**
 * Whether to send WATCHDOG=1 now: only if the control loop processed a step at most `windowMs` ago. Times are on
 * one monotonic clock; a step "in the future" (it cannot happen on one) is treated as fresh.
 */
export function shouldFeed(lastStepAtMs: number | undefined, nowMs: number, windowMs: number): boolean {
  if (lastStepAtMs === undefined) return false;
  return nowMs - lastStepAtMs <= windowMs;
}

/** Sends one notification message made of `VAR=VALUE` assignments. */
export interface Notifier {
  send(assignments: readonly string[]): Promise<void>;
}

export interface SystemdNotifyCommandOptions {
  /** The environment handed to the child; it must carry NOTIFY_SOCKET. */
  env: NodeJS.ProcessEnv;
  /** Default `systemd-notify` from PATH. */
  command?: string;
  /** The child is killed after this long (systemd-notify's own barrier timeout is 5 s). Default 6000 ms. */
  timeoutMs?: number;
}

/** A Notifier that runs `systemd-notify VAR=VALUE...`; rejects with one sentence if it cannot be run or fails. */
export function systemdNotifyCommand(options: SystemdNotifyCommandOptions): Notifier {
  const command = options.command ?? "systemd-notify";
  const timeoutMs = options.timeoutMs ?? 6_000;
  return {
    send(assignments) {
      return new Promise<void>((resolve, reject) => {
        const child = spawn(command, [...assignments], {
          env: options.env,
          stdio: ["ignore", "ignore", "pipe"],
          timeout: timeoutMs,
        });
        let stderr = "";
        child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
          if (stderr.length < 2_000) stderr += chunk;
        });
        child.on("error", (error: NodeJS.ErrnoException) => {
          reject(
            new Error(
              error.code === "ENOENT"
                ? `${command} not found: install systemd's systemd-notify to report to the service manager`
                : `cannot run ${command}: ${error.message}`,
            ),
          );
        });
        child.on("close", (code, signal) => {
          if (code === 0) resolve();
          else {
            const why = signal ? `was killed (${signal})` : `exited with ${code}`;
            const detail = stderr.trim().split("\n")[0] ?? "";
            reject(new Error(`${command} ${assignments.join(" ")} ${why}${detail ? `: ${detail}` : ""}`));
          }
        });
      });
    },
  };
}

/** The part of the agent's logger this module uses. */
export interface NotifyLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface ServiceNotifications {
  /** False when not started by systemd Type=notify: every method below does nothing. */
  readonly enabled: boolean;
  /** Half of WatchdogSec in ms, or undefined without a watchdog. */
  readonly watchdogIntervalMs: number | undefined;
  /** Call after every step of the control loop (the agent's onStep hook). Cheap: it records the time. */
  stepped(): void;
  /** READY=1 (with STATUS=), then WATCHDOG=1 every interval while steps are fresh. */
  ready(status: string): Promise<void>;
  /** STOPPING=1; feeding stops. */
  stopping(status: string): Promise<void>;
  /** Stops feeding without telling the manager anything. Safe to call more than once. */
  close(): void;
}

export interface ServiceNotificationsOptions {
  env?: NodeJS.ProcessEnv;
  pid?: number;
  /** Default: systemd-notify with `env`. */
  notifier?: Notifier;
  /** Monotonic ms. Default performance.now. */
  clock?: () => number;
  log: NotifyLog;
}

export function createServiceNotifications(options: ServiceNotificationsOptions): ServiceNotifications {
  const env = options.env ?? process.env;
  const settings = notifySettingsFromEnv(env, options.pid);
  const log = options.log;
  if (!settings) {
    return {
      enabled: false,
      watchdogIntervalMs: undefined,
      stepped: () => undefined,
      ready: async () => undefined,
      stopping: async () => undefined,
      close: () => undefined,
    };
  }
  const notifier = options.notifier ?? systemdNotifyCommand({ env });
  const clock = options.clock ?? (() => performance.now());
  const intervalMs = settings.watchdogIntervalMs;
  let lastStepAtMs: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let feeding = false;
  let starving = false;
  let closed = false;

  const feed = (): void => {
    // One message at a time: a manager slow to answer the barrier must not pile up systemd-notify processes.
    if (feeding || closed || intervalMs === undefined) return;
    const now = clock();
    if (!shouldFeed(lastStepAtMs, now, intervalMs)) {
      if (!starving) {
        starving = true;
        const silentMs = lastStepAtMs === undefined ? undefined : Math.round(now - lastStepAtMs);
        log.warn({ silentMs, windowMs: intervalMs }, "control loop silent: not feeding the systemd watchdog");
      }
      return;
    }
    if (starving) {
      starving = false;
      log.info({}, "control loop alive again: feeding the systemd watchdog");
    }
    feeding = true;
    notifier
      .send(["WATCHDOG=1"])
      .catch((error: unknown) => log.warn({ err: error }, "systemd watchdog ping failed"))
      .finally(() => (feeding = false));
  };

  const send = async (assignments: readonly string[]): Promise<void> => {
    try {
      await notifier.send(assignments);
    } catch (error) {
      log.warn({ err: error }, `systemd notification ${assignments[0] ?? ""} failed`);
    }
  };

  const close = (): void => {
    closed = true;
    if (timer) clearInterval(timer);
    timer = undefined;
  };

  return {
    enabled: true,
    watchdogIntervalMs: intervalMs,
    stepped() {
      lastStepAtMs = clock();
    },
    async ready(status) {
      if (closed) return;
      await send(["READY=1", `STATUS=${status}`]);
      if (intervalMs !== undefined && !closed && !timer) {
        timer = setInterval(feed, intervalMs);
        // Feeding never keeps a stopping agent alive.
        timer.unref();
      }
    },
    async stopping(status) {
      close();
      await send(["STOPPING=1", `STATUS=${status}`]);
    },
    close,
  };
}

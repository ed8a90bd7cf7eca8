/**
 * A virtual null-modem cable: two ptys joined by socat, one end for the agent's driver, one for the simulated
 * meter. A pty has no baud-rate timing (bytes arrive at once), so it tests framing and faults, not bus speed.
 */
import { spawn } from "node:child_process";

export interface PtyPair {
  /** Serial device for the driver (the `meter.device` of a config). */
  agentPath: string;
  /** Serial device for the simulated meter. */
  simPath: string;
  /** Kills socat; both devices disappear, as an unplugged USB adapter does. Idempotent. */
  close(): Promise<void>;
}

export interface PtyPairOptions {
  /**
   * Stable symlinks to the two ptys (socat `link=`), removed when socat exits. With them a test can unplug the
   * "adapter" (close) and plug it back in under the same path (open again with the same links).
   */
  agentLink?: string;
  simLink?: string;
  /** How long socat may take to set up the pair. Default 5000 ms. */
  startTimeoutMs?: number;
}

function ptyAddress(link: string | undefined): string {
  // raw,echo=0: bytes pass unchanged, and nothing written to one end comes back on it.
  return link ? `pty,raw,echo=0,link=${link}` : "pty,raw,echo=0";
}

export function openPtyPair(options: PtyPairOptions = {}): Promise<PtyPair> {
  const startTimeoutMs = options.startTimeoutMs ?? 5_000;
  const socat = spawn("socat", ["-d", "-d", ptyAddress(options.agentLink), ptyAddress(options.simLink)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<void>((resolve) => socat.once("exit", () => resolve()));

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      if (socat.exitCode === null && socat.signalCode === null) {
        socat.kill("SIGTERM");
        const killTimer = setTimeout(() => socat.kill("SIGKILL"), 1_000);
        await exited;
        clearTimeout(killTimer);
      }
    })();
    return closing;
  };

  return new Promise<PtyPair>((resolve, reject) => {
    let stderr = "";
    const fail = (error: Error): void => {
      clearTimeout(timer);
      void close().then(() => reject(error));
    };
    const timer = setTimeout(
      () => fail(new Error(`socat did not open a pty pair within ${startTimeoutMs} ms; its output: ${stderr.trim()}`)),
      startTimeoutMs,
    );
    socat.once("error", (error: NodeJS.ErrnoException) => {
      fail(
        error.code === "ENOENT"
          ? new Error("socat is not installed (apt-get install socat)")
          : new Error(`cannot start socat: ${error.message}`),
      );
    });
    const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      fail(new Error(`socat exited (${signal ?? `code ${code}`}) before the pty pair was ready: ${stderr.trim()}`));
    };
    socat.once("exit", onEarlyExit);
    socat.stderr.setEncoding("utf8");
    const onOutput = (chunk: string): void => {
      stderr += chunk;
      const ptys = [...stderr.matchAll(/PTY is (\S+)/g)].map((match) => match[1] ?? "");
      // Both ptys exist once socat says so; the transfer loop line means it is also forwarding bytes.
      if (ptys.length < 2 || !/starting data transfer loop/.test(stderr)) return;
      clearTimeout(timer);
      socat.off("exit", onEarlyExit);
      socat.stderr.off("data", onOutput);
      // Keep draining stderr so that socat never blocks on a full pipe.
      socat.stderr.resume();
      resolve({
        agentPath: options.agentLink ?? ptys[0] ?? "",
        simPath: options.simLink ?? ptys[1] ?? "",
        close,
      });
    };
    socat.stderr.on("data", onOutput);
  });
}

import { pino, type Logger } from "pino";

export type { Logger };

/**
 * One JSON line per event (DESIGN: structured logs with session id and tx hash where they exist). Secrets are
 * redacted by key wherever they appear, so a config or error object can be logged without leaking them.
 */
export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? "trustpile",
      level: options.level ?? process.env.LOG_LEVEL ?? "info",
      base: undefined,
      redact: {
        paths: ["password", "*.password", "*.*.password", "privateKey", "*.privateKey", "mnemonic"],
        censor: "[redacted]",
      },
      serializers: { err: pino.stdSerializers.err },
      formatters: { level: (label) => ({ level: label }) },
    },
    (options.destination ?? process.stdout) as pino.DestinationStream,
  );
}

/** A logger that writes nothing, for tests and in-process simulations that print their own progress. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

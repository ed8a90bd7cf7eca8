/**
 * Errors that reach a user. Each carries the exit code the CLI returns (DESIGN §5.1):
 * 2 for bad usage or bad config, 1 for a runtime failure. The message is one sentence that names what was wrong.
 */
export type ExitCode = 1 | 2;

export class TrustpileError extends Error {
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad command-line usage or a bad config file: exit code 2. */
export class UsageError extends TrustpileError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 2, options);
  }
}

/** Something failed while doing the work (unreachable RPC, reverted transaction, I/O): exit code 1. */
export class RuntimeError extends TrustpileError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 1, options);
  }
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The one error factory of the GPIO drivers (STYLE §5): every message starts with the package and the backend, so a
 * line in the agent's log says which layer refused, and the rest is one sentence naming the value and what was
 * expected. `drivers/` cannot use the agent's error classes (dependency direction, DESIGN §2); the agent wraps these.
 */

export type GpioBackendName = "sysfs" | "onoff" | "sim" | "gpio";

export class GpioError extends Error {
  readonly backend: GpioBackendName;

  constructor(backend: GpioBackendName, message: string, options?: { cause?: unknown }) {
    super(`[trustpile] [gpio:${backend}] ${message}`, options);
    this.name = "GpioError";
    this.backend = backend;
  }
}

export function gpioError(backend: GpioBackendName, message: string, options?: { cause?: unknown }): GpioError {
  return new GpioError(backend, message, options);
}

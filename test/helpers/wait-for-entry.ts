/**
 * Waits for the first entry from index `from` on of a list that keeps growing (an agent's stdout lines, the
 * messages an MQTT observer receives) that matches `predicate`. `listeners` is the list owner's set of callbacks,
 * called after every append. `failure` may end the wait early (e.g. the process exited); `onTimeout` says what
 * was seen, for the error message.
 */
export function waitForEntry<T>(
  entries: readonly T[],
  listeners: Set<() => void>,
  wait: {
    what: string;
    predicate: (entry: T) => boolean;
    timeoutMs: number;
    from?: number;
    onTimeout: () => string;
    failure?: () => string | undefined;
  },
): Promise<T> {
  return new Promise((resolve, reject) => {
    let checked = wait.from ?? 0;
    const check = (): void => {
      for (; checked < entries.length; checked++) {
        const entry = entries[checked]!;
        if (wait.predicate(entry)) {
          finish();
          resolve(entry);
          return;
        }
      }
      const failed = wait.failure?.();
      if (failed !== undefined) {
        finish();
        reject(new Error(failed));
      }
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${wait.timeoutMs} ms waiting for ${wait.what}; ${wait.onTimeout()}`));
    }, wait.timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      listeners.delete(check);
    };
    listeners.add(check);
    check();
  });
}

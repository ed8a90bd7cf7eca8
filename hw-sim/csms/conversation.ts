/**
 * What the simulated CSMS and its charge points said to each other: one record per OCPP call (either direction)
 * with the answer it got. Tests assert on the array exactly; `waitFor` lets them wait for a message to arrive.
 */

export type OcppProtocol = "ocpp1.6" | "ocpp2.0.1";

/** How a call was answered. `none` when the connection dropped or the call timed out before any answer. */
export type CsmsReply =
  | { readonly kind: "result"; readonly payload: unknown }
  | { readonly kind: "error"; readonly code: string; readonly description: string; readonly details: unknown }
  | { readonly kind: "none"; readonly reason: string };

export interface CsmsMessage {
  /** Clock time the call was sent or received, Unix ms. */
  readonly atMs: number;
  readonly identity: string;
  readonly protocol: OcppProtocol;
  /** Who sent the call: the charge point, or the CSMS (an operator action). */
  readonly from: "pile" | "csms";
  readonly messageId: string;
  readonly action: string;
  readonly payload: unknown;
  /** Undefined while the call is still waiting for its answer. */
  readonly reply: CsmsReply | undefined;
}

interface Waiter {
  predicate: (message: CsmsMessage) => boolean;
  resolve: (message: CsmsMessage) => void;
}

export class Conversation {
  readonly #messages: CsmsMessage[] = [];
  readonly #waiters = new Set<Waiter>();

  /** Every recorded message, oldest first; with an identity, only that charge point's. A copy. */
  messages(identity?: string): CsmsMessage[] {
    return identity === undefined ? [...this.#messages] : this.#messages.filter((m) => m.identity === identity);
  }

  add(message: CsmsMessage): void {
    this.#messages.push(Object.freeze(message));
    this.#notify(message);
  }

  /** Completes the still unanswered call `messageId` of `identity`; a second answer to the same call is ignored. */
  answer(identity: string, messageId: string, reply: CsmsReply): CsmsMessage | undefined {
    for (let index = this.#messages.length - 1; index >= 0; index--) {
      const message = this.#messages[index];
      if (message === undefined || message.identity !== identity || message.messageId !== messageId) continue;
      if (message.reply !== undefined) return undefined;
      const answered = Object.freeze({ ...message, reply });
      this.#messages[index] = answered;
      this.#notify(answered);
      return answered;
    }
    return undefined;
  }

  /**
   * The first message, already recorded or still to come, that satisfies `predicate`; it is checked again when a
   * call gets its answer. Rejects after `timeoutMs` (wall clock) naming the wait.
   */
  waitFor(predicate: (message: CsmsMessage) => boolean, timeoutMs: number): Promise<CsmsMessage> {
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      return Promise.reject(new RangeError(`waitFor: expected timeoutMs >= 0, got ${timeoutMs}`));
    }
    const found = this.#messages.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (message) => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(message);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        const seen = this.#messages.map((m) => `${m.from === "pile" ? "<-" : "->"} ${m.identity} ${m.action}`).join(", ");
        reject(new Error(`waitFor: no matching OCPP message within ${timeoutMs} ms (seen: ${seen || "nothing"})`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  #notify(message: CsmsMessage): void {
    for (const waiter of [...this.#waiters]) {
      if (waiter.predicate(message)) waiter.resolve(message);
    }
  }
}

/**
 * The contactor: a coil the agent energizes through its relay output, main contacts that follow after a switching
 * delay, and a feedback (mirror) contact that reports what the main contacts really do. The two faults the
 * interlock must catch (DESIGN §3) are the ones that break "contacts follow the coil":
 *   welded        the contacts stay closed whatever the coil does (they close at once if they were open:
 *                 a welded contactor is a closed one, so an agent that starts on it must see feedback "closed");
 *   failToClose   the contacts never close (an open coil or a worn mechanism); closed contacts still open.
 * The feedback contact is modelled as a true mirror: it always reports the main contacts, faults included.
 */
import type { Clock } from "./clock.ts";

export type RelayFault = "none" | "welded" | "failToClose";

export interface ContactEdge {
  /** Clock time the main contacts changed, ms. */
  atMs: number;
  closed: boolean;
}

export interface RelayOptions {
  /** Time from a coil change to the contacts moving, ms. Default 20 (a small DIN-rail contactor). */
  switchingDelayMs?: number;
}

export interface RelayState {
  /** Coil energized (the command the agent's output gives). */
  commanded: boolean;
  contactsClosed: boolean;
  /** The feedback (mirror) contact: closed exactly when the main contacts are. */
  feedbackClosed: boolean;
  fault: RelayFault;
  switchingDelayMs: number;
}

type Listener = () => void;

export class Relay {
  readonly switchingDelayMs: number;

  readonly #clock: Clock;
  #commanded = false;
  #closed = false;
  #fault: RelayFault = "none";
  #cancelPending: (() => void) | undefined;
  readonly #history: ContactEdge[] = [];
  readonly #willChange = new Set<Listener>();
  readonly #changed = new Set<Listener>();

  constructor(clock: Clock, options: RelayOptions = {}) {
    this.#clock = clock;
    const delay = options.switchingDelayMs ?? 20;
    if (!Number.isFinite(delay) || delay < 0) {
      throw new RangeError(`relay.switchingDelayMs: expected ms >= 0, got ${delay}`);
    }
    this.switchingDelayMs = delay;
  }

  /** Energizes (true) or releases (false) the coil; the contacts follow after the switching delay, faults permitting. */
  command(energize: boolean): void {
    if (energize === this.#commanded) return;
    this.#commanded = energize;
    this.#schedule();
  }

  get commanded(): boolean {
    return this.#commanded;
  }

  contactsClosed(): boolean {
    return this.#closed;
  }

  feedbackClosed(): boolean {
    return this.#closed;
  }

  get fault(): RelayFault {
    return this.#fault;
  }

  /** Welds the contacts: closed from now on, whatever the command, until `clearFaults`. */
  weld(): void {
    this.#fault = "welded";
    this.#cancel();
    this.#setContacts(true);
  }

  /** The contacts will not close again until `clearFaults`; contacts already closed still open when released. */
  failToClose(): void {
    this.#fault = "failToClose";
    this.#schedule();
  }

  /** Repairs the contactor; the contacts then follow the command after the switching delay. */
  clearFaults(): void {
    if (this.#fault === "none") return;
    this.#fault = "none";
    this.#schedule();
  }

  /** Every change of the main contacts, oldest first. */
  history(): readonly ContactEdge[] {
    return [...this.#history];
  }

  state(): RelayState {
    return {
      commanded: this.#commanded,
      contactsClosed: this.#closed,
      feedbackClosed: this.feedbackClosed(),
      fault: this.#fault,
      switchingDelayMs: this.switchingDelayMs,
    };
  }

  /** Called just before the contacts move (to integrate energy up to that instant). */
  onWillChange(listener: Listener): () => void {
    this.#willChange.add(listener);
    return () => this.#willChange.delete(listener);
  }

  /** Called after the contacts moved; read `contactsClosed()` for the new position. */
  onChange(listener: Listener): () => void {
    this.#changed.add(listener);
    return () => this.#changed.delete(listener);
  }

  /** Cancels a pending contact movement (on shutdown, so no timer outlives the board). */
  dispose(): void {
    this.#cancel();
  }

  #target(): boolean {
    if (this.#fault === "welded") return true;
    if (this.#fault === "failToClose" && !this.#closed) return false;
    return this.#commanded;
  }

  #schedule(): void {
    this.#cancel();
    if (this.#target() === this.#closed) return;
    if (this.switchingDelayMs === 0) {
      this.#setContacts(this.#target());
      return;
    }
    this.#cancelPending = this.#clock.setTimer(this.switchingDelayMs, () => {
      this.#cancelPending = undefined;
      this.#setContacts(this.#target());
    });
  }

  #cancel(): void {
    this.#cancelPending?.();
    this.#cancelPending = undefined;
  }

  #setContacts(closed: boolean): void {
    if (closed === this.#closed) return;
    for (const listener of [...this.#willChange]) listener();
    this.#closed = closed;
    this.#history.push({ atMs: this.#clock.nowMs(), closed });
    for (const listener of [...this.#changed]) listener();
  }
}

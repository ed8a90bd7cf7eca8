/**
 * Digital lines as the agent sees them. Values are logical: `true` means active (relay energized, contact closed,
 * EV present) after `activeLow` is applied, so nothing above the driver knows the wiring's polarity.
 */

export interface DigitalOut {
  readonly line: number;
  write(active: boolean): Promise<void>;
  /** The level last written (what the line drives), not a feedback reading. */
  read(): Promise<boolean>;
  close(): Promise<void>;
}

export interface DigitalIn {
  readonly line: number;
  read(): Promise<boolean>;
  /** Calls `listener` on every change of the logical level; returns a function that stops watching. */
  watch(listener: (active: boolean) => void): () => void;
  close(): Promise<void>;
}

export interface LineConfig {
  /** Line number on the controller's GPIO chip (BCM numbering on a Raspberry Pi), not the sysfs number. */
  line: number;
  activeLow?: boolean;
}

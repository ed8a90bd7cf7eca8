/**
 * The meter as the agent sees it. Units are in the names; energy is an integer number of Wh, converted once here
 * at the driver edge (DESIGN §5.2), so nothing above the driver ever handles kWh floats.
 */

export interface PhaseReading {
  /** Line-to-neutral voltage in V. */
  voltageV: number;
  /** Current in A. */
  currentA: number;
  /** Active power in W (positive = import). */
  powerW: number;
}

export interface MeterSample {
  /** Unix time in ms when the last reply of this poll arrived. */
  readAtMs: number;
  /** Total import active energy register, integer Wh. Monotonic on a healthy meter. */
  importEnergyWh: number;
  /** Total export active energy, integer Wh, where the model has it. */
  exportEnergyWh?: number;
  /** Total active power in W. */
  powerW: number;
  /** Frequency in Hz, where the model has it. */
  frequencyHz?: number;
  /** L1 (and L2, L3 on three-phase models), in order. */
  phases: PhaseReading[];
}

export interface Meter {
  /** The register table's model name, e.g. "sdm630". */
  readonly model: string;
  /** One full poll. Rejects only with a MeterFault. */
  read(): Promise<MeterSample>;
  close(): Promise<void>;
}

/**
 * Why a poll produced no trustworthy sample. The agent treats every kind as meter loss for the interlock;
 * the kind is for the installer and the operator.
 */
export type MeterFaultKind =
  | "timeout" // no (complete) reply within meter.timeoutMs
  | "crc" // a reply whose CRC (RTU) does not match
  | "exception" // the meter answered with a Modbus exception code
  | "disconnected" // the port or socket is closed or cannot be opened
  | "malformed" // a reply of the wrong length, unit id or function
  | "implausible"; // values a healthy meter cannot produce (energy backwards, a jump beyond max power × time)

export class MeterFault extends Error {
  readonly kind: MeterFaultKind;

  constructor(kind: MeterFaultKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MeterFault";
    this.kind = kind;
  }
}

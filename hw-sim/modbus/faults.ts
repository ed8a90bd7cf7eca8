/**
 * Fault switches of the simulated meter's Modbus side. The caller owns the object and may flip any switch at any
 * moment (tests, the hw-sim control API); the servers read it afresh for every request.
 */
export interface ModbusFaults {
  /** No answer at all, as from a meter without power or a broken bus. */
  offline: boolean;
  /** Every answer goes out this late (ms); a reply already scheduled still goes out after the fault is lifted. */
  replyDelayMs: number;
  /** RTU: the reply's CRC is inverted. TCP (MBAP): the reply is cut 2 bytes short, its MBAP length consistent. */
  corruptCrc: boolean;
  /** Every read is answered with this Modbus exception code. */
  exceptionCode?: number;
}

export function createModbusFaults(): ModbusFaults {
  return { offline: false, replyDelayMs: 0, corruptCrc: false };
}

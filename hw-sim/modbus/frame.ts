/**
 * Modbus framing for the simulated meter, written out rather than borrowed: modbus-serial's own servers answer
 * frames whose CRC does not match, and a simulator that forgives what a real meter drops hides driver bugs.
 *
 * RTU (Modbus over serial line V1.02 §2.5): [unit][PDU][CRC16 low byte][CRC16 high byte]. On a real bus a frame ends
 * at 3.5 character times of silence; on a pty there is no bus timing, so requests with a known length (functions
 * 01–06: 8 bytes, 15/16: 9 + byte count) are cut by length at once, and only unknown functions wait for silence.
 * TCP (Modbus Messaging on TCP/IP V1.0b §3.1.3): MBAP [transaction id][protocol id = 0][length][unit] + PDU, no CRC.
 */

export const READ_HOLDING_REGISTERS = 0x03;
export const READ_INPUT_REGISTERS = 0x04;

export const EXCEPTION_ILLEGAL_FUNCTION = 0x01;
export const EXCEPTION_ILLEGAL_DATA_ADDRESS = 0x02;
export const EXCEPTION_ILLEGAL_DATA_VALUE = 0x03;

/** The largest register count one read may ask for (Modbus Application Protocol V1.1b3 §6.3/§6.4). */
export const MAX_READ_REGISTERS = 125;

const MBAP_HEADER_BYTES = 7; // transaction id, protocol id, length, unit id
const MAX_RTU_FRAME_BYTES = 256;

/** CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF). */
export function crc16(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** True if the frame's last two bytes are the CRC of the rest, low byte first. */
export function hasValidCrc(frame: Uint8Array): boolean {
  if (frame.length < 3) return false;
  const body = frame.subarray(0, frame.length - 2);
  const crc = crc16(body);
  return frame[frame.length - 2] === (crc & 0xff) && frame[frame.length - 1] === crc >>> 8;
}

export function encodeRtu(unitId: number, pdu: Uint8Array): Buffer {
  const frame = Buffer.alloc(pdu.length + 3);
  frame[0] = unitId;
  frame.set(pdu, 1);
  frame.writeUInt16LE(crc16(frame.subarray(0, pdu.length + 1)), pdu.length + 1);
  return frame;
}

export function encodeMbap(transactionId: number, unitId: number, pdu: Uint8Array): Buffer {
  const frame = Buffer.alloc(MBAP_HEADER_BYTES + pdu.length);
  frame.writeUInt16BE(transactionId, 0);
  frame.writeUInt16BE(0, 2);
  frame.writeUInt16BE(pdu.length + 1, 4);
  frame[6] = unitId;
  frame.set(pdu, MBAP_HEADER_BYTES);
  return frame;
}

/** A read request for `count` registers from `address` (function 03 or 04), as a PDU. */
export function readRequestPdu(functionCode: number, address: number, count: number): Buffer {
  const pdu = Buffer.alloc(5);
  pdu[0] = functionCode;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(count, 3);
  return pdu;
}

export function readResponsePdu(functionCode: number, words: readonly number[]): Buffer {
  const pdu = Buffer.alloc(2 + 2 * words.length);
  pdu[0] = functionCode;
  pdu[1] = 2 * words.length;
  words.forEach((word, i) => pdu.writeUInt16BE(word & 0xffff, 2 + 2 * i));
  return pdu;
}

export function exceptionPdu(functionCode: number, exceptionCode: number): Buffer {
  return Buffer.from([(functionCode | 0x80) & 0xff, exceptionCode & 0xff]);
}

/** Bytes of an RTU read request and of its normal reply, for wire-time estimates. */
export function rtuReadBytes(count: number): { requestBytes: number; replyBytes: number } {
  return { requestBytes: 8, replyBytes: 5 + 2 * count };
}

export interface RtuFrame {
  unitId: number;
  pdu: Buffer;
}

/**
 * Length of the RTU request starting at `buffer[0]`: a number once known, `"need-more"` while the header that
 * carries it is incomplete, `"unknown"` for functions whose length only silence can tell.
 */
export function rtuRequestLength(buffer: Uint8Array): number | "need-more" | "unknown" {
  if (buffer.length < 2) return "need-more";
  const functionCode = buffer[1];
  if (functionCode !== undefined && functionCode >= 0x01 && functionCode <= 0x06) return 8;
  if (functionCode === 0x0f || functionCode === 0x10) {
    const byteCount = buffer[6];
    return byteCount === undefined ? "need-more" : 9 + byteCount;
  }
  return "unknown";
}

/**
 * Cuts a serial byte stream into RTU request frames. A frame with a bad CRC is dropped the way a meter drops it
 * (no reply), and parsing resumes one byte further on, so a garbled byte cannot desynchronise later frames.
 */
export class RtuRequestParser {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(
    private readonly onFrame: (frame: RtuFrame) => void,
    private readonly onBadFrame: (bytes: Buffer) => void = () => {},
  ) {}

  /** Bytes held back waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.buffer.length;
  }

  push(chunk: Uint8Array): void {
    this.buffer = this.buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const length = rtuRequestLength(this.buffer);
      if (length === "need-more" || length === "unknown" || this.buffer.length < length) {
        // Nothing whole at the start; if a whole valid frame sits further on, what precedes it is garbage.
        const next = this.nextValidFrameOffset();
        if (next === undefined) break;
        this.reject(next);
        continue;
      }
      if (length > MAX_RTU_FRAME_BYTES) {
        this.reject(1);
        continue;
      }
      const frame = this.buffer.subarray(0, length);
      if (!hasValidCrc(frame)) {
        this.reject(1);
        continue;
      }
      this.buffer = this.buffer.subarray(length);
      this.emit(frame);
    }
    if (this.buffer.length > MAX_RTU_FRAME_BYTES) this.reject(this.buffer.length);
  }

  /** Inter-frame silence: whatever is buffered is one whole frame (used for functions of unknown length). */
  endOfFrame(): void {
    if (this.buffer.length === 0) return;
    const frame = this.buffer;
    this.buffer = Buffer.alloc(0);
    if (frame.length >= 4 && hasValidCrc(frame)) this.emit(frame);
    else this.onBadFrame(frame);
  }

  /** Offset (> 0) of the first complete frame of known length with a valid CRC, if any. */
  private nextValidFrameOffset(): number | undefined {
    for (let offset = 1; offset + 8 <= this.buffer.length; offset++) {
      const rest = this.buffer.subarray(offset);
      const length = rtuRequestLength(rest);
      if (typeof length === "number" && length <= rest.length && hasValidCrc(rest.subarray(0, length))) return offset;
    }
    return undefined;
  }

  private emit(frame: Buffer): void {
    this.onFrame({ unitId: frame[0] ?? 0, pdu: Buffer.from(frame.subarray(1, frame.length - 2)) });
  }

  private reject(bytes: number): void {
    this.onBadFrame(Buffer.from(this.buffer.subarray(0, bytes)));
    this.buffer = this.buffer.subarray(bytes);
  }
}

export interface MbapFrame {
  transactionId: number;
  protocolId: number;
  unitId: number;
  pdu: Buffer;
}

/** Cuts a TCP byte stream into MBAP frames; feed it every chunk received on one connection. */
export class MbapParser {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(
    private readonly onFrame: (frame: MbapFrame) => void,
    private readonly onBadFrame: (bytes: Buffer) => void = () => {},
  ) {}

  push(chunk: Uint8Array): void {
    this.buffer = this.buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= MBAP_HEADER_BYTES) {
      const length = this.buffer.readUInt16BE(4);
      // length counts the unit id and the PDU: a PDU is 1..253 bytes.
      if (length < 2 || length > 254) {
        // No way to find the next frame boundary in a stream: drop what we have.
        this.onBadFrame(this.buffer);
        this.buffer = Buffer.alloc(0);
        return;
      }
      const total = 6 + length;
      if (this.buffer.length < total) return;
      this.onFrame({
        transactionId: this.buffer.readUInt16BE(0),
        protocolId: this.buffer.readUInt16BE(2),
        unitId: this.buffer[6] ?? 0,
        pdu: Buffer.from(this.buffer.subarray(MBAP_HEADER_BYTES, total)),
      });
      this.buffer = this.buffer.subarray(total);
    }
  }
}

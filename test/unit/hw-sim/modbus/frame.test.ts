import { describe, expect, it } from "vitest";
import {
  MbapParser,
  RtuRequestParser,
  crc16,
  encodeMbap,
  encodeRtu,
  hasValidCrc,
  readRequestPdu,
  rtuReadBytes,
  rtuRequestLength,
  type MbapFrame,
  type RtuFrame,
} from "../../../../hw-sim/modbus/frame.ts";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

function collectRtu(): { parser: RtuRequestParser; frames: RtuFrame[]; bad: Buffer[] } {
  const frames: RtuFrame[] = [];
  const bad: Buffer[] = [];
  const parser = new RtuRequestParser(
    (frame) => frames.push(frame),
    (bytes) => bad.push(bytes),
  );
  return { parser, frames, bad };
}

describe("CRC-16/MODBUS", () => {
  it("matches the Modbus serial line spec's example and modbus-serial's wire bytes", () => {
    // Modbus over serial line V1.02 appendix B: 01 03 00 00 00 0A → CRC C5 CD (low byte first on the wire).
    expect(encodeRtu(0x01, hex("03 0000 000A"))).toEqual(hex("01 03 0000 000A C5CD"));
    // Captured from modbus-serial's TelnetPort: read input registers 0x48+2 on unit 1.
    expect(encodeRtu(0x01, readRequestPdu(0x04, 0x48, 2))).toEqual(hex("01 04 0048 0002 F1DD"));
    expect(crc16(hex("01 04 0048 0002"))).toBe(0xddf1);
  });

  it("rejects a frame with one bit flipped", () => {
    const frame = encodeRtu(1, readRequestPdu(4, 0, 18));
    expect(hasValidCrc(frame)).toBe(true);
    frame[3] = (frame[3] ?? 0) ^ 0x01;
    expect(hasValidCrc(frame)).toBe(false);
  });
});

describe("RTU request parser", () => {
  const request = encodeRtu(1, readRequestPdu(4, 0x48, 6));

  it("cuts 03/04 requests at 8 bytes, even when they arrive byte by byte", () => {
    const { parser, frames } = collectRtu();
    for (const byte of request) parser.push(Buffer.from([byte]));
    expect(frames).toEqual([{ unitId: 1, pdu: readRequestPdu(4, 0x48, 6) }]);
    expect(parser.pendingBytes).toBe(0);
  });

  it("splits back-to-back requests in one chunk, and passes frames for other units on for the server to ignore", () => {
    const { parser, frames } = collectRtu();
    parser.push(Buffer.concat([request, encodeRtu(2, readRequestPdu(3, 0, 1))]));
    expect(frames.map((f) => f.unitId)).toEqual([1, 2]);
  });

  it("drops a frame with a bad CRC and resynchronises on the next good one", () => {
    const { parser, frames, bad } = collectRtu();
    const damaged = Buffer.from(request);
    damaged[7] = (damaged[7] ?? 0) ^ 0xff;
    parser.push(Buffer.concat([damaged, request]));
    expect(frames).toEqual([{ unitId: 1, pdu: readRequestPdu(4, 0x48, 6) }]);
    expect(bad.length).toBeGreaterThan(0);
  });

  it("skips leading garbage", () => {
    const { parser, frames } = collectRtu();
    parser.push(Buffer.concat([hex("FF 00 13"), request]));
    expect(frames).toHaveLength(1);
  });

  it("knows the length of 15/16 from the byte count and waits for it", () => {
    const write = encodeRtu(1, hex("10 0000 0002 04 0001 0002"));
    expect(rtuRequestLength(write.subarray(0, 5))).toBe("need-more");
    expect(rtuRequestLength(write)).toBe(13);
    const { parser, frames } = collectRtu();
    parser.push(write.subarray(0, 9));
    expect(frames).toHaveLength(0);
    parser.push(write.subarray(9));
    expect(frames).toHaveLength(1);
  });

  it("waits for silence to end a request of a function it has no length for", () => {
    const { parser, frames } = collectRtu();
    const odd = encodeRtu(1, hex("2B 0E 01 00"));
    parser.push(odd);
    expect(frames).toHaveLength(0);
    parser.endOfFrame();
    expect(frames).toEqual([{ unitId: 1, pdu: hex("2B 0E 01 00") }]);
  });

  it("discards an incomplete frame at silence", () => {
    const { parser, frames, bad } = collectRtu();
    parser.push(request.subarray(0, 5));
    parser.endOfFrame();
    parser.push(request);
    expect(frames).toHaveLength(1);
    expect(bad).toEqual([request.subarray(0, 5)]);
  });
});

describe("MBAP parser", () => {
  it("reassembles frames split across chunks and splits frames sharing one", () => {
    const frames: MbapFrame[] = [];
    const parser = new MbapParser((frame) => frames.push(frame));
    const a = encodeMbap(7, 1, readRequestPdu(4, 0, 18));
    const b = encodeMbap(8, 1, readRequestPdu(4, 0x34, 24));
    const stream = Buffer.concat([a, b]);
    parser.push(stream.subarray(0, 4));
    parser.push(stream.subarray(4, 15));
    parser.push(stream.subarray(15));
    expect(frames).toEqual([
      { transactionId: 7, protocolId: 0, unitId: 1, pdu: readRequestPdu(4, 0, 18) },
      { transactionId: 8, protocolId: 0, unitId: 1, pdu: readRequestPdu(4, 0x34, 24) },
    ]);
  });

  it("drops a stream whose MBAP length cannot be a Modbus frame", () => {
    const frames: MbapFrame[] = [];
    const bad: Buffer[] = [];
    const parser = new MbapParser(
      (frame) => frames.push(frame),
      (bytes) => bad.push(bytes),
    );
    parser.push(hex("0001 0000 FFFF 01 04"));
    expect(frames).toHaveLength(0);
    expect(bad).toHaveLength(1);
  });
});

describe("wire size of a read", () => {
  it("is 8 bytes out and 5 + 2 per register back", () => {
    expect(rtuReadBytes(18)).toEqual({ requestBytes: 8, replyBytes: 41 });
  });
});

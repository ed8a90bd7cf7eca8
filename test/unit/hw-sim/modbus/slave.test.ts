import { describe, expect, it } from "vitest";
import { decodeField } from "../../../../drivers/meters/codec.ts";
import { meterModels } from "../../../../drivers/meters/models/index.ts";
import { readRequestPdu } from "../../../../hw-sim/modbus/frame.ts";
import { REGISTER_SPACE_END, answerPdu, type MeterValues } from "../../../../hw-sim/modbus/slave.ts";

const values: MeterValues = {
  importEnergyWh: 1_234_500,
  exportEnergyWh: 0,
  powerW: 6_900,
  frequencyHz: 50,
  phases: [
    { voltageV: 230, currentA: 10, powerW: 2_300 },
    { voltageV: 230, currentA: 10, powerW: 2_300 },
    { voltageV: 230, currentA: 10, powerW: 2_300 },
  ],
};

const answer = (model: keyof typeof meterModels, pdu: Buffer): Buffer => answerPdu(pdu, meterModels[model], () => values);

function words(reply: Buffer): number[] {
  return Array.from({ length: (reply[1] ?? 0) / 2 }, (_, i) => reply.readUInt16BE(2 + 2 * i));
}

describe("simulated meter: answers to one request", () => {
  it("serves the table's register kind from the register image", () => {
    const reply = answer("sdm630", readRequestPdu(4, 0x48, 2));
    expect(reply.subarray(0, 2)).toEqual(Buffer.from([0x04, 4]));
    expect(decodeField(meterModels.sdm630.fields.importEnergyWh, words(reply), "high-first")).toBeCloseTo(1_234_500, 0);
  });

  it("writes EM340 scaled integers low word first", () => {
    // 1234.5 kWh at 0.1 kWh per count = 12345 = 0x00003039: the low word 0x3039 comes first.
    expect(words(answer("em340", readRequestPdu(3, 0x34, 2)))).toEqual([0x3039, 0x0000]);
  });

  it("reads unused registers inside 0..0x1FF as 0", () => {
    expect(words(answer("sdm630", readRequestPdu(4, 0x100, 4)))).toEqual([0, 0, 0, 0]);
    expect(words(answer("sdm630", readRequestPdu(4, REGISTER_SPACE_END - 1, 1)))).toEqual([0]);
  });

  it("answers exception 02 for reads that leave the register space", () => {
    expect(answer("sdm630", readRequestPdu(4, REGISTER_SPACE_END - 1, 2))).toEqual(Buffer.from([0x84, 0x02]));
    expect(answer("sdm630", readRequestPdu(4, 0x1000, 1))).toEqual(Buffer.from([0x84, 0x02]));
  });

  it("answers exception 03 for a register count outside 1..125, as the Modbus spec asks", () => {
    expect(answer("sdm630", readRequestPdu(4, 0, 126))).toEqual(Buffer.from([0x84, 0x03]));
    expect(answer("sdm630", readRequestPdu(4, 0, 0))).toEqual(Buffer.from([0x84, 0x03]));
    expect(words(answer("sdm630", readRequestPdu(4, 0, 125)))).toHaveLength(125);
  });

  it("answers exception 01 for functions it does not serve, including the other register kind", () => {
    expect(answer("sdm630", Buffer.from([0x06, 0x00, 0x00, 0x00, 0x01]))).toEqual(Buffer.from([0x86, 0x01]));
    expect(answer("sdm630", readRequestPdu(3, 0, 2))).toEqual(Buffer.from([0x83, 0x01]));
    expect(answer("em340", readRequestPdu(4, 0, 2))).toEqual(Buffer.from([0x84, 0x01]));
  });

  it("rebuilds the image from values() on every request", () => {
    let voltageV = 230;
    const live = (): MeterValues => ({ ...values, phases: [{ voltageV, currentA: 0, powerW: 0 }] });
    const read = (): number[] => words(answerPdu(readRequestPdu(4, 0, 2), meterModels.sdm120, live));
    const before = read();
    voltageV = 240;
    expect(read()).not.toEqual(before);
  });
});

/**
 * What the simulated meter answers to one request PDU, independent of framing. The register image is the table's
 * encoding of the current values (encodeSample), so the simulator and the driver share the table and nothing else.
 */
import { encodeSample } from "../../drivers/meters/codec.ts";
import type { MeterModel } from "../../drivers/meters/model.ts";
import type { MeterSample } from "../../drivers/meters/types.ts";
import {
  EXCEPTION_ILLEGAL_DATA_ADDRESS,
  EXCEPTION_ILLEGAL_DATA_VALUE,
  EXCEPTION_ILLEGAL_FUNCTION,
  MAX_READ_REGISTERS,
  READ_HOLDING_REGISTERS,
  READ_INPUT_REGISTERS,
  exceptionPdu,
  readResponsePdu,
} from "./frame.ts";

/** The simulated register space: unused registers in it read as 0, as on the real meters; beyond it, exception 02. */
export const REGISTER_SPACE_END = 0x200;

export type MeterValues = Omit<MeterSample, "readAtMs">;

export interface ReadRequest {
  functionCode: number;
  address: number;
  count: number;
}

/** The read a PDU asks for, or undefined if it is not a well-formed function 03/04 request. */
export function parseReadRequest(pdu: Uint8Array): ReadRequest | undefined {
  const functionCode = pdu[0];
  if ((functionCode !== READ_HOLDING_REGISTERS && functionCode !== READ_INPUT_REGISTERS) || pdu.length !== 5) {
    return undefined;
  }
  const view = Buffer.from(pdu.buffer, pdu.byteOffset, pdu.length);
  return { functionCode, address: view.readUInt16BE(1), count: view.readUInt16BE(3) };
}

/**
 * The reply PDU to `pdu` from a meter holding `values` in `model`'s table. The simulator serves only the table's
 * register kind (an SDM630 table read with function 03 is a table bug the driver should see at once), answers
 * other functions with exception 01, counts outside 1..125 with 03 (Modbus Application Protocol §6.3/§6.4), and
 * reads that leave 0..0x1FF with 02.
 */
export function answerPdu(pdu: Uint8Array, model: MeterModel, values: () => MeterValues): Buffer {
  const functionCode = pdu[0] ?? 0;
  const servedFunction = model.registerKind === "holding" ? READ_HOLDING_REGISTERS : READ_INPUT_REGISTERS;
  if (functionCode !== servedFunction) return exceptionPdu(functionCode, EXCEPTION_ILLEGAL_FUNCTION);
  const request = parseReadRequest(pdu);
  if (!request) return exceptionPdu(functionCode, EXCEPTION_ILLEGAL_DATA_VALUE);
  if (request.count < 1 || request.count > MAX_READ_REGISTERS) {
    return exceptionPdu(functionCode, EXCEPTION_ILLEGAL_DATA_VALUE);
  }
  if (request.address + request.count > REGISTER_SPACE_END) {
    return exceptionPdu(functionCode, EXCEPTION_ILLEGAL_DATA_ADDRESS);
  }
  const image = encodeSample(model, values());
  const words = Array.from({ length: request.count }, (_, i) => image.get(request.address + i) ?? 0);
  return readResponsePdu(functionCode, words);
}

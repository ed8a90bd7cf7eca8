/**
 * The simulated meter as a real Modbus slave: Modbus TCP (MBAP, or RTU frames over TCP as transparent RS-485
 * gateways pass them) and Modbus RTU on a serial device (a socat pty end in tests). The register image is rebuilt
 * from `values()` at every request, so a test changes what the meter shows by changing what `values()` returns.
 *
 * Faults are injected through a mutable `ModbusFaults` object the caller owns and may change at any moment; each
 * request reads it when it arrives.
 */
import { createServer, type Socket } from "node:net";
import { SerialPort } from "serialport";
import type { MeterModel } from "../../drivers/meters/model.ts";
import {
  MbapParser,
  RtuRequestParser,
  encodeMbap,
  encodeRtu,
  exceptionPdu,
  type MbapFrame,
  type RtuFrame,
} from "./frame.ts";
import type { ModbusFaults } from "./faults.ts";
import { answerPdu, parseReadRequest, type MeterValues } from "./slave.ts";

export { createModbusFaults, type ModbusFaults } from "./faults.ts";

/** One request addressed to the simulated meter, as the server saw it (before faults apply). */
export interface ObservedRequest {
  unitId: number;
  functionCode: number;
  /** Start register and count, for well-formed reads. */
  address?: number;
  count?: number;
}

interface SlaveOptions {
  unitId: number;
  model: MeterModel;
  values: () => MeterValues;
  faults?: ModbusFaults;
  /** Called for every well-framed request to this unit id, e.g. to count requests per poll. */
  onRequest?: (request: ObservedRequest) => void;
}

export interface ModbusTcpServerOptions extends SlaveOptions {
  host?: string;
  /** 0 lets the OS pick a free port. */
  port: number;
  /** "mbap": Modbus TCP. "rtu": RTU frames with CRC over TCP, as a transparent serial gateway forwards them. */
  framing?: "mbap" | "rtu";
}

export interface ModbusRtuServerOptions extends SlaveOptions {
  /** Serial device, e.g. the sim end of openPtyPair(). */
  path: string;
  baudRate?: number;
  /** Silence after which buffered bytes count as one frame (only functions of unknown length wait for it). */
  frameSilenceMs?: number;
}

/** The reply PDU for a request to this unit, or undefined when the meter stays silent. */
function replyTo(options: SlaveOptions, unitId: number, pdu: Buffer): Buffer | undefined {
  // A meter answers only its own address; unit 0 is broadcast, which is never answered (serial line spec §2.2).
  if (unitId !== options.unitId) return undefined;
  const request = parseReadRequest(pdu);
  options.onRequest?.({
    unitId,
    functionCode: pdu[0] ?? 0,
    ...(request ? { address: request.address, count: request.count } : {}),
  });
  const faults = options.faults;
  if (faults?.offline) return undefined;
  if (faults?.exceptionCode !== undefined) return exceptionPdu(pdu[0] ?? 0, faults.exceptionCode);
  return answerPdu(pdu, options.model, options.values);
}

/** Sends now or after `faults.replyDelayMs`, remembering timers so that close() can cancel them. */
function scheduler(faults: ModbusFaults | undefined): {
  send(write: () => void): void;
  cancelAll(): void;
} {
  const timers = new Set<NodeJS.Timeout>();
  return {
    send(write) {
      const delayMs = faults?.replyDelayMs ?? 0;
      if (delayMs <= 0) {
        write();
        return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        write();
      }, delayMs);
      timers.add(timer);
    },
    cancelAll() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}

function rtuReply(unitId: number, pdu: Buffer, faults: ModbusFaults | undefined): Buffer {
  const frame = encodeRtu(unitId, pdu);
  if (faults?.corruptCrc) {
    frame[frame.length - 2] = (frame[frame.length - 2] ?? 0) ^ 0xff;
    frame[frame.length - 1] = (frame[frame.length - 1] ?? 0) ^ 0xff;
  }
  return frame;
}

function mbapReply(request: MbapFrame, pdu: Buffer, faults: ModbusFaults | undefined): Buffer {
  // MBAP has no CRC to corrupt; a reply cut short is the TCP-side damage a client must catch.
  const body = faults?.corruptCrc ? pdu.subarray(0, Math.max(0, pdu.length - 2)) : pdu;
  return encodeMbap(request.transactionId, request.unitId, body);
}

export async function startModbusTcpServer(
  options: ModbusTcpServerOptions,
): Promise<{ port: number; close(): Promise<void> }> {
  const framing = options.framing ?? "mbap";
  const sockets = new Set<Socket>();
  const replies = scheduler(options.faults);

  const server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => sockets.delete(socket));
    // A client that resets the connection is the client's business; the simulator keeps serving others.
    socket.on("error", () => {});
    const write = (bytes: Buffer): void => {
      if (!socket.destroyed) socket.write(bytes);
    };
    if (framing === "mbap") {
      const parser = new MbapParser((frame) => {
        if (frame.protocolId !== 0) return;
        const pdu = replyTo(options, frame.unitId, frame.pdu);
        if (pdu) replies.send(() => write(mbapReply(frame, pdu, options.faults)));
      });
      socket.on("data", (chunk) => parser.push(chunk));
    } else {
      const parser = new RtuRequestParser((frame: RtuFrame) => {
        const pdu = replyTo(options, frame.unitId, frame.pdu);
        if (pdu) replies.send(() => write(rtuReply(frame.unitId, pdu, options.faults)));
      });
      let silence: NodeJS.Timeout | undefined;
      socket.on("data", (chunk) => {
        parser.push(chunk);
        clearTimeout(silence);
        if (parser.pendingBytes > 0) silence = setTimeout(() => parser.endOfFrame(), 20);
      });
      socket.on("close", () => clearTimeout(silence));
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address !== "object") throw new Error("the Modbus TCP server has no address after listen");

  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        replies.cancelAll();
        server.close(() => resolve());
        // server.close() waits for open connections; a meter that goes away drops them.
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

export async function startModbusRtuServer(options: ModbusRtuServerOptions): Promise<{ close(): Promise<void> }> {
  const port = new SerialPort({ path: options.path, baudRate: options.baudRate ?? 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => {
    port.open((error) => (error ? reject(new Error(`cannot open ${options.path} for the simulated meter: ${error.message}`)) : resolve()));
  });
  // The pty can vanish under the simulator (socat killed in a test); that ends the simulation, not the process.
  port.on("error", () => {});

  const replies = scheduler(options.faults);
  const parser = new RtuRequestParser((frame) => {
    const pdu = replyTo(options, frame.unitId, frame.pdu);
    if (pdu) {
      replies.send(() => {
        if (port.isOpen) port.write(rtuReply(frame.unitId, pdu, options.faults));
      });
    }
  });
  const frameSilenceMs = options.frameSilenceMs ?? 20;
  let silence: NodeJS.Timeout | undefined;
  port.on("data", (chunk: Buffer) => {
    parser.push(chunk);
    clearTimeout(silence);
    if (parser.pendingBytes > 0) silence = setTimeout(() => parser.endOfFrame(), frameSilenceMs);
  });

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= new Promise<void>((resolve) => {
        replies.cancelAll();
        clearTimeout(silence);
        if (!port.isOpen) {
          resolve();
          return;
        }
        port.close(() => resolve());
      });
      return closing;
    },
  };
}

/**
 * The one Modbus reader that interprets any register table (model.ts): it reads the blocks planBlocks() chose,
 * decodes them with the table, and refuses samples a healthy meter cannot produce (plausibility.ts).
 *
 * Link handling: the port or socket opens on the first read. Any transport failure (timeout, CRC, malformed
 * reply, lost connection) closes it, and the next read opens it again, so the driver recovers by itself at the
 * caller's poll rate and never loops on its own. Closing also empties modbus-serial's receive buffer, which its
 * buffered ports never clear between requests. A Modbus exception is a clean answer and keeps the link open.
 *
 * RTU has no transaction ids, so a reply that arrives after its timeout cannot be told from the answer to the next
 * request (modbus-serial would splice it to the next reply). After an RTU timeout (serial, or RTU through a transparent gateway, whose bus outlives our TCP
 * connection) the link therefore stays closed for one more `timeoutMs` before it reopens: a late reply lands on a
 * closed port and is lost. Replies later than twice the timeout are assumed not to happen; if one does, the blocks
 * have different lengths in every shipped table, so it fails as `crc`/`malformed` and the link is reopened again.
 *
 * modbus-serial quirks this file depends on (8.0.25):
 * - `connectTcpRTUBuffered` speaks MBAP, not RTU; raw RTU frames over TCP is `connectTelnet` (TelnetPort).
 * - A pending request is not failed when the port or socket closes; it runs into its timeout. The driver races
 *   each request against the port's "close" event to report `disconnected` at once.
 * - Errors: CRC mismatch is `Error("CRC error")`; a timeout is `{name: "TransactionTimedOutError", errno:
 *   "ETIMEDOUT", message: "Timed out"}`; an exception reply carries `modbusCode`; a closed port is
 *   `PortNotOpenError` ("Port Not Open"); wrong length / unit / function are "Data length error…" and
 *   "Unexpected data error…". Over TCP the port computes the CRC itself, so a TCP reply can never fail it.
 * - `close()` on a TCP port whose socket is already closed never calls back; TCP links are destroyed instead.
 */
import { existsSync } from "node:fs";
import ModbusSerial from "modbus-serial";
import { decodeSample, planBlocks, type ReadBlock } from "./codec.ts";
import type { MeterModel } from "./model.ts";
import { createPlausibilityGuard, type PlausibilityOptions } from "./plausibility.ts";
import { MeterFault, type Meter, type MeterSample } from "./types.ts";

export type ModbusTransport = "rtu" | "tcp" | "rtu-over-tcp";

export interface ModbusMeterOptions {
  model: MeterModel;
  transport: ModbusTransport;
  /** Serial device for `rtu`, e.g. /dev/ttyUSB0. */
  device?: string;
  /** Serial line settings for `rtu`; 9600 8N1 unless given. */
  baudRate?: number;
  parity?: "none" | "even" | "odd";
  /** Gateway or meter address for `tcp` and `rtu-over-tcp`; port 502 unless given. */
  host?: string;
  port?: number;
  unitId: number;
  /** How long one request may wait for its reply, ms. */
  timeoutMs: number;
  /** Unix ms for readAtMs; a test clock makes it deterministic. The plausibility bound times itself on performance.now(). */
  clock?: () => number;
  plausibility?: PlausibilityOptions;
}

// Under NodeNext the default import of this CommonJS package is its module.exports; the package also sets
// `module.exports.default` to the class, which is what its type declarations call the default export.
const ModbusRTU = ModbusSerial.default;
type ModbusClient = InstanceType<typeof ModbusRTU>;

const DRIVER = "modbus-meter";

/** unjs-style error for bad options: package and driver first, the option in backticks. */
function optionError(message: string): Error {
  return new Error(`[trustpile] [${DRIVER}] ${message}`);
}

/** Exception names from the Modbus Application Protocol V1.1b3 §7. */
const EXCEPTION_NAMES: Readonly<Record<number, string>> = {
  1: "illegal function",
  2: "illegal data address",
  3: "illegal data value",
  4: "server device failure",
  5: "acknowledge",
  6: "server device busy",
  8: "memory parity error",
  10: "gateway path unavailable",
  11: "gateway target device failed to respond",
};

/** How much later than `timeoutMs` the driver gives up by itself should modbus-serial never call back. */
const BACKSTOP_MS = 100;

/** How often a pending serial request checks that its device node still exists. */
const DEVICE_WATCH_MS = 50;

function describeBlock(block: ReadBlock): string {
  return `0x${block.start.toString(16).padStart(2, "0")}+${block.count}`;
}

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  errno?: unknown;
  code?: unknown;
  modbusCode?: unknown;
}

function asErrorLike(error: unknown): ErrorLike {
  return typeof error === "object" && error !== null ? (error as ErrorLike) : { message: String(error) };
}

interface Link {
  client: ModbusClient;
  /** Rejects (with `disconnected`) when the port or socket closes under a request. */
  lost: Promise<never>;
  /** Set once the port or socket is gone. */
  isLost: boolean;
  markLost(fault: MeterFault): void;
}

export function createModbusMeter(options: ModbusMeterOptions): Meter {
  const { model, transport, unitId, timeoutMs } = options;
  const clock = options.clock ?? Date.now;
  if (!Number.isInteger(unitId) || unitId < 0 || unitId > 255) {
    throw optionError(`\`unitId\` must be an integer 0..255, got ${unitId}`);
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw optionError(`\`timeoutMs\` must be a number of ms > 0, got ${timeoutMs}`);
  }
  if (transport === "rtu" && !options.device) {
    throw optionError("missing option `device` (serial device path) for transport rtu");
  }
  if (transport !== "rtu" && !options.host) {
    throw optionError(`missing option \`host\` for transport ${transport}`);
  }
  const device = options.device ?? "";
  const host = options.host ?? "";
  const port = options.port ?? 502;
  const where = transport === "rtu" ? device : `${host}:${port}`;
  const meterName = `meter ${model.name} (unit ${unitId} at ${where})`;

  const blocks = planBlocks(model);
  const guard = createPlausibilityGuard(model, options.plausibility);

  let link: Link | undefined;
  let closed = false;
  /** performance.now() before which an RTU link must not reopen (see the file comment on late replies). */
  let quietUntil = 0;
  let queue: Promise<unknown> = Promise.resolve();

  function faultFrom(error: unknown, block: ReadBlock | undefined): MeterFault {
    if (error instanceof MeterFault) return error;
    const e = asErrorLike(error);
    const message = typeof e.message === "string" ? e.message : String(error);
    const reading = block ? ` reading ${describeBlock(block)}` : "";
    if (typeof e.modbusCode === "number") {
      const name = EXCEPTION_NAMES[e.modbusCode] ?? "unknown exception";
      return new MeterFault("exception", `${meterName} answered Modbus exception ${e.modbusCode} (${name})${reading}`, {
        cause: error,
      });
    }
    if (e.name === "TransactionTimedOutError" || (e.errno === "ETIMEDOUT" && message === "Timed out")) {
      return new MeterFault("timeout", `no reply from ${meterName} within ${timeoutMs} ms${reading}`, { cause: error });
    }
    if (message === "CRC error") {
      return new MeterFault("crc", `reply from ${meterName} failed its CRC check${reading}`, { cause: error });
    }
    if (message.startsWith("Data length error") || message.startsWith("Unexpected data error")) {
      return new MeterFault("malformed", `malformed reply from ${meterName}${reading}: ${message}`, { cause: error });
    }
    // modbus-serial trusts a reply's byte count and reads past the end of a frame that carries fewer bytes; the
    // Buffer RangeError comes back as a port "error". The link is fine, the reply is not.
    if (/ is out of range\. It must be |outside buffer bounds/.test(message)) {
      return new MeterFault("malformed", `malformed reply from ${meterName}${reading}: its byte count exceeds the data it carries (${message})`, {
        cause: error,
      });
    }
    if (e.name === "PortNotOpenError" || message === "Port Not Open") {
      return new MeterFault("disconnected", `${where} is not open (${meterName})`, { cause: error });
    }
    return new MeterFault("disconnected", `lost ${meterName}: ${message}`, { cause: error });
  }

  function openFault(error: unknown): MeterFault {
    const e = asErrorLike(error);
    const message = typeof e.message === "string" ? e.message : String(error);
    const code = typeof e.code === "string" ? ` (${e.code})` : "";
    return transport === "rtu"
      ? new MeterFault("disconnected", `cannot open serial device ${device}: ${message}`, { cause: error })
      : new MeterFault("disconnected", `cannot connect to meter at ${where}${code}: ${message}`, { cause: error });
  }

  async function connect(): Promise<Link> {
    if (link && !link.isLost && link.client.isOpen) return link;
    // Gone between two reads (socket closed by the far end, adapter unplugged): open afresh right away.
    if (link) await drop(new MeterFault("disconnected", `connection to ${meterName} closed`));
    // serialport would fail too, but later and with a less useful message; a missing adapter is the common case.
    if (transport === "rtu" && !existsSync(device)) {
      throw new MeterFault("disconnected", `serial device ${device} does not exist`);
    }
    const quietMs = quietUntil - performance.now();
    if (quietMs > 0) await new Promise((resolve) => setTimeout(resolve, quietMs));
    const client = new ModbusRTU();
    client.setID(unitId);
    client.setTimeout(timeoutMs);
    let rejectLost: (fault: MeterFault) => void = () => {};
    const lost = new Promise<never>((_, reject) => {
      rejectLost = reject;
    });
    lost.catch(() => {});
    const candidate: Link = {
      client,
      lost,
      isLost: false,
      markLost(fault) {
        candidate.isLost = true;
        rejectLost(fault);
      },
    };
    // modbus-serial re-emits port errors; without a listener an EventEmitter "error" would throw.
    client.on("error", (error: unknown) => candidate.markLost(faultFrom(error, undefined)));
    client.on("close", () => candidate.markLost(new MeterFault("disconnected", `connection to ${meterName} closed`)));
    try {
      if (transport === "rtu") {
        await client.connectRTUBuffered(device, {
          baudRate: options.baudRate ?? 9600,
          parity: options.parity ?? "none",
          dataBits: 8,
          stopBits: 1,
        });
      } else if (transport === "tcp") {
        await client.connectTCP(host, { port });
      } else {
        await client.connectTelnet(host, { port });
      }
    } catch (error) {
      await release(candidate);
      throw openFault(error);
    }
    if (closed) {
      await release(candidate);
      throw closedFault();
    }
    link = candidate;
    return candidate;
  }

  function closedFault(): MeterFault {
    return new MeterFault("disconnected", `${meterName}: the driver is closed`);
  }

  /** Closes a link's port or socket; always settles. */
  async function release(target: Link): Promise<void> {
    const client = target.client;
    await new Promise<void>((resolve) => {
      const done = setTimeout(resolve, 1_000);
      const finish = (): void => {
        clearTimeout(done);
        resolve();
      };
      try {
        if (transport === "rtu") {
          if (client.isOpen) client.close(finish);
          else finish();
        } else {
          client.destroy(finish);
        }
      } catch {
        finish();
      }
    });
  }

  async function drop(fault: MeterFault): Promise<void> {
    const current = link;
    link = undefined;
    if (!current) return;
    current.markLost(fault);
    await release(current);
  }

  async function request(current: Link, block: ReadBlock): Promise<number[]> {
    const pending =
      model.registerKind === "input"
        ? current.client.readInputRegisters(block.start, block.count)
        : current.client.readHoldingRegisters(block.start, block.count);
    pending.catch(() => {});
    let backstop: NodeJS.Timeout | undefined;
    const givenUp = new Promise<never>((_, reject) => {
      backstop = setTimeout(
        () => reject(new MeterFault("timeout", `no reply from ${meterName} within ${timeoutMs} ms reading ${describeBlock(block)}`)),
        timeoutMs + BACKSTOP_MS,
      );
    });
    // serialport does not always report a hung-up tty while a read waits (seen about 1 in 40 times when socat
    // exits under a pty); an adapter whose device node is gone is unplugged, whatever the fd says.
    const watch =
      transport === "rtu"
        ? setInterval(() => {
            if (!existsSync(device)) current.markLost(new MeterFault("disconnected", `serial device ${device} disappeared (${meterName})`));
          }, DEVICE_WATCH_MS)
        : undefined;
    try {
      const reply = await Promise.race([pending, current.lost, givenUp]);
      if (reply.data.length !== block.count) {
        throw new MeterFault(
          "malformed",
          `malformed reply from ${meterName} reading ${describeBlock(block)}: ${reply.data.length} registers instead of ${block.count}`,
        );
      }
      return reply.data;
    } catch (error) {
      throw faultFrom(error, block);
    } finally {
      clearTimeout(backstop);
      clearInterval(watch);
    }
  }

  async function poll(): Promise<MeterSample> {
    if (closed) throw closedFault();
    const requestedAtMs = performance.now();
    const current = await connect();
    const words: { start: number; words: readonly number[] }[] = [];
    for (const block of blocks) {
      try {
        words.push({ start: block.start, words: await request(current, block) });
      } catch (error) {
        const fault = faultFrom(error, block);
        if (fault.kind === "timeout" && transport !== "tcp") quietUntil = performance.now() + timeoutMs;
        if (fault.kind !== "exception") await drop(fault);
        throw fault;
      }
    }
    const sample = decodeSample(model, words, clock());
    const nonFinite = nonFiniteField(sample);
    if (nonFinite) {
      throw new MeterFault("malformed", `${meterName} sent a value that is not a number for ${nonFinite}`);
    }
    // The bound is max power × time since the last accepted reading, timed on the monotonic clock: a wall clock
    // set back between two polls would shrink it to nothing and refuse every reading of a charging EV as
    // implausible (issue 11 clock jump: the session stopped with a fault), one set forward would admit any jump.
    const verdict = guard.check({ importEnergyWh: sample.importEnergyWh, readAtMs: performance.now(), requestedAtMs });
    if (!verdict.ok) throw new MeterFault("implausible", `${meterName}: ${verdict.reason}`);
    return sample;
  }

  return {
    model: model.name,
    read() {
      // One transaction at a time: RTU has no transaction ids, and the poll loop never needs two reads at once.
      const run = queue.then(poll);
      queue = run.catch(() => {});
      return run;
    },
    async close() {
      closed = true;
      await drop(closedFault());
    },
  };
}

/** The name of the first value in a sample that is NaN or infinite (a float32 register holding garbage). */
function nonFiniteField(sample: MeterSample): string | undefined {
  const values: [string, number | undefined][] = [
    ["importEnergyWh", sample.importEnergyWh],
    ["exportEnergyWh", sample.exportEnergyWh],
    ["powerW", sample.powerW],
    ["frequencyHz", sample.frequencyHz],
    ...sample.phases.flatMap((phase, i): [string, number][] => [
      [`L${i + 1} voltageV`, phase.voltageV],
      [`L${i + 1} currentA`, phase.currentA],
      [`L${i + 1} powerW`, phase.powerW],
    ]),
  ];
  return values.find(([, value]) => value !== undefined && !Number.isFinite(value))?.[0];
}

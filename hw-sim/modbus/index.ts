/** The simulated meter's Modbus side: servers, fault injection and the pty pair for RTU. */
export {
  createModbusFaults,
  startModbusRtuServer,
  startModbusTcpServer,
  type ModbusFaults,
  type ModbusRtuServerOptions,
  type ModbusTcpServerOptions,
  type ObservedRequest,
} from "./server.ts";
export { openPtyPair, type PtyPair, type PtyPairOptions } from "./pty.ts";
export { REGISTER_SPACE_END, type MeterValues } from "./slave.ts";

import { TypedDataEncoder, id, toUtf8Bytes, keccak256, type Signer, type TypedDataDomain } from "ethers";

/** The pile's signed energy total (DESIGN §4.2). Field names and order are part of the public surface. */
export interface SessionTotal {
  sessionId: bigint;
  cpId: string;
  meterStartWh: bigint;
  meterStopWh: bigint;
  startedAt: bigint;
  stoppedAt: bigint;
  /** −1 when the pile reports a violation (e.g. unplugged under load), else 0. */
  evBehaviour: number;
}

export const SESSION_TOTAL_TYPES = {
  SessionTotal: [
    { name: "sessionId", type: "uint256" },
    { name: "cpId", type: "bytes32" },
    { name: "meterStartWh", type: "uint64" },
    { name: "meterStopWh", type: "uint64" },
    { name: "startedAt", type: "uint64" },
    { name: "stoppedAt", type: "uint64" },
    { name: "evBehaviour", type: "int8" },
  ],
};

export function ledgerDomain(chainId: bigint, ledgerAddress: string): TypedDataDomain {
  return { name: "TrustPile", version: "1", chainId, verifyingContract: ledgerAddress };
}

export function signSessionTotal(signer: Signer, domain: TypedDataDomain, total: SessionTotal): Promise<string> {
  return signer.signTypedData(domain, SESSION_TOTAL_TYPES, total);
}

export function sessionTotalDigest(domain: TypedDataDomain, total: SessionTotal): string {
  return TypedDataEncoder.hash(domain, SESSION_TOTAL_TYPES, total);
}

/** A charge point's on-chain id: keccak256 of its OCPP identity in UTF-8. */
export function cpIdOf(chargePointId: string): string {
  return keccak256(toUtf8Bytes(chargePointId));
}

export const SESSION_TOTAL_TYPEHASH = id(
  "SessionTotal(uint256 sessionId,bytes32 cpId,uint64 meterStartWh,uint64 meterStopWh,uint64 startedAt,uint64 stoppedAt,int8 evBehaviour)",
);

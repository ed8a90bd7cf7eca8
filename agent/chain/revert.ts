import { Interface, isCallException } from "ethers";
import { ChargingLedgerAbi } from "../../contracts/artifacts/ChargingLedger.ts";
import { EvaluationsAbi } from "../../contracts/artifacts/Evaluations.ts";
import { PricingAuctionAbi } from "../../contracts/artifacts/PricingAuction.ts";
import { RegistryAbi } from "../../contracts/artifacts/Registry.ts";

// A call into one contract may revert with another's error (Evaluations.rate bubbles the ledger's), so the
// errors of all of them are decoded together; ethers keeps the first of two identical signatures.
const contractErrors = new Interface(
  [...ChargingLedgerAbi, ...RegistryAbi, ...EvaluationsAbi, ...PricingAuctionAbi].filter(
    (item, index, all) =>
      item.type === "error" &&
      all.findIndex((other) => other.type === "error" && JSON.stringify(other) === JSON.stringify(item)) === index,
  ),
);

/** The custom error a call reverted with, decoded against our contracts' ABIs; undefined if it is not one of ours. */
export function decodeRevert(error: unknown): { name: string; args: unknown[] } | undefined {
  const data = revertData(error);
  if (!data) return undefined;
  try {
    const parsed = contractErrors.parseError(data);
    return parsed ? { name: parsed.name, args: [...parsed.args] } : undefined;
  } catch {
    return undefined;
  }
}

/** One readable phrase for a reverted call, e.g. `AlreadySettled(7)`. */
export function describeRevert(error: unknown): string {
  const decoded = decodeRevert(error);
  if (decoded) return `${decoded.name}(${decoded.args.map((a) => String(a)).join(", ")})`;
  if (isCallException(error)) return error.shortMessage;
  return error instanceof Error ? error.message : String(error);
}

function revertData(error: unknown): string | undefined {
  if (isCallException(error) && typeof error.data === "string") return error.data;
  const nested = (error as { info?: { error?: { data?: unknown } } } | undefined)?.info?.error?.data;
  return typeof nested === "string" ? nested : undefined;
}

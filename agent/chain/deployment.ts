import { readFileSync, writeFileSync } from "node:fs";
import { z } from "zod";
import { UsageError, describeError } from "../errors.ts";

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "expected a 0x-prefixed 20-byte address");

/** The address book `chain deploy` writes and every chain command reads (DESIGN §5.1). */
export const deploymentSchema = z.strictObject({
  chainId: z.number().int().positive(),
  Registry: address,
  ChargingLedger: address,
  Evaluations: address.optional(),
  PricingAuction: address.optional(),
  deployedAtBlock: z.number().int().nonnegative().optional(),
});

export type Deployment = z.infer<typeof deploymentSchema>;

export function readDeployment(path: string): Deployment {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new UsageError(`deployment file ${path} cannot be read: ${describeError(error)} (run trustpile chain deploy first)`);
  }
  const parsed = deploymentSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path.join(".") || "(root)";
    throw new UsageError(`deployment file ${path}: ${key}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

export function writeDeployment(path: string, deployment: Deployment): void {
  writeFileSync(path, `${JSON.stringify(deployment, null, 2)}\n`);
}

import { describe, expect, it } from "vitest";
import { deployLedgerFixture } from "../helpers/chain.ts";

describe("contract fixture", () => {
  it("deploys the ledger wired to the registry with the default timeouts", async () => {
    const fixture = await deployLedgerFixture();
    const ledger = fixture.ledger(fixture.authority);
    expect(await ledger.registry()).toBe(fixture.deployment.Registry);
    expect(await ledger.authTimeout()).toBe(600n);
    expect(await ledger.settleTimeout()).toBe(172_800n);
  });
});

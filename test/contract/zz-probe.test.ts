import { it } from "vitest";
import { deployLedgerFixture } from "../helpers/chain.ts";
import { accountOf, unbatchedProvider } from "../helpers/ledger-helpers.ts";
import { connectRegistry } from "../../agent/chain/contracts.ts";
it("probe", async () => {
  let t = Date.now();
  const f = await deployLedgerFixture();
  console.log("deploy", Date.now() - t);
  const a = accountOf(f, 1);
  t = Date.now();
  for (let i = 0; i < 5; i++) await (await f.registry(f.authority).attest(a.address, 1, 10n ** 12n)).wait();
  console.log("5 tx fixture provider", Date.now() - t);
  const p = unbatchedProvider();
  const reg = connectRegistry(f.deployment.Registry, f.authority.connect(p));
  t = Date.now();
  for (let i = 0; i < 5; i++) await (await reg.attest(a.address, 1, 10n ** 12n)).wait();
  console.log("5 tx unbatched", Date.now() - t);
  t = Date.now();
  for (let i = 0; i < 5; i++) { const tx = await reg.attest(a.address, 1, 10n ** 12n); console.log(" sent", Date.now() - t); await tx.wait(); console.log(" mined", Date.now() - t); }
});

/**
 * Gas used per ledger function for one full session: cold (first session of a new EV at a new charge point) and
 * warm (the tenth session of the same pair, after both parties withdrew every time), plus deployment gas, and the EV's
 * `rate` of each session: the first rating of the charge point and the tenth (warm: R_cp and the bookkeeper seat exist).
 * Gas is deterministic, so one run is the measurement.
 */
import { NonceManager, type ContractTransactionReceipt } from "ethers";
import { startDevChain } from "../agent/chain/dev-chain.ts";
import { devAccount } from "../agent/chain/dev-accounts.ts";
import { connectProvider } from "../agent/chain/provider.ts";
import { deployContracts } from "../agent/chain/deploy.ts";
import { connectEvaluations, connectLedger, connectRegistry, Role } from "../agent/chain/contracts.ts";
import {
  attest,
  authorizeSession,
  mined,
  openSession,
  registerChargePoint,
  signAndSettle,
} from "../agent/chain/operations.ts";
import { cpIdOf, ledgerDomain } from "../agent/chain/session-total.ts";
import { freePort } from "../agent/net.ts";

const PRICE_WEI_PER_KWH = 300_000_000_000_000n; // 0.0003 ether per kWh
const SESSIONS = 10;

const chain = await startDevChain({ port: await freePort() });
try {
  const provider = await connectProvider(chain.rpcUrl);
  const authority = devAccount(0, provider);
  const ev = devAccount(1, provider);
  const owner = devAccount(2, provider);
  const pile = devAccount(3, provider);
  const { deployment, gasUsed: deployGas } = await deployContracts(new NonceManager(authority));
  const registryAsAuthority = connectRegistry(deployment.Registry, authority);
  const farFuture = BigInt(Math.floor(Date.now() / 1000) + 365 * 24 * 3600);
  await attest(registryAsAuthority, ev.address, Role.EV, farFuture);
  await attest(registryAsAuthority, owner.address, Role.Owner, farFuture);
  await registerChargePoint(connectRegistry(deployment.Registry, owner), {
    chargePointId: "cp-bench",
    kind: "Private",
    areaId: 7n,
    signer: pile.address,
    pricePerKWh: PRICE_WEI_PER_KWH,
    maxPowerW: 11_000,
    ownerContactSealed: new Uint8Array(90).fill(7),
  });

  const ledgerAsEv = connectLedger(deployment.ChargingLedger, ev);
  const ledgerAsPile = connectLedger(deployment.ChargingLedger, pile);
  const ledgerAsOwner = connectLedger(deployment.ChargingLedger, owner);
  if (!deployment.Evaluations) throw new Error("deployContracts wrote no Evaluations address");
  const evaluationsAsEv = connectEvaluations(deployment.Evaluations, ev);
  const domain = ledgerDomain(BigInt(deployment.chainId), deployment.ChargingLedger);
  const rows: { label: string; receipts: Record<string, ContractTransactionReceipt> }[] = [];
  let meterWh = 1_000_000n;

  for (let n = 1; n <= SESSIONS; n++) {
    const opened = await openSession(ledgerAsEv, cpIdOf("cp-bench"), 40_000, 10_000_000_000_000_000n);
    const authorized = await authorizeSession(ledgerAsPile, opened.sessionId);
    const energyWh = 12_345n;
    const settled = await signAndSettle(ledgerAsEv, pile, domain, {
      sessionId: opened.sessionId,
      cpId: cpIdOf("cp-bench"),
      meterStartWh: meterWh,
      meterStopWh: meterWh + energyWh,
      startedAt: 1_700_000_000n + BigInt(n) * 10_000n,
      stoppedAt: 1_700_003_600n + BigInt(n) * 10_000n,
      evBehaviour: 0,
    });
    meterWh += energyWh;
    const rated = await mined("rate", () => evaluationsAsEv.rate(opened.sessionId, 3));
    const ownerWithdraw = await mined("owner withdraw", () => ledgerAsOwner.withdraw());
    const evWithdraw = await mined("EV withdraw", () => ledgerAsEv.withdraw());
    if (n === 1 || n === SESSIONS) {
      rows.push({
        label: n === 1 ? "cold (1st session)" : `warm (${SESSIONS}th session)`,
        receipts: { open: opened.receipt, authorize: authorized, settle: settled, "withdraw owner": ownerWithdraw, "withdraw EV": evWithdraw, rate: rated },
      });
    }
  }

  const columns = ["open", "authorize", "settle", "withdraw owner", "withdraw EV"];
  const pad = (text: string, width: number): string => text.padStart(width);
  console.log(`${"session".padEnd(20)}${columns.map((c) => pad(c, 16)).join("")}${pad("open+auth+settle", 18)}`);
  for (const row of rows) {
    const gas = columns.map((c) => row.receipts[c]?.gasUsed ?? 0n);
    const core = (gas[0] ?? 0n) + (gas[1] ?? 0n) + (gas[2] ?? 0n);
    console.log(`${row.label.padEnd(20)}${gas.map((g) => pad(g.toString(), 16)).join("")}${pad(core.toString(), 18)}`);
  }
  console.log("");
  console.log(`${"rating".padEnd(20)}${pad("rate", 16)}`);
  for (const [index, row] of rows.entries()) {
    const label = index === 0 ? "cold (1st of the CP)" : `warm (${SESSIONS}th of the CP)`;
    console.log(`${label.padEnd(20)}${pad((row.receipts["rate"]?.gasUsed ?? 0n).toString(), 16)}`);
  }
  console.log("");
  for (const [name, gas] of Object.entries(deployGas)) console.log(`deploy ${name.padEnd(16)}${pad(gas.toString(), 12)}`);
  const warm = rows[rows.length - 1];
  if (warm) {
    const core = ["open", "authorize", "settle"].reduce((sum, c) => sum + (warm.receipts[c]?.gasUsed ?? 0n), 0n);
    console.log(`\nwarm open+authorize+settle: ${core} gas (target <= 230000): ${core <= 230_000n ? "within" : "OVER"} target`);
  }
  provider.destroy();
} finally {
  await chain.stop();
}

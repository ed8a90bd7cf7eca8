import { formatEther, formatUnits, getAddress, isAddress } from "ethers";
import type { Command } from "commander";
import { connectEvaluations, connectLedger, connectRegistry, Role } from "../chain/contracts.ts";
import { mined, openGate, openSession, payDebt, rateSession } from "../chain/operations.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { RuntimeError, UsageError } from "../errors.ts";
import { attestOnDevChain } from "./chain-commands.ts";
import {
  addChainOptions,
  addSignerOptions,
  chainProvider,
  deploymentOf,
  isCpIdHex,
  optionalConfig,
  parseUint,
  parseWei,
  resolveSigner,
  type SignerOptions,
} from "./chain-context.ts";

interface OpenOptions extends SignerOptions {
  cp: string;
  maxEnergyWh: string;
  deposit: string;
}

interface SessionOptions extends SignerOptions {
  session: string;
}

interface RateOptions extends SessionOptions {
  score: string;
}

interface PayDebtOptions extends SignerOptions {
  amount?: string;
}

interface StatusOptions extends SignerOptions {
  address?: string;
  json?: boolean;
}

/** "123 wei (0.000000000000000123 ether)": exact wei first, ether for people. */
function weiAndEther(wei: bigint): string {
  return `${wei} wei (${formatEther(wei)} ether)`;
}

/** An SD59x18 reputation as an exact decimal ("1.5", "0"). */
export function reputationDecimal(value: bigint): string {
  return formatUnits(value, 18).replace(/\.0$/, "");
}

export function registerEvCommands(program: Command): void {
  const ev = program.command("ev").description("EV wallet: deposits and sessions (for hw-sim, tests and installers)");

  addSignerOptions(
    addChainOptions(
      ev
        .command("open")
        .description("open a charging session at a charge point with a deposit")
        .requiredOption("--cp <id>", "charge point: its chargePointId (cp-001) or on-chain cpId (0x…)")
        .requiredOption("--deposit <amount>", "deposit: wei, or with a unit (0.01ether)")
        .option("--max-energy-wh <wh>", "stop after this much energy", "20000"),
    ),
    1,
  ).action(async (options: OpenOptions) => {
    const maxEnergyWh = parseUint(options.maxEnergyWh, "--max-energy-wh", 0xffffffff);
    if (maxEnergyWh === 0) throw new UsageError("--max-energy-wh: must be more than 0");
    const depositWei = parseWei(options.deposit, "--deposit");
    const cpId = isCpIdHex(options.cp) ? options.cp : cpIdOf(options.cp);
    const config = optionalConfig(options);
    const provider = await chainProvider(options, config);
    try {
      const deployment = deploymentOf(options, config);
      const wallet = await resolveSigner(options, provider);
      const address = await wallet.getAddress();
      const registry = connectRegistry(deployment.Registry, wallet);
      if (!(await registry.isAttested(address, Role.EV))) {
        await attestOnDevChain(provider, deployment.Registry, address, Role.EV);
      }
      const terms = await registry.sessionTerms(cpId);
      if (terms.cpNo === 0n) throw new UsageError(`--cp ${options.cp}: no charge point with cpId ${cpId} is registered`);
      const ledger = connectLedger(deployment.ChargingLedger, wallet);
      // The ledger's gate (DESIGN §4.2), explained before anything is sent: unpaid debt refuses any session, and
      // R_v < 0 asks for a deposit of twice the cost of the energy requested.
      const gate = await openGate(ledger, address, maxEnergyWh, terms.pricePerKWh);
      if (gate.debtWei > 0n) {
        throw new RuntimeError(
          `EV ${address} owes a debt of ${weiAndEther(gate.debtWei)} from an earlier session, so the ledger opens no new session until it is paid: run trustpile ev pay-debt`,
        );
      }
      if (depositWei < gate.requiredDepositWei) {
        throw new RuntimeError(
          `EV ${address} has credibility R_v = ${gate.credibility} (below 0), so a session of up to ${maxEnergyWh} Wh at ${terms.pricePerKWh} wei/kWh needs a deposit of at least ${weiAndEther(gate.requiredDepositWei)} (twice its cost), more than the --deposit of ${depositWei} wei`,
        );
      }
      const opened = await openSession(ledger, cpId, maxEnergyWh, depositWei);
      const coveredWh = (depositWei * 1000n) / terms.pricePerKWh;
      process.stdout.write(
        [
          `session ${opened.sessionId} opened at ${options.cp}`,
          `  ev:       ${address}`,
          `  deposit:  ${depositWei} wei (${formatEther(depositWei)})`,
          `  price:    ${terms.pricePerKWh} wei/kWh`,
          `  energy:   up to ${Math.min(Number(coveredWh), maxEnergyWh)} Wh (deposit covers ${coveredWh} Wh, limit ${maxEnergyWh} Wh)`,
          ...(gate.credibility < 0n
            ? [`  note:     credibility R_v = ${gate.credibility} < 0: the deposit had to be at least ${gate.requiredDepositWei} wei (twice the cost of ${maxEnergyWh} Wh)`]
            : []),
          `  tx:       ${opened.receipt.hash}`,
          "",
        ].join("\n"),
      );
    } finally {
      provider.destroy();
    }
  });

  addSignerOptions(
    addChainOptions(
      ev
        .command("rate")
        .description("rate the charge point of one of this EV's settled sessions (score W: 1, 2 or 3; once per session)")
        .requiredOption("--session <id>", "session id")
        .requiredOption("--score <w>", "1 (poor), 2 (fair) or 3 (good)"),
    ),
    1,
  ).action(async (options: RateOptions) => {
    const sessionId = BigInt(parseUint(options.session, "--session"));
    const score = Number(options.score);
    if (!/^\s*\d+\s*$/.test(options.score) || score < 1 || score > 3) {
      throw new UsageError(`--score: a rating is 1, 2 or 3, got "${options.score}"`);
    }
    const config = optionalConfig(options);
    const provider = await chainProvider(options, config);
    try {
      const deployment = deploymentOf(options, config);
      if (!deployment.Evaluations) {
        throw new UsageError("the deployment file names no Evaluations contract: deploy again with trustpile chain deploy");
      }
      const wallet = await resolveSigner(options, provider);
      const rating = await rateSession(connectEvaluations(deployment.Evaluations, wallet), sessionId, score);
      const ledger = connectLedger(deployment.ChargingLedger, provider);
      const credibility = await ledger.credibility(await wallet.getAddress(), { blockTag: rating.receipt.blockNumber });
      process.stdout.write(
        [
          `session ${sessionId} rated ${rating.score}: evaluation ${rating.evaluationNo}`,
          `  cp:         ${rating.cpId}`,
          `  reputation: ${reputationDecimal(rating.reputationBefore)} → ${reputationDecimal(rating.reputationAfter)} (R_cp)`,
          `  weight:     your credibility R_v = ${credibility}${credibility <= 0n ? " (0 or less: the rating is recorded but moves nothing)" : ""}`,
          `  tx:         ${rating.receipt.hash}`,
          "",
        ].join("\n"),
      );
    } finally {
      provider.destroy();
    }
  });

  addSignerOptions(
    addChainOptions(
      ev
        .command("pay-debt")
        .description("pay what earlier sessions cost beyond their deposits, so the EV may charge again")
        .option("--amount <amount>", "pay only this much: wei, or with a unit (0.001ether); default: the whole debt"),
    ),
    1,
  ).action(async (options: PayDebtOptions) => {
    const requested = options.amount === undefined ? undefined : parseWei(options.amount, "--amount");
    if (requested === 0n) throw new UsageError("--amount: must be more than 0");
    const config = optionalConfig(options);
    const provider = await chainProvider(options, config);
    try {
      const wallet = await resolveSigner(options, provider);
      const address = await wallet.getAddress();
      const ledger = connectLedger(deploymentOf(options, config).ChargingLedger, wallet);
      const debtWei = await ledger.debt(address);
      if (debtWei === 0n) {
        process.stdout.write(`no debt: EV ${address} owes nothing\n`);
        return;
      }
      if (requested !== undefined && requested > debtWei) {
        throw new UsageError(`--amount: ${requested} wei is more than the debt of ${weiAndEther(debtWei)}`);
      }
      const payment = await payDebt(ledger, address, requested ?? debtWei);
      process.stdout.write(
        [
          `paid ${weiAndEther(payment.paidWei)} of debt`,
          `  remaining:  ${weiAndEther(payment.remainingWei)}`,
          `  canCharge:  ${payment.remainingWei === 0n ? "yes" : "no, until the rest is paid"}`,
          `  tx:         ${payment.receipt.hash}`,
          "",
        ].join("\n"),
      );
    } finally {
      provider.destroy();
    }
  });

  addSignerOptions(
    addChainOptions(
      ev
        .command("status")
        .description("what the ledger holds for an EV: credibility R_v, debt, withdrawable, whether it may charge")
        .option("--address <0x…>", "any EV's address (default: the signing account)")
        .option("--json", "machine-readable output"),
    ),
    1,
  ).action(async (options: StatusOptions) => {
    if (options.address !== undefined && !isAddress(options.address)) {
      throw new UsageError(`--address: expected a 0x address, got "${options.address}"`);
    }
    const config = optionalConfig(options);
    const provider = await chainProvider(options, config);
    try {
      const address = options.address !== undefined ? getAddress(options.address) : await (await resolveSigner(options, provider)).getAddress();
      const ledger = connectLedger(deploymentOf(options, config).ChargingLedger, provider);
      const [credibility, debtWei, withdrawableWei, canCharge] = await Promise.all([
        ledger.credibility(address),
        ledger.debt(address),
        ledger.withdrawable(address),
        ledger.canCharge(address),
      ]);
      if (options.json) {
        const status = {
          ev: address,
          credibility: credibility.toString(),
          debtWei: debtWei.toString(),
          withdrawableWei: withdrawableWei.toString(),
          canCharge,
          doubledDeposit: credibility < 0n,
        };
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        return;
      }
      const why = canCharge ? "" : debtWei > 0n ? " (unpaid debt: trustpile ev pay-debt)" : " (not attested as an EV)";
      process.stdout.write(
        [
          `EV ${address}`,
          `  credibility:  R_v = ${credibility}${credibility < 0n ? " (below 0: a session needs a deposit of twice its cost)" : ""}`,
          `  debt:         ${weiAndEther(debtWei)}`,
          `  withdrawable: ${weiAndEther(withdrawableWei)}`,
          `  canCharge:    ${canCharge ? "yes" : "no"}${why}`,
          "",
        ].join("\n"),
      );
    } finally {
      provider.destroy();
    }
  });

  addSignerOptions(
    addChainOptions(
      ev
        .command("cancel")
        .description("take the deposit back from a session the pile never authorized (after authTimeout)")
        .requiredOption("--session <id>", "session id"),
    ),
    1,
  ).action(async (options: SessionOptions) => {
    const sessionId = BigInt(parseUint(options.session, "--session"));
    const config = optionalConfig(options);
    const provider = await chainProvider(options, config);
    try {
      const ledger = connectLedger(deploymentOf(options, config).ChargingLedger, await resolveSigner(options, provider));
      const receipt = await mined(`cancelling session ${sessionId}`, () => ledger.cancel(sessionId));
      process.stdout.write(`session ${sessionId} cancelled; the deposit is withdrawable (tx ${receipt.hash})\n`);
    } finally {
      provider.destroy();
    }
  });

  addSignerOptions(
    addChainOptions(ev.command("withdraw").description("withdraw refunds (or, for an owner, earnings) held by the ledger")),
    1,
  ).action(async (options: SignerOptions) => {
    const config = optionalConfig(options);
    const provider = await chainProvider(options, config);
    try {
      const wallet = await resolveSigner(options, provider);
      const ledger = connectLedger(deploymentOf(options, config).ChargingLedger, wallet);
      const amount = await ledger.withdrawable(await wallet.getAddress());
      if (amount === 0n) {
        process.stdout.write("nothing to withdraw\n");
        return;
      }
      const receipt = await mined("withdrawing", () => ledger.withdraw());
      process.stdout.write(`withdrew ${amount} wei (${formatEther(amount)}) (tx ${receipt.hash})\n`);
    } finally {
      provider.destroy();
    }
  });
}

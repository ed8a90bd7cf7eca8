import { formatEther } from "ethers";
import type { Command } from "commander";
import { connectLedger, connectRegistry, Role } from "../chain/contracts.ts";
import { mined, openSession } from "../chain/operations.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { UsageError } from "../errors.ts";
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
      const opened = await openSession(ledger, cpId, maxEnergyWh, depositWei);
      const coveredWh = (depositWei * 1000n) / terms.pricePerKWh;
      process.stdout.write(
        [
          `session ${opened.sessionId} opened at ${options.cp}`,
          `  ev:       ${address}`,
          `  deposit:  ${depositWei} wei (${formatEther(depositWei)})`,
          `  price:    ${terms.pricePerKWh} wei/kWh`,
          `  energy:   up to ${Math.min(Number(coveredWh), maxEnergyWh)} Wh (deposit covers ${coveredWh} Wh, limit ${maxEnergyWh} Wh)`,
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

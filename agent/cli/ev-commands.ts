import { formatEther, formatUnits, getAddress, isAddress } from "ethers";
import type { Command } from "commander";
import { runAuctionAsEv, type EvAuctionEvent } from "../auction/ev-auction.ts";
import {
  MAX_ROUNDS,
  MAX_ROUND_SECONDS,
  PRICE_ONLY_WEIGHTS,
  ROUND_TABLE_HEADER,
  areaIdOfCell,
  cellOfArea,
  decisionCommitmentOf,
  describeWeights,
  formatRoundLine,
  parseCell,
  parseWeights,
  weightsTuple,
} from "../auction/ev-auction-rules.ts";
import {
  AuctionPhase,
  connectEvaluations,
  connectLedger,
  connectPricingAuction,
  connectRegistry,
  Role,
} from "../chain/contracts.ts";
import {
  mined,
  openAuctionSession,
  openGate,
  openSession,
  payDebt,
  rateSession,
  withdrawFromAuction,
  type OpenedAuctionSession,
} from "../chain/operations.ts";
import { cpIdOf } from "../chain/session-total.ts";
import { RuntimeError, UsageError } from "../errors.ts";
import { attestOnDevChain } from "./chain-commands.ts";
import {
  DEFAULT_DEPLOYMENT,
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
  cp?: string;
  maxEnergyWh: string;
  deposit?: string;
  invitation?: string;
  r?: string;
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

interface InviteOptions extends SignerOptions {
  area?: string;
  cell?: string;
  energyWh: string;
  minPowerW: string;
  weights?: string;
  roundSeconds: string;
  maxRounds: string;
  deposit?: string;
  invitationDeposit?: string;
  open?: boolean;
  pollMs: string;
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

/** `ev open --invitation N --r 0x…`: the session of an auction decided earlier by `ev invite` without `--open`. */
async function openDecidedAuction(options: OpenOptions): Promise<void> {
  if (options.invitation === undefined || options.r === undefined) {
    throw new UsageError("--invitation ID and --r HEX go together: both name the decided auction whose session to open");
  }
  if (options.cp !== undefined) throw new UsageError("--cp cannot be given with --invitation: the auction decided the charge point");
  const invitationId = BigInt(parseUint(options.invitation, "--invitation"));
  if (!/^0x[0-9a-fA-F]{64}$/.test(options.r)) throw new UsageError(`--r: expected 0x and 64 hex digits, got "${options.r}"`);
  const r = options.r;
  const depositWei = options.deposit === undefined ? undefined : parseWei(options.deposit, "--deposit");
  if (depositWei === 0n) throw new UsageError("--deposit: must be more than 0");
  const config = optionalConfig(options);
  const deploymentPath = options.deployment ?? config?.chain.deployment ?? DEFAULT_DEPLOYMENT;
  const deployment = deploymentOf(options, config);
  if (!deployment.PricingAuction) {
    throw new UsageError(`the deployment file ${deploymentPath} names no PricingAuction contract, so it holds no auction to open a session of`);
  }
  const provider = await chainProvider(options, config);
  try {
    const wallet = await resolveSigner(options, provider);
    const address = await wallet.getAddress();
    const auction = connectPricingAuction(deployment.PricingAuction, wallet);
    if (invitationId === 0n || invitationId > (await auction.invitationCount())) {
      throw new UsageError(`--invitation: no invitation ${invitationId} exists in the PricingAuction at ${deployment.PricingAuction}`);
    }
    const [invitation, progress] = await Promise.all([auction.invitation(invitationId), auction.progress(invitationId)]);
    if (invitation.ev !== address) {
      throw new UsageError(`invitation ${invitationId} belongs to EV ${invitation.ev}, not to ${address}: only its own EV may open its session`);
    }
    if (progress.phase !== AuctionPhase.Decided) {
      throw new RuntimeError(`invitation ${invitationId} is ${auctionPhaseName(progress.phase)}, not decided: only a decided auction opens a session`);
    }
    // Checked here, where a wrong r is one clear sentence, rather than as the ledger's DecisionMismatch revert.
    if (decisionCommitmentOf(address, progress.winnerCpId, r) !== progress.decisionCommitment) {
      throw new UsageError(`--r does not match the decision commitment ${progress.decisionCommitment} of invitation ${invitationId}`);
    }
    const bid = await auction.bidOf(invitationId, progress.winnerCpId);
    const session = await openAuctionSession(
      connectLedger(deployment.ChargingLedger, wallet),
      address,
      { invitationId, r, energyWh: Number(invitation.energyWh), pricePerKWh: bid.pricePerKWh },
      depositWei,
    );
    process.stdout.write(`${auctionSessionLines(session).join("\n")}\n`);
  } finally {
    provider.destroy();
  }
}

function auctionSessionLines(session: OpenedAuctionSession): string[] {
  return [
    `session ${session.sessionId} opened at cpId ${session.cpId}`,
    `  price:    ${session.pricePerKWh} wei/kWh (the auction's)`,
    `  energy:   up to ${session.maxEnergyWh} Wh`,
    `  deposit:  ${weiAndEther(session.depositWei)}`,
    `  returned: the invitation deposit is withdrawable with trustpile ev withdraw`,
    `  tx:       ${session.receipt.hash}`,
  ];
}

function auctionPhaseName(phase: bigint): string {
  const name = Object.entries(AuctionPhase).find(([, value]) => value === phase)?.[0];
  return name === undefined ? `in phase ${phase}` : name.replace(/[A-Z]/g, (letter, index: number) => (index === 0 ? letter : ` ${letter}`)).toLowerCase();
}

/** An area id as the contract packs it (x << 32 | y), a whole number up to 2^64 − 1. */
function parseAreaId(value: string): bigint {
  if (!/^\s*\d+\s*$/.test(value) || BigInt(value.trim()) > 0xffff_ffff_ffff_ffffn) {
    throw new UsageError(`--area: expected an area id 0..18446744073709551615 (x << 32 | y), or use --cell X,Y; got "${value}"`);
  }
  return BigInt(value.trim());
}

export function registerEvCommands(program: Command): void {
  const ev = program.command("ev").description("EV wallet: deposits, sessions and pricing auctions (for hw-sim, tests and installers)");

  addSignerOptions(
    addChainOptions(
      ev
        .command("open")
        .description("open a charging session at a charge point with a deposit, or the session an auction decided")
        .option("--cp <id>", "charge point: its chargePointId (cp-001) or on-chain cpId (0x…)")
        .option("--deposit <amount>", "deposit: wei, or with a unit (0.01ether); with --invitation default energy × price")
        .option("--max-energy-wh <wh>", "stop after this much energy", "20000")
        .option("--invitation <id>", "instead of --cp: open the session of this decided auction (ev invite without --open)")
        .option("--r <hex>", "with --invitation: the r that ev invite printed"),
    ),
    1,
  ).action(async (options: OpenOptions) => {
    if (options.invitation !== undefined || options.r !== undefined) {
      await openDecidedAuction(options);
      return;
    }
    if (options.cp === undefined || options.deposit === undefined) {
      throw new UsageError("ev open needs --cp ID and --deposit AMOUNT, or --invitation ID and --r HEX for a decided auction");
    }
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
        .command("invite")
        .description("find a charge point by auction (Algorithm 2): invite the piles in and around a grid cell to bid, follow the rounds, pick the winner")
        .option("--area <id>", "area id to invite (a grid cell packed as x << 32 | y)")
        .option("--cell <x,y>", "the grid cell to invite, instead of --area")
        .requiredOption("--energy-wh <wh>", "energy to buy in Wh")
        .option("--min-power-w <w>", "least charging power a bid may offer, in W", "0")
        .option("--weights <p,w,d,r>", "screening weights price,power,distance,reputation", "1,0,0,0")
        .option("--round-seconds <s>", `length of each round's commit and reveal window (1..${MAX_ROUND_SECONDS})`, "30")
        .option("--max-rounds <n>", `most rounds to wait for the price to converge (1..${MAX_ROUNDS})`, "3")
        .option("--deposit <amount>", "session deposit with --open: wei, or with a unit (0.01ether); default energy × price")
        .option("--invitation-deposit <amount>", "deposit held by the auction until the session opens; default the contract's minimum")
        .option("--open", "open the session with the winner at the auction price")
        .option("--poll-ms <ms>", "how often to look at the chain while a round runs", "1000"),
    ),
    1,
  ).action(async (options: InviteOptions) => {
    if ((options.area === undefined) === (options.cell === undefined)) {
      throw new UsageError("give exactly one of --area ID or --cell X,Y to say where to invite bids");
    }
    const areaId = options.cell !== undefined ? areaIdOfCell(parseCell(options.cell, "--cell")) : parseAreaId(options.area ?? "");
    const energyWh = parseUint(options.energyWh, "--energy-wh", 0xffffffff);
    if (energyWh === 0) throw new UsageError("--energy-wh: must be more than 0");
    const minPowerW = parseUint(options.minPowerW, "--min-power-w", 0xffffffff);
    const weights = options.weights === undefined ? PRICE_ONLY_WEIGHTS : parseWeights(options.weights, "--weights");
    const roundSeconds = parseUint(options.roundSeconds, "--round-seconds", MAX_ROUND_SECONDS);
    if (roundSeconds === 0) throw new UsageError(`--round-seconds: must be 1..${MAX_ROUND_SECONDS}, got 0`);
    const maxRounds = parseUint(options.maxRounds, "--max-rounds", MAX_ROUNDS);
    if (maxRounds === 0) throw new UsageError(`--max-rounds: must be 1..${MAX_ROUNDS}, got 0`);
    const sessionDepositWei = options.deposit === undefined ? undefined : parseWei(options.deposit, "--deposit");
    if (sessionDepositWei === 0n) throw new UsageError("--deposit: must be more than 0");
    if (sessionDepositWei !== undefined && !options.open) throw new UsageError("--deposit is the session's deposit: it needs --open");
    const invitationDepositOption =
      options.invitationDeposit === undefined ? undefined : parseWei(options.invitationDeposit, "--invitation-deposit");
    const pollIntervalMs = parseUint(options.pollMs, "--poll-ms", 60_000);
    if (pollIntervalMs === 0) throw new UsageError("--poll-ms: must be more than 0");

    const config = optionalConfig(options);
    const deploymentPath = options.deployment ?? config?.chain.deployment ?? DEFAULT_DEPLOYMENT;
    const deployment = deploymentOf(options, config);
    if (!deployment.PricingAuction) {
      throw new UsageError(
        `the deployment file ${deploymentPath} names no PricingAuction contract, so there is no auction to invite bids in: deploy again with trustpile chain deploy`,
      );
    }
    const provider = await chainProvider(options, config);
    try {
      const wallet = await resolveSigner(options, provider);
      const address = await wallet.getAddress();
      const registry = connectRegistry(deployment.Registry, wallet);
      if (!(await registry.isAttested(address, Role.EV))) {
        await attestOnDevChain(provider, deployment.Registry, address, Role.EV);
      }
      const ledger = connectLedger(deployment.ChargingLedger, wallet);
      const [canCharge, debtWei] = await Promise.all([ledger.canCharge(address), ledger.debt(address)]);
      if (debtWei > 0n) {
        throw new RuntimeError(
          `EV ${address} cannot charge while it owes a debt of ${weiAndEther(debtWei)} from an earlier session, so the auction refuses its invitation: run trustpile ev pay-debt`,
        );
      }
      if (!canCharge) {
        throw new RuntimeError(`EV ${address} cannot charge (its EV attestation is missing or expired), so the auction refuses its invitation`);
      }
      const auction = connectPricingAuction(deployment.PricingAuction, wallet);
      const minDepositWei = (await auction.parameters()).minDeposit;
      if (invitationDepositOption !== undefined && invitationDepositOption < minDepositWei) {
        throw new UsageError(
          `--invitation-deposit: ${invitationDepositOption} wei is below the auction's minimum of ${weiAndEther(minDepositWei)}`,
        );
      }
      const cell = cellOfArea(areaId);
      const write = (line: string): void => void process.stdout.write(`${line}\n`);
      const onProgress = (event: EvAuctionEvent): void => {
        if (event.kind === "invited") {
          write(`invitation ${event.invitationId} in cell ${cell.x},${cell.y} (area ${areaId}) and the cells around it`);
          write(`  wants:    ${energyWh} Wh at ${minPowerW} W or more`);
          write(`  weights:  ${describeWeights(weights)}`);
          write(`  rounds:   up to ${maxRounds}, each ${roundSeconds} s to commit and ${roundSeconds} s to reveal`);
          write(`  deposit:  ${weiAndEther(event.depositWei)} held by the auction until the session opens`);
          write(`  tx:       ${event.txHash}`);
          write(ROUND_TABLE_HEADER);
        } else if (event.kind === "round-closed") {
          write(formatRoundLine(event.report));
        }
      };
      const outcome = await runAuctionAsEv({
        auction,
        invitation: { areaId, energyWh, minPowerW, weights: weightsTuple(weights), roundSeconds, maxRounds },
        ...(invitationDepositOption !== undefined ? { invitationDepositWei: invitationDepositOption } : {}),
        onProgress,
        pollIntervalMs,
      });
      if (outcome.status === "failed") {
        throw new RuntimeError(`${outcome.message}; the invitation deposit is withdrawable with trustpile ev withdraw`);
      }
      write(`winner:    cpId ${outcome.winnerCpId}${outcome.score === null ? "" : ` (score ${outcome.score})`}`);
      write(`price:     ${outcome.pricePerKWh} wei/kWh (${formatEther(outcome.pricePerKWh)} per kWh)`);
      write(`c:         ${outcome.decisionCommitment}`);
      write(`tx:        ${outcome.finalizeReceipt.hash}`);
      if (!options.open) {
        const { decisionSeconds } = await auction.parameters();
        // r is what claims the decision, so it has to reach the user who opens the session later.
        write(`r:         ${outcome.r}`);
        write(
          `next: within ${decisionSeconds} s run trustpile ev open --invitation ${outcome.invitationId} --r ${outcome.r}, or the winner may claim the invitation deposit`,
        );
        return;
      }
      const session = await openAuctionSession(
        ledger,
        address,
        { invitationId: outcome.invitationId, r: outcome.r, energyWh, pricePerKWh: outcome.pricePerKWh },
        sessionDepositWei,
      );
      for (const line of auctionSessionLines(session)) write(line);
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
      const address = await wallet.getAddress();
      const deployment = deploymentOf(options, config);
      const ledger = connectLedger(deployment.ChargingLedger, wallet);
      const amount = await ledger.withdrawable(address);
      // The auction keeps its own credits: a returned invitation deposit, bonds forfeited to this EV.
      const fromAuction = deployment.PricingAuction
        ? await withdrawFromAuction(connectPricingAuction(deployment.PricingAuction, wallet), address)
        : { amountWei: 0n };
      if (amount === 0n && fromAuction.amountWei === 0n) {
        process.stdout.write("nothing to withdraw\n");
        return;
      }
      if (amount > 0n) {
        const receipt = await mined("withdrawing", () => ledger.withdraw());
        process.stdout.write(`withdrew ${amount} wei (${formatEther(amount)}) (tx ${receipt.hash})\n`);
      }
      if (fromAuction.receipt) {
        process.stdout.write(
          `withdrew ${fromAuction.amountWei} wei (${formatEther(fromAuction.amountWei)}) from the pricing auction (tx ${fromAuction.receipt.hash})\n`,
        );
      }
    } finally {
      provider.destroy();
    }
  });
}

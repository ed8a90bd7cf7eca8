/**
 * `npm run fig5 [-- --seed N --mu 2 --sigma 1.5 --out DIR]`: reproduces the paper's Fig. 5 through the deployed
 * Evaluations contract on a private anvil (started here on a free port, stopped at the end whatever happens), writes
 * DIR/fig5.csv and DIR/fig5.svg (DIR defaults to out/) and prints the mean and volatility of the last 60 steps per
 * charge point next to the float64 twin's largest difference from the contract. Progress goes to stderr.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startDevChain, type DevChain } from "../agent/chain/dev-chain.ts";
import { TrustpileError, UsageError, describeError } from "../agent/errors.ts";
import { freePort } from "../agent/net.ts";
import {
  checkFig5Parameter,
  DEFAULT_FIG5_MU,
  DEFAULT_FIG5_SEED,
  DEFAULT_FIG5_SIGMA,
  FIG5_SWITCH_STEP,
  FIG5_WINDOW,
  fig5Csv,
  fig5Svg,
  runFig5OnChain,
  switchResponse,
  tailStats,
  type Fig5Result,
} from "../agent/reputation/fig5.ts";

interface Fig5Args {
  seed: number;
  mu: string;
  sigma: string;
  out: string;
}

function parseCommandLine(argv: string[]): Fig5Args {
  let values: { seed?: string; mu?: string; sigma?: string; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        seed: { type: "string" },
        mu: { type: "string" },
        sigma: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    throw new UsageError(describeError(error), { cause: error });
  }
  if (values.help) {
    process.stdout.write(
      `usage: npm run fig5 -- [--seed N] [--mu ${DEFAULT_FIG5_MU}] [--sigma ${DEFAULT_FIG5_SIGMA}] [--out out]\n` +
        `  seed: 0..4294967295 (default ${DEFAULT_FIG5_SEED}); mu > 1 and sigma > 0 as decimals\n`,
    );
    process.exit(0);
  }
  let seed = DEFAULT_FIG5_SEED;
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed) || Number(values.seed) > 0xffff_ffff) {
      throw new UsageError(`--seed must be an integer in 0..4294967295, got "${values.seed}"`);
    }
    seed = Number(values.seed);
  }
  const mu = values.mu ?? DEFAULT_FIG5_MU;
  const sigma = values.sigma ?? DEFAULT_FIG5_SIGMA;
  checkFig5Parameter("mu", mu);
  checkFig5Parameter("sigma", sigma);
  return { seed, mu, sigma, out: values.out ?? "out" };
}

const fmt = (value: number, digits = 4): string => value.toFixed(digits);

async function main(): Promise<void> {
  const args = parseCommandLine(process.argv.slice(2));
  const log = (message: string): void => void process.stderr.write(`fig5: ${message}\n`);
  log(`seed ${args.seed} (override with --seed), mu ${args.mu}, sigma ${args.sigma}`);

  let chain: DevChain | undefined;
  const stopOnSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping anvil`);
    void (chain?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", stopOnSignal);
  process.once("SIGTERM", stopOnSignal);

  let result: Fig5Result;
  try {
    chain = await startDevChain({ port: await freePort() });
    log(`anvil ${chain.pid} on ${chain.rpcUrl}`);
    result = await runFig5OnChain({ rpcUrl: chain.rpcUrl, seed: args.seed, mu: args.mu, sigma: args.sigma, onProgress: log });
  } finally {
    await chain?.stop();
  }

  await mkdir(args.out, { recursive: true });
  const csvPath = join(args.out, "fig5.csv");
  const svgPath = join(args.out, "fig5.svg");
  const series = { curves: result.contract, ratings: result.ratings };
  await writeFile(csvPath, fig5Csv(series));
  await writeFile(
    svgPath,
    fig5Svg(series, {
      title: `Fig. 5 via the Evaluations contract: seed ${result.seed}, μ = ${result.mu}, σ = ${result.sigma}, R_v = 3`,
      labels: result.labels,
      markerStep: FIG5_SWITCH_STEP,
    }),
  );

  const lines: string[] = [];
  lines.push(
    `Fig. 5 through the contract: seed ${result.seed}, mu ${result.mu}, sigma ${result.sigma}; ` +
      `${result.transactions} transactions in ${result.blocks} blocks, ${fmt(result.elapsedMs / 1000, 1)} s`,
  );
  lines.push("");
  const width = Math.max(...result.labels.map((label) => label.length), "charge point".length);
  lines.push(`${"charge point".padEnd(width)}  mean(last ${FIG5_WINDOW})  volatility(last ${FIG5_WINDOW})  R final`);
  result.contract.forEach((curve, cp) => {
    const stats = tailStats(curve);
    lines.push(
      `${(result.labels[cp] ?? `CP${cp + 1}`).padEnd(width)}  ${fmt(stats.mean).padStart(13)}  ${fmt(stats.volatility).padStart(19)}  ${fmt(curve.at(-1) ?? Number.NaN).padStart(7)}`,
    );
  });
  const cp4Curve = result.contract[3];
  const cp4Ratings = result.ratings[3];
  if (cp4Curve && cp4Ratings) {
    const drop = switchResponse(cp4Curve, cp4Ratings);
    lines.push("");
    lines.push(
      `CP4 after the switch: R at step ${FIG5_SWITCH_STEP} = ${fmt(drop.before)}, new level D·mean(W after) = ${fmt(drop.newLevel)}, ` +
        `last-${FIG5_WINDOW} mean ${fmt(drop.tailMean)} = ${fmt(100 * drop.fractionFallen, 1)} % of the way ` +
        `(halfway mark ${fmt(drop.halfway)}: ${drop.holds ? "reached" : "NOT reached"})`,
    );
  }
  lines.push(`max |contract − twin| over all steps: ${result.maxTwinDifference.toExponential(2)}`);
  lines.push(`wrote ${csvPath} and ${svgPath}`);
  process.stdout.write(lines.join("\n") + "\n");
}

main().catch((error: unknown) => {
  process.stderr.write(`fig5: ${describeError(error)}\n`);
  process.exit(error instanceof TrustpileError ? error.exitCode : 1);
});

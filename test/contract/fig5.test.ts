/**
 * Fig. 5 (paper §4.1) through the deployed Evaluations contract on this worker's anvil: 720 real ratings after 1080
 * real settled sessions, default seed. The claims are checked on the CONTRACT's curves (its Evaluated events):
 *
 *  - the better the service, the higher the reputation: mean of the last 60 steps CP3 > CP2 > CP1;
 *  - the better the service, the steadier it is: volatility (population std dev, last 60 steps) CP3 < CP2 < CP1;
 *  - CP4, good for 60 ratings and bad after, falls at least halfway to its new level: with R60 = R after step 60 and
 *    new level L = D·mean(W of steps 61..180) (the fixed point of eq. 2 under those scores), the mean of the last
 *    60 steps is at most R60 − ½·(R60 − L);
 *  - every curve stays within [0, 9]; the float64 twin agrees with the contract to 1e-12 at every step;
 *  - the CSV (181 rows with the header) and SVG (4 polylines of 180 points) writers produce parseable output.
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_FIG5_SEED,
  FIG5_STEPS,
  FIG5_SWITCH_STEP,
  fig5Csv,
  fig5Ratings,
  fig5Svg,
  runFig5OnChain,
  switchResponse,
  tailStats,
  toScore,
  type Fig5Result,
} from "../../agent/reputation/fig5.ts";
import { testChainUrl } from "../helpers/chain.ts";

let result: Fig5Result;

function curveOf(cp: number): number[] {
  const curve = result.contract[cp];
  if (!curve) throw new Error(`no curve for CP${cp + 1}`);
  return curve;
}

describe("Fig. 5 on chain", () => {
  beforeAll(async () => {
    result = await runFig5OnChain({ rpcUrl: testChainUrl(), seed: DEFAULT_FIG5_SEED });
  }, 240_000);

  it("records 180 ratings per charge point, the scheduled scores, from the contract", () => {
    expect(result.contract.map((curve) => curve.length)).toEqual([FIG5_STEPS, FIG5_STEPS, FIG5_STEPS, FIG5_STEPS]);
    expect(result.ratings).toEqual(fig5Ratings(DEFAULT_FIG5_SEED));
    for (const scores of result.ratings) for (const score of scores) expect([1, 2, 3]).toContain(score);
  });

  it("ranks the means of the last 60 steps CP3 > CP2 > CP1", () => {
    const [cp1, cp2, cp3] = [0, 1, 2].map((cp) => tailStats(curveOf(cp)).mean);
    expect(cp3).toBeGreaterThan(cp2 ?? Number.NaN);
    expect(cp2).toBeGreaterThan(cp1 ?? Number.NaN);
  });

  it("ranks the volatilities of the last 60 steps CP3 < CP2 < CP1", () => {
    const [cp1, cp2, cp3] = [0, 1, 2].map((cp) => tailStats(curveOf(cp)).volatility);
    expect(cp3).toBeLessThan(cp2 ?? Number.NaN);
    expect(cp2).toBeLessThan(cp1 ?? Number.NaN);
  });

  it("lets CP4 fall at least halfway from R60 to its new level D·mean(W after the switch)", () => {
    const ratings = result.ratings[3];
    if (!ratings) throw new Error("no CP4 ratings");
    const drop = switchResponse(curveOf(3), ratings, FIG5_SWITCH_STEP);
    expect(drop.before).toBe(curveOf(3)[FIG5_SWITCH_STEP - 1]);
    expect(drop.newLevel).toBeLessThan(drop.before);
    expect(drop.tailMean).toBeLessThanOrEqual(drop.before - 0.5 * (drop.before - drop.newLevel));
  });

  it("keeps every curve within [0, 9]", () => {
    for (const curve of result.contract) {
      expect(Math.min(...curve)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...curve)).toBeLessThanOrEqual(9);
    }
  });

  it("agrees with the float64 twin to 1e-12 at every step", () => {
    result.contract.forEach((curve, cp) =>
      curve.forEach((value, step) => expect(Math.abs(value - (result.twin[cp]?.[step] ?? Number.NaN))).toBeLessThanOrEqual(1e-12)),
    );
    expect(result.maxTwinDifference).toBeLessThanOrEqual(1e-12);
  });

  it("writes a CSV of 181 rows: the header, then step, cp1..cp4, w1..w4", () => {
    const csv = fig5Csv({ curves: result.contract, ratings: result.ratings });
    const rows = csv.trimEnd().split("\n").map((line) => line.split(","));
    expect(rows).toHaveLength(FIG5_STEPS + 1);
    expect(rows[0]).toEqual(["step", "cp1", "cp2", "cp3", "cp4", "w1", "w2", "w3", "w4"]);
    rows.slice(1).forEach((row, step) => {
      expect(row).toHaveLength(9);
      expect(Number(row[0])).toBe(step + 1);
      for (let cp = 0; cp < 4; cp++) {
        expect(Number(row[1 + cp])).toBe(result.contract[cp]?.[step]);
        expect(Number(row[5 + cp])).toBe(result.ratings[cp]?.[step]);
      }
    });
  });

  it("writes an SVG with balanced tags and 4 polylines of 180 points inside the plot", () => {
    const svg = fig5Svg({ curves: result.contract }, { title: "Fig. 5 <test> & more", labels: result.labels, markerStep: FIG5_SWITCH_STEP });
    expect(svg).toMatch(/^<\?xml [^>]*\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    // Every element opened is closed in order (self-closing ones count as both), and text has no raw '<' or '&'.
    const stack: string[] = [];
    for (const match of svg.replace(/^<\?xml[^>]*\?>/, "").matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
      const [, closing, name, selfClosing] = match;
      if (!name) continue;
      if (selfClosing) continue;
      if (closing) expect(stack.pop()).toBe(name);
      else stack.push(name);
    }
    expect(stack).toEqual([]);
    expect(svg).toContain("Fig. 5 &lt;test&gt; &amp; more");
    const polylines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1] ?? "");
    expect(polylines).toHaveLength(4);
    const viewBox = /viewBox="0 0 (\d+) (\d+)"/.exec(svg);
    const [width, height] = [Number(viewBox?.[1]), Number(viewBox?.[2])];
    for (const points of polylines) {
      const pairs = points.split(" ").map((pair) => pair.split(",").map(Number));
      expect(pairs).toHaveLength(FIG5_STEPS);
      for (const [x, y] of pairs) {
        expect(x).toBeGreaterThan(0);
        expect(x).toBeLessThan(width);
        expect(y).toBeGreaterThan(0);
        expect(y).toBeLessThan(height);
      }
      // x grows with the step.
      const xs = pairs.map(([x]) => x ?? Number.NaN);
      expect(xs.every((x, i) => i === 0 || x > (xs[i - 1] ?? Infinity))).toBe(true);
    }
  });
});

describe("Fig. 5 sampling", () => {
  it("rounds half up and clips to {1, 2, 3}", () => {
    expect([-3, 0.49, 1.49, 1.5, 2.49, 2.5, 7, Number.NaN].map(toScore)).toEqual([1, 1, 1, 2, 2, 3, 3, 1]);
  });

  it("replays the same ratings for a seed and others for another seed", () => {
    expect(fig5Ratings(7)).toEqual(fig5Ratings(7));
    expect(fig5Ratings(7)).not.toEqual(fig5Ratings(8));
  });
});

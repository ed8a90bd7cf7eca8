/** `trustpile sim` refuses bad flags before it starts anything (exit 2, one sentence naming the flag). */
import { describe, expect, it } from "vitest";
import { runCli } from "../../helpers/cli.ts";

describe("trustpile sim usage", () => {
  it.each([
    [["--auction-every", "x"], '--auction-every: expected a whole number 0..100 (0: no auctions), got "x"'],
    [["--auction-every", "-1"], '--auction-every: expected a whole number 0..100 (0: no auctions), got "-1"'],
    [["--sessions", "0"], '--sessions: expected a whole number 1..100, got "0"'],
  ])("sim %j exits 2", async (args, message) => {
    const { status, stdout, stderr } = await runCli(["sim", ...args]);
    expect(status).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toContain(message);
  });
});

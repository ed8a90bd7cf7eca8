import { afterEach, describe, expect, it } from "vitest";
import { openPtyPair } from "../../../../hw-sim/modbus/pty.ts";

describe("pty pair", () => {
  const path = process.env.PATH;

  afterEach(() => {
    process.env.PATH = path;
  });

  it("says how to install socat when it is missing", async () => {
    process.env.PATH = "/nonexistent";
    await expect(openPtyPair()).rejects.toThrow("socat is not installed (apt-get install socat)");
  });

  it("opens two distinct ptys and removes them on close", async () => {
    const pair = await openPtyPair();
    expect(pair.agentPath).toMatch(/^\/dev\/pts\/\d+$/);
    expect(pair.simPath).toMatch(/^\/dev\/pts\/\d+$/);
    expect(pair.agentPath).not.toBe(pair.simPath);
    await pair.close();
    await pair.close();
  });
});

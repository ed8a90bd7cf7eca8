/**
 * The unit's relay-off step (ExecStopPost / ExecStartPre = `trustpile relay-off --config FILE`), run as systemd runs
 * it: the real CLI in its own process, pointed at the fake sysfs tree through `gpio.sysfsRoot`.
 *
 * The main case is the one the step exists for: a real agent process (test/helpers/agent-world.ts) energizes a
 * session and is killed with SIGKILL. As on a Pi, sysfs keeps the output level, so the contactor stays closed and
 * energy flows with no agent to stop it. relay-off must open it with nothing but the config: its chain section
 * points at a port nobody listens on and a keystore that does not exist, its meter at a serial device that does not
 * exist.
 *
 * Then the cases around it, on trees of their own: an active-low relay left closed, a line not yet exported (at boot,
 * ExecStartPre), a line the board does not have (exit 1, one sentence) and `gpio.driver: sim` (nothing to switch).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LINES, sleep, startAgentWorld, waitUntil, type AgentWorld } from "../../helpers/agent-world.ts";
import { runCli, stderrLines } from "../../helpers/cli.ts";
import { createFakeSysfs, type FakeSysfs } from "../../helpers/fake-sysfs.ts";

/** A config a pile would have, except the sysfs root; nothing in it is reachable but the GPIO tree. */
function pileConfig(dir: string, name: string, gpio: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    [
      `chargePointId: ${name}`,
      `dataDir: ${join(dir, `${name}-data`)}`,
      "chain:",
      "  rpcUrl: http://127.0.0.1:9",
      "  keystore: ./no-such-device-key.json",
      "  passwordFile: ./no-such-password",
      "meter: { driver: sdm630, transport: rtu, device: /dev/ttyUSB-no-such-adapter }",
      gpio,
      "",
    ].join("\n"),
  );
  return path;
}

describe("relay-off after the agent was killed with SIGKILL while energized", () => {
  let world: AgentWorld;

  beforeAll(async () => {
    world = await startAgentWorld();
  }, 120_000);

  afterAll(async () => {
    await world?.close();
  });

  it("opens the contactor the dead agent left closed, with nothing but the config's gpio section", async () => {
    const pile = await world.registerPile("cp-relay-off");
    await world.intervalMining();
    const agent = world.startAgent(pile);
    await agent.waitForLine("the agent to be ready", (line) => line.ready === true, 30_000);
    world.hwSim.board.ev.plug();
    const { sessionId } = await world.openDeposit(pile, 500);
    await agent.waitForLine("energized", (line) => line.phase === "energized" && line.sessionId === sessionId.toString(), 30_000);
    await waitUntil("the relay file to show the close", () => world.bridge.relayFileLevel() === true, 5_000, 10);
    await agent.kill9();

    // As on a Pi: the line keeps its level with its process dead, the contactor stays closed, energy flows.
    await sleep(300);
    const relay = LINES.relay.line;
    expect(world.sysfs.file(relay, "value")).toBe("1");
    expect(world.sysfs.electricalLevel(relay)).toBe(true);
    expect(world.hwSim.board.relay.contactsClosed()).toBe(true);

    const config = pileConfig(
      world.dir,
      "cp-relay-off",
      [
        "gpio:",
        "  driver: onoff",
        `  sysfsRoot: ${world.sysfs.root}`,
        `  relay: { line: ${relay} }`,
        `  feedback: { line: ${LINES.feedback.line} }`,
        `  evPresent: { line: ${LINES.evPresent.line} }`,
      ].join("\n"),
    );
    const run = await runCli(["relay-off", "--config", config], { timeoutMs: 30_000 });

    expect(run.stderr).toBe("");
    expect(run.stdout).toBe(`relay line ${relay} (sysfs gpio${relay}) driven off\n`);
    expect(run.status).toBe(0);
    expect(world.sysfs.file(relay, "value")).toBe("0");
    expect(world.sysfs.electricalLevel(relay)).toBe(false);
    // Left exported and driven (an unexported Pi pin floats); the inputs were not touched.
    expect(world.sysfs.unexported).not.toContain(relay);
    expect(world.sysfs.file(relay, "direction")).toBe("low");
    await waitUntil("the contactor to open", () => !world.hwSim.board.relay.contactsClosed(), 5_000, 10);
  }, 120_000);
});

describe("relay-off on its own", () => {
  let sysfs: FakeSysfs;

  beforeAll(async () => {
    // Raspberry Pi OS on kernel >= 6.6: the header's chip is numbered from 512, BCM 17 is sysfs 529.
    sysfs = await createFakeSysfs([{ base: 512, ngpio: 54, label: "pinctrl-bcm2711" }], { kernel: true });
  });

  afterAll(async () => {
    await sysfs?.close();
  });

  it("drives an active-low relay left closed to its high (off) level", async () => {
    // A dead agent's active-low relay, closed: logical 1 under active_low 1 is electrically low.
    sysfs.preExport(529, { value: "1", active_low: "1", direction: "out" });
    expect(sysfs.electricalLevel(529)).toBe(false);
    const config = pileConfig(sysfs.root, "cp-active-low", `gpio: { driver: onoff, sysfsRoot: ${sysfs.root}, relay: { line: 17, activeLow: true } }`);

    const run = await runCli(["relay-off", "--config", config], { timeoutMs: 30_000 });

    expect(run.stdout).toBe("relay line 17 (sysfs gpio529) driven off (active low: output held high)\n");
    expect(run.status).toBe(0);
    expect(sysfs.file(529, "value")).toBe("0");
    expect(sysfs.electricalLevel(529)).toBe(true);
  }, 60_000);

  it("exports a line nobody exported yet (ExecStartPre at boot) and drives it off", async () => {
    const config = pileConfig(sysfs.root, "cp-boot", `gpio: { driver: onoff, sysfsRoot: ${sysfs.root}, relay: { line: 5 } }`);

    const run = await runCli(["relay-off", "--config", config], { timeoutMs: 30_000 });

    expect(run.stdout).toBe("relay line 5 (sysfs gpio517) driven off\n");
    expect(run.status).toBe(0);
    expect(sysfs.exported).toContain(517);
    expect(sysfs.file(517, "direction")).toBe("low");
    expect(sysfs.electricalLevel(517)).toBe(false);
  }, 60_000);

  it("exits 1 with one sentence when the line cannot be driven", async () => {
    const config = pileConfig(sysfs.root, "cp-no-line", `gpio: { driver: onoff, sysfsRoot: ${sysfs.root}, relay: { line: 60 } }`);

    const run = await runCli(["relay-off", "--config", config], { timeoutMs: 30_000 });

    expect(run.status).toBe(1);
    expect(run.stdout).toBe("");
    expect(stderrLines(run)).toEqual([
      'trustpile: cannot drive relay line 60 off: [trustpile] [gpio:sysfs] GPIO line 60 is beyond gpiochip512 (54 lines): expected a line 0..53 of "pinctrl-bcm2711" (the chip\'s own numbering, BCM on a Raspberry Pi, not the sysfs number)',
    ]);
  }, 60_000);

  it("says there is nothing to switch with gpio.driver: sim", async () => {
    const config = pileConfig(sysfs.root, "cp-sim", "gpio: { driver: sim }");

    const run = await runCli(["relay-off", "--config", config], { timeoutMs: 30_000 });

    expect(run.stdout).toBe("gpio.driver is sim: there is no relay line to switch (the simulated contactor lives inside the agent process)\n");
    expect(run.status).toBe(0);
  }, 60_000);
});

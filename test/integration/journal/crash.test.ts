/**
 * kill -9 at random moments (MicroOcpp's TransactionSafety, as a real process crash): a child process writes to the
 * journal as fast as it can and reports each commit; after a random number of reports, plus a random 0-4 ms so the
 * signal lands anywhere in the child's append / fsync / report cycle, it is SIGKILLed. Every reported commit must be
 * present and intact, and a command marked done is never sent again, across five crash-and-restart cycles on the
 * same journal file.
 *
 * A process crash leaves the kernel's page cache intact, so this proves the commit protocol (WAL, seq, transactions);
 * surviving a power cut as well is what synchronous = FULL adds, see agent/journal/journal.ts.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openJournal } from "../../../agent/journal/journal.ts";
import { REPO_ROOT } from "../../helpers/cli.ts";

const RUNS = 5;
const WRITER = join(REPO_ROOT, "test/fixtures/journal-writer.ts");

interface Report {
  seq?: number;
  digest?: string;
  done?: string;
  settle?: string;
  attempts?: number;
}

interface RunResult {
  reports: Report[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/** Starts the writer and SIGKILLs it 0-4 ms after it has reported `killAfter` committed events. */
function runWriter(path: string, run: number, killAfter: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WRITER, path, String(run)], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const reports: Report[] = [];
    let seqs = 0;
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const report = JSON.parse(line) as Report;
      reports.push(report);
      if (report.seq !== undefined && ++seqs === killAfter) {
        setTimeout(() => child.kill("SIGKILL"), Math.floor(Math.random() * 5));
      }
    });
    const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(guard);
      resolve({ reports, signal, code, stderr });
    });
  });
}

function digestOf(event: Record<string, unknown>): string {
  return createHash("sha256")
    .update(`${String(event.run)}|${String(event.i)}|${String(event.energyWh)}|${String(event.wei)}|${String(event.blob)}`)
    .digest("hex");
}

let dir: string;
let path: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "trustpile-journal-crash-"));
  path = join(dir, "data", "journal.sqlite");
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("journal under kill -9", () => {
  it(
    `keeps every reported commit and never re-sends a done command, over ${RUNS} crashes at random moments`,
    async () => {
      const committed = new Map<number, string>();
      const doneKeys: string[] = [];
      let settleSent = 0;

      for (let run = 1; run <= RUNS; run++) {
        const killAfter = 20 + Math.floor(Math.random() * 300);
        const result = await runWriter(path, run, killAfter);
        expect(result.stderr).toBe("");
        expect(result.signal, `run ${run} should have been killed, exited with ${String(result.code)}`).toBe("SIGKILL");

        for (const report of result.reports) {
          if (report.seq !== undefined && report.digest !== undefined) committed.set(report.seq, report.digest);
          if (report.done !== undefined) doneKeys.push(report.done);
          if (report.settle === "sent") settleSent++;
          else if (report.settle !== undefined) expect(report).toEqual({ settle: "done", attempts: 1 });
        }
        expect(result.reports.filter((r) => r.seq !== undefined).length).toBeGreaterThanOrEqual(killAfter);

        // The raw file first: SQLite's own check of every page and index after recovering the WAL.
        const raw = new Database(path);
        try {
          expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
        } finally {
          raw.close();
        }

        const journal = openJournal(path);
        try {
          const events = journal.eventsSince(0);
          // Contiguous from 1: a kill mid-transaction rolls back whole, leaving neither a gap nor a half row.
          expect(events.map((e) => e.seq)).toEqual(Array.from({ length: journal.lastSeq() }, (_, index) => index + 1));
          for (const { seq, event } of events) {
            expect(event.digest, `event ${seq}`).toBe(digestOf(event));
            expect(typeof event.wei).toBe("bigint");
          }
          const bySeq = new Map(events.map((e) => [e.seq, e.event.digest]));
          for (const [seq, digest] of committed) expect(bySeq.get(seq), `reported seq ${seq}`).toBe(digest);

          const snapshot = journal.loadSnapshot();
          expect(snapshot).toBeDefined();
          expect(snapshot?.seq).toBeLessThanOrEqual(journal.lastSeq());
          expect((snapshot?.state as { at: number }).at).toBe(snapshot?.seq);

          for (const key of doneKeys) expect(journal.get(key)?.status, key).toBe("done");
          expect(journal.get("settle:42")).toMatchObject({ status: "done", attempts: 1, result: { blockNumber: 1234n } });
          expect(settleSent).toBe(1);
        } finally {
          journal.close();
        }
      }
      expect(committed.size).toBeGreaterThanOrEqual(RUNS * 20);
    },
    180_000,
  );
});

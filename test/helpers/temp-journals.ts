/**
 * Journals in a fresh temporary directory per test, for the suites that run thousands of sessions through a real
 * journal; every journal opened is closed, and the directory removed, after each test.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";
import { openJournal, type Journal } from "../../agent/journal/journal.ts";

export interface TempJournals {
  /** Where a journal called `name` lives in this test's directory. */
  path(name?: string): string;
  /** Opens (or reopens) journal `name` on the test's clock. */
  open(name?: string): Journal;
}

/** Registers the per-test directory (named after `prefix`) with beforeEach/afterEach; call at module level. */
export function tempJournals(prefix: string, clock: () => number): TempJournals {
  let dir: string | undefined;
  const opened: Journal[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(() => {
    for (const journal of opened.splice(0)) journal.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const path = (name = "journal.sqlite"): string => {
    if (!dir) throw new Error("temp journals are only open during a test");
    return join(dir, name);
  };
  return {
    path,
    open(name) {
      // NORMAL only spares the tests thousands of fsyncs; what is stored, and so every size measured, is the same as with FULL.
      const journal = openJournal(path(name), { clock, synchronous: "normal" });
      opened.push(journal);
      return journal;
    },
  };
}

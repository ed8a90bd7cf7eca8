#!/usr/bin/env node
// Prints one plain line "N passed, N failed" over forge (from its log) and vitest (from its JSON report).
// Exits 1 when nothing ran or anything failed, so a silent runner can never look green.
import { existsSync, readFileSync } from "node:fs";

const [vitestJsonPath, logPath] = process.argv.slice(2);
let passed = 0;
let failed = 0;

if (logPath && existsSync(logPath)) {
  const log = readFileSync(logPath, "utf8").replace(/\x1b\[[0-9;]*m/g, "");
  // forge: "Ran 4 test suites in 1.2s (3.4s CPU time): 31 tests passed, 0 failed, 0 skipped (31 total tests)"
  const forge = [...log.matchAll(/Ran \d+ test suites?.*?: (\d+) tests? passed, (\d+) failed/g)].at(-1);
  if (forge) {
    passed += Number(forge[1]);
    failed += Number(forge[2]);
  } else if (/forge/.test(log) && /Compiler run failed|Error \(\d+\)/.test(log)) {
    failed += 1;
  }
}

if (vitestJsonPath && existsSync(vitestJsonPath)) {
  const report = JSON.parse(readFileSync(vitestJsonPath, "utf8"));
  passed += report.numPassedTests ?? 0;
  const failedTests = report.numFailedTests ?? 0;
  // A file that failed to load has no failed test but counts as a failed suite.
  failed += failedTests > 0 ? failedTests : (report.numFailedTestSuites ?? 0);
} else {
  // vitest never wrote its report: an earlier step (build check, typecheck, forge) failed or vitest crashed.
  failed += 1;
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

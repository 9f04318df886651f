// Prints the closing line CI reads, from vitest's JSON report: "N passed, N failed[, N skipped]".
// A run that executed no test, or left no report, counts as failed.
import { existsSync, readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'test-results/vitest.json';
if (!existsSync(file)) {
  console.log('no test report was written');
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const report = JSON.parse(readFileSync(file, 'utf8'));
const passed = report.numPassedTests ?? 0;
// A file that failed with none of its tests failing counts as one failure too: it failed to load
// (syntax error, missing service at import), or a hook failed (a beforeAll that could not set up a
// describe block, whose tests vitest then reports skipped, not failed).
const failed =
  (report.numFailedTests ?? 0) +
  (report.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((test) => test.status === 'failed'),
  ).length;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
if (passed + failed === 0) {
  console.log('no test ran');
  console.log('0 passed, 1 failed');
  process.exit(1);
}
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);

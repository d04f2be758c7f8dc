// Prints the closing line CI reads ("N passed, N failed[, N skipped]") from vitest's JSON report,
// counting a failed static check (typecheck, lint, format) as one failure.
import { readFileSync, existsSync } from 'node:fs';

const [file, staticStatus] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
if (file && existsSync(file)) {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed = r.numPassedTests ?? 0;
  failed = (r.numFailedTests ?? 0) + ((r.numFailedTestSuites ?? 0) ? 0 : 0);
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A suite that failed to load has no tests counted as failed; count it.
  for (const s of r.testResults ?? [])
    if (s.status === 'failed' && (s.assertionResults ?? []).length === 0) failed += 1;
} else {
  failed += 1;
  console.error(`no test report at ${file}`);
}
if (staticStatus && staticStatus !== '0' && failed === 0) failed += 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || (staticStatus && staticStatus !== '0') ? 1 : 0);

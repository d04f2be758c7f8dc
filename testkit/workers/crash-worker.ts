/**
 * Crash-test worker (test only): loops doing full runs against the station database given as argv[2] until it
 * is killed. Resumes runs left active by a previous kill, rotates some provisioned boards, fails some runs.
 * Prints "ready" once the database is open. Usage: tsx testkit/workers/crash-worker.ts <db-file> [chips]
 */
import { openStore } from '../../native/store/index.js';
import { board, doCheckpoint, finishRun, fullRun, startRun } from '../store-fixtures.js';

const file = process.argv[2];
const chips = Number(process.argv[3] ?? 200);
if (!file) {
  process.stderr.write('usage: crash-worker.ts <db-file> [chips]\n');
  process.exit(2);
}
const opened = openStore(file);
if (!opened.ok) {
  process.stderr.write(`${opened.error.message}\n`);
  process.exit(1);
}
const store = opened.value;
process.stdout.write('ready\n');

for (;;) {
  const b = board(Math.floor(Math.random() * chips));
  const active = store.findActiveRun(b.chipId);
  if (active) {
    finishRun(store, active);
    continue;
  }
  const current = store.findCurrentRecord(b.chipId);
  const roll = Math.random();
  if (roll < 0.1) {
    // A run that fails after two checkpoints.
    let run = startRun(store, b, current?.recordId ?? null);
    run = doCheckpoint(store, run, 'identify');
    run = doCheckpoint(store, run, 'attest');
    store.failRun(run.runId, { code: 'ATTEST_SIGNATURE_INVALID', message: 'crash-test failure', step: 'key' });
  } else if (roll < 0.2) {
    // A run that fails after its certificate was issued (install refused): its failed-issuance event is queued.
    let run = startRun(store, b, current?.recordId ?? null);
    for (const s of ['identify', 'attest', 'key', 'certify'] as const) run = doCheckpoint(store, run, s);
    store.failRun(run.runId, { code: 'BOARD_CERT_REFUSED', message: 'crash-test failure', step: 'certify' });
  } else if (!current || roll < 0.5) {
    fullRun(store, b, current?.recordId ?? null);
  } else {
    store.appendAudit('station.heartbeat', { chipId: b.chipId });
  }
}

/**
 * Durability-barrier worker (test only, native/store/durability.test.ts runs it under strace): on the station
 * database given as argv[2], one durable commit, then a run with deferred commits (createRun, two checkpoints), then
 * the outbox's audit proof (what a sync batch or bundle sends), each phase marked on stdout; then it kills itself
 * (no close: nothing is checkpointed or synced on the way out). Marks: "start", "deferred <chipId>",
 * "proof <seq> <hash>".
 */
import { writeSync } from 'node:fs';
import { openStationDb } from '../../native/store/index.js';
import { board, doCheckpoint, startRun } from '../store-fixtures.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: barrier-worker.ts <db-file>\n');
  process.exit(2);
}
const opened = openStationDb(file);
if (!opened.ok) {
  process.stderr.write(`${opened.error.message}\n`);
  process.exit(1);
}
const { store, outbox } = opened.value;
store.appendAudit('test.begin', {}); // durable: the WAL exists and is synced before the marks
writeSync(1, 'start\n');
const b = board(7);
let run = startRun(store, b);
run = doCheckpoint(store, run, 'identify');
doCheckpoint(store, run, 'attest');
writeSync(1, `deferred ${b.chipId}\n`);
const proof = outbox.auditProof(1_000_000);
writeSync(1, `proof ${proof.head.seq} ${proof.head.hash}\n`);
process.kill(process.pid, 'SIGKILL');

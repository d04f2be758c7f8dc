/**
 * WAL-restart worker (test only, native/store/group-commit.test.ts runs it under strace): on the station database
 * given as argv[2], a full run of board 1 (its certify checkpoint and completeRun deferred, not yet synced), a
 * complete checkpoint of the WAL by a second connection, a full run of board 2 (SQLite restarts the WAL from its
 * start), then `whenDurable` through the descriptor opened before the restart; each phase marked on stdout, then it
 * kills itself (no close: nothing is checkpointed or synced on the way out). Marks: "start", "committed <record 1>
 * <record 2> <checkpoint busy>", "durable".
 */
import { writeSync } from 'node:fs';
import Database from 'better-sqlite3';
import { openStationDb } from '../../native/store/index.js';
import { board, fullRun } from '../store-fixtures.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: wal-restart-worker.ts <db-file>\n');
  process.exit(2);
}
const opened = openStationDb(file);
if (!opened.ok) {
  process.stderr.write(`${opened.error.message}\n`);
  process.exit(1);
}
const { store } = opened.value;
store.appendAudit('test.begin', {}); // durable: the WAL exists and is synced before the marks
await store.whenDurable(); // opens the WAL descriptor before the restart
writeSync(1, 'start\n');
const one = fullRun(store, board(1));
const other = new Database(file);
const [ck] = other.pragma('wal_checkpoint(PASSIVE)') as { busy: number }[];
other.close();
const two = fullRun(store, board(2));
writeSync(1, `committed ${one.recordId} ${two.recordId} ${ck?.busy ?? -1}\n`);
await store.whenDurable();
writeSync(1, 'durable\n');
process.kill(process.pid, 'SIGKILL');

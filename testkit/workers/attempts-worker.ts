/**
 * Attempt-accounting worker (test only): opens the station database given as argv[2], waits until the instant
 * argv[3] (ms since the epoch) so that all workers start together, then tries argv[4] admissions on subject
 * `operator:race` as fast as it can and prints how many were admitted. Usage:
 * tsx testkit/workers/attempts-worker.ts <db-file> <start-at-ms> <tries>
 */
import Database from 'better-sqlite3';
import { createAttemptStore } from '../../native/store/operators.js';

const [file, startAt, tries] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] ?? 100)];
if (!file) {
  process.stderr.write('usage: attempts-worker.ts <db-file> <start-at-ms> <tries>\n');
  process.exit(2);
}
const db = new Database(file);
db.pragma('busy_timeout = 10000');
const attempts = createAttemptStore(db);
const limit = { maxAttempts: 5, lockMs: 300_000, maxLockMs: 86_400_000 };
while (Date.now() < startAt) {
  /* spin: start together */
}
let admitted = 0;
for (let i = 0; i < tries; i++) if (attempts.admit('operator:race', Date.now(), limit).ok) admitted++;
db.close();
process.stdout.write(`${admitted}\n`);

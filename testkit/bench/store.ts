/**
 * Store benchmark (manual): N full runs through the Store API (createRun, 6 checkpoints, completeRun), then
 * verifyAudit over the whole chain and a few listRecords queries.
 * Usage: tsx testkit/bench/store.ts [runs=10000] [FULL|NORMAL] [db-file]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../native/store/index.js';
import { board, fullRun } from '../store-fixtures.js';

const runs = Number(process.argv[2] ?? 10_000);
const sync = process.argv[3] === 'NORMAL' ? 'NORMAL' : 'FULL';
const tmp = process.argv[4] ? null : mkdtempSync(join(tmpdir(), 'ls-bench-'));
const file = process.argv[4] ?? join(tmp!, 'station.db');
const opened = openStore(file, { synchronous: sync });
if (!opened.ok) throw new Error(opened.error.message);
const store = opened.value;

const t0 = performance.now();
for (let i = 0; i < runs; i++) fullRun(store, board(i, `WO-${i % 50}`));
const runMs = performance.now() - t0;
const v0 = performance.now();
const v = store.verifyAudit();
const verifyMs = performance.now() - v0;
const q0 = performance.now();
const page = store.listRecords({ workOrder: 'WO-7', limit: 50 });
const queryMs = performance.now() - q0;
console.log(
  JSON.stringify({
    runs,
    synchronous: sync,
    msPerRun: +(runMs / runs).toFixed(3),
    runsPerSecond: Math.round((runs * 1000) / runMs),
    verify: { ok: v.ok, entries: v.entries, ms: Math.round(verifyMs) },
    listRecordsWorkOrderMs: +queryMs.toFixed(2),
    listed: page.length,
  }),
);
store.close();
if (tmp) rmSync(tmp, { recursive: true, force: true });

/**
 * Performance check (printed; asserted only generously). Full runs through the Store API at synchronous=FULL
 * and NORMAL, then the records table is filled to 100,000 rows (raw bulk insert, another connection) and
 * listRecords/countRecords are timed with each filter. The 10,000-full-run figure is in bench.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, type SqliteStore } from './index.js';
import { board, fullRun } from '../../testkit/store-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'ls-perf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function open(file: string, synchronous: 'FULL' | 'NORMAL'): SqliteStore {
  const r = openStore(file, { synchronous });
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function timeRuns(synchronous: 'FULL' | 'NORMAL', n: number): number {
  const s = open(join(dir, `runs-${synchronous}.db`), synchronous);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fullRun(s, board(i));
  const ms = (performance.now() - t0) / n;
  expect(s.countRecords()).toBe(n);
  s.close();
  return ms;
}

/** Best of `k` timings of `fn`, in ms. */
function best(k: number, fn: () => unknown): number {
  let min = Infinity;
  for (let i = 0; i < k; i++) {
    const t0 = performance.now();
    fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

describe('store performance', () => {
  it('full runs per second at synchronous FULL vs NORMAL', () => {
    const full = timeRuns('FULL', 150);
    const normal = timeRuns('NORMAL', 150);
    console.log(
      `full run (createRun + 6 checkpoints + completeRun = 8 commits, 2 fsynced: certify, completeRun): FULL ${full.toFixed(2)} ms, ` +
        `NORMAL ${normal.toFixed(2)} ms (FULL costs ${(full - normal).toFixed(2)} ms/run, ${((full - normal) / 2).toFixed(3)} ms/fsync)`,
    );
    expect(full).toBeLessThan(200);
  });

  it('listRecords with filters on 100,000 records stays fast', () => {
    const file = join(dir, 'records.db');
    const s = open(file, 'NORMAL');
    for (let i = 0; i < 200; i++) fullRun(s, board(i, `WO-${i % 50}`));
    s.close();

    // Bulk fill to 100k records in one transaction (raw SQL, FKs off: only the records table matters for listing,
    // and audit rows are not needed for it).
    const raw = new Database(file);
    raw.pragma('foreign_keys = OFF');
    raw.pragma('synchronous = OFF');
    raw.pragma('cache_size = -262144'); // 256 MiB: keep the bulk transaction in memory until commit
    const t0 = performance.now();
    const insRec = raw.prepare(
      `INSERT INTO records (record_id, run_id, chip_id, serial_number, work_order, operator, kind, outcome,
         certificate_serial, created_at, record_json, jws, record_sha256, audit_seq)
       VALUES (?, ?, ?, ?, ?, 'op', 'initial', 'provisioned', ?, ?, ?, 'jws', ?, ?)`,
    );
    const json = JSON.stringify({ pad: 'x'.repeat(800) }); // a realistic record size (without the PEM chain)
    const salt = randomBytes(4).toString('hex');
    raw.transaction(() => {
      for (let i = 200; i < 100_000; i++) {
        const b = board(i, `WO-${i % 50}`);
        // Ids spread over the key space like UUIDs would (multiplicative hash of i).
        const id = `${((i * 2654435761) >>> 0).toString(16).padStart(8, '0')}-${salt}-${i}`;
        const ts = new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString();
        insRec.run(
          `rec-${id}`,
          `run-${id}`,
          b.chipId,
          b.serialNumber,
          b.workOrder,
          `cert-${id}`,
          ts,
          json,
          'ab'.repeat(32),
          1_000_000 + i,
        );
      }
    })();
    raw.close();
    const fill = performance.now() - t0;

    const s2 = open(file, 'FULL');
    expect(s2.countRecords()).toBe(100_000);
    const t = {
      none: best(5, () => s2.listRecords({ limit: 50 })),
      workOrder: best(5, () => s2.listRecords({ workOrder: 'WO-7', limit: 50 })),
      workOrderPage: best(5, () => s2.listRecords({ workOrder: 'WO-7', limit: 50, offset: 1000 })),
      chipId: best(5, () => s2.listRecords({ chipId: board(54_321).chipId })),
      serialNumber: best(5, () => s2.listRecords({ serialNumber: 'SN-77777' })),
      countWorkOrder: best(5, () => s2.countRecords({ workOrder: 'WO-7' })),
      countAll: best(5, () => s2.countRecords()),
      current: best(5, () => s2.findCurrentRecord(board(99_999).chipId)),
    };
    expect(s2.listRecords({ workOrder: 'WO-7', limit: 50 })).toHaveLength(50);
    expect(s2.listRecords({ serialNumber: 'SN-77777' })).toHaveLength(1);
    expect(s2.countRecords({ workOrder: 'WO-7' })).toBe(2000);
    const v0 = performance.now();
    // The bulk rows have no audit entries: verification must say so (and still walk the 1,600 real entries).
    const v = s2.verifyAudit();
    const verifyMs = performance.now() - v0;
    expect(v).toMatchObject({ ok: false, reason: 'record-unaudited' });
    s2.close();
    console.log(
      `100k records (bulk fill ${fill.toFixed(0)} ms); query ms: ` +
        Object.entries(t)
          .map(([k, ms]) => `${k} ${ms.toFixed(2)}`)
          .join(', ') +
        `; verifyAudit ${verifyMs.toFixed(0)} ms`,
    );
    for (const ms of Object.values(t)) expect(ms).toBeLessThan(500);
  });
});

/**
 * Supervisor queries at scale: a temp station DB with 1,000,000 runs (bulk insert), filtered keyset pages
 * must come back in < 50 ms including the total count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, MIGRATIONS } from './migrations.js';
import { createQueries, type StationQueries } from './queries.js';

const N = 1_000_000;
const WOS = 23;
const OPS = 41;
let dir: string;
let db: Database.Database;
let q: StationQueries;
const t0 = Date.parse('2025-01-01T00:00:00.000Z');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ls-queries-'));
  db = new Database(join(dir, 'station.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const m = migrate(db, MIGRATIONS);
  if (!m.ok) throw new Error(m.message);
  const started = performance.now();
  const ins = db.prepare(
    `INSERT INTO runs (run_id, chip_id, serial_number, port, work_order, operator, station_id, kind, supersedes_record_id,
       state, step, data_json, error_json, started_at, updated_at)
     VALUES (?, ?, ?, 'p', ?, ?, 'st', 'initial', NULL, ?, ?, '{}', ?, ?, ?)`,
  );
  db.transaction(() => {
    for (let i = 0; i < N; i++) {
      const r = i % 100;
      const state = r < 90 ? 'done' : r < 99 ? 'failed' : 'active';
      const err = state === 'failed' ? (r % 2 ? '{"code":"POLICY_VIOLATION"}' : '{"code":"PROTOCOL_TIMEOUT"}') : null;
      const start = t0 + i * 3000;
      ins.run(
        `run-${String(i).padStart(7, '0')}`,
        ((i * 2654435761) >>> 0).toString(16).padStart(8, '0') + String(i).padStart(8, '0'),
        `SN${String(i).padStart(8, '0')}`,
        `WO-${i % WOS}`,
        `op-${i % OPS}`,
        state,
        state === 'done' ? 'record' : 'baseline',
        err,
        new Date(start).toISOString(),
        new Date(start + 20_000 + (i % 17) * 1000).toISOString(),
      );
    }
  })();
  db.pragma('analysis_limit = 1000');
  db.exec('ANALYZE');
  console.log(`bulk insert of ${N} runs: ${Math.round(performance.now() - started)} ms`);
  q = createQueries(db);
}, 300_000);

afterAll(() => {
  db?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function timed<T>(label: string, fn: () => T): { value: T; ms: number } {
  fn(); // warm the statement cache and the page cache
  const s = performance.now();
  const value = fn();
  const ms = performance.now() - s;
  console.log(`${label}: ${ms.toFixed(2)} ms`);
  return { value, ms };
}

const count = (sql: string, ...p: unknown[]): number => (db.prepare(sql).get(...p) as { n: number }).n;

describe('queryLog over 1,000,000 runs', () => {
  it('filtered page (work order + outcome) with total in < 50 ms; keyset paging is consistent', () => {
    const r = timed('queryLog workOrder+outcome, first page', () =>
      q.queryLog({ workOrder: 'WO-7', outcome: 'failed' }, { limit: 50 }),
    );
    if (!r.value.ok) throw new Error(r.value.error.message);
    const page = r.value.value;
    expect(page.items).toHaveLength(50);
    expect(page.total).toBe(count("SELECT COUNT(*) AS n FROM runs WHERE work_order = 'WO-7' AND state = 'failed'"));
    expect(page.items.every((x) => x.workOrder === 'WO-7' && x.outcome === 'failed')).toBe(true);
    expect(r.ms).toBeLessThan(50);

    const next = timed('queryLog workOrder+outcome, second page (cursor)', () =>
      q.queryLog({ workOrder: 'WO-7', outcome: 'failed' }, { limit: 50, cursor: page.nextCursor! }),
    );
    if (!next.value.ok) throw new Error(next.value.error.message);
    const p2 = next.value.value.items;
    expect(p2[0]!.startedAt < page.items[49]!.startedAt).toBe(true);
    expect(new Set([...page.items, ...p2].map((x) => x.runId)).size).toBe(100);
    expect(next.ms).toBeLessThan(50);
  });

  it('other filters stay fast: operator + time window, serial prefix, chip prefix, unfiltered', () => {
    const from = new Date(t0 + 100_000 * 3000).toISOString();
    const to = new Date(t0 + 400_000 * 3000).toISOString();
    const a = timed('queryLog operator + from/to', () => q.queryLog({ operator: 'op-3', from, to }, { limit: 50 }));
    if (!a.value.ok) throw new Error(a.value.error.message);
    expect(a.value.value.total).toBe(
      count("SELECT COUNT(*) AS n FROM runs WHERE operator = 'op-3' AND started_at >= ? AND started_at <= ?", from, to),
    );
    expect(a.ms).toBeLessThan(50);

    const b = timed('queryLog serial prefix', () => q.queryLog({ text: 'SN0012345' }, { limit: 50 }));
    if (!b.value.ok) throw new Error(b.value.error.message);
    expect(b.value.value.total).toBe(10);
    expect(b.value.value.items.every((x) => x.serialNumber.startsWith('SN0012345'))).toBe(true);
    expect(b.ms).toBeLessThan(50);

    const chip = b.value.value.items[0]!.chipId.slice(0, 10);
    const c = timed('queryLog chip prefix', () => q.queryLog({ text: chip.toUpperCase() }, { limit: 50 }));
    if (!c.value.ok) throw new Error(c.value.error.message);
    expect(c.value.value.items.some((x) => x.chipId.startsWith(chip))).toBe(true);
    expect(c.ms).toBeLessThan(50);

    const d = timed('queryLog unfiltered newest page (total over 1M)', () => q.queryLog({}, { limit: 50 }));
    if (!d.value.ok) throw new Error(d.value.error.message);
    expect(d.value.value.total).toBe(N);
    expect(d.value.value.items[0]!.runId).toBe(`run-${String(N - 1).padStart(7, '0')}`);
    console.log(`unfiltered page with exact total: ${d.ms.toFixed(2)} ms`);
  });

  it('rejects a forged cursor with INPUT_INVALID', () => {
    const r = q.queryLog({}, { limit: 10, cursor: 'not-a-cursor' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('INPUT_INVALID');
  });

  it('yield figures for one work order', () => {
    const y = timed('yieldFigures one work order', () => q.yieldFigures({ workOrder: 'WO-3' }));
    const v = y.value;
    expect(v.boards).toBe(count("SELECT COUNT(*) AS n FROM runs WHERE work_order = 'WO-3' AND state <> 'active'"));
    expect(v.passedFirstTime).toBe(
      count("SELECT COUNT(*) AS n FROM runs WHERE work_order = 'WO-3' AND state = 'done'"),
    );
    expect(v.failuresByCause.map((f) => f.code).sort()).toEqual(['POLICY_VIOLATION', 'PROTOCOL_TIMEOUT']);
    expect(v.cycleTimesMs.length).toBe(v.provisioned);
  });
});

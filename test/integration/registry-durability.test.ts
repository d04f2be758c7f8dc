/**
 * Every write the registry answers is on disk before the answer leaves (docs/registry-api.md "Durability of an
 * answer"), checked on the real path: a real registry (`startRegistry`, SQLite) and its clients over HTTP in one
 * process under `strace -f` (registry-durability-worker.ts): the admin enrols a station, the station's own sync
 * client sends a signed batch and verifies the receipt (its records are then marked synced), the station imports a
 * bundle, the admin revokes the station. After each answer reached its client the worker prints a marker; the
 * registry database rebuilt as it is certain to be after a power cut at that marker (testkit/strace.ts `durableAt`:
 * the bytes written to the database and its WAL before the last fsync of each) must hold what was answered: the
 * station, the batch's records and its stored receipt, the bundle's records, the revocation.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteRegistryDb } from '../../native/registry-store/sqlite.js';
import { durableAt, traced, writeMatching, type TracedCall } from '../../testkit/strace.js';

const WORKER = join(import.meta.dirname, 'registry-durability-worker.ts');
const dir = mkdtempSync(join(tmpdir(), 'ls-regdur-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Index of the marker line of `step` and its data. */
function marker(calls: readonly TracedCall[], step: string): { at: number; data: unknown } {
  const re = new RegExp(`^MARK ${step} (.*)\\n$`);
  const at = writeMatching(calls, re);
  expect(at, `no marker ${step}`).toBeGreaterThan(0);
  return { at, data: JSON.parse(re.exec(calls[at]!.bytes.toString('utf8'))![1]!) as unknown };
}

describe('registry answers only what is on disk (strace power cut)', () => {
  it(
    'enrolment, batch (receipt), bundle import and revocation survive a power cut right after their answer',
    { timeout: 180_000 },
    async () => {
      const file = join(dir, 'registry.db');
      // The database created and migrated before the trace, closed (checkpointed): what a power cut starts from.
      const created = openSqliteRegistryDb(file);
      if (!created.ok) throw new Error(created.error.message);
      await created.value.close();
      const base = new Map<string, Buffer>();
      for (const f of [file, `${file}-wal`]) if (existsSync(f)) base.set(f, readFileSync(f));
      mkdirSync(join(dir, 'station'));
      const r = await traced(process.execPath, ['--import', 'tsx', WORKER, file, join(dir, 'station')], {
        log: join(dir, 'registry.strace'),
      });
      expect(r.code, r.out).toBe(0);
      const { calls } = r;
      const enrolled = marker(calls, 'enrolled');
      const batch = marker(calls, 'batch');
      const bundle = marker(calls, 'bundle');
      const revoked = marker(calls, 'revoked');
      expect([enrolled.at, batch.at, bundle.at, revoked.at]).toEqual(
        [enrolled.at, batch.at, bundle.at, revoked.at].sort((a, b) => a - b),
      );
      const batchIds = batch.data as string[];
      const bundleIds = bundle.data as string[];
      const stationId = (enrolled.data as { stationId: string }).stationId;

      /** The registry database after a power cut at `at` (opened as the registry opens it). */
      const cut = async (at: number, name: string) => {
        const opened = openSqliteRegistryDb(durableAt(calls, at, file, base, join(dir, `cut-${name}`)));
        if (!opened.ok) throw new Error(opened.error.message);
        const { sql } = opened.value;
        const held = new Set((await sql.all('SELECT record_id FROM records')).map((x) => String(x['record_id'])));
        const station = await sql.all('SELECT revoked_at FROM stations WHERE station_id = ?', [stationId]);
        const receipts = await sql.all('SELECT COUNT(*) AS n FROM batches WHERE response IS NOT NULL');
        const integrity = await sql.all('PRAGMA integrity_check');
        await opened.value.close();
        return {
          has: (ids: readonly string[]) => ids.filter((id) => held.has(id)),
          station: station[0],
          receipts: Number(receipts[0]!['n']),
          integrity: integrity.map((x) => x['integrity_check']).join(),
        };
      };

      // Soft: a failure names every answer that a power cut would undo, not only the first.
      const atEnrolled = await cut(enrolled.at, 'enrolled');
      expect.soft(atEnrolled.integrity).toBe('ok');
      expect.soft(atEnrolled.station, 'the enrolment answered 201 is on disk').toEqual({ revoked_at: null });

      const atBatch = await cut(batch.at, 'batch');
      expect.soft(atBatch.integrity).toBe('ok');
      expect.soft(atBatch.has(batchIds), 'the records of the receipt the station holds are on disk').toEqual(batchIds);
      expect.soft(atBatch.receipts, 'with the stored answer a retry gets').toBe(1);

      const atBundle = await cut(bundle.at, 'bundle');
      expect.soft(atBundle.has(bundleIds), 'the imported bundle is on disk').toEqual(bundleIds);
      expect.soft(atBundle.receipts).toBe(2);

      const atRevoked = await cut(revoked.at, 'revoked');
      expect.soft(atRevoked.integrity).toBe('ok');
      expect.soft(atRevoked.station?.revoked_at, 'the revocation answered is on disk').toBeTruthy();
      expect.soft(atRevoked.has([...batchIds, ...bundleIds])).toEqual([...batchIds, ...bundleIds]);
    },
  );
});

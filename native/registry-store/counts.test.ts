/**
 * Schema v9: the record and device counts `GET /v1/stats` reads are kept by a trigger, per backend (SQLite;
 * PostgreSQL with LINE_STATION_TEST_PG_URL): equal to counting the table after ingests with new chips, second
 * records of a chip, duplicates, a rolled-back batch, and (PostgreSQL) concurrent batches of the same new chip; a v7
 * database with records gets its counts computed by the migration.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestInput, IngestRecord, RegistryDb } from '../../core/hq/registry-db.js';
import { backends, createTestDb, type TestDb } from '../../testkit/registry/harness.js';
import { enrolStoreStation, ingestBatch, ingestRow, ROW_TIME } from '../../testkit/registry/ingest-rows.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
import { openSqliteRegistryDb } from './sqlite.js';

const T = ROW_TIME;
let n = 0;
const rec = (index: number, chip: string, recordId = `r-${++n}`): IngestRecord =>
  ingestRow(index, recordId, { chipId: chip, serialNumber: `SN-${chip}` });
const batch = (records: IngestRecord[]): IngestInput => ingestBatch(records, `b-${++n}`, `c-${n}`);
const noop = async () => undefined;

for (const backend of backends()) {
  describe(`registry_counts (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;

    const expectCountsTrue = async () => {
      const c = await db.counts();
      if (!c.ok) throw new Error(c.error.message);
      const real = await db.sql.all('SELECT COUNT(*) AS records, COUNT(DISTINCT chip_id) AS devices FROM records');
      expect({ records: c.value.records, devices: c.value.devices }).toEqual({
        records: Number(real[0]!['records']),
        devices: Number(real[0]!['devices']),
      });
      return c.value;
    };

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      await enrolStoreStation(db);
    });
    afterAll(async () => {
      await db?.close();
      await tdb?.cleanup();
    });

    it('counts records and distinct chips exactly as the table holds them', async () => {
      expect(await expectCountsTrue()).toMatchObject({ records: 0, devices: 0 });
      const dup = rec(2, 'chip-b');
      expect((await db.ingest(batch([rec(0, 'chip-a'), rec(1, 'chip-a'), dup]), noop)).ok).toBe(true);
      expect(await expectCountsTrue()).toMatchObject({ records: 3, devices: 2 });
      // The same record again (duplicate), a second record of a known chip, a new chip.
      expect((await db.ingest(batch([{ ...dup, index: 0 }, rec(1, 'chip-b'), rec(2, 'chip-c')]), noop)).ok).toBe(true);
      expect(await expectCountsTrue()).toMatchObject({ records: 5, devices: 3 });
      // A batch rolled back by its apply step leaves the counts as they were.
      const failed = await db.ingest(batch([rec(0, 'chip-d')]), async () => {
        throw new Error('apply failed');
      });
      expect(failed.ok).toBe(false);
      expect(await expectCountsTrue()).toMatchObject({ records: 5, devices: 3 });
    });

    it('concurrent batches of the same new chip count it once', async () => {
      const rounds = await Promise.all(
        Array.from({ length: 6 }, (_, k) => db.ingest(batch([rec(0, 'chip-shared'), rec(1, `chip-own-${k}`)]), noop)),
      );
      expect(rounds.every((r) => r.ok)).toBe(true);
      expect(await expectCountsTrue()).toMatchObject({ records: 17, devices: 10 });
    });
  });
}

describe('registry schema v9 on a v7 database (sqlite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ls-reg-v9-'));
  const path = join(dir, 'registry.db');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('computes the counts of the records already stored', async () => {
    const raw = new Database(path);
    raw.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    for (const m of SQLITE_MIGRATIONS.filter((x) => x.version <= 7)) {
      raw.exec(m.sql);
      raw.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, T);
    }
    raw.exec(`INSERT INTO stations (station_id, chain_pem, cert_sha256, ca_sha256, root_sha256, work_orders, enrolled_at)
              VALUES ('st-1', 'pem', 'c', 'a', 'r', '[]', '${T}')`);
    const ins = raw.prepare(`INSERT INTO records (record_id, station_id, sha256, chip_id, serial_number, model,
      work_order, kind, supersedes_record_id, completed_at, received_at, batch_id, record_json, jws)
      VALUES (?, 'st-1', 's', ?, ?, 'M', 'WO-1', 'initial', NULL, ?, ?, 'b', '{}', 'x.y.z')`);
    for (let i = 0; i < 30; i++) ins.run(`old-${i}`, `chip-${i % 12}`, `SN-${i % 12}`, T, T);
    raw.close();
    const opened = openSqliteRegistryDb(path);
    if (!opened.ok) throw new Error(opened.error.message);
    try {
      const c = await opened.value.counts();
      expect(c.ok && c.value).toMatchObject({ records: 30, devices: 12 });
      const idx = await opened.value.sql.all(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'records_station_%' ORDER BY name",
      );
      expect(idx.map((r) => r['name'])).toEqual(['records_station_completed', 'records_station_work_order']);
    } finally {
      await opened.value.close();
    }
  });
});

/**
 * PostgreSQL record storage (LINE_STATION_TEST_PG_URL; skipped without it): schema v10 (record texts stored
 * uncompressed) applied to a v9 database that holds records — rows, counts and compressed texts kept, the storage
 * attribute changed, new texts stored uncompressed — and ingest in chunks of prepared multi-row INSERTs (a bundle-sized
 * batch and a batch that is not a sum of one chunk size), in order, with the same accepted / duplicate / conflict
 * answers, the lifecycle step running under the connection's default planner and memory settings.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { IngestInput, IngestRecord, IngestStatus, RegistryDb } from '../../core/hq/registry-db.js';
import { createTestDb, PG_URL } from '../../testkit/registry/harness.js';
import { enrolStoreStation, ingestBatch, ingestRow, ROW_TIME } from '../../testkit/registry/ingest-rows.js';
import { PG_MIGRATIONS } from './migrations.js';
import { openPostgresRegistryDb } from './postgres.js';

const T = ROW_TIME;
const b64 = (s: string) => Buffer.from(s).toString('base64url');
/** A JWS-shaped text whose payload is `payload`, padded to about `size` characters with `filler`. */
const jwsOf = (payload: object, filler: string, size: number) =>
  `${b64('{"alg":"ES256"}')}.${b64(JSON.stringify(payload))}.${filler.repeat(Math.ceil(size / filler.length)).slice(0, size)}`;
/** ~12 KB of base64url like a real record (pglz cannot shrink it by the 25 % it requires). */
const incompressible = () => randomBytes(9000).toString('base64url');

let n = 0;
const rec = (index: number, recordId: string, jws: string, sha256 = `h-${recordId}`): IngestRecord =>
  ingestRow(index, recordId, { sha256, recordJson: '', jws });
const batch = (records: IngestRecord[], kind: IngestInput['kind'] = 'batch'): IngestInput =>
  ingestBatch(records, `b-${++n}`, `c-${n}`, kind);

const STORAGE_SQL = `SELECT c.relname, a.attname, a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  WHERE (c.relname, a.attname) IN (('records', 'jws'), ('conflicts', 'offered_jws')) ORDER BY c.relname`;
const SETTINGS_SQL = "SELECT current_setting('plan_cache_mode') AS p, current_setting('work_mem') AS w";
const STORED_SQL = `SELECT record_id, jws, pg_column_compression(jws) AS compression, pg_column_size(jws) AS size
  FROM records ORDER BY seq`;

describe.runIf(PG_URL)('registry schema v10 (postgres): record texts stored uncompressed', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  it('migrates a v9 database with records: rows, counts and compressed texts kept; new texts not compressed', async () => {
    const { url, cleanup } = await createTestDb('postgres');
    cleanups.push(cleanup);
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    await raw.query(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    for (const m of PG_MIGRATIONS.filter((x) => x.version <= 9)) {
      await raw.query(m.sql);
      await raw.query('INSERT INTO schema_migrations VALUES ($1, $2, $3)', [m.version, m.name, T]);
    }
    await raw.query(`INSERT INTO stations (station_id, chain_pem, cert_sha256, ca_sha256, root_sha256, work_orders,
      enrolled_at) VALUES ('st-1', 'pem', 'c', 'a', 'r', '[]', '${T}')`);
    const old = [
      jwsOf({ n: 'old-compressible' }, 'abcd', 12_000),
      jwsOf({ n: 'old-random' }, incompressible(), 12_000),
    ];
    for (const [i, jws] of old.entries())
      await raw.query(
        `INSERT INTO records (record_id, station_id, sha256, chip_id, serial_number, model, work_order, kind,
           supersedes_record_id, completed_at, received_at, batch_id, record_json, jws)
         VALUES ($1, 'st-1', 's', $2, $3, 'M', 'WO-1', 'initial', NULL, $4, $4, 'b', '', $5)`,
        [`old-${i}`, `chip-old-${i}`, `SN-old-${i}`, T, jws],
      );
    const before = (await raw.query(STORED_SQL)).rows;
    // Under v9 (the default EXTENDED storage) the repetitive text was compressed, the record-like one stored as is.
    expect(before.map((r) => r.compression)).toEqual(['pglz', null]);
    expect((await raw.query(STORAGE_SQL)).rows.map((r) => r.attstorage)).toEqual(['x', 'x']);
    await raw.end();

    const opened = await openPostgresRegistryDb(url, { poolSize: 2 });
    if (!opened.ok) throw new Error(opened.error.message);
    const db = opened.value;
    try {
      const x = db.sql;
      expect((await x.all('SELECT version FROM schema_migrations ORDER BY version')).map((r) => r['version'])).toEqual(
        PG_MIGRATIONS.map((m) => m.version),
      );
      expect(PG_MIGRATIONS.map((m) => m.version)).toContain(10);
      expect((await x.all(STORAGE_SQL)).map((r) => [r['relname'], r['attstorage']])).toEqual([
        ['conflicts', 'e'],
        ['records', 'e'],
      ]);
      // The stored rows are as they were (not rewritten), counts too.
      expect(await x.all(STORED_SQL)).toEqual(before);
      const counts = await db.counts();
      expect(counts.ok && counts.value).toMatchObject({ records: 2, devices: 2 });
      // A new text, however compressible, is stored as it is, and reads back byte for byte.
      const fresh = jwsOf({ n: 'new-compressible' }, 'abcd', 12_000);
      const r = await db.ingest(batch([rec(0, 'new-0', fresh)]), async () => undefined);
      expect(r.ok && r.value.kind === 'done' && [...r.value.statuses]).toEqual([[0, 'accepted']]);
      const after = await x.all(STORED_SQL);
      expect(after.slice(0, 2)).toEqual(before);
      expect(after[2]).toMatchObject({ record_id: 'new-0', jws: fresh, compression: null });
      expect(Number(after[2]!['size'])).toBeGreaterThanOrEqual(fresh.length);
      const read = await db.deviceRecords('chip-new-0');
      expect(read.ok && read.value.map((v) => [v.jws, v.recordJson])).toEqual([[fresh, '{"n":"new-compressible"}']]);
      // A conflicting offer keeps its text uncompressed as well.
      const k = await db.ingest(
        batch([rec(0, 'new-0', fresh.replace('abcd', 'abce'), 'other')]),
        async () => undefined,
      );
      expect(k.ok && k.value.kind === 'done' && [...k.value.statuses]).toEqual([[0, 'conflict']]);
      expect(await x.all('SELECT record_id, pg_column_compression(offered_jws) AS compression FROM conflicts')).toEqual(
        [{ record_id: 'new-0', compression: null }],
      );
    } finally {
      await db.close();
    }
  });
});

describe.runIf(PG_URL)('postgres ingest in chunks of prepared multi-row INSERTs', () => {
  let db: RegistryDb;
  let drop: () => Promise<void> = async () => undefined;
  afterAll(async () => {
    await db?.close();
    await drop();
  });

  const statusesOf = async (input: IngestInput, settings: string[][]) => {
    const r = await db.ingest(input, async (tx) => {
      const row = (await tx.all(SETTINGS_SQL))[0]!;
      settings.push([String(row['p']), String(row['w'])]);
    });
    if (!r.ok || r.value.kind !== 'done') throw new Error(`ingest: ${JSON.stringify(r)}`);
    return [...r.value.statuses].sort((a, b) => a[0] - b[0]).map(([, s]) => s);
  };

  it('stores a 600-record bundle in order, then answers duplicates, conflicts and new records of a 37-record batch', async () => {
    const fresh = await createTestDb('postgres');
    drop = fresh.cleanup;
    const opened = await openPostgresRegistryDb(fresh.url, { poolSize: 2 });
    if (!opened.ok) throw new Error(opened.error.message);
    db = opened.value;
    const defaults = (await db.sql.all(SETTINGS_SQL))[0]!;
    await enrolStoreStation(db);
    const text = (id: string) => jwsOf({ id }, incompressible(), 12_000);
    // 600 = 500 + 64 + 32 + 4: four statements, one of them the full-batch size.
    const first = Array.from({ length: 600 }, (_, i) => rec(i, `r-${i}`, text(`r-${i}`)));
    const settings: string[][] = [];
    expect(await statusesOf(batch(first, 'bundle'), settings)).toEqual(first.map(() => 'accepted'));
    const stored = await db.sql.all('SELECT record_id, jws FROM records ORDER BY seq');
    expect(stored.map((r) => r['record_id'])).toEqual(first.map((r) => r.recordId));
    expect(stored.every((r, i) => r['jws'] === first[i]!.jws)).toBe(true);

    // 37 records: 12 stored ones again (every 50th), 4 of them with other content; a repeat inside the batch;
    // 24 new ones (32 + 4 + 1 would be the chunks of 37 distinct ids).
    const second: IngestRecord[] = [];
    const expected: IngestStatus[] = [];
    for (let k = 0; k < 12; k++) {
      const old = first[k * 50]!;
      const changed = k % 3 === 0;
      second.push(
        changed ? rec(second.length, old.recordId, text('changed'), 'other') : { ...old, index: second.length },
      );
      expected.push(changed ? 'conflict' : 'duplicate');
    }
    for (let k = 0; k < 24; k++) {
      second.push(rec(second.length, `s-${k}`, text(`s-${k}`)));
      expected.push('accepted');
    }
    second.push({ ...second[12]!, index: second.length });
    expected.push('duplicate');
    expect(second).toHaveLength(37);
    expect(await statusesOf(batch(second), settings)).toEqual(expected);
    const all = await db.sql.all('SELECT record_id FROM records ORDER BY seq');
    expect(all.map((r) => r['record_id'])).toEqual([
      ...first.map((r) => r.recordId),
      ...Array.from({ length: 24 }, (_, k) => `s-${k}`),
    ]);
    expect(await db.sql.all('SELECT record_id FROM conflicts ORDER BY id')).toEqual(
      [0, 3, 6, 9].map((k) => ({ record_id: `r-${k * 50}` })),
    );
    const counts = await db.counts();
    expect(counts.ok && counts.value).toMatchObject({ records: 624, devices: 624, conflicts: 4 });
    // The lifecycle step ran with the connection's own settings, not the INSERTs' ones.
    const own = [String(defaults['p']), String(defaults['w'])];
    expect(settings).toEqual([own, own]);
  });
});

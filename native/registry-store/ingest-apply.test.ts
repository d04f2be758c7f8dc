/**
 * RegistryDb.ingest with an `apply` step, per backend (SQLite; PostgreSQL with LINE_STATION_TEST_PG_URL): the
 * step runs inside the batch transaction with only the newly accepted records, a throw rolls the whole batch
 * back (STORE_FAILED), and concurrent batches that hold their transaction open never interleave.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestInput, IngestRecord, RegistryDb, SqlExec } from '../../core/hq/registry-db.js';
import { backends, createTestDb, type TestDb } from '../../testkit/registry/harness.js';
import { enrolStoreStation, ingestBatch, ingestRow, ROW_TIME } from '../../testkit/registry/ingest-rows.js';

const T = ROW_TIME;
let n = 0;
const rec = (index: number, recordId = `r-${++n}`, sha256 = 'a'.repeat(64)): IngestRecord =>
  ingestRow(index, recordId, { sha256 });
const batch = (records: IngestRecord[], batchId = `b-${++n}`): IngestInput =>
  ingestBatch(records, batchId, records.map((r) => r.recordId).join(','));
/** The apply step of these tests: one device row per record (what the lifecycle does, minus the rest). */
const addDevices = async (tx: SqlExec, stored: readonly IngestRecord[]): Promise<void> => {
  for (const r of stored)
    await tx.run(
      `INSERT INTO devices (serial_number, chip_id, station_id, model, work_order, state, state_since, created_at)
       VALUES (?, ?, 'st-1', 'M', 'WO-1', 'provisioned', ?, ?)`,
      [r.serialNumber, r.chipId, T, T],
    );
};

for (const backend of backends()) {
  describe(`RegistryDb.ingest with apply (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;
    const count = async (table: string): Promise<number> =>
      Number((await db.sql.all(`SELECT COUNT(*) AS n FROM ${table}`))[0]!['n']);

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      await enrolStoreStation(db);
    });
    afterAll(async () => {
      await db?.close();
      await tdb?.cleanup();
    });

    it('apply sees only the newly accepted records; a throw rolls the whole batch back', async () => {
      const first = batch([rec(0), rec(1)]);
      const seen: string[][] = [];
      const ok1 = await db.ingest(first, async (tx, stored) => {
        seen.push(stored.map((r) => r.recordId));
        await addDevices(tx, stored);
      });
      expect(ok1.ok && ok1.value.kind).toBe('done');
      expect(seen).toEqual([[first.records[0]!.recordId, first.records[1]!.recordId]]);

      // A new batch: one duplicate, one conflict (same id, other content), one new, the new one twice.
      const fresh = rec(2);
      const second = batch([
        { ...first.records[0]!, index: 0 },
        { ...first.records[1]!, index: 1, sha256: 'b'.repeat(64) },
        fresh,
        { ...fresh, index: 3 },
      ]);
      const before = {
        records: await count('records'),
        devices: await count('devices'),
        batches: await count('batches'),
      };
      const failed = await db.ingest(second, async (tx, stored) => {
        await addDevices(tx, stored);
        throw new Error('injected');
      });
      expect(failed.ok).toBe(false);
      if (!failed.ok) {
        expect(failed.error.code).toBe('STORE_FAILED');
        expect(failed.error.message).toContain('injected');
      }
      expect({
        records: await count('records'),
        devices: await count('devices'),
        batches: await count('batches'),
      }).toEqual(before);
      expect(await count('conflicts')).toBe(0);
      expect(await db.getBatch('st-1', second.batchId)).toEqual({ ok: true, value: null });

      seen.length = 0;
      const retry = await db.ingest(second, async (tx, stored) => {
        seen.push(stored.map((r) => r.recordId));
        await addDevices(tx, stored);
      });
      expect(retry.ok).toBe(true);
      if (retry.ok && retry.value.kind === 'done')
        expect([...retry.value.statuses.entries()].sort()).toEqual([
          [0, 'duplicate'],
          [1, 'conflict'],
          [2, 'accepted'],
          [3, 'duplicate'],
        ]);
      expect(seen).toEqual([[fresh.recordId]]);
      expect(await count('records')).toBe(before.records + 1);
      expect(await count('devices')).toBe(before.devices + 1);
      // Nothing new: apply is not called at all.
      let called = false;
      const again = await db.ingest(batch([{ ...fresh, index: 0 }]), async () => {
        called = true;
      });
      expect(again.ok).toBe(true);
      expect(called).toBe(false);
    });

    it('a conflict records the hash stored before the batch, or stored earlier in the same batch', async () => {
      const old = rec(0);
      const first = await db.ingest(batch([old]), async () => {});
      expect(first.ok).toBe(true);
      // Stored before: other content under its id. New in this batch, then again with other content. New, then the same.
      const fresh = rec(2);
      const twin = rec(4);
      const second = batch([
        { ...old, index: 0, sha256: 'c'.repeat(64), jws: 'c.c.c' },
        { ...old, index: 1 },
        fresh,
        { ...fresh, index: 3, sha256: 'd'.repeat(64), jws: 'd.d.d' },
        twin,
        { ...twin, index: 5 },
      ]);
      const seen: string[][] = [];
      const r = await db.ingest(second, async (_tx, stored) => {
        seen.push(stored.map((x) => x.recordId));
      });
      expect(r.ok && r.value.kind === 'done' && [...r.value.statuses.entries()].sort()).toEqual([
        [0, 'conflict'],
        [1, 'duplicate'],
        [2, 'accepted'],
        [3, 'conflict'],
        [4, 'accepted'],
        [5, 'duplicate'],
      ]);
      expect(seen).toEqual([[fresh.recordId, twin.recordId]]);
      const rows = await db.sql.all(
        'SELECT record_id, stored_sha256, offered_sha256, offered_jws FROM conflicts WHERE batch_id = ? ORDER BY id',
        [second.batchId],
      );
      expect(rows.map((x) => ({ ...x }))).toEqual([
        {
          record_id: old.recordId,
          stored_sha256: 'a'.repeat(64),
          offered_sha256: 'c'.repeat(64),
          offered_jws: 'c.c.c',
        },
        {
          record_id: fresh.recordId,
          stored_sha256: 'a'.repeat(64),
          offered_sha256: 'd'.repeat(64),
          offered_jws: 'd.d.d',
        },
      ]);
      // What is stored is each id's first content: the conflicting offers stored nothing.
      const stored = await db.sql.all('SELECT record_id, sha256, jws FROM records WHERE record_id IN (?, ?)', [
        old.recordId,
        fresh.recordId,
      ]);
      expect(stored.map((x) => [x['sha256'], x['jws']])).toEqual([
        ['a'.repeat(64), 'x.y.z'],
        ['a'.repeat(64), 'x.y.z'],
      ]);
    });

    it('a batch of several INSERT statements: an id repeated across them, JWS given as UTF-8 bytes, stored as text', async () => {
      const old = rec(0);
      expect((await db.ingest(batch([old]), async () => {})).ok).toBe(true);
      // More records than one multi-row INSERT takes (sqlite.ts INSERT_CHUNK = 50), each JWS also as its bytes.
      const many = Array.from({ length: 120 }, (_, i) => rec(i));
      const records = [
        ...many,
        { ...many[10]!, index: 120 }, // again, after its statement: a duplicate
        { ...many[70]!, index: 121, sha256: 'e'.repeat(64), jws: 'e.e.e' }, // other content: a conflict
        { ...old, index: 122 }, // stored by an earlier batch
      ].map((r) => ({ ...r, jws: `${r.jws}.${r.recordId}`, jwsUtf8: Buffer.from(`${r.jws}.${r.recordId}`) }));
      const seen: string[] = [];
      const input = batch(records);
      const r = await db.ingest(input, async (_tx, stored) => {
        seen.push(...stored.map((x) => x.recordId));
      });
      expect(r.ok && r.value.kind).toBe('done');
      if (!r.ok || r.value.kind !== 'done') return;
      expect([...r.value.statuses.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s)).toEqual([
        ...Array<string>(120).fill('accepted'),
        'duplicate',
        'conflict',
        'duplicate',
      ]);
      expect(seen).toEqual(many.map((m) => m.recordId));
      const type = backend === 'sqlite' ? 'typeof(jws)' : "'text'";
      const rows = await db.sql.all(`SELECT record_id, ${type} AS t, jws FROM records WHERE record_id IN (?, ?, ?)`, [
        many[0]!.recordId,
        many[70]!.recordId,
        many[119]!.recordId,
      ]);
      expect(rows.map((x) => [x['record_id'], x['t'], x['jws']]).sort()).toEqual(
        [many[0]!, many[70]!, many[119]!].map((m) => [m.recordId, 'text', `x.y.z.${m.recordId}`]).sort(),
      );
      const conflicts = await db.sql.all(
        `SELECT record_id, ${backend === 'sqlite' ? 'typeof(offered_jws)' : "'text'"} AS t, offered_jws, stored_sha256
         FROM conflicts WHERE batch_id = ?`,
        [input.batchId],
      );
      expect(conflicts.map((x) => ({ ...x }))).toEqual([
        {
          record_id: many[70]!.recordId,
          t: 'text',
          offered_jws: `e.e.e.${many[70]!.recordId}`,
          stored_sha256: 'a'.repeat(64),
        },
      ]);
    });

    it('concurrent batches holding their transaction open are serialised with other lifecycle transactions', async () => {
      const before = await count('devices');
      let open = 0;
      let maxOpen = 0;
      const hold = async (tx: SqlExec, stored: readonly IngestRecord[]) => {
        maxOpen = Math.max(maxOpen, ++open);
        await new Promise((r) => setTimeout(r, 30));
        await addDevices(tx, stored);
        open--;
      };
      const results = await Promise.all([
        ...Array.from({ length: 5 }, () => db.ingest(batch([rec(0), rec(1)]), hold)),
        db.sql.transaction(async (tx) => {
          maxOpen = Math.max(maxOpen, ++open);
          await new Promise((r) => setTimeout(r, 30));
          open--;
          return Number((await tx.all('SELECT COUNT(*) AS n FROM devices'))[0]!['n']);
        }),
      ]);
      // The lifecycle transaction saw the devices of whole batches only, never half of one.
      const seenDevices = results[5] as number;
      expect((seenDevices - before) % 2).toBe(0);
      for (const r of results.slice(0, 5)) expect(r).toMatchObject({ ok: true, value: { kind: 'done' } });
      expect(maxOpen).toBe(1);
      expect(await count('devices')).toBe(before + 10);
    });
  });
}

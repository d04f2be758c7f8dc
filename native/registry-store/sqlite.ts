/**
 * RegistryDb on SQLite (better-sqlite3, WAL). Synchronous underneath: a batch is one `BEGIN IMMEDIATE`
 * transaction, and no other request interleaves inside it (single process). With an `apply` step (the device
 * lifecycle) the batch transaction becomes asynchronous and holds the connection exactly like
 * `SqlPort.transaction`: every other call waits until it commits or rolls back. WAL at `synchronous = FULL`:
 * a commit is on disk when it returns, so before the registry answers.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';
import type {
  BatchRow,
  SqlExec,
  SqlPort,
  SqlRow,
  ConflictRow,
  IngestInput,
  IngestOutcome,
  IngestRecord,
  IngestStatus,
  NewStation,
  RecordFilter,
  RegistryCounts,
  RegistryDb,
  StationRow,
  StationStats,
} from '../../core/hq/registry-db.js';
import { RECORD_JSON_IN_JWS, recordFrom } from '../../core/hq/registry-db.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
import { createPrivateFile, PRIVATE_DIR_MODE } from '../data-dir.js';
import { stationInsertArgs } from './stations-sql.js';

function guardNow<T>(what: string, fn: () => T): Result<T> {
  try {
    return ok(fn());
  } catch (e) {
    return fail('STORE_FAILED', `registry database (sqlite) ${what}: ${(e as Error).message}`);
  }
}

type Row = Record<string, unknown>;

/**
 * Records per INSERT statement of a batch. Each statement of a transaction keeps a statement journal of the pages
 * it changes that existed before it (the `records_counted` trigger makes every insert one): one statement per row
 * journaled the same table and index pages again for every record.
 */
const INSERT_CHUNK = 50;
/** One row of the records INSERT: the JWS as text, or as its UTF-8 bytes stored as the same text (CAST). */
const RECORD_ROW = '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT))';

/** A record's JWS to bind: its UTF-8 bytes when it came with them (no string to encode), else the text. */
function jwsArg(r: IngestRecord): string | Buffer {
  const b = r.jwsUtf8;
  if (!b) return r.jws;
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function stationFrom(r: Row): StationRow {
  return {
    stationId: r['station_id'] as string,
    chainPem: r['chain_pem'] as string,
    certificateSha256: r['cert_sha256'] as string,
    issuingCaSha256: r['ca_sha256'] as string,
    rootSha256: r['root_sha256'] as string,
    workOrders: JSON.parse(r['work_orders'] as string) as string[],
    enrolledAt: r['enrolled_at'] as string,
    revokedAt: (r['revoked_at'] as string | null) ?? null,
    lastSyncAt: (r['last_sync_at'] as string | null) ?? null,
  };
}

function batchFrom(r: Row): BatchRow {
  return {
    stationId: r['station_id'] as string,
    batchId: r['batch_id'] as string,
    kind: r['kind'] as 'batch' | 'bundle',
    contentSha256: r['content_sha256'] as string,
    receivedAt: r['received_at'] as string,
    response: (r['response'] as string | null) ?? null,
  };
}

/** Apply pending migrations (each in its own transaction, tracked in schema_migrations). */
function migrate(db: Database.Database): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  const done = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((r) => Number(r['version'])),
  );
  for (const m of SQLITE_MIGRATIONS) {
    if (done.has(m.version)) continue;
    const fkOn = db.pragma('foreign_keys', { simple: true }) === 1;
    if (m.rebuildsTables) db.pragma('foreign_keys = OFF');
    try {
      db.transaction(() => {
        db.exec(m.sql);
        if (m.rebuildsTables) {
          const broken = db.pragma('foreign_key_check') as Row[];
          if (broken.length)
            throw new Error(
              `migration ${m.version}: ${broken.length} foreign key violation(s), e.g. ${JSON.stringify(broken[0])}`,
            );
          const integrity = (db.pragma('integrity_check') as Row[]).map((r) => String(r['integrity_check']));
          if (integrity.join() !== 'ok')
            throw new Error(`migration ${m.version}: integrity check: ${integrity.join('; ')}`);
        }
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
          m.version,
          m.name,
          new Date().toISOString(),
        );
      }).immediate();
    } finally {
      if (m.rebuildsTables && fkOn) db.pragma('foreign_keys = ON');
    }
  }
}

/** Open (creating and migrating) a SQLite registry database. */
export function openSqliteRegistryDb(path: string): Result<RegistryDb> {
  let db: Database.Database;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
    createPrivateFile(path); // 0600, and so are the -wal and -shm files SQLite makes next to it
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    // Every commit fsyncs the WAL before it returns: the registry answers a write (a receipt, an enrolment, a
    // revocation) only after its commit, and what it answered must survive a power cut (docs/registry-api.md
    // "Durability of an answer"). NORMAL would leave the last commits to the next checkpoint's fsync.
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    // Statement journals (and temporary tables) in memory, not in temporary files written page by page.
    db.pragma('temp_store = MEMORY');
    migrate(db);
  } catch (e) {
    return fail('STORE_FAILED', `cannot open the registry database ${path}: ${(e as Error).message}`, { path });
  }
  const s = {
    getStation: db.prepare('SELECT * FROM stations WHERE station_id = ?'),
    insertStation: db.prepare(
      `INSERT INTO stations (station_id, chain_pem, cert_sha256, ca_sha256, root_sha256, work_orders, enrolled_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (station_id) DO NOTHING`,
    ),
    revoke: db.prepare('UPDATE stations SET revoked_at = COALESCE(revoked_at, ?) WHERE station_id = ?'),
    listStations: db.prepare(
      `SELECT s.*, (SELECT COUNT(*) FROM records r WHERE r.station_id = s.station_id) AS n_records,
              (SELECT COUNT(*) FROM conflicts c WHERE c.station_id = s.station_id) AS n_conflicts
       FROM stations s ORDER BY s.station_id`,
    ),
    insertNonce: db.prepare(
      'INSERT INTO nonces (station_id, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    purgeNonces: db.prepare('DELETE FROM nonces WHERE expires_at < ?'),
    getBatch: db.prepare('SELECT * FROM batches WHERE station_id = ? AND batch_id = ?'),
    insertBatch: db.prepare(
      'INSERT INTO batches (station_id, batch_id, kind, content_sha256, received_at) VALUES (?, ?, ?, ?, ?)',
    ),
    saveResponse: db.prepare(
      'UPDATE batches SET response = ? WHERE station_id = ? AND batch_id = ? AND response IS NULL',
    ),
    getRecordHash: db.prepare('SELECT sha256 FROM records WHERE record_id = ?'),
    insertConflict: db.prepare(
      `INSERT INTO conflicts (record_id, station_id, batch_id, stored_sha256, offered_sha256, offered_jws, detected_at)
       VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT), ?)`,
    ),
    touchStation: db.prepare('UPDATE stations SET last_sync_at = ? WHERE station_id = ?'),
    deviceRecords: db.prepare(
      'SELECT * FROM records WHERE chip_id = @key UNION ALL SELECT * FROM records WHERE serial_number = @key AND chip_id <> @key ORDER BY seq',
    ),
    listConflicts: db.prepare('SELECT * FROM conflicts WHERE (? IS NULL OR station_id = ?) ORDER BY id'),
  };
  let nonceCalls = 0;
  // A multi-row INSERT per chunk size (at most INSERT_CHUNK of them), RETURNING the ids it stored.
  const inserts = new Map<number, Database.Statement>();
  const insertRecords = (rows: number): Database.Statement => {
    let st = inserts.get(rows);
    if (!st) {
      st = db
        .prepare(
          `INSERT INTO records (record_id, station_id, sha256, chip_id, serial_number, model, work_order, kind,
             supersedes_record_id, completed_at, received_at, batch_id, record_json, jws)
           VALUES ${Array.from({ length: rows }, () => RECORD_ROW).join(', ')}
           ON CONFLICT (record_id) DO NOTHING RETURNING record_id`,
        )
        .pluck();
      inserts.set(rows, st);
    }
    return st;
  };

  /** The batch row, new records, conflicts, lastSyncAt; runs inside the caller's transaction. */
  const ingestBody = (input: IngestInput): IngestOutcome => {
    const existing = s.getBatch.get(input.stationId, input.batchId) as Row | undefined;
    if (existing && existing['content_sha256'] !== input.contentSha256) return { kind: 'batch-conflict' };
    if (!existing) s.insertBatch.run(input.stationId, input.batchId, input.kind, input.contentSha256, input.receivedAt);
    const statuses = new Map<number, IngestStatus>();
    // Insert first, INSERT_CHUNK rows a statement (one index probe for a new id, the usual case); only an id the
    // statement did not store (stored before, or earlier in this batch) reads its hash, in batch order.
    for (let at = 0; at < input.records.length; at += INSERT_CHUNK) {
      const chunk = input.records.slice(at, at + INSERT_CHUNK);
      const args: unknown[] = [];
      for (const r of chunk)
        args.push(
          r.recordId,
          input.stationId,
          r.sha256,
          r.chipId,
          r.serialNumber,
          r.model,
          r.workOrder,
          r.kind,
          r.supersedesRecordId,
          r.completedAt,
          input.receivedAt,
          input.batchId,
          RECORD_JSON_IN_JWS, // the record once: its JSON is the payload of `jws` (recordFrom reads it from there)
          jwsArg(r),
        );
      const inserted = new Set(insertRecords(chunk.length).all(...args) as string[]);
      for (const r of chunk) {
        // Rows go in in order: the first occurrence of an id is the one its INSERT stored.
        if (inserted.delete(r.recordId)) {
          statuses.set(r.index, 'accepted');
          continue;
        }
        const stored = s.getRecordHash.get(r.recordId) as Row;
        if (stored['sha256'] === r.sha256) {
          statuses.set(r.index, 'duplicate');
        } else {
          s.insertConflict.run(
            r.recordId,
            input.stationId,
            input.batchId,
            stored['sha256'],
            r.sha256,
            jwsArg(r),
            input.receivedAt,
          );
          statuses.set(r.index, 'conflict');
        }
      }
    }
    s.touchStation.run(input.receivedAt, input.stationId);
    return { kind: 'done', statuses };
  };

  // While a lifecycle transaction (async, SqlPort.transaction) holds the connection, every other call waits.
  const gate: { busy: Promise<void> | null } = { busy: null };
  const guard = <T>(what: string, fn: () => T): Promise<Result<T>> =>
    gate.busy ? gate.busy.then(() => guard(what, fn)) : Promise.resolve(guardNow(what, fn));
  // Prepared statements of the portable SQL, cached by text (the lifecycle runs the same few per record).
  const prepared = new Map<string, Database.Statement>();
  const prep = (q: string): Database.Statement => {
    let st = prepared.get(q);
    if (!st) {
      if (prepared.size >= 512) prepared.clear();
      prepared.set(q, (st = db.prepare(q)));
    }
    return st;
  };
  const exec: SqlExec = {
    all: (q, args = []) => Promise.resolve(prep(q).all(...args) as SqlRow[]),
    run: (q, args = []) => Promise.resolve(prep(q).run(...args).changes),
  };
  // The idle check and what follows it must run in the SAME synchronous step (no await in between): else two
  // waiters woken by one release could both see the gate free and open two transactions on one connection, or
  // a plain statement could slip into another caller's open transaction.
  const sql: SqlPort = {
    dialect: 'sqlite',
    all: async (q, args) => {
      while (gate.busy) await gate.busy;
      return exec.all(q, args);
    },
    run: async (q, args) => {
      while (gate.busy) await gate.busy;
      return exec.run(q, args);
    },
    async transaction<T>(fn: (tx: SqlExec) => Promise<T>, commit?: (value: T) => boolean): Promise<T> {
      while (gate.busy) await gate.busy;
      let release!: () => void;
      gate.busy = new Promise<void>((r) => (release = r));
      try {
        db.exec('BEGIN IMMEDIATE');
        try {
          const v = await fn(exec);
          db.exec(!commit || commit(v) ? 'COMMIT' : 'ROLLBACK');
          return v;
        } catch (e) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw e;
        }
      } finally {
        gate.busy = null;
        release();
      }
    },
  };

  const api: RegistryDb = {
    backend: 'sqlite',
    sql,
    getStation: (id) =>
      guard('getStation', () => {
        const r = s.getStation.get(id) as Row | undefined;
        return r ? stationFrom(r) : null;
      }),
    insertStation: (st: NewStation) =>
      guard('insertStation', () => {
        const info = s.insertStation.run(...stationInsertArgs(st));
        return { created: info.changes === 1 };
      }),
    revokeStation: (id, at) => guard('revokeStation', () => s.revoke.run(at, id).changes === 1),
    listStations: () =>
      guard('listStations', () =>
        (s.listStations.all() as Row[]).map((r): StationStats => ({
          ...stationFrom(r),
          records: Number(r['n_records']),
          conflicts: Number(r['n_conflicts']),
        })),
      ),
    useNonce: (stationId, nonce, expiresAt, now) =>
      guard('useNonce', () => {
        if (++nonceCalls % 256 === 0) s.purgeNonces.run(now);
        return s.insertNonce.run(stationId, nonce, expiresAt).changes === 1;
      }),
    getBatch: (stationId, batchId) =>
      guard('getBatch', () => {
        const r = s.getBatch.get(stationId, batchId) as Row | undefined;
        return r ? batchFrom(r) : null;
      }),
    ingest: async (input, apply) => {
      // The apply step makes the transaction asynchronous: it holds the connection like SqlPort.transaction.
      try {
        return ok(
          await sql.transaction(async (tx) => {
            const out = ingestBody(input);
            if (out.kind === 'done') {
              const fresh = input.records.filter((r) => out.statuses.get(r.index) === 'accepted');
              if (fresh.length) await apply(tx, fresh);
            }
            return out;
          }),
        );
      } catch (e) {
        return fail('STORE_FAILED', `registry database (sqlite) ingest: ${e instanceof Error ? e.message : String(e)}`);
      }
    },
    saveBatchResponse: (stationId, batchId, response) =>
      guard('saveBatchResponse', () => {
        s.saveResponse.run(response, stationId, batchId);
        const r = s.getBatch.get(stationId, batchId) as Row | undefined;
        if (!r || typeof r['response'] !== 'string') throw new Error(`batch ${batchId} vanished`);
        return r['response'];
      }),
    deviceRecords: (key) => guard('deviceRecords', () => (s.deviceRecords.all({ key }) as Row[]).map(recordFrom)),
    listRecords: (f: RecordFilter) =>
      guard('listRecords', () => {
        const where: string[] = [];
        const args: unknown[] = [];
        const add = (cond: string, v: unknown) => {
          where.push(cond);
          args.push(v);
        };
        if (f.stationId !== undefined) add('station_id = ?', f.stationId);
        if (f.workOrder !== undefined) add('work_order = ?', f.workOrder);
        if (f.from !== undefined) add('completed_at >= ?', f.from);
        if (f.to !== undefined) add('completed_at < ?', f.to);
        if (f.afterSeq !== undefined) add('seq > ?', f.afterSeq);
        const sql = `SELECT * FROM records ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq LIMIT ?`;
        return (db.prepare(sql).all(...args, f.limit) as Row[]).map(recordFrom);
      }),
    listConflicts: (stationId) =>
      guard('listConflicts', () =>
        (s.listConflicts.all(stationId ?? null, stationId ?? null) as Row[]).map((r): ConflictRow => ({
          recordId: r['record_id'] as string,
          stationId: r['station_id'] as string,
          batchId: r['batch_id'] as string,
          storedSha256: r['stored_sha256'] as string,
          offeredSha256: r['offered_sha256'] as string,
          detectedAt: r['detected_at'] as string,
        })),
      ),
    counts: () =>
      guard('counts', (): RegistryCounts => {
        const one = (sql: string) => Number((db.prepare(sql).get() as Row)['n']);
        return {
          stations: one('SELECT COUNT(*) AS n FROM stations'),
          // Kept by the records trigger (schema v9): no count over a million rows.
          devices: one("SELECT n FROM registry_counts WHERE name = 'devices'"),
          records: one("SELECT n FROM registry_counts WHERE name = 'records'"),
          conflicts: one('SELECT COUNT(*) AS n FROM conflicts'),
          batches: one('SELECT COUNT(*) AS n FROM batches'),
          nonces: one('SELECT COUNT(*) AS n FROM nonces'),
        };
      }),
    close: async () => {
      try {
        db.close();
      } catch {
        /* already closed */
      }
    },
  };
  return ok(api);
}

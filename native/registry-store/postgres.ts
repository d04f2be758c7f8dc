/**
 * RegistryDb on PostgreSQL (pg). A batch is one READ COMMITTED transaction serialised per (station, batch)
 * with a transaction-scoped advisory lock; records are inserted with ON CONFLICT DO NOTHING so concurrent
 * batches carrying the same record id can never store it twice. The optional `apply` step (device lifecycle)
 * runs in the same transaction under the lifecycle advisory lock.
 */
import pg from 'pg';
import type { PoolClient } from 'pg';
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';
import type {
  BatchRow,
  SqlExec,
  SqlPort,
  SqlRow,
  ConflictRow,
  IngestApply,
  IngestInput,
  IngestOutcome,
  IngestStatus,
  NewStation,
  RecordFilter,
  RegistryCounts,
  RegistryDb,
  StationRow,
  StationStats,
} from '../../core/hq/registry-db.js';
import { RECORD_JSON_IN_JWS, recordFrom } from '../../core/hq/registry-db.js';
import { MAX_BATCH_RECORDS } from '../../core/hq/protocol.js';
import { PG_MIGRATIONS } from './migrations.js';
import { stationInsertArgs } from './stations-sql.js';

type Row = Record<string, unknown>;

/** Redact the password of a connection URL for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

async function guard<T>(what: string, fn: () => Promise<T>): Promise<Result<T>> {
  try {
    return ok(await fn());
  } catch (e) {
    return fail('STORE_FAILED', `registry database (postgres) ${what}: ${(e as Error).message}`);
  }
}

function stationFrom(r: Row): StationRow {
  return {
    stationId: r['station_id'] as string,
    chainPem: r['chain_pem'] as string,
    certificateSha256: r['cert_sha256'] as string,
    issuingCaSha256: r['ca_sha256'] as string,
    rootSha256: r['root_sha256'] as string,
    workOrders: r['work_orders'] as string[],
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

async function tx<T>(pool: pg.Pool, fn: (c: PoolClient) => Promise<T>, commit?: (value: T) => boolean): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const v = await fn(c);
    await c.query(!commit || commit(v) ? 'COMMIT' : 'ROLLBACK');
    return v;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

/**
 * A device's records by chip id or serial number, oldest first: two index lookups joined, never one `OR` (with the
 * statistics of a freshly loaded table the planner chose to walk the whole `seq` index for `chip_id = $1 OR
 * serial_number = $1 ORDER BY seq`: ~45 ms at a million records). A record whose chip id is the key is in the first
 * arm only.
 */
const DEVICE_RECORDS_PG =
  'SELECT * FROM records WHERE chip_id = $1 UNION ALL SELECT * FROM records WHERE serial_number = $1 AND chip_id <> $1 ORDER BY seq';

/**
 * Rows per INSERT of a batch's records, largest first: a batch goes in as few statements as these sizes allow (a full
 * batch of MAX_BATCH_RECORDS is one statement, 37 records are 32 + 4 + 1, a bundle of 2,000 is four), each a named
 * prepared statement of that many VALUES rows, so a connection parses and plans each size once. Plain parameters,
 * not arrays: text arrays of ~12 KB record texts cost the server their parsing and `unnest` plus a sort of the rows
 * by ordinal past `work_mem`, and the client escaping every element (measured: docs/benchmarks.md "PostgreSQL
 * ingest"). 500 rows of 10 parameters stay far below the protocol's 65,535.
 */
const INSERT_CHUNKS = [...new Set([MAX_BATCH_RECORDS, 256, 128, 64, 32, 16, 8, 4, 2, 1])].sort((a, b) => b - a);
/** Parameters of one row in insertRecordsSql (after the four shared ones). */
const ROW_PARAMS = 10;
const insertSql = new Map<number, string>();

/** The INSERT of `n` records: $1 station, $2 received at, $3 batch id, $4 record_json, then ROW_PARAMS per row. */
function insertRecordsSql(n: number): string {
  let sql = insertSql.get(n);
  if (sql) return sql;
  const rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = 4 + i * ROW_PARAMS;
    rows.push(
      `($${b + 1}, $1, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}, $${b + 8}, $${b + 9}, $2, $3, $4, $${b + 10})`,
    );
  }
  sql = `INSERT INTO records (record_id, station_id, sha256, chip_id, serial_number, model, work_order, kind,
     supersedes_record_id, completed_at, received_at, batch_id, record_json, jws)
   VALUES ${rows.join(',\n')}
   ON CONFLICT (record_id) DO NOTHING RETURNING record_id`;
  insertSql.set(n, sql);
  return sql;
}

/**
 * Insert a batch's records (ids distinct) in their order, ON CONFLICT DO NOTHING; answers the ids this transaction
 * stored. The record's JSON is not stored again (RECORD_JSON_IN_JWS: it is the payload of `jws`, recordFrom).
 */
async function insertRecords(
  c: PoolClient,
  input: IngestInput,
  rs: readonly IngestInput['records'][number][],
): Promise<Set<string>> {
  const inserted = new Set<string>();
  // Only for these INSERTs (back to the defaults below, before anything else of the transaction runs):
  // - a generic plan from the first execution: a custom plan (PostgreSQL's choice for the first five executions on
  //   a connection) copies every parameter value into the plan as a constant, ~6 MB for a full batch (measured: a
  //   sixth of the backend's CPU);
  // - room for the statement trigger's transition table (schema v9, registry_count_records: whole rows, ~12 KB
  //   each) in memory: at the default work_mem of 4 MB a full batch spilled it to a temporary file, written once
  //   and read twice. Bounded by what the statement carries (MAX_BATCH_RECORDS rows).
  await c.query("SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL work_mem = '64MB'");
  let at = 0;
  while (at < rs.length) {
    const n = INSERT_CHUNKS.find((k) => k <= rs.length - at)!;
    const values: unknown[] = [input.stationId, input.receivedAt, input.batchId, RECORD_JSON_IN_JWS];
    for (const r of rs.slice(at, at + n))
      values.push(
        r.recordId,
        r.sha256,
        r.chipId,
        r.serialNumber,
        r.model,
        r.workOrder,
        r.kind,
        r.supersedesRecordId,
        r.completedAt,
        r.jws,
      );
    const res = await c.query({ name: `ls_insert_records_${n}`, text: insertRecordsSql(n), values });
    for (const row of res.rows as Row[]) inserted.add(row['record_id'] as string);
    at += n;
  }
  await c.query('SET LOCAL plan_cache_mode TO DEFAULT; SET LOCAL work_mem TO DEFAULT');
  return inserted;
}

const MIGRATION_LOCK = 0x4c53_5247; // "LSRG"
/** Serialises lifecycle transactions (registry/store/lifecycle.ts). */
const LIFECYCLE_LOCK = 0x4c53_4c43; // "LSLC"

async function migrate(pool: pg.Pool): Promise<void> {
  await tx(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await c.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    const done = new Set(
      (await c.query('SELECT version FROM schema_migrations')).rows.map((r: Row) => Number(r['version'])),
    );
    for (const m of PG_MIGRATIONS) {
      if (done.has(m.version)) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        new Date().toISOString(),
      ]);
    }
  });
}

/** Open (and migrate) a PostgreSQL registry database from a `postgres://` URL. */
export async function openPostgresRegistryDb(
  url: string,
  opts: { poolSize?: number } = {},
): Promise<Result<RegistryDb>> {
  const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 8, connectionTimeoutMillis: 10_000 });
  // An idle client that loses its connection emits 'error' on the pool; without a listener it would crash the process.
  pool.on('error', () => undefined);
  try {
    await migrate(pool);
  } catch (e) {
    await pool.end().catch(() => undefined);
    return fail('STORE_FAILED', `cannot open the registry database ${redactUrl(url)}: ${(e as Error).message}`);
  }
  let nonceCalls = 0;
  const q = async (sql: string, args: unknown[] = []): Promise<Row[]> => (await pool.query(sql, args)).rows as Row[];

  const dollar = (q: string): string => {
    let n = 0;
    return q.replace(/\?/g, () => `$${++n}`);
  };
  const execOn = (c: pg.Pool | PoolClient): SqlExec => ({
    all: async (q, args = []) => (await c.query(dollar(q), [...args])).rows as SqlRow[],
    run: async (q, args = []) => (await c.query(dollar(q), [...args])).rowCount ?? 0,
  });
  const sql: SqlPort = {
    dialect: 'postgres',
    ...execOn(pool),
    transaction: <T>(fn: (t: SqlExec) => Promise<T>, commit?: (value: T) => boolean) =>
      tx(
        pool,
        async (c) => {
          await c.query('SELECT pg_advisory_xact_lock($1)', [LIFECYCLE_LOCK]);
          return fn(execOn(c));
        },
        commit,
      ),
  };

  const api: RegistryDb = {
    backend: 'postgres',
    sql,
    getStation: (id) =>
      guard('getStation', async () => {
        const r = (await q('SELECT * FROM stations WHERE station_id = $1', [id]))[0];
        return r ? stationFrom(r) : null;
      }),
    insertStation: (st: NewStation) =>
      guard('insertStation', async () => {
        const r = await pool.query(
          `INSERT INTO stations (station_id, chain_pem, cert_sha256, ca_sha256, root_sha256, work_orders, enrolled_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (station_id) DO NOTHING`,
          stationInsertArgs(st),
        );
        return { created: r.rowCount === 1 };
      }),
    revokeStation: (id, at) =>
      guard('revokeStation', async () => {
        const r = await pool.query('UPDATE stations SET revoked_at = COALESCE(revoked_at, $1) WHERE station_id = $2', [
          at,
          id,
        ]);
        return r.rowCount === 1;
      }),
    listStations: () =>
      guard('listStations', async () =>
        (
          await q(
            `SELECT s.*, (SELECT COUNT(*) FROM records r WHERE r.station_id = s.station_id)::int AS n_records,
                    (SELECT COUNT(*) FROM conflicts c WHERE c.station_id = s.station_id)::int AS n_conflicts
             FROM stations s ORDER BY s.station_id`,
          )
        ).map((r): StationStats => ({
          ...stationFrom(r),
          records: Number(r['n_records']),
          conflicts: Number(r['n_conflicts']),
        })),
      ),
    useNonce: (stationId, nonce, expiresAt, now) =>
      guard('useNonce', async () => {
        if (++nonceCalls % 256 === 0) await pool.query('DELETE FROM nonces WHERE expires_at < $1', [now]);
        const r = await pool.query(
          'INSERT INTO nonces (station_id, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
          [stationId, nonce, expiresAt],
        );
        return r.rowCount === 1;
      }),
    getBatch: (stationId, batchId) =>
      guard('getBatch', async () => {
        const r = (await q('SELECT * FROM batches WHERE station_id = $1 AND batch_id = $2', [stationId, batchId]))[0];
        return r ? batchFrom(r) : null;
      }),
    ingest: (input: IngestInput, apply: IngestApply) =>
      guard('ingest', () =>
        tx(pool, async (c): Promise<IngestOutcome> => {
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${input.stationId}\n${input.batchId}`]);
          const existing = (
            await c.query('SELECT content_sha256 FROM batches WHERE station_id = $1 AND batch_id = $2', [
              input.stationId,
              input.batchId,
            ])
          ).rows[0] as Row | undefined;
          if (existing && existing['content_sha256'] !== input.contentSha256) return { kind: 'batch-conflict' };
          if (!existing)
            await c.query(
              'INSERT INTO batches (station_id, batch_id, kind, content_sha256, received_at) VALUES ($1, $2, $3, $4, $5)',
              [input.stationId, input.batchId, input.kind, input.contentSha256, input.receivedAt],
            );
          // First occurrence of each id goes to the INSERT; later ones in the same batch compare with what is stored.
          const first = new Map<string, (typeof input.records)[number]>();
          for (const r of input.records) if (!first.has(r.recordId)) first.set(r.recordId, r);
          const inserted = await insertRecords(c, input, [...first.values()]);
          // The stored hash of every id this INSERT did not store and of every id the batch repeats (a duplicate or
          // a conflict): usually none, and then no query.
          const stored = new Map<string, string>();
          const others: string[] = [];
          const once = new Set<string>();
          for (const r of input.records) {
            if (!inserted.has(r.recordId) || once.has(r.recordId)) others.push(r.recordId);
            once.add(r.recordId);
          }
          if (others.length) {
            const res = await c.query('SELECT record_id, sha256 FROM records WHERE record_id = ANY($1::text[])', [
              others,
            ]);
            for (const r of res.rows as Row[]) stored.set(r['record_id'] as string, r['sha256'] as string);
          }
          const statuses = new Map<number, IngestStatus>();
          const conflicts: Array<(typeof input.records)[number] & { storedSha256: string }> = [];
          for (const r of input.records) {
            if (inserted.delete(r.recordId)) statuses.set(r.index, 'accepted');
            else if (stored.get(r.recordId) === r.sha256) statuses.set(r.index, 'duplicate');
            else {
              statuses.set(r.index, 'conflict');
              conflicts.push({ ...r, storedSha256: stored.get(r.recordId) ?? '' });
            }
          }
          for (const k of conflicts)
            await c.query(
              `INSERT INTO conflicts (record_id, station_id, batch_id, stored_sha256, offered_sha256, offered_jws, detected_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)`,
              [k.recordId, input.stationId, input.batchId, k.storedSha256, k.sha256, k.jws, input.receivedAt],
            );
          const fresh = input.records.filter((r) => statuses.get(r.index) === 'accepted');
          if (fresh.length) {
            // The lifecycle tables are serialised like SqlPort.transaction. Lock order: batch lock, then this one
            // (lifecycle transactions never take a batch lock). The station row is updated only AFTER it: a
            // lifecycle transaction (station key rotation) takes this lock and then updates the station row, so
            // updating the row first here could deadlock with it.
            await c.query('SELECT pg_advisory_xact_lock($1)', [LIFECYCLE_LOCK]);
            await apply(execOn(c), fresh);
          }
          await c.query('UPDATE stations SET last_sync_at = $1 WHERE station_id = $2', [
            input.receivedAt,
            input.stationId,
          ]);
          return { kind: 'done', statuses };
        }),
      ),
    saveBatchResponse: (stationId, batchId, response) =>
      guard('saveBatchResponse', async () => {
        const r = (
          await q(
            `UPDATE batches SET response = COALESCE(response, $1) WHERE station_id = $2 AND batch_id = $3 RETURNING response`,
            [response, stationId, batchId],
          )
        )[0];
        if (!r || typeof r['response'] !== 'string') throw new Error(`batch ${batchId} vanished`);
        return r['response'];
      }),
    deviceRecords: (key) => guard('deviceRecords', async () => (await q(DEVICE_RECORDS_PG, [key])).map(recordFrom)),
    listRecords: (f: RecordFilter) =>
      guard('listRecords', async () => {
        const where: string[] = [];
        const args: unknown[] = [];
        const add = (cond: string, v: unknown) => {
          args.push(v);
          where.push(cond.replace('?', `$${args.length}`));
        };
        if (f.stationId !== undefined) add('station_id = ?', f.stationId);
        if (f.workOrder !== undefined) add('work_order = ?', f.workOrder);
        if (f.from !== undefined) add('completed_at >= ?', f.from);
        if (f.to !== undefined) add('completed_at < ?', f.to);
        if (f.afterSeq !== undefined) add('seq > ?', f.afterSeq);
        args.push(f.limit);
        const sql = `SELECT * FROM records ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq LIMIT $${args.length}`;
        return (await q(sql, args)).map(recordFrom);
      }),
    listConflicts: (stationId) =>
      guard('listConflicts', async () =>
        (
          await q('SELECT * FROM conflicts WHERE ($1::text IS NULL OR station_id = $1) ORDER BY id', [
            stationId ?? null,
          ])
        ).map((r): ConflictRow => ({
          recordId: r['record_id'] as string,
          stationId: r['station_id'] as string,
          batchId: r['batch_id'] as string,
          storedSha256: r['stored_sha256'] as string,
          offeredSha256: r['offered_sha256'] as string,
          detectedAt: r['detected_at'] as string,
        })),
      ),
    counts: () =>
      guard('counts', async (): Promise<RegistryCounts> => {
        const r = (
          await q(`SELECT (SELECT COUNT(*) FROM stations)::int AS stations,
                          (SELECT n FROM registry_counts WHERE name = 'devices')::int AS devices,
                          (SELECT n FROM registry_counts WHERE name = 'records')::int AS records,
                          (SELECT COUNT(*) FROM conflicts)::int AS conflicts,
                          (SELECT COUNT(*) FROM batches)::int AS batches,
                          (SELECT COUNT(*) FROM nonces)::int AS nonces`)
        )[0]!;
        return {
          stations: Number(r['stations']),
          devices: Number(r['devices']),
          records: Number(r['records']),
          conflicts: Number(r['conflicts']),
          batches: Number(r['batches']),
          nonces: Number(r['nonces']),
        };
      }),
    close: async () => {
      await pool.end().catch(() => undefined);
    },
  };
  return ok(api);
}

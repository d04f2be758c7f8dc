/**
 * The Store port on SQLite (better-sqlite3): runs, issued certificates, signed records and the hash-chained,
 * append-only audit log. Every mutating method is ONE transaction that also appends its audit entry and
 * advances the chain head, so a crash or power loss at any instant leaves all of the change or none of it.
 *
 * Store methods are synchronous and return values (the port has no Result): a misuse (e.g. a second active run
 * for a chip, which the engine must avoid) or a database failure throws a `StoreError` carrying a STORE_FAILED
 * StationError. Opening the database returns a Result.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { auditEntryPreimage, checkChainStep, GENESIS_HEAD, type ChainHead } from '../../core/provisioning/audit.js';
import { canonicalJson } from '../../core/canonical.js';
import {
  failedIssuancePayloadJson,
  failedIssuanceRequestId,
  FAILED_ISSUANCE_REASON,
} from '../../core/failed-issuance.js';
import { fail, stationError, type StationError } from '../../core/errors.js';
import type { StepName } from '../../core/model.js';
import { systemClock, type Clock, type Logger } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { createPrivateFile } from '../data-dir.js';
import type {
  AuditEntry,
  AuditVerification,
  IssuedCertificate,
  NewRun,
  RecordQuery,
  RunData,
  RunRow,
  Store,
  StoredRecord,
} from '../../core/provisioning/store.js';
import { migrate, MIGRATIONS, SCHEMA_VERSION } from './migrations.js';

/** Why a Store method refused or failed. */
export type StoreErrorReason =
  | 'active-run-exists' // createRun for a chip that already has an active run
  | 'run-not-found'
  | 'run-not-active' // checkpoint/completeRun/failRun on a done or failed run
  | 'invalid-argument' // caller data inconsistent (ids, hashes, paging)
  | 'supersede-failed' // rotation: the record to supersede is missing, of another chip, or already superseded
  | 'read-only' // mutation on a store opened read-only
  | 'corrupt' // a stored value cannot be decoded
  | 'sqlite'; // any other database error (constraint, I/O, busy)

/**
 * Thrown by Store methods (the port is synchronous and value-returning). `error` is the StationError
 * (code STORE_FAILED) to surface; `reason` is the machine-readable cause.
 */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code = 'STORE_FAILED' as const;
  readonly error: StationError;
  constructor(
    readonly reason: StoreErrorReason,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.error = stationError('STORE_FAILED', message, { reason, ...details });
  }
}

/** True if `x` is a StoreError (optionally of the given reason). */
export function isStoreError(x: unknown, reason?: StoreErrorReason): x is StoreError {
  return x instanceof StoreError && (reason === undefined || x.reason === reason);
}

export interface OpenStoreOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Open without writing (no migrations; mutations throw StoreError 'read-only'). */
  readonly readonly?: boolean;
  /**
   * SQLite synchronous level. FULL (default) fsyncs the WAL on every commit: a committed checkpoint survives
   * power loss. NORMAL is only for benchmarks/tests (a power loss may lose the last commits, never corrupt).
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Milliseconds to wait for a lock held by another connection (default 5000). */
  readonly busyTimeoutMs?: number;
}

export type SqliteStore = Store & {
  readonly path: string;
  /** Rows of PRAGMA integrity_check (['ok'] when healthy). */
  integrityCheck(): string[];
};

// ------------------------------------------------------------------------------------------------ rows

interface RunDbRow {
  run_id: string;
  chip_id: string;
  serial_number: string;
  port: string;
  work_order: string;
  operator: string;
  station_id: string;
  kind: string;
  supersedes_record_id: string | null;
  state: string;
  step: string;
  data_json: string;
  error_json: string | null;
  started_at: string;
  updated_at: string;
}

interface RecordDbRow {
  record_id: string;
  run_id: string;
  chip_id: string;
  serial_number: string;
  work_order: string;
  operator: string;
  kind: string;
  supersedes_record_id: string | null;
  outcome: string;
  certificate_serial: string;
  created_at: string;
  record_json: string;
  jws: string;
  record_sha256: string;
}

interface CertDbRow {
  serial: string;
  sha256: string;
  chip_id: string;
  run_id: string;
  der: Buffer;
  not_before: string;
  not_after: string;
  issued_at: string;
}

interface AuditDbRow {
  seq: number;
  ts: string;
  type: string;
  run_id: string | null;
  payload_json: string;
  prev_hash: string;
  hash: string;
}

interface VerifyDbRow extends AuditDbRow {
  r_record_id: string | null;
  r_run_id: string | null;
  r_chip_id: string | null;
  r_certificate_serial: string | null;
  r_supersedes_record_id: string | null;
  r_record_sha256: string | null;
  r_record_json: string | null;
}

const RECORD_COLS = `record_id, run_id, chip_id, serial_number, work_order, operator, kind, supersedes_record_id,
  outcome, certificate_serial, created_at, record_json, jws, record_sha256`;

const MAX_PAGE = 1000;
const MAX_AUDIT_PAGE = 10_000;

/** SHA-256 (hex) of a UTF-8 string or bytes, synchronously (node:crypto). */
export function sha256HexSync(data: string | Uint8Array): string {
  return createHash('sha256')
    .update(typeof data === 'string' ? Buffer.from(data, 'utf8') : data)
    .digest('hex');
}

/** Same value as core/provisioning/audit.ts auditEntryHash, computed synchronously with node:crypto. */
export function auditEntryHashSync(prevHash: string, e: Parameters<typeof auditEntryPreimage>[1]): string {
  return sha256HexSync(auditEntryPreimage(prevHash, e));
}

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (cause) {
    throw new StoreError('corrupt', `stored ${what} is not valid JSON`, { what }, { cause });
  }
}

function toRun(r: RunDbRow): RunRow {
  return {
    runId: r.run_id,
    chipId: r.chip_id,
    serialNumber: r.serial_number,
    port: r.port,
    workOrder: r.work_order,
    operator: r.operator,
    stationId: r.station_id,
    kind: r.kind as RunRow['kind'],
    supersedesRecordId: r.supersedes_record_id,
    state: r.state as RunRow['state'],
    step: r.step as StepName,
    data: parseJson<RunData>(r.data_json, `data of run ${r.run_id}`),
    error: r.error_json === null ? null : parseJson<RunRow['error']>(r.error_json, `error of run ${r.run_id}`),
    startedAt: r.started_at,
    updatedAt: r.updated_at,
  };
}

function toRecord(r: RecordDbRow): StoredRecord {
  return {
    recordId: r.record_id,
    runId: r.run_id,
    chipId: r.chip_id,
    serialNumber: r.serial_number,
    workOrder: r.work_order,
    operator: r.operator,
    kind: r.kind as StoredRecord['kind'],
    supersedesRecordId: r.supersedes_record_id,
    outcome: r.outcome as StoredRecord['outcome'],
    certificateSerial: r.certificate_serial,
    createdAt: r.created_at,
    recordJson: r.record_json,
    jws: r.jws,
    recordSha256: r.record_sha256,
  };
}

function toCert(r: CertDbRow): IssuedCertificate {
  return {
    serialNumber: r.serial,
    sha256: r.sha256,
    chipId: r.chip_id,
    runId: r.run_id,
    der: new Uint8Array(r.der),
    notBefore: r.not_before,
    notAfter: r.not_after,
    issuedAt: r.issued_at,
  };
}

function toAudit(r: AuditDbRow): AuditEntry {
  return {
    seq: r.seq,
    ts: r.ts,
    type: r.type,
    runId: r.run_id,
    payload: parseJson<Record<string, unknown>>(r.payload_json, `payload of audit entry ${r.seq}`),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

function checkPaging(v: number | undefined, def: number, max: number, what: string): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v < 0)
    throw new StoreError('invalid-argument', `${what} must be a non-negative integer`);
  return Math.min(v, max);
}

function sqliteCode(e: unknown): string | undefined {
  return e instanceof Database.SqliteError ? e.code : undefined;
}

/** Re-throw anything from SQLite as a StoreError (StoreErrors pass through). */
function wrap(e: unknown, op: string): StoreError {
  if (e instanceof StoreError) return e;
  const code = sqliteCode(e);
  if (code === 'SQLITE_READONLY')
    return new StoreError('read-only', `${op}: the store is read-only`, { op }, { cause: e });
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' && String((e as Error).message).includes('runs.chip_id')) {
    return new StoreError('active-run-exists', `${op}: the chip already has an active run`, { op }, { cause: e });
  }
  if (e instanceof TypeError) return new StoreError('invalid-argument', `${op}: ${e.message}`, { op }, { cause: e });
  const message = e instanceof Error ? e.message : String(e);
  return new StoreError('sqlite', `${op}: ${message}`, { op, sqliteCode: code }, { cause: e });
}

function recordFilter(q: Omit<RecordQuery, 'limit' | 'offset'>): { where: string; params: string[] } {
  const clauses: string[] = [];
  const params: string[] = [];
  if (q.chipId !== undefined) {
    clauses.push('chip_id = ?');
    params.push(q.chipId);
  }
  if (q.serialNumber !== undefined) {
    clauses.push('serial_number = ?');
    params.push(q.serialNumber);
  }
  if (q.workOrder !== undefined) {
    clauses.push('work_order = ?');
    params.push(q.workOrder);
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

// ------------------------------------------------------------------------------------------------ open

/**
 * Open (creating if needed) the station database at `file`, apply pending migrations and return the Store.
 * Fails with STORE_FAILED when the file cannot be opened, is not a station database, has a schema newer than
 * this software knows, or (read-only) has not been migrated yet.
 */
export function openStore(file: string, opts: OpenStoreOptions = {}): Result<SqliteStore> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger;
  const readonly = opts.readonly === true;
  let db: Database.Database;
  try {
    if (!readonly) createPrivateFile(file); // 0600, and so are the -wal and -shm files SQLite makes next to it
    db = new Database(file, { readonly, fileMustExist: readonly });
  } catch (e) {
    return fail('STORE_FAILED', `cannot open the station database ${file}: ${String((e as Error).message ?? e)}`, {
      file,
      sqliteCode: sqliteCode(e),
    });
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    if (!readonly) {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`cannot switch to WAL journal mode (got ${String(mode)})`);
    }
    db.pragma(`synchronous = ${opts.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
    db.pragma('foreign_keys = ON');
    if (readonly) {
      const v = db.pragma('user_version', { simple: true }) as number;
      if (v !== SCHEMA_VERSION) {
        db.close();
        return fail(
          'STORE_FAILED',
          v > SCHEMA_VERSION
            ? `database schema version ${v} is newer than this station software supports (${SCHEMA_VERSION}); upgrade the station software`
            : `database schema version ${v} needs migration to ${SCHEMA_VERSION}; open it read-write once`,
          { file, userVersion: v, known: SCHEMA_VERSION },
        );
      }
    } else {
      const m = migrate(db, MIGRATIONS, logger);
      if (!m.ok) {
        db.close();
        return fail('STORE_FAILED', m.message, { file, userVersion: m.from, known: SCHEMA_VERSION });
      }
    }
  } catch (e) {
    try {
      db.close();
    } catch {
      // already failing; the open error is what matters
    }
    return fail('STORE_FAILED', `cannot use the station database ${file}: ${String((e as Error).message ?? e)}`, {
      file,
      sqliteCode: sqliteCode(e),
    });
  }
  logger?.log('debug', 'station database opened', { file, schemaVersion: SCHEMA_VERSION, readonly });
  return ok(createSqliteStore(db, file, clock, logger));
}

// ------------------------------------------------------------------------------------------------ store

function createSqliteStore(db: Database.Database, file: string, clock: Clock, logger: Logger | undefined): SqliteStore {
  const now = (): string => clock.now().toISOString();

  const st = {
    head: db.prepare('SELECT seq, hash FROM audit_head WHERE id = 1'),
    insertAudit: db.prepare(
      'INSERT INTO audit_log (seq, ts, type, run_id, payload_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    advanceHead: db.prepare('UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1'),
    getRun: db.prepare('SELECT * FROM runs WHERE run_id = ?'),
    activeRun: db.prepare("SELECT * FROM runs WHERE chip_id = ? AND state = 'active'"),
    insertRun: db.prepare(
      `INSERT INTO runs (run_id, chip_id, serial_number, port, work_order, operator, station_id, kind,
        supersedes_record_id, state, step, data_json, error_json, started_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', 'identify', '{}', NULL, ?, ?)`,
    ),
    updateRunStep: db.prepare('UPDATE runs SET step = ?, data_json = ?, updated_at = ? WHERE run_id = ?'),
    finishRun: db.prepare("UPDATE runs SET state = 'done', step = 'record', updated_at = ? WHERE run_id = ?"),
    failRun: db.prepare("UPDATE runs SET state = 'failed', error_json = ?, updated_at = ? WHERE run_id = ?"),
    insertCert: db.prepare(
      `INSERT INTO issued_certificates (serial, sha256, chip_id, run_id, der, not_before, not_after, issued_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    insertRecord: db.prepare(
      `INSERT INTO records (${RECORD_COLS}, superseded_by, audit_seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`,
    ),
    supersede: db.prepare(
      'UPDATE records SET superseded_by = ? WHERE record_id = ? AND chip_id = ? AND superseded_by IS NULL',
    ),
    supersedable: db.prepare('SELECT chip_id, superseded_by FROM records WHERE record_id = ?'),
    getRecord: db.prepare(`SELECT ${RECORD_COLS} FROM records WHERE record_id = ?`),
    currentRecord: db.prepare(
      `SELECT ${RECORD_COLS} FROM records WHERE chip_id = ? AND superseded_by IS NULL ORDER BY audit_seq DESC LIMIT 1`,
    ),
    listAudit: db.prepare('SELECT * FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT ?'),
    certsAll: db.prepare('SELECT * FROM issued_certificates ORDER BY issued_at, serial'),
    certsChip: db.prepare('SELECT * FROM issued_certificates WHERE chip_id = ? ORDER BY issued_at, serial'),
    // Certificates of a run that no record holds (a failed run's: revoked at once, docs/lifecycle.md).
    unrecordedCerts: db.prepare(
      `SELECT * FROM issued_certificates c WHERE c.run_id = ?
         AND NOT EXISTS (SELECT 1 FROM records r WHERE r.certificate_serial = c.serial) ORDER BY c.issued_at, c.serial`,
    ),
    queueFailedIssuance: db.prepare(
      `INSERT INTO revocation_requests (request_id, kind, chip_id, serial_number, certificate_serial, reason, record_id,
         jws, state, detail, created_at, updated_at, run_id, payload_json)
       VALUES (?, 'failed-issuance', ?, ?, ?, ?, NULL, NULL, 'queued', NULL, ?, ?, ?, ?)`,
    ),
  };

  /** Append one entry at the chain head and advance the head. Call inside a transaction. */
  function append(type: string, payload: Readonly<Record<string, unknown>>, runId: string | null): AuditEntry {
    const head = st.head.get() as ChainHead | undefined;
    if (!head) throw new StoreError('corrupt', 'the audit head row is missing');
    let payloadJson: string;
    try {
      payloadJson = canonicalJson(payload);
    } catch (cause) {
      throw new StoreError(
        'invalid-argument',
        `audit payload of ${type} is not plain JSON: ${String(cause)}`,
        { type },
        { cause },
      );
    }
    const canonicalPayload = JSON.parse(payloadJson) as Record<string, unknown>;
    const entry = { seq: head.seq + 1, ts: now(), type, runId, payload: canonicalPayload };
    const hash = auditEntryHashSync(head.hash, entry);
    st.insertAudit.run(entry.seq, entry.ts, type, runId, payloadJson, head.hash, hash);
    st.advanceHead.run(entry.seq, hash);
    return { ...entry, prevHash: head.hash, hash };
  }

  function mustGetActiveRun(runId: string, op: string): RunDbRow {
    const row = st.getRun.get(runId) as RunDbRow | undefined;
    if (!row) throw new StoreError('run-not-found', `${op}: no run ${runId}`, { runId });
    if (row.state !== 'active') {
      throw new StoreError('run-not-active', `${op}: run ${runId} is ${row.state}`, { runId, state: row.state });
    }
    return row;
  }

  /** Run `fn` in one IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks). */
  function tx<T>(op: string, fn: () => T): T {
    try {
      return db.transaction(fn).immediate();
    } catch (e) {
      const se = wrap(e, op);
      logger?.log('error', 'store operation failed', { op, reason: se.reason, message: se.message });
      throw se;
    }
  }

  function read<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw wrap(e, op);
    }
  }

  const store: SqliteStore = {
    path: file,

    findCurrentRecord(chipId) {
      return read('findCurrentRecord', () => {
        const r = st.currentRecord.get(chipId) as RecordDbRow | undefined;
        return r ? toRecord(r) : null;
      });
    },

    findActiveRun(chipId) {
      return read('findActiveRun', () => {
        const r = st.activeRun.get(chipId) as RunDbRow | undefined;
        return r ? toRun(r) : null;
      });
    },

    getRun(runId) {
      return read('getRun', () => {
        const r = st.getRun.get(runId) as RunDbRow | undefined;
        return r ? toRun(r) : null;
      });
    },

    createRun(run: NewRun) {
      return tx('createRun', () => {
        const active = st.activeRun.get(run.chipId) as RunDbRow | undefined;
        if (active) {
          throw new StoreError('active-run-exists', `chip ${run.chipId} already has an active run ${active.run_id}`, {
            chipId: run.chipId,
            activeRunId: active.run_id,
          });
        }
        if ((run.kind === 'rotation') !== (run.supersedesRecordId !== null)) {
          throw new StoreError('invalid-argument', 'a rotation run (and only a rotation run) supersedes a record', {
            runId: run.runId,
            kind: run.kind,
          });
        }
        const t = now();
        st.insertRun.run(
          run.runId,
          run.chipId,
          run.serialNumber,
          run.port,
          run.workOrder,
          run.operator,
          run.stationId,
          run.kind,
          run.supersedesRecordId,
          run.startedAt,
          t,
        );
        append(
          'run.started',
          {
            chipId: run.chipId,
            serialNumber: run.serialNumber,
            port: run.port,
            workOrder: run.workOrder,
            operator: run.operator,
            stationId: run.stationId,
            kind: run.kind,
            supersedesRecordId: run.supersedesRecordId,
          },
          run.runId,
        );
        return toRun(st.getRun.get(run.runId) as RunDbRow);
      });
    },

    checkpoint(runId, step, patch, audit, issued) {
      return tx('checkpoint', () => {
        const row = mustGetActiveRun(runId, 'checkpoint');
        if (issued) {
          if (issued.runId !== runId || issued.chipId !== row.chip_id) {
            throw new StoreError('invalid-argument', 'issued certificate belongs to another run or chip', {
              runId,
              certificateRunId: issued.runId,
              certificateChipId: issued.chipId,
            });
          }
          const digest = sha256HexSync(issued.der);
          if (digest !== issued.sha256.toLowerCase()) {
            throw new StoreError('invalid-argument', 'issued certificate sha256 does not match its DER', {
              serialNumber: issued.serialNumber,
            });
          }
          st.insertCert.run(
            issued.serialNumber,
            digest,
            issued.chipId,
            runId,
            Buffer.from(issued.der),
            issued.notBefore,
            issued.notAfter,
            issued.issuedAt,
          );
          append(
            'cert.issued',
            {
              serialNumber: issued.serialNumber,
              sha256: digest,
              chipId: issued.chipId,
              notBefore: issued.notBefore,
              notAfter: issued.notAfter,
              issuedAt: issued.issuedAt,
            },
            runId,
          );
        }
        const data = { ...parseJson<RunData>(row.data_json, `data of run ${runId}`), ...patch };
        st.updateRunStep.run(step, JSON.stringify(data), now(), runId);
        append(`step.${step}`, audit, runId);
        return toRun(st.getRun.get(runId) as RunDbRow);
      });
    },

    completeRun(runId, record) {
      return tx('completeRun', () => {
        const run = mustGetActiveRun(runId, 'completeRun');
        const mismatch: string[] = [];
        if (record.runId !== runId) mismatch.push('runId');
        if (record.chipId !== run.chip_id) mismatch.push('chipId');
        if (record.kind !== run.kind) mismatch.push('kind');
        if (record.supersedesRecordId !== run.supersedes_record_id) mismatch.push('supersedesRecordId');
        if (sha256HexSync(record.recordJson) !== record.recordSha256) mismatch.push('recordSha256');
        if (mismatch.length) {
          throw new StoreError('invalid-argument', `record does not match run ${runId}: ${mismatch.join(', ')}`, {
            runId,
            fields: mismatch,
          });
        }
        if (record.supersedesRecordId !== null) {
          const prev = st.supersedable.get(record.supersedesRecordId) as
            { chip_id: string; superseded_by: string | null } | undefined;
          if (!prev || prev.chip_id !== record.chipId || prev.superseded_by !== null) {
            throw new StoreError(
              'supersede-failed',
              `record ${record.supersedesRecordId} cannot be superseded (${!prev ? 'missing' : prev.chip_id !== record.chipId ? 'another chip' : `already superseded by ${prev.superseded_by}`})`,
              { recordId: record.recordId, supersedesRecordId: record.supersedesRecordId },
            );
          }
        }
        const createdAt = record.createdAt ?? now();
        const entry = append(
          'record.committed',
          {
            recordId: record.recordId,
            recordSha256: record.recordSha256,
            certificateSerial: record.certificateSerial,
            chipId: record.chipId,
            serialNumber: record.serialNumber,
            workOrder: record.workOrder,
            kind: record.kind,
            supersedesRecordId: record.supersedesRecordId,
          },
          runId,
        );
        st.insertRecord.run(
          record.recordId,
          runId,
          record.chipId,
          record.serialNumber,
          record.workOrder,
          record.operator,
          record.kind,
          record.supersedesRecordId,
          record.outcome,
          record.certificateSerial,
          createdAt,
          record.recordJson,
          record.jws,
          record.recordSha256,
          entry.seq,
        );
        if (record.supersedesRecordId !== null) {
          const changed = st.supersede.run(record.recordId, record.supersedesRecordId, record.chipId).changes;
          if (changed !== 1) {
            throw new StoreError(
              'supersede-failed',
              `record ${record.supersedesRecordId} cannot be superseded (missing, of another chip, or already superseded)`,
              { recordId: record.recordId, supersedesRecordId: record.supersedesRecordId },
            );
          }
        }
        st.finishRun.run(now(), runId);
        return toRecord(st.getRecord.get(record.recordId) as RecordDbRow);
      });
    },

    failRun(runId, error) {
      tx('failRun', () => {
        const run = mustGetActiveRun(runId, 'failRun');
        const e = { code: error.code, message: error.message, step: error.step };
        const failedAt = now();
        // Every certificate of this run that no record holds is revoked at once: its failed-issuance event (the
        // exact payload the station key signs, station/lifecycle) is queued in THIS transaction, before the run is
        // marked failed (a trigger refuses the state change otherwise).
        for (const c of st.unrecordedCerts.all(runId) as CertDbRow[]) {
          const requestId = failedIssuanceRequestId(c.serial);
          const payloadJson = failedIssuancePayloadJson({
            stationId: run.station_id,
            runId,
            chipId: run.chip_id,
            serialNumber: run.serial_number,
            workOrder: run.work_order,
            certificateSerial: c.serial,
            certificateSha256: c.sha256,
            certificate: c.der.toString('base64url'),
            failure: e,
            issuedAt: c.issued_at,
            failedAt,
          });
          st.queueFailedIssuance.run(
            requestId,
            run.chip_id,
            run.serial_number,
            c.serial,
            FAILED_ISSUANCE_REASON,
            failedAt,
            failedAt,
            runId,
            payloadJson,
          );
          append(
            'cert.failed-issuance',
            {
              requestId,
              certificateSerial: c.serial,
              sha256: c.sha256,
              chipId: run.chip_id,
              code: e.code,
              step: e.step,
              payloadSha256: sha256HexSync(payloadJson),
            },
            runId,
          );
        }
        st.failRun.run(JSON.stringify(e), failedAt, runId);
        append('run.failed', e, runId);
      });
    },

    listRecords(q = {}) {
      return read('listRecords', () => {
        const limit = checkPaging(q.limit, 100, MAX_PAGE, 'limit');
        const offset = checkPaging(q.offset, 0, Number.MAX_SAFE_INTEGER, 'offset');
        const { where, params } = recordFilter(q);
        const rows = db
          .prepare(`SELECT ${RECORD_COLS} FROM records ${where} ORDER BY created_at DESC, record_id LIMIT ? OFFSET ?`)
          .all(...params, limit, offset) as RecordDbRow[];
        return rows.map(toRecord);
      });
    },

    countRecords(q = {}) {
      return read('countRecords', () => {
        const { where, params } = recordFilter(q);
        return (db.prepare(`SELECT COUNT(*) AS n FROM records ${where}`).get(...params) as { n: number }).n;
      });
    },

    listIssuedCertificates(chipId) {
      return read('listIssuedCertificates', () =>
        ((chipId === undefined ? st.certsAll.all() : st.certsChip.all(chipId)) as CertDbRow[]).map(toCert),
      );
    },

    appendAudit(type, payload, runId = null) {
      if (!/^[a-z][a-z0-9_.-]{0,63}$/i.test(type)) {
        throw new StoreError('invalid-argument', `invalid audit entry type ${JSON.stringify(type)}`, { type });
      }
      return tx('appendAudit', () => append(type, payload, runId));
    },

    listAudit(fromSeq = 1, limit = 1000) {
      return read('listAudit', () => {
        const from = checkPaging(fromSeq, 1, Number.MAX_SAFE_INTEGER, 'fromSeq');
        const n = checkPaging(limit, 1000, MAX_AUDIT_PAGE, 'limit');
        return (st.listAudit.all(from, n) as AuditDbRow[]).map(toAudit);
      });
    },

    verifyAudit() {
      return read('verifyAudit', () => db.transaction(() => verifyAll(db))());
    },

    integrityCheck() {
      return read('integrityCheck', () =>
        (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check),
      );
    },

    close() {
      if (db.open) db.close();
    },
  };
  return store;
}

// ------------------------------------------------------------------------------------------------ verification

type Failure = Extract<AuditVerification, { ok: false }>;

/**
 * Walk the whole chain (streaming) and cross-check records. Run inside a read transaction (consistent snapshot).
 * Order of checks: per entry in seq order (seq, link, hash, then the record of a record.committed entry);
 * then the head row (truncation / forged tail); then records without an entry; then supersession links.
 */
function verifyAll(db: Database.Database): AuditVerification {
  let head: ChainHead = GENESIS_HEAD;
  let entries = 0;
  let records = 0;
  const failed = (at: string | number, reason: Failure['reason'], message: string): Failure => ({
    ok: false,
    entries,
    at: String(at),
    reason,
    message,
  });

  const rows = db
    .prepare(
      `SELECT a.seq, a.ts, a.type, a.run_id, a.payload_json, a.prev_hash, a.hash,
         r.record_id AS r_record_id, r.run_id AS r_run_id, r.chip_id AS r_chip_id,
         r.certificate_serial AS r_certificate_serial, r.supersedes_record_id AS r_supersedes_record_id,
         r.record_sha256 AS r_record_sha256, r.record_json AS r_record_json
       FROM audit_log a LEFT JOIN records r ON r.audit_seq = a.seq
       ORDER BY a.seq`,
    )
    .iterate() as IterableIterator<VerifyDbRow>;

  let failure: Failure | null = null;
  for (const row of rows) {
    failure = checkRow(row);
    if (failure) return failure; // for-of closes the statement iterator
    head = { seq: row.seq, hash: row.hash };
    entries++;
  }

  function checkRow(row: VerifyDbRow): Failure | null {
    // Hash the stored payload text as is: it was written as canonicalJson(payload), so this equals the
    // specified preimage, and any change to the text (even whitespace) is a hash-mismatch. No JSON parse needed.
    const recomputed = sha256HexSync(storedPreimage(row));
    const chain = checkChainStep(head, toEntryUnchecked(row), recomputed);
    if (chain) return failed(chain.seq, chain.reason, chain.message);

    if (row.type === 'record.committed') {
      let payload: Record<string, unknown>;
      try {
        payload = JSON.parse(row.payload_json) as Record<string, unknown>;
        if (typeof payload !== 'object' || payload === null) throw new Error('not an object');
      } catch {
        return failed(row.seq, 'hash-mismatch', `audit entry ${row.seq} has a payload that is not a JSON object`);
      }
      const recordId = String(payload['recordId']);
      if (row.r_record_id === null) {
        return failed(
          recordId,
          'record-missing',
          `record ${recordId} (audit entry ${row.seq}) is missing from the records table`,
        );
      }
      const problems: string[] = [];
      if (row.r_record_id !== recordId) problems.push(`record id ${row.r_record_id}`);
      if (sha256HexSync(row.r_record_json ?? '') !== payload['recordSha256']) problems.push('record_json');
      if (row.r_record_sha256 !== payload['recordSha256']) problems.push('record_sha256');
      if (row.r_run_id !== row.run_id) problems.push('run_id');
      if (row.r_chip_id !== payload['chipId']) problems.push('chip_id');
      if (row.r_certificate_serial !== payload['certificateSerial']) problems.push('certificate_serial');
      if (row.r_supersedes_record_id !== (payload['supersedesRecordId'] ?? null)) problems.push('supersedes_record_id');
      if (problems.length) {
        return failed(
          row.r_record_id,
          'record-mismatch',
          `record ${row.r_record_id} differs from its audit entry ${row.seq}: ${problems.join(', ')}`,
        );
      }
      records++;
    } else if (row.r_record_id !== null) {
      return failed(
        row.r_record_id,
        'record-unaudited',
        `record ${row.r_record_id} points at audit entry ${row.seq}, which is a ${row.type} entry`,
      );
    }
    return null;
  }

  const stored = db.prepare('SELECT seq, hash FROM audit_head WHERE id = 1').get() as ChainHead | undefined;
  if (!stored) return failed(head.seq, 'truncated', 'the audit head row is missing');
  if (stored.seq > head.seq) {
    return failed(
      head.seq + 1,
      'truncated',
      `the audit log ends at entry ${head.seq} but the head row records ${stored.seq}: entries were deleted`,
    );
  }
  if (stored.seq < head.seq) {
    return failed(
      stored.seq + 1,
      'broken-link',
      `audit entries after ${stored.seq} were not appended by the station (the head row records ${stored.seq})`,
    );
  }
  if (stored.hash !== head.hash) {
    return failed(
      head.seq,
      'hash-mismatch',
      `the audit head hash does not match entry ${head.seq}: the chain was rewritten`,
    );
  }

  const unaudited = db
    .prepare(
      'SELECT record_id FROM records r WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.seq = r.audit_seq) ORDER BY r.audit_seq LIMIT 1',
    )
    .get() as { record_id: string } | undefined;
  if (unaudited) {
    return failed(unaudited.record_id, 'record-unaudited', `record ${unaudited.record_id} has no audit entry`);
  }

  const badSupersede = db
    .prepare(
      `SELECT r.record_id FROM records r
       WHERE (r.superseded_by IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM records n WHERE n.record_id = r.superseded_by AND n.supersedes_record_id = r.record_id))
          OR (r.supersedes_record_id IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM records o WHERE o.record_id = r.supersedes_record_id AND o.superseded_by = r.record_id))
       LIMIT 1`,
    )
    .get() as { record_id: string } | undefined;
  if (badSupersede) {
    return failed(
      badSupersede.record_id,
      'record-mismatch',
      `record ${badSupersede.record_id} has inconsistent supersession links`,
    );
  }

  return { ok: true, entries, records, headHash: head.hash };
}

/**
 * The hash preimage of a stored entry, built from its stored canonical payload text. Equal to
 * core/provisioning/audit.ts auditEntryPreimage(prev, {seq, ts, type, runId, payload}) when payload_json is
 * canonicalJson(payload) (keys of the wrapper in sorted order: payload, runId, seq, ts, type).
 */
export function storedPreimage(row: {
  readonly seq: number;
  readonly ts: string;
  readonly type: string;
  readonly run_id: string | null;
  readonly payload_json: string;
  readonly prev_hash: string;
}): string {
  return (
    `${row.prev_hash}\n{"payload":${row.payload_json},"runId":${JSON.stringify(row.run_id)},` +
    `"seq":${JSON.stringify(row.seq)},"ts":${JSON.stringify(row.ts)},"type":${JSON.stringify(row.type)}}`
  );
}

function toEntryUnchecked(row: AuditDbRow): AuditEntry {
  return {
    seq: row.seq,
    ts: row.ts,
    type: row.type,
    runId: row.run_id,
    payload: {},
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

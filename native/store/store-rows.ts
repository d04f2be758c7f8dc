/**
 * Rows of the Store's tables (runs, issued_certificates, records, audit_log) as SQLite returns them, their
 * mapping to the core/provisioning/store.ts types, and the Store's prepared statements. Shared by the Store port (sqlite-store.ts) and the audit
 * verification (audit-verify.ts).
 *
 * May import: core/, better-sqlite3 types, ./store-error.
 */
import type Database from 'better-sqlite3';
import type { StepName } from '../../core/model.js';
import type {
  AuditEntry,
  IssuedCertificate,
  RecordQuery,
  RunData,
  RunRow,
  StoredRecord,
} from '../../core/provisioning/store.js';
import { parseStoredJson as parseJson, StoreError } from './store-error.js';

/** A row of `runs` as SQLite returns it. */
export interface RunDbRow {
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

/** A row of `records` (RECORD_COLS) as SQLite returns it. */
export interface RecordDbRow {
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

/** A row of `issued_certificates` as SQLite returns it. */
export interface CertDbRow {
  serial: string;
  sha256: string;
  chip_id: string;
  run_id: string;
  der: Buffer;
  not_before: string;
  not_after: string;
  issued_at: string;
}

/** A row of `audit_log` as SQLite returns it. */
export interface AuditDbRow {
  seq: number;
  ts: string;
  type: string;
  run_id: string | null;
  payload_json: string;
  prev_hash: string;
  hash: string;
}

/** An audit row joined with the record its `record.committed` entry names (audit-verify.ts). */
export interface VerifyDbRow extends AuditDbRow {
  r_record_id: string | null;
  r_run_id: string | null;
  r_chip_id: string | null;
  r_certificate_serial: string | null;
  r_supersedes_record_id: string | null;
  r_record_sha256: string | null;
  r_record_json: string | null;
  f_refusal_id: string | null;
  f_chip_id: string | null;
  f_serial_number: string | null;
  f_model: string | null;
  f_port: string | null;
  f_work_order: string | null;
  f_operator: string | null;
  f_station_id: string | null;
  f_code: string | null;
  f_message: string | null;
  f_scanned: string | null;
  f_first_at: string | null;
}

/** The columns of `records` the Store reads (all but superseded_by and audit_seq). */
export const RECORD_COLS = `record_id, run_id, chip_id, serial_number, work_order, operator, kind, supersedes_record_id,
  outcome, certificate_serial, created_at, record_json, jws, record_sha256`;

/** Page limits of listRecords and listAudit. */
export const MAX_PAGE = 1000;
export const MAX_AUDIT_PAGE = 10_000;

/** A run row as the port's RunRow (`data`: its data_json already parsed). */
export function toRun(r: RunDbRow, data?: RunData): RunRow {
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
    data: data ?? parseJson<RunData>(r.data_json, `data of run ${r.run_id}`),
    error: r.error_json === null ? null : parseJson<RunRow['error']>(r.error_json, `error of run ${r.run_id}`),
    startedAt: r.started_at,
    updatedAt: r.updated_at,
  };
}

/** A record row as the port's StoredRecord. */
export function toRecord(r: RecordDbRow): StoredRecord {
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

/** A certificate row as the port's IssuedCertificate. */
export function toCert(r: CertDbRow): IssuedCertificate {
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

/** An audit row as the port's AuditEntry (its payload parsed). */
export function toAudit(r: AuditDbRow): AuditEntry {
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

/** A paging argument: `def` when absent, capped at `max`; a negative or non-integer one is 'invalid-argument'. */
export function checkPaging(v: number | undefined, def: number, max: number, what: string): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v < 0)
    throw new StoreError('invalid-argument', `${what} must be a non-negative integer`);
  return Math.min(v, max);
}

/** The WHERE clause and parameters of a record query (chip id, serial number, work order). */
export function recordFilter(q: Omit<RecordQuery, 'limit' | 'offset'>): { where: string; params: string[] } {
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
  if (q.since !== undefined) {
    clauses.push('created_at >= ?');
    params.push(q.since);
  }
  if (q.before !== undefined) {
    clauses.push('created_at < ?');
    params.push(q.before);
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

/** The Store's prepared statements on one connection (sqlite-store.ts). */
export function storeStatements(db: Database.Database) {
  return {
    getRun: db.prepare('SELECT * FROM runs WHERE run_id = ?'),
    activeRun: db.prepare("SELECT * FROM runs WHERE chip_id = ? AND state = 'active'"),
    insertRun: db.prepare(
      `INSERT INTO runs (run_id, chip_id, serial_number, port, work_order, operator, station_id, kind,
        supersedes_record_id, state, step, data_json, error_json, started_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', 'identify', ?, NULL, ?, ?)`,
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
  };
}

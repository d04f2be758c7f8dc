/**
 * Verification of the audit chain against the records (Store.verifyAudit, docs/audit.md): walk every entry in
 * sequence order, recompute each hash from the stored canonical payload text, check the links, the head row and
 * the records each `record.committed` entry names and the refusals each `board.refused` entry names.
 *
 * May import: core/, ./audit-writer (hashing), ./store-rows.
 */
import type Database from 'better-sqlite3';
import { checkChainStep, GENESIS_HEAD, type ChainHead } from '../../core/provisioning/audit.js';
import type { AuditEntry, AuditVerification } from '../../core/provisioning/store.js';
import { sha256HexSync } from './audit-writer.js';
import type { AuditDbRow, VerifyDbRow } from './store-rows.js';
import { REFUSAL_AUDIT_TYPE } from './refusals.js';

type Failure = Extract<AuditVerification, { ok: false }>;

/**
 * Walk the whole chain (streaming) and cross-check records. Run inside a read transaction (consistent snapshot).
 * Order of checks: per entry in seq order (seq, link, hash, then the record of a record.committed entry);
 * then the head row (truncation / forged tail); then records without an entry; then supersession links.
 */
export function verifyAll(db: Database.Database): AuditVerification {
  let head: ChainHead = GENESIS_HEAD;
  let entries = 0;
  let records = 0;
  let refusals = 0;
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
         r.record_sha256 AS r_record_sha256, r.record_json AS r_record_json,
         f.refusal_id AS f_refusal_id, f.chip_id AS f_chip_id, f.serial_number AS f_serial_number, f.model AS f_model,
         f.port AS f_port, f.work_order AS f_work_order, f.operator AS f_operator, f.station_id AS f_station_id,
         f.code AS f_code, f.message AS f_message, f.scanned AS f_scanned, f.first_at AS f_first_at
       FROM audit_log a LEFT JOIN records r ON r.audit_seq = a.seq LEFT JOIN refusals f ON f.audit_seq = a.seq
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
    } else if (row.type === REFUSAL_AUDIT_TYPE) {
      const f = checkRefusal(row);
      if (f) return f;
      refusals++;
    } else if (row.r_record_id !== null) {
      return failed(
        row.r_record_id,
        'record-unaudited',
        `record ${row.r_record_id} points at audit entry ${row.seq}, which is a ${row.type} entry`,
      );
    }
    if (row.f_refusal_id !== null && row.type !== REFUSAL_AUDIT_TYPE) {
      return failed(
        row.f_refusal_id,
        'refusal-unaudited',
        `refusal ${row.f_refusal_id} points at audit entry ${row.seq}, which is a ${row.type} entry`,
      );
    }
    return null;
  }

  /** A `board.refused` entry: its refusals row must exist and say what the entry says. */
  function checkRefusal(row: VerifyDbRow): Failure | null {
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(row.payload_json) as Record<string, unknown>;
    } catch {
      return failed(row.seq, 'hash-mismatch', `audit entry ${row.seq} has a payload that is not JSON`);
    }
    const refusalId = String(payload['refusalId']);
    if (row.f_refusal_id === null)
      return failed(refusalId, 'refusal-missing', `refusal ${refusalId} (audit entry ${row.seq}) is missing`);
    const cols: [string, string | null][] = [
      ['refusalId', row.f_refusal_id],
      ['chipId', row.f_chip_id],
      ['serialNumber', row.f_serial_number],
      ['model', row.f_model],
      ['port', row.f_port],
      ['workOrder', row.f_work_order],
      ['operator', row.f_operator],
      ['stationId', row.f_station_id],
      ['code', row.f_code],
      ['message', row.f_message],
      ['scanned', row.f_scanned],
    ];
    const problems = cols.filter(([k, v]) => (payload[k] ?? null) !== v).map(([k]) => k);
    if (row.f_first_at !== row.ts) problems.push('first_at');
    if (problems.length)
      return failed(
        row.f_refusal_id,
        'refusal-mismatch',
        `refusal ${row.f_refusal_id} differs from its audit entry ${row.seq}: ${problems.join(', ')}`,
      );
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

  const unauditedRefusal = db
    .prepare(
      `SELECT refusal_id FROM refusals f WHERE NOT EXISTS (
         SELECT 1 FROM audit_log a WHERE a.seq = f.audit_seq AND a.type = '${REFUSAL_AUDIT_TYPE}') LIMIT 1`,
    )
    .get() as { refusal_id: string } | undefined;
  if (unauditedRefusal) {
    const id = unauditedRefusal.refusal_id;
    return failed(id, 'refusal-unaudited', `refusal ${id} has no board.refused audit entry`);
  }

  return { ok: true, entries, records, refusals, headHash: head.hash };
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

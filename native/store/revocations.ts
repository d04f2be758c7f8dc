/**
 * THE writer of the revocation request queue (table `revocation_requests`, schema versions 4 and 7,
 * docs/lifecycle.md): scrap events queued by the lifecycle, failed-issuance events and failed reworks' scrap events
 * queued by the Store's failRun (in ITS transaction), the station key's signature added once, and the send state. The rows of superseded
 * certificates are queued and advanced by the schema's triggers on records and outbox (migrations.ts).
 *
 * May import: core/, better-sqlite3 types.
 */
import type Database from 'better-sqlite3';

/** Why a certificate is to be revoked. */
export type RevocationKind = 'superseded' | 'scrapped' | 'failed-issuance';
/** Where a revocation request is on its way to the registry. */
export type RevocationState = 'queued' | 'sent' | 'acknowledged' | 'failed';

/** One queued request to revoke a certificate at the registry. */
export interface RevocationRequest {
  readonly requestId: string;
  readonly kind: RevocationKind;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly certificateSerial: string;
  readonly reason: string;
  readonly recordId: string | null;
  /** Scrap and failed-issuance events: the signed event (failed-issuance: null until the station key signed it). */
  readonly jws: string | null;
  /** Failed issuance: the run that failed and the exact event payload (canonical JSON) the station key signs. */
  readonly runId: string | null;
  readonly payloadJson: string | null;
  readonly state: RevocationState;
  readonly detail: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** A request the lifecycle queues (a scrap event). */
export type NewRevocation = Omit<
  RevocationRequest,
  'state' | 'detail' | 'createdAt' | 'updatedAt' | 'runId' | 'payloadJson'
>;

/** A failed-issuance event the Store queues when a run fails holding a certificate no record names. */
export interface NewFailedIssuance {
  readonly requestId: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly certificateSerial: string;
  readonly reason: string;
  readonly runId: string;
  readonly payloadJson: string;
  readonly at: string;
}

/**
 * The revocation of a failed rework's old credential (core/hq/rework.ts): a scrap event queued by the
 * Store's failRun with its exact payload, unsigned until the station key signs it.
 */
export type NewReworkRevocation = NewFailedIssuance;

/** Reads and writes of `revocation_requests` on one connection (callers bring the transaction). */
export interface RevocationQueue {
  queue(r: NewRevocation, at: string): RevocationRequest;
  queueFailedIssuance(r: NewFailedIssuance): void;
  /**
   * Queue a failed rework's scrap event (kind `scrapped`, unsigned); false when its request id, or a scrap event of
   * the same certificate, is queued already.
   */
  queueReworkRevocation(r: NewReworkRevocation): boolean;
  /** Add the signature to an unsigned failed-issuance or failed-rework event; false when it was signed already. */
  setJws(requestId: string, jws: string, at: string): boolean;
  setState(requestId: string, state: RevocationState, detail: string | null, at: string): void;
  list(filter?: { state?: RevocationState; kind?: RevocationKind }): RevocationRequest[];
}

interface RevRow {
  request_id: string;
  kind: string;
  chip_id: string;
  serial_number: string;
  certificate_serial: string;
  reason: string;
  record_id: string | null;
  jws: string | null;
  run_id: string | null;
  payload_json: string | null;
  state: string;
  detail: string | null;
  created_at: string;
  updated_at: string;
}

const toRev = (r: RevRow): RevocationRequest => ({
  requestId: r.request_id,
  kind: r.kind as RevocationKind,
  chipId: r.chip_id,
  serialNumber: r.serial_number,
  certificateSerial: r.certificate_serial,
  reason: r.reason,
  recordId: r.record_id,
  jws: r.jws,
  runId: r.run_id,
  payloadJson: r.payload_json,
  state: r.state as RevocationState,
  detail: r.detail,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** The revocation queue over an open connection (schema version 7 or later). */
export function createRevocationQueue(db: Database.Database): RevocationQueue {
  const st = {
    insert: db.prepare(
      `INSERT INTO revocation_requests (request_id, kind, chip_id, serial_number, certificate_serial, reason,
         record_id, jws, state, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)`,
    ),
    /** A failed-issuance or failed-rework event: queued by failRun with its payload, unsigned. */
    insertEvent: db.prepare(
      `INSERT INTO revocation_requests (request_id, kind, chip_id, serial_number, certificate_serial, reason, record_id,
         jws, state, detail, created_at, updated_at, run_id, payload_json)
       VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 'queued', NULL, ?, ?, ?, ?)`,
    ),
    get: db.prepare('SELECT * FROM revocation_requests WHERE request_id = ?'),
    scrappedCert: db.prepare("SELECT 1 FROM revocation_requests WHERE kind = 'scrapped' AND certificate_serial = ?"),
    setJws: db.prepare(
      `UPDATE revocation_requests SET jws = ?, updated_at = ?
       WHERE request_id = ? AND kind IN ('failed-issuance', 'scrapped') AND payload_json IS NOT NULL AND jws IS NULL`,
    ),
    setState: db.prepare('UPDATE revocation_requests SET state = ?, detail = ?, updated_at = ? WHERE request_id = ?'),
  };
  const insertEvent = (kind: RevocationKind, r: NewFailedIssuance): void => {
    st.insertEvent.run(
      r.requestId,
      kind,
      r.chipId,
      r.serialNumber,
      r.certificateSerial,
      r.reason,
      r.at,
      r.at,
      r.runId,
      r.payloadJson,
    );
  };
  return {
    queue(r, at) {
      st.insert.run(
        r.requestId,
        r.kind,
        r.chipId,
        r.serialNumber,
        r.certificateSerial,
        r.reason,
        r.recordId,
        r.jws,
        at,
        at,
      );
      return toRev(st.get.get(r.requestId) as RevRow);
    },
    queueFailedIssuance: (r) => insertEvent('failed-issuance', r),
    queueReworkRevocation(r) {
      if (st.get.get(r.requestId) !== undefined) return false;
      if (st.scrappedCert.get(r.certificateSerial) !== undefined) return false;
      insertEvent('scrapped', r);
      return true;
    },
    setJws: (requestId, jws, at) => st.setJws.run(jws, at, requestId).changes === 1,
    setState(requestId, state, detail, at) {
      st.setState.run(state, detail, at, requestId);
    },
    list(f = {}) {
      const where: string[] = [];
      const params: string[] = [];
      if (f.state) {
        where.push('state = ?');
        params.push(f.state);
      }
      if (f.kind) {
        where.push('kind = ?');
        params.push(f.kind);
      }
      const sql = `SELECT * FROM revocation_requests ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, request_id`;
      return (db.prepare(sql).all(...params) as RevRow[]).map(toRev);
    },
  };
}

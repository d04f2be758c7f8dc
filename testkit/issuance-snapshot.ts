/**
 * Test support (like store-fixtures.ts; not part of the station runtime): a consistent READ-ONLY snapshot of what the
 * issuance invariant (testkit/issuance-invariant.ts) checks in a station database: issued certificates with
 * their run's state, records with their audit entry, failed-issuance revocation requests. Lives in native/ because
 * only native/ may open SQLite.
 */
import Database from 'better-sqlite3';

export interface SnapshotCertificate {
  readonly serial: string;
  readonly sha256: string;
  readonly run_id: string;
  readonly der: Buffer;
  /** null when the run row is missing. */
  readonly run_state: string | null;
}
export interface SnapshotRecord {
  readonly record_id: string;
  readonly certificate_serial: string;
  readonly record_json: string;
  readonly record_sha256: string;
  readonly audit_seq: number;
  readonly a_type: string | null;
  readonly a_payload: string | null;
}
export interface SnapshotFailedIssuance {
  readonly request_id: string;
  readonly certificate_serial: string;
  readonly run_id: string | null;
  readonly payload_json: string | null;
  readonly jws: string | null;
  readonly state: string;
}
export interface IssuanceSnapshot {
  /** PEM of every revocation signer certificate the station issued (`revocation-signer.issued` audit entries). */
  readonly revocationSignerPems: readonly string[];
  readonly certificates: readonly SnapshotCertificate[];
  readonly records: readonly SnapshotRecord[];
  readonly failedIssuances: readonly SnapshotFailedIssuance[];
}

/** Read the snapshot in one read transaction, the file opened read-only (nothing is written, not even a migration). */
export function readIssuanceSnapshot(dbFile: string): IssuanceSnapshot {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return db.transaction(() => {
      const hasQueue = db
        .prepare("SELECT 1 FROM pragma_table_info('revocation_requests') WHERE name = 'payload_json'")
        .get();
      const signers = db
        .prepare("SELECT payload_json FROM audit_log WHERE type = 'revocation-signer.issued' ORDER BY seq")
        .pluck()
        .all() as string[];
      return {
        revocationSignerPems: signers
          .map((j) => (JSON.parse(j) as { certificatePem?: unknown }).certificatePem)
          .filter((p): p is string => typeof p === 'string'),
        certificates: db
          .prepare(
            `SELECT c.serial, c.sha256, c.run_id, c.der, r.state AS run_state
             FROM issued_certificates c LEFT JOIN runs r ON r.run_id = c.run_id ORDER BY c.issued_at, c.serial`,
          )
          .all() as SnapshotCertificate[],
        records: db
          .prepare(
            `SELECT x.record_id, x.certificate_serial, x.record_json, x.record_sha256, x.audit_seq,
                    a.type AS a_type, a.payload_json AS a_payload
             FROM records x LEFT JOIN audit_log a ON a.seq = x.audit_seq`,
          )
          .all() as SnapshotRecord[],
        failedIssuances: (hasQueue
          ? db
              .prepare(
                `SELECT request_id, certificate_serial, run_id, payload_json, jws, state FROM revocation_requests
                 WHERE kind = 'failed-issuance'`,
              )
              .all()
          : []) as SnapshotFailedIssuance[],
      };
    })();
  } finally {
    db.close();
  }
}

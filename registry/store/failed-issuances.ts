/**
 * Lifecycle table `failed_issuances`: certificates revoked because their run ended without a record. Imports core
 * and ./rows.ts.
 */
import type { RevocationReason } from '../../core/lifecycle.js';
import type { SqlExec, SqlRow } from '../../core/hq/registry-db.js';
import { s } from './rows.js';

// ---------------------------------------------------------------- failed issuances

/** A certificate a station issued for a run that ended without a record (revoked when it arrived). */
export interface FailedIssuanceRow {
  readonly stationId: string;
  /** Normalised (lower-case hex, no leading zeros), like credentials.cert_serial. */
  readonly certSerial: string;
  readonly requestId: string;
  readonly sha256: string;
  readonly certPem: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly workOrder: string;
  readonly runId: string;
  readonly failureCode: string;
  readonly failureStep: string;
  readonly reason: RevocationReason;
  readonly issuedAt: string;
  readonly failedAt: string;
  readonly revokedAt: string;
  readonly eventSha256: string;
  readonly via: 'online' | 'bundle';
}

function failedIssuanceFrom(r: SqlRow): FailedIssuanceRow {
  return {
    stationId: s(r, 'station_id'),
    certSerial: s(r, 'cert_serial'),
    requestId: s(r, 'request_id'),
    sha256: s(r, 'sha256'),
    certPem: s(r, 'cert_pem'),
    chipId: s(r, 'chip_id'),
    serialNumber: s(r, 'serial_number'),
    workOrder: s(r, 'work_order'),
    runId: s(r, 'run_id'),
    failureCode: s(r, 'failure_code'),
    failureStep: s(r, 'failure_step'),
    reason: s(r, 'reason') as RevocationReason,
    issuedAt: s(r, 'issued_at'),
    failedAt: s(r, 'failed_at'),
    revokedAt: s(r, 'revoked_at'),
    eventSha256: s(r, 'event_sha256'),
    via: s(r, 'via') as 'online' | 'bundle',
  };
}

/** The failed issuance of a station's certificate (by normalised serial), or null. */
export async function failedIssuance(
  x: SqlExec,
  stationId: string,
  certSerial: string,
): Promise<FailedIssuanceRow | null> {
  const r = (
    await x.all('SELECT * FROM failed_issuances WHERE station_id = ? AND cert_serial = ?', [stationId, certSerial])
  )[0];
  return r ? failedIssuanceFrom(r) : null;
}

/** Which of `certSerials` this station reported as failed issuances (failedIssuance for many at once). */
export async function failedIssuanceSerials(
  x: SqlExec,
  stationId: string,
  certSerials: readonly string[],
): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < certSerials.length; i += 500) {
    const part = certSerials.slice(i, i + 500);
    const rows = await x.all(
      `SELECT cert_serial FROM failed_issuances WHERE station_id = ? AND cert_serial IN (${part.map(() => '?').join(', ')})`,
      [stationId, ...part],
    );
    for (const r of rows) out.add(String(r['cert_serial']));
  }
  return out;
}

/** Every failed issuance of a station (all are revoked: the CRL lists them). */
export async function failedIssuances(x: SqlExec, stationId: string): Promise<FailedIssuanceRow[]> {
  return (await x.all('SELECT * FROM failed_issuances WHERE station_id = ? ORDER BY cert_serial', [stationId])).map(
    failedIssuanceFrom,
  );
}

export async function insertFailedIssuance(x: SqlExec, f: FailedIssuanceRow): Promise<void> {
  await x.run(
    `INSERT INTO failed_issuances (station_id, cert_serial, request_id, sha256, cert_pem, chip_id, serial_number,
       work_order, run_id, failure_code, failure_step, reason, issued_at, failed_at, revoked_at, event_sha256, via)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      f.stationId,
      f.certSerial,
      f.requestId,
      f.sha256,
      f.certPem,
      f.chipId,
      f.serialNumber,
      f.workOrder,
      f.runId,
      f.failureCode,
      f.failureStep,
      f.reason,
      f.issuedAt,
      f.failedAt,
      f.revokedAt,
      f.eventSha256,
      f.via,
    ],
  );
}

/**
 * The commissioning tables (schema v8), their one writer: `enrolment_codes` (one-time codes, hashed), `station_cas`
 * (every station CA certificate the HQ CA issued, and its revocation) and `hq_crls` (the HQ CA's current CRL).
 * Portable SQL on a SqlExec (inside the caller's transaction). Imports core and registry/store/rows.ts.
 */
import type { SqlExec, SqlRow } from '../../core/hq/registry-db.js';
import { s, sn } from '../store/rows.js';

export interface EnrolmentCodeRow {
  readonly codeSha256: string;
  readonly stationId: string;
  readonly workOrders: readonly string[];
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly usedAt: string | null;
  readonly requestSha256: string | null;
  readonly answerJws: string | null;
}

function codeFrom(r: SqlRow): EnrolmentCodeRow {
  const wo: unknown = typeof r['work_orders'] === 'string' ? JSON.parse(r['work_orders']) : r['work_orders'];
  return {
    codeSha256: s(r, 'code_sha256'),
    stationId: s(r, 'station_id'),
    workOrders: Array.isArray(wo) ? wo.map(String) : [],
    createdAt: s(r, 'created_at'),
    expiresAt: s(r, 'expires_at'),
    usedAt: sn(r, 'used_at'),
    requestSha256: sn(r, 'request_sha256'),
    answerJws: sn(r, 'answer_jws'),
  };
}

export async function insertCode(
  x: SqlExec,
  c: Pick<EnrolmentCodeRow, 'codeSha256' | 'stationId' | 'workOrders' | 'createdAt' | 'expiresAt'>,
): Promise<void> {
  await x.run(
    `INSERT INTO enrolment_codes (code_sha256, station_id, work_orders, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
    [c.codeSha256, c.stationId, JSON.stringify(c.workOrders), c.createdAt, c.expiresAt],
  );
}

export async function codeByHash(x: SqlExec, codeSha256: string): Promise<EnrolmentCodeRow | null> {
  const r = (await x.all('SELECT * FROM enrolment_codes WHERE code_sha256 = ?', [codeSha256]))[0];
  return r ? codeFrom(r) : null;
}

/** Mark a code used for a request with its answer; false when it was used already (first use wins). */
export async function consumeCode(
  x: SqlExec,
  codeSha256: string,
  u: { usedAt: string; requestSha256: string; answerJws: string },
): Promise<boolean> {
  const n = await x.run(
    `UPDATE enrolment_codes SET used_at = ?, request_sha256 = ?, answer_jws = ? WHERE code_sha256 = ? AND used_at IS NULL`,
    [u.usedAt, u.requestSha256, u.answerJws, codeSha256],
  );
  return n === 1;
}

export interface StationCaRow {
  readonly serial: string;
  readonly stationId: string;
  readonly sha256: string;
  readonly certificatePem: string;
  readonly requestSha256: string;
  /** The answer JWS given for that request (given again when the same request comes back). */
  readonly answerJws: string;
  readonly issuedAt: string;
  readonly notAfter: string;
  readonly revokedAt: string | null;
  /** CRL reason name (core/lifecycle.ts CRL_REASON_CODES), with revokedAt. */
  readonly reason: string | null;
  /** The HQ-certified certificate (PEM) of the station's current delegated CRL signer key (hq-revocation.ts). */
  readonly crlSignerPem: string | null;
}

function caFrom(r: SqlRow): StationCaRow {
  return {
    serial: s(r, 'serial'),
    stationId: s(r, 'station_id'),
    sha256: s(r, 'sha256'),
    certificatePem: s(r, 'certificate_pem'),
    requestSha256: s(r, 'request_sha256'),
    answerJws: s(r, 'answer_jws'),
    issuedAt: s(r, 'issued_at'),
    notAfter: s(r, 'not_after'),
    revokedAt: sn(r, 'revoked_at'),
    reason: sn(r, 'reason'),
    crlSignerPem: sn(r, 'crl_signer_pem'),
  };
}

export async function insertStationCa(
  x: SqlExec,
  c: Omit<StationCaRow, 'revokedAt' | 'reason' | 'crlSignerPem'>,
): Promise<void> {
  await x.run(
    `INSERT INTO station_cas (serial, station_id, sha256, certificate_pem, request_sha256, answer_jws, issued_at, not_after)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    [c.serial, c.stationId, c.sha256, c.certificatePem, c.requestSha256, c.answerJws, c.issuedAt, c.notAfter],
  );
}

export async function stationCaOf(x: SqlExec, stationId: string): Promise<StationCaRow | null> {
  const r = (await x.all('SELECT * FROM station_cas WHERE station_id = ?', [stationId]))[0];
  return r ? caFrom(r) : null;
}

export async function stationCaBySerial(x: SqlExec, serial: string): Promise<StationCaRow | null> {
  const r = (await x.all('SELECT * FROM station_cas WHERE serial = ?', [serial.toLowerCase()]))[0];
  return r ? caFrom(r) : null;
}

export async function stationCas(x: SqlExec): Promise<StationCaRow[]> {
  return (await x.all('SELECT * FROM station_cas ORDER BY station_id')).map(caFrom);
}

/** Revoke a station's CA certificate (the first revocation wins); false when the station has none. */
export async function revokeStationCa(x: SqlExec, stationId: string, at: string, reason: string): Promise<boolean> {
  await x.run('UPDATE station_cas SET revoked_at = ?, reason = ? WHERE station_id = ? AND revoked_at IS NULL', [
    at,
    reason,
    stationId,
  ]);
  return (await stationCaOf(x, stationId)) !== null;
}

/** Store the HQ-certified CRL signer certificate of a station (replacing the one of a previous signer key). */
export async function setCrlSigner(x: SqlExec, stationId: string, pem: string): Promise<void> {
  await x.run('UPDATE station_cas SET crl_signer_pem = ? WHERE station_id = ?', [pem, stationId]);
}

export interface HqCrlRow {
  readonly crlNumber: number;
  readonly thisUpdate: string;
  readonly nextUpdate: string;
  readonly der: Uint8Array;
}

export async function getHqCrl(x: SqlExec): Promise<HqCrlRow | null> {
  const r = (await x.all('SELECT * FROM hq_crls WHERE id = 1'))[0];
  return r
    ? {
        crlNumber: Number(r['crl_number']),
        thisUpdate: s(r, 'this_update'),
        nextUpdate: s(r, 'next_update'),
        der: new Uint8Array(Buffer.from(s(r, 'der_b64'), 'base64')),
      }
    : null;
}

export async function putHqCrl(x: SqlExec, c: HqCrlRow): Promise<void> {
  const b64 = Buffer.from(c.der).toString('base64');
  const n = await x.run(
    'UPDATE hq_crls SET crl_number = ?, this_update = ?, next_update = ?, der_b64 = ? WHERE id = 1',
    [c.crlNumber, c.thisUpdate, c.nextUpdate, b64],
  );
  if (n === 0)
    await x.run('INSERT INTO hq_crls (id, crl_number, this_update, next_update, der_b64) VALUES (1, ?, ?, ?, ?)', [
      c.crlNumber,
      c.thisUpdate,
      c.nextUpdate,
      b64,
    ]);
}

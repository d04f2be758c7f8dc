/**
 * Lifecycle tables: the delegated revocation signers and the stations' current CRLs. Imports core and ./rows.ts.
 */
import type { SqlExec, SqlRow } from '../../core/hq/registry-db.js';
import { s, sn } from './rows.js';

export interface SignerRow {
  readonly requestId: string;
  readonly stationId: string;
  readonly keyLabel: string;
  readonly state: 'pending' | 'active' | 'replaced';
  readonly requestJws: string;
  readonly requestedAt: string;
  /** Installed rows: the station's issuing CA, the signer certificate, the signed confirmation. */
  readonly caPem: string | null;
  readonly certificatePem: string | null;
  readonly certificateSha256: string | null;
  readonly installedJws: string | null;
  readonly installedAt: string | null;
}

function signerFrom(r: SqlRow): SignerRow {
  return {
    requestId: s(r, 'request_id'),
    stationId: s(r, 'station_id'),
    keyLabel: s(r, 'key_label'),
    state: s(r, 'state') as SignerRow['state'],
    requestJws: s(r, 'request_jws'),
    requestedAt: s(r, 'requested_at'),
    caPem: sn(r, 'ca_pem'),
    certificatePem: sn(r, 'certificate_pem'),
    certificateSha256: sn(r, 'certificate_sha256'),
    installedJws: sn(r, 'installed_jws'),
    installedAt: sn(r, 'installed_at'),
  };
}

/** The active signers (one per station at most), by station id. */
export async function activeSigners(x: SqlExec): Promise<SignerRow[]> {
  return (await x.all(`SELECT * FROM revocation_signers WHERE state = 'active' ORDER BY station_id`)).map(signerFrom);
}

/** Every signer row of one station (or all stations), by station, newest request first. */
export async function signers(x: SqlExec, stationId: string | null): Promise<SignerRow[]> {
  return (
    await x.all(
      `SELECT * FROM revocation_signers ${stationId === null ? '' : 'WHERE station_id = ?'}
       ORDER BY station_id, requested_at DESC`,
      stationId === null ? [] : [stationId],
    )
  ).map(signerFrom);
}

export async function signerOf(x: SqlExec, stationId: string, state: 'pending' | 'active'): Promise<SignerRow | null> {
  const r = (await x.all('SELECT * FROM revocation_signers WHERE station_id = ? AND state = ?', [stationId, state]))[0];
  return r ? signerFrom(r) : null;
}

export async function signerByRequest(x: SqlExec, requestId: string): Promise<SignerRow | null> {
  const r = (await x.all('SELECT * FROM revocation_signers WHERE request_id = ?', [requestId]))[0];
  return r ? signerFrom(r) : null;
}

export async function insertSignerRequest(
  x: SqlExec,
  r: Pick<SignerRow, 'requestId' | 'stationId' | 'keyLabel' | 'requestJws' | 'requestedAt'>,
): Promise<void> {
  await x.run(
    `INSERT INTO revocation_signers (request_id, station_id, key_label, state, request_jws, requested_at)
     VALUES (?, ?, ?, 'pending', ?, ?)`,
    [r.requestId, r.stationId, r.keyLabel, r.requestJws, r.requestedAt],
  );
}

/** Make the pending `requestId` the station's active signer (the previous active one becomes replaced). */
export async function activateSigner(
  x: SqlExec,
  requestId: string,
  stationId: string,
  i: { caPem: string; certificatePem: string; certificateSha256: string; installedJws: string; installedAt: string },
): Promise<number> {
  await x.run(`UPDATE revocation_signers SET state = 'replaced' WHERE station_id = ? AND state = 'active'`, [
    stationId,
  ]);
  return x.run(
    `UPDATE revocation_signers SET state = 'active', ca_pem = ?, certificate_pem = ?, certificate_sha256 = ?,
       installed_jws = ?, installed_at = ?
     WHERE request_id = ? AND station_id = ? AND state = 'pending'`,
    [i.caPem, i.certificatePem, i.certificateSha256, i.installedJws, i.installedAt, requestId, stationId],
  );
}

export interface CrlRow {
  readonly stationId: string;
  readonly crlNumber: number;
  readonly thisUpdate: string;
  readonly nextUpdate: string;
  readonly der: Uint8Array;
}

export async function getCrlRow(x: SqlExec, stationId: string): Promise<CrlRow | null> {
  const r = (await x.all('SELECT * FROM crls WHERE station_id = ?', [stationId]))[0];
  return r
    ? {
        stationId,
        crlNumber: Number(r['crl_number']),
        thisUpdate: s(r, 'this_update'),
        nextUpdate: s(r, 'next_update'),
        der: new Uint8Array(Buffer.from(s(r, 'der_b64'), 'base64')),
      }
    : null;
}

export async function putCrlRow(x: SqlExec, c: CrlRow): Promise<void> {
  await x.run(
    `INSERT INTO crls (station_id, crl_number, this_update, next_update, der_b64) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (station_id) DO UPDATE SET crl_number = excluded.crl_number, this_update = excluded.this_update,
       next_update = excluded.next_update, der_b64 = excluded.der_b64`,
    [c.stationId, c.crlNumber, c.thisUpdate, c.nextUpdate, Buffer.from(c.der).toString('base64')],
  );
}

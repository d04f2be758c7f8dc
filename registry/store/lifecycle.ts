/**
 * Lifecycle tables (schema v2) over the portable SqlPort: devices, versioned credentials, the append-only
 * hash-chained lifecycle event log (core/provisioning/audit.ts hashing), blocked identifiers, delegated revocation signers, CRLs,
 * revoked operators, quotas and settings. Plain functions over a SqlExec so that callers compose them inside
 * one `db.sql.transaction`.
 */
import { GENESIS_HASH, auditEntryHash, verifyChain, type ChainVerification } from '../../core/provisioning/audit.js';
import type { Credential, CredentialStatus, DeviceState, RevocationReason } from '../../core/lifecycle.js';
import type { AuditEntry } from '../../core/provisioning/store.js';
import type { SqlExec, SqlRow } from '../../core/hq/registry-db.js';

export interface DeviceRow {
  readonly serialNumber: string;
  readonly chipId: string;
  readonly stationId: string;
  readonly model: string;
  readonly workOrder: string;
  readonly state: DeviceState;
  readonly stateSince: string;
  readonly suspendedAt: string | null;
  readonly createdAt: string;
}

export interface CredentialRow extends Credential {
  readonly serialNumber: string;
  readonly stationId: string;
  readonly certPem: string | null;
  readonly csrSha256: string | null;
  readonly recordId: string | null;
  readonly createdAt: string;
}

const s = (r: SqlRow, k: string): string => r[k] as string;
const sn = (r: SqlRow, k: string): string | null => (r[k] as string | null) ?? null;

function deviceFrom(r: SqlRow): DeviceRow {
  return {
    serialNumber: s(r, 'serial_number'),
    chipId: s(r, 'chip_id'),
    stationId: s(r, 'station_id'),
    model: s(r, 'model'),
    workOrder: s(r, 'work_order'),
    state: s(r, 'state') as DeviceState,
    stateSince: s(r, 'state_since'),
    suspendedAt: sn(r, 'suspended_at'),
    createdAt: s(r, 'created_at'),
  };
}

function credentialFrom(r: SqlRow): CredentialRow {
  return {
    serialNumber: s(r, 'serial_number'),
    version: Number(r['version']),
    serial: s(r, 'cert_serial'),
    stationId: s(r, 'station_id'),
    sha256: s(r, 'sha256') ?? '',
    notBefore: s(r, 'not_before') ?? '',
    notAfter: s(r, 'not_after') ?? '',
    status: s(r, 'status') as CredentialStatus,
    reason: sn(r, 'reason') as RevocationReason | null,
    revokedAt: sn(r, 'revoked_at'),
    certPem: sn(r, 'cert_pem'),
    csrSha256: sn(r, 'csr_sha256'),
    recordId: sn(r, 'record_id'),
    createdAt: s(r, 'created_at'),
  };
}

// ---------------------------------------------------------------- devices and credentials

/** A device by serial number or chip id. */
export async function findDevice(x: SqlExec, key: string): Promise<DeviceRow | null> {
  const r = (await x.all('SELECT * FROM devices WHERE serial_number = ? OR chip_id = ?', [key, key]))[0];
  return r ? deviceFrom(r) : null;
}

export async function devicesWhere(
  x: SqlExec,
  where: { workOrder?: string; serialFrom?: string; serialTo?: string },
): Promise<DeviceRow[]> {
  const cond: string[] = [];
  const args: unknown[] = [];
  const add = (c: string, v: unknown): void => {
    cond.push(c);
    args.push(v);
  };
  if (where.workOrder !== undefined) add('work_order = ?', where.workOrder);
  if (where.serialFrom !== undefined) add('serial_number >= ?', where.serialFrom);
  if (where.serialTo !== undefined) add('serial_number <= ?', where.serialTo);
  const rows = await x.all(
    `SELECT * FROM devices ${cond.length ? 'WHERE ' + cond.join(' AND ') : ''} ORDER BY serial_number`,
    args,
  );
  return rows.map(deviceFrom);
}

export async function insertDevice(x: SqlExec, d: DeviceRow): Promise<void> {
  await x.run(
    `INSERT INTO devices (serial_number, chip_id, station_id, model, work_order, state, state_since, suspended_at, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [d.serialNumber, d.chipId, d.stationId, d.model, d.workOrder, d.state, d.stateSince, d.suspendedAt, d.createdAt],
  );
}

export async function setDeviceState(
  x: SqlExec,
  serial: string,
  state: DeviceState,
  at: string,
  suspendedAt: string | null,
): Promise<void> {
  await x.run('UPDATE devices SET state = ?, state_since = ?, suspended_at = ? WHERE serial_number = ?', [
    state,
    at,
    suspendedAt,
    serial,
  ]);
}

export async function credentials(x: SqlExec, serialNumber: string): Promise<CredentialRow[]> {
  return (await x.all('SELECT * FROM credentials WHERE serial_number = ? ORDER BY version', [serialNumber])).map(
    credentialFrom,
  );
}

export async function credentialBySerial(
  x: SqlExec,
  stationId: string,
  certSerial: string,
): Promise<CredentialRow | null> {
  const r = (
    await x.all('SELECT * FROM credentials WHERE station_id = ? AND cert_serial = ?', [stationId, certSerial])
  )[0];
  return r ? credentialFrom(r) : null;
}

export async function credentialByCsr(x: SqlExec, serialNumber: string, csrSha256: string): Promise<CredentialRow[]> {
  return (
    await x.all('SELECT * FROM credentials WHERE serial_number = ? AND csr_sha256 = ? ORDER BY version', [
      serialNumber,
      csrSha256,
    ])
  ).map(credentialFrom);
}

export async function insertCredential(x: SqlExec, c: CredentialRow): Promise<void> {
  await x.run(
    `INSERT INTO credentials (serial_number, version, cert_serial, station_id, sha256, not_before, not_after, status,
       reason, revoked_at, cert_pem, csr_sha256, record_id, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      c.serialNumber,
      c.version,
      c.serial,
      c.stationId,
      c.sha256 || null,
      c.notBefore || null,
      c.notAfter || null,
      c.status,
      c.reason,
      c.revokedAt,
      c.certPem,
      c.csrSha256,
      c.recordId,
      c.createdAt,
    ],
  );
}

/** Change the status of credentials of a device that are in one of `from`. Returns the number changed. */
export async function setCredentialStatus(
  x: SqlExec,
  serialNumber: string,
  from: readonly CredentialStatus[],
  to: CredentialStatus,
  reason: RevocationReason | null,
  at: string | null,
  version?: number,
): Promise<number> {
  return x.run(
    `UPDATE credentials SET status = ?, reason = ?, revoked_at = ?
     WHERE serial_number = ? AND status IN (${from.map(() => '?').join(', ')})${version !== undefined ? ' AND version = ?' : ''}`,
    [to, reason, at, serialNumber, ...from, ...(version !== undefined ? [version] : [])],
  );
}

export async function activateCredential(
  x: SqlExec,
  serialNumber: string,
  version: number,
  fields: { sha256: string; notBefore: string; notAfter: string; certPem: string },
): Promise<number> {
  return x.run(
    `UPDATE credentials SET status = 'active', reason = NULL, revoked_at = NULL, sha256 = ?, not_before = ?,
       not_after = ?, cert_pem = ? WHERE serial_number = ? AND version = ? AND status = 'pending'`,
    [fields.sha256, fields.notBefore, fields.notAfter, fields.certPem, serialNumber, version],
  );
}

/** Credentials of a station's CA that must appear on its CRL (not active), with their device's state. */
export async function crlCandidates(
  x: SqlExec,
  stationId: string,
): Promise<(CredentialRow & { deviceState: DeviceState; suspendedAt: string | null })[]> {
  const rows = await x.all(
    `SELECT c.*, d.state AS device_state, d.suspended_at AS device_suspended_at
     FROM credentials c JOIN devices d ON d.serial_number = c.serial_number
     WHERE c.station_id = ? AND (c.status <> 'active' OR d.state = 'suspended') ORDER BY c.serial_number, c.version`,
    [stationId],
  );
  return rows.map((r) => ({
    ...credentialFrom(r),
    deviceState: s(r, 'device_state') as DeviceState,
    suspendedAt: sn(r, 'device_suspended_at'),
  }));
}

// ---------------------------------------------------------------- blocked identifiers

export interface BlockRow {
  readonly kind: 'serial' | 'chipId';
  readonly value: string;
  readonly reason: string;
  readonly blockedAt: string;
  readonly releasedAt: string | null;
}

export async function block(x: SqlExec, kind: 'serial' | 'chipId', value: string, reason: string, at: string) {
  await x.run(
    `INSERT INTO blocked_identifiers (kind, value, reason, blocked_at, released_at) VALUES (?, ?, ?, ?, NULL)
     ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason, blocked_at = excluded.blocked_at, released_at = NULL`,
    [kind, value, reason, at],
  );
}

export async function release(x: SqlExec, kind: 'serial' | 'chipId', value: string, at: string): Promise<number> {
  return x.run('UPDATE blocked_identifiers SET released_at = ? WHERE kind = ? AND value = ? AND released_at IS NULL', [
    at,
    kind,
    value,
  ]);
}

export async function activeBlocks(x: SqlExec): Promise<BlockRow[]> {
  return (await x.all('SELECT * FROM blocked_identifiers WHERE released_at IS NULL ORDER BY kind, value')).map((r) => ({
    kind: s(r, 'kind') as 'serial' | 'chipId',
    value: s(r, 'value'),
    reason: s(r, 'reason'),
    blockedAt: s(r, 'blocked_at'),
    releasedAt: null,
  }));
}

export async function isBlocked(x: SqlExec, serial: string, chipId: string): Promise<boolean> {
  const r = await x.all(
    `SELECT 1 AS b FROM blocked_identifiers WHERE released_at IS NULL
     AND ((kind = 'serial' AND value = ?) OR (kind = 'chipId' AND value = ?))`,
    [serial, chipId],
  );
  return r.length > 0;
}

// ---------------------------------------------------------------- event log

/** Append one entry to the hash-chained lifecycle log (call inside the transaction that makes the change). */
export async function appendEvent(
  x: SqlExec,
  ts: string,
  type: string,
  payload: Record<string, unknown>,
  runId: string | null = null,
): Promise<AuditEntry> {
  const last = (await x.all('SELECT seq, hash FROM lifecycle_events ORDER BY seq DESC LIMIT 1'))[0];
  const seq = last ? Number(last['seq']) + 1 : 1;
  const prevHash = last ? s(last, 'hash') : GENESIS_HASH;
  const hash = await auditEntryHash(prevHash, { seq, ts, type, runId, payload });
  await x.run(
    'INSERT INTO lifecycle_events (seq, ts, type, run_id, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
    [seq, ts, type, runId, JSON.stringify(payload), prevHash, hash],
  );
  return { seq, ts, type, runId, payload, prevHash, hash };
}

function eventFrom(r: SqlRow): AuditEntry {
  return {
    seq: Number(r['seq']),
    ts: s(r, 'ts'),
    type: s(r, 'type'),
    runId: sn(r, 'run_id'),
    payload: JSON.parse(s(r, 'payload')) as Record<string, unknown>,
    prevHash: s(r, 'prev_hash'),
    hash: s(r, 'hash'),
  };
}

export async function eventsFor(x: SqlExec, serialNumber: string): Promise<AuditEntry[]> {
  const rows = await x.all('SELECT * FROM lifecycle_events ORDER BY seq');
  return rows.map(eventFrom).filter((e) => e.payload['serialNumber'] === serialNumber);
}

/** Verify the whole lifecycle log (streamed in pages of 1000). */
export async function verifyEventLog(x: SqlExec): Promise<ChainVerification> {
  async function* entries(): AsyncIterable<AuditEntry> {
    let after = 0;
    for (;;) {
      const rows = await x.all('SELECT * FROM lifecycle_events WHERE seq > ? ORDER BY seq LIMIT 1000', [after]);
      for (const r of rows) yield eventFrom(r);
      if (rows.length < 1000) return;
      after = Number(rows[rows.length - 1]!['seq']);
    }
  }
  return verifyChain(entries());
}

// ---------------------------------------------------------------- settings, CA keys, CRLs, operators, quotas

export async function getSetting(x: SqlExec, k: string): Promise<string | null> {
  const r = (await x.all('SELECT v FROM lifecycle_settings WHERE k = ?', [k]))[0];
  return r ? s(r, 'v') : null;
}

export async function setSetting(x: SqlExec, k: string, v: string): Promise<void> {
  await x.run('INSERT INTO lifecycle_settings (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v', [
    k,
    v,
  ]);
}

/** A delegated revocation signer of headquarters for one station (schema v4, docs/lifecycle.md). */
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

export async function revokedOperators(
  x: SqlExec,
): Promise<{ operatorId: string; reason: string; revokedAt: string }[]> {
  return (await x.all('SELECT * FROM revoked_operators ORDER BY operator_id')).map((r) => ({
    operatorId: s(r, 'operator_id'),
    reason: s(r, 'reason'),
    revokedAt: s(r, 'revoked_at'),
  }));
}

export async function quotasFor(
  x: SqlExec,
  stationId: string,
): Promise<{ workOrder: string; quantity: number; updatedAt: string }[]> {
  return (await x.all('SELECT * FROM quotas WHERE station_id = ? ORDER BY work_order', [stationId])).map((r) => ({
    workOrder: s(r, 'work_order'),
    quantity: Number(r['quantity']),
    updatedAt: s(r, 'updated_at'),
  }));
}

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

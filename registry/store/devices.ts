/**
 * Lifecycle tables (schema v2): devices, their versioned credentials, blocked identifiers. Plain functions over a
 * SqlExec so that callers compose them inside one `db.sql.transaction`. Imports core and ./rows.ts.
 */
import type { Credential, CredentialStatus, DeviceState, RevocationReason } from '../../core/lifecycle.js';
import type { SqlExec, SqlRow } from '../../core/hq/registry-db.js';
import { s, sn } from './rows.js';

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
  await insertDevices(x, [d]);
}

/** `n` placeholders tuples of `k` columns: `(?, ?), (?, ?)`. */
const tuples = (n: number, k: number): string =>
  Array(n)
    .fill(`(${Array(k).fill('?').join(', ')})`)
    .join(', ');

/** Rows a multi-row statement takes at once (SQLite allows 32,766 parameters, PostgreSQL 65,535). */
const ROWS_PER_STATEMENT = 500;

async function insertRows<T>(
  x: SqlExec,
  head: string,
  columns: number,
  rows: readonly T[],
  values: (r: T) => unknown[],
) {
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    const part = rows.slice(i, i + ROWS_PER_STATEMENT);
    await x.run(`${head} VALUES ${tuples(part.length, columns)}`, part.flatMap(values));
  }
}

/** Insert devices, several rows per statement (ingest of a batch of new devices). */
export async function insertDevices(x: SqlExec, ds: readonly DeviceRow[]): Promise<void> {
  await insertRows(
    x,
    'INSERT INTO devices (serial_number, chip_id, station_id, model, work_order, state, state_since, suspended_at, created_at)',
    9,
    ds,
    (d) => [
      d.serialNumber,
      d.chipId,
      d.stationId,
      d.model,
      d.workOrder,
      d.state,
      d.stateSince,
      d.suspendedAt,
      d.createdAt,
    ],
  );
}

/** The devices whose serial number or chip id is one of `keys` (findDevice for many keys at once). */
export async function findDevices(x: SqlExec, keys: readonly string[]): Promise<DeviceRow[]> {
  const out: DeviceRow[] = [];
  for (let i = 0; i < keys.length; i += ROWS_PER_STATEMENT) {
    const part = keys.slice(i, i + ROWS_PER_STATEMENT);
    const list = Array(part.length).fill('?').join(', ');
    const rows = await x.all(`SELECT * FROM devices WHERE serial_number IN (${list}) OR chip_id IN (${list})`, [
      ...part,
      ...part,
    ]);
    out.push(...rows.map(deviceFrom));
  }
  return out;
}

/** Which of `certSerials` are credentials of the station already (credentialBySerial for many at once). */
export async function knownCredentialSerials(
  x: SqlExec,
  stationId: string,
  certSerials: readonly string[],
): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < certSerials.length; i += ROWS_PER_STATEMENT) {
    const part = certSerials.slice(i, i + ROWS_PER_STATEMENT);
    const rows = await x.all(
      `SELECT cert_serial FROM credentials WHERE station_id = ? AND cert_serial IN (${Array(part.length).fill('?').join(', ')})`,
      [stationId, ...part],
    );
    for (const r of rows) out.add(s(r, 'cert_serial'));
  }
  return out;
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
  await insertCredentials(x, [c]);
}

/** Insert credentials, several rows per statement. */
export async function insertCredentials(x: SqlExec, cs: readonly CredentialRow[]): Promise<void> {
  await insertRows(
    x,
    `INSERT INTO credentials (serial_number, version, cert_serial, station_id, sha256, not_before, not_after, status,
       reason, revoked_at, cert_pem, csr_sha256, record_id, created_at)`,
    14,
    cs,
    (c) => [
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

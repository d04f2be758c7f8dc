/**
 * The `stations` table writes inside a caller's transaction (core/hq/registry-db.ts SqlExec), for operations that
 * must enrol or revoke a station together with other rows in ONE transaction (commissioning: the station CA, the
 * enrolment code; station revocation: the station CA). The same statements as RegistryDb.insertStation /
 * revokeStation of ./sqlite.ts and ./postgres.ts, in the portable `?` form.
 */
import type { NewStation, SqlExec } from '../../core/hq/registry-db.js';

/** Insert a station row; false when the id exists (nothing changed). Throws on database errors. */
export async function insertStationIn(x: SqlExec, st: NewStation): Promise<boolean> {
  const n = await x.run(
    `INSERT INTO stations (station_id, chain_pem, cert_sha256, ca_sha256, root_sha256, work_orders, enrolled_at)
     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (station_id) DO NOTHING`,
    stationInsertArgs(st),
  );
  return n === 1;
}

/** The values of a stations row insert, in column order (every writer of the table uses it). */
export function stationInsertArgs(st: NewStation): unknown[] {
  return [
    st.stationId,
    st.chainPem,
    st.certificateSha256,
    st.issuingCaSha256,
    st.rootSha256,
    JSON.stringify(st.workOrders),
    st.enrolledAt,
  ];
}

/** Set a station's revokedAt (the first revocation wins); false when the station is unknown. The time stored. */
export async function revokeStationIn(x: SqlExec, stationId: string, at: string): Promise<string | null> {
  await x.run('UPDATE stations SET revoked_at = COALESCE(revoked_at, ?) WHERE station_id = ?', [at, stationId]);
  const r = (await x.all('SELECT revoked_at FROM stations WHERE station_id = ?', [stationId]))[0];
  return r ? String(r['revoked_at']) : null;
}

/**
 * The trust material of an enrolled station (its certificate chain and the keys replaced by rotations), cached per
 * database and certificate; revoking a station forgets it. Imports core, registry/trust and registry/common.
 */
import { err, ok, type Result } from '../../core/result.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import type { RegistryContext } from '../common/context.js';
import { apiFail, storeError, type ApiError } from '../common/errors.js';
import { loadStationTrust, stationKeyHistoryRows, type StationTrust } from '../trust/verify.js';

const trustCache = new WeakMap<RegistryDb, Map<string, StationTrust>>();

/** The enrolled, non-revoked station's trust material (cached per database and certificate). */
export async function stationTrust(
  ctx: RegistryContext,
  stationId: string,
  allowRevoked = false,
): Promise<Result<StationTrust, ApiError>> {
  const row = await ctx.db.getStation(stationId);
  if (!row.ok) return err(storeError(row.error));
  if (!row.value) return apiFail('AUTH_UNKNOWN_STATION', `station ${stationId} is not enrolled`);
  if (row.value.revokedAt && !allowRevoked)
    return apiFail('AUTH_STATION_REVOKED', `station ${stationId} was revoked at ${row.value.revokedAt}`);
  let cache = trustCache.get(ctx.db);
  if (!cache) trustCache.set(ctx.db, (cache = new Map()));
  const cached = cache.get(stationId);
  if (cached && cached.row.certificateSha256 === row.value.certificateSha256) return ok({ ...cached, row: row.value });
  // Keys replaced by rotations (station key rotation, docs/lifecycle.md): records completed before still verify.
  let history: Awaited<ReturnType<typeof stationKeyHistoryRows>>;
  try {
    history = await stationKeyHistoryRows(ctx.db.sql, stationId);
  } catch (e) {
    return err(storeError({ message: `station key history: ${e instanceof Error ? e.message : String(e)}` }));
  }
  const t = await loadStationTrust(row.value, history);
  if (!t.ok) return err(storeError(t.error));
  cache.set(stationId, t.value);
  return ok(t.value);
}

/** Drop a station's cached trust (after its revocation). */
export function forgetStationTrust(db: RegistryDb, stationId: string): void {
  trustCache.get(db)?.delete(stationId);
}

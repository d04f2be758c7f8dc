/**
 * Station enrolment and revocation (docs/registry-api.md): the admin enrols a station with its chain and revokes
 * it; `enrolledStation` reads an enrolled station for the lifecycle features. Imports core, registry/common,
 * registry/trust.
 */
import { sha256Hex } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { err, ok, type Result } from '../../core/result.js';
import type { StationRow } from '../../core/hq/registry-db.js';
import type { EnrollStationRequest, StationSummary } from '../../core/hq/protocol.js';
import type { RegistryContext } from '../common/context.js';
import { apiFail, storeError, storeFail, type ApiError } from '../common/errors.js';
import { forgetStationTrust } from './trust.js';
import { checkStationChain } from '../trust/verify.js';

/** The wire summary of a station row. */
export function summary(s: {
  stationId: string;
  certificateSha256: string;
  issuingCaSha256: string;
  rootSha256: string;
  workOrders: readonly string[];
  enrolledAt: string;
  revokedAt: string | null;
  lastSyncAt: string | null;
  records?: number;
  conflicts?: number;
}): StationSummary {
  return {
    stationId: s.stationId,
    certificateSha256: s.certificateSha256,
    issuingCaSha256: s.issuingCaSha256,
    rootSha256: s.rootSha256,
    workOrders: [...s.workOrders],
    enrolledAt: s.enrolledAt,
    revokedAt: s.revokedAt,
    lastSyncAt: s.lastSyncAt,
    records: s.records ?? 0,
    conflicts: s.conflicts ?? 0,
  };
}

/**
 * Enrol a station with its chain (station certificate, issuing CA, root). Enrolling the same id with the same
 * chain again is a no-op; a different chain for an existing id is STATION_CONFLICT (revoked ids stay revoked).
 */
export async function enrollStation(
  ctx: RegistryContext,
  req: EnrollStationRequest,
): Promise<Result<{ created: boolean; station: StationSummary }, ApiError>> {
  const chain = await checkStationChain(req.stationId, req.chainPem, ctx.clock.now());
  if (!chain.ok) return apiFail('BODY_INVALID', chain.error.message);
  const row = {
    stationId: req.stationId,
    chainPem: req.chainPem.replace(/\r\n/g, '\n').trim() + '\n',
    certificateSha256: await sha256Hex(chain.value.stationCert),
    issuingCaSha256: await sha256Hex(chain.value.issuingCa),
    rootSha256: await sha256Hex(chain.value.root),
    workOrders: [...new Set(req.workOrders ?? [])].sort(),
    enrolledAt: ctx.clock.now().toISOString(),
  };
  const ins = await ctx.db.insertStation(row);
  if (!ins.ok) return err(storeError(ins.error));
  const cur = await ctx.db.getStation(req.stationId);
  if (!cur.ok) return err(storeError(cur.error));
  if (!cur.value) return apiFail('INTERNAL', 'the station vanished after enrolment');
  if (!ins.value.created) {
    if (cur.value.revokedAt)
      return apiFail('STATION_CONFLICT', `station ${req.stationId} was revoked; enrol it under a new id`);
    if (
      cur.value.certificateSha256 !== row.certificateSha256 ||
      canonicalJson(cur.value.workOrders) !== canonicalJson(row.workOrders)
    )
      return apiFail(
        'STATION_CONFLICT',
        `station ${req.stationId} is already enrolled with a different certificate or work orders`,
      );
  } else
    ctx.logger.log('info', 'station enrolled', { stationId: req.stationId, certificateSha256: row.certificateSha256 });
  return ok({ created: ins.value.created, station: summary(cur.value) });
}

/** Revoke a station: from now on nothing it sends is accepted. NOT_FOUND for an unknown id. */
export async function revokeStation(
  ctx: RegistryContext,
  stationId: string,
): Promise<Result<StationSummary, ApiError>> {
  const r = await ctx.db.revokeStation(stationId, ctx.clock.now().toISOString());
  if (!r.ok) return err(storeError(r.error));
  if (!r.value) return apiFail('NOT_FOUND', `station ${stationId} is not enrolled`);
  forgetStationTrust(ctx.db, stationId);
  const cur = await ctx.db.getStation(stationId);
  if (!cur.ok) return err(storeError(cur.error));
  ctx.logger.log('warn', 'station revoked', { stationId });
  return ok(summary(cur.value!));
}

/** An enrolled station's row (revoked ones too); NOT_FOUND when it is not enrolled. */
export async function enrolledStation(ctx: RegistryContext, stationId: string): Promise<Result<StationRow, ApiError>> {
  const row = await ctx.db.getStation(stationId);
  if (!row.ok) return storeFail(row.error.message);
  if (!row.value) return apiFail('NOT_FOUND', `station ${stationId} is not enrolled`);
  return ok(row.value);
}

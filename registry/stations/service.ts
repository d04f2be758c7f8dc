/**
 * Station enrolment and revocation (docs/registry-api.md): the admin enrols a station with its chain and revokes
 * it (with its HQ-issued station CA); `enrolledStation` reads an enrolled station for the lifecycle features. Imports core, registry/common,
 * registry/trust and ./queries.ts (a station's wire summary).
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
import type { LifecycleRole, RevocationReason } from '../../core/lifecycle.js';
import { revokeStationIn } from '../../native/registry-store/stations-sql.js';
import { transact } from '../common/tx.js';
import { appendEvent } from '../store/lifecycle.js';
import { refreshHqCrl, revokeStationCaIn } from '../commissioning/hq-revocation.js';
import { summary } from './queries.js';

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

/**
 * Revoke a station: from now on nothing it sends is accepted. In ONE transaction: the station row's revokedAt, its
 * HQ-issued station CA certificate revoked at the same time with `reason` (station_cas; legacy stations have none)
 * and `station.revoked` in the lifecycle log; then the HQ CRL is re-signed (it lists the station CA). The same
 * function for `registry revoke-station` and both revocation routes. NOT_FOUND for an unknown id.
 */
export async function revokeStation(
  ctx: RegistryContext,
  stationId: string,
  o: { reason?: RevocationReason; actor: LifecycleRole } = { actor: 'admin' },
): Promise<Result<StationSummary, ApiError>> {
  const reason = o.reason ?? 'unspecified';
  const at = ctx.clock.now().toISOString();
  const r = await transact(ctx.db.sql, async (x) => {
    const revokedAt = await revokeStationIn(x, stationId, at);
    if (revokedAt === null) return apiFail<never>('NOT_FOUND', `station ${stationId} is not enrolled`);
    const first = revokedAt === at;
    const hasCa = await revokeStationCaIn(x, stationId, revokedAt, reason);
    if (first) await appendEvent(x, at, 'station.revoked', { stationId, actor: o.actor, reason, stationCa: hasCa });
    return ok({ hasCa, first });
  });
  if (!r.ok) return r;
  forgetStationTrust(ctx.db, stationId);
  if (r.value.hasCa) {
    const crl = await refreshHqCrl(ctx);
    if (!crl.ok)
      ctx.logger.log('error', 'HQ CRL not re-signed after a station revocation', { stationId, code: crl.error.code });
  }
  const cur = await ctx.db.getStation(stationId);
  if (!cur.ok) return err(storeError(cur.error));
  if (r.value.first) ctx.logger.log('warn', 'station revoked', { stationId, reason, stationCa: r.value.hasCa });
  return ok(summary(cur.value!, r.value.hasCa));
}

/** An enrolled station's row (revoked ones too); NOT_FOUND when it is not enrolled. */
export async function enrolledStation(ctx: RegistryContext, stationId: string): Promise<Result<StationRow, ApiError>> {
  const row = await ctx.db.getStation(stationId);
  if (!row.ok) return storeFail(row.error.message);
  if (!row.value) return apiFail('NOT_FOUND', `station ${stationId} is not enrolled`);
  return ok(row.value);
}

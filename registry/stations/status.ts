/**
 * The signed station status (`GET /v1/station-status`): whether a station is revoked, bound to its request.
 * Imports core and registry/common.
 */
import { utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { ok, type Result } from '../../core/result.js';
import { STATION_STATUS_SCHEMA, STATION_STATUS_TYP, type StationStatusPayload } from '../../core/hq/protocol.js';
import { apiFail, storeFail, type ApiError } from '../common/errors.js';
import { now, type LifecycleContext } from '../common/context.js';

/**
 * The registry's signed answer to `GET /v1/station-status` (core/hq/protocol.ts StationStatusPayloadSchema):
 * whether `stationId` is revoked, bound to the request's LS-Sig nonce and ts. Answered to revoked stations too.
 */
export async function signedStationStatus(
  ctx: LifecycleContext,
  stationId: string,
  claims: { readonly nonce: string; readonly ts: string },
): Promise<Result<{ jws: string }, ApiError>> {
  const row = await ctx.db.getStation(stationId);
  if (!row.ok) return storeFail(row.error.message);
  if (!row.value) return apiFail('NOT_FOUND', `station ${stationId} is not enrolled`);
  const revokedAt = row.value.revokedAt;
  const payload: StationStatusPayload = {
    schema: STATION_STATUS_SCHEMA,
    registryId: ctx.registryId,
    stationId,
    status: revokedAt ? 'revoked' : 'active',
    revokedAt: revokedAt ?? null,
    requestNonce: claims.nonce,
    requestTs: claims.ts,
    issuedAt: now(ctx),
  };
  const jws = await signJws({
    signer: ctx.signer,
    payload: utf8(canonicalJson(payload)),
    header: { typ: STATION_STATUS_TYP, kid: ctx.registryId, x5c: ctx.registryChain },
  });
  if (!jws.ok) return apiFail('INTERNAL', `station status could not be signed: ${jws.error.message}`);
  return ok({ jws: jws.value });
}

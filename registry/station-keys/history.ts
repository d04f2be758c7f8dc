/**
 * A station's key history (`registry station-keys`): the current key and the ones replaced by rotations.
 * Imports core, registry/common, registry/trust and registry/stations.
 */
import 'reflect-metadata';
import { X509Certificate } from '@peculiar/x509';
import { buf } from '../../core/pki/ecdsa.js';
import { fromPemChain } from '../../core/pki/pem.js';
import { ok, type Result } from '../../core/result.js';
import { stationKeyHistoryRows } from '../trust/verify.js';
import { guarded, type ApiError } from '../common/errors.js';
import { type LifecycleContext } from '../common/context.js';
import { enrolledStation } from '../stations/service.js';

export interface StationKeyView {
  readonly certificateSha256: string;
  readonly serialNumber: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** When this key became the station's key (enrolment, or the rotation that introduced it). */
  readonly since: string;
  /** When it was replaced (null: the current key). */
  readonly replacedAt: string | null;
}

/** The station's key history, current first then replaced ones (newest first). */
export async function stationKeyHistory(
  ctx: LifecycleContext,
  stationId: string,
): Promise<Result<{ stationId: string; revokedAt: string | null; keys: StationKeyView[] }, ApiError>> {
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  const h = await guarded(async () => ok(await stationKeyHistoryRows(ctx.db.sql, stationId)));
  if (!h.ok) return h;
  const view = (pem: string, sha: string, since: string, replacedAt: string | null): StationKeyView => {
    const c = fromPemChain(pem);
    const x = c.ok && c.value[0] ? new X509Certificate(buf(c.value[0])) : null;
    return {
      certificateSha256: sha,
      serialNumber: x?.serialNumber.toLowerCase() ?? '',
      notBefore: x ? x.notBefore.toISOString() : '',
      notAfter: x ? x.notAfter.toISOString() : '',
      since,
      replacedAt,
    };
  };
  // Oldest first: each key was in use from the previous replacement (or enrolment) to its own replacement.
  const older = [...h.value].sort((a, b) => (a.replacedAt < b.replacedAt ? -1 : a.replacedAt > b.replacedAt ? 1 : 0));
  const keys: StationKeyView[] = [];
  let since = row.value.enrolledAt;
  for (const k of older) {
    keys.push(view(k.chainPem, k.certSha256, since, k.replacedAt));
    since = k.replacedAt;
  }
  keys.push(view(row.value.chainPem, row.value.certificateSha256, since, null));
  return ok({ stationId, revokedAt: row.value.revokedAt, keys: keys.reverse() });
}

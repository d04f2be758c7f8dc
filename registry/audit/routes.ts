/**
 * HTTP handlers of audit anchoring (docs/audit.md): a station's signed anchored heads, and the admin's view of a
 * station's anchored history. Imports core, registry/common and ./.
 */
import { ok } from '../../core/result.js';
import { apiFail } from '../common/errors.js';
import { json, param, stationCaller, type RouteHandlers } from '../common/route.js';
import { signedAnchoredHeads, stationAudit } from './audit-anchor.js';

/** The audit handlers. */
export const auditRoutes: RouteHandlers = {
  // The station's anchored audit heads, signed (station/sync.ts anchoredHeads, `station verify-log --against-registry`).
  auditHeads: {
    async handle(r) {
      const challenge = r.url.searchParams.get('challenge') ?? '';
      if (!/^[A-Za-z0-9_-]{22}$/.test(challenge) || [...r.url.searchParams.keys()].length !== 1)
        return apiFail('BODY_INVALID', 'expected exactly ?challenge=<16 random bytes, base64url>');
      const jws = await signedAnchoredHeads(r.ctx, stationCaller(r).trust.row.stationId, challenge);
      return jws.ok ? ok({ json: { jws: jws.value } }) : jws;
    },
  },
  stationAudit: { handle: async (r) => json(await stationAudit(r.ctx, param(r, 'stationId'))) },
};

/**
 * HTTP handlers of stations: enrolment and revocation (admin; the officer's lifecycle revocation also logs it),
 * operator revocation, the admin views, and the signed station status for the station itself. Imports core,
 * registry/common and ./.
 */
import { z } from 'zod';
import { REVOCATION_REASONS } from '../../core/lifecycle.js';
import { ok } from '../../core/result.js';
import { EnrollStationRequestSchema } from '../../core/hq/protocol.js';
import { apiFail } from '../common/errors.js';
import {
  json,
  jsonBody,
  officerRole,
  param,
  ReasonBodySchema,
  stationCaller,
  strictJsonBody,
  type RouteHandlers,
} from '../common/route.js';
import { revokeOperator } from './operators.js';
import { getDevice, listStations, queryRecords, stats, type RecordQuery } from './queries.js';
import { enrollStation, revokeStation } from './service.js';
import { signedStationStatus } from './status.js';

/** The body of a station revocation: an optional RFC 5280 reason for its station CA (default unspecified). */
const StationRevokeBodySchema = z.object({ reason: z.enum(REVOCATION_REASONS).optional() }).strict();

const RECORD_QUERY_KEYS = new Set(['station', 'workOrder', 'from', 'to', 'limit', 'cursor']);

/** The station handlers. */
export const stationRoutes: RouteHandlers = {
  enrollStation: {
    async handle(r) {
      const b = strictJsonBody(r, EnrollStationRequestSchema);
      if (!b.ok) return b;
      return json(await enrollStation(r.ctx, b.value), (v) => (v.created ? 201 : 200));
    },
  },
  revokeStation: {
    async handle(r) {
      const b = jsonBody(r, StationRevokeBodySchema);
      if (!b.ok) return b;
      const s = await revokeStation(r.ctx, param(r, 'stationId'), { actor: 'admin', ...b.value });
      return s.ok ? ok({ json: { station: s.value } }) : s;
    },
  },
  lifecycleRevokeStation: {
    async handle(r) {
      const b = jsonBody(r, StationRevokeBodySchema);
      if (!b.ok) return b;
      const s = await revokeStation(r.ctx, param(r, 'stationId'), { actor: officerRole(r), ...b.value });
      return s.ok ? ok({ json: { station: s.value } }) : s;
    },
  },
  revokeOperator: {
    async handle(r) {
      const b = jsonBody(r, ReasonBodySchema);
      if (!b.ok) return b;
      return json(await revokeOperator(r.ctx, officerRole(r), param(r, 'operator'), b.value.reason ?? 'unspecified'));
    },
  },
  stations: {
    async handle(r) {
      const s = await listStations(r.ctx);
      return s.ok ? ok({ json: { stations: s.value } }) : s;
    },
  },
  stats: { handle: async (r) => json(await stats(r.ctx)) },
  device: {
    async handle(r) {
      let key: string;
      try {
        key = decodeURIComponent(param(r, 'identifier'));
      } catch {
        return apiFail('BODY_INVALID', 'invalid device key');
      }
      return json(await getDevice(r.ctx, key));
    },
  },
  records: {
    async handle(r) {
      const q = recordQuery(r.url.searchParams);
      return q.ok ? json(await queryRecords(r.ctx, q.value)) : q;
    },
  },
  // Answered to a revoked station too (and only this route): its signed answer is how it learns it.
  stationStatus: {
    allowRevokedStation: true,
    async handle(r) {
      const s = stationCaller(r);
      return json(await signedStationStatus(r.ctx, s.trust.row.stationId, s.claims));
    },
  },
};

/** `GET /v1/records` query parameters: only the known ones, limit 1..4 digits. */
function recordQuery(p: URLSearchParams) {
  for (const k of p.keys())
    if (!RECORD_QUERY_KEYS.has(k)) return apiFail('BODY_INVALID', `unknown query parameter ${k}`);
  const g = (k: string) => p.get(k) ?? undefined;
  const limit = g('limit');
  if (limit !== undefined && !/^[0-9]{1,4}$/.test(limit))
    return apiFail('BODY_INVALID', 'limit must be an integer in 1..1000');
  const q: RecordQuery = {
    ...(g('station') !== undefined ? { station: g('station')! } : {}),
    ...(g('workOrder') !== undefined ? { workOrder: g('workOrder')! } : {}),
    ...(g('from') !== undefined ? { from: g('from')! } : {}),
    ...(g('to') !== undefined ? { to: g('to')! } : {}),
    ...(limit !== undefined ? { limit: Number(limit) } : {}),
    ...(g('cursor') !== undefined ? { cursor: g('cursor')! } : {}),
  };
  return ok(q);
}

/**
 * HTTP handlers of station key rotation: the admin route (new chain signed by the current key) and the station's
 * signed request. Imports core, registry/common and ./.
 */
import { z } from 'zod';
import { KeyRotationBodySchema } from '../../core/hq/key-rotation.js';
import { json, jsonBody, param, stationCaller, type RouteHandlers } from '../common/route.js';
import { rotateStationKey, stationKeyRotation } from './rotation.js';

/** `POST /v1/admin/stations/:stationId/rotate-key`: the new chain and the current key's signature over it. */
export const StationKeyRotationSchema = z
  .object({
    chainPem: z
      .string()
      .min(1)
      .max(64 * 1024),
    signature: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'expected base64url')
      .max(64 * 1024),
  })
  .strict();

/** The station key handlers. */
export const stationKeyRoutes: RouteHandlers = {
  adminRotateStationKey: {
    async handle(r) {
      const b = jsonBody(r, StationKeyRotationSchema);
      if (!b.ok) return b;
      return json(await rotateStationKey(r.ctx, param(r, 'stationId'), b.value.chainPem, b.value.signature));
    },
  },
  // Station key rotation (docs/lifecycle.md): LS-Sig of the station (its current key, or, when a retry finds the
  // rotation already applied, its new one); the body's request is signed by the key being replaced.
  stationKeyRotation: {
    async handle(r) {
      const b = jsonBody(r, KeyRotationBodySchema);
      if (!b.ok) return b;
      const authenticatedStationId = stationCaller(r).trust.row.stationId;
      return json(await stationKeyRotation(r.ctx, b.value.request, { via: 'station', authenticatedStationId }));
    },
  },
};

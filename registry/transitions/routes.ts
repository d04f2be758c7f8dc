/**
 * HTTP handlers of device transitions (officer bearer token; docs/lifecycle.md): one device, its release and
 * history, batches, blocks, the lifecycle log verification. Imports core, registry/common and ./.
 */
import { z } from 'zod';
import { REVOCATION_REASONS, type LifecycleEvent } from '../../core/lifecycle.js';
import { apiFail } from '../common/errors.js';
import {
  json,
  jsonBody,
  officerRole,
  param,
  ReasonBodySchema,
  ReasonSchema,
  type RouteHandlers,
} from '../common/route.js';
import {
  applyTransition,
  batchTransition,
  blockIdentifier,
  deviceHistory,
  releaseDevice,
  verifyLifecycleLog,
  type BatchEvent,
} from './service.js';

/** `POST /v1/devices/:serial/{activate,suspend,resume,decommission}` and `release`. */
export const TransitionBodySchema = ReasonBodySchema;
/** `POST /v1/devices/:serial/revoke`: an RFC 5280 reason. */
export const RevokeBodySchema = z.object({ reason: z.enum(REVOCATION_REASONS).optional() }).strict();
/** `POST /v1/lifecycle/revoke`: a work order and / or a serial range, a reason, a dry run. */
export const BatchRevokeBodySchema = z
  .object({
    workOrder: z.string().min(1).max(64).optional(),
    serialFrom: z.string().min(1).max(128).optional(),
    serialTo: z.string().min(1).max(128).optional(),
    reason: z.enum(REVOCATION_REASONS),
    dryRun: z.boolean().optional(),
  })
  .strict();
/** Batch suspend (reason required) and resume (reason optional): same selector as the batch revoke. */
export const BatchHoldBodySchema = BatchRevokeBodySchema.extend({ reason: ReasonSchema.optional() }).strict();
/** `POST /v1/lifecycle/blocks`. */
export const BlockBodySchema = z
  .object({ kind: z.enum(['serial', 'chipId']), value: z.string().min(1).max(128), reason: ReasonSchema })
  .strict();

/** The device transition handlers. */
export const transitionRoutes: RouteHandlers = {
  deviceTransition: {
    async handle(r) {
      const action = param(r, 'transition') as Exclude<LifecycleEvent, 'rotate'>;
      const b = jsonBody(r, action === 'revoke' ? RevokeBodySchema : TransitionBodySchema);
      if (!b.ok) return b;
      return json(await applyTransition(r.ctx, officerRole(r), param(r, 'serial'), action, b.value.reason ?? null));
    },
  },
  deviceRelease: {
    async handle(r) {
      const b = jsonBody(r, TransitionBodySchema);
      if (!b.ok) return b;
      return json(await releaseDevice(r.ctx, officerRole(r), param(r, 'serial'), b.value.reason ?? ''));
    },
  },
  deviceHistory: {
    handle: async (r) => json(await deviceHistory(r.ctx, param(r, 'serial'))),
  },
  batchTransition: {
    async handle(r) {
      const event = param(r, 'batchAction') as BatchEvent;
      const b = jsonBody(r, event === 'revoke' ? BatchRevokeBodySchema : BatchHoldBodySchema);
      if (!b.ok) return b;
      const v = b.value;
      if ((v.serialFrom === undefined) !== (v.serialTo === undefined))
        return apiFail('BODY_INVALID', 'give both serialFrom and serialTo');
      const sel = {
        ...(v.workOrder !== undefined ? { workOrder: v.workOrder } : {}),
        ...(v.serialFrom !== undefined ? { serialRange: [v.serialFrom, v.serialTo!] as const } : {}),
      };
      return json(await batchTransition(r.ctx, officerRole(r), sel, event, v.reason ?? null, v.dryRun ?? false));
    },
  },
  blocks: {
    async handle(r) {
      const b = jsonBody(r, BlockBodySchema);
      if (!b.ok) return b;
      return json(await blockIdentifier(r.ctx, officerRole(r), b.value.kind, b.value.value, b.value.reason));
    },
  },
  verifyLifecycle: {
    handle: async (r) => json(await verifyLifecycleLog(r.ctx)),
  },
};

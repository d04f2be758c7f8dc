/**
 * HTTP handlers of policy and quotas: officers set them (the policy only the admin), stations fetch them signed.
 * Imports core, registry/common and ./.
 */
import { z } from 'zod';
import { ok } from '../../core/result.js';
import { ProfileOverridesSchema, RevocationUrlTemplatesSchema } from '../../core/pki/device-cert.js';
import { StationIdSchema } from '../../core/hq/protocol.js';
import { json, jsonBody, officerRole, stationCaller, type RouteHandlers } from '../common/route.js';
import { FirmwareSettingSchema, ReenrollmentSettingSchema, setPolicySetting, signedPolicy } from './policy.js';
import { setQuota, signedQuotas } from './quotas.js';
import { publishWorkOrder } from './work-orders.js';

/** `POST /v1/admin/quotas`. */
export const QuotaBodySchema = z
  .object({ workOrder: z.string().min(1).max(64), stationId: StationIdSchema, quantity: z.number().int().min(0) })
  .strict();
/**
 * `POST /v1/admin/policy` (admin): `firmware` replaces the whole map, `profileOverrides` the overrides
 * (ProfileOverridesSchema), `reenrollment` is merged into the stored lifetimes (seconds, 1 h .. 100 years),
 * `revocationUrls` replaces the CRL / OCSP URL templates (`{}` removes them).
 */
export const PolicySettingSchema = z
  .object({
    firmware: FirmwareSettingSchema.optional(),
    profileOverrides: ProfileOverridesSchema.optional(),
    reenrollment: ReenrollmentSettingSchema.optional(),
    revocationUrls: RevocationUrlTemplatesSchema.optional(),
  })
  .strict();

/** `POST /v1/admin/work-orders` (officer): `{workOrder}` = the work order document (validated like a station's file). */
export const PublishWorkOrderBodySchema = z.object({ workOrder: z.record(z.string(), z.unknown()) }).strict();

/** The policy and quota handlers. */
export const policyRoutes: RouteHandlers = {
  setQuotas: {
    async handle(r) {
      const b = jsonBody(r, QuotaBodySchema);
      if (!b.ok) return b;
      return json(await setQuota(r.ctx, officerRole(r), b.value.workOrder, b.value.stationId, b.value.quantity));
    },
  },
  setPolicy: {
    async handle(r) {
      const b = jsonBody(r, PolicySettingSchema);
      if (!b.ok) return b;
      // setPolicySetting refuses the security officer (AUTH_FORBIDDEN) and answers the version it published.
      const p = await setPolicySetting(r.ctx, officerRole(r), b.value);
      return p.ok ? ok({ json: { version: p.value.version, jws: p.value.jws } }) : p;
    },
  },
  publishWorkOrder: {
    async handle(r) {
      const b = jsonBody(r, PublishWorkOrderBodySchema);
      if (!b.ok) return b;
      return json(await publishWorkOrder(r.ctx, officerRole(r), JSON.stringify(b.value.workOrder), 'workOrder'));
    },
  },
  policy: { handle: async (r) => json(await signedPolicy(r.ctx)) },
  quotas: { handle: async (r) => json(await signedQuotas(r.ctx, stationCaller(r).trust.row.stationId)) },
};

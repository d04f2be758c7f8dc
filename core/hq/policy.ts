/**
 * The registry's signed lifecycle documents as the station checks them: the policy (JWS typ
 * line-station-policy+jws) and the station's quotas (typ line-station-quota+jws), both signed with the registry
 * receipt key and verified with the registry certificate configured at `station enroll` (never a key taken
 * from the message). Pure apart from WebCrypto.
 */
import { z } from 'zod';
import { fail } from '../errors.js';
import { ProfileOverridesSchema, RevocationUrlTemplatesSchema } from '../pki/device-cert.js';
import { WorkOrderSchema } from '../provisioning/work-order.js';
import type { Result } from '../result.js';
import { verifyDocument } from './jws.js';
import {
  STATION_STATUS_TYP,
  StationStatusPayloadSchema,
  type RequestClaims,
  type StationStatusPayload,
} from './protocol.js';

export const POLICY_TYP = 'line-station-policy+jws';
export const QUOTA_TYP = 'line-station-quota+jws';
export const POLICY_SCHEMA = 'line-station/policy/v1';
export const QUOTA_SCHEMA = 'line-station/quotas/v1';

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const Ident = z.string().min(1).max(128);
const Iso = z.string().min(1).max(64);

export const PolicyPayloadSchema = z
  .object({
    schema: z.literal(POLICY_SCHEMA),
    registryId: z.string().min(1).max(128),
    version: z.number().int().min(0),
    issuedAt: Iso,
    revokedStations: z.array(z.object({ stationId: Ident, revokedAt: Iso.nullable() }).strict()).max(100_000),
    revokedOperators: z
      .array(z.object({ operatorId: Ident, reason: z.string().max(1024), revokedAt: Iso }).strict())
      .max(100_000),
    blocked: z.object({ serials: z.array(Ident).max(1_000_000), chipIds: z.array(Ident).max(1_000_000) }).strict(),
    /** Allowed firmware digests per work order: they replace the work order file's firmware digests. */
    firmware: z.record(z.string().max(64), z.array(Sha256Hex).max(1000)),
    /**
     * Certificate profile overrides per board profile id (core/pki/device-cert.ts): applied with
     * `applyProfileOverride` to the device certificates of the runs that start while this policy is in force.
     */
    profileOverrides: ProfileOverridesSchema,
    /** CRL / OCSP URL templates (`{stationId}`) for device certificates; over the station config's (optional). */
    revocationUrls: RevocationUrlTemplatesSchema.optional(),
    /** Re-enrolment lifetimes published by the registry (optional; shown by `station policy`). */
    reenrollment: z
      .object({
        certificateLifetimeSeconds: z.number().int().positive(),
        rotateBeforeSeconds: z.number().int().min(0),
      })
      .strict()
      .optional(),
  })
  .strict();
export type PolicyPayload = z.infer<typeof PolicyPayloadSchema>;

/**
 * This station's revocation in a policy, when it is in effect at `now` (listed with revokedAt <= now; a listing
 * without a time is in effect at once), else null.
 */
export function stationRevocation(
  policy: PolicyPayload,
  stationId: string,
  now: Date,
): { readonly revokedAt: string | null } | null {
  const s = policy.revokedStations.find((x) => x.stationId === stationId);
  if (!s) return null;
  if (s.revokedAt === null) return { revokedAt: null };
  const at = Date.parse(s.revokedAt);
  // An unparsable time cannot postpone a revocation headquarters published: in effect at once.
  if (Number.isNaN(at) || at <= now.getTime()) return { revokedAt: s.revokedAt };
  return null;
}

export const QuotaPayloadSchema = z
  .object({
    schema: z.literal(QUOTA_SCHEMA),
    registryId: z.string().min(1).max(128),
    stationId: Ident,
    version: z.number().int().min(0),
    issuedAt: Iso,
    quotas: z
      .array(z.object({ workOrder: z.string().min(1).max(64), quantity: z.number().int().min(0) }).strict())
      .max(10_000),
    /**
     * Work orders published by headquarters (`registry work-order publish`) for which this station has a quota: the
     * whole work order documents (core/provisioning/work-order.ts), signed with the quotas. At the station they take
     * the place of a local work order file with the same id (docs/lifecycle.md "Work orders from headquarters").
     * Absent from registries that predate them.
     */
    workOrders: z.array(WorkOrderSchema).max(1000).optional(),
  })
  .strict();
export type QuotaPayload = z.infer<typeof QuotaPayloadSchema>;

/** Largest policy or quota JWS accepted. */
const MAX_DOCUMENT_CHARS = 4 * 1024 * 1024;

/** Verify the registry's policy JWS (signature, typ, schema). */
export function verifyPolicy(
  jws: string,
  registryCertificate: Uint8Array,
): Promise<Result<{ payload: PolicyPayload; json: string }>> {
  return verifyDocument('policy', jws, POLICY_TYP, PolicyPayloadSchema, registryCertificate, MAX_DOCUMENT_CHARS);
}

/** Verify the registry's quota JWS (signature, typ, schema) and that it is addressed to `stationId`. */
export async function verifyQuotas(
  jws: string,
  registryCertificate: Uint8Array,
  stationId: string,
): Promise<Result<{ payload: QuotaPayload; json: string }>> {
  const r = await verifyDocument('quotas', jws, QUOTA_TYP, QuotaPayloadSchema, registryCertificate, MAX_DOCUMENT_CHARS);
  if (r.ok && r.value.payload.stationId !== stationId)
    return fail('INPUT_INVALID', `quotas: issued for station ${r.value.payload.stationId}, not ${stationId}`);
  return r;
}

/**
 * Verify the registry's station-status answer (JWS typ line-station-status+jws) to OUR request: signed with the
 * registry key (the configured certificate, never x5c), for `stationId`, echoing the nonce and ts of the LS-Sig
 * claims we sent. An answer to another request (replayed, stale, or another station's) is INPUT_INVALID.
 */
export async function verifyStationStatus(
  jws: string,
  registryCertificate: Uint8Array,
  stationId: string,
  request: Pick<RequestClaims, 'nonce' | 'ts'>,
): Promise<Result<{ payload: StationStatusPayload; json: string }>> {
  const r = await verifyDocument(
    'station status',
    jws,
    STATION_STATUS_TYP,
    StationStatusPayloadSchema,
    registryCertificate,
    64 * 1024,
  );
  if (!r.ok) return r;
  const p = r.value.payload;
  if (p.stationId !== stationId)
    return fail('INPUT_INVALID', `station status: issued for station ${p.stationId}, not ${stationId}`);
  if (p.requestNonce !== request.nonce || p.requestTs !== request.ts)
    return fail('INPUT_INVALID', 'station status: not the answer to this request (nonce or time differ: replayed?)');
  return r;
}

/**
 * The registry's signed lifecycle documents as the station checks them: the policy (JWS typ
 * line-station-policy+jws) and the station's quotas (typ line-station-quota+jws), both signed with the registry
 * receipt key and verified with the registry certificate configured at `station enroll` (never a key taken
 * from the message). Pure apart from WebCrypto.
 */
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { parseCertificate } from '../../core/pki/chain.js';
import { ProfileOverridesSchema } from '../../core/pki/device-cert.js';
import { ok, type Result } from '../../core/result.js';
import { importJwsKey, parseCompactJws, verifyParsedJws } from '../../registry/jws.js';
import { zodMessage } from '../../registry/protocol.js';

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
  })
  .strict();
export type QuotaPayload = z.infer<typeof QuotaPayloadSchema>;

/** Verify a compact JWS of `typ` with the registry certificate and validate its payload. INPUT_INVALID otherwise. */
async function verifyDocument<S extends z.ZodType>(
  what: string,
  jws: string,
  typ: string,
  schema: S,
  registryCertificate: Uint8Array,
): Promise<Result<{ payload: z.output<S>; json: string }>> {
  const cert = parseCertificate(registryCertificate, 'registry certificate');
  if (!cert.ok) return fail('CONFIG_INVALID', cert.error);
  const key = await importJwsKey(new Uint8Array(cert.value.publicKey.rawData));
  if (!key) return fail('CONFIG_INVALID', 'the registry certificate key is not an EC P-256/P-384 key');
  const parsed = parseCompactJws(jws.trim(), what, 4 * 1024 * 1024);
  if (!parsed.ok) return fail('INPUT_INVALID', parsed.error.message);
  if (parsed.value.header.typ !== typ) return fail('INPUT_INVALID', `${what}: typ is not ${typ}`);
  const v = await verifyParsedJws(parsed.value, key, what);
  if (!v.ok) return fail('INPUT_INVALID', `${v.error.message} (the registry certificate of this station)`);
  let json: string;
  let value: unknown;
  try {
    json = new TextDecoder('utf-8', { fatal: true }).decode(parsed.value.payload);
    value = JSON.parse(json);
  } catch {
    return fail('INPUT_INVALID', `${what}: the payload is not JSON`);
  }
  const p = schema.safeParse(value);
  if (!p.success) return fail('INPUT_INVALID', `${what}: ${zodMessage(p.error)}`);
  return ok({ payload: p.data, json });
}

/** Verify the registry's policy JWS (signature, typ, schema). */
export function verifyPolicy(
  jws: string,
  registryCertificate: Uint8Array,
): Promise<Result<{ payload: PolicyPayload; json: string }>> {
  return verifyDocument('policy', jws, POLICY_TYP, PolicyPayloadSchema, registryCertificate);
}

/** Verify the registry's quota JWS (signature, typ, schema) and that it is addressed to `stationId`. */
export async function verifyQuotas(
  jws: string,
  registryCertificate: Uint8Array,
  stationId: string,
): Promise<Result<{ payload: QuotaPayload; json: string }>> {
  const r = await verifyDocument('quotas', jws, QUOTA_TYP, QuotaPayloadSchema, registryCertificate);
  if (r.ok && r.value.payload.stationId !== stationId)
    return fail('INPUT_INVALID', `quotas: issued for station ${r.value.payload.stationId}, not ${stationId}`);
  return r;
}

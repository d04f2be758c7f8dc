/**
 * The signed policy (docs/lifecycle.md): revoked stations and operators, blocked identifiers, allowed firmware,
 * certificate profile overrides, re-enrolment lifetimes, CRL / OCSP URL templates; changed by the admin, every
 * version signed once and kept. Imports core, registry/common and registry/store.
 */
import { POLICY_SCHEMA, POLICY_TYP } from '../../core/hq/policy.js';
import { createHash } from 'node:crypto';
import { utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { type LifecycleRole } from '../../core/lifecycle.js';
import {
  ProfileOverridesSchema,
  RevocationUrlTemplatesSchema,
  type RevocationUrlTemplates,
} from '../../core/pki/device-cert.js';
import { ok, type Result } from '../../core/result.js';
import { type SqlExec } from '../../core/hq/registry-db.js';
import { z } from 'zod';
import { zodMessage } from '../../core/hq/protocol.js';
import * as st from '../store/lifecycle.js';
import { apiFail, type ApiError } from '../common/errors.js';
import { transact } from '../common/tx.js';
import { now, type LifecycleContext } from '../common/context.js';
import { MAX_POLICY_DURATION_S, MIN_POLICY_DURATION_S } from './durations.js';

const PolicyDuration = z.number().int().min(MIN_POLICY_DURATION_S).max(MAX_POLICY_DURATION_S);
/** Policy setting `reenrollment`: what is not set comes from LifecycleConfig. */
export const ReenrollmentSettingSchema = z
  .object({ certificateLifetimeSeconds: PolicyDuration.optional(), rotateBeforeSeconds: PolicyDuration.optional() })
  .strict();
export type ReenrollmentSetting = z.infer<typeof ReenrollmentSettingSchema>;
const WorkOrderSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected a work order id');
/** Allowed firmware digests per work order (lowercase hex SHA-256). */
export const FirmwareSettingSchema = z.record(
  WorkOrderSchema,
  z.array(z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256')).max(1000),
);

/** The effective re-enrolment lifetimes published in the policy (`reenrollment`). */
export interface ReenrollmentPolicy {
  readonly certificateLifetimeSeconds: number;
  readonly rotateBeforeSeconds: number;
}

/**
 * Policy setting over LifecycleConfig: the lifetime is the policy's, else `certificateLifetimeDays` (whole days,
 * at least 1); rotate-before is the policy's, else `rotateBeforeDays` capped at half the lifetime (and a policy
 * value that is not below the lifetime, possible after a config change, falls back to half the lifetime).
 */
function effectiveReenrollment(ctx: LifecycleContext, set: ReenrollmentSetting): ReenrollmentPolicy {
  const life =
    set.certificateLifetimeSeconds ?? Math.max(1, Math.floor(ctx.lifecycle?.certificateLifetimeDays ?? 365)) * 86_400;
  const configured = Math.round((ctx.lifecycle?.rotateBeforeDays ?? 30) * 86_400);
  const before = set.rotateBeforeSeconds ?? Math.min(configured, Math.floor(life / 2));
  return { certificateLifetimeSeconds: life, rotateBeforeSeconds: before < life ? before : Math.floor(life / 2) };
}

async function reenrollmentSetting(x: SqlExec): Promise<ReenrollmentSetting> {
  const p = ReenrollmentSettingSchema.safeParse(JSON.parse((await st.getSetting(x, 'policy.reenrollment')) ?? '{}'));
  return p.success ? p.data : {};
}

/** A change of the policy settings (`registry policy set`, `POST /v1/admin/policy`); absent = unchanged. */
export interface PolicyChange {
  /** Replaces the whole firmware map. */
  readonly firmware?: Readonly<Record<string, readonly string[]>>;
  /** Replaces the lists of these work orders only; an empty list removes the work order. */
  readonly firmwareWorkOrders?: Readonly<Record<string, readonly string[]>>;
  /** Replaces the certificate profile overrides (validated with ProfileOverridesSchema). */
  readonly profileOverrides?: unknown;
  /** Merged into the stored lifetimes; rotate-before must stay below the lifetime. */
  readonly reenrollment?: ReenrollmentSetting;
  /**
   * Replaces the CRL / OCSP URL templates stations put in device certificates (RevocationUrlTemplatesSchema,
   * `{stationId}` replaced by the station's id); `{}` removes them (the stations' configured URLs apply).
   */
  readonly revocationUrls?: unknown;
}

/** The policy content (without schema, registryId, version, issuedAt). */
export interface PolicyContent {
  readonly revokedStations: { stationId: string; revokedAt: string | null }[];
  readonly revokedOperators: unknown[];
  readonly blocked: { serials: string[]; chipIds: string[] };
  readonly firmware: Record<string, string[]>;
  readonly profileOverrides: Record<string, unknown>;
  readonly reenrollment: ReenrollmentPolicy;
  /** Present only when set (stations that predate it keep verifying policies without it). */
  readonly revocationUrls?: RevocationUrlTemplates;
}

/** A policy version as published: signed once, kept in policy_versions. */
export interface PublishedPolicy {
  readonly version: number;
  /** False: the newest stored version already had this content (its stored JWS is answered). */
  readonly changed: boolean;
  readonly content: PolicyContent;
  /** The JWS of this version (null only for a dry run of a change). */
  readonly jws: string | null;
}

/** Build the policy content inside `x` (the station revocations read in the same transaction). */
async function policyContent(x: SqlExec, ctx: LifecycleContext): Promise<PolicyContent> {
  const blocks = await st.activeBlocks(x);
  const revoked = await x.all(
    'SELECT station_id, revoked_at FROM stations WHERE revoked_at IS NOT NULL ORDER BY station_id',
  );
  const urls = RevocationUrlTemplatesSchema.safeParse(
    JSON.parse((await st.getSetting(x, 'policy.revocationUrls')) ?? '{}'),
  );
  return {
    revokedStations: revoked.map((r) => ({ stationId: String(r['station_id']), revokedAt: String(r['revoked_at']) })),
    revokedOperators: await st.revokedOperators(x),
    blocked: {
      serials: blocks.filter((b) => b.kind === 'serial').map((b) => b.value),
      chipIds: blocks.filter((b) => b.kind === 'chipId').map((b) => b.value),
    },
    firmware: JSON.parse((await st.getSetting(x, 'policy.firmware')) ?? '{}') as Record<string, string[]>,
    profileOverrides: JSON.parse((await st.getSetting(x, 'policy.profiles')) ?? '{}') as Record<string, unknown>,
    reenrollment: effectiveReenrollment(ctx, await reenrollmentSetting(x)),
    ...(urls.success && Object.keys(urls.data).length ? { revocationUrls: urls.data } : {}),
  };
}

/**
 * The policy in force, published inside `x` (a lifecycle transaction, serialised): when the content equals the
 * newest stored version's, that version and its stored JWS; else the next version number, signed ONCE with the
 * registry key and stored (policy_versions; its primary key refuses a second payload under a number). The next
 * number is above both the stored versions and the pre-v7 `policy.version` setting (never reused after an
 * upgrade). `sign: false` (dry run) answers the number without signing or storing.
 */
async function publishPolicy(
  x: SqlExec,
  ctx: LifecycleContext,
  sign = true,
): Promise<Result<PublishedPolicy, ApiError>> {
  const content = await policyContent(x, ctx);
  const hash = createHash('sha256').update(canonicalJson(content)).digest('hex');
  const latest = (
    await x.all('SELECT version, content_sha256, jws FROM policy_versions ORDER BY version DESC LIMIT 1')
  )[0];
  if (latest && String(latest['content_sha256']) === hash)
    return ok({ version: Number(latest['version']), changed: false, content, jws: String(latest['jws']) });
  const version =
    Math.max(Number(latest?.['version'] ?? 0), Number((await st.getSetting(x, 'policy.version')) ?? '0')) + 1;
  if (!sign) return ok({ version, changed: true, content, jws: null });
  const at = now(ctx);
  const payload = { schema: POLICY_SCHEMA, registryId: ctx.registryId, version, issuedAt: at, ...content };
  const json = canonicalJson(payload);
  const jws = await signJws({
    signer: ctx.signer,
    payload: utf8(json),
    header: { typ: POLICY_TYP, kid: ctx.registryId, x5c: ctx.registryChain },
  });
  if (!jws.ok) return apiFail('INTERNAL', `policy could not be signed: ${jws.error.message}`);
  await x.run(
    'INSERT INTO policy_versions (version, content_sha256, payload_json, jws, signed_at) VALUES (?, ?, ?, ?, ?)',
    [version, hash, json, jws.value, at],
  );
  await st.setSetting(x, 'policy.version', String(version));
  await st.appendEvent(x, at, 'policy.signed', { version, contentSha256: hash });
  return ok({ version, changed: true, content, jws: jws.value });
}

/**
 * Change the policy settings (admin only): allowed firmware digests per work order, certificate profile overrides
 * (ProfileOverridesSchema), re-enrolment lifetimes, CRL / OCSP URL templates. One transaction: the settings, one
 * audited event per changed setting (`policy.firmware-set`, `policy.profiles-set`, `policy.reenrollment-set`,
 * `policy.revocation-urls-set`, with the acting role) and the new version, signed once (`publishPolicy`).
 * `dryRun` answers the resulting policy (version number, no JWS) and rolls everything back.
 */
export async function setPolicySetting(
  ctx: LifecycleContext,
  role: LifecycleRole,
  change: PolicyChange,
  dryRun = false,
): Promise<Result<PublishedPolicy & { dryRun: boolean }, ApiError>> {
  if (role !== 'admin') return apiFail('AUTH_FORBIDDEN', 'policy needs the admin token');
  const fw = change.firmware === undefined ? null : FirmwareSettingSchema.safeParse(change.firmware);
  if (fw && !fw.success) return apiFail('BODY_INVALID', zodMessage(fw.error, 'firmware'));
  const fwo =
    change.firmwareWorkOrders === undefined ? null : FirmwareSettingSchema.safeParse(change.firmwareWorkOrders);
  if (fwo && !fwo.success) return apiFail('BODY_INVALID', zodMessage(fwo.error, 'firmware'));
  const prof = change.profileOverrides === undefined ? null : ProfileOverridesSchema.safeParse(change.profileOverrides);
  if (prof && !prof.success) return apiFail('BODY_INVALID', zodMessage(prof.error, 'profileOverrides'));
  const re = change.reenrollment === undefined ? null : ReenrollmentSettingSchema.safeParse(change.reenrollment);
  if (re && !re.success) return apiFail('BODY_INVALID', zodMessage(re.error, 'reenrollment'));
  const urls =
    change.revocationUrls === undefined ? null : RevocationUrlTemplatesSchema.safeParse(change.revocationUrls);
  if (urls && !urls.success) return apiFail('BODY_INVALID', zodMessage(urls.error, 'revocationUrls'));
  return transact(
    ctx.db.sql,
    async (x) => {
      const at = now(ctx);
      if (fw || fwo) {
        const value: Record<string, readonly string[]> = fw
          ? { ...fw.data }
          : (JSON.parse((await st.getSetting(x, 'policy.firmware')) ?? '{}') as Record<string, string[]>);
        for (const [wo, list] of Object.entries(fwo?.data ?? {}))
          if (list.length) value[wo] = list;
          else delete value[wo];
        for (const [wo, list] of Object.entries(value)) if (!list.length) delete value[wo];
        await st.setSetting(x, 'policy.firmware', canonicalJson(value));
        await st.appendEvent(x, at, 'policy.firmware-set', { value, actor: role });
      }
      if (prof) {
        await st.setSetting(x, 'policy.profiles', canonicalJson(prof.data));
        await st.appendEvent(x, at, 'policy.profiles-set', { value: prof.data, actor: role });
      }
      if (re) {
        const value = { ...(await reenrollmentSetting(x)), ...re.data };
        const eff = effectiveReenrollment(ctx, { ...value, rotateBeforeSeconds: undefined });
        const before = value.rotateBeforeSeconds;
        if (before !== undefined && before >= eff.certificateLifetimeSeconds)
          return apiFail(
            'BODY_INVALID',
            `reenrollment.rotateBeforeSeconds: ${before} s must be below the certificate lifetime (${eff.certificateLifetimeSeconds} s)`,
          );
        await st.setSetting(x, 'policy.reenrollment', canonicalJson(value));
        await st.appendEvent(x, at, 'policy.reenrollment-set', {
          value,
          effective: effectiveReenrollment(ctx, value),
          actor: role,
        });
      }
      if (urls) {
        await st.setSetting(x, 'policy.revocationUrls', canonicalJson(urls.data));
        await st.appendEvent(x, at, 'policy.revocation-urls-set', { value: urls.data, actor: role });
      }
      const p = await publishPolicy(x, ctx, !dryRun);
      return p.ok ? ok({ ...p.value, dryRun }) : p;
    },
    { rollback: dryRun },
  );
}

/**
 * The signed policy for stations: revoked stations and operators, blocked serials and chip ids, allowed
 * firmware per work order, certificate profile overrides, the effective re-enrolment lifetimes, CRL / OCSP URL
 * templates. A new version (signed once) whenever the content changed; else the newest version's stored JWS.
 */
export async function signedPolicy(ctx: LifecycleContext): Promise<Result<{ version: number; jws: string }, ApiError>> {
  const r = await transact(ctx.db.sql, (x) => publishPolicy(x, ctx));
  return r.ok ? ok({ version: r.value.version, jws: r.value.jws! }) : r;
}

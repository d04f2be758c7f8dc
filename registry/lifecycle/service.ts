/**
 * The registry side of the device identity lifecycle (docs/lifecycle.md), independent of HTTP: ingest hooks,
 * state transitions with the hash-chained event log, blocked identifiers, delegated revocation signers (a key in
 * the registry token certified by the station's issuing CA), CRLs and OCSP signed with them, station key
 * rotation, revoked operators, signed policy and quotas.
 */
import { POLICY_SCHEMA, POLICY_TYP, QUOTA_SCHEMA, QUOTA_TYP } from '../../core/hq/policy.js';
import { SCRAP_TYP, ScrapIdent, ScrapPayloadSchema, type ScrapPayload } from '../../core/hq/scrap.js';
import 'reflect-metadata';
import { createHash, timingSafeEqual } from 'node:crypto';
import { X509Certificate } from '@peculiar/x509';
import { fromBase64Url, sha256Hex, toBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import {
  CRL_REASON_CODES,
  credentialRevocation,
  isRevocationReason,
  normaliseSerial,
  transition,
  type DeviceState,
  type LifecycleEvent,
  type LifecycleRole,
  type RevocationReason,
} from '../../core/lifecycle.js';
import type { Curve } from '../../core/model.js';
import type { Signer } from '../../core/ports.js';
import { createCrl } from '../../core/pki/crl.js';
import {
  ProfileOverridesSchema,
  RevocationUrlTemplatesSchema,
  type RevocationUrlTemplates,
} from '../../core/pki/device-cert.js';
import { checkRevocationSignerCertificate } from '../../core/pki/ca.js';
import { createCsr } from '../../core/pki/csr.js';
import { buf, importVerifyKey, verifyRaw } from '../../core/pki/ecdsa.js';
import {
  certIdMatchesIssuer,
  createOcspResponse,
  ocspErrorResponse,
  parseOcspRequest,
  type OcspAnswer,
} from '../../core/pki/ocsp.js';
import { fromPem, fromPemChain, toPem } from '../../core/pki/pem.js';
import { err, ok, type Result } from '../../core/result.js';
import { recordFrom, type IngestRecord, type StationRow, type SqlExec } from '../../core/hq/registry-db.js';
import { z } from 'zod';
import { importJwsKey, parseCompactJws, verifyParsedJws } from '../../core/hq/jws.js';
import {
  FAILED_ISSUANCE_TYP,
  MAX_CLOCK_SKEW_S,
  MAX_REVOCATION_EVENT_CHARS,
  MAX_REVOCATION_EVENTS,
  STATION_STATUS_SCHEMA,
  STATION_STATUS_TYP,
  zodMessage,
  type RejectReason,
  type RevocationRejectReason,
  type RevocationResult,
  type StationStatusPayload,
} from '../../core/hq/protocol.js';
import { apiError, type ApiError, type RegistryContext } from '../service.js';
import {
  checkStationChain,
  stationKeyHistoryRows,
  verifyStationSigned,
  type StationKeyHistoryRow,
  type StationTrust,
} from '../verify.js';
import {
  KEY_ROTATION_ANSWER_SCHEMA,
  parseKeyRotationRequest,
  signKeyRotationAnswer,
  type KeyRotationAnswer,
  type KeyRotationResult,
} from '../../core/hq/key-rotation.js';
import {
  SIGNER_INSTALLED_SCHEMA,
  SIGNER_REQUEST_SCHEMA,
  signSignerDocument,
  type InstallBody,
} from '../../core/hq/revocation-signer.js';
import { applyFailedIssuance, verifyFailedIssuance, type CheckedFailedIssuance } from './failed-issuance.js';
import * as st from './store.js';

// ---------------------------------------------------------------- configuration

/** The registry token functions the lifecycle needs (native/hsm HsmAdmin satisfies it). */
export interface LifecycleHsm {
  signer(label: string): Promise<Result<Signer>>;
  generateSigningKey(label: string, curve: Curve): Promise<Result<{ publicKeySpki: Uint8Array; id: string }>>;
  destroyKeyPair(label: string): Promise<Result<{ destroyed: number }>>;
}

/** `ingest-apply`: inside the ingest transaction, after the devices of a batch were written (rolls it back). */
export type FailPoint = 'ingest-apply';

export interface LifecycleConfig {
  /** Registry token holding the delegated revocation signer keys (`revocation-signer-<requestId>`). */
  readonly hsm?: LifecycleHsm;
  /** CRL nextUpdate - thisUpdate and regeneration interval; also the OCSP validity (default 3600 s). */
  readonly crlIntervalS?: number;
  /**
   * Default lifetime of certificates issued at re-enrolment (whole days, default 365, at least 1). The policy
   * setting `reenrollment.certificateLifetimeSeconds` (`registry policy set --cert-lifetime`, 1 h .. 100 years)
   * overrides it, for short-lived certificates down to one hour.
   */
  readonly certificateLifetimeDays?: number;
  /**
   * Default rotate-before window: devices should re-enrol this many days before expiry (default 30, capped at
   * half the lifetime). Overridden by the policy setting `reenrollment.rotateBeforeSeconds` (below the lifetime).
   */
  readonly rotateBeforeDays?: number;
  /** SHA-256 of the security officer's bearer token (role security-officer). */
  readonly securityOfficerTokenSha256?: Uint8Array;
  /** Test hook: called at named points; throwing there simulates a crash. */
  readonly failpoint?: (point: FailPoint) => void | Promise<void>;
}

export type LifecycleContext = RegistryContext & { readonly lifecycle?: LifecycleConfig };

const fail = <T = never>(code: ApiError['code'], message: string): Result<T, ApiError> => err(apiError(code, message));
const storeFail = (e: unknown): Result<never, ApiError> =>
  fail('STORE_UNAVAILABLE', `registry database: ${e instanceof Error ? e.message : String(e)}`);

/** Run `fn` and turn thrown database errors into STORE_UNAVAILABLE. */
async function guarded<T>(fn: () => Promise<Result<T, ApiError>>): Promise<Result<T, ApiError>> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Abort) return err(e.error);
    if (e instanceof Rollback) return ok(e.value as T);
    return storeFail(e);
  }
}

/** Thrown inside a transaction to roll it back and still answer `value` (dry runs). */
class Rollback extends Error {
  constructor(readonly value: unknown) {
    super('rollback');
  }
}

/** Thrown inside a transaction to roll it back with an ApiError. */
class Abort extends Error {
  constructor(readonly error: ApiError) {
    super(error.message);
  }
}

const now = (ctx: LifecycleContext): string => ctx.clock.now().toISOString();
const crlInterval = (ctx: LifecycleContext): number => ctx.lifecycle?.crlIntervalS ?? 3600;

// ---------------------------------------------------------------- roles

/** `Authorization: Bearer <token>`: the admin token (role admin) or the security officer token. */
export function checkRole(
  ctx: LifecycleContext,
  authorization: string | undefined,
): Result<'admin' | 'security-officer', ApiError> {
  if (!authorization) return fail('AUTH_REQUIRED', 'this endpoint needs a bearer token (admin or security officer)');
  const m = /^Bearer ([A-Za-z0-9_-]{16,256})$/.exec(authorization);
  if (!m) return fail('AUTH_FORBIDDEN', 'a bearer token is required');
  const got = createHash('sha256').update(m[1]!).digest();
  if (ctx.adminTokenSha256 && timingSafeEqual(got, ctx.adminTokenSha256)) return ok('admin');
  const so = ctx.lifecycle?.securityOfficerTokenSha256;
  if (so && timingSafeEqual(got, so)) return ok('security-officer');
  return fail('AUTH_FORBIDDEN', 'the token is not valid');
}

// ---------------------------------------------------------------- ingest hooks

/**
 * Checked for the verified records of a batch BEFORE they are stored: a decommissioned or blocked device
 * (DEVICE_DECOMMISSIONED / DEVICE_BLOCKED), a station revoked before the record's completedAt
 * (STATION_REVOKED), an operator revoked before it (OPERATOR_REVOKED). Returns the refused ones by index.
 */
export async function lifecyclePrecheck(
  ctx: LifecycleContext,
  station: StationRow,
  records: readonly IngestRecord[],
): Promise<Map<number, RejectReason>> {
  const out = new Map<number, RejectReason>();
  if (records.length === 0) return out;
  const x = ctx.db.sql;
  const ops = new Map((await st.revokedOperators(x)).map((o) => [o.operatorId, o.revokedAt]));
  const blocks = await st.activeBlocks(x);
  const serials = new Set(blocks.filter((b) => b.kind === 'serial').map((b) => b.value));
  const chips = new Set(blocks.filter((b) => b.kind === 'chipId').map((b) => b.value));
  for (const r of records) {
    if (station.revokedAt && r.completedAt >= station.revokedAt) {
      out.set(r.index, 'STATION_REVOKED');
      continue;
    }
    if (ops.size) {
      const operator = (JSON.parse(r.recordJson) as { operator?: string }).operator;
      const at = operator ? ops.get(operator) : undefined;
      if (at && r.completedAt >= at) {
        out.set(r.index, 'OPERATOR_REVOKED');
        continue;
      }
    }
    if (serials.has(r.serialNumber) || chips.has(r.chipId)) {
      const d = (await st.findDevice(x, r.serialNumber)) ?? (await st.findDevice(x, r.chipId));
      out.set(r.index, d?.state === 'decommissioned' ? 'DEVICE_DECOMMISSIONED' : 'DEVICE_BLOCKED');
      continue;
    }
    // A late record for a certificate this station reported as a failed issuance: the certificate is on the CRL
    // for good (cessationOfOperation), so the record would present a revoked identity as provisioned.
    const failed = await st.failedIssuance(x, station.stationId, recordCertificate(r.recordJson).serial);
    if (failed) {
      out.set(r.index, 'certificate-revoked-failed-issuance');
      ctx.logger.log('warn', 'record refused: its certificate was revoked as a failed issuance', {
        stationId: station.stationId,
        recordId: r.recordId,
        certSerial: failed.certSerial,
        failedRunId: failed.runId,
      });
    }
  }
  return out;
}

interface RecordCert {
  readonly serial: string;
  readonly sha256: string;
  readonly pem: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

function recordCertificate(recordJson: string): RecordCert {
  const rec = JSON.parse(recordJson) as { certificate: { serialNumber: string; sha256: string; pem: string } };
  const der = fromPem(rec.certificate.pem, 'CERTIFICATE');
  const c = der.ok ? new X509Certificate(buf(der.value)) : null;
  return {
    serial: normaliseSerial(rec.certificate.serialNumber),
    sha256: rec.certificate.sha256,
    pem: rec.certificate.pem,
    notBefore: c?.notBefore.toISOString() ?? '',
    notAfter: c?.notAfter.toISOString() ?? '',
  };
}

/**
 * Inside the ingest transaction (the `apply` step of RegistryDb.ingest, `x` its connection), for the records
 * newly stored: create the device (provisioned, credential 1) or, for a rotation record (or a new certificate of
 * a known device), append credential n+1, supersede the previous one and move the device to the state
 * `transition(state, 'rotate', 'station')` gives (activated/rotated -> rotated, provisioned stays), each with
 * its event. Idempotent (a credential already known is skipped). Throws on database errors, which rolls the
 * whole batch back (the station gets STORE_UNAVAILABLE and retries). Returns how many records were applied and
 * whether a credential was superseded (then the caller re-signs the station's CRL after the commit).
 */
export async function lifecycleApplyRecords(
  ctx: LifecycleContext,
  x: SqlExec,
  stationId: string,
  records: readonly IngestRecord[],
): Promise<{ applied: number; crlChanged: boolean }> {
  let applied = 0;
  let crlChanged = false;
  for (const r of records) {
    const cert = recordCertificate(r.recordJson);
    const did = await (async (): Promise<'provisioned' | 'reprovisioned' | 'rotated' | null> => {
      if (await st.credentialBySerial(x, stationId, cert.serial)) return null;
      const at = now(ctx);
      const dev = await st.findDevice(x, r.serialNumber);
      const cred = (version: number): st.CredentialRow => ({
        serialNumber: r.serialNumber,
        version,
        serial: cert.serial,
        stationId,
        sha256: cert.sha256,
        notBefore: cert.notBefore,
        notAfter: cert.notAfter,
        status: 'active',
        reason: null,
        revokedAt: null,
        certPem: cert.pem,
        csrSha256: null,
        recordId: r.recordId,
        createdAt: at,
      });
      if (!dev) {
        await st.insertDevice(x, {
          serialNumber: r.serialNumber,
          chipId: r.chipId,
          stationId,
          model: r.model,
          workOrder: r.workOrder,
          state: 'provisioned',
          stateSince: at,
          suspendedAt: null,
          createdAt: at,
        });
        await st.insertCredential(x, cred(1));
        await st.appendEvent(x, at, 'device.provisioned', {
          serialNumber: r.serialNumber,
          chipId: r.chipId,
          stationId,
          recordId: r.recordId,
          credential: 1,
          certSerial: cert.serial,
        });
        return 'provisioned';
      }
      const history = await st.credentials(x, r.serialNumber);
      const version = history.reduce((m, c) => Math.max(m, c.version), 0) + 1;
      if (dev.state === 'decommissioned') {
        // Released after decommissioning: the board starts a new life (the old credentials stay revoked).
        await st.setDeviceState(x, r.serialNumber, 'provisioned', at, null);
        await st.insertCredential(x, cred(version));
        await st.appendEvent(x, at, 'device.reprovisioned', {
          serialNumber: r.serialNumber,
          stationId,
          recordId: r.recordId,
          credential: version,
          certSerial: cert.serial,
        });
        return 'reprovisioned';
      }
      const t = transition(dev.state, 'rotate', 'station');
      if (!t.ok) {
        await st.appendEvent(x, at, 'record.not-applied', {
          serialNumber: r.serialNumber,
          recordId: r.recordId,
          state: dev.state,
          message: t.error.message,
        });
        return null;
      }
      await st.setCredentialStatus(x, r.serialNumber, ['active'], 'superseded', 'superseded', at);
      await st.insertCredential(x, cred(version));
      // provisioned stays provisioned (state_since unchanged); activated -> rotated; rotated stays rotated.
      if (t.value !== dev.state) await st.setDeviceState(x, r.serialNumber, t.value, at, dev.suspendedAt);
      await st.appendEvent(x, at, 'device.rotated', {
        serialNumber: r.serialNumber,
        stationId,
        recordId: r.recordId,
        kind: r.kind,
        from: dev.state,
        to: t.value,
        credential: version,
        certSerial: cert.serial,
      });
      return 'rotated';
    })();
    if (did) applied++;
    // Only a superseded credential changes what the CRL lists (a new device's certificate is simply good).
    if (did === 'rotated') crlChanged = true;
  }
  await ctx.lifecycle?.failpoint?.('ingest-apply');
  return { applied, crlChanged };
}

/** What `registry reconcile` found (and, unless a dry run, applied). */
export interface ReconcileResult {
  readonly dryRun: boolean;
  /** Stored records that had no credential and no `record.not-applied` event. */
  readonly pending: number;
  /** Of those, applied now (devices created or rotated); the rest were already covered by their certificate. */
  readonly applied: number;
  readonly records: readonly { readonly recordId: string; readonly serialNumber: string; readonly stationId: string }[];
}

/**
 * Repair for registries that stored records while the lifecycle step ran after the ingest commit (before schema
 * v3 it could fail and was only logged): every stored record without a credential and without a
 * `record.not-applied` event is applied now, per station in record order, in one transaction (idempotent, like
 * ingest). Admin only. A dry run lists what would change and rolls back.
 */
export async function reconcileLifecycle(
  ctx: LifecycleContext,
  role: LifecycleRole,
  dryRun: boolean,
): Promise<Result<ReconcileResult, ApiError>> {
  if (role !== 'admin') return fail('AUTH_FORBIDDEN', 'reconcile needs the admin role');
  const r = await guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const notApplied = new Set<string>();
        for (const e of await x.all(`SELECT payload FROM lifecycle_events WHERE type = 'record.not-applied'`)) {
          const id = (JSON.parse(String(e['payload'])) as { recordId?: unknown }).recordId;
          if (typeof id === 'string') notApplied.add(id);
        }
        // Two set lookups instead of a correlated NOT EXISTS (credentials.record_id has no index).
        const covered = new Set(
          (await x.all('SELECT record_id FROM credentials WHERE record_id IS NOT NULL')).map((c) =>
            String(c['record_id']),
          ),
        );
        const pending = (await x.all('SELECT * FROM records ORDER BY seq'))
          .map(recordFrom)
          .filter((row) => !covered.has(row.recordId) && !notApplied.has(row.recordId));
        const byStation = new Map<string, IngestRecord[]>();
        for (const [index, row] of pending.entries()) {
          const list = byStation.get(row.stationId) ?? [];
          list.push({ ...row, index });
          byStation.set(row.stationId, list);
        }
        let applied = 0;
        const changedStations: string[] = [];
        for (const [stationId, list] of byStation) {
          const done = await lifecycleApplyRecords(ctx, x, stationId, list);
          applied += done.applied;
          if (done.crlChanged) changedStations.push(stationId);
        }
        if (applied > 0)
          await st.appendEvent(x, now(ctx), 'lifecycle.reconciled', {
            actor: role,
            pending: pending.length,
            applied,
          });
        const result: ReconcileResult & { changedStations: string[] } = {
          dryRun,
          pending: pending.length,
          applied,
          records: pending.map((row) => ({
            recordId: row.recordId,
            serialNumber: row.serialNumber,
            stationId: row.stationId,
          })),
          changedStations,
        };
        if (dryRun) throw new Rollback(result);
        return result;
      }),
    ),
  );
  if (!r.ok) return r;
  const { changedStations, ...result } = r.value as ReconcileResult & { changedStations: string[] };
  if (!dryRun) for (const stationId of changedStations) await refreshCrl(ctx, stationId);
  return ok(result);
}

// ---------------------------------------------------------------- transitions

export interface CredentialView {
  readonly version: number;
  readonly serial: string;
  readonly sha256: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly status: string;
  readonly reason: string | null;
  readonly revokedAt: string | null;
}

export interface DeviceLifecycleView {
  readonly serialNumber: string;
  readonly chipId: string;
  readonly stationId: string;
  readonly workOrder: string;
  readonly state: DeviceState;
  readonly stateSince: string;
  readonly credentials: readonly CredentialView[];
}

async function deviceView(x: SqlExec, d: st.DeviceRow): Promise<DeviceLifecycleView> {
  const creds = await st.credentials(x, d.serialNumber);
  return {
    serialNumber: d.serialNumber,
    chipId: d.chipId,
    stationId: d.stationId,
    workOrder: d.workOrder,
    state: d.state,
    stateSince: d.stateSince,
    credentials: creds.map((c) => ({
      version: c.version,
      serial: c.serial,
      sha256: c.sha256,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      status: c.status,
      reason: c.reason,
      revokedAt: c.revokedAt,
    })),
  };
}

/** Apply one event to one device inside a transaction (no CRL refresh); returns the device row as it is now. */
async function applyIn(
  x: SqlExec,
  at: string,
  d: st.DeviceRow,
  event: Exclude<LifecycleEvent, 'rotate'>,
  role: LifecycleRole,
  reason: string | null,
): Promise<st.DeviceRow> {
  const t = transition(d.state, event, role);
  if (!t.ok)
    throw new Abort(
      apiError(t.error.code === 'AUTH_FORBIDDEN' ? 'AUTH_FORBIDDEN' : 'LIFECYCLE_TRANSITION_INVALID', t.error.message),
    );
  let suspendedAt: string | null = d.suspendedAt;
  if (event === 'suspend') suspendedAt = at;
  if (event === 'resume') suspendedAt = null;
  if (event === 'revoke') {
    const rr: RevocationReason = isRevocationReason(reason) ? reason : 'unspecified';
    await st.setCredentialStatus(x, d.serialNumber, ['active', 'pending'], 'revoked', rr, at);
    suspendedAt = null;
  }
  if (event === 'decommission') {
    await st.setCredentialStatus(x, d.serialNumber, ['active', 'pending'], 'revoked', 'cessationOfOperation', at);
    await st.block(x, 'serial', d.serialNumber, 'decommissioned', at);
    await st.block(x, 'chipId', d.chipId, 'decommissioned', at);
    suspendedAt = null;
  }
  await st.setDeviceState(x, d.serialNumber, t.value, at, suspendedAt);
  await st.appendEvent(x, at, `device.${event}`, {
    serialNumber: d.serialNumber,
    stationId: d.stationId,
    from: d.state,
    to: t.value,
    actor: role,
    reason,
  });
  return { ...d, state: t.value, stateSince: at, suspendedAt };
}

/** activate / suspend / resume / revoke / decommission one device (by serial number or chip id). */
export async function applyTransition(
  ctx: LifecycleContext,
  role: LifecycleRole,
  key: string,
  event: Exclude<LifecycleEvent, 'rotate'>,
  reason: string | null = null,
): Promise<Result<DeviceLifecycleView, ApiError>> {
  if (event === 'revoke' && reason !== null && !isRevocationReason(reason))
    return fail('BODY_INVALID', `unknown revocation reason ${reason}`);
  if (event === 'suspend' && !reason) return fail('BODY_INVALID', 'a suspension needs a reason');
  const r = await guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const d = await st.findDevice(x, key);
        if (!d) throw new Abort(apiError('NOT_FOUND', `no device ${key} in the lifecycle registry`));
        return deviceView(x, await applyIn(x, now(ctx), d, event, role, reason));
      }),
    ),
  );
  if (r.ok) {
    ctx.logger.log('info', `device ${event}`, { serialNumber: r.value.serialNumber, role, reason });
    await refreshCrl(ctx, r.value.stationId);
  }
  return r;
}

export interface BatchSelector {
  readonly workOrder?: string;
  /** Inclusive serial number range (string order), "A..B". */
  readonly serialRange?: readonly [string, string];
}

/** The events a batch operation may apply (incidents: revoke or put on hold, and lift the hold afterwards). */
export type BatchEvent = 'revoke' | 'suspend' | 'resume';

export interface BatchResult {
  readonly dryRun: boolean;
  readonly event: BatchEvent;
  readonly changed: string[];
  readonly skipped: { serialNumber: string; state: string }[];
}

/**
 * Apply `event` to every matching device (work order and/or inclusive serial range) the transition table allows
 * for `role`, in ONE transaction; the others are listed as skipped with their state. `dryRun` lists what would
 * change and changes nothing. Reasons: revoke needs an RFC 5280 reason, suspend a free-text reason (why the
 * devices are on hold), resume an optional one. The CRLs of the stations concerned are re-signed after the commit.
 */
export async function batchTransition(
  ctx: LifecycleContext,
  role: LifecycleRole,
  sel: BatchSelector,
  event: BatchEvent,
  reason: string | null,
  dryRun: boolean,
): Promise<Result<BatchResult, ApiError>> {
  if (event === 'revoke' && !isRevocationReason(reason))
    return fail('BODY_INVALID', `unknown revocation reason ${String(reason)}`);
  if (event === 'suspend' && !reason) return fail('BODY_INVALID', 'a suspension needs a reason');
  if (!sel.workOrder && !sel.serialRange) return fail('BODY_INVALID', 'give a work order or a serial range');
  const r = await guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const devices = await st.devicesWhere(x, {
          ...(sel.workOrder !== undefined ? { workOrder: sel.workOrder } : {}),
          ...(sel.serialRange ? { serialFrom: sel.serialRange[0], serialTo: sel.serialRange[1] } : {}),
        });
        const changed: string[] = [];
        const skipped: { serialNumber: string; state: string }[] = [];
        const touched = new Set<string>();
        const at = now(ctx);
        for (const d of devices) {
          const t = transition(d.state, event, role);
          if (!t.ok) {
            skipped.push({ serialNumber: d.serialNumber, state: d.state });
            continue;
          }
          changed.push(d.serialNumber);
          touched.add(d.stationId);
          if (!dryRun) await applyIn(x, at, d, event, role, reason);
        }
        if (changed.length && !dryRun)
          await st.appendEvent(x, at, `batch.${event}`, {
            actor: role,
            reason,
            selector: {
              workOrder: sel.workOrder ?? null,
              serialFrom: sel.serialRange?.[0] ?? null,
              serialTo: sel.serialRange?.[1] ?? null,
            },
            changed: changed.length,
            skipped: skipped.length,
          });
        if (dryRun) throw new Rollback({ dryRun, event, changed, skipped, stations: [] });
        return { dryRun, event, changed, skipped, stations: [...touched] };
      }),
    ),
  );
  if (!r.ok) return r;
  if (!dryRun) for (const s of r.value.stations) await refreshCrl(ctx, s);
  return ok({ dryRun: r.value.dryRun, event, changed: r.value.changed, skipped: r.value.skipped });
}

/** Lift the block on a device's serial number and chip id (audited). */
export async function releaseDevice(
  ctx: LifecycleContext,
  role: LifecycleRole,
  key: string,
  reason: string,
): Promise<Result<{ serialNumber: string; released: number }, ApiError>> {
  if (role !== 'admin' && role !== 'security-officer') return fail('AUTH_FORBIDDEN', 'release needs an officer');
  if (!reason) return fail('BODY_INVALID', 'a release needs a reason');
  return guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const d = await st.findDevice(x, key);
        const serial = d?.serialNumber ?? key;
        const at = now(ctx);
        let n = await st.release(x, 'serial', serial, at);
        if (d) n += await st.release(x, 'chipId', d.chipId, at);
        if (n === 0) throw new Abort(apiError('NOT_FOUND', `${key} is not blocked`));
        await st.appendEvent(x, at, 'identifier.released', { serialNumber: serial, actor: role, reason, released: n });
        return { serialNumber: serial, released: n };
      }),
    ),
  );
}

/** Block a serial number or chip id (e.g. a stolen board) until released. */
export async function blockIdentifier(
  ctx: LifecycleContext,
  role: LifecycleRole,
  kind: 'serial' | 'chipId',
  value: string,
  reason: string,
): Promise<Result<{ kind: string; value: string }, ApiError>> {
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(value)) return fail('BODY_INVALID', 'invalid identifier');
  return guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const at = now(ctx);
        await st.block(x, kind, value, reason, at);
        await st.appendEvent(x, at, 'identifier.blocked', {
          ...(kind === 'serial' ? { serialNumber: value } : { chipId: value }),
          actor: role,
          reason,
        });
        return { kind, value };
      }),
    ),
  );
}

/** A device's state, credential history and events. */
export async function deviceHistory(
  ctx: LifecycleContext,
  key: string,
): Promise<Result<DeviceLifecycleView & { events: unknown[] }, ApiError>> {
  return guarded(async () => {
    const x = ctx.db.sql;
    const d = await st.findDevice(x, key);
    if (!d) return fail('NOT_FOUND', `no device ${key} in the lifecycle registry`);
    const events = await st.eventsFor(x, d.serialNumber);
    return ok({
      ...(await deviceView(x, d)),
      events: events.map((e) => ({ seq: e.seq, ts: e.ts, type: e.type, ...e.payload, hash: e.hash })),
    });
  });
}

/** Verify the lifecycle event chain. */
export async function verifyLifecycleLog(
  ctx: LifecycleContext,
): Promise<Result<Awaited<ReturnType<typeof st.verifyEventLog>>, ApiError>> {
  return guarded(async () => ok(await st.verifyEventLog(ctx.db.sql)));
}

// ---------------------------------------------------------------- station scrap revocations

/** Most scrap and failed-issuance events in one POST /v1/revocations. */
export const MAX_SCRAP_REQUESTS = MAX_REVOCATION_EVENTS;
const MAX_SCRAP_JWS_CHARS = MAX_REVOCATION_EVENT_CHARS;

/** Why a scrap or failed-issuance event was refused (core/hq/protocol.ts REVOCATION_REJECT_REASONS). */
export type ScrapRejectReason = RevocationRejectReason;
/** The answer per event (core/hq/protocol.ts RevocationResultSchema). */
export type ScrapResult = RevocationResult;

const scrapKey = (stationId: string, requestId: string): string => `scrap.${stationId}.${requestId}`;

/** Verify one scrap event of `trust`'s station (signature, typ, x5c, schema, station id); no database access. */
async function verifyScrapJws(
  trust: StationTrust,
  jws: string,
): Promise<{ ok: true; kind: 'scrap'; payload: ScrapPayload; sha256: string } | { ok: false; result: ScrapResult }> {
  let requestId: string | null = null;
  const reject = (reason: ScrapRejectReason, message: string) =>
    ({ ok: false, result: { requestId, status: 'rejected', reason, message } }) as const;
  const p = parseCompactJws(jws, 'scrap event', MAX_SCRAP_JWS_CHARS);
  if (!p.ok) return reject(p.error.kind === 'malformed' ? 'malformed' : 'header-invalid', p.error.message);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.value.payload));
  } catch {
    json = undefined;
  }
  const rid = (json as { requestId?: unknown } | undefined)?.requestId;
  if (typeof rid === 'string' && ScrapIdent.safeParse(rid).success) requestId = rid;
  if (p.value.header.typ !== SCRAP_TYP)
    return reject('header-invalid', `scrap event: typ is ${String(p.value.header.typ)}, expected ${SCRAP_TYP}`);
  const leaf = p.value.header.x5c?.[0];
  if (leaf === undefined) return reject('signer-mismatch', 'scrap event: no x5c station certificate');
  // The payload is only read here to learn when the event was made; nothing acts on it before the signature checks.
  if (json === undefined) return reject('payload-invalid', 'scrap event: the payload is not UTF-8 JSON');
  const r = ScrapPayloadSchema.safeParse(json);
  if (!r.success) return reject('payload-invalid', `scrap event: ${zodMessage(r.error)}`);
  // The enrolled key, or one replaced by a station key rotation after the event was made (scrappedAt).
  const v = verifyStationSigned(trust, p.value, 'scrap event', r.data.scrappedAt);
  if (!v.ok) return reject(v.error.reason, v.error.message);
  if (r.data.stationId !== trust.row.stationId)
    return reject(
      'station-mismatch',
      `scrap event: made by station ${r.data.stationId}, submitted by ${trust.row.stationId}`,
    );
  return {
    ok: true,
    kind: 'scrap',
    payload: r.data,
    sha256: createHash('sha256').update(p.value.payload).digest('hex'),
  };
}

/** Verify one event of POST /v1/revocations: a failed-issuance event by its typ, anything else as a scrap event. */
async function verifyRevocationEvent(
  trust: StationTrust,
  jws: string,
): Promise<
  | Awaited<ReturnType<typeof verifyScrapJws>>
  | ({ ok: true } & CheckedFailedIssuance)
  | { ok: false; result: ScrapResult }
> {
  const p = parseCompactJws(jws, 'revocation event', MAX_SCRAP_JWS_CHARS);
  if (p.ok && p.value.header.typ === FAILED_ISSUANCE_TYP) return verifyFailedIssuance(trust, p.value);
  return verifyScrapJws(trust, jws);
}

/**
 * Station revocation events (POST /v1/revocations, and the `revocations` of a bundle):
 *
 * - scrap events (typ line-station-scrap+jws, payload line-station/scrap/v1) must be signed by the caller's ENROLLED
 *   key with x5c leaf = its enrolled certificate, name the caller as stationId, and name an active credential of a
 *   device this station provisioned (same serial number and chip id; certificate hash if given). Accepted ones
 *   revoke the device (role station, reason cessationOfOperation) with their `device.scrapped` events;
 * - failed-issuance events (typ line-station-failed-issuance+jws, ./failed-issuance.ts) carry a certificate the
 *   station's issuing CA issued for a run that ended without a record; accepted ones are revoked at once
 *   (`failed_issuances`, `certificate.failed-issuance` event).
 *
 * All in ONE transaction; the station's CRL is re-signed afterwards. Idempotent: a repeated delivery answers
 * `duplicate` and changes nothing (scrap: by (station, requestId); failed issuance: by (station, certificate)).
 */
export async function stationScrapRevocations(
  ctx: LifecycleContext,
  trust: StationTrust,
  requests: readonly string[],
  via: 'online' | 'bundle' = 'online',
): Promise<Result<{ results: ScrapResult[] }, ApiError>> {
  if (requests.length > MAX_SCRAP_REQUESTS)
    return fail('BODY_INVALID', `at most ${MAX_SCRAP_REQUESTS} revocation events per request`);
  const stationId = trust.row.stationId;
  const checked: Awaited<ReturnType<typeof verifyRevocationEvent>>[] = [];
  for (const jws of requests) checked.push(await verifyRevocationEvent(trust, jws));
  const r = await guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const at = now(ctx);
        const results: ScrapResult[] = [];
        for (const c of checked) {
          if (!c.ok) {
            results.push(c.result);
            continue;
          }
          if (c.kind === 'failed-issuance') {
            results.push(await applyFailedIssuance(x, at, stationId, c, via));
            continue;
          }
          const p = c.payload;
          const reject = (reason: ScrapRejectReason, message: string) =>
            results.push({ requestId: p.requestId, status: 'rejected', reason, message });
          if ((await st.getSetting(x, scrapKey(stationId, p.requestId))) !== null) {
            results.push({ requestId: p.requestId, status: 'duplicate' });
            continue;
          }
          const serial = normaliseSerial(p.certificateSerial);
          const cred = await st.credentialBySerial(x, stationId, serial);
          const d = cred ? await st.findDevice(x, cred.serialNumber) : null;
          if (!cred || !d || d.stationId !== stationId) {
            reject(
              'unknown-credential',
              `certificate ${serial} is not a credential of a device of station ${stationId}`,
            );
            continue;
          }
          if (
            d.serialNumber !== p.serialNumber ||
            d.chipId !== p.chipId ||
            (p.certificateSha256 !== null && cred.sha256 !== p.certificateSha256)
          ) {
            reject('device-mismatch', `certificate ${serial} belongs to another board than the scrap event names`);
            continue;
          }
          if (cred.status !== 'active') {
            reject('credential-not-active', `certificate ${serial} is ${cred.status} (device ${d.state})`);
            continue;
          }
          const t = transition(d.state, 'revoke', 'station');
          if (!t.ok) {
            reject('transition-invalid', t.error.message);
            continue;
          }
          await applyIn(x, at, d, 'revoke', 'station', 'cessationOfOperation');
          await st.appendEvent(x, at, 'device.scrapped', {
            serialNumber: d.serialNumber,
            chipId: d.chipId,
            stationId,
            requestId: p.requestId,
            recordId: p.recordId,
            certSerial: serial,
            note: p.note,
            supervisor: p.supervisor,
            operator: p.operator,
            scrappedAt: p.scrappedAt,
            scrapEventSha256: c.sha256,
          });
          await st.setSetting(x, scrapKey(stationId, p.requestId), canonicalJson({ serialNumber: d.serialNumber, at }));
          results.push({ requestId: p.requestId, status: 'revoked' });
        }
        return results;
      }),
    ),
  );
  if (!r.ok) return r;
  const revoked = r.value.filter((x) => x.status === 'revoked').length;
  if (revoked) {
    ctx.logger.log('info', 'station revocation events applied (scrapped devices, failed issuances)', {
      stationId,
      revoked,
    });
    const crl = await refreshCrl(ctx, stationId);
    if (!crl.ok)
      ctx.logger.log('warn', 'CRL not re-signed after station revocation events', { stationId, code: crl.error.code });
  }
  return ok({ results: r.value });
}

// ---------------------------------------------------------------- delegated revocation signer

async function enrolledStation(ctx: LifecycleContext, stationId: string): Promise<Result<StationRow, ApiError>> {
  const row = await ctx.db.getStation(stationId);
  if (!row.ok) return storeFail(row.error.message);
  if (!row.value) return fail('NOT_FOUND', `station ${stationId} is not enrolled`);
  return ok(row.value);
}

/** Registry token label of a revocation signer key (fits the 64-character label limit). */
export const signerKeyLabel = (requestId: string): string => `revocation-signer-${requestId}`;

/**
 * Step 1 (station-authenticated, docs/lifecycle.md "Delegated revocation signer"): generate a signing key in the
 * registry token (sensitive, never extractable) and answer a signed request for its certificate (the CSR,
 * self-signed by that key). While a request is pending the same signed request is answered again.
 */
export async function revocationSignerRequest(
  ctx: LifecycleContext,
  stationId: string,
): Promise<Result<{ jws: string; requestId: string; repeated: boolean }, ApiError>> {
  const hsm = ctx.lifecycle?.hsm;
  if (!hsm) return fail('INTERNAL', 'the registry has no HSM configured for revocation signing');
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  if (row.value.revokedAt) return fail('AUTH_STATION_REVOKED', `station ${stationId} is revoked`);
  const pending = await guarded(async () => ok(await st.signerOf(ctx.db.sql, stationId, 'pending')));
  if (!pending.ok) return pending;
  if (pending.value) return ok({ jws: pending.value.requestJws, requestId: pending.value.requestId, repeated: true });
  const chain = fromPemChain(row.value.chainPem);
  if (!chain.ok || !chain.value[1]) return fail('INTERNAL', 'stored station chain is unreadable');
  const caKey = await importVerifyKey(new Uint8Array(new X509Certificate(buf(chain.value[1])).publicKey.rawData));
  if (!caKey) return fail('BODY_INVALID', 'the issuing CA key is not EC P-256/P-384');
  const requestId = globalThis.crypto.randomUUID();
  const label = signerKeyLabel(requestId);
  const key = await hsm.generateSigningKey(label, caKey.curve);
  if (!key.ok) return fail('INTERNAL', `registry HSM: ${key.error.code}: ${key.error.message}`);
  const signed = await signerRequestJws(ctx, hsm, label, stationId, requestId);
  if (!signed.ok) {
    await hsm.destroyKeyPair(label);
    return signed;
  }
  const { jws, requestedAt } = signed.value;
  const r = await guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const again = await st.signerOf(x, stationId, 'pending');
        if (again) return { jws: again.requestJws, requestId: again.requestId, repeated: true };
        await st.insertSignerRequest(x, { requestId, stationId, keyLabel: label, requestJws: jws, requestedAt });
        await st.appendEvent(x, requestedAt, 'station.revocation-signer-requested', {
          stationId,
          requestId,
          keyLabel: label,
        });
        return { jws, requestId, repeated: false };
      }),
    ),
  );
  // A concurrent request won: this key is not used by anything.
  if (!r.ok || r.value.requestId !== requestId) await hsm.destroyKeyPair(label);
  return r;
}

/** The signed request of step 1: a CSR of the new token key `label`, in a JWS of the registry receipt key. */
async function signerRequestJws(
  ctx: LifecycleContext,
  hsm: LifecycleHsm,
  label: string,
  stationId: string,
  requestId: string,
): Promise<Result<{ jws: string; requestedAt: string }, ApiError>> {
  const signer = await hsm.signer(label);
  if (!signer.ok) return fail('INTERNAL', `registry HSM: ${signer.error.code}: ${signer.error.message}`);
  const csr = await createCsr(signer.value, {
    commonName: `revocation signer ${stationId}`.slice(0, 64),
    organization: ctx.registryId.slice(0, 64),
  });
  if (!csr.ok) return fail('INTERNAL', `revocation signer CSR: ${csr.error.code}: ${csr.error.message}`);
  const requestedAt = now(ctx);
  const jws = await signSignerDocument(ctx.signer, ctx.registryChain, {
    schema: SIGNER_REQUEST_SCHEMA,
    registryId: ctx.registryId,
    stationId,
    requestId,
    csr: toBase64Url(csr.value),
    requestedAt,
  });
  if (!jws.ok) return fail('INTERNAL', `revocation signer request could not be signed: ${jws.error.message}`);
  return ok({ jws: jws.value, requestedAt });
}

/**
 * Step 2 (station-authenticated): the certificate the station's issuing CA issued for the pending key. Checked
 * (core/pki/ca.ts `checkRevocationSignerCertificate` against the ENROLLED issuing CA, and a test signature of
 * the key through the certificate: the first CRL), then made the station's active signer in one transaction
 * with its event; answered with a signed confirmation. The same certificate again answers the same confirmation.
 */
export async function revocationSignerInstall(
  ctx: LifecycleContext,
  stationId: string,
  body: InstallBody,
): Promise<Result<{ jws: string; certificateSha256: string; crlNumber: number; repeated: boolean }, ApiError>> {
  const hsm = ctx.lifecycle?.hsm;
  if (!hsm) return fail('INTERNAL', 'the registry has no HSM configured for revocation signing');
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  if (row.value.revokedAt) return fail('AUTH_STATION_REVOKED', `station ${stationId} is revoked`);
  const der = fromPem(body.certificatePem, 'CERTIFICATE');
  if (!der.ok) return fail('BODY_INVALID', `certificatePem: ${der.error.message}`);
  const sha = await sha256Hex(der.value);
  const req = await guarded(async () => ok(await st.signerByRequest(ctx.db.sql, body.requestId)));
  if (!req.ok) return req;
  const known = req.value;
  if (!known || known.stationId !== stationId)
    return fail('NOT_FOUND', `no revocation signer request ${body.requestId} for station ${stationId}`);
  if (known.state !== 'pending') {
    if (known.certificateSha256 === sha && known.installedJws) {
      const crl = await currentCrl(ctx, stationId);
      if (!crl.ok) return crl;
      return ok({ jws: known.installedJws, certificateSha256: sha, crlNumber: crl.value.crlNumber, repeated: true });
    }
    return fail('STATION_CONFLICT', `revocation signer request ${body.requestId} is already ${known.state}`);
  }
  const chain = fromPemChain(row.value.chainPem);
  if (!chain.ok || !chain.value[1]) return fail('INTERNAL', 'stored station chain is unreadable');
  const caDer = chain.value[1];
  const signer = await hsm.signer(known.keyLabel);
  if (!signer.ok) return fail('INTERNAL', `registry HSM: ${signer.error.code}: ${signer.error.message}`);
  const checked = await checkRevocationSignerCertificate(der.value, caDer, signer.value.publicKeySpki, ctx.clock.now());
  if (!checked.ok) return fail('BODY_INVALID', checked.error.message);
  const installedAt = now(ctx);
  const jws = await signSignerDocument(ctx.signer, ctx.registryChain, {
    schema: SIGNER_INSTALLED_SCHEMA,
    registryId: ctx.registryId,
    stationId,
    requestId: known.requestId,
    certificateSha256: sha,
    installedAt,
  });
  if (!jws.ok) return fail('INTERNAL', `confirmation could not be signed: ${jws.error.message}`);
  const r = await guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const previous = await st.signerOf(x, stationId, 'active');
        const n = await st.activateSigner(x, known.requestId, stationId, {
          caPem: toPem(caDer, 'CERTIFICATE'),
          certificatePem: toPem(der.value, 'CERTIFICATE'),
          certificateSha256: sha,
          installedJws: jws.value,
          installedAt,
        });
        if (n !== 1) throw new Abort(apiError('STATION_CONFLICT', 'the request was installed meanwhile'));
        await st.appendEvent(x, installedAt, 'station.revocation-signer-installed', {
          stationId,
          requestId: known.requestId,
          certificateSha256: sha,
          serialNumber: checked.value.serialNumber,
          replaced: previous?.requestId ?? null,
        });
        return previous;
      }),
    ),
  );
  if (!r.ok) return r;
  const crl = await refreshCrl(ctx, stationId);
  if (!crl.ok) return crl;
  // The replaced signer's key is no longer used: destroy it in the token.
  if (r.value) await hsm.destroyKeyPair(r.value.keyLabel);
  ctx.logger.log('info', 'revocation signer installed', { stationId, requestId: known.requestId });
  return ok({ jws: jws.value, certificateSha256: sha, crlNumber: crl.value.crlNumber, repeated: false });
}

/** The delegated revocation signers (one station, or all), newest request first per station. */
export async function revocationSignerList(
  ctx: LifecycleContext,
  stationId: string | null,
): Promise<Result<Omit<st.SignerRow, 'requestJws' | 'installedJws' | 'caPem'>[], ApiError>> {
  return guarded(async () =>
    ok(
      (await st.signers(ctx.db.sql, stationId)).map((r) => ({
        requestId: r.requestId,
        stationId: r.stationId,
        keyLabel: r.keyLabel,
        state: r.state,
        requestedAt: r.requestedAt,
        certificatePem: r.certificatePem,
        certificateSha256: r.certificateSha256,
        installedAt: r.installedAt,
      })),
    ),
  );
}

// ---------------------------------------------------------------- CRL

/** The station's active delegated signer: its token key, its certificate, the issuing CA certificate. */
async function caOf(
  ctx: LifecycleContext,
  stationId: string,
): Promise<Result<{ signer: Signer; signerDer: Uint8Array; caDer: Uint8Array }, ApiError>> {
  const hsm = ctx.lifecycle?.hsm;
  if (!hsm) return fail('INTERNAL', 'the registry has no HSM configured (no revocation signers)');
  const k = await st.signerOf(ctx.db.sql, stationId, 'active');
  if (!k?.certificatePem || !k.caPem)
    return fail('NOT_FOUND', `no revocation signer is installed for station ${stationId}`);
  const der = fromPem(k.certificatePem, 'CERTIFICATE');
  const ca = fromPem(k.caPem, 'CERTIFICATE');
  if (!der.ok || !ca.ok) return fail('INTERNAL', 'stored revocation signer certificate unreadable');
  const signer = await hsm.signer(k.keyLabel);
  if (!signer.ok) return fail('INTERNAL', `registry HSM: ${signer.error.code}: ${signer.error.message}`);
  return ok({ signer: signer.value, signerDer: der.value, caDer: ca.value });
}

const crlLocks = new WeakMap<object, Map<string, Promise<unknown>>>();

/**
 * Sign a new CRL for a station's issuing CA (number + 1) from the current credential table. Calls for one station
 * run one after another; a station's queue entry goes when its last call is done (the public CRL route reaches
 * this with any station id: nothing may stay behind per id).
 */
export async function refreshCrl(ctx: LifecycleContext, stationId: string): Promise<Result<st.CrlRow, ApiError>> {
  let locks = crlLocks.get(ctx.db);
  if (!locks) crlLocks.set(ctx.db, (locks = new Map()));
  const queue = locks;
  const prev = queue.get(stationId) ?? Promise.resolve();
  const run = prev.then(() => refreshCrlNow(ctx, stationId));
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  queue.set(stationId, tail);
  void tail.then(() => {
    if (queue.get(stationId) === tail) queue.delete(stationId);
  });
  return run;
}

async function refreshCrlNow(ctx: LifecycleContext, stationId: string): Promise<Result<st.CrlRow, ApiError>> {
  return guarded(async () => {
    const x = ctx.db.sql;
    const ca = await caOf(ctx, stationId);
    if (!ca.ok) return ca;
    const entries = [];
    for (const c of await st.crlCandidates(x, stationId)) {
      const s = credentialRevocation(c.deviceState, c, c.suspendedAt);
      if (s.status === 'revoked') entries.push({ serial: c.serial, revokedAt: s.at || c.createdAt, reason: s.reason });
    }
    // Certificates issued for runs that ended without a record (failed-issuance events): all revoked.
    const listed = new Set(entries.map((e) => e.serial));
    for (const f of await st.failedIssuances(x, stationId))
      if (!listed.has(f.certSerial))
        entries.push({ serial: f.certSerial, revokedAt: f.revokedAt, reason: CRL_REASON_CODES[f.reason] });
    const prev = await st.getCrlRow(x, stationId);
    const thisUpdate = ctx.clock.now();
    const nextUpdate = new Date(thisUpdate.getTime() + crlInterval(ctx) * 1000);
    const crlNumber = (prev?.crlNumber ?? 0) + 1;
    // Signed by the delegated signer: its certificate's subject is the issuing CA's name (the CRL issuer) and
    // its key identifier is the CRL's authority key identifier.
    const der = await createCrl({
      signer: ca.value.signer,
      issuerCertificate: ca.value.signerDer,
      thisUpdate,
      nextUpdate,
      crlNumber,
      entries,
    });
    if (!der.ok) return fail('INTERNAL', `CRL: ${der.error.code}: ${der.error.message}`);
    const row: st.CrlRow = {
      stationId,
      crlNumber,
      thisUpdate: thisUpdate.toISOString(),
      nextUpdate: nextUpdate.toISOString(),
      der: der.value,
    };
    await st.putCrlRow(x, row);
    return ok(row);
  });
}

/** The current CRL of a station (regenerated when missing or past half its interval). */
export async function currentCrl(ctx: LifecycleContext, stationId: string): Promise<Result<st.CrlRow, ApiError>> {
  const r = await guarded(async () => ok(await st.getCrlRow(ctx.db.sql, stationId)));
  if (!r.ok) return r;
  const half = (crlInterval(ctx) * 1000) / 2;
  if (r.value && Date.parse(r.value.nextUpdate) - ctx.clock.now().getTime() > half) return ok(r.value);
  return refreshCrl(ctx, stationId);
}

/** Regenerate the CRL of every station with a revocation signer on a schedule; returns a stop function. */
export function scheduleCrls(ctx: LifecycleContext): () => void {
  const tick = async () => {
    const keys = await guarded(async () => ok(await st.activeSigners(ctx.db.sql)));
    if (!keys.ok) return;
    for (const k of keys.value) {
      const r = await refreshCrl(ctx, k.stationId);
      if (!r.ok) ctx.logger.log('error', 'scheduled CRL failed', { stationId: k.stationId, code: r.error.code });
    }
  };
  const timer = setInterval(() => void tick(), crlInterval(ctx) * 1000);
  timer.unref();
  return () => clearInterval(timer);
}

// ---------------------------------------------------------------- OCSP

/** Answer a DER OCSP request (always a DER OCSPResponse; errors as unsigned error responses). */
export async function answerOcsp(ctx: LifecycleContext, der: Uint8Array): Promise<Uint8Array> {
  const req = parseOcspRequest(der);
  if (!req.ok) return ocspErrorResponse('malformedRequest');
  try {
    const x = ctx.db.sql;
    const keys = await st.activeSigners(x);
    let station: st.SignerRow | undefined;
    let caDer: Uint8Array | undefined;
    for (const k of keys) {
      const d = fromPem(k.caPem ?? '', 'CERTIFICATE');
      if (d.ok && (await certIdMatchesIssuer(req.value.queries[0]!.certId, d.value))) {
        station = k;
        caDer = d.value;
        break;
      }
    }
    if (!station || !caDer) return ocspErrorResponse('unauthorized');
    const answers: OcspAnswer[] = [];
    for (const q of req.value.queries) {
      if (!(await certIdMatchesIssuer(q.certId, caDer))) {
        answers.push({ certId: q.certId, status: { status: 'unknown' } });
        continue;
      }
      // A failed issuance (no record, never in service) is revoked whatever else is stored for the serial.
      const failed = await st.failedIssuance(x, station.stationId, normaliseSerial(q.serial));
      if (failed) {
        answers.push({
          certId: q.certId,
          status: { status: 'revoked', revokedAt: failed.revokedAt, reason: CRL_REASON_CODES[failed.reason] },
        });
        continue;
      }
      const c = await st.credentialBySerial(x, station.stationId, normaliseSerial(q.serial));
      const d = c ? await st.findDevice(x, c.serialNumber) : null;
      if (!c || !d) {
        answers.push({ certId: q.certId, status: { status: 'unknown' } });
        continue;
      }
      const s = credentialRevocation(d.state, c, d.suspendedAt);
      answers.push({
        certId: q.certId,
        status: s.status === 'good' ? s : { status: 'revoked', revokedAt: s.at || c.createdAt, reason: s.reason },
      });
    }
    const ca = await caOf(ctx, station.stationId);
    if (!ca.ok) return ocspErrorResponse('internalError');
    const t = ctx.clock.now();
    // A delegated responder (RFC 6960 4.2.2.2): signed by the signer key, its certificate in `certs`.
    const resp = await createOcspResponse({
      signer: ca.value.signer,
      issuerCertificate: ca.value.signerDer,
      responderCertificates: [ca.value.signerDer],
      producedAt: t,
      thisUpdate: t,
      nextUpdate: new Date(t.getTime() + crlInterval(ctx) * 1000),
      answers,
      nonce: req.value.nonce,
    });
    return resp.ok ? resp.value : ocspErrorResponse('internalError');
  } catch (e) {
    ctx.logger.log('error', 'OCSP failed', { error: e instanceof Error ? e.message : String(e) });
    return ocspErrorResponse('internalError');
  }
}

// ---------------------------------------------------------------- re-enrolment

/**
 * `POST /v1/devices/reenroll`: refused with REENROLL_UNAVAILABLE. Issuing a device certificate needs the station's
 * issuing CA key, which never leaves the station token (docs/hsm.md "Key attributes"); headquarters holds only a
 * revocation signer. Devices get a new certificate at a station (rework: a rotation record).
 */
export function reenrollUnavailable(): Result<never, ApiError> {
  return fail(
    'REENROLL_UNAVAILABLE',
    'headquarters cannot issue device certificates (the issuing CA key stays in the station HSM): re-key the device at a station (rework)',
  );
}

// ---------------------------------------------------------------- stations and operators

/**
 * Station key rotation through the admin route: the new chain (same station id, same issuing CA) is accepted
 * when signed by the CURRENT station key (raw ECDSA over utf8(newChainPem)). The old certificate is kept in the
 * history (`station_key_history`, replaced_at = now). Stations use the signed request (`stationKeyRotation`).
 */
export async function rotateStationKey(
  ctx: LifecycleContext,
  stationId: string,
  newChainPem: string,
  signature: string,
): Promise<Result<{ stationId: string; certificateSha256: string }, ApiError>> {
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  if (row.value.revokedAt) return fail('AUTH_STATION_REVOKED', `station ${stationId} is revoked`);
  const cur = fromPemChain(row.value.chainPem);
  if (!cur.ok || !cur.value[0] || !cur.value[1]) return fail('INTERNAL', 'stored station chain unreadable');
  const key = await importVerifyKey(new Uint8Array(new X509Certificate(buf(cur.value[0])).publicKey.rawData));
  let sig: Uint8Array;
  try {
    sig = fromBase64Url(signature);
  } catch {
    return fail('BODY_INVALID', 'signature must be base64url');
  }
  if (
    !key ||
    !(await verifyRaw(key.key, key.curve, key.curve === 'P-256' ? 'SHA-256' : 'SHA-384', sig, utf8(newChainPem)))
  )
    return fail('AUTH_SIGNATURE_INVALID', 'the new station chain is not signed by the current station key');
  const checked = await checkRotationChain(ctx, row.value, newChainPem);
  if (!checked.ok) return checked;
  const at = now(ctx);
  const r = await switchStationKey(ctx, row.value, checked.value, at, { via: 'admin' }, null);
  if (!r.ok) return r;
  return ok({ stationId, certificateSha256: checked.value.certificateSha256 });
}

const rotationKey = (stationId: string, requestId: string): string => `station-key-rotation.${stationId}.${requestId}`;

/** The new chain of a rotation: valid now, for this station, same issuing CA, a key never used before. */
async function checkRotationChain(
  ctx: LifecycleContext,
  row: StationRow,
  chainPem: string,
  /** The station's replaced keys when the caller has read them already. */
  known?: readonly StationKeyHistoryRow[],
): Promise<Result<{ chainPem: string; certificateSha256: string; stationCert: Uint8Array }, ApiError>> {
  const chain = await checkStationChain(row.stationId, chainPem, ctx.clock.now());
  if (!chain.ok) return fail('BODY_INVALID', chain.error.message);
  if ((await sha256Hex(chain.value.issuingCa)) !== row.issuingCaSha256)
    return fail('BODY_INVALID', 'the new station certificate must be issued by the same issuing CA');
  if ((await sha256Hex(chain.value.root)) !== row.rootSha256)
    return fail('BODY_INVALID', 'the new station chain must end in the enrolled root');
  const certificateSha256 = await sha256Hex(chain.value.stationCert);
  if (certificateSha256 === row.certificateSha256)
    return fail('BODY_INVALID', 'the new station certificate is the one in use');
  const spkiOf = (der: Uint8Array) => Buffer.from(new X509Certificate(buf(der)).publicKey.rawData);
  const newSpki = spkiOf(chain.value.stationCert);
  const older = known
    ? ok(known)
    : await guarded(async () => ok(await stationKeyHistoryRows(ctx.db.sql, row.stationId)));
  if (!older.ok) return older;
  for (const pem of [row.chainPem, ...older.value.map((h) => h.chainPem)]) {
    const c = fromPemChain(pem);
    if (!c.ok || !c.value[0]) continue;
    if (spkiOf(c.value[0]).equals(newSpki))
      return fail(
        'BODY_INVALID',
        'the new station certificate reuses a key this station used before: generate a new key',
      );
  }
  return ok({
    chainPem: chainPem.replace(/\r\n/g, '\n').trim() + '\n',
    certificateSha256,
    stationCert: chain.value.stationCert,
  });
}

/**
 * One transaction: compare-and-set the station's certificate (still `row`'s and not revoked), the old one into
 * station_key_history (replaced_at = `at`), the signed answer of a request stored under its request id, and the
 * lifecycle event. Throws STATION_CONFLICT (inside: Abort) when the station changed meanwhile.
 */
async function switchStationKey(
  ctx: LifecycleContext,
  row: StationRow,
  next: { chainPem: string; certificateSha256: string },
  at: string,
  event: Record<string, unknown>,
  stored: { key: string; value: string } | null,
): Promise<Result<true, ApiError>> {
  return guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const n = await x.run(
          'UPDATE stations SET chain_pem = ?, cert_sha256 = ? WHERE station_id = ? AND cert_sha256 = ? AND revoked_at IS NULL',
          [next.chainPem, next.certificateSha256, row.stationId, row.certificateSha256],
        );
        if (n !== 1)
          throw new Abort(
            apiError('STATION_CONFLICT', `the key of station ${row.stationId} changed (or it was revoked) meanwhile`),
          );
        await x.run(
          `INSERT INTO station_key_history (station_id, cert_sha256, chain_pem, replaced_at) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
          [row.stationId, row.certificateSha256, row.chainPem, at],
        );
        if (stored) await st.setSetting(x, stored.key, stored.value);
        await st.appendEvent(x, at, 'station.key-rotated', {
          stationId: row.stationId,
          from: row.certificateSha256,
          to: next.certificateSha256,
          ...event,
        });
        return true as const;
      }),
    ),
  );
}

/**
 * A station's signed key rotation request (docs/lifecycle.md "Station key rotation"), online (POST
 * /v1/stations/key-rotation, LS-Sig of `authenticatedStationId`) or hand-carried (`registry rotate-station-key`).
 * The request must verify with the station's CURRENT certificate (`previousCertificateSha256`); the new chain is
 * checked like an enrolment chain (same issuing CA and root, a new key). Idempotent by requestId: the same request
 * again (also signed by the key it replaced) returns the stored answer (`repeated: true`); a request signed by a
 * replaced key that was never applied is refused. Revoked stations cannot rotate.
 */
export async function stationKeyRotation(
  ctx: LifecycleContext,
  requestJws: string,
  o: {
    readonly via: 'station' | 'hand-carried';
    readonly authenticatedStationId?: string;
    /** Who applied a hand-carried request (registry CLI role); the station itself otherwise. */
    readonly actor?: LifecycleRole;
  },
): Promise<Result<KeyRotationResult, ApiError>> {
  const parsed = parseKeyRotationRequest(requestJws);
  if (!parsed.ok) return fail('BODY_INVALID', parsed.error.message);
  const req = parsed.value.payload;
  const p = parsed.value.parsed;
  if (o.authenticatedStationId !== undefined && o.authenticatedStationId !== req.stationId)
    return fail(
      'AUTH_FORBIDDEN',
      `station ${o.authenticatedStationId} cannot rotate the key of station ${req.stationId}`,
    );
  if (p.header.kid !== req.stationId)
    return fail('BODY_INVALID', 'key rotation request: kid must be the station id of the payload');
  const row = await enrolledStation(ctx, req.stationId);
  if (!row.ok) return row;
  if (row.value.revokedAt)
    return fail(
      'AUTH_STATION_REVOKED',
      `station ${req.stationId} was revoked at ${row.value.revokedAt}: it cannot rotate its key`,
    );
  const requestSha256 = await sha256Hex(parsed.value.payloadBytes);
  // The signer: the certificate the request names, the current one or one replaced before.
  const history = await guarded(async () => ok(await stationKeyHistoryRows(ctx.db.sql, req.stationId)));
  if (!history.ok) return history;
  const signerPem =
    req.previousCertificateSha256 === row.value.certificateSha256
      ? row.value.chainPem
      : history.value.find((h) => h.certSha256 === req.previousCertificateSha256)?.chainPem;
  if (!signerPem)
    return fail(
      'AUTH_SIGNATURE_INVALID',
      'key rotation request: previousCertificateSha256 is no certificate of this station',
    );
  const signerChain = fromPemChain(signerPem);
  if (!signerChain.ok || !signerChain.value[0]) return fail('INTERNAL', 'stored station chain unreadable');
  const x5c = p.header.x5c?.[0];
  if (x5c === undefined || !Buffer.from(x5c, 'base64').equals(Buffer.from(signerChain.value[0])))
    return fail('AUTH_SIGNATURE_INVALID', 'key rotation request: the x5c leaf is not the certificate it names');
  const key = await importJwsKey(new Uint8Array(new X509Certificate(buf(signerChain.value[0])).publicKey.rawData));
  if (!key) return fail('INTERNAL', 'stored station certificate has an unsupported key');
  const v = await verifyParsedJws(p, key, 'key rotation request');
  if (!v.ok)
    return fail(
      'AUTH_SIGNATURE_INVALID',
      `${v.error.message} (station ${req.stationId}, certificate ${req.previousCertificateSha256.slice(0, 12)}...)`,
    );

  const stored = await guarded(async () =>
    ok(await st.getSetting(ctx.db.sql, rotationKey(req.stationId, req.requestId))),
  );
  if (!stored.ok) return stored;
  const repeat = (s: string): Result<KeyRotationResult, ApiError> => {
    const prev = JSON.parse(s) as { requestSha256: string; result: Omit<KeyRotationResult, 'repeated'> };
    if (prev.requestSha256 !== requestSha256)
      return fail(
        'STATION_CONFLICT',
        `key rotation request ${req.requestId} was already applied with different content`,
      );
    return ok({ ...prev.result, repeated: true });
  };
  if (stored.value) return repeat(stored.value);
  if (req.previousCertificateSha256 !== row.value.certificateSha256) {
    const replaced = history.value.find((h) => h.certSha256 === req.previousCertificateSha256);
    return fail(
      'AUTH_SIGNATURE_INVALID',
      `key rotation request: signed with a station key replaced at ${replaced?.replacedAt ?? '?'}; only the current key can rotate`,
    );
  }
  if (new Date(req.requestedAt).getTime() > ctx.clock.now().getTime() + MAX_CLOCK_SKEW_S * 1000)
    return fail('BODY_INVALID', 'key rotation request: requestedAt is in the future');
  const checked = await checkRotationChain(ctx, row.value, req.chainPem, history.value);
  if (!checked.ok) return checked;
  const rotatedAt = now(ctx);
  const answer: KeyRotationAnswer = {
    schema: KEY_ROTATION_ANSWER_SCHEMA,
    registryId: ctx.registryId,
    requestId: req.requestId,
    stationId: req.stationId,
    requestSha256,
    previousCertificateSha256: row.value.certificateSha256,
    certificateSha256: checked.value.certificateSha256,
    rotatedAt,
  };
  const jws = await signKeyRotationAnswer(ctx.signer, ctx.registryChain, answer);
  if (!jws.ok) return fail('INTERNAL', `the key rotation answer could not be signed: ${jws.error.message}`);
  const result: Omit<KeyRotationResult, 'repeated'> = {
    stationId: req.stationId,
    requestId: req.requestId,
    previousCertificateSha256: answer.previousCertificateSha256,
    certificateSha256: answer.certificateSha256,
    rotatedAt,
    answer: jws.value,
  };
  const sw = await switchStationKey(
    ctx,
    row.value,
    checked.value,
    rotatedAt,
    { via: o.via, requestId: req.requestId, requestSha256, actor: o.actor ?? 'station' },
    { key: rotationKey(req.stationId, req.requestId), value: JSON.stringify({ requestSha256, result }) },
  );
  if (!sw.ok) {
    // The same request applied concurrently: answer what was stored.
    const again = await guarded(async () =>
      ok(await st.getSetting(ctx.db.sql, rotationKey(req.stationId, req.requestId))),
    );
    if (again.ok && again.value) return repeat(again.value);
    return sw;
  }
  ctx.logger.log('info', 'station key rotated', {
    stationId: req.stationId,
    requestId: req.requestId,
    via: o.via,
    certificateSha256: answer.certificateSha256,
  });
  return ok({ ...result, repeated: false });
}

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

/** Record a station revocation in the lifecycle log (the station row itself is revoked by service.ts). */
export async function noteStationRevoked(ctx: LifecycleContext, stationId: string, role: LifecycleRole) {
  return guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        await st.appendEvent(x, now(ctx), 'station.revoked', { stationId, actor: role });
        return true;
      }),
    ),
  );
}

export async function revokeOperator(
  ctx: LifecycleContext,
  role: LifecycleRole,
  operatorId: string,
  reason: string,
): Promise<Result<{ operatorId: string; revokedAt: string }, ApiError>> {
  if (!/^[A-Za-z0-9._@-]{1,128}$/.test(operatorId)) return fail('BODY_INVALID', 'invalid operator id');
  return guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const at = now(ctx);
        await x.run(
          'INSERT INTO revoked_operators (operator_id, reason, revoked_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
          [operatorId, reason || 'unspecified', at],
        );
        const row = (await x.all('SELECT revoked_at FROM revoked_operators WHERE operator_id = ?', [operatorId]))[0]!;
        await st.appendEvent(x, at, 'operator.revoked', { operatorId, actor: role, reason });
        return { operatorId, revokedAt: row['revoked_at'] as string };
      }),
    ),
  );
}

// ---------------------------------------------------------------- policy and quotas

/** Shortest certificate lifetime / rotate-before window a policy may set (1 hour). */
export const MIN_POLICY_DURATION_S = 3600;
/** Longest certificate lifetime / rotate-before window a policy may set (100 years of 365 days). */
export const MAX_POLICY_DURATION_S = 100 * 365 * 86_400;

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
async function publishPolicy(x: SqlExec, ctx: LifecycleContext, sign = true): Promise<PublishedPolicy> {
  const content = await policyContent(x, ctx);
  const hash = createHash('sha256').update(canonicalJson(content)).digest('hex');
  const latest = (
    await x.all('SELECT version, content_sha256, jws FROM policy_versions ORDER BY version DESC LIMIT 1')
  )[0];
  if (latest && String(latest['content_sha256']) === hash)
    return { version: Number(latest['version']), changed: false, content, jws: String(latest['jws']) };
  const version =
    Math.max(Number(latest?.['version'] ?? 0), Number((await st.getSetting(x, 'policy.version')) ?? '0')) + 1;
  if (!sign) return { version, changed: true, content, jws: null };
  const at = now(ctx);
  const payload = { schema: POLICY_SCHEMA, registryId: ctx.registryId, version, issuedAt: at, ...content };
  const json = canonicalJson(payload);
  const jws = await signJws({
    signer: ctx.signer,
    payload: utf8(json),
    header: { typ: POLICY_TYP, kid: ctx.registryId, x5c: ctx.registryChain },
  });
  if (!jws.ok) throw new Abort(apiError('INTERNAL', `policy could not be signed: ${jws.error.message}`));
  await x.run(
    'INSERT INTO policy_versions (version, content_sha256, payload_json, jws, signed_at) VALUES (?, ?, ?, ?, ?)',
    [version, hash, json, jws.value, at],
  );
  await st.setSetting(x, 'policy.version', String(version));
  await st.appendEvent(x, at, 'policy.signed', { version, contentSha256: hash });
  return { version, changed: true, content, jws: jws.value };
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
  if (role !== 'admin') return fail('AUTH_FORBIDDEN', 'policy needs the admin token');
  const fw = change.firmware === undefined ? null : FirmwareSettingSchema.safeParse(change.firmware);
  if (fw && !fw.success) return fail('BODY_INVALID', zodMessage(fw.error, 'firmware'));
  const fwo =
    change.firmwareWorkOrders === undefined ? null : FirmwareSettingSchema.safeParse(change.firmwareWorkOrders);
  if (fwo && !fwo.success) return fail('BODY_INVALID', zodMessage(fwo.error, 'firmware'));
  const prof = change.profileOverrides === undefined ? null : ProfileOverridesSchema.safeParse(change.profileOverrides);
  if (prof && !prof.success) return fail('BODY_INVALID', zodMessage(prof.error, 'profileOverrides'));
  const re = change.reenrollment === undefined ? null : ReenrollmentSettingSchema.safeParse(change.reenrollment);
  if (re && !re.success) return fail('BODY_INVALID', zodMessage(re.error, 'reenrollment'));
  const urls =
    change.revocationUrls === undefined ? null : RevocationUrlTemplatesSchema.safeParse(change.revocationUrls);
  if (urls && !urls.success) return fail('BODY_INVALID', zodMessage(urls.error, 'revocationUrls'));
  return guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
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
            throw new Abort(
              apiError(
                'BODY_INVALID',
                `reenrollment.rotateBeforeSeconds: ${before} s must be below the certificate lifetime (${eff.certificateLifetimeSeconds} s)`,
              ),
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
        const r = { ...(await publishPolicy(x, ctx, !dryRun)), dryRun };
        if (dryRun) throw new Rollback(r);
        return r;
      }),
    ),
  );
}

/**
 * The signed policy for stations: revoked stations and operators, blocked serials and chip ids, allowed
 * firmware per work order, certificate profile overrides, the effective re-enrolment lifetimes, CRL / OCSP URL
 * templates. A new version (signed once) whenever the content changed; else the newest version's stored JWS.
 */
export async function signedPolicy(ctx: LifecycleContext): Promise<Result<{ version: number; jws: string }, ApiError>> {
  const r = await guarded(async () => ok(await ctx.db.sql.transaction(async (x) => publishPolicy(x, ctx))));
  return r.ok ? ok({ version: r.value.version, jws: r.value.jws! }) : r;
}

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
  if (!row.value) return fail('NOT_FOUND', `station ${stationId} is not enrolled`);
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
  if (!jws.ok) return fail('INTERNAL', `station status could not be signed: ${jws.error.message}`);
  return ok({ jws: jws.value });
}

export async function setQuota(
  ctx: LifecycleContext,
  role: LifecycleRole,
  workOrder: string,
  stationId: string,
  quantity: number,
): Promise<Result<{ workOrder: string; stationId: string; quantity: number }, ApiError>> {
  if (!Number.isSafeInteger(quantity) || quantity < 0) return fail('BODY_INVALID', 'quantity must be an integer >= 0');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(workOrder)) return fail('BODY_INVALID', 'invalid work order');
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  return guarded(async () =>
    ok(
      await ctx.db.sql.transaction(async (x) => {
        const at = now(ctx);
        await x.run(
          `INSERT INTO quotas (work_order, station_id, quantity, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (work_order, station_id) DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at`,
          [workOrder, stationId, quantity, at],
        );
        const v = Number((await st.getSetting(x, 'quota.version')) ?? '0') + 1;
        await st.setSetting(x, 'quota.version', String(v));
        await st.appendEvent(x, at, 'quota.set', { workOrder, stationId, quantity, actor: role });
        return { workOrder, stationId, quantity };
      }),
    ),
  );
}

/** The signed quotas of one station (JWS typ line-station-quota+jws). */
export async function signedQuotas(
  ctx: LifecycleContext,
  stationId: string,
): Promise<Result<{ version: number; jws: string }, ApiError>> {
  const r = await guarded(async () => {
    const x = ctx.db.sql;
    return ok({
      version: Number((await st.getSetting(x, 'quota.version')) ?? '0'),
      quotas: await st.quotasFor(x, stationId),
    });
  });
  if (!r.ok) return r;
  const payload = {
    schema: QUOTA_SCHEMA,
    registryId: ctx.registryId,
    stationId,
    version: r.value.version,
    issuedAt: now(ctx),
    quotas: r.value.quotas.map((q) => ({ workOrder: q.workOrder, quantity: q.quantity })),
  };
  const jws = await signJws({
    signer: ctx.signer,
    payload: utf8(canonicalJson(payload)),
    header: { typ: QUOTA_TYP, kid: ctx.registryId, x5c: ctx.registryChain },
  });
  if (!jws.ok) return fail('INTERNAL', `quotas could not be signed: ${jws.error.message}`);
  return ok({ version: r.value.version, jws: jws.value });
}

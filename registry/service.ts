/**
 * The registry's operations, independent of HTTP (the server and the CLI both call these): station
 * enrolment and revocation, request authentication, batch and bundle ingest with signed receipts, queries.
 * Failures are `ApiError`s: a wire code (docs/registry-api.md), an HTTP status and a message for people.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { sha256Hex, utf8 } from '../core/bytes.js';
import { canonicalJson } from '../core/canonical.js';
import { signJws } from '../core/pki/jws.js';
import type { Clock, Logger, Signer } from '../core/ports.js';
import { err, ok, type Result } from '../core/result.js';
import type { IngestRecord, RegistryDb, SqlExec, StoredRecordRow } from '../core/hq/registry-db.js';
import { importJwsKey, parseCompactJws, verifyParsedJws, type VerifyKey } from '../core/hq/jws.js';
import {
  AUTH_SCHEME,
  BatchResponseSchema,
  MAX_CLOCK_SKEW_S,
  RECEIPT_SCHEMA,
  RECEIPT_TYP,
  REGISTRY_ERRORS,
  REQUEST_TYP,
  RequestClaimsSchema,
  StationIdSchema,
  recordsDigest,
  zodMessage,
  type BatchResponse,
  type BundleResponse,
  type DeviceView,
  type EnrollStationRequest,
  type ReceiptPayload,
  type RecordResult,
  type RecordView,
  type RecordsPage,
  type RequestClaims,
  type RegistryErrorCode,
  type RejectReason,
  type RevocationResult,
  type StationSummary,
  type Stats,
} from '../core/hq/protocol.js';
import { appendEvent as appendLifecycleEvent } from './lifecycle/store.js';
import { anchorAuditHead } from './audit-anchor.js';
import type { AuditAnchorOutcome, AuditHeadSubmission } from '../core/hq/audit-head.js';
import {
  lifecycleApplyRecords,
  lifecyclePrecheck,
  refreshCrl,
  stationScrapRevocations,
  type LifecycleConfig,
} from './lifecycle/service.js';
import {
  bundleStationId,
  checkStationChain,
  loadStationTrust,
  stationKeyHistoryRows,
  verifyBundle,
  verifyRecordJws,
  type StationTrust,
} from './verify.js';

export interface ApiError {
  readonly status: number;
  readonly code: RegistryErrorCode;
  readonly message: string;
}

/** Build an ApiError (status from the code). */
export function apiError(code: RegistryErrorCode, message: string): ApiError {
  return { status: REGISTRY_ERRORS[code], code, message };
}

const apiFail = (code: RegistryErrorCode, message: string) => err(apiError(code, message));

export interface RegistryContext {
  readonly db: RegistryDb;
  /** Receipt signing key (HSM). */
  readonly signer: Signer;
  /** Registry certificate chain (DER, leaf first); the leaf's key is the signer's. */
  readonly registryChain: readonly Uint8Array[];
  readonly registryId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** SHA-256 of the admin token (none: admin endpoints are refused). */
  readonly adminTokenSha256?: Uint8Array;
  /** Identity lifecycle settings (registry/lifecycle/; delegated revocation signers, CRL/OCSP, roles). */
  readonly lifecycle?: LifecycleConfig;
}

export type Caller =
  | {
      readonly kind: 'admin';
      /**
       * Import a bundle of a REVOKED station (deliberate, audited): its records completed before the revocation
       * are accepted, later ones rejected STATION_REVOKED. Without it a revoked station's bundle is refused.
       */
      readonly allowRevokedStation?: boolean;
    }
  | { readonly kind: 'station'; readonly trust: StationTrust };

const trustCache = new WeakMap<RegistryDb, Map<string, StationTrust>>();

function storeError(e: { message: string }): ApiError {
  return apiError('STORE_UNAVAILABLE', e.message);
}

/** The enrolled, non-revoked station's trust material (cached per database and certificate). */
export async function stationTrust(
  ctx: RegistryContext,
  stationId: string,
  allowRevoked = false,
): Promise<Result<StationTrust, ApiError>> {
  const row = await ctx.db.getStation(stationId);
  if (!row.ok) return err(storeError(row.error));
  if (!row.value) return apiFail('AUTH_UNKNOWN_STATION', `station ${stationId} is not enrolled`);
  if (row.value.revokedAt && !allowRevoked)
    return apiFail('AUTH_STATION_REVOKED', `station ${stationId} was revoked at ${row.value.revokedAt}`);
  let cache = trustCache.get(ctx.db);
  if (!cache) trustCache.set(ctx.db, (cache = new Map()));
  const cached = cache.get(stationId);
  if (cached && cached.row.certificateSha256 === row.value.certificateSha256) return ok({ ...cached, row: row.value });
  // Keys replaced by rotations (station key rotation, docs/lifecycle.md): records completed before still verify.
  let history: Awaited<ReturnType<typeof stationKeyHistoryRows>>;
  try {
    history = await stationKeyHistoryRows(ctx.db.sql, stationId);
  } catch (e) {
    return err(storeError({ message: `station key history: ${e instanceof Error ? e.message : String(e)}` }));
  }
  const t = await loadStationTrust(row.value, history);
  if (!t.ok) return err(storeError(t.error));
  cache.set(stationId, t.value);
  return ok(t.value);
}

// ---------------------------------------------------------------- authentication

/** Check `Authorization: Bearer <admin token>` in constant time. */
export function checkAdmin(ctx: RegistryContext, authorization: string | undefined): Result<Caller, ApiError> {
  if (!authorization)
    return apiFail('AUTH_REQUIRED', 'this endpoint needs the admin token (Authorization: Bearer <token>)');
  const m = /^Bearer ([A-Za-z0-9_-]{16,256})$/.exec(authorization);
  if (!m || !ctx.adminTokenSha256) return apiFail('AUTH_FORBIDDEN', 'admin token required');
  const got = createHash('sha256').update(m[1]!).digest();
  if (!timingSafeEqual(got, ctx.adminTokenSha256)) return apiFail('AUTH_FORBIDDEN', 'the admin token is not valid');
  return ok({ kind: 'admin' });
}

/** The request audience of this registry: `registryAudience` of its certificate (registryChain[0]). */
export function audienceOf(ctx: RegistryContext): string {
  const leaf = ctx.registryChain[0];
  return leaf ? createHash('sha256').update(leaf).digest('hex') : '';
}

/** A station request whose headers passed (signature, audience, method, path, time); the body is not read yet. */
export interface StationHeaderAuth {
  readonly trust: StationTrust;
  readonly claims: RequestClaims;
}

/** The longest `Authorization` header value read (a request JWS is ~600 characters). */
const MAX_AUTHORIZATION_CHARS = 8 * 1024;

/** Verifies the signatures of requests naming an unknown station, so that they cost what a known station's do. */
let decoyKey: Promise<VerifyKey> | null = null;
const decoy = (): Promise<VerifyKey> =>
  (decoyKey ??= globalThis.crypto.subtle
    .generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
    .then((k) => globalThis.crypto.subtle.exportKey('spki', k.publicKey))
    .then(async (spki) => (await importJwsKey(new Uint8Array(spki)))!));

/**
 * Station authentication, step 1, from the headers alone (`Authorization: LS-Sig <JWS>`, no body byte read):
 * well-formed (AUTH_MALFORMED), for this registry (`aud`, AUTH_AUDIENCE_MISMATCH), signed by the ENROLLED key of
 * the station named in `kid` (AUTH_UNKNOWN_STATION / AUTH_SIGNATURE_INVALID: the front door answers both the same),
 * the station not revoked (AUTH_STATION_REVOKED, only told to a valid signature), this method and request target
 * (AUTH_REQUEST_MISMATCH), `ts` within ±300 s (AUTH_CLOCK_SKEW), and then its nonce new for this station
 * (AUTH_REPLAY; stored now, kept ≥ 600 s): a captured header replayed with another body is refused before any
 * body byte is read or a large-body slot taken. Stores nothing but the nonce of a header that passed.
 * A revoked station is told so (AUTH_STATION_REVOKED) unless `o.allowRevoked` (only `GET /v1/station-status`,
 * whose signed answer says so).
 */
export async function authenticateStationHeaders(
  ctx: RegistryContext,
  authorization: string | undefined,
  method: string,
  target: string,
  o: { readonly allowRevoked?: boolean } = {},
): Promise<Result<StationHeaderAuth, ApiError>> {
  if (!authorization)
    return apiFail('AUTH_REQUIRED', `missing Authorization header (${AUTH_SCHEME} <signed request JWS>)`);
  const sp = authorization.indexOf(' ');
  if (sp < 0 || authorization.slice(0, sp) !== AUTH_SCHEME)
    return apiFail('AUTH_MALFORMED', `the Authorization scheme must be ${AUTH_SCHEME}`);
  const p = parseCompactJws(authorization.slice(sp + 1).trim(), 'request signature', MAX_AUTHORIZATION_CHARS);
  if (!p.ok) return apiFail('AUTH_MALFORMED', p.error.message);
  if (p.value.header.typ !== REQUEST_TYP)
    return apiFail('AUTH_MALFORMED', `request signature: typ must be ${REQUEST_TYP}`);
  const kid = StationIdSchema.safeParse(p.value.header.kid);
  if (!kid.success) return apiFail('AUTH_MALFORMED', 'request signature: kid must be the station id');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.value.payload));
  } catch {
    return apiFail('AUTH_MALFORMED', 'request signature: the payload is not JSON');
  }
  const claims = RequestClaimsSchema.safeParse(json);
  if (!claims.success) return apiFail('AUTH_MALFORMED', `request signature: ${zodMessage(claims.error)}`);
  const c = claims.data;
  // Before any database work: a request signed for another registry (captured there and replayed here).
  if (c.aud !== audienceOf(ctx))
    return apiFail(
      'AUTH_AUDIENCE_MISMATCH',
      `the request is signed for another registry (aud ${c.aud}); this registry's audience is the SHA-256 of its certificate, ${audienceOf(ctx)}`,
    );
  const trust = await stationTrust(ctx, kid.data, true);
  if (!trust.ok) {
    if (trust.error.code === 'AUTH_UNKNOWN_STATION') await verifyParsedJws(p.value, await decoy());
    return trust;
  }
  const v = await verifyParsedJws(p.value, trust.value.stationKey, 'request signature');
  if (!v.ok) return apiFail('AUTH_SIGNATURE_INVALID', `${v.error.message} (enrolled key of station ${kid.data})`);
  if (trust.value.row.revokedAt && o.allowRevoked !== true)
    return apiFail('AUTH_STATION_REVOKED', `station ${kid.data} was revoked at ${trust.value.row.revokedAt}`);
  if (c.method !== method.toUpperCase() || c.path !== target)
    return apiFail(
      'AUTH_REQUEST_MISMATCH',
      `the request signature is for ${c.method} ${c.path}, not ${method} ${target}`,
    );
  const now = ctx.clock.now();
  if (Math.abs(now.getTime() - new Date(c.ts).getTime()) > MAX_CLOCK_SKEW_S * 1000)
    return apiFail(
      'AUTH_CLOCK_SKEW',
      `the request time ${c.ts} differs from the registry time ${now.toISOString()} by more than ${MAX_CLOCK_SKEW_S} s`,
    );
  const expires = new Date(new Date(c.ts).getTime() + 2 * MAX_CLOCK_SKEW_S * 1000).toISOString();
  const fresh = await ctx.db.useNonce(trust.value.row.stationId, c.nonce, expires, now.toISOString());
  if (!fresh.ok) return err(storeError(fresh.error));
  if (!fresh.value) return apiFail('AUTH_REPLAY', 'this request signature was already used (replayed nonce)');
  return ok({ trust: trust.value, claims: c });
}

/**
 * Station authentication, step 2, once the body is read: the signature covers these exact bytes
 * (AUTH_REQUEST_MISMATCH).
 */
export async function authenticateStationBody(
  ctx: RegistryContext,
  h: StationHeaderAuth,
  body: Uint8Array,
): Promise<Result<Caller & { kind: 'station' }, ApiError>> {
  if (h.claims.bodySha256 !== createHash('sha256').update(body).digest('hex'))
    return apiFail('AUTH_REQUEST_MISMATCH', 'the request signature does not cover this body (bodySha256 differs)');
  return ok({ kind: 'station', trust: h.trust });
}

// ---------------------------------------------------------------- ingest

/**
 * Ingest a list of record JWS for a station under `batchId` (a batch, or a bundle with batchId = bundleId):
 * verify every record, store the valid ones in ONE transaction (idempotent by recordId), sign a receipt.
 * A batchId seen before with the same content returns the stored answer (`repeated: true`); with different
 * content it is a BATCH_CONFLICT and nothing is stored.
 */
export async function ingestRecords(
  ctx: RegistryContext,
  trust: StationTrust,
  batchId: string,
  records: readonly string[],
  kind: 'batch' | 'bundle',
  /** Runs in the ingest transaction after the newly accepted records are stored (not called when there are none). */
  onStored?: (tx: SqlExec, stored: readonly IngestRecord[]) => Promise<void>,
  /**
   * The station's signed audit head and consistency proof (docs/audit.md): checked and anchored (or a finding
   * recorded) before the records, in its own transaction; the verdict goes into the receipt. Not processed again
   * for a repeated batch (its stored answer carries the first verdict).
   */
  auditHead?: AuditHeadSubmission,
  /**
   * A bundle's revocation events: applied after its records are stored (a scrap event may name a record of the same
   * bundle), before the receipt is signed, which then lists the answer per event (`revocations`).
   */
  revocations?: () => Promise<Result<{ results: RevocationResult[] }, ApiError>>,
): Promise<Result<BatchResponse, ApiError>> {
  const stationId = trust.row.stationId;
  const contentSha256 = await recordsDigest(records);
  const prior = await ctx.db.getBatch(stationId, batchId);
  if (!prior.ok) return err(storeError(prior.error));
  if (prior.value) {
    if (prior.value.contentSha256 !== contentSha256)
      return apiFail('BATCH_CONFLICT', `${kind} ${batchId} was already submitted with different records`);
    if (prior.value.response) return ok({ ...(JSON.parse(prior.value.response) as BatchResponse), repeated: true });
  }
  let anchor: AuditAnchorOutcome | undefined;
  if (auditHead) {
    const a = await anchorAuditHead(ctx, trust, auditHead, { source: kind, batchId });
    if (!a.ok) return a;
    anchor = a.value;
  }
  const now = ctx.clock.now();
  const results: RecordResult[] = [];
  const valid = [];
  for (const [i, jws] of records.entries()) {
    const r = await verifyRecordJws(trust, jws, i, now);
    if (r.ok) valid.push(r.record);
    else results[i] = r.result;
  }
  // --- identity lifecycle: decommissioned / blocked devices, records after a station or operator revocation.
  // Fails closed: without the check nothing is stored (STORE_UNAVAILABLE, the station retries).
  let refused: Map<number, RejectReason>;
  try {
    refused = await lifecyclePrecheck(ctx, trust.row, valid);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    ctx.logger.log('error', 'lifecycle precheck failed', { stationId, batchId, error: message });
    return apiFail('STORE_UNAVAILABLE', `registry database: ${message}`);
  }
  for (let k = valid.length - 1; k >= 0; k--) {
    const v = valid[k]!;
    const reason = refused.get(v.index);
    if (!reason) continue;
    valid.splice(k, 1);
    results[v.index] = {
      index: v.index,
      recordId: v.recordId,
      status: 'rejected',
      sha256: v.sha256,
      reason,
      message: `record ${v.recordId} refused by the identity lifecycle: ${reason}`,
    };
  }
  // --- identity lifecycle: devices and credentials of the records newly stored, in the SAME transaction (a
  // failure rolls the whole batch back and answers STORE_UNAVAILABLE: the station retries, exactly once holds).
  let crlChanged = false;
  const ing = await ctx.db.ingest(
    { stationId, batchId, kind, contentSha256, receivedAt: now.toISOString(), records: valid },
    async (tx, stored) => {
      crlChanged = (await lifecycleApplyRecords(ctx, tx, stationId, stored)).crlChanged;
      await onStored?.(tx, stored);
    },
  );
  if (!ing.ok) {
    ctx.logger.log('error', `${kind} not stored`, { stationId, batchId, error: ing.error.message });
    return err(storeError(ing.error));
  }
  if (crlChanged) await refreshCrl(ctx, stationId);
  if (ing.value.kind === 'batch-conflict')
    return apiFail('BATCH_CONFLICT', `${kind} ${batchId} was already submitted with different records`);
  for (const v of valid) {
    const status = ing.value.statuses.get(v.index) ?? 'conflict';
    results[v.index] = {
      index: v.index,
      recordId: v.recordId,
      status,
      sha256: v.sha256,
      reason: status === 'conflict' ? 'conflict' : null,
      message: status === 'conflict' ? `record ${v.recordId} is already stored with different content` : null,
    };
  }
  const summary = { accepted: 0, duplicate: 0, conflict: 0, rejected: 0 };
  for (const r of results) summary[r.status]++;
  const rev = revocations ? await revocations() : null;
  if (rev && !rev.ok) return rev;
  const receipt: ReceiptPayload = {
    schema: RECEIPT_SCHEMA,
    receiptId: globalThis.crypto.randomUUID(),
    registryId: ctx.registryId,
    stationId,
    batchId,
    issuedAt: ctx.clock.now().toISOString(),
    accepted: results
      .filter((r) => r.status === 'accepted' || r.status === 'duplicate')
      .map((r) => ({ recordId: r.recordId!, sha256: r.sha256! })),
    rejected: results
      .filter((r) => r.status === 'rejected' || r.status === 'conflict')
      .map((r) => ({ index: r.index, recordId: r.recordId, reason: r.reason! })),
    ...(anchor ? { auditHead: anchor } : {}),
    ...(rev ? { revocations: rev.value.results } : {}),
  };
  const jws = await signJws({
    signer: ctx.signer,
    payload: utf8(canonicalJson(receipt)),
    header: { typ: RECEIPT_TYP, kid: ctx.registryId, x5c: ctx.registryChain },
  });
  if (!jws.ok) return apiFail('INTERNAL', `the receipt could not be signed: ${jws.error.code}: ${jws.error.message}`);
  const response: BatchResponse = { batchId, stationId, repeated: false, summary, results, receipt: jws.value };
  const saved = await ctx.db.saveBatchResponse(stationId, batchId, JSON.stringify(response));
  if (!saved.ok) return err(storeError(saved.error));
  ctx.logger.log('info', `${kind} ingested`, { stationId, batchId, ...summary });
  const stored = BatchResponseSchema.parse(JSON.parse(saved.value));
  return ok(stored.receipt === response.receipt ? response : { ...stored, repeated: true });
}

/**
 * Verify and ingest a bundle file (`line-station/bundle/v1`). With a station caller the bundle must be that
 * station's; an admin may import any enrolled station's bundle. BUNDLE_INVALID (nothing stored) when the
 * bundle is truncated, modified or incomplete.
 */
export async function importBundle(
  ctx: RegistryContext,
  caller: Caller,
  bundle: string,
): Promise<Result<BundleResponse, ApiError>> {
  const claimed = bundleStationId(bundle.trim());
  if (claimed === null)
    return apiFail(
      'BUNDLE_INVALID',
      'the bundle is truncated or corrupted (not a signed bundle, or no station id in its header); rejected as a whole',
    );
  if (caller.kind === 'station' && caller.trust.row.stationId !== claimed)
    return apiFail(
      'AUTH_FORBIDDEN',
      `station ${caller.trust.row.stationId} may not submit a bundle of station ${claimed}`,
    );
  const allowRevoked = caller.kind === 'admin' && caller.allowRevokedStation === true;
  const trust = await stationTrust(ctx, claimed, allowRevoked);
  if (!trust.ok)
    return trust.error.code === 'AUTH_UNKNOWN_STATION'
      ? apiFail('BUNDLE_INVALID', `bundle: station ${claimed} is not enrolled`)
      : trust.error.code === 'AUTH_STATION_REVOKED' && caller.kind === 'admin'
        ? apiFail(
            'AUTH_STATION_REVOKED',
            `${trust.error.message}: to take in its records completed before the revocation, import with allowRevokedStation (registry import --allow-revoked-station)`,
          )
        : trust;
  const b = await verifyBundle(trust.value, bundle);
  if (!b.ok) return apiFail('BUNDLE_INVALID', b.error.message);
  const revokedAt = trust.value.row.revokedAt;
  // A revoked station's records taken in (admin, allowRevokedStation) are audited in the same transaction.
  const audit = revokedAt
    ? async (tx: SqlExec, stored: readonly IngestRecord[]) => {
        await appendLifecycleEvent(tx, ctx.clock.now().toISOString(), 'station.revoked-bundle-imported', {
          stationId: claimed,
          revokedAt,
          bundleId: b.value.bundleId,
          records: stored.map((x) => x.recordId),
          actor: 'admin',
        });
      }
    : undefined;
  const events = b.value.revocations;
  const r = await ingestRecords(
    ctx,
    trust.value,
    b.value.bundleId,
    b.value.records,
    'bundle',
    audit,
    b.value.auditHead,
    events ? () => stationScrapRevocations(ctx, trust.value, events, 'bundle') : undefined,
  );
  return r.ok ? ok({ ...r.value, bundleId: b.value.bundleId }) : r;
}

// ---------------------------------------------------------------- stations

function summary(s: {
  stationId: string;
  certificateSha256: string;
  issuingCaSha256: string;
  rootSha256: string;
  workOrders: readonly string[];
  enrolledAt: string;
  revokedAt: string | null;
  lastSyncAt: string | null;
  records?: number;
  conflicts?: number;
}): StationSummary {
  return {
    stationId: s.stationId,
    certificateSha256: s.certificateSha256,
    issuingCaSha256: s.issuingCaSha256,
    rootSha256: s.rootSha256,
    workOrders: [...s.workOrders],
    enrolledAt: s.enrolledAt,
    revokedAt: s.revokedAt,
    lastSyncAt: s.lastSyncAt,
    records: s.records ?? 0,
    conflicts: s.conflicts ?? 0,
  };
}

/**
 * Enrol a station with its chain (station certificate, issuing CA, root). Enrolling the same id with the same
 * chain again is a no-op; a different chain for an existing id is STATION_CONFLICT (revoked ids stay revoked).
 */
export async function enrollStation(
  ctx: RegistryContext,
  req: EnrollStationRequest,
): Promise<Result<{ created: boolean; station: StationSummary }, ApiError>> {
  const chain = await checkStationChain(req.stationId, req.chainPem, ctx.clock.now());
  if (!chain.ok) return apiFail('BODY_INVALID', chain.error.message);
  const row = {
    stationId: req.stationId,
    chainPem: req.chainPem.replace(/\r\n/g, '\n').trim() + '\n',
    certificateSha256: await sha256Hex(chain.value.stationCert),
    issuingCaSha256: await sha256Hex(chain.value.issuingCa),
    rootSha256: await sha256Hex(chain.value.root),
    workOrders: [...new Set(req.workOrders ?? [])].sort(),
    enrolledAt: ctx.clock.now().toISOString(),
  };
  const ins = await ctx.db.insertStation(row);
  if (!ins.ok) return err(storeError(ins.error));
  const cur = await ctx.db.getStation(req.stationId);
  if (!cur.ok) return err(storeError(cur.error));
  if (!cur.value) return apiFail('INTERNAL', 'the station vanished after enrolment');
  if (!ins.value.created) {
    if (cur.value.revokedAt)
      return apiFail('STATION_CONFLICT', `station ${req.stationId} was revoked; enrol it under a new id`);
    if (
      cur.value.certificateSha256 !== row.certificateSha256 ||
      canonicalJson(cur.value.workOrders) !== canonicalJson(row.workOrders)
    )
      return apiFail(
        'STATION_CONFLICT',
        `station ${req.stationId} is already enrolled with a different certificate or work orders`,
      );
  } else
    ctx.logger.log('info', 'station enrolled', { stationId: req.stationId, certificateSha256: row.certificateSha256 });
  return ok({ created: ins.value.created, station: summary(cur.value) });
}

/** Revoke a station: from now on nothing it sends is accepted. NOT_FOUND for an unknown id. */
export async function revokeStation(
  ctx: RegistryContext,
  stationId: string,
): Promise<Result<StationSummary, ApiError>> {
  const r = await ctx.db.revokeStation(stationId, ctx.clock.now().toISOString());
  if (!r.ok) return err(storeError(r.error));
  if (!r.value) return apiFail('NOT_FOUND', `station ${stationId} is not enrolled`);
  trustCache.get(ctx.db)?.delete(stationId);
  const cur = await ctx.db.getStation(stationId);
  if (!cur.ok) return err(storeError(cur.error));
  ctx.logger.log('warn', 'station revoked', { stationId });
  return ok(summary(cur.value!));
}

// ---------------------------------------------------------------- queries

export async function listStations(ctx: RegistryContext): Promise<Result<StationSummary[], ApiError>> {
  const r = await ctx.db.listStations();
  return r.ok ? ok(r.value.map(summary)) : err(storeError(r.error));
}

export async function stats(ctx: RegistryContext): Promise<Result<Stats, ApiError>> {
  const r = await ctx.db.counts();
  return r.ok
    ? ok({
        stations: r.value.stations,
        devices: r.value.devices,
        records: r.value.records,
        conflicts: r.value.conflicts,
      })
    : err(storeError(r.error));
}

function view(r: StoredRecordRow): RecordView {
  return {
    recordId: r.recordId,
    stationId: r.stationId,
    chipId: r.chipId,
    serialNumber: r.serialNumber,
    workOrder: r.workOrder,
    kind: r.kind,
    supersedesRecordId: r.supersedesRecordId,
    completedAt: r.completedAt,
    receivedAt: r.receivedAt,
    batchId: r.batchId,
    sha256: r.sha256,
    record: JSON.parse(r.recordJson) as unknown,
    jws: r.jws,
  };
}

/** A device (by serial number or chip id) with all its records; NOT_FOUND when the registry has none. */
export async function getDevice(ctx: RegistryContext, key: string): Promise<Result<DeviceView, ApiError>> {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(key)) return apiFail('BODY_INVALID', 'expected a serial number or chip id');
  const r = await ctx.db.deviceRecords(key);
  if (!r.ok) return err(storeError(r.error));
  if (r.value.length === 0) return apiFail('NOT_FOUND', `no device ${key} in the registry`);
  const superseded = new Set(r.value.map((x) => x.supersedesRecordId).filter((x): x is string => x !== null));
  const current = [...r.value].reverse().find((x) => !superseded.has(x.recordId)) ?? null;
  const last = r.value[r.value.length - 1]!;
  return ok({
    chipId: last.chipId,
    serialNumber: last.serialNumber,
    model: last.model,
    currentRecordId: current?.recordId ?? null,
    records: r.value.map(view),
  });
}

export interface RecordQuery {
  readonly station?: string;
  readonly workOrder?: string;
  readonly from?: string;
  readonly to?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

/** Records page (oldest first, keyset pagination with an opaque cursor). */
export async function queryRecords(ctx: RegistryContext, q: RecordQuery): Promise<Result<RecordsPage, ApiError>> {
  const limit = q.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    return apiFail('BODY_INVALID', 'limit must be an integer in 1..1000');
  let afterSeq: number | undefined;
  if (q.cursor !== undefined) {
    const m = /^c([0-9]{1,15})$/.exec(q.cursor);
    if (!m) return apiFail('BODY_INVALID', 'invalid cursor');
    afterSeq = Number(m[1]);
  }
  for (const [k, v] of [
    ['from', q.from],
    ['to', q.to],
  ] as const)
    if (v !== undefined && Number.isNaN(Date.parse(v))) return apiFail('BODY_INVALID', `${k} must be an ISO date/time`);
  const r = await ctx.db.listRecords({
    ...(q.station !== undefined ? { stationId: q.station } : {}),
    ...(q.workOrder !== undefined ? { workOrder: q.workOrder } : {}),
    ...(q.from !== undefined ? { from: new Date(q.from).toISOString() } : {}),
    ...(q.to !== undefined ? { to: new Date(q.to).toISOString() } : {}),
    ...(afterSeq !== undefined ? { afterSeq } : {}),
    limit,
  });
  if (!r.ok) return err(storeError(r.error));
  const last = r.value[r.value.length - 1];
  return ok({ records: r.value.map(view), nextCursor: r.value.length === limit && last ? `c${last.seq}` : null });
}

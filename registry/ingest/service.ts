/**
 * Batch and bundle ingest (docs/registry-api.md): verify every record, store the valid ones in ONE transaction
 * (idempotent by recordId), sign a receipt. The device lifecycle takes part through IngestHooks (./hooks.ts),
 * given by the caller (registry/http/compose.ts), so ingest imports no lifecycle feature. Imports core,
 * registry/common, registry/trust, registry/store and registry/audit.
 */
import { utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { err, ok, type Result } from '../../core/result.js';
import type { IngestRecord, SqlExec } from '../../core/hq/registry-db.js';
import {
  BatchResponseSchema,
  RECEIPT_SCHEMA,
  RECEIPT_TYP,
  type BatchResponse,
  type BundleResponse,
  type ReceiptPayload,
  type RecordResult,
  type RejectReason,
} from '../../core/hq/protocol.js';
import type { AuditAnchorOutcome, AuditHeadSubmission } from '../../core/hq/audit-head.js';
import type { Caller, RegistryContext } from '../common/context.js';
import { apiFail, storeError, type ApiError } from '../common/errors.js';
import { anchorAuditHead } from '../audit/audit-anchor.js';
import { appendEvent as appendLifecycleEvent } from '../store/lifecycle.js';
import { stationTrust } from '../stations/trust.js';
import {
  bundleRecordsMatch,
  bundleStationId,
  verifyBundle,
  verifyBundleHead,
  type BundleFileV2Head,
  type BundleInput,
  type VerifiedBundleHead,
} from '../trust/bundles.js';
import { checkedDigest, verifyPool, type PooledCheckedRecord, type RecordsText } from '../trust/pool.js';
import type { PackedRecord } from '../../core/hq/pack.js';
import type { StationTrust } from '../trust/verify.js';
import type { IngestHooks } from './hooks.js';

/**
 * Rebuild (format v2: packed against `certificates`) and verify every record of a batch or bundle, spread over the
 * verification workers (registry/trust/pool.ts): every check of every record, at the registry clock.
 */
export function checkRecords(
  ctx: RegistryContext,
  trust: StationTrust,
  records: readonly PackedRecord[],
  certificates: readonly string[] = [],
): Promise<PooledCheckedRecord[]> {
  return verifyPool().verify(trust, records, certificates, ctx.clock.now());
}

/**
 * checkRecords for a batch whose records the caller has not parsed (./batch-body.ts): each worker parses and
 * validates its share. 'malformed' when a share is not the records the scan found: read the body whole instead.
 */
export function checkRecordsText(
  ctx: RegistryContext,
  trust: StationTrust,
  records: RecordsText,
  certificates: readonly string[] = [],
): Promise<PooledCheckedRecord[] | 'malformed'> {
  return verifyPool().verifyText(trust, records, certificates, ctx.clock.now());
}

/**
 * Ingest the records of a batch (compact JWS, or format v2 packed against `certificates`) for a station under
 * `batchId`: rebuild and verify every record (checkRecords), then ingestChecked.
 */
export async function ingestRecords(
  ctx: RegistryContext,
  hooks: IngestHooks,
  trust: StationTrust,
  batchId: string,
  records: readonly PackedRecord[],
  kind: 'batch' | 'bundle',
  onStored?: (tx: SqlExec, stored: readonly IngestRecord[]) => Promise<void>,
  auditHead?: AuditHeadSubmission,
  revocations?: readonly string[],
  certificates: readonly string[] = [],
): Promise<Result<BatchResponse, ApiError>> {
  const checked = await checkRecords(ctx, trust, records, certificates);
  return ingestChecked(ctx, hooks, trust, batchId, checked, kind, onStored, auditHead, revocations);
}

/**
 * Ingest the verified records of a batch for a station under `batchId` (a batch, or a bundle with batchId =
 * bundleId): store the valid ones in ONE transaction (idempotent by recordId), sign a receipt.
 * A batchId seen before with the same content returns the stored answer (`repeated: true`); with different
 * content it is a BATCH_CONFLICT and nothing is stored.
 */
export async function ingestChecked(
  ctx: RegistryContext,
  hooks: IngestHooks,
  trust: StationTrust,
  batchId: string,
  /** The batch's records, rebuilt and verified (checkRecords). */
  checked: readonly PooledCheckedRecord[],
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
  revocations?: readonly string[],
  /** checkedDigest of `checked` when the caller has checked it already (a bundle: bundleRecordsMatch). */
  digest?: string,
): Promise<Result<BatchResponse, ApiError>> {
  const stationId = trust.row.stationId;
  const contentSha256 = digest ?? checkedDigest(checked);
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
  for (const [i, { check }] of checked.entries()) {
    if (check.ok) valid.push(check.record);
    else results[i] = check.result;
  }
  // --- identity lifecycle: decommissioned / blocked devices, records after a station or operator revocation.
  // Fails closed: without the check nothing is stored (STORE_UNAVAILABLE, the station retries).
  let refused: Map<number, RejectReason>;
  try {
    refused = await hooks.precheck(ctx, trust.row, valid);
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
      crlChanged = (await hooks.apply(ctx, tx, stationId, stored)).credentialsChanged;
      await onStored?.(tx, stored);
    },
  );
  if (!ing.ok) {
    ctx.logger.log('error', `${kind} not stored`, { stationId, batchId, error: ing.error.message });
    return err(storeError(ing.error));
  }
  if (crlChanged) await hooks.credentialsChanged(ctx, stationId);
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
  const rev = revocations ? await hooks.revocations(ctx, trust, revocations) : null;
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
  const text = JSON.stringify(response);
  const saved = await ctx.db.saveBatchResponse(stationId, batchId, text);
  if (!saved.ok) return err(storeError(saved.error));
  ctx.logger.log('info', `${kind} ingested`, { stationId, batchId, ...summary });
  // Another request for the same batch may have saved its answer first: that one is the answer (repeated).
  if (saved.value === text) return ok(response);
  const stored = BatchResponseSchema.parse(JSON.parse(saved.value));
  return ok(stored.receipt === response.receipt ? response : { ...stored, repeated: true });
}

/**
 * Verify and ingest a bundle file (`line-station/bundle/v1` or `/v2`). With a station caller the bundle must be that
 * station's; an admin may import any enrolled station's bundle. BUNDLE_INVALID (nothing stored) when the
 * bundle is truncated, modified or incomplete.
 */
export async function importBundle(
  ctx: RegistryContext,
  hooks: IngestHooks,
  caller: Caller,
  bundle: BundleInput,
): Promise<Result<BundleResponse, ApiError>> {
  const trust = await bundleTrust(ctx, caller, bundle);
  if (!trust.ok) return trust;
  const b = verifyBundle(trust.value, bundle);
  if (!b.ok) return apiFail('BUNDLE_INVALID', b.error.message);
  const checked = await checkRecords(ctx, trust.value, b.value.records, b.value.certificates);
  return ingestBundle(ctx, hooks, trust.value, b.value, checked);
}

/**
 * importBundle of a v2 bundle whose records the caller has found in the request body but not parsed
 * (./bundle-body.ts): the same checks in the same order, the records parsed and validated by the verification
 * workers (checkRecordsText). 'unread' when the import is refused before the records were read, or a share is not the
 * records the scan found: nothing is stored, and the caller reads the body whole and imports it as before (the
 * body's own answer, BODY_INVALID, comes first, as it always did; else the same refusal again). Only for
 * `verifyPool().parallel(count)`.
 */
export async function importBundleText(
  ctx: RegistryContext,
  hooks: IngestHooks,
  caller: Caller,
  bundle: BundleFileV2Head,
  records: RecordsText,
): Promise<Result<BundleResponse, ApiError> | 'unread'> {
  const trust = await bundleTrust(ctx, caller, bundle);
  if (!trust.ok) return 'unread';
  const b = verifyBundleHead(trust.value, bundle, records.starts.length);
  if (!b.ok) return 'unread';
  const checked = await checkRecordsText(ctx, trust.value, records, b.value.certificates);
  if (checked === 'malformed') return 'unread';
  return ingestBundle(ctx, hooks, trust.value, b.value, checked);
}

/** The enrolled station whose bundle this is, if the caller may import it (importBundle's first checks). */
async function bundleTrust(
  ctx: RegistryContext,
  caller: Caller,
  bundle: BundleInput | BundleFileV2Head,
): Promise<Result<StationTrust, ApiError>> {
  const claimed = bundleStationId(bundle);
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
  return trust;
}

/**
 * A verified bundle's rebuilt and verified records: `recordsSha256` checked (bundleRecordsMatch), then ingested as a
 * batch with batchId = bundleId (ingestChecked); a revoked station's records taken in are audited.
 */
async function ingestBundle(
  ctx: RegistryContext,
  hooks: IngestHooks,
  trust: StationTrust,
  b: VerifiedBundleHead,
  checked: readonly PooledCheckedRecord[],
): Promise<Result<BundleResponse, ApiError>> {
  const whole = bundleRecordsMatch(b, checkedDigest(checked));
  if (!whole.ok) return apiFail('BUNDLE_INVALID', whole.error.message);
  const revokedAt = trust.row.revokedAt;
  // A revoked station's records taken in (admin, allowRevokedStation) are audited in the same transaction.
  const audit = revokedAt
    ? async (tx: SqlExec, stored: readonly IngestRecord[]) => {
        await appendLifecycleEvent(tx, ctx.clock.now().toISOString(), 'station.revoked-bundle-imported', {
          stationId: trust.row.stationId,
          revokedAt,
          bundleId: b.bundleId,
          records: stored.map((x) => x.recordId),
          actor: 'admin',
        });
      }
    : undefined;
  const r = await ingestChecked(
    ctx,
    hooks,
    trust,
    b.bundleId,
    checked,
    'bundle',
    audit,
    b.auditHead,
    b.revocations,
    b.recordsSha256, // bundleRecordsMatch above: the digest of exactly these records, not hashed again
  );
  return r.ok ? ok({ ...r.value, bundleId: b.bundleId }) : r;
}

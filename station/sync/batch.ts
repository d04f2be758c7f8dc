/**
 * Sending one batch online (docs/sync.md): the batch's records and the signed audit head go to `POST /v1/batches`
 * through the registry client (signed afresh on every attempt); the receipt must verify with the pinned registry
 * certificate and name this station and this batch before the outbox marks anything. A refused batch id
 * (BATCH_CONFLICT) is released so its records go again under a new id.
 *
 * May import: core/ (hq protocol and audit-head, errors, result), native/store/outbox.ts (types),
 * station/hq/client.ts, station/sync/anchor.ts.
 */
import { fail } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import { BATCH_PROOF_BYTES } from '../../core/hq/audit-head.js';
import { MAX_BATCH_BYTES, verifyReceipt } from '../../core/hq/protocol.js';
import { packRecords } from '../../core/hq/pack.js';
import type { ApplyOutcome } from '../../native/store/outbox.js';
import type { RegistryClient } from '../hq/client.js';
import { noteAnchor, signedAuditHead, type AnchorContext } from './anchor.js';

/** Bytes of a batch body besides the record JWS and the proof entries (ids, signed head, JSON framing). */
const RESERVED_BYTES = 64 * 1024;
/**
 * Room always left for the audit proof when records are claimed: a batch of 500 typical records (~13 KiB) still
 * fits, and the proof takes what the records leave, up to BATCH_PROOF_BYTES (docs/audit.md).
 */
const MIN_PROOF_BYTES = 512 * 1024;
/** Most record bytes one claimed batch holds. */
export const BATCH_RECORD_BYTES = MAX_BATCH_BYTES - RESERVED_BYTES - MIN_PROOF_BYTES;

export interface BatchContext extends AnchorContext {
  readonly client: RegistryClient;
  readonly registryCertificate: Uint8Array | null;
  /** Called with true when the registry answered, false when it could not be reached (not when nothing was sent). */
  readonly reached: (answered: boolean) => void;
  /** The registry refused with AUTH_STATION_REVOKED (unsigned: only a trigger for the signed check). */
  readonly onStationRevokedAnswer?: (() => void) | undefined;
}

/** POST one batch (fresh signature), verify the receipt, apply it. */
export async function sendBatch(
  c: BatchContext,
  batchId: string,
  signal: AbortSignal | undefined,
): Promise<Result<ApplyOutcome>> {
  const { outbox, log } = c;
  const batch = outbox.batch(batchId);
  if (!batch) return fail('INTERNAL', `batch ${batchId} has no records`);
  const records = batch.items.map((i) => i.jws);
  const recordBytes = records.reduce((n, r) => n + r.length + 3, 0); // JWS: ASCII
  const auditHead = await signedAuditHead(
    c,
    Math.min(BATCH_PROOF_BYTES, MAX_BATCH_BYTES - RESERVED_BYTES - recordBytes),
    batchId,
  );
  if (!auditHead.ok) return auditHead;
  // Format v2: each certificate once per batch, records packed (docs/formats.md "Packed JWS"); the registry
  // rebuilds exactly these JWS.
  const packed = packRecords(records);
  const sent = await c.client.sendBatch(
    {
      batchId,
      records: packed.records,
      certificates: packed.certificates,
      ...(auditHead.value ? { auditHead: auditHead.value } : {}),
    },
    signal,
  );
  if (!sent.ok) {
    const f = sent.error;
    if (f.kind !== 'unsent') c.reached(f.kind !== 'unreachable');
    if (f.code === 'AUTH_STATION_REVOKED') c.onStationRevokedAnswer?.();
    if (f.code === 'BATCH_CONFLICT') {
      // The registry stored nothing for this id: send the records again under a new batch id.
      const n = outbox.releaseBatch(batchId);
      log.log('warn', 'registry refused a batch id as used with other records; re-queued', { batchId, n });
    }
    return err(f.error);
  }
  c.reached(true);
  if (!c.registryCertificate)
    return fail('CONFIG_INVALID', 'no registry certificate is configured: run station enroll --registry-cert FILE');
  const receiptJws = sent.value.receipt;
  const v = await verifyReceipt(receiptJws, c.registryCertificate, { stationId: c.stationId, batchId });
  if (!v.ok) return fail('SYNC_RECEIPT_INVALID', `batch ${batchId}: ${v.error.message}`);
  const receipt = v.value;
  const order = batch.items.map((i) => i.recordId);
  const applied = outbox.applyReceipt(
    {
      receiptId: receipt.receiptId,
      batchId,
      issuedAt: receipt.issuedAt,
      jws: receiptJws,
      accepted: receipt.accepted,
      rejected: receipt.rejected,
      ...(receipt.auditHead ? { auditHead: receipt.auditHead } : {}),
    },
    'online',
    order,
  );
  noteAnchor(log, receipt.auditHead, applied, `batch ${batchId}`);
  const named = new Set([
    ...receipt.accepted.map((a) => a.recordId),
    ...receipt.rejected.map((r) => r.recordId ?? order[r.index] ?? ''),
  ]);
  const missing = batch.items.filter((i) => i.state === 'sent' && !named.has(i.recordId)).map((i) => i.recordId);
  if (missing.length) outbox.failUnmentioned(batchId, receipt.receiptId, missing);
  if (applied.failed > 0)
    log.log('warn', 'registry rejected records', {
      batchId,
      failed: applied.failed,
      reasons: [...new Set(receipt.rejected.map((r) => r.reason))],
    });
  log.log('info', 'batch acknowledged', { batchId, receiptId: receipt.receiptId, marked: applied.marked });
  return ok(applied);
}

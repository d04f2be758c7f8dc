/**
 * Anchoring the station's audit chain at the registry (docs/audit.md "Anchoring at the registry"), the sync side:
 * the signed audit head and consistency proof every batch and bundle carries, the log line of the registry's verdict
 * on it, and `anchoredHeads` (what the registry anchored, for `station verify-log --against-registry`).
 *
 * May import: core/ (hq audit-head and jws, errors, ports, result), native/store/outbox.ts (types),
 * station/hq/client.ts (types).
 */
import { fail, type StationError } from '../../core/errors.js';
import type { Clock, Logger, Signer } from '../../core/ports.js';
import { err, ok, type Result } from '../../core/result.js';
import { verifyDocument } from '../../core/hq/jws.js';
import {
  AnchoredHeadsPayloadSchema,
  AUDIT_HEADS_TYP,
  signAuditHead,
  type AnchoredHeadsPayload,
  type AuditAnchorOutcome,
  type AuditHeadSubmission,
} from '../../core/hq/audit-head.js';
import type { ApplyOutcome, Outbox } from '../../native/store/outbox.js';
import type { RegistryClient } from '../hq/client.js';

/** `audit-head-signed`: the audit head of a batch is signed (HSM) and not yet sent. */
export type SyncFailPoint = 'audit-head-signed';

export interface AnchorContext {
  readonly outbox: Outbox;
  readonly stationId: string;
  readonly signer: Signer;
  readonly chain: readonly Uint8Array[];
  readonly clock: Clock;
  readonly log: Logger;
  /** Test hook: crash points (the crash tests kill the process there). */
  readonly failpoint?:
    ((p: SyncFailPoint, detail: { batchId: string; seq: number }) => void | Promise<void>) | undefined;
}

/**
 * The signed audit head and its consistency proof (entries since the head the registry last confirmed), at most
 * `budget` bytes of entry JSON; null for an empty chain. Fails when the HSM cannot sign.
 */
export async function signedAuditHead(
  c: AnchorContext,
  budget: number,
  batchId: string,
): Promise<Result<AuditHeadSubmission | null>> {
  const p = c.outbox.auditProof(Math.max(0, budget));
  if (p.head.seq === 0) return ok(null);
  if (p.anchoredHash && p.anchoredHash !== p.fromHash)
    c.log.log('error', 'the local audit chain no longer holds the head the registry anchored', {
      seq: p.fromSeq,
      anchored: p.anchoredHash,
      local: p.fromHash,
    });
  const head = await signAuditHead({
    signer: c.signer,
    chain: c.chain,
    stationId: c.stationId,
    seq: p.head.seq,
    hash: p.head.hash,
    clock: c.clock,
  });
  if (!head.ok) return head;
  await c.failpoint?.('audit-head-signed', { batchId, seq: p.head.seq });
  return ok({ head: head.value, fromSeq: p.fromSeq, fromHash: p.fromHash, entries: [...p.entries] });
}

/** Log the registry's verdict on an audit head (a refusal is a security finding: an error). */
export function noteAnchor(log: Logger, v: AuditAnchorOutcome | undefined, applied: ApplyOutcome, what: string): void {
  if (!v) return;
  const ctx = { what, status: v.status, seq: v.seq, anchored: v.anchored?.seq ?? null };
  if (v.status === 'refused' || applied.anchor?.mismatch)
    log.log('error', 'the registry did not anchor this station audit chain: it does not extend the anchored one', {
      ...ctx,
      finding: v.finding,
      message: v.message,
      localMismatch: applied.anchor?.mismatch ?? false,
    });
  else if (v.status === 'invalid')
    log.log('warn', 'the registry could not check the audit head', { ...ctx, message: v.message });
  else log.log('debug', 'audit head anchored', ctx);
}

/**
 * `GET /v1/audit-heads`: the heads of this station's audit chain the registry anchored, as the registry signed them,
 * verified with the registry certificate, issued for this station, echoing this request's fresh challenge.
 */
export async function anchoredHeads(
  client: RegistryClient,
  registryCertificate: Uint8Array,
  stationId: string,
  signal?: AbortSignal,
): Promise<Result<AnchoredHeadsPayload>> {
  const got = await client.auditHeads(signal);
  if (!got.ok) return err<StationError>(got.error.error);
  const { jws, challenge } = got.value;
  const v = await verifyDocument(
    'anchored heads',
    jws,
    AUDIT_HEADS_TYP,
    AnchoredHeadsPayloadSchema,
    registryCertificate,
  );
  if (!v.ok) return fail('SYNC_RECEIPT_INVALID', v.error.message);
  const p = v.value.payload;
  if (p.stationId !== stationId)
    return fail('SYNC_RECEIPT_INVALID', `anchored heads: issued for station ${p.stationId}, not ${stationId}`);
  if (p.challenge !== challenge)
    return fail('SYNC_RECEIPT_INVALID', 'anchored heads: the answer does not echo this request (replayed or stale)');
  return ok(p);
}

/**
 * Offline sync (docs/sync.md "Offline"): `exportBundle` writes a signed bundle (format v2, docs/formats.md
 * "Bundles") of the records not yet acknowledged
 * (with the signed audit head and the queued scrap / failed-issuance events), `importReceipt` verifies the
 * registry's receipt file with the pinned registry certificate and marks what it acknowledges.
 *
 * May import: core/ (hq protocol, errors, result), native/store/outbox.ts (types), station/sync/anchor.ts.
 */
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';
import { BUNDLE_PROOF_BYTES } from '../../core/hq/audit-head.js';
import {
  createBundleV2,
  MAX_BUNDLE_RECORDS,
  MAX_REVOCATION_EVENTS,
  verifyReceipt,
  type ReceiptPayload,
} from '../../core/hq/protocol.js';
import { noteAnchor, signedAuditHead, type AnchorContext } from './anchor.js';

/** Scrap and failed-issuance events (station/lifecycle) a bundle carries, and how to apply the receipt's answers. */
export interface RevocationEventSource {
  list(max: number): Promise<Result<readonly { requestId: string; jws: string }[]>>;
  apply(results: NonNullable<ReceiptPayload['revocations']>, requestIds: readonly string[]): number;
}

export interface BundleContext extends AnchorContext {
  readonly registryCertificate: Uint8Array | null;
  readonly revocationEvents?: RevocationEventSource | undefined;
}

export interface ExportedBundle {
  readonly fileName: string;
  readonly content: string;
  readonly count: number;
  readonly revocationEvents: number;
}

export interface ImportReceiptOutcome {
  readonly marked: number;
  readonly alreadySynced: number;
  readonly unknown: number;
  readonly message: string;
}

/** The largest receipt file `importReceipt` reads. */
const MAX_RECEIPT_FILE_CHARS = 16 * 1024 * 1024;

/** A signed bundle of the records not yet acknowledged (at most MAX_BUNDLE_RECORDS, oldest first). */
export async function exportBundle(c: BundleContext): Promise<Result<ExportedBundle>> {
  const { outbox, clock, log } = c;
  const items = outbox.unacknowledged(MAX_BUNDLE_RECORDS);
  const evs = c.revocationEvents ? await c.revocationEvents.list(MAX_REVOCATION_EVENTS) : ok([]);
  if (!evs.ok) return evs;
  if (!items.length && !evs.value.length)
    return fail('INPUT_INVALID', 'nothing to export: every record is acknowledged or failed');
  const auditHead = await signedAuditHead(c, BUNDLE_PROOF_BYTES, 'bundle');
  if (!auditHead.ok) return auditHead;
  const b = await createBundleV2({
    signer: c.signer,
    chain: c.chain,
    stationId: c.stationId,
    records: items.map((i) => i.jws),
    revocations: evs.value.map((e) => e.jws),
    clock,
    ...(auditHead.value ? { auditHead: auditHead.value } : {}),
  });
  if (!b.ok) return b;
  outbox.noteExport(
    b.value.bundleId,
    items.map((i) => i.recordId),
  );
  const stamp = clock
    .now()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const fileName = `${c.stationId}-${stamp}-${items.length}.bundle.jws`;
  log.log('info', 'bundle exported', {
    bundleId: b.value.bundleId,
    count: items.length,
    revocationEvents: evs.value.length,
  });
  return ok({ fileName, content: b.value.content + '\n', count: items.length, revocationEvents: evs.value.length });
}

/** Verify a receipt file and mark the records it acknowledges. */
export async function importReceipt(c: BundleContext, content: string): Promise<Result<ImportReceiptOutcome>> {
  const { outbox, log } = c;
  if (!c.registryCertificate)
    return fail('CONFIG_INVALID', 'no registry certificate is configured: run station enroll --registry-cert FILE');
  if (content.length > MAX_RECEIPT_FILE_CHARS) return fail('SYNC_RECEIPT_INVALID', 'the receipt file is too large');
  const v = await verifyReceipt(content.trim(), c.registryCertificate, { stationId: c.stationId });
  if (!v.ok)
    return fail(
      'SYNC_RECEIPT_INVALID',
      `the receipt was not accepted, nothing was marked as synced: ${v.error.message}`,
    );
  const r = v.value;
  const applied = outbox.applyReceipt(
    {
      receiptId: r.receiptId,
      batchId: r.batchId,
      issuedAt: r.issuedAt,
      jws: content.trim(),
      accepted: r.accepted,
      rejected: r.rejected,
      ...(r.auditHead ? { auditHead: r.auditHead } : {}),
    },
    'import',
  );
  noteAnchor(log, r.auditHead, applied, `receipt ${r.receiptId}`);
  const parts = [`${applied.marked} record(s) marked as synced`];
  if (applied.alreadySynced) parts.push(`${applied.alreadySynced} were already synced`);
  if (applied.unknown)
    parts.push(`${applied.unknown} are not records of this station (or differ from them) and were ignored`);
  if (applied.failed) parts.push(`${applied.failed} were rejected by the registry (see sync status)`);
  if (applied.duplicateReceipt) parts.push('this receipt had been imported before');
  if (r.revocations?.length && c.revocationEvents) {
    const ids = r.revocations.flatMap((x) => (x.requestId ? [x.requestId] : []));
    const done = c.revocationEvents.apply(r.revocations, ids);
    parts.push(`${done} of ${ids.length} revocation event(s) acknowledged`);
  }
  const message = `receipt ${r.receiptId} (batch ${r.batchId}): ${parts.join('; ')}`;
  log.log('info', 'receipt imported', { receiptId: r.receiptId, ...applied });
  return ok({ marked: applied.marked, alreadySynced: applied.alreadySynced, unknown: applied.unknown, message });
}

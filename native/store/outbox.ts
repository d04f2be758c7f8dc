/**
 * The sync outbox port on the station database: which committed records still have to reach the registry, in
 * which batch they were sent, and the receipts that acknowledged them (schema version 2, see migrations.ts and
 * docs/sync.md). The one writer of `outbox` (besides the records_enqueue_outbox trigger that queues each record in
 * its own transaction), `sync_receipts` and, through audit-anchors.ts, `audit_anchors`.
 *
 * It runs on the station database's one connection (station-db.ts). Every mutation is one IMMEDIATE transaction.
 * Applying a receipt (marking records acknowledged or failed, storing the receipt) appends its `sync.acknowledged`
 * audit entry through the connection's audit writer (audit-writer.ts) in that SAME transaction.
 *
 * May import: core/, better-sqlite3 types, the sibling modules of native/store.
 */
import type Database from 'better-sqlite3';
import { MAX_PROOF_ENTRIES } from '../../core/hq/audit-head.js';
import { applyAnchorOutcome, auditAnchorStatements, readAuditProof } from './audit-anchors.js';
import type { AuditWriter } from './audit-writer.js';
import type { Durability } from './durability.js';
import type { Outbox, OutboxItem, OutboxRow, OutboxState, StoredReceipt } from './outbox-types.js';

/** The stored reason of a failed batch attempt is cut to this many characters (it may quote a registry's answer). */
const MAX_FAILURE_MESSAGE = 1000;

/** The outbox's types (outbox-types.ts), for callers that import them from here. */
export type * from './outbox-types.js';

interface RowDb {
  record_id: string;
  state: OutboxState;
  batch_id: string | null;
  attempts: number;
  sent_at: string | null;
  acknowledged_at: string | null;
  receipt_id: string | null;
  failure_reason: string | null;
  failure_message: string | null;
  conflict: number;
  export_id: string | null;
  exported_at: string | null;
}

interface ReceiptDb {
  receipt_id: string;
  batch_id: string;
  source: 'online' | 'import';
  issued_at: string;
  received_at: string;
  accepted: number;
  rejected: number;
  marked: number;
  jws: string;
}

const toRow = (r: RowDb): OutboxRow => ({
  recordId: r.record_id,
  state: r.state,
  batchId: r.batch_id,
  attempts: r.attempts,
  sentAt: r.sent_at,
  acknowledgedAt: r.acknowledged_at,
  receiptId: r.receipt_id,
  failureReason: r.failure_reason,
  failureMessage: r.failure_message,
  conflict: r.conflict === 1,
  exportId: r.export_id,
  exportedAt: r.exported_at,
});

const toReceipt = (r: ReceiptDb): StoredReceipt => ({
  receiptId: r.receipt_id,
  batchId: r.batch_id,
  source: r.source,
  issuedAt: r.issued_at,
  receivedAt: r.received_at,
  accepted: r.accepted,
  rejected: r.rejected,
  marked: r.marked,
});

/** The outbox over an open, migrated connection; `audit` is the connection's audit writer. */
export function createOutbox(
  db: Database.Database,
  file: string,
  o: { readonly now: () => string; readonly audit: AuditWriter; readonly durability: Durability },
): Outbox {
  const { now, audit, durability } = o;
  const st = {
    counts: db.prepare('SELECT state, COUNT(*) AS n, SUM(conflict) AS c FROM outbox GROUP BY state'),
    oldest: db.prepare("SELECT MIN(enqueued_at) AS at FROM outbox WHERE state IN ('pending', 'sent')"),
    sentBatches: db.prepare(
      "SELECT batch_id FROM outbox WHERE state = 'sent' GROUP BY batch_id ORDER BY MIN(seq) LIMIT 1000",
    ),
    batch: db.prepare(
      `SELECT o.record_id, o.state, r.jws, r.record_sha256 FROM outbox o JOIN records r ON r.record_id = o.record_id
       WHERE o.batch_id = ? ORDER BY o.seq`,
    ),
    pending: db.prepare(
      `SELECT o.record_id, o.state, r.jws, r.record_sha256 FROM outbox o JOIN records r ON r.record_id = o.record_id
       WHERE o.state = 'pending' ORDER BY o.seq LIMIT ?`,
    ),
    unacked: db.prepare(
      `SELECT o.record_id, o.state, r.jws, r.record_sha256 FROM outbox o JOIN records r ON r.record_id = o.record_id
       WHERE o.state IN ('pending', 'sent') ORDER BY o.seq LIMIT ?`,
    ),
    markSent: db.prepare(
      "UPDATE outbox SET state = 'sent', batch_id = ?, sent_at = ?, attempts = attempts + 1 WHERE record_id = ? AND state = 'pending'",
    ),
    release: db.prepare(
      "UPDATE outbox SET state = 'pending', batch_id = NULL, sent_at = NULL, last_error_code = NULL, last_error_message = NULL, last_attempt_at = NULL WHERE batch_id = ? AND state = 'sent'",
    ),
    noteFailure: db.prepare(
      "UPDATE outbox SET last_error_code = ?, last_error_message = ?, last_attempt_at = ? WHERE batch_id = ? AND state = 'sent'",
    ),
    noteResend: db.prepare("UPDATE outbox SET attempts = attempts + 1 WHERE batch_id = ? AND state = 'sent'"),
    failing: db.prepare(
      `SELECT batch_id, COUNT(*) AS records, MAX(attempts) AS attempts, MIN(sent_at) AS first_sent_at,
              MAX(last_error_code) AS code, MAX(last_error_message) AS message, MAX(last_attempt_at) AS at
         FROM outbox WHERE state = 'sent' AND last_error_code IS NOT NULL
        GROUP BY batch_id ORDER BY MIN(seq) LIMIT ?`,
    ),
    noteExport: db.prepare(
      "UPDATE outbox SET export_id = ?, exported_at = ? WHERE record_id = ? AND state IN ('pending', 'sent')",
    ),
    lookup: db.prepare(
      'SELECT o.state, o.receipt_id, r.record_sha256 FROM outbox o JOIN records r ON r.record_id = o.record_id WHERE o.record_id = ?',
    ),
    ack: db.prepare(
      "UPDATE outbox SET state = 'acknowledged', receipt_id = ?, acknowledged_at = ?, failure_reason = NULL, failure_message = NULL, conflict = 0 WHERE record_id = ? AND state != 'acknowledged'",
    ),
    failRow: db.prepare(
      "UPDATE outbox SET state = 'failed', receipt_id = ?, failure_reason = ?, failure_message = ?, conflict = ? WHERE record_id = ? AND state IN ('pending', 'sent')",
    ),
    getReceipt: db.prepare('SELECT * FROM sync_receipts WHERE receipt_id = ?'),
    insertReceipt: db.prepare(
      `INSERT INTO sync_receipts (receipt_id, batch_id, source, issued_at, received_at, accepted, rejected, marked, jws)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    lastReceipt: db.prepare('SELECT * FROM sync_receipts ORDER BY received_at DESC, rowid DESC LIMIT 1'),
    row: db.prepare('SELECT * FROM outbox WHERE record_id = ?'),
    failed: db.prepare("SELECT * FROM outbox WHERE state = 'failed' ORDER BY seq LIMIT ?"),
  };

  const anchors = auditAnchorStatements(db);

  type ItemDb = { record_id: string; state: OutboxState; jws: string; record_sha256: string };
  const toItem = (r: ItemDb): OutboxItem => ({
    recordId: r.record_id,
    state: r.state,
    jws: r.jws,
    sha256: r.record_sha256,
  });

  /** Append one audit entry (no run) through the connection's audit writer; its sequence number. */
  const appendAudit = (type: string, payload: Record<string, unknown>): number => audit.append(type, payload, null).seq;

  const tx = <T>(fn: () => T): T => db.transaction(fn).immediate();

  return {
    path: file,

    counts() {
      const c = { pending: 0, sent: 0, acknowledged: 0, failed: 0, conflicts: 0 };
      for (const r of st.counts.all() as { state: OutboxState; n: number; c: number | null }[]) {
        c[r.state] = r.n;
        if (r.state === 'failed') c.conflicts = r.c ?? 0;
      }
      return c;
    },

    oldestUnacknowledgedAt() {
      return (st.oldest.get() as { at: string | null }).at;
    },

    sentBatchIds() {
      return (st.sentBatches.all() as { batch_id: string }[]).map((r) => r.batch_id);
    },

    batch(batchId) {
      const items = (st.batch.all(batchId) as ItemDb[]).map(toItem);
      return items.length ? { batchId, items } : null;
    },

    claimBatch(batchId, max, maxBytes) {
      return tx(() => {
        const rows = st.pending.all(max) as ItemDb[];
        const items: OutboxItem[] = [];
        let bytes = 0;
        for (const r of rows) {
          if (items.length > 0 && bytes + r.jws.length + 3 > maxBytes) break;
          bytes += r.jws.length + 3;
          items.push(toItem(r));
        }
        if (!items.length) return null;
        const t = now();
        for (const i of items) st.markSent.run(batchId, t, i.recordId);
        return { batchId, items: items.map((i) => ({ ...i, state: 'sent' as const })) };
      });
    },

    noteBatchFailure(batchId, failure) {
      return tx(
        () =>
          st.noteFailure.run(failure.code, failure.message.slice(0, MAX_FAILURE_MESSAGE), failure.at, batchId).changes,
      );
    },

    noteBatchResend(batchId) {
      return tx(() => st.noteResend.run(batchId).changes);
    },

    failingBatches(limit = 100) {
      type FailingDb = {
        batch_id: string;
        records: number;
        attempts: number;
        first_sent_at: string;
        code: string;
        message: string;
        at: string;
      };
      return (st.failing.all(limit) as FailingDb[]).map((r) => ({
        batchId: r.batch_id,
        records: r.records,
        attempts: r.attempts,
        firstSentAt: r.first_sent_at,
        lastError: { code: r.code, message: r.message, at: r.at },
      }));
    },

    releaseBatch(batchId) {
      return tx(() => st.release.run(batchId).changes);
    },

    unacknowledged(limit) {
      return (st.unacked.all(limit) as ItemDb[]).map(toItem);
    },

    noteExport(exportId, recordIds) {
      tx(() => {
        const t = now();
        for (const id of recordIds) st.noteExport.run(exportId, t, id);
      });
    },

    applyReceipt(r, source, batchOrder) {
      return tx(() => {
        const prior = st.getReceipt.get(r.receiptId) as ReceiptDb | undefined;
        let marked = 0;
        let alreadySynced = 0;
        let unknown = 0;
        let failed = 0;
        // Pass 1: classify without writing (the receipt row must exist before rows reference it).
        const toMark: string[] = [];
        for (const a of r.accepted) {
          const row = st.lookup.get(a.recordId) as
            { state: OutboxState; receipt_id: string | null; record_sha256: string } | undefined;
          if (!row || row.record_sha256 !== a.sha256) unknown++;
          else if (row.state === 'acknowledged') alreadySynced++;
          else toMark.push(a.recordId);
        }
        const toFail: { recordId: string; reason: string; message: string | null }[] = [];
        for (const x of r.rejected) {
          const id = x.recordId ?? batchOrder?.[x.index] ?? null;
          if (id === null) {
            unknown++;
            continue;
          }
          const row = st.lookup.get(id) as { state: OutboxState } | undefined;
          if (!row) unknown++;
          else if (row.state === 'acknowledged') alreadySynced++;
          else if (row.state === 'failed') continue;
          else toFail.push({ recordId: id, reason: x.reason, message: x.message ?? null });
        }
        if (!prior) {
          st.insertReceipt.run(
            r.receiptId,
            r.batchId,
            source,
            r.issuedAt,
            now(),
            r.accepted.length,
            r.rejected.length,
            toMark.length,
            r.jws,
          );
        }
        const t = now();
        for (const id of toMark) marked += st.ack.run(r.receiptId, t, id).changes;
        for (const f of toFail)
          failed += st.failRow.run(
            r.receiptId,
            f.reason,
            f.message,
            f.reason === 'conflict' ? 1 : 0,
            f.recordId,
          ).changes;
        let auditSeq: number | null = null;
        if (marked > 0 || failed > 0) {
          auditSeq = appendAudit('sync.acknowledged', {
            receiptId: r.receiptId,
            batchId: r.batchId,
            source,
            count: marked,
            failed,
          });
        }
        const anchor = r.auditHead ? applyAnchorOutcome(anchors, r.auditHead, r.receiptId, source, t) : null;
        return { marked, alreadySynced, unknown, failed, duplicateReceipt: prior !== undefined, auditSeq, anchor };
      });
    },

    failUnmentioned(batchId, receiptId, recordIds) {
      return tx(() => {
        let n = 0;
        for (const id of recordIds)
          n += st.failRow.run(
            receiptId,
            'not-in-receipt',
            `the receipt of batch ${batchId} does not mention this record`,
            0,
            id,
          ).changes;
        if (n > 0) appendAudit('sync.failed', { receiptId, batchId, count: n, reason: 'not-in-receipt' });
        return n;
      });
    },

    lastReceipt() {
      const r = st.lastReceipt.get() as ReceiptDb | undefined;
      return r ? toReceipt(r) : null;
    },

    receipt(receiptId) {
      const r = st.getReceipt.get(receiptId) as ReceiptDb | undefined;
      return r ? { ...toReceipt(r), jws: r.jws } : null;
    },

    row(recordId) {
      const r = st.row.get(recordId) as RowDb | undefined;
      return r ? toRow(r) : null;
    },

    listFailed(limit = 100) {
      return (st.failed.all(limit) as RowDb[]).map(toRow);
    },

    auditProof(maxBytes) {
      // The head and entries leave the station (batch, bundle) and the registry anchors them: a power loss must not
      // roll back what it anchored (a fork to the registry). Every commit so far is made durable first.
      durability.barrier();
      return readAuditProof(db, anchors, maxBytes, MAX_PROOF_ENTRIES);
    },

    auditAnchors() {
      return anchors.list.all() as { seq: number; hash: string }[];
    },
  };
}

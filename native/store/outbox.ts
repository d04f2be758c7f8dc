/**
 * The sync outbox on SQLite: which committed records still have to reach the registry, in which batch they
 * were sent, and the receipts that acknowledged them (schema version 2, see migrations.ts and docs/sync.md).
 *
 * The outbox opens its OWN connection to the station database (WAL; the Store keeps its connection). Every
 * mutation is one IMMEDIATE transaction. Applying a receipt (marking records acknowledged or failed, storing
 * the receipt) appends its `sync.acknowledged` audit entry to the Store's hash chain in that SAME transaction:
 * the entry is built exactly like the Store's own appends (canonical payload, `auditEntryHashSync`, head row
 * advanced), and the append-only triggers of the audit tables check it.
 */
import Database from 'better-sqlite3';
import { canonicalJson } from '../../core/canonical.js';
import { fail } from '../../core/errors.js';
import type { Clock } from '../../core/ports.js';
import { systemClock } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { auditEntryHashSync } from './sqlite-store.js';
import type { AuditAnchorOutcome } from '../../core/hq/audit-head.js';
import { MAX_PROOF_ENTRIES } from '../../core/hq/audit-head.js';
import {
  applyAnchorOutcome,
  auditAnchorStatements,
  readAuditProof,
  type AnchorApplied,
  type AuditProof,
} from './audit-anchors.js';

export type OutboxState = 'pending' | 'sent' | 'acknowledged' | 'failed';

export interface OutboxCounts {
  readonly pending: number;
  readonly sent: number;
  readonly acknowledged: number;
  readonly failed: number;
  /** Failed rows the registry refused because it holds a different record with the same id. */
  readonly conflicts: number;
}

/** One record to send: its id, its JWS and the SHA-256 of its payload (what a receipt must name). */
export interface OutboxItem {
  readonly recordId: string;
  readonly jws: string;
  readonly sha256: string;
  readonly state: OutboxState;
}

export interface OutboxBatch {
  readonly batchId: string;
  /** In commit order (the order in which the batch was first sent: a resend is byte-identical). */
  readonly items: readonly OutboxItem[];
}

export interface OutboxRow {
  readonly recordId: string;
  readonly state: OutboxState;
  readonly batchId: string | null;
  readonly attempts: number;
  readonly sentAt: string | null;
  readonly acknowledgedAt: string | null;
  readonly receiptId: string | null;
  readonly failureReason: string | null;
  readonly failureMessage: string | null;
  readonly conflict: boolean;
  readonly exportId: string | null;
  readonly exportedAt: string | null;
}

export interface StoredReceipt {
  readonly receiptId: string;
  readonly batchId: string;
  readonly source: 'online' | 'import';
  readonly issuedAt: string;
  readonly receivedAt: string;
  readonly accepted: number;
  readonly rejected: number;
  readonly marked: number;
}

/** A receipt that verified (signature, station, batch), reduced to what the outbox applies. */
export interface VerifiedReceipt {
  readonly receiptId: string;
  readonly batchId: string;
  readonly issuedAt: string;
  readonly jws: string;
  readonly accepted: readonly { readonly recordId: string; readonly sha256: string }[];
  readonly rejected: readonly {
    readonly index: number;
    readonly recordId: string | null;
    readonly reason: string;
    readonly message?: string | null;
  }[];
  /** The registry's verdict on the audit head sent with the batch or bundle (docs/audit.md), if any. */
  readonly auditHead?: AuditAnchorOutcome;
}

export interface ApplyOutcome {
  /** Records marked acknowledged now. */
  readonly marked: number;
  /** Records the receipt names that were acknowledged before. */
  readonly alreadySynced: number;
  /** Records the receipt names that this station does not hold (or holds with another SHA-256). */
  readonly unknown: number;
  /** Records marked failed now (rejected or conflict). */
  readonly failed: number;
  /** The receipt had been stored before (importing twice). */
  readonly duplicateReceipt: boolean;
  /** Sequence number of the `sync.acknowledged` audit entry, if one was written. */
  readonly auditSeq: number | null;
  /** What the receipt's audit verdict did (null: the receipt has none). */
  readonly anchor: AnchorApplied | null;
}

export interface Outbox {
  readonly path: string;
  counts(): OutboxCounts;
  /** Batch ids with rows still in state `sent` (oldest first): to be re-sent with the same id and records. */
  sentBatchIds(): string[];
  /** Every record of a batch, in its original order (whatever their state now). */
  batch(batchId: string): OutboxBatch | null;
  /**
   * Take up to `max` pending records (commit order, at most `maxBytes` of JWS) into a new batch: record the
   * batch id and state `sent` BEFORE anything goes on the wire. Null when nothing is pending.
   */
  claimBatch(batchId: string, max: number, maxBytes: number): OutboxBatch | null;
  /** A batch the registry refused as a whole for its id (BATCH_CONFLICT): its rows go back to pending. */
  releaseBatch(batchId: string): number;
  /** Records not acknowledged and not failed (pending and sent), commit order. */
  unacknowledged(limit: number): OutboxItem[];
  /** Note that these records went into an exported bundle (their state does not change). */
  noteExport(exportId: string, recordIds: readonly string[]): void;
  /**
   * Apply a verified receipt in ONE transaction: mark exactly the named records (id AND sha256 equal)
   * acknowledged, mark rejected ones failed, store the receipt, append `sync.acknowledged` to the audit chain.
   * `batchOrder` maps a rejection without record id (index) to a record (online batches).
   */
  applyReceipt(r: VerifiedReceipt, source: 'online' | 'import', batchOrder?: readonly string[]): ApplyOutcome;
  /** Rows named in a batch that a receipt did not mention at all: marked failed (`not-in-receipt`). */
  failUnmentioned(batchId: string, receiptId: string, recordIds: readonly string[]): number;
  lastReceipt(): StoredReceipt | null;
  receipt(receiptId: string): (StoredReceipt & { readonly jws: string }) | null;
  row(recordId: string): OutboxRow | null;
  listFailed(limit?: number): OutboxRow[];
  /** The audit entries after the newest anchored head, up to `maxBytes` bytes of JSON (docs/audit.md). */
  auditProof(maxBytes: number): AuditProof;
  /** The heads the registry confirmed (seq, hash), oldest first. */
  auditAnchors(): { seq: number; hash: string }[];
  close(): void;
}

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

/**
 * Open the outbox of the station database `file` (which must already be migrated to version 2 or later, i.e.
 * opened once by `openStore`). STORE_FAILED when it cannot be opened or has no outbox.
 */
export function openOutbox(
  file: string,
  o: { clock?: Clock; busyTimeoutMs?: number; synchronous?: 'FULL' | 'NORMAL' } = {},
): Result<Outbox> {
  const clock = o.clock ?? systemClock;
  let db: Database.Database;
  try {
    db = new Database(file, { fileMustExist: true });
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(o.busyTimeoutMs ?? 5000))}`);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${o.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
    db.pragma('foreign_keys = ON');
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").get();
    if (!has) {
      db.close();
      return fail('STORE_FAILED', `${file} has no sync outbox (schema older than version 2); open the station once`);
    }
  } catch (e) {
    return fail('STORE_FAILED', `cannot open the sync outbox in ${file}: ${(e as Error).message}`, { file });
  }
  return ok(createOutbox(db, file, clock));
}

function createOutbox(db: Database.Database, file: string, clock: Clock): Outbox {
  const now = () => clock.now().toISOString();
  const st = {
    counts: db.prepare('SELECT state, COUNT(*) AS n, SUM(conflict) AS c FROM outbox GROUP BY state'),
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
      "UPDATE outbox SET state = 'pending', batch_id = NULL, sent_at = NULL WHERE batch_id = ? AND state = 'sent'",
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
    head: db.prepare('SELECT seq, hash FROM audit_head WHERE id = 1'),
    insertAudit: db.prepare(
      'INSERT INTO audit_log (seq, ts, type, run_id, payload_json, prev_hash, hash) VALUES (?, ?, ?, NULL, ?, ?, ?)',
    ),
    advanceHead: db.prepare('UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1'),
  };

  const anchors = auditAnchorStatements(db);

  type ItemDb = { record_id: string; state: OutboxState; jws: string; record_sha256: string };
  const toItem = (r: ItemDb): OutboxItem => ({
    recordId: r.record_id,
    state: r.state,
    jws: r.jws,
    sha256: r.record_sha256,
  });

  /** Append one audit entry at the chain head (same construction as the Store's). Inside a transaction. */
  function appendAudit(type: string, payload: Record<string, unknown>): number {
    const head = st.head.get() as { seq: number; hash: string } | undefined;
    if (!head) throw new Error('the audit head row is missing');
    const payloadJson = canonicalJson(payload);
    const entry = {
      seq: head.seq + 1,
      ts: now(),
      type,
      runId: null,
      payload: JSON.parse(payloadJson) as Record<string, unknown>,
    };
    const hash = auditEntryHashSync(head.hash, entry);
    st.insertAudit.run(entry.seq, entry.ts, type, payloadJson, head.hash, hash);
    st.advanceHead.run(entry.seq, hash);
    return entry.seq;
  }

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
      return readAuditProof(db, anchors, maxBytes, MAX_PROOF_ENTRIES);
    },

    auditAnchors() {
      return anchors.list.all() as { seq: number; hash: string }[];
    },

    close() {
      if (db.open) db.close();
    },
  };
}

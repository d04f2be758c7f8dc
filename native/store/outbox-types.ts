/**
 * The types of the sync outbox port (outbox.ts): outbox states and rows, batches, receipts as stored and as
 * verified, and the Outbox interface the sync service (station/sync.ts) uses.
 *
 * May import: core/ types, ./audit-anchors types.
 */
import type { AuditAnchorOutcome } from '../../core/hq/audit-head.js';
import type { AnchorApplied, AuditProof } from './audit-anchors.js';

/** Where a record is on its way to the registry. */
export type OutboxState = 'pending' | 'sent' | 'acknowledged' | 'failed';

/** Outbox rows per state (the sync status). */
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

/** A batch of records sent (or to be re-sent) under one id. */
export interface OutboxBatch {
  readonly batchId: string;
  /** In commit order (the order in which the batch was first sent: a resend is byte-identical). */
  readonly items: readonly OutboxItem[];
}

/** One outbox row as stored. */
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

/** A registry receipt as stored (without its JWS). */
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

/** What applying a receipt changed. */
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

/** Why the last attempt to send a batch ended without a receipt. */
export interface BatchFailure {
  /** Station error code (e.g. SYNC_REJECTED, SYNC_UNREACHABLE, SYNC_RECEIPT_INVALID). */
  readonly code: string;
  /** The message, with the registry's own code when it answered one. */
  readonly message: string;
  /** ISO time of the attempt. */
  readonly at: string;
}

/** A batch still to be sent whose last attempt failed (`Outbox.failingBatches`). */
export interface FailingBatch {
  readonly batchId: string;
  readonly records: number;
  /** Times the batch went on the wire (the first send included). */
  readonly attempts: number;
  readonly firstSentAt: string;
  readonly lastError: BatchFailure;
}

/** The sync outbox port (outbox.ts). */
export interface Outbox {
  readonly path: string;
  counts(): OutboxCounts;
  /** When the oldest record not yet acknowledged (pending or sent) was queued (ISO), or null (`station doctor`). */
  oldestUnacknowledgedAt(): string | null;
  /** Batch ids with rows still in state `sent` (oldest first): to be re-sent with the same id and records. */
  sentBatchIds(): string[];
  /** Every record of a batch, in its original order (whatever their state now). */
  batch(batchId: string): OutboxBatch | null;
  /**
   * Take up to `max` pending records (commit order, at most `maxBytes` of JWS) into a new batch: record the
   * batch id and state `sent` BEFORE anything goes on the wire. Null when nothing is pending.
   */
  claimBatch(batchId: string, max: number, maxBytes: number): OutboxBatch | null;
  /**
   * An attempt to send a batch that is still `sent` ended without a receipt (refused as a whole, unreachable, a
   * receipt that does not verify): keep the reason and time on its rows. Returns the rows changed (0: the batch is
   * no longer `sent`).
   */
  noteBatchFailure(batchId: string, failure: BatchFailure): number;
  /** A batch left `sent` goes on the wire again under its id: one attempt more on its rows. */
  noteBatchResend(batchId: string): number;
  /** Batches still `sent` whose last attempt failed, oldest first (at most `limit`). */
  failingBatches(limit?: number): FailingBatch[];
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
  /**
   * The audit entries after the newest anchored head, up to `maxBytes` bytes of JSON (docs/audit.md). What it
   * returns is sent out, so it first makes every commit so far durable (durability.ts `barrier`: one fsync).
   */
  auditProof(maxBytes: number): AuditProof;
  /** The heads the registry confirmed (seq, hash), oldest first. */
  auditAnchors(): { seq: number; hash: string }[];
}

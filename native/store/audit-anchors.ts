/**
 * Audit chain anchoring, station side of the database (docs/audit.md "Anchoring at the registry"): read the
 * consistency proof (the audit entries after the newest anchored head, up to a byte budget) and record the heads
 * the registry confirmed in a verified receipt (table `audit_anchors`, schema version 6). Used only by the outbox
 * port (native/store/outbox.ts), inside its receipt transaction: the one writer of `audit_anchors`.
 *
 * May import: core/, better-sqlite3 types.
 */
import type Database from 'better-sqlite3';
import { GENESIS_HASH } from '../../core/provisioning/audit.js';
import type { AuditAnchorOutcome, AuditProofEntry } from '../../core/hq/audit-head.js';
import { proofEntryBytes } from '../../core/hq/audit-head.js';

/** The entries after the anchored base, and the head they end at: what the station signs and sends. */
export interface AuditProof {
  /** The newest head the registry confirmed (0 = nothing anchored yet; the proof starts at the genesis). */
  readonly fromSeq: number;
  /** This station's hash of entry fromSeq now (64 zeros for 0). */
  readonly fromHash: string;
  /** The hash the registry anchored for fromSeq; differs from fromHash when the local chain was rewritten. */
  readonly anchoredHash: string;
  /** Entries fromSeq+1 .. head.seq in order. */
  readonly entries: readonly AuditProofEntry[];
  /** The head the proof ends at (the chain head, or earlier when the budget ran out). 0 = empty chain. */
  readonly head: { readonly seq: number; readonly hash: string };
  /** UTF-8 bytes of the JSON of `entries` (the budget unit). */
  readonly bytes: number;
  /** The local chain head now (head.seq < chainHead when the budget ran out). */
  readonly chainHead: number;
}

interface EntryRow {
  seq: number;
  ts: string;
  type: string;
  run_id: string | null;
  payload_json: string;
  hash: string;
}

/** Prepared statements on the station database connection (for the outbox port). */
export function auditAnchorStatements(db: Database.Database) {
  return {
    base: db.prepare('SELECT seq, hash FROM audit_anchors ORDER BY seq DESC LIMIT 1'),
    head: db.prepare('SELECT seq, hash FROM audit_head WHERE id = 1'),
    hashAt: db.prepare('SELECT hash FROM audit_log WHERE seq = ?'),
    entries: db.prepare(
      'SELECT seq, ts, type, run_id, payload_json, hash FROM audit_log WHERE seq > ? AND seq <= ? ORDER BY seq',
    ),
    insert: db.prepare(
      'INSERT INTO audit_anchors (seq, hash, receipt_id, source, anchored_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING',
    ),
    list: db.prepare('SELECT seq, hash FROM audit_anchors ORDER BY seq'),
  };
}
export type AuditAnchorStatements = ReturnType<typeof auditAnchorStatements>;

/**
 * Read the proof in ONE read transaction (a consistent snapshot): entries after the newest anchored head, as many
 * as fit in `maxBytes` bytes of JSON (at least one when there is any) and `maxEntries`.
 */
export function readAuditProof(
  db: Database.Database,
  st: AuditAnchorStatements,
  maxBytes: number,
  maxEntries: number,
): AuditProof {
  return db.transaction((): AuditProof => {
    const head = st.head.get() as { seq: number; hash: string } | undefined;
    if (!head) throw new Error('the audit head row is missing');
    const base = (st.base.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS_HASH };
    // A chain shorter than the anchored base (a restored backup): start where it ends; the registry compares.
    const fromSeq = Math.min(base.seq, head.seq);
    const local = fromSeq === 0 ? GENESIS_HASH : (st.hashAt.get(fromSeq) as { hash: string } | undefined)?.hash;
    const fromHash = local ?? GENESIS_HASH;
    const entries: AuditProofEntry[] = [];
    let bytes = 0;
    let end = { seq: fromSeq, hash: fromHash };
    const limit = Math.min(head.seq, fromSeq + maxEntries);
    for (const r of st.entries.iterate(fromSeq, limit) as IterableIterator<EntryRow>) {
      const e: AuditProofEntry = {
        seq: r.seq,
        ts: r.ts,
        type: r.type,
        runId: r.run_id,
        payload: JSON.parse(r.payload_json) as Record<string, unknown>,
      };
      const n = proofEntryBytes(e);
      if (entries.length > 0 && bytes + n > maxBytes) break;
      entries.push(e);
      bytes += n;
      end = { seq: r.seq, hash: r.hash };
    }
    return {
      fromSeq,
      fromHash,
      anchoredHash: base.seq === fromSeq ? base.hash : '',
      entries,
      head: end,
      bytes,
      chainHead: head.seq,
    };
  })();
}

/** What applying a receipt's audit verdict did on the station. */
export interface AnchorApplied {
  /** The registry's newest anchored head now matches this station's chain and is recorded. */
  readonly recorded: boolean;
  /** The registry's newest anchored head is NOT in this station's chain (rewritten or forked history). */
  readonly mismatch: boolean;
}

/**
 * Record the registry's newest anchored head from a verified receipt, if this station's chain holds it at that
 * sequence number. Runs inside the caller's (receipt) transaction.
 */
export function applyAnchorOutcome(
  st: AuditAnchorStatements,
  outcome: AuditAnchorOutcome,
  receiptId: string,
  source: 'online' | 'import',
  now: string,
): AnchorApplied {
  const a = outcome.anchored;
  if (!a || a.seq === 0) return { recorded: false, mismatch: false };
  const local = (st.hashAt.get(a.seq) as { hash: string } | undefined)?.hash;
  if (local !== a.hash) return { recorded: false, mismatch: true };
  st.insert.run(a.seq, a.hash, receiptId, source, now);
  return { recorded: true, mismatch: false };
}

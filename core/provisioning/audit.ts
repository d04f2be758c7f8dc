/**
 * The hash-chained audit trail, as pure functions (no storage, no native code).
 *
 * Every entry commits to its predecessor:
 *
 *   hash(n) = SHA-256-hex( utf8( prevHash + "\n" + canonicalJson({ seq, ts, type, runId, payload }) ) )
 *
 * with prevHash(1) = 64 zeros (GENESIS_HASH) and prevHash(n) = hash(n-1). `seq` starts at 1 and has no gaps.
 * The format is specified for third-party verifiers in docs/audit.md.
 *
 * Hashing here uses WebCrypto (async). The SQLite store (synchronous by design) computes the same hash with
 * node:crypto over `auditEntryPreimage(...)`; a test proves both agree.
 */
import type { AuditEntry } from './store.js';
import { digestSync, sha256Hex, toHex, utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';

/** prevHash of the first entry (seq 1). */
export const GENESIS_HASH = '0'.repeat(64);

/** The hashed part of an audit entry. */
export interface AuditEntryContent {
  readonly seq: number;
  readonly ts: string;
  readonly type: string;
  readonly runId: string | null;
  readonly payload: object;
}

/** Where and why a chain failed verification (the chain-level subset of AuditVerification reasons). */
export interface ChainFailure {
  /** The audit sequence number at which verification failed (for a gap: the first missing seq). */
  readonly seq: number;
  readonly reason: 'hash-mismatch' | 'broken-link' | 'sequence-gap';
  readonly message: string;
}

/** Position of the chain after the last verified entry. */
export interface ChainHead {
  /** 0 before the first entry. */
  readonly seq: number;
  /** GENESIS_HASH before the first entry. */
  readonly hash: string;
}

export type ChainVerification =
  | { readonly ok: true; readonly entries: number; readonly head: ChainHead }
  | { readonly ok: false; readonly entries: number; readonly failure: ChainFailure };

/** The initial chain head (no entries yet). */
export const GENESIS_HEAD: ChainHead = { seq: 0, hash: GENESIS_HASH };

const HASH_RE = /^[0-9a-f]{64}$/;

/** The exact string whose UTF-8 bytes are hashed for an entry: `prevHash + "\n" + canonicalJson(content)`. */
export function auditEntryPreimage(prevHash: string, e: AuditEntryContent): string {
  return `${prevHash}\n${canonicalJson({ seq: e.seq, ts: e.ts, type: e.type, runId: e.runId, payload: e.payload })}`;
}

/** SHA-256 (lower-case hex) of an audit entry chained to `prevHash`. */
export async function auditEntryHash(prevHash: string, e: AuditEntryContent): Promise<string> {
  return sha256Hex(auditEntryPreimage(prevHash, e));
}

/**
 * auditEntryHash computed synchronously (node:crypto, core/bytes.ts digestSync): the same value, no await; null where
 * the runtime has no node:crypto (the browser), and then the caller awaits auditEntryHash.
 */
export function auditEntryHashSync(prevHash: string, e: AuditEntryContent): string | null {
  const d = digestSync('SHA-256', utf8(auditEntryPreimage(prevHash, e)));
  return d && toHex(d);
}

/**
 * Check one entry against the chain head that precedes it, given the hash recomputed over the entry
 * (`auditEntryHash(entry.prevHash, entry)`). Checks, in order: contiguous seq (sequence-gap), the link to the
 * previous hash (broken-link), then the entry's own hash (hash-mismatch). Returns null when the entry is valid.
 */
export function checkChainStep(head: ChainHead, entry: AuditEntry, recomputedHash: string): ChainFailure | null {
  const expected = head.seq + 1;
  if (entry.seq !== expected) {
    return {
      seq: expected,
      reason: 'sequence-gap',
      message:
        entry.seq > expected
          ? `audit entry ${expected} is missing (next entry found is ${entry.seq})`
          : `audit entry ${entry.seq} is out of order (expected ${expected})`,
    };
  }
  if (entry.prevHash !== head.hash) {
    return {
      seq: entry.seq,
      reason: 'broken-link',
      message: `audit entry ${entry.seq} does not link to its predecessor (prevHash ${short(entry.prevHash)}, expected ${short(head.hash)})`,
    };
  }
  if (!HASH_RE.test(entry.hash) || entry.hash !== recomputedHash) {
    return {
      seq: entry.seq,
      reason: 'hash-mismatch',
      message: `audit entry ${entry.seq} was modified (stored hash ${short(entry.hash)}, recomputed ${short(recomputedHash)})`,
    };
  }
  return null;
}

/**
 * Verify a whole chain, entries in seq order (an array, any iterable, or an async iterable for streaming).
 * Returns the first failure, or the head (last seq and hash) so the caller can compare it with an
 * independently kept head to detect tail truncation.
 */
export async function verifyChain(
  entries: Iterable<AuditEntry> | AsyncIterable<AuditEntry>,
): Promise<ChainVerification> {
  let head: ChainHead = GENESIS_HEAD;
  let n = 0;
  for await (const e of entries) {
    let recomputed: string;
    try {
      recomputed = await auditEntryHash(e.prevHash, e);
    } catch (cause) {
      // canonicalJson refuses non-JSON payloads: such an entry cannot have been written by the station.
      const failure: ChainFailure = {
        seq: e.seq,
        reason: 'hash-mismatch',
        message: `audit entry ${e.seq} has a payload that is not plain JSON (${String(cause)})`,
      };
      return { ok: false, entries: n, failure };
    }
    const failure = checkChainStep(head, e, recomputed);
    if (failure) return { ok: false, entries: n, failure };
    head = { seq: e.seq, hash: e.hash };
    n++;
  }
  return { ok: true, entries: n, head };
}

/** An anchored head that the local chain no longer holds. */
export interface AnchorMismatch {
  readonly seq: number;
  readonly anchoredHash: string;
  /** The local hash of entry `seq`; null when the local chain does not reach it (truncated or rolled back). */
  readonly localHash: string | null;
}

/**
 * The anchored heads (e.g. the registry's, docs/audit.md "Anchoring at the registry") that the local chain does not
 * hold at their sequence number. `localHashAt(seq)` is the local hash of entry seq, or null when there is none.
 * Meaningful together with a verified local chain: a chain that verifies and holds head (seq, hash) holds the whole
 * anchored prefix 1..seq.
 */
export function anchorMismatches(
  anchored: Iterable<ChainHead>,
  localHashAt: (seq: number) => string | null,
): AnchorMismatch[] {
  const out: AnchorMismatch[] = [];
  for (const a of anchored) {
    const local = localHashAt(a.seq);
    if (local !== a.hash) out.push({ seq: a.seq, anchoredHash: a.hash, localHash: local });
  }
  return out;
}

function short(h: string): string {
  return h.length > 16 ? `${h.slice(0, 16)}…` : h;
}

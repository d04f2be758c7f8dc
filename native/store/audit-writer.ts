/**
 * THE writer of the tamper-evident audit chain (tables `audit_log` and `audit_head`, docs/audit.md): every port of
 * the station database that records an audit entry (the Store, the outbox) appends through `createAuditWriter` on
 * the one connection, inside its own transaction, so the entry commits or rolls back with the change it records.
 * No other code inserts into audit_log or moves audit_head.
 *
 * Entry construction (the bytes the chain hashes): payload stored as canonicalJson(payload); hash =
 * SHA-256(prev_hash "\n" canonicalJson({payload, runId, seq, ts, type})) (core/provisioning/audit.ts).
 *
 * May import: core/, better-sqlite3 types, ./store-error.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { auditEntryHashSync as entryHashSync, type ChainHead } from '../../core/provisioning/audit.js';
import { canonicalJson } from '../../core/canonical.js';
import type { AuditEntry } from '../../core/provisioning/store.js';
import { StoreError } from './store-error.js';

/** SHA-256 (hex) of a UTF-8 string or bytes, synchronously (node:crypto). */
export function sha256HexSync(data: string | Uint8Array): string {
  return createHash('sha256')
    .update(typeof data === 'string' ? Buffer.from(data, 'utf8') : data)
    .digest('hex');
}

/**
 * core/provisioning/audit.ts auditEntryHashSync, never null here: the station runs on Node, which has node:crypto.
 */
export function auditEntryHashSync(prevHash: string, e: Parameters<typeof entryHashSync>[1]): string {
  return entryHashSync(prevHash, e)!;
}

/** Appends entries at the chain head. */
export interface AuditWriter {
  /**
   * Append one entry at the chain head and advance the head. Call inside the caller's transaction. Throws a
   * StoreError ('corrupt': no head row; 'invalid-argument': a payload that is not plain JSON).
   */
  append(type: string, payload: Readonly<Record<string, unknown>>, runId: string | null): AuditEntry;
}

/** The audit writer of one connection; `now` stamps the entries (ISO time). */
export function createAuditWriter(db: Database.Database, now: () => string): AuditWriter {
  const st = {
    head: db.prepare('SELECT seq, hash FROM audit_head WHERE id = 1'),
    insert: db.prepare(
      'INSERT INTO audit_log (seq, ts, type, run_id, payload_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    advanceHead: db.prepare('UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1'),
  };
  return {
    append(type, payload, runId) {
      const head = st.head.get() as ChainHead | undefined;
      if (!head) throw new StoreError('corrupt', 'the audit head row is missing');
      const payloadJson = canonicalPayload(type, payload);
      const entry = {
        seq: head.seq + 1,
        ts: now(),
        type,
        runId,
        payload: JSON.parse(payloadJson) as Record<string, unknown>,
      };
      const hash = auditEntryHashSync(head.hash, entry);
      st.insert.run(entry.seq, entry.ts, type, runId, payloadJson, head.hash, hash);
      st.advanceHead.run(entry.seq, hash);
      return { ...entry, prevHash: head.hash, hash };
    },
  };
}

function canonicalPayload(type: string, payload: Readonly<Record<string, unknown>>): string {
  try {
    return canonicalJson(payload);
  } catch (cause) {
    throw new StoreError(
      'invalid-argument',
      `audit payload of ${type} is not plain JSON: ${String(cause)}`,
      { type },
      { cause },
    );
  }
}

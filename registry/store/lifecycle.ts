/**
 * Lifecycle tables (schema v2) over the portable SqlPort: devices, versioned credentials, the append-only
 * hash-chained lifecycle event log (core/provisioning/audit.ts hashing), blocked identifiers, delegated revocation signers, CRLs,
 * revoked operators, quotas and settings. Plain functions over a SqlExec so that callers compose them inside
 * one `db.sql.transaction`. This file: the event log, settings, revoked operators, quotas; it re-exports the
 * devices, signers and failed-issuance tables (./devices.ts, ./signers.ts, ./failed-issuances.ts). Imports core.
 */
import {
  GENESIS_HASH,
  auditEntryHash,
  auditEntryHashSync,
  verifyChain,
  type ChainVerification,
} from '../../core/provisioning/audit.js';
import type { AuditEntry } from '../../core/provisioning/store.js';
import type { SqlExec, SqlRow } from '../../core/hq/registry-db.js';

import { s, sn } from './rows.js';

export * from './devices.js';
export * from './signers.js';
export * from './failed-issuances.js';

// ---------------------------------------------------------------- event log

/** Append one entry to the hash-chained lifecycle log (call inside the transaction that makes the change). */
export async function appendEvent(
  x: SqlExec,
  ts: string,
  type: string,
  payload: Record<string, unknown>,
  runId: string | null = null,
): Promise<AuditEntry> {
  return (await appendEvents(x, [{ ts, type, payload, runId }]))[0]!;
}

/** Append several events in order (one read of the chain head, inserts of up to 500 rows a statement). */
export async function appendEvents(
  x: SqlExec,
  events: readonly { ts: string; type: string; payload: Record<string, unknown>; runId?: string | null }[],
): Promise<AuditEntry[]> {
  if (!events.length) return [];
  const last = (await x.all('SELECT seq, hash FROM lifecycle_events ORDER BY seq DESC LIMIT 1'))[0];
  let seq = last ? Number(last['seq']) : 0;
  let prevHash = last ? s(last, 'hash') : GENESIS_HASH;
  const out: AuditEntry[] = [];
  for (const e of events) {
    const entry = { seq: ++seq, ts: e.ts, type: e.type, runId: e.runId ?? null, payload: e.payload };
    // Synchronously where the runtime has node:crypto (the registry does): no await per event of a large batch.
    const hash = auditEntryHashSync(prevHash, entry) ?? (await auditEntryHash(prevHash, entry));
    out.push({ ...entry, prevHash, hash });
    prevHash = hash;
  }
  for (let i = 0; i < out.length; i += 500) {
    const part = out.slice(i, i + 500);
    await x.run(
      `INSERT INTO lifecycle_events (seq, ts, type, run_id, payload, prev_hash, hash) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      part.flatMap((e) => [e.seq, e.ts, e.type, e.runId, JSON.stringify(e.payload), e.prevHash, e.hash]),
    );
  }
  return out;
}

function eventFrom(r: SqlRow): AuditEntry {
  return {
    seq: Number(r['seq']),
    ts: s(r, 'ts'),
    type: s(r, 'type'),
    runId: sn(r, 'run_id'),
    payload: JSON.parse(s(r, 'payload')) as Record<string, unknown>,
    prevHash: s(r, 'prev_hash'),
    hash: s(r, 'hash'),
  };
}

export async function eventsFor(x: SqlExec, serialNumber: string): Promise<AuditEntry[]> {
  const rows = await x.all('SELECT * FROM lifecycle_events ORDER BY seq');
  return rows.map(eventFrom).filter((e) => e.payload['serialNumber'] === serialNumber);
}

/** Verify the whole lifecycle log (streamed in pages of 1000). */
export async function verifyEventLog(x: SqlExec): Promise<ChainVerification> {
  async function* entries(): AsyncIterable<AuditEntry> {
    let after = 0;
    for (;;) {
      const rows = await x.all('SELECT * FROM lifecycle_events WHERE seq > ? ORDER BY seq LIMIT 1000', [after]);
      for (const r of rows) yield eventFrom(r);
      if (rows.length < 1000) return;
      after = Number(rows[rows.length - 1]!['seq']);
    }
  }
  return verifyChain(entries());
}

// ---------------------------------------------------------------- settings, CA keys, CRLs, operators, quotas

export async function getSetting(x: SqlExec, k: string): Promise<string | null> {
  const r = (await x.all('SELECT v FROM lifecycle_settings WHERE k = ?', [k]))[0];
  return r ? s(r, 'v') : null;
}

export async function setSetting(x: SqlExec, k: string, v: string): Promise<void> {
  await x.run('INSERT INTO lifecycle_settings (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v', [
    k,
    v,
  ]);
}

/** A delegated revocation signer of headquarters for one station (schema v4, docs/lifecycle.md). */
export async function revokedOperators(
  x: SqlExec,
): Promise<{ operatorId: string; reason: string; revokedAt: string }[]> {
  return (await x.all('SELECT * FROM revoked_operators ORDER BY operator_id')).map((r) => ({
    operatorId: s(r, 'operator_id'),
    reason: s(r, 'reason'),
    revokedAt: s(r, 'revoked_at'),
  }));
}

export async function quotasFor(
  x: SqlExec,
  stationId: string,
): Promise<{ workOrder: string; quantity: number; updatedAt: string }[]> {
  return (await x.all('SELECT * FROM quotas WHERE station_id = ? ORDER BY work_order', [stationId])).map((r) => ({
    workOrder: s(r, 'work_order'),
    quantity: Number(r['quantity']),
    updatedAt: s(r, 'updated_at'),
  }));
}

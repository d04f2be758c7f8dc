/**
 * THE writer of the `refusals` table (schema version 10, docs/audit.md "Refusals"): boards refused before a run
 * exists (FLOW_BLOCKED, FLOW_QUOTA_EXHAUSTED, an unknown profile, a scan-in mismatch, ...), with the identity the
 * board claimed and the reason. A new refusal is one row plus its `board.refused` audit entry, appended through the
 * connection's audit writer in the caller's transaction (the row keeps the entry's seq in `audit_seq`).
 *
 * Flood bound (a board left on a refusing port, or a rogue one re-enumerating with a new chip id each time):
 *   - a repeat of the same refusal (same port, chip, code and work order) within REFUSAL_COALESCE_MS of the row's
 *     last attempt is coalesced into that row: `count` + 1 and `last_at`, no new row, no new audit entry;
 *   - at most REFUSAL_PORT_BUDGET new rows per port per REFUSAL_COALESCE_MS: beyond that, any refusal on the port
 *     is coalesced into the port's latest row.
 * So one port adds at most REFUSAL_PORT_BUDGET rows and entries per window however fast boards are refused there.
 *
 * May import: core/, better-sqlite3 types, ./audit-writer.
 */
import type Database from 'better-sqlite3';
import type { NewRefusal, RecordedRefusal } from '../../core/provisioning/store.js';
import type { AuditWriter } from './audit-writer.js';

/** Window in which a repeat is coalesced, and over which the per-port budget of new rows is counted (10 min). */
export const REFUSAL_COALESCE_MS = 10 * 60_000;
/** New refusal rows (and audit entries) one port may add per window. */
export const REFUSAL_PORT_BUDGET = 20;
/** The audit entry type of a refusal. */
export const REFUSAL_AUDIT_TYPE = 'board.refused';

/** Writes refusals on one connection (callers bring the transaction). */
export interface RefusalWriter {
  /** Record a refusal at ISO time `at` (new row and audit entry, or coalesced into a recent one). */
  record(r: NewRefusal, at: string): RecordedRefusal;
}

/** The refusal writer of one connection. `newId` names new rows. */
export function createRefusalWriter(
  db: Database.Database,
  o: { readonly audit: AuditWriter; readonly newId: () => string },
): RefusalWriter {
  const st = {
    same: db.prepare(
      `SELECT refusal_id, count FROM refusals
       WHERE port = ? AND chip_id = ? AND code = ? AND work_order = ? AND last_at >= ?
       ORDER BY last_at DESC LIMIT 1`,
    ),
    newOnPort: db.prepare('SELECT COUNT(*) AS n FROM refusals WHERE port = ? AND first_at >= ?'),
    latestOnPort: db.prepare('SELECT refusal_id, count FROM refusals WHERE port = ? ORDER BY last_at DESC LIMIT 1'),
    bump: db.prepare('UPDATE refusals SET count = count + 1, last_at = max(last_at, ?) WHERE refusal_id = ?'),
    insert: db.prepare(
      `INSERT INTO refusals (refusal_id, chip_id, serial_number, model, port, work_order, operator, station_id, code,
         message, scanned, first_at, last_at, count, audit_seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`,
    ),
  };
  const bump = (row: { refusal_id: string; count: number }, at: string): RecordedRefusal => {
    st.bump.run(at, row.refusal_id);
    return { refusalId: row.refusal_id, coalesced: true, count: row.count + 1 };
  };
  return {
    record(r, at) {
      const since = new Date(Date.parse(at) - REFUSAL_COALESCE_MS).toISOString();
      type Row = { refusal_id: string; count: number };
      const same = st.same.get(r.port, r.chipId, r.code, r.workOrder, since) as Row | undefined;
      if (same) return bump(same, at);
      if ((st.newOnPort.get(r.port, since) as { n: number }).n >= REFUSAL_PORT_BUDGET) {
        const latest = st.latestOnPort.get(r.port) as Row | undefined;
        if (latest) return bump(latest, at);
      }
      const refusalId = `refusal-${o.newId()}`;
      const message = r.message.slice(0, 1024);
      const entry = o.audit.append(
        REFUSAL_AUDIT_TYPE,
        {
          refusalId,
          code: r.code,
          message,
          chipId: r.chipId,
          serialNumber: r.serialNumber,
          model: r.model,
          port: r.port,
          workOrder: r.workOrder,
          operator: r.operator,
          stationId: r.stationId,
          scanned: r.scanned,
          // The code's text placeholders (the Log view reads them from here: the row has no column for them).
          ...(r.params ? { params: r.params } : {}),
        },
        null,
      );
      st.insert.run(
        refusalId,
        r.chipId,
        r.serialNumber,
        r.model,
        r.port,
        r.workOrder,
        r.operator,
        r.stationId,
        r.code,
        message,
        r.scanned,
        entry.ts,
        entry.ts,
        entry.seq,
      );
      return { refusalId, coalesced: false, count: 1 };
    },
  };
}

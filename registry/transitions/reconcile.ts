/**
 * `registry reconcile`: the lifecycle step applied to stored records that missed it (registries from before
 * schema v3). Imports core, registry/common, registry/store, registry/revocation (CRL) and ./ingest-hooks.ts.
 */
import { type LifecycleRole } from '../../core/lifecycle.js';
import { ok, type Result } from '../../core/result.js';
import { recordFrom, type IngestRecord } from '../../core/hq/registry-db.js';
import * as st from '../store/lifecycle.js';
import { apiFail, type ApiError } from '../common/errors.js';
import { transact } from '../common/tx.js';
import { now, type LifecycleContext } from '../common/context.js';
import { refreshCrl } from '../revocation/crl.js';
import { lifecycleApplyRecords } from './ingest-hooks.js';

/** What `registry reconcile` found (and, unless a dry run, applied). */
export interface ReconcileResult {
  readonly dryRun: boolean;
  /** Stored records that had no credential and no `record.not-applied` event. */
  readonly pending: number;
  /** Of those, applied now (devices created or rotated); the rest were already covered by their certificate. */
  readonly applied: number;
  readonly records: readonly { readonly recordId: string; readonly serialNumber: string; readonly stationId: string }[];
}

/**
 * Repair for registries that stored records while the lifecycle step ran after the ingest commit (before schema
 * v3 it could fail and was only logged): every stored record without a credential and without a
 * `record.not-applied` event is applied now, per station in record order, in one transaction (idempotent, like
 * ingest). Admin only. A dry run lists what would change and rolls back.
 */
export async function reconcileLifecycle(
  ctx: LifecycleContext,
  role: LifecycleRole,
  dryRun: boolean,
): Promise<Result<ReconcileResult, ApiError>> {
  if (role !== 'admin') return apiFail('AUTH_FORBIDDEN', 'reconcile needs the admin role');
  const r = await transact(
    ctx.db.sql,
    async (x) => {
      const notApplied = new Set<string>();
      for (const e of await x.all(`SELECT payload FROM lifecycle_events WHERE type = 'record.not-applied'`)) {
        const id = (JSON.parse(String(e['payload'])) as { recordId?: unknown }).recordId;
        if (typeof id === 'string') notApplied.add(id);
      }
      // Two set lookups instead of a correlated NOT EXISTS (credentials.record_id has no index).
      const covered = new Set(
        (await x.all('SELECT record_id FROM credentials WHERE record_id IS NOT NULL')).map((c) =>
          String(c['record_id']),
        ),
      );
      const pending = (await x.all('SELECT * FROM records ORDER BY seq'))
        .map(recordFrom)
        .filter((row) => !covered.has(row.recordId) && !notApplied.has(row.recordId));
      const byStation = new Map<string, IngestRecord[]>();
      for (const [index, row] of pending.entries()) {
        const list = byStation.get(row.stationId) ?? [];
        list.push({ ...row, index });
        byStation.set(row.stationId, list);
      }
      let applied = 0;
      const changedStations: string[] = [];
      for (const [stationId, list] of byStation) {
        const done = await lifecycleApplyRecords(ctx, x, stationId, list);
        applied += done.applied;
        if (done.crlChanged) changedStations.push(stationId);
      }
      if (applied > 0)
        await st.appendEvent(x, now(ctx), 'lifecycle.reconciled', {
          actor: role,
          pending: pending.length,
          applied,
        });
      const result: ReconcileResult & { changedStations: string[] } = {
        dryRun,
        pending: pending.length,
        applied,
        records: pending.map((row) => ({
          recordId: row.recordId,
          serialNumber: row.serialNumber,
          stationId: row.stationId,
        })),
        changedStations,
      };
      return ok(result);
    },
    { rollback: dryRun },
  );
  if (!r.ok) return r;
  const { changedStations, ...result } = r.value as ReconcileResult & { changedStations: string[] };
  if (!dryRun) for (const stationId of changedStations) await refreshCrl(ctx, stationId);
  return ok(result);
}

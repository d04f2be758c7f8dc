/**
 * Work orders published by headquarters (docs/lifecycle.md "Work orders from headquarters"): an officer publishes a
 * work order document (core/provisioning/work-order.ts, validated exactly as a station validates its local files);
 * each station's signed quotas (`GET /v1/quotas`, registry/policy/quotas.ts) then carry the documents of the
 * published work orders it has a quota for. Stored in the lifecycle setting `work-orders` (id -> canonical JSON);
 * publishing, replacing or withdrawing one bumps the quota version so stations pull it, and is a lifecycle event.
 * Imports core, registry/common and registry/store.
 */
import { sha256Hex } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { type LifecycleRole } from '../../core/lifecycle.js';
import { parseWorkOrder, type WorkOrder } from '../../core/provisioning/work-order.js';
import { ok, type Result } from '../../core/result.js';
import { type SqlExec } from '../../core/hq/registry-db.js';
import * as st from '../store/lifecycle.js';
import { apiFail, guarded, type ApiError } from '../common/errors.js';
import { transactValue } from '../common/tx.js';
import { now, type LifecycleContext } from '../common/context.js';

const SETTING = 'work-orders';

/** A published work order: the document and the SHA-256 (hex) of its canonical JSON. */
export interface PublishedWorkOrder {
  readonly workOrder: WorkOrder;
  readonly sha256: string;
}

/** The published work orders (id -> document), as stored; a stored entry that no longer parses is skipped. */
export async function publishedWorkOrders(x: SqlExec): Promise<Map<string, WorkOrder>> {
  const out = new Map<string, WorkOrder>();
  let stored: unknown;
  try {
    stored = JSON.parse((await st.getSetting(x, SETTING)) ?? '{}');
  } catch {
    return out;
  }
  if (!stored || typeof stored !== 'object') return out;
  for (const [id, doc] of Object.entries(stored as Record<string, unknown>)) {
    const w = parseWorkOrder(doc, `work order ${id}`);
    if (w.ok && w.value.id === id) out.set(id, w.value);
  }
  return out;
}

async function bump(x: SqlExec): Promise<void> {
  const v = Number((await st.getSetting(x, 'quota.version')) ?? '0') + 1;
  await st.setSetting(x, 'quota.version', String(v));
}

/**
 * Publish (or replace) a work order from its JSON text. BODY_INVALID with the first bad fields when it is not a
 * valid work order. Publishing the same document again changes nothing (`changed: false`).
 */
export async function publishWorkOrder(
  ctx: LifecycleContext,
  role: LifecycleRole,
  text: string,
  source: string,
): Promise<Result<PublishedWorkOrder & { changed: boolean }, ApiError>> {
  const w = parseWorkOrder(text, source);
  if (!w.ok) return apiFail('BODY_INVALID', w.error.message);
  const json = canonicalJson(w.value);
  const sha256 = await sha256Hex(json);
  return transactValue(ctx.db.sql, async (x) => {
    const all = Object.fromEntries([...(await publishedWorkOrders(x))].map(([id, doc]) => [id, doc]));
    const before = all[w.value.id];
    if (before && canonicalJson(before) === json) return { workOrder: w.value, sha256, changed: false };
    all[w.value.id] = w.value;
    await st.setSetting(x, SETTING, canonicalJson(all));
    await bump(x);
    await st.appendEvent(x, now(ctx), 'work-order.published', {
      workOrder: w.value.id,
      sha256,
      replaced: before !== undefined,
      actor: role,
    });
    return { workOrder: w.value, sha256, changed: true };
  });
}

/** Withdraw a published work order (stations fall back to their local file of that id, if any). NOT_FOUND if unknown. */
export async function withdrawWorkOrder(
  ctx: LifecycleContext,
  role: LifecycleRole,
  id: string,
): Promise<Result<{ workOrder: string }, ApiError>> {
  const r = await transactValue(ctx.db.sql, async (x) => {
    const all = await publishedWorkOrders(x);
    if (!all.delete(id)) return false;
    await st.setSetting(x, SETTING, canonicalJson(Object.fromEntries(all)));
    await bump(x);
    await st.appendEvent(x, now(ctx), 'work-order.withdrawn', { workOrder: id, actor: role });
    return true;
  });
  if (!r.ok) return r;
  return r.value ? ok({ workOrder: id }) : apiFail('NOT_FOUND', `work order ${id} is not published`);
}

/** The published work orders with their hashes, by id. */
export async function listWorkOrders(ctx: LifecycleContext): Promise<Result<PublishedWorkOrder[], ApiError>> {
  return guarded(async () => {
    const all = await publishedWorkOrders(ctx.db.sql);
    const out: PublishedWorkOrder[] = [];
    for (const id of [...all.keys()].sort()) {
      const workOrder = all.get(id)!;
      out.push({ workOrder, sha256: await sha256Hex(canonicalJson(workOrder)) });
    }
    return ok(out);
  });
}

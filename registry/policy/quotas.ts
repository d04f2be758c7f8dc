/**
 * Quotas per work order and station, set by officers and signed for the station (`GET /v1/quotas`). Imports
 * core, registry/common, registry/store and registry/stations.
 */
import { QUOTA_SCHEMA, QUOTA_TYP } from '../../core/hq/policy.js';
import { utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { type LifecycleRole } from '../../core/lifecycle.js';
import { ok, type Result } from '../../core/result.js';
import * as st from '../store/lifecycle.js';
import { apiFail, guarded, type ApiError } from '../common/errors.js';
import { transactValue } from '../common/tx.js';
import { now, type LifecycleContext } from '../common/context.js';
import { enrolledStation } from '../stations/service.js';
import { publishedWorkOrders } from './work-orders.js';

export async function setQuota(
  ctx: LifecycleContext,
  role: LifecycleRole,
  workOrder: string,
  stationId: string,
  quantity: number,
): Promise<Result<{ workOrder: string; stationId: string; quantity: number }, ApiError>> {
  if (!Number.isSafeInteger(quantity) || quantity < 0)
    return apiFail('BODY_INVALID', 'quantity must be an integer >= 0');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(workOrder)) return apiFail('BODY_INVALID', 'invalid work order');
  const row = await enrolledStation(ctx, stationId);
  if (!row.ok) return row;
  return transactValue(ctx.db.sql, async (x) => {
    const at = now(ctx);
    await x.run(
      `INSERT INTO quotas (work_order, station_id, quantity, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (work_order, station_id) DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at`,
      [workOrder, stationId, quantity, at],
    );
    const v = Number((await st.getSetting(x, 'quota.version')) ?? '0') + 1;
    await st.setSetting(x, 'quota.version', String(v));
    await st.appendEvent(x, at, 'quota.set', { workOrder, stationId, quantity, actor: role });
    return { workOrder, stationId, quantity };
  });
}

/** The signed quotas of one station (JWS typ line-station-quota+jws). */
export async function signedQuotas(
  ctx: LifecycleContext,
  stationId: string,
): Promise<Result<{ version: number; jws: string }, ApiError>> {
  const r = await guarded(async () => {
    const x = ctx.db.sql;
    return ok({
      version: Number((await st.getSetting(x, 'quota.version')) ?? '0'),
      quotas: await st.quotasFor(x, stationId),
      published: await publishedWorkOrders(x),
    });
  });
  if (!r.ok) return r;
  // The published work orders this station has a quota for (docs/lifecycle.md "Work orders from headquarters").
  const workOrders = r.value.quotas.flatMap((q) => {
    const w = r.value.published.get(q.workOrder);
    return w ? [w] : [];
  });
  const payload = {
    schema: QUOTA_SCHEMA,
    registryId: ctx.registryId,
    stationId,
    version: r.value.version,
    issuedAt: now(ctx),
    quotas: r.value.quotas.map((q) => ({ workOrder: q.workOrder, quantity: q.quantity })),
    ...(workOrders.length ? { workOrders } : {}),
  };
  const jws = await signJws({
    signer: ctx.signer,
    payload: utf8(canonicalJson(payload)),
    header: { typ: QUOTA_TYP, kid: ctx.registryId, x5c: ctx.registryChain },
  });
  if (!jws.ok) return apiFail('INTERNAL', `quotas could not be signed: ${jws.error.message}`);
  return ok({ version: r.value.version, jws: jws.value });
}

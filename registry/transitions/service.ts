/**
 * Device state transitions by officers (docs/lifecycle.md): one device, a batch (work order / serial range, dry
 * run), blocks and releases of identifiers, a device's history, the verification of the lifecycle event chain.
 * CRLs are re-signed after the commit. Imports core, registry/common, registry/store, registry/revocation (CRL).
 */
import { isRevocationReason, transition, type LifecycleEvent, type LifecycleRole } from '../../core/lifecycle.js';
import { ok, type Result } from '../../core/result.js';
import * as st from '../store/lifecycle.js';
import { apiFail, guarded, type ApiError } from '../common/errors.js';
import { transact, transactValue } from '../common/tx.js';
import { applyEvent } from '../store/device-transition.js';
import { now, type LifecycleContext } from '../common/context.js';
import { refreshCrl } from '../revocation/crl.js';
import { deviceView, type DeviceLifecycleView } from './views.js';

/** activate / suspend / resume / revoke / decommission one device (by serial number or chip id). */
export async function applyTransition(
  ctx: LifecycleContext,
  role: LifecycleRole,
  key: string,
  event: Exclude<LifecycleEvent, 'rotate'>,
  reason: string | null = null,
): Promise<Result<DeviceLifecycleView, ApiError>> {
  if (event === 'revoke' && reason !== null && !isRevocationReason(reason))
    return apiFail('BODY_INVALID', `unknown revocation reason ${reason}`);
  if (event === 'suspend' && !reason) return apiFail('BODY_INVALID', 'a suspension needs a reason');
  const r = await transact(ctx.db.sql, async (x) => {
    const d = await st.findDevice(x, key);
    if (!d) return apiFail('NOT_FOUND', `no device ${key} in the lifecycle registry`);
    const done = await applyEvent(x, now(ctx), d, event, role, reason);
    return done.ok ? ok(await deviceView(x, done.value)) : done;
  });
  if (r.ok) {
    ctx.logger.log('info', `device ${event}`, { serialNumber: r.value.serialNumber, role, reason });
    await refreshCrl(ctx, r.value.stationId);
  }
  return r;
}

export interface BatchSelector {
  readonly workOrder?: string;
  /** Inclusive serial number range (string order), "A..B". */
  readonly serialRange?: readonly [string, string];
}

/** The events a batch operation may apply (incidents: revoke or put on hold, and lift the hold afterwards). */
export type BatchEvent = 'revoke' | 'suspend' | 'resume';

export interface BatchResult {
  readonly dryRun: boolean;
  readonly event: BatchEvent;
  readonly changed: string[];
  readonly skipped: { serialNumber: string; state: string }[];
}

/**
 * Apply `event` to every matching device (work order and/or inclusive serial range) the transition table allows
 * for `role`, in ONE transaction; the others are listed as skipped with their state. `dryRun` lists what would
 * change and changes nothing. Reasons: revoke needs an RFC 5280 reason, suspend a free-text reason (why the
 * devices are on hold), resume an optional one. The CRLs of the stations concerned are re-signed after the commit.
 */
export async function batchTransition(
  ctx: LifecycleContext,
  role: LifecycleRole,
  sel: BatchSelector,
  event: BatchEvent,
  reason: string | null,
  dryRun: boolean,
): Promise<Result<BatchResult, ApiError>> {
  if (event === 'revoke' && !isRevocationReason(reason))
    return apiFail('BODY_INVALID', `unknown revocation reason ${String(reason)}`);
  if (event === 'suspend' && !reason) return apiFail('BODY_INVALID', 'a suspension needs a reason');
  if (!sel.workOrder && !sel.serialRange) return apiFail('BODY_INVALID', 'give a work order or a serial range');
  const r = await transact(
    ctx.db.sql,
    async (x) => {
      const devices = await st.devicesWhere(x, {
        ...(sel.workOrder !== undefined ? { workOrder: sel.workOrder } : {}),
        ...(sel.serialRange ? { serialFrom: sel.serialRange[0], serialTo: sel.serialRange[1] } : {}),
      });
      const changed: string[] = [];
      const skipped: { serialNumber: string; state: string }[] = [];
      const touched = new Set<string>();
      const at = now(ctx);
      for (const d of devices) {
        const t = transition(d.state, event, role);
        if (!t.ok) {
          skipped.push({ serialNumber: d.serialNumber, state: d.state });
          continue;
        }
        changed.push(d.serialNumber);
        touched.add(d.stationId);
        if (dryRun) continue;
        const done = await applyEvent(x, at, d, event, role, reason);
        if (!done.ok) return done;
      }
      if (changed.length && !dryRun)
        await st.appendEvent(x, at, `batch.${event}`, {
          actor: role,
          reason,
          selector: {
            workOrder: sel.workOrder ?? null,
            serialFrom: sel.serialRange?.[0] ?? null,
            serialTo: sel.serialRange?.[1] ?? null,
          },
          changed: changed.length,
          skipped: skipped.length,
        });
      return ok({ dryRun, event, changed, skipped, stations: dryRun ? [] : [...touched] });
    },
    { rollback: dryRun },
  );
  if (!r.ok) return r;
  if (!dryRun) for (const s of r.value.stations) await refreshCrl(ctx, s);
  return ok({ dryRun: r.value.dryRun, event, changed: r.value.changed, skipped: r.value.skipped });
}

/** Lift the block on a device's serial number and chip id (audited). */
export async function releaseDevice(
  ctx: LifecycleContext,
  role: LifecycleRole,
  key: string,
  reason: string,
): Promise<Result<{ serialNumber: string; released: number }, ApiError>> {
  if (role !== 'admin' && role !== 'security-officer') return apiFail('AUTH_FORBIDDEN', 'release needs an officer');
  if (!reason) return apiFail('BODY_INVALID', 'a release needs a reason');
  return transact(ctx.db.sql, async (x) => {
    const d = await st.findDevice(x, key);
    const serial = d?.serialNumber ?? key;
    const at = now(ctx);
    let n = await st.release(x, 'serial', serial, at);
    if (d) n += await st.release(x, 'chipId', d.chipId, at);
    if (n === 0) return apiFail('NOT_FOUND', `${key} is not blocked`);
    await st.appendEvent(x, at, 'identifier.released', { serialNumber: serial, actor: role, reason, released: n });
    return ok({ serialNumber: serial, released: n });
  });
}

/** Block a serial number or chip id (e.g. a stolen board) until released. */
export async function blockIdentifier(
  ctx: LifecycleContext,
  role: LifecycleRole,
  kind: 'serial' | 'chipId',
  value: string,
  reason: string,
): Promise<Result<{ kind: string; value: string }, ApiError>> {
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(value)) return apiFail('BODY_INVALID', 'invalid identifier');
  return transactValue(ctx.db.sql, async (x) => {
    const at = now(ctx);
    await st.block(x, kind, value, reason, at);
    await st.appendEvent(x, at, 'identifier.blocked', {
      ...(kind === 'serial' ? { serialNumber: value } : { chipId: value }),
      actor: role,
      reason,
    });
    return { kind, value };
  });
}

/** A device's state, credential history and events. */
export async function deviceHistory(
  ctx: LifecycleContext,
  key: string,
): Promise<Result<DeviceLifecycleView & { events: unknown[] }, ApiError>> {
  return guarded(async () => {
    const x = ctx.db.sql;
    const d = await st.findDevice(x, key);
    if (!d) return apiFail('NOT_FOUND', `no device ${key} in the lifecycle registry`);
    const events = await st.eventsFor(x, d.serialNumber);
    return ok({
      ...(await deviceView(x, d)),
      events: events.map((e) => ({ seq: e.seq, ts: e.ts, type: e.type, ...e.payload, hash: e.hash })),
    });
  });
}

/** Verify the lifecycle event chain. */
export async function verifyLifecycleLog(
  ctx: LifecycleContext,
): Promise<Result<Awaited<ReturnType<typeof st.verifyEventLog>>, ApiError>> {
  return guarded(async () => ok(await st.verifyEventLog(ctx.db.sql)));
}

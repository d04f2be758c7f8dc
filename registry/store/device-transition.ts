/**
 * One lifecycle event applied to one device inside the caller's transaction (core/lifecycle.ts `transition`):
 * the device state, its credentials (revoked on revoke / decommission), the blocks of a decommissioned board,
 * and the `device.<event>` event. Used by device transitions and station scrap events. Imports core,
 * registry/common and ./lifecycle.ts.
 */
import {
  isRevocationReason,
  transition,
  type LifecycleEvent,
  type LifecycleRole,
  type RevocationReason,
} from '../../core/lifecycle.js';
import { type SqlExec } from '../../core/hq/registry-db.js';
import * as st from './lifecycle.js';
import { ok, type Result } from '../../core/result.js';
import { apiFail, type ApiError } from '../common/errors.js';

/**
 * Apply one event to one device inside a transaction (no CRL refresh); answers the device row as it is now, or
 * AUTH_FORBIDDEN / LIFECYCLE_TRANSITION_INVALID when the transition table refuses it (nothing written).
 */
export async function applyEvent(
  x: SqlExec,
  at: string,
  d: st.DeviceRow,
  event: Exclude<LifecycleEvent, 'rotate'>,
  role: LifecycleRole,
  reason: string | null,
): Promise<Result<st.DeviceRow, ApiError>> {
  const t = transition(d.state, event, role);
  if (!t.ok)
    return apiFail(
      t.error.code === 'AUTH_FORBIDDEN' ? 'AUTH_FORBIDDEN' : 'LIFECYCLE_TRANSITION_INVALID',
      t.error.message,
    );
  let suspendedAt: string | null = d.suspendedAt;
  if (event === 'suspend') suspendedAt = at;
  if (event === 'resume') suspendedAt = null;
  if (event === 'revoke') {
    const rr: RevocationReason = isRevocationReason(reason) ? reason : 'unspecified';
    await st.setCredentialStatus(x, d.serialNumber, ['active', 'pending'], 'revoked', rr, at);
    suspendedAt = null;
  }
  if (event === 'decommission') {
    await st.setCredentialStatus(x, d.serialNumber, ['active', 'pending'], 'revoked', 'cessationOfOperation', at);
    await st.block(x, 'serial', d.serialNumber, 'decommissioned', at);
    await st.block(x, 'chipId', d.chipId, 'decommissioned', at);
    suspendedAt = null;
  }
  await st.setDeviceState(x, d.serialNumber, t.value, at, suspendedAt);
  await st.appendEvent(x, at, `device.${event}`, {
    serialNumber: d.serialNumber,
    stationId: d.stationId,
    from: d.state,
    to: t.value,
    actor: role,
    reason,
  });
  return ok({ ...d, state: t.value, stateSince: at, suspendedAt });
}

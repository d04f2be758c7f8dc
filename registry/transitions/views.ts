/**
 * The lifecycle view of a device: its state and credential history. Imports core and registry/store.
 */
import { type DeviceState } from '../../core/lifecycle.js';
import { type SqlExec } from '../../core/hq/registry-db.js';
import * as st from '../store/lifecycle.js';

export interface CredentialView {
  readonly version: number;
  readonly serial: string;
  readonly sha256: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly status: string;
  readonly reason: string | null;
  readonly revokedAt: string | null;
}

export interface DeviceLifecycleView {
  readonly serialNumber: string;
  readonly chipId: string;
  readonly stationId: string;
  readonly workOrder: string;
  readonly state: DeviceState;
  readonly stateSince: string;
  readonly credentials: readonly CredentialView[];
}

/** The lifecycle view of device row `d` (its credentials read in `x`). */
export async function deviceView(x: SqlExec, d: st.DeviceRow): Promise<DeviceLifecycleView> {
  const creds = await st.credentials(x, d.serialNumber);
  return {
    serialNumber: d.serialNumber,
    chipId: d.chipId,
    stationId: d.stationId,
    workOrder: d.workOrder,
    state: d.state,
    stateSince: d.stateSince,
    credentials: creds.map((c) => ({
      version: c.version,
      serial: c.serial,
      sha256: c.sha256,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      status: c.status,
      reason: c.reason,
      revokedAt: c.revokedAt,
    })),
  };
}

/**
 * The policy pull (docs/lifecycle.md "Policy"): first the signed station status (a registry without the route, 404,
 * is older: the policy decides), then the policy and the quotas, each verified, stored and applied. An unsigned
 * `403 AUTH_STATION_REVOKED` only triggers the signed station-status check; the last pull error is kept for the
 * lifecycle status.
 *
 * May import: core/ (errors, result), station/hq/client.ts (types), station/lifecycle/context.ts, policy.ts and
 * status.ts (types).
 */
import { fail, type StationError } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import type { SignedDocument } from '../hq/client.js';
import { NO_REGISTRY_URL, type LifecycleContext, type PullOutcome } from './context.js';
import type { PolicyKeeper } from './policy.js';
import type { StationStatusKeeper } from './status.js';

export interface Puller {
  pull(signal?: AbortSignal): Promise<Result<PullOutcome>>;
  /** `CODE: message` of the last pull that failed (null after one that succeeded). */
  lastError(): string | null;
}

/** The refusal's registry code (error details of a registry refusal), e.g. AUTH_STATION_REVOKED. */
const registryCode = (r: Result<unknown>): unknown =>
  r.ok ? null : (r.error.details as { code?: unknown } | undefined)?.code;

/** The pull part of the lifecycle. */
export function createPuller(c: LifecycleContext, policy: PolicyKeeper, status: StationStatusKeeper): Puller {
  let lastPullError: string | null = null;

  /** GET the policy or the quotas (signed documents). */
  async function fetchDocument(which: 'policy' | 'quotas', signal?: AbortSignal): Promise<Result<SignedDocument>> {
    if (!c.client) return fail('CONFIG_INVALID', NO_REGISTRY_URL);
    const r = await c.client[which](signal);
    return r.ok ? r : err(r.error.error);
  }

  /** FLOW_STATION_REVOKED (noted as the pull error) when this station is revoked now. */
  const revoked = (): { ok: false; error: StationError } | null => {
    const e = status.revokedError();
    if (e) lastPullError = `${e.code}: ${e.message}`;
    return e ? { ok: false as const, error: e } : null;
  };

  async function pull(signal?: AbortSignal): Promise<Result<PullOutcome>> {
    const sr = await status.checkRevocation(signal);
    if (!sr.ok && registryCode(sr) !== 'NOT_FOUND') {
      lastPullError = `${sr.error.code}: ${sr.error.message}`;
      return sr;
    }
    const before = revoked();
    if (before) return before;
    const pj = await fetchDocument('policy', signal);
    // Revoked since the status answer? An unsigned 403 only triggers the signed check.
    if (registryCode(pj) === 'AUTH_STATION_REVOKED') {
      await status.checkRevocation(signal);
      const since = revoked();
      if (since) return since;
    }
    const qj = pj.ok ? await fetchDocument('quotas', signal) : pj;
    const pr = pj.ok ? await policy.applyPolicy(pj.value.jws) : pj;
    const qr = qj.ok ? await policy.applyQuotas(qj.value.jws) : qj;
    if (!pr.ok || !qr.ok) {
      const e = (!pr.ok ? pr : qr) as { ok: false; error: StationError };
      lastPullError = `${e.error.code}: ${e.error.message}`;
      return e;
    }
    lastPullError = null;
    return ok({ policy: pr.value, quotas: qr.value });
  }

  return { pull, lastError: () => lastPullError };
}

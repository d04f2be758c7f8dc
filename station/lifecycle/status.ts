/**
 * Revocation reaches the station (docs/lifecycle.md "Revocation reaches the station"): `GET /v1/station-status`
 * through the registry client, and only the registry's signed answer to THIS request (its LS-Sig nonce and time
 * echoed, this station id) counts. A revocation is kept for good (station_revocation, terminal) and refuses every
 * new or resumed run (FLOW_STATION_REVOKED); so does a listing in the policy in force once it is in effect.
 *
 * May import: core/ (hq policy, errors, result, bytes), station/lifecycle/context.ts and policy.ts (types).
 */
import { sha256Hex, utf8 } from '../../core/bytes.js';
import { fail, stationError, type StationError } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import { stationRevocation, verifyStationStatus } from '../../core/hq/policy.js';
import { NO_REGISTRY_CERT, NO_REGISTRY_URL, type LifecycleContext, type StationStatusOutcome } from './context.js';
import type { PolicyKeeper } from './policy.js';

/** This station's revocation, and what says so. */
export interface StationRevocation {
  readonly revokedAt: string | null;
  readonly policyVersion: number | null;
  readonly by: 'station-status' | 'policy';
}

export interface StationStatusKeeper {
  /** Ask the registry (signed answer bound to this request); a revocation is stored for good. */
  checkRevocation(signal?: AbortSignal): Promise<Result<StationStatusOutcome>>;
  /**
   * This station's revocation: the registry's signed station-status answer kept (terminal), else the listing in the
   * policy in force (or in `cur`, that policy already loaded) when in effect now.
   */
  revocation(cur?: ReturnType<PolicyKeeper['current']>): StationRevocation | null;
  /** FLOW_STATION_REVOKED when this station is revoked, else null. */
  revokedError(): StationError | null;
  /** When the registry last confirmed, signed and bound to our request, that this station is active (this run). */
  confirmedActiveAt(): string | null;
}

/** The station-status part of the lifecycle. */
export function createStationStatus(c: LifecycleContext, policy: PolicyKeeper): StationStatusKeeper {
  const { db, log, stationId } = c;
  let confirmedActiveAt: string | null = null;

  async function checkRevocation(signal?: AbortSignal): Promise<Result<StationStatusOutcome>> {
    if (!c.registryCertificate) return fail('CONFIG_INVALID', NO_REGISTRY_CERT);
    const got = c.client ? await c.client.stationStatus(signal) : null;
    if (!got?.ok) {
      const error = got ? got.error.error : stationError('CONFIG_INVALID', NO_REGISTRY_URL);
      // A 403 here is unsigned: nothing is concluded from it (only a signed answer revokes).
      log.log('warn', 'station status: no signed answer from the registry; nothing changes', {
        error: `${error.code}: ${error.message}`,
      });
      return err(error);
    }
    const v = await verifyStationStatus(got.value.jws, c.registryCertificate, stationId, got.value.claims);
    if (!v.ok) {
      log.log('warn', 'station status refused: it does not verify or does not answer this request', {
        message: v.error.message,
      });
      return v;
    }
    const p = v.value.payload;
    const kept = db.stationRevocation(stationId);
    if (p.status === 'revoked' && p.revokedAt) {
      if (!kept) {
        const row = db.storeStationRevocation({ stationId, revokedAt: p.revokedAt, jws: got.value.jws.trim() });
        c.store.appendAudit('station.revoked', {
          stationId,
          revokedAt: row.revokedAt,
          registryId: p.registryId,
          issuedAt: p.issuedAt,
          statusSha256: await sha256Hex(utf8(row.jws)),
        });
        log.log(
          'error',
          'this station has been revoked by headquarters (signed answer of the registry): it refuses to provision',
          { revokedAt: row.revokedAt },
        );
      }
      confirmedActiveAt = null;
    } else if (kept) {
      // Terminal: no answer, even a signed one, un-revokes a station (headquarters enrols a new station instead).
      log.log('warn', 'the registry answers "active" but this station holds its signed revocation: it stays revoked', {
        revokedAt: kept.revokedAt,
      });
    } else confirmedActiveAt = c.clock.now().toISOString();
    return ok({ status: p.status, revokedAt: p.revokedAt, issuedAt: p.issuedAt });
  }

  const revocation: StationStatusKeeper['revocation'] = (cur = policy.current()) => {
    const kept = db.stationRevocation(stationId);
    if (kept) return { revokedAt: kept.revokedAt, policyVersion: null, by: 'station-status' };
    const r = cur ? stationRevocation(cur.policy, stationId, c.clock.now()) : null;
    return r && cur ? { ...r, policyVersion: cur.policy.version, by: 'policy' } : null;
  };

  return {
    checkRevocation,
    revocation,
    revokedError() {
      const r = revocation();
      if (!r) return null;
      const by = r.policyVersion === null ? 'signed answer of the registry' : `policy version ${r.policyVersion}`;
      return stationError(
        'FLOW_STATION_REVOKED',
        `this station (${stationId}) has been revoked by headquarters${r.revokedAt ? ` at ${r.revokedAt}` : ''} (${by}); contact your supervisor`,
        { stationId, revokedAt: r.revokedAt, policyVersion: r.policyVersion },
      );
    },
    confirmedActiveAt: () => confirmedActiveAt,
  };
}

/**
 * The station's revocation queue (docs/lifecycle.md "Scrap", "Failed issuance", "Failed rework"): failed-issuance
 * events and failed reworks' scrap events queued by `failRun` are signed here (their payload as written), active runs past their lifetime are ended
 * (FLOW_RUN_EXPIRED), and queued scrap and failed-issuance events go to `POST /v1/revocations` through the registry
 * client, or into a bundle; the registry's per-event answers mark them acknowledged or keep them queued.
 *
 * May import: core/ (pki jws, failed-issuance, errors, result), native/store (store errors, lifecycle types),
 * station/lifecycle/context.ts.
 */
import { utf8 } from '../../core/bytes.js';
import { fail } from '../../core/errors.js';
import { FAILED_ISSUANCE_TYP } from '../../core/failed-issuance.js';
import { SCRAP_TYP } from '../../core/hq/scrap.js';
import { signJws } from '../../core/pki/jws.js';
import { err, ok, type Result } from '../../core/result.js';
import { isStoreError } from '../../native/store/index.js';
import type { ExpiredActiveRun } from '../../native/store/lifecycle.js';
import type { LifecycleContext } from './context.js';

/** The registry's answer about one event (online, or from a bundle receipt). */
export interface RevocationAnswer {
  readonly requestId: string | null;
  readonly status: string;
  readonly reason?: string | null;
  readonly message?: string | null;
}

export interface RevocationQueue {
  signFailedIssuances(): Promise<Result<number>>;
  expireActiveRuns(): Promise<Result<ExpiredActiveRun[]>>;
  sendRevocations(signal?: AbortSignal): Promise<Result<{ sent: number; unsupported: boolean }>>;
  revocationEvents(max: number): Promise<Result<{ requestId: string; jws: string }[]>>;
  applyRevocationResults(results: readonly RevocationAnswer[], requestIds: readonly string[]): number;
  /** Events by state, for the lifecycle status. */
  counts(): { readonly queued: number; readonly sent: number; readonly acknowledged: number };
  /** A queued scrap or failed-issuance event waits (superseded ones travel with their record). */
  hasQueued(): boolean;
}

/** The revocation-queue part of the lifecycle. */
export function createRevocationQueue(
  c: LifecycleContext,
  o: { readonly activeRunLifetimeS: number; readonly inFlightChips?: (() => ReadonlySet<string>) | undefined },
): RevocationQueue {
  const { db, log } = c;

  /** Queued scrap and failed-issuance events that carry a signature (superseded ones travel with their record). */
  const sendable = () => db.revocations({ state: 'queued' }).filter((r) => r.kind !== 'superseded' && r.jws !== null);

  /** Serialised: two callers (the background loop, a scrap) never sign the same event twice. */
  let signing: Promise<Result<number>> = Promise.resolve(ok(0));
  function signFailedIssuances(): Promise<Result<number>> {
    const run = signing.then(async (): Promise<Result<number>> => {
      let n = 0;
      // Failed-issuance events, and the scrap events of failed reworks (core/hq/rework.ts), both queued by
      // failRun with their payload and no signature.
      for (const r of db.revocations()) {
        if (r.jws !== null || r.payloadJson === null || r.kind === 'superseded') continue;
        // The payload is signed exactly as failRun wrote it (its SHA-256 is in the cert.failed-issuance or
        // cert.rework-revocation audit entry).
        const jws = await signJws({
          signer: c.signer,
          payload: utf8(r.payloadJson),
          header: { typ: r.kind === 'scrapped' ? SCRAP_TYP : FAILED_ISSUANCE_TYP, kid: c.stationId, x5c: c.chain },
        });
        if (!jws.ok) return jws;
        if (db.setRevocationJws(r.requestId, jws.value)) {
          n++;
          log.log('info', `${r.kind} event signed; queued for revocation at the registry`, {
            requestId: r.requestId,
            runId: r.runId,
          });
        }
      }
      return ok(n);
    });
    signing = run.catch(() => ok(0));
    return run;
  }

  async function expireActiveRuns(): Promise<Result<ExpiredActiveRun[]>> {
    const lifetimeS = o.activeRunLifetimeS;
    const before = new Date(c.clock.now().getTime() - lifetimeS * 1000).toISOString();
    const ended: ExpiredActiveRun[] = [];
    const busy = o.inFlightChips?.() ?? new Set<string>();
    // Synchronous from the query to the last failRun: an attempt that identifies its board meanwhile sees the run
    // either still active and marked in flight (skipped here) or already failed (it starts a fresh run).
    for (const r of db.expiredActiveRuns(before)) {
      if (busy.has(r.chipId)) continue;
      try {
        c.store.failRun(r.runId, {
          code: 'FLOW_RUN_EXPIRED',
          message: `the board did not come back within ${lifetimeS} s of its certificate's issuance (${r.issuedAt})`,
          step: r.step,
        });
      } catch (e) {
        // The run ended meanwhile (a record, or another failure): nothing left to expire.
        if (isStoreError(e, 'run-not-active')) continue;
        if (isStoreError(e)) return err(e.error);
        throw e;
      }
      ended.push(r);
      log.log('warn', 'active run expired: run failed, its certificate queued for revocation', {
        runId: r.runId,
        chipId: r.chipId,
        certificateSerial: r.certificateSerial,
        issuedAt: r.issuedAt,
      });
    }
    if (ended.length) {
      const signed = await signFailedIssuances();
      if (!signed.ok) return signed;
    }
    return ok(ended);
  }

  /** Per-event answers: only revoked/duplicate are done; a rejected one stays queued with the reason. */
  function applyRevocationResults(results: readonly RevocationAnswer[], requestIds: readonly string[]): number {
    let done = 0;
    for (const id of requestIds) {
      const got = results.find((x) => x.requestId === id);
      if (got && (got.status === 'revoked' || got.status === 'duplicate')) {
        db.setRevocationState(id, 'acknowledged', null);
        done++;
      } else {
        const why = got ? `rejected: ${String(got.reason ?? '')} ${String(got.message ?? '')}`.trim() : 'no result';
        db.setRevocationState(id, 'queued', why);
        log.log('warn', 'revocation event not accepted by the registry; kept queued', { requestId: id, why });
      }
    }
    return done;
  }

  async function sendRevocations(signal?: AbortSignal): Promise<Result<{ sent: number; unsupported: boolean }>> {
    const signed = await signFailedIssuances();
    if (!signed.ok) return signed;
    const queued = sendable();
    if (!queued.length) return ok({ sent: 0, unsupported: false });
    if (!c.client) return fail('CONFIG_INVALID', 'no registry URL is configured');
    const r = await c.client.sendRevocations({ requests: queued.map((q) => q.jws!) }, signal);
    if (!r.ok && r.error.status === 404) {
      // The registry has no station revocation endpoint (yet): the requests stay queued (docs/lifecycle.md).
      for (const q of queued)
        db.setRevocationState(q.requestId, 'queued', 'the registry does not accept station revocation requests yet');
      return ok({ sent: 0, unsupported: true });
    }
    if (!r.ok) return err(r.error.error);
    const sent = applyRevocationResults(
      r.value,
      queued.map((q) => q.requestId),
    );
    return ok({ sent, unsupported: false });
  }

  return {
    signFailedIssuances,
    expireActiveRuns,
    sendRevocations,
    async revocationEvents(max) {
      const signed = await signFailedIssuances();
      if (!signed.ok) return signed;
      return ok(
        sendable()
          .slice(0, max)
          .map((r) => ({ requestId: r.requestId, jws: r.jws! })),
      );
    },
    applyRevocationResults,
    counts() {
      const all = db.revocations();
      return {
        queued: all.filter((r) => r.state === 'queued').length,
        sent: all.filter((r) => r.state === 'sent').length,
        acknowledged: all.filter((r) => r.state === 'acknowledged').length,
      };
    },
    hasQueued: () => db.revocations({ state: 'queued' }).some((q) => q.kind !== 'superseded'),
  };
}

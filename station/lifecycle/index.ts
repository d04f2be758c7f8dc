/**
 * Station side of the identity lifecycle (docs/lifecycle.md "Station side"): the parts composed.
 *
 * - policy pull (station/lifecycle/pull.ts): `GET /v1/station-status`, `/v1/policy` and `/v1/quotas` through the
 *   registry client (station/hq/client.ts), each verified with the registry certificate and stored (never rolled
 *   back);
 * - policy and quotas in force (policy.ts): revoked operators cannot sign in or provision, blocked / decommissioned
 *   serials and chip ids are refused at identify (FLOW_BLOCKED), allowed firmware digests per work order replace the
 *   work order file's; certificate profile overrides apply to the runs that start under the policy (snapshotted in
 *   the run); one unit per initial run is reserved in the createRun transaction, committed with the record, released
 *   when the run fails; past the quota FLOW_QUOTA_EXHAUSTED, also offline; revocation URLs for device certificates:
 *   the configured ones (`station enroll`), overridden by the policy's;
 * - revocation reaches the station (status.ts): only the registry's signed answer to THIS request counts; a
 *   revocation is kept for good and refuses every new or resumed run (FLOW_STATION_REVOKED), as does a listing in
 *   the policy in force; an unsigned `403 AUTH_STATION_REVOKED` (policy pull, sync) only triggers that check;
 * - revocation requests (revocations.ts, scrap.ts): a rework queues the superseded certificate (carried by the
 *   rotation record, which the registry supersedes on ingest); a scrap queues a signed scrap event; a run that fails
 *   holding a certificate queues a failed-issuance event (native/store failRun, same transaction), signed here.
 *   Scrap and failed-issuance events go to `POST /v1/revocations` online (also in the background) or in a bundle
 *   (`revocationEvents` / `applyRevocationResults`);
 * - active-run lifetime (revocations.ts): an active run holding a certificate no record names for longer than
 *   activeRunLifetimeS is failed with FLOW_RUN_EXPIRED (`expireActiveRuns`: engine open, each attempt, background
 *   loop, loop.ts), so its certificate takes the failed-issuance path above.
 *
 * May import: core/, native/store (lifecycle tables), station/hq/, station/lifecycle/*.
 */
import type { FlowGate } from '../../core/provisioning/flow.js';
import { systemClock, type Clock, type Logger, type Signer } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import type { Store } from '../../core/provisioning/store.js';
import type { WorkOrder } from '../../core/provisioning/work-order.js';
import {
  type LifecycleDb,
  type QuotaUsage,
  type ExpiredActiveRun,
  type RevocationRequest,
} from '../../native/store/lifecycle.js';
import type { RevocationUrls } from '../../core/pki/device-cert.js';
import type { PolicyPayload } from '../../core/hq/policy.js';
import { registryClientFor } from '../hq/client.js';
import {
  DEFAULT_ACTIVE_RUN_LIFETIME_S,
  type DocumentOutcome,
  type LifecycleContext,
  type PullOutcome,
  type StationStatusOutcome,
} from './context.js';
import { createLifecycleLoop } from './loop.js';
import { createPolicyKeeper } from './policy.js';
import { createPuller } from './pull.js';
import { createRevocationQueue, type RevocationAnswer } from './revocations.js';
import { scrapBoard, type ScrapRequest } from './scrap.js';
import { createStationStatus } from './status.js';

export type { ExpiredActiveRun, QuotaUsage, RevocationRequest } from '../../native/store/lifecycle.js';
export type { DocumentOutcome, PullOutcome, StationStatusOutcome } from './context.js';
export type { RevocationAnswer } from './revocations.js';
export type { ScrapRequest } from './scrap.js';

export interface StationLifecycleOptions {
  /** The lifecycle port of the station database (openStationDb); the caller owns and closes the connection. */
  readonly db: LifecycleDb;
  readonly stationId: string;
  /** Station signing key: signs LS-Sig requests and scrap events. */
  readonly signer: Signer;
  /** Station chain (DER, leaf first): x5c of scrap events. */
  readonly chain: readonly Uint8Array[];
  readonly registryUrl: string | null;
  readonly registryCertificate: Uint8Array | null;
  /** The pinned registry TLS certificate (DER), for an https registry URL (station/hq/transport.ts `checkRegistryUrl`). */
  readonly registryTlsCertificate?: Uint8Array | null;
  /** Refuse work orders without a signed quota (default false: unlimited, with a warning). */
  readonly requireQuota?: boolean;
  /** Background pull interval (seconds). */
  readonly pullIntervalS?: number;
  /**
   * How often the background loop ends expired active runs and looks for queued scrap / failed-issuance events to
   * send (seconds, default 5).
   */
  readonly revocationIntervalS?: number;
  /**
   * Longest an active run may hold a certificate that no record names, from its issuance (seconds, default
   * DEFAULT_ACTIVE_RUN_LIFETIME_S = 24 h): past it `expireActiveRuns` fails the run with FLOW_RUN_EXPIRED.
   */
  readonly activeRunLifetimeS?: number;
  /**
   * Chip ids of the boards a provisioning attempt of this station is working on now (the engine): their active runs
   * are not ended mid-attempt; the next check after the attempt ends them if they are still active and expired.
   */
  readonly inFlightChips?: () => ReadonlySet<string>;
  /** The Store: lifecycle events go to the audit trail. */
  readonly store: Store;
  readonly clock?: Clock;
  readonly logger: Logger;
  readonly timeoutMs?: number;
  /** CRL / OCSP URLs for device certificates from the station config (`revocation`, written by `station enroll`). */
  readonly revocationUrls?: RevocationUrls;
}

export interface LifecycleStatus {
  readonly policyVersion: number | null;
  readonly policyIssuedAt: string | null;
  readonly policyFetchedAt: string | null;
  readonly quotaVersion: number | null;
  readonly quotaFetchedAt: string | null;
  readonly requireQuota: boolean;
  readonly revokedOperators: number;
  readonly blockedSerials: number;
  readonly blockedChipIds: number;
  readonly firmwareOverrides: readonly string[];
  /** Board profile ids whose certificate profile the policy overrides. */
  readonly profileOverrides: readonly string[];
  /** Re-enrolment lifetimes from the policy, if it publishes them. */
  readonly reenrollment: PolicyPayload['reenrollment'] | null;
  /** The policy in force revokes this station (in effect now): it refuses to provision. */
  readonly stationRevoked: boolean;
  /** When (null: listed without a time); set only while stationRevoked. */
  readonly stationRevokedAt: string | null;
  /** What revokes it: the registry's signed station-status answer (kept for good) or the policy in force. */
  readonly stationRevokedBy: 'station-status' | 'policy' | null;
  /** When the registry last confirmed, signed and bound to our request, that this station is active (this run). */
  readonly registryConfirmedActiveAt: string | null;
  /** CRL / OCSP URLs put in device certificates now (`revocationUrls()`), or null: none. */
  readonly revocationUrls: RevocationUrls | null;
  readonly quotas: readonly QuotaUsage[];
  readonly revocations: { readonly queued: number; readonly sent: number; readonly acknowledged: number };
  readonly lastPullError: string | null;
}

export interface StationLifecycle {
  readonly db: LifecycleDb;
  /** The policy in force (verified when it was stored), or null. */
  policy(): PolicyPayload | null;
  status(): LifecycleStatus;
  /**
   * Ask the registry about this station (signed station-status answer), then fetch, verify, store and apply the
   * policy and the quotas (online). A revoked station: FLOW_STATION_REVOKED (the revocation is kept).
   */
  pull(signal?: AbortSignal): Promise<Result<PullOutcome>>;
  /**
   * `GET /v1/station-status`: the registry's signed answer to this request; a revocation is stored (terminal).
   * What the station does when any registry answer claims AUTH_STATION_REVOKED (never trusted unsigned).
   */
  checkRevocation(signal?: AbortSignal): Promise<Result<StationStatusOutcome>>;
  /** CRL / OCSP URLs for a device certificate issued now: the policy's (for this station) over the config's. */
  revocationUrls(): RevocationUrls | null;
  /** Verify, store and apply a policy JWS obtained another way (a file). */
  applyPolicy(jws: string): Promise<Result<DocumentOutcome>>;
  /** Verify and store a quota JWS obtained another way (a file). */
  applyQuotas(jws: string): Promise<Result<DocumentOutcome>>;
  /** The provisioning checks (blocked boards, quota admission). */
  readonly gate: FlowGate;
  /** FLOW_STATION_REVOKED when the policy in force revokes this station (revokedAt <= now). */
  checkStation(): Result<void>;
  /** AUTH_REVOKED when the policy revokes `operatorId`. */
  checkOperator(operatorId: string): Result<void>;
  /** The work order as the policy wants it (firmware digests replaced). */
  effectiveWorkOrder(wo: WorkOrder): WorkOrder;
  /** Work orders signed by headquarters with the quotas in force (PolicyKeeper.hqWorkOrders). */
  hqWorkOrders(): readonly WorkOrder[];
  /**
   * A scrapped board: its committed unit is marked scrapped (it stays used) and a signed scrap event asking
   * the registry to revoke its certificate is queued (null when the station has no record of the board).
   */
  scrap(p: ScrapRequest): Promise<Result<RevocationRequest | null>>;
  /** Send queued scrap and failed-issuance events (POST /v1/revocations, LS-Sig); superseded ones travel with their record. */
  sendRevocations(signal?: AbortSignal): Promise<Result<{ sent: number; unsupported: boolean }>>;
  /** Sign the failed-issuance events failRun queued (their payload as written); returns how many were signed. */
  signFailedIssuances(): Promise<Result<number>>;
  /**
   * End every active run whose oldest unrecorded certificate is older than the active-run lifetime: `failRun`
   * with FLOW_RUN_EXPIRED (its failed-issuance event is queued in that transaction), then sign the events.
   * Returns the runs ended. Called when the engine opens, before each provisioning attempt and by the background
   * loop (docs/lifecycle.md "Failed issuance").
   */
  expireActiveRuns(): Promise<Result<ExpiredActiveRun[]>>;
  /** The queued scrap and failed-issuance events, signed, for a bundle (at most `max`, oldest first). */
  revocationEvents(max: number): Promise<Result<{ requestId: string; jws: string }[]>>;
  /** Apply the registry's per-event answers (online or from a bundle receipt): revoked/duplicate are done. */
  applyRevocationResults(results: readonly RevocationAnswer[], requestIds: readonly string[]): number;
  /** Background pull (every pullIntervalS) while the station runs; idempotent. */
  start(): void;
  stop(): void;
  close(): void;
}

/** Open the station's lifecycle on its database. */
export function openLifecycle(o: StationLifecycleOptions): Result<StationLifecycle> {
  const clock = o.clock ?? systemClock;
  const log = o.logger;
  const db = o.db;
  const requireQuota = o.requireQuota === true;
  const client = registryClientFor(o, clock, o.timeoutMs ?? 15_000);
  const c: LifecycleContext = {
    db,
    stationId: o.stationId,
    signer: o.signer,
    chain: o.chain,
    registryCertificate: o.registryCertificate,
    client,
    store: o.store,
    clock,
    log,
  };
  const policy = createPolicyKeeper(c, { requireQuota, revocationUrls: o.revocationUrls });
  const station = createStationStatus(c, policy);
  const puller = createPuller(c, policy, station);
  const queue = createRevocationQueue(c, {
    activeRunLifetimeS: o.activeRunLifetimeS ?? DEFAULT_ACTIVE_RUN_LIFETIME_S,
    inFlightChips: o.inFlightChips,
  });
  const loop = createLifecycleLoop({
    log,
    online: client !== null,
    pullIntervalS: o.pullIntervalS ?? 300,
    revocationIntervalS: o.revocationIntervalS ?? 5,
    expireActiveRuns: queue.expireActiveRuns,
    hasQueued: queue.hasQueued,
    sendRevocations: () => queue.sendRevocations(),
    pull: () => puller.pull(),
    lastPullError: puller.lastError,
  });
  const gate: FlowGate = {
    stationRevoked: station.revokedError,
    policy: () => policy.current()?.run ?? null,
    blocked: policy.blocked,
    admit: policy.admit,
  };

  const lc: StationLifecycle = {
    db,
    policy: () => policy.current()?.policy ?? null,
    checkStation() {
      const e = station.revokedError();
      return e ? { ok: false, error: e } : ok(undefined);
    },
    status() {
      const p = db.document('policy');
      const q = db.document('quotas');
      const cur = policy.current(p);
      const rev = station.revocation(cur);
      return {
        policyVersion: p?.version ?? null,
        policyIssuedAt: p?.issuedAt ?? null,
        policyFetchedAt: p?.fetchedAt ?? null,
        quotaVersion: q?.version ?? null,
        quotaFetchedAt: q?.fetchedAt ?? null,
        requireQuota,
        revokedOperators: cur?.operators.size ?? 0,
        blockedSerials: cur?.serials.size ?? 0,
        blockedChipIds: cur?.chips.size ?? 0,
        firmwareOverrides: cur ? Object.keys(cur.policy.firmware) : [],
        profileOverrides: cur ? Object.keys(cur.policy.profileOverrides) : [],
        reenrollment: cur?.policy.reenrollment ?? null,
        stationRevoked: rev !== null,
        stationRevokedAt: rev?.revokedAt ?? null,
        stationRevokedBy: rev?.by ?? null,
        registryConfirmedActiveAt: station.confirmedActiveAt(),
        revocationUrls: policy.revocationUrls(),
        quotas: db.listUsage(),
        revocations: queue.counts(),
        lastPullError: puller.lastError(),
      };
    },
    pull: puller.pull,
    checkRevocation: station.checkRevocation,
    revocationUrls: policy.revocationUrls,
    applyPolicy: policy.applyPolicy,
    applyQuotas: policy.applyQuotas,
    gate,
    checkOperator: policy.checkOperator,
    effectiveWorkOrder: policy.effectiveWorkOrder,
    hqWorkOrders: policy.hqWorkOrders,
    scrap: (p) => scrapBoard(c, queue.signFailedIssuances, p),
    sendRevocations: queue.sendRevocations,
    signFailedIssuances: queue.signFailedIssuances,
    expireActiveRuns: queue.expireActiveRuns,
    revocationEvents: queue.revocationEvents,
    applyRevocationResults: queue.applyRevocationResults,
    start: loop.start,
    stop: loop.stop,
    close() {
      loop.stop();
    },
  };
  return ok(lc);
}

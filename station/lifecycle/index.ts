/**
 * Station side of the identity lifecycle (docs/lifecycle.md "Station side"):
 *
 * - policy pull: `GET /v1/policy` (LS-Sig), verified with the registry certificate, stored (never rolled back)
 *   and applied before provisioning: revoked operators cannot sign in or provision, blocked / decommissioned
 *   serials and chip ids are refused at identify (FLOW_BLOCKED), allowed firmware digests per work order
 *   replace the work order file's; certificate profile overrides apply to the runs that start under the policy
 *   (snapshotted in the run); a station the policy revokes refuses to provision (FLOW_STATION_REVOKED);
 * - revocation reaches the station: every pull first asks `GET /v1/station-status` (answered to a revoked station
 *   too); only the registry's signed answer to THIS request (its LS-Sig nonce and time echoed, this station id)
 *   counts. A revocation is kept for good (station_revocation, terminal) and refuses every new or resumed run; an
 *   unsigned `403 AUTH_STATION_REVOKED` (policy pull, sync) only triggers that check;
 * - revocation URLs for device certificates: the configured ones (`station enroll`), overridden by the policy's;
 * - quotas: `GET /v1/quotas` (LS-Sig), stored; one unit per initial run is reserved in the createRun
 *   transaction, committed with the record, released when the run fails; past the quota: FLOW_QUOTA_EXHAUSTED,
 *   also offline (the last signed quota stays in force);
 * - revocation requests: a rework queues the superseded certificate (carried by the rotation record, which the
 *   registry supersedes on ingest); a scrap queues a signed scrap event; a run that fails holding a certificate
 *   queues a failed-issuance event (native/store failRun, same transaction), which this module signs and sends.
 *   Scrap and failed-issuance events go to `POST /v1/revocations` online (`sendRevocations`, also in the
 *   background) or in a bundle (`revocationEvents` / `applyRevocationResults`);
 * - active-run lifetime: an active run holding a certificate no record names for longer than activeRunLifetimeS
 *   is failed with FLOW_RUN_EXPIRED (`expireActiveRuns`: engine open, each attempt, background loop), so its
 *   certificate takes the failed-issuance path above.
 */
import { SCRAP_SCHEMA, SCRAP_TYP } from '../../core/hq/scrap.js';
import { randomUUID } from 'node:crypto';
import { sha256Hex, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { FAILED_ISSUANCE_TYP } from '../../core/failed-issuance.js';
import { fail, stationError, type StationError } from '../../core/errors.js';
import type { FlowGate, RunPolicy } from '../../core/provisioning/flow.js';
import { signJws } from '../../core/pki/jws.js';
import type { BoardIdentity } from '../../core/model.js';
import { systemClock, type Clock, type Logger, type Signer } from '../../core/ports.js';
import { err, ok, type Result } from '../../core/result.js';
import type { Store } from '../../core/provisioning/store.js';
import type { WorkOrder } from '../../core/provisioning/work-order.js';
import {
  openLifecycleDb,
  type LifecycleDb,
  type QuotaUsage,
  type ExpiredActiveRun,
  type RevocationRequest,
  type StoreDocumentOutcome,
} from '../../native/store/lifecycle.js';
import { isStoreError, sha256HexSync } from '../../native/store/index.js';
import { DEFAULT_ACTIVE_RUN_LIFETIME_S } from '../config.js';
import {
  requestClaimsOf,
  RevocationsResponseSchema,
  signRequest,
  STATION_STATUS_PATH,
  type RequestClaims,
} from '../../core/hq/protocol.js';
import { exchangeError, httpExchange, pinnedAudience, registryErrorOf } from '../sync.js';
import { renderRevocationUrls, type RevocationUrls } from '../../core/pki/device-cert.js';
import {
  stationRevocation,
  verifyPolicy,
  verifyQuotas,
  verifyStationStatus,
  type PolicyPayload,
} from '../../core/hq/policy.js';

export * from '../../core/hq/policy.js';
export type { ExpiredActiveRun, QuotaUsage, RevocationRequest } from '../../native/store/lifecycle.js';

export interface StationLifecycleOptions {
  /** The station database (already migrated by the Store). */
  readonly dbFile: string;
  readonly stationId: string;
  /** Station signing key: signs LS-Sig requests and scrap events. */
  readonly signer: Signer;
  /** Station chain (DER, leaf first): x5c of scrap events. */
  readonly chain: readonly Uint8Array[];
  readonly registryUrl: string | null;
  readonly registryCertificate: Uint8Array | null;
  /** The pinned registry TLS certificate (DER), for an https registry URL (station/sync.ts `checkRegistryUrl`). */
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

/** The registry's signed answer about this station (GET /v1/station-status), verified. */
export interface StationStatusOutcome {
  readonly status: 'active' | 'revoked';
  readonly revokedAt: string | null;
  /** The answer's issuedAt (registry clock). */
  readonly issuedAt: string;
}

export interface DocumentOutcome {
  readonly version: number;
  /** stored: newer, now in force; same: the version in force; older: ignored (never rolled back). */
  readonly outcome: StoreDocumentOutcome;
}

export interface PullOutcome {
  readonly policy: DocumentOutcome;
  readonly quotas: DocumentOutcome;
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
  /**
   * A scrapped board: its committed unit is marked scrapped (it stays used) and a signed scrap event asking
   * the registry to revoke its certificate is queued (null when the station has no record of the board).
   */
  scrap(p: {
    chipId: string;
    serialNumber: string;
    reason: string;
    supervisor: string;
    operator: string;
  }): Promise<Result<RevocationRequest | null>>;
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
  applyRevocationResults(
    results: readonly { requestId: string | null; status: string; reason?: string | null; message?: string | null }[],
    requestIds: readonly string[],
  ): number;
  /** Background pull (every pullIntervalS) while the station runs; idempotent. */
  start(): void;
  stop(): void;
  close(): void;
}

/** Open the station's lifecycle on its database. */
export function openLifecycle(o: StationLifecycleOptions): Result<StationLifecycle> {
  const clock = o.clock ?? systemClock;
  const log = o.logger;
  const dbR = openLifecycleDb(o.dbFile, { clock });
  if (!dbR.ok) return dbR;
  const db = dbR.value;
  const requireQuota = o.requireQuota === true;
  const baseUrl = o.registryUrl ? o.registryUrl.replace(/\/+$/, '') : null;
  const timeoutMs = o.timeoutMs ?? 15_000;
  let lastPullError: string | null = null;
  let confirmedActiveAt: string | null = null;
  let timer: NodeJS.Timeout | null = null;
  let revTimer: NodeJS.Timeout | null = null;
  let running = false;
  const warnedNoQuota = new Set<string>();

  // The policy in force, parsed once per version (another process, e.g. `station policy --pull`, may store one).
  let cached: {
    key: string;
    policy: PolicyPayload;
    serials: Set<string>;
    chips: Set<string>;
    operators: Set<string>;
    run: RunPolicy;
  } | null = null;
  const current = (doc = db.document('policy')) => {
    if (!doc) return null;
    const key = `${doc.version}:${doc.issuedAt}`;
    if (cached?.key !== key) {
      const policy = JSON.parse(doc.payloadJson) as PolicyPayload;
      cached = {
        key,
        policy,
        serials: new Set(policy.blocked.serials),
        chips: new Set(policy.blocked.chipIds),
        operators: new Set(policy.revokedOperators.map((x) => x.operatorId)),
        run: {
          version: policy.version,
          sha256: sha256HexSync(doc.payloadJson),
          profileOverrides: policy.profileOverrides,
        },
      };
    }
    return cached;
  };

  async function applyPolicy(jws: string): Promise<Result<DocumentOutcome>> {
    if (!o.registryCertificate)
      return fail('CONFIG_INVALID', 'no registry certificate is configured: run station enroll --registry-cert FILE');
    const v = await verifyPolicy(jws, o.registryCertificate);
    if (!v.ok) {
      log.log('warn', 'policy refused: it does not verify; the policy in force is kept', { message: v.error.message });
      return v;
    }
    const p = v.value.payload;
    const outcome = db.storePolicy(
      { version: p.version, jws: jws.trim(), payloadJson: v.value.json, issuedAt: p.issuedAt },
      p.revokedOperators.map((x) => x.operatorId),
    );
    if (outcome === 'older') {
      log.log('warn', 'older policy ignored (policies never roll back)', {
        offered: p.version,
        inForce: db.document('policy')?.version,
      });
    } else if (outcome === 'stored') {
      // Listed at all (also with a revocation time still in the future): audited and logged now.
      const revoked = p.revokedStations.find((x) => x.stationId === o.stationId);
      o.store.appendAudit('policy.applied', {
        version: p.version,
        issuedAt: p.issuedAt,
        registryId: p.registryId,
        sha256: await sha256Hex(utf8(v.value.json)),
        revokedOperators: p.revokedOperators.length,
        blockedSerials: p.blocked.serials.length,
        blockedChipIds: p.blocked.chipIds.length,
        firmwareWorkOrders: Object.keys(p.firmware),
        profileOverrides: Object.keys(p.profileOverrides),
        ...(revoked ? { stationRevokedAt: revoked.revokedAt } : {}),
      });
      log.log('info', 'policy applied', { version: p.version });
      if (revoked)
        log.log('error', 'this station has been revoked by headquarters: it refuses to provision', {
          revokedAt: revoked.revokedAt,
          policyVersion: p.version,
        });
    }
    return ok({ version: p.version, outcome });
  }

  async function applyQuotas(jws: string): Promise<Result<DocumentOutcome>> {
    if (!o.registryCertificate)
      return fail('CONFIG_INVALID', 'no registry certificate is configured: run station enroll --registry-cert FILE');
    const v = await verifyQuotas(jws, o.registryCertificate, o.stationId);
    if (!v.ok) {
      log.log('warn', 'quotas refused: they do not verify; the quotas in force are kept', { message: v.error.message });
      return v;
    }
    const p = v.value.payload;
    const outcome = db.storeQuotas(
      { version: p.version, jws: jws.trim(), payloadJson: v.value.json, issuedAt: p.issuedAt },
      p.quotas,
    );
    if (outcome === 'older') log.log('warn', 'older quotas ignored', { offered: p.version });
    else if (outcome === 'stored') {
      o.store.appendAudit('quotas.applied', { version: p.version, issuedAt: p.issuedAt, quotas: p.quotas });
      log.log('info', 'quotas applied', { version: p.version, quotas: p.quotas.length });
    }
    return ok({ version: p.version, outcome });
  }

  /**
   * GET a station-authenticated lifecycle document; answers the `jws` of `{jws, ...}` and the claims of the LS-Sig
   * request it answers. A refusal is SYNC_REJECTED / SYNC_UNREACHABLE with details {status, code}.
   */
  async function fetchDocument(
    path: string,
    signal?: AbortSignal,
  ): Promise<Result<{ jws: string; claims: RequestClaims }>> {
    if (!baseUrl) return fail('CONFIG_INVALID', 'no registry URL is configured: run station enroll --registry URL');
    const audience = await pinnedAudience(o.registryCertificate);
    if (!audience.ok) return audience;
    const auth = await signRequest(o.signer, o.stationId, 'GET', path, '', clock, audience.value);
    if (!auth.ok) return auth;
    const claims = requestClaimsOf(auth.value);
    if (!claims) return fail('INTERNAL', 'the request signature just made has no claims');
    let res: { status: number; text: string };
    try {
      res = await httpExchange(`${baseUrl}${path}`, {
        method: 'GET',
        tls: o.registryTlsCertificate ?? null,
        headers: { authorization: auth.value },
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      return err(exchangeError(e, `GET ${path}`));
    }
    if (res.status !== 200) {
      const { code, message } = registryErrorOf(res);
      return fail(
        res.status >= 500 ? 'SYNC_UNREACHABLE' : 'SYNC_REJECTED',
        `GET ${path}: registry answered ${res.status} ${code}: ${message}`,
        { status: res.status, code },
      );
    }
    try {
      const body = JSON.parse(res.text) as { jws?: unknown };
      if (typeof body.jws !== 'string') throw new Error('no jws');
      return ok({ jws: body.jws, claims });
    } catch {
      return fail('INPUT_INVALID', `GET ${path}: the answer is not {jws}`);
    }
  }

  /** The refusal's registry code (fetchDocument details), e.g. AUTH_STATION_REVOKED. */
  const registryCode = (r: Result<unknown>): unknown =>
    r.ok ? null : (r.error.details as { code?: unknown } | undefined)?.code;

  async function checkRevocation(signal?: AbortSignal): Promise<Result<StationStatusOutcome>> {
    if (!o.registryCertificate)
      return fail('CONFIG_INVALID', 'no registry certificate is configured: run station enroll --registry-cert FILE');
    const got = await fetchDocument(STATION_STATUS_PATH, signal);
    if (!got.ok) {
      // A 403 here is unsigned: nothing is concluded from it (only a signed answer revokes).
      log.log('warn', 'station status: no signed answer from the registry; nothing changes', {
        error: `${got.error.code}: ${got.error.message}`,
      });
      return got;
    }
    const v = await verifyStationStatus(got.value.jws, o.registryCertificate, o.stationId, got.value.claims);
    if (!v.ok) {
      log.log('warn', 'station status refused: it does not verify or does not answer this request', {
        message: v.error.message,
      });
      return v;
    }
    const p = v.value.payload;
    const kept = db.stationRevocation(o.stationId);
    if (p.status === 'revoked' && p.revokedAt) {
      if (!kept) {
        const row = db.storeStationRevocation({
          stationId: o.stationId,
          revokedAt: p.revokedAt,
          jws: got.value.jws.trim(),
        });
        o.store.appendAudit('station.revoked', {
          stationId: o.stationId,
          revokedAt: row.revokedAt,
          registryId: p.registryId,
          issuedAt: p.issuedAt,
          statusSha256: await sha256Hex(utf8(row.jws)),
        });
        log.log(
          'error',
          'this station has been revoked by headquarters (signed answer of the registry): it refuses to provision',
          {
            revokedAt: row.revokedAt,
          },
        );
      }
      confirmedActiveAt = null;
    } else if (kept) {
      // Terminal: no answer, even a signed one, un-revokes a station (headquarters enrols a new station instead).
      log.log('warn', 'the registry answers "active" but this station holds its signed revocation: it stays revoked', {
        revokedAt: kept.revokedAt,
      });
    } else confirmedActiveAt = clock.now().toISOString();
    return ok({ status: p.status, revokedAt: p.revokedAt, issuedAt: p.issuedAt });
  }

  /**
   * This station's revocation: the registry's signed station-status answer kept (terminal), else the listing in the
   * policy in force (or in `c`, that policy already loaded) when in effect now.
   */
  const revocation = (
    c = current(),
  ): { revokedAt: string | null; policyVersion: number | null; by: 'station-status' | 'policy' } | null => {
    const kept = db.stationRevocation(o.stationId);
    if (kept) return { revokedAt: kept.revokedAt, policyVersion: null, by: 'station-status' };
    const r = c ? stationRevocation(c.policy, o.stationId, clock.now()) : null;
    return r && c ? { ...r, policyVersion: c.policy.version, by: 'policy' } : null;
  };
  const revokedError = (): StationError | null => {
    const r = revocation();
    if (!r) return null;
    const by = r.policyVersion === null ? 'signed answer of the registry' : `policy version ${r.policyVersion}`;
    return stationError(
      'FLOW_STATION_REVOKED',
      `this station (${o.stationId}) has been revoked by headquarters${r.revokedAt ? ` at ${r.revokedAt}` : ''} (${by}); contact your supervisor`,
      { stationId: o.stationId, revokedAt: r.revokedAt, policyVersion: r.policyVersion },
    );
  };

  const gate: FlowGate = {
    stationRevoked: revokedError,
    policy: () => current()?.run ?? null,
    blocked(identity: BoardIdentity): StationError | null {
      const c = current();
      if (!c) return null;
      const bySerial = c.serials.has(identity.serialNumber);
      if (!bySerial && !c.chips.has(identity.chipId)) return null;
      log.log('warn', 'board refused: blocked by the policy', {
        serialNumber: identity.serialNumber,
        chipId: identity.chipId,
        policyVersion: c.policy.version,
      });
      return stationError(
        'FLOW_BLOCKED',
        `board ${identity.serialNumber} is blocked or decommissioned by headquarters (policy version ${c.policy.version}, by ${bySerial ? 'serial' : 'chip id'})`,
        { serialNumber: identity.serialNumber, chipId: identity.chipId, policyVersion: c.policy.version },
      );
    },
    admit(run) {
      if (run.kind !== 'initial') return null; // a rework re-uses the board's unit
      const u = db.usage(run.workOrder);
      if (u.quantity === null) {
        if (requireQuota)
          return stationError(
            'FLOW_QUOTA_EXHAUSTED',
            `work order ${run.workOrder} has no quota from the registry and this station requires one (lifecycle.requireQuota)`,
            { workOrder: run.workOrder, quantity: null },
          );
        if (!warnedNoQuota.has(run.workOrder)) {
          warnedNoQuota.add(run.workOrder);
          log.log(
            'warn',
            'work order has no quota from the registry: unlimited (set lifecycle.requireQuota to refuse)',
            {
              workOrder: run.workOrder,
            },
          );
        }
        return null;
      }
      if ((u.remaining ?? 0) > 0) return null;
      return stationError(
        'FLOW_QUOTA_EXHAUSTED',
        `work order ${run.workOrder}: quota ${u.quantity} used up (${u.committed} provisioned, ${u.reserved} in progress)`,
        { workOrder: run.workOrder, quantity: u.quantity, committed: u.committed, reserved: u.reserved },
      );
    },
  };

  const revCounts = () => {
    const all = db.revocations();
    return {
      queued: all.filter((r) => r.state === 'queued').length,
      sent: all.filter((r) => r.state === 'sent').length,
      acknowledged: all.filter((r) => r.state === 'acknowledged').length,
    };
  };

  /** Queued scrap and failed-issuance events that carry a signature (superseded ones travel with their record). */
  const sendable = () => db.revocations({ state: 'queued' }).filter((r) => r.kind !== 'superseded' && r.jws !== null);

  /** Serialised: two callers (the background loop, a scrap) never sign the same event twice. */
  let signing: Promise<Result<number>> = Promise.resolve(ok(0));
  function signFailedIssuances(): Promise<Result<number>> {
    const run = signing.then(async (): Promise<Result<number>> => {
      let n = 0;
      for (const r of db.revocations({ kind: 'failed-issuance' })) {
        if (r.jws !== null || r.payloadJson === null) continue;
        // The payload is signed exactly as failRun wrote it (its SHA-256 is in the cert.failed-issuance audit entry).
        const jws = await signJws({
          signer: o.signer,
          payload: utf8(r.payloadJson),
          header: { typ: FAILED_ISSUANCE_TYP, kid: o.stationId, x5c: o.chain },
        });
        if (!jws.ok) return jws;
        if (db.setRevocationJws(r.requestId, jws.value)) {
          n++;
          log.log('info', 'failed-issuance event signed; queued for revocation at the registry', {
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

  const lifetimeS = o.activeRunLifetimeS ?? DEFAULT_ACTIVE_RUN_LIFETIME_S;
  async function expireActiveRuns(): Promise<Result<ExpiredActiveRun[]>> {
    const before = new Date(clock.now().getTime() - lifetimeS * 1000).toISOString();
    const ended: ExpiredActiveRun[] = [];
    const busy = o.inFlightChips?.() ?? new Set<string>();
    // Synchronous from the query to the last failRun: an attempt that identifies its board meanwhile sees the run
    // either still active and marked in flight (skipped here) or already failed (it starts a fresh run).
    for (const r of db.expiredActiveRuns(before)) {
      if (busy.has(r.chipId)) continue;
      try {
        o.store.failRun(r.runId, {
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
  function applyRevocationResults(
    results: Parameters<StationLifecycle['applyRevocationResults']>[0],
    requestIds: readonly string[],
  ): number {
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

  const lc: StationLifecycle = {
    db,
    policy: () => current()?.policy ?? null,
    checkStation() {
      const e = revokedError();
      return e ? { ok: false, error: e } : ok(undefined);
    },
    status() {
      const p = db.document('policy');
      const q = db.document('quotas');
      const c = current(p);
      const rev = revocation(c);
      return {
        policyVersion: p?.version ?? null,
        policyIssuedAt: p?.issuedAt ?? null,
        policyFetchedAt: p?.fetchedAt ?? null,
        quotaVersion: q?.version ?? null,
        quotaFetchedAt: q?.fetchedAt ?? null,
        requireQuota,
        revokedOperators: c?.operators.size ?? 0,
        blockedSerials: c?.serials.size ?? 0,
        blockedChipIds: c?.chips.size ?? 0,
        firmwareOverrides: c ? Object.keys(c.policy.firmware) : [],
        profileOverrides: c ? Object.keys(c.policy.profileOverrides) : [],
        reenrollment: c?.policy.reenrollment ?? null,
        stationRevoked: rev !== null,
        stationRevokedAt: rev?.revokedAt ?? null,
        stationRevokedBy: rev?.by ?? null,
        registryConfirmedActiveAt: confirmedActiveAt,
        revocationUrls: lc.revocationUrls(),
        quotas: db.listUsage(),
        revocations: revCounts(),
        lastPullError,
      };
    },
    async pull(signal) {
      // First the signed station status (a registry without the route, 404, is older: the policy decides).
      const sr = await checkRevocation(signal);
      if (!sr.ok && registryCode(sr) !== 'NOT_FOUND') {
        lastPullError = `${sr.error.code}: ${sr.error.message}`;
        return sr;
      }
      const revoked = () => {
        const e = revokedError();
        if (e) lastPullError = `${e.code}: ${e.message}`;
        return e ? { ok: false as const, error: e } : null;
      };
      const before = revoked();
      if (before) return before;
      const pj = await fetchDocument('/v1/policy', signal);
      // Revoked since the status answer? An unsigned 403 only triggers the signed check.
      if (registryCode(pj) === 'AUTH_STATION_REVOKED') {
        await checkRevocation(signal);
        const since = revoked();
        if (since) return since;
      }
      const qj = pj.ok ? await fetchDocument('/v1/quotas', signal) : pj;
      const pr = pj.ok ? await applyPolicy(pj.value.jws) : pj;
      const qr = qj.ok ? await applyQuotas(qj.value.jws) : qj;
      if (!pr.ok || !qr.ok) {
        const e = (!pr.ok ? pr : qr) as { ok: false; error: StationError };
        lastPullError = `${e.error.code}: ${e.error.message}`;
        return e;
      }
      lastPullError = null;
      return ok({ policy: pr.value, quotas: qr.value });
    },
    checkRevocation,
    revocationUrls() {
      const t = current()?.policy.revocationUrls;
      const fromPolicy = t ? renderRevocationUrls(t, o.stationId) : null;
      const merged = { ...o.revocationUrls, ...fromPolicy };
      return merged.crl || merged.ocsp ? merged : null;
    },
    applyPolicy,
    applyQuotas,
    gate,
    checkOperator(operatorId) {
      const c = current();
      if (c?.operators.has(operatorId))
        return fail(
          'AUTH_REVOKED',
          `operator ${operatorId} has been revoked by headquarters (policy version ${c.policy.version})`,
          {
            operatorId,
          },
        );
      return ok(undefined);
    },
    effectiveWorkOrder(wo) {
      const allowed = current()?.policy.firmware[wo.id];
      if (!allowed) return wo;
      const firmware = Object.fromEntries(Object.keys(wo.baseline.firmware).map((slot) => [slot, [...allowed]]));
      return { ...wo, baseline: { ...wo.baseline, firmware } };
    },
    async scrap(p) {
      // A run in flight for the board ends here without a record: failRun queues the failed-issuance event of a
      // certificate it holds (same transaction), signed and sent below / by the next sync.
      const active = o.store.findActiveRun(p.chipId);
      if (active) {
        o.store.failRun(active.runId, {
          code: 'FLOW_RUN_ABANDONED',
          message: `board scrapped by supervisor ${p.supervisor}: ${p.reason}`.slice(0, 512),
          step: active.step,
        });
        await signFailedIssuances();
      }
      const units = db.markScrapped(p.chipId);
      const rec = o.store.findCurrentRecord(p.chipId);
      if (!rec) {
        o.store.appendAudit('board.scrapped', { ...p, certificateSerial: null, units });
        return ok(null);
      }
      const parsed = JSON.parse(rec.recordJson) as { certificate?: { sha256?: string } };
      const requestId = randomUUID();
      const payload = {
        schema: SCRAP_SCHEMA,
        requestId,
        stationId: o.stationId,
        chipId: p.chipId,
        serialNumber: p.serialNumber,
        recordId: rec.recordId,
        certificateSerial: rec.certificateSerial,
        certificateSha256: parsed.certificate?.sha256 ?? null,
        reason: 'cessationOfOperation',
        note: p.reason,
        supervisor: p.supervisor,
        operator: p.operator,
        scrappedAt: clock.now().toISOString(),
      };
      const jws = await signJws({
        signer: o.signer,
        payload: utf8(canonicalJson(payload)),
        header: { typ: SCRAP_TYP, kid: o.stationId, x5c: o.chain },
      });
      if (!jws.ok) return jws;
      const req = db.queueRevocation({
        requestId,
        kind: 'scrapped',
        chipId: p.chipId,
        serialNumber: p.serialNumber,
        certificateSerial: rec.certificateSerial,
        reason: 'cessationOfOperation',
        recordId: null,
        jws: jws.value,
      });
      o.store.appendAudit('board.scrapped', {
        ...p,
        recordId: rec.recordId,
        certificateSerial: rec.certificateSerial,
        revocationRequest: requestId,
        scrapEventSha256: await sha256Hex(utf8(jws.value)),
        units,
      });
      log.log('info', 'scrap queued for revocation at the registry', { chipId: p.chipId, requestId });
      return ok(req);
    },
    async sendRevocations(signal) {
      const signed = await signFailedIssuances();
      if (!signed.ok) return signed;
      const queued = sendable();
      if (!queued.length) return ok({ sent: 0, unsupported: false });
      if (!baseUrl) return fail('CONFIG_INVALID', 'no registry URL is configured');
      const body = JSON.stringify({ requests: queued.map((r) => r.jws) });
      const audience = await pinnedAudience(o.registryCertificate);
      if (!audience.ok) return audience;
      const auth = await signRequest(o.signer, o.stationId, 'POST', '/v1/revocations', body, clock, audience.value);
      if (!auth.ok) return auth;
      let res: { status: number; text: string };
      try {
        res = await httpExchange(`${baseUrl}/v1/revocations`, {
          method: 'POST',
          tls: o.registryTlsCertificate ?? null,
          headers: { 'content-type': 'application/json', authorization: auth.value },
          body,
          signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
        });
      } catch (e) {
        return err(exchangeError(e, 'POST /v1/revocations'));
      }
      if (res.status === 404) {
        // The registry has no station revocation endpoint (yet): the requests stay queued (docs/lifecycle.md).
        for (const r of queued)
          db.setRevocationState(r.requestId, 'queued', 'the registry does not accept station revocation requests yet');
        return ok({ sent: 0, unsupported: true });
      }
      if (res.status !== 200)
        return fail(
          res.status >= 500 ? 'SYNC_UNREACHABLE' : 'SYNC_REJECTED',
          `POST /v1/revocations: ${res.status} ${res.text.slice(0, 200)}`,
        );
      let results: Parameters<StationLifecycle['applyRevocationResults']>[0] = [];
      try {
        const parsed = RevocationsResponseSchema.safeParse(JSON.parse(res.text));
        if (parsed.success) results = parsed.data.results;
      } catch {
        /* handled below: no results means nothing is marked */
      }
      const sent = applyRevocationResults(
        results,
        queued.map((r) => r.requestId),
      );
      return ok({ sent, unsupported: false });
    },
    signFailedIssuances,
    expireActiveRuns,
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
    start() {
      if (running) return;
      running = true;
      // Active runs past their lifetime end (also offline: their events wait for the next sync or bundle), and
      // queued scrap / failed-issuance events go out soon after they are queued (not only at the next pull).
      const revEvery = (o.revocationIntervalS ?? 5) * 1000;
      const revTick = () => {
        const go = expireActiveRuns()
          .then((r) => {
            if (!r.ok) log.log('warn', 'expired active runs not ended yet', { code: r.error.code });
            // Stopped (and maybe closed) while the runs were being ended: the database is not touched again.
            const pending =
              running && baseUrl && db.revocations({ state: 'queued' }).some((q) => q.kind !== 'superseded');
            return pending
              ? lc.sendRevocations().then((s) => {
                  if (!s.ok) log.log('warn', 'revocation events not sent; kept queued', { code: s.error.code });
                })
              : undefined;
          })
          .catch((e: unknown) => {
            if (running) log.log('error', 'background lifecycle tick failed', { error: (e as Error).message });
          });
        void go.then(() => {
          if (!running) return;
          revTimer = setTimeout(revTick, revEvery);
          revTimer.unref?.();
        });
      };
      revTimer = setTimeout(revTick, 0);
      revTimer.unref?.();
      if (!baseUrl) return;
      const every = (o.pullIntervalS ?? 300) * 1000;
      const tick = () => {
        void lc.pull().then((r) => {
          if (!r.ok) log.log('warn', 'policy pull failed; the policy in force stays', { error: lastPullError });
          if (!running) return;
          timer = setTimeout(tick, every);
          timer.unref?.();
        });
      };
      timer = setTimeout(tick, 0);
      timer.unref?.();
    },
    stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
      if (revTimer) clearTimeout(revTimer);
      revTimer = null;
    },
    close() {
      lc.stop();
      db.close();
    },
  };
  return ok(lc);
}

/**
 * The registry's policy and quotas at the station (docs/lifecycle.md "Policy", "Quotas"): verify and store a policy
 * or quota JWS (never rolled back), the policy in force parsed once per version, and what it decides before
 * provisioning: blocked boards (FLOW_BLOCKED), quota admission (FLOW_QUOTA_EXHAUSTED), revoked operators
 * (AUTH_REVOKED), firmware digests per work order, the run's policy snapshot, and revocation URLs.
 *
 * May import: core/ (hq policy, errors, result, provisioning and pki types), native/store (sha256HexSync),
 * station/lifecycle/context.ts.
 */
import { sha256Hex, utf8 } from '../../core/bytes.js';
import { fail, stationError, type StationError } from '../../core/errors.js';
import type { BoardIdentity } from '../../core/model.js';
import type { FlowGate, RunPolicy } from '../../core/provisioning/flow.js';
import type { WorkOrder } from '../../core/provisioning/work-order.js';
import { ok, type Result } from '../../core/result.js';
import { renderRevocationUrls, type RevocationUrls } from '../../core/pki/device-cert.js';
import { verifyPolicy, verifyQuotas, type PolicyPayload, type QuotaPayload } from '../../core/hq/policy.js';
import { canonicalJson } from '../../core/canonical.js';
import { sha256HexSync } from '../../native/store/index.js';
import { NO_REGISTRY_CERT, type DocumentOutcome, type LifecycleContext } from './context.js';

/** The policy in force, parsed once per version. */
export interface PolicyInForce {
  readonly key: string;
  readonly policy: PolicyPayload;
  readonly serials: ReadonlySet<string>;
  readonly chips: ReadonlySet<string>;
  readonly operators: ReadonlySet<string>;
  readonly run: RunPolicy;
}

export interface PolicyKeeper {
  /** The policy in force (another process, e.g. `station policy --pull`, may have stored a newer one), or null. */
  current(doc?: ReturnType<LifecycleContext['db']['document']>): PolicyInForce | null;
  applyPolicy(jws: string): Promise<Result<DocumentOutcome>>;
  applyQuotas(jws: string): Promise<Result<DocumentOutcome>>;
  /** FlowGate.blocked: a board the policy blocks (by serial or chip id). */
  blocked(identity: BoardIdentity): StationError | null;
  /** FlowGate.admit: quota admission of an initial run. */
  admit: FlowGate['admit'];
  checkOperator(operatorId: string): Result<void>;
  effectiveWorkOrder(wo: WorkOrder): WorkOrder;
  /**
   * The work orders headquarters signed to this station with its quotas in force (docs/lifecycle.md "Work orders
   * from headquarters"); they take the place of local work order files with the same id. Empty without any.
   */
  hqWorkOrders(): readonly WorkOrder[];
  revocationUrls(): RevocationUrls | null;
}

/** The policy and quota part of the lifecycle. */
export function createPolicyKeeper(
  c: LifecycleContext,
  o: { readonly requireQuota: boolean; readonly revocationUrls?: RevocationUrls | undefined },
): PolicyKeeper {
  const { db, log } = c;
  const warnedNoQuota = new Set<string>();
  let cached: PolicyInForce | null = null;
  let cachedWorkOrders: { key: string; list: readonly WorkOrder[] } | null = null;

  const current: PolicyKeeper['current'] = (doc = db.document('policy')) => {
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
    if (!c.registryCertificate) return fail('CONFIG_INVALID', NO_REGISTRY_CERT);
    const v = await verifyPolicy(jws, c.registryCertificate);
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
      const revoked = p.revokedStations.find((x) => x.stationId === c.stationId);
      c.store.appendAudit('policy.applied', {
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
    if (!c.registryCertificate) return fail('CONFIG_INVALID', NO_REGISTRY_CERT);
    const v = await verifyQuotas(jws, c.registryCertificate, c.stationId);
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
      const workOrders = await Promise.all(
        (p.workOrders ?? []).map(async (w) => ({ id: w.id, sha256: await sha256Hex(canonicalJson(w)) })),
      );
      c.store.appendAudit('quotas.applied', {
        version: p.version,
        issuedAt: p.issuedAt,
        quotas: p.quotas,
        ...(workOrders.length ? { workOrders } : {}),
      });
      log.log('info', 'quotas applied', { version: p.version, quotas: p.quotas.length, workOrders: workOrders.length });
    }
    return ok({ version: p.version, outcome });
  }

  function blocked(identity: BoardIdentity): StationError | null {
    const cur = current();
    if (!cur) return null;
    const bySerial = cur.serials.has(identity.serialNumber);
    if (!bySerial && !cur.chips.has(identity.chipId)) return null;
    log.log('warn', 'board refused: blocked by the policy', {
      serialNumber: identity.serialNumber,
      chipId: identity.chipId,
      policyVersion: cur.policy.version,
    });
    return stationError(
      'FLOW_BLOCKED',
      `board ${identity.serialNumber} is blocked or decommissioned by headquarters (policy version ${cur.policy.version}, by ${bySerial ? 'serial' : 'chip id'})`,
      { serialNumber: identity.serialNumber, chipId: identity.chipId, policyVersion: cur.policy.version },
    );
  }

  const admit: FlowGate['admit'] = (run) => {
    if (run.kind !== 'initial') return null; // a rework re-uses the board's unit
    const u = db.usage(run.workOrder);
    if (u.quantity === null) {
      if (o.requireQuota)
        return stationError(
          'FLOW_QUOTA_EXHAUSTED',
          `work order ${run.workOrder} has no quota from the registry and this station requires one (lifecycle.requireQuota)`,
          { workOrder: run.workOrder, quantity: null },
        );
      if (!warnedNoQuota.has(run.workOrder)) {
        warnedNoQuota.add(run.workOrder);
        log.log('warn', 'work order has no quota from the registry: unlimited (set lifecycle.requireQuota to refuse)', {
          workOrder: run.workOrder,
        });
      }
      return null;
    }
    if ((u.remaining ?? 0) > 0) return null;
    return stationError(
      'FLOW_QUOTA_EXHAUSTED',
      `work order ${run.workOrder}: quota ${u.quantity} used up (${u.committed} provisioned, ${u.reserved} in progress)`,
      { workOrder: run.workOrder, quantity: u.quantity, committed: u.committed, reserved: u.reserved },
    );
  };

  return {
    current,
    applyPolicy,
    applyQuotas,
    blocked,
    admit,
    checkOperator(operatorId) {
      const cur = current();
      if (cur?.operators.has(operatorId))
        return fail(
          'AUTH_REVOKED',
          `operator ${operatorId} has been revoked by headquarters (policy version ${cur.policy.version})`,
          { operatorId },
        );
      return ok(undefined);
    },
    effectiveWorkOrder(wo) {
      const allowed = current()?.policy.firmware[wo.id];
      if (!allowed) return wo;
      const firmware = Object.fromEntries(Object.keys(wo.baseline.firmware).map((slot) => [slot, [...allowed]]));
      return { ...wo, baseline: { ...wo.baseline, firmware } };
    },
    hqWorkOrders() {
      const doc = db.document('quotas');
      if (!doc) return [];
      const key = `${doc.version}:${doc.issuedAt}`;
      if (cachedWorkOrders?.key !== key)
        cachedWorkOrders = { key, list: (JSON.parse(doc.payloadJson) as QuotaPayload).workOrders ?? [] };
      return cachedWorkOrders.list;
    },
    revocationUrls() {
      const t = current()?.policy.revocationUrls;
      const fromPolicy = t ? renderRevocationUrls(t, c.stationId) : null;
      const merged = { ...o.revocationUrls, ...fromPolicy };
      return merged.crl || merged.ocsp ? merged : null;
    },
  };
}

/**
 * The station's view of the registry policy, pure parts: the strict payload schema (certificate profile overrides
 * validated with ProfileOverridesSchema, the optional `reenrollment` block), this station's revocation in effect
 * (revokedAt <= now), the run's policy snapshot, and decide() refusing a revoked station even for a resume.
 */
import { describe, expect, it } from 'vitest';
import { decide, snapshotPolicy } from '../../core/provisioning/flow.js';
import { stationError } from '../../core/errors.js';
import type { BoardIdentity } from '../../core/model.js';
import type { RunRow } from '../../core/provisioning/store.js';
import { PolicyPayloadSchema, POLICY_SCHEMA, stationRevocation, type PolicyPayload } from '../../core/hq/policy.js';

const base: PolicyPayload = {
  schema: POLICY_SCHEMA,
  registryId: 'registry-1',
  version: 3,
  issuedAt: '2026-01-01T00:00:00.000Z',
  revokedStations: [],
  revokedOperators: [],
  blocked: { serials: [], chipIds: [] },
  firmware: {},
  profileOverrides: {},
};
const parse = (over: Record<string, unknown>) => PolicyPayloadSchema.safeParse({ ...base, ...over });
const issues = (over: Record<string, unknown>) => {
  const r = parse(over);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('policy payload schema', () => {
  it('accepts valid certificate profile overrides and the optional reenrollment block', () => {
    const r = parse({
      profileOverrides: {
        'ls-sim-se': { validityDays: 30, organization: 'Override Org', extendedKeyUsage: ['serverAuth', 'clientAuth'] },
        'ls-sim-basic': { policyOid: '1.3.6.1.4.1.55555.1' },
      },
      reenrollment: { certificateLifetimeSeconds: 86_400, rotateBeforeSeconds: 0 },
    });
    expect(r.success).toBe(true);
    expect(parse({}).success).toBe(true); // reenrollment stays optional
  });

  it('rejects invalid overrides with the path of the problem', () => {
    expect(issues({ profileOverrides: { 'ls-sim-se': { validityDays: 0 } } }).join()).toContain(
      'profileOverrides.ls-sim-se.validityDays',
    );
    expect(issues({ profileOverrides: { 'ls-sim-se': { commonName: 'x' } } }).join()).toContain('ls-sim-se');
    expect(issues({ profileOverrides: { 'ls-sim-se': { extendedKeyUsage: ['emailProtection'] } } })).not.toEqual([]);
    expect(issues({ profileOverrides: { 'Not A Profile': {} } }).join()).toContain('Not A Profile');
    expect(issues({ profileOverrides: { 'ls-sim-se': 'nope' } })).not.toEqual([]);
  });

  it('rejects a malformed reenrollment block (strict, positive lifetime, non-negative window)', () => {
    expect(issues({ reenrollment: { certificateLifetimeSeconds: 0, rotateBeforeSeconds: 0 } })).not.toEqual([]);
    expect(issues({ reenrollment: { certificateLifetimeSeconds: 60, rotateBeforeSeconds: -1 } })).not.toEqual([]);
    expect(issues({ reenrollment: { certificateLifetimeSeconds: 1.5, rotateBeforeSeconds: 0 } })).not.toEqual([]);
    expect(
      issues({ reenrollment: { certificateLifetimeSeconds: 60, rotateBeforeSeconds: 0, extra: 1 } }).join(),
    ).toContain('reenrollment');
    expect(issues({ reenrollment: { certificateLifetimeSeconds: 60 } })).not.toEqual([]);
  });
});

describe('station revocation in effect', () => {
  const now = new Date('2026-06-01T12:00:00.000Z');
  const p = (revokedAt: string | null, stationId = 'st-1'): PolicyPayload => ({
    ...base,
    revokedStations: [{ stationId, revokedAt }],
  });
  it('is in effect from revokedAt on, for this station only', () => {
    expect(stationRevocation(p('2026-06-01T12:00:00.000Z'), 'st-1', now)).toEqual({
      revokedAt: '2026-06-01T12:00:00.000Z',
    });
    expect(stationRevocation(p('2026-06-01T11:00:00+02:00'), 'st-1', now)).not.toBeNull();
    expect(stationRevocation(p('2026-06-01T12:00:01.000Z'), 'st-1', now)).toBeNull();
    expect(stationRevocation(p('2026-01-01T00:00:00.000Z', 'st-2'), 'st-1', now)).toBeNull();
    expect(stationRevocation(base, 'st-1', now)).toBeNull();
  });
  it('a listing without a time (or with an unreadable one) is in effect at once', () => {
    expect(stationRevocation(p(null), 'st-1', now)).toEqual({ revokedAt: null });
    expect(stationRevocation(p('not a time'), 'st-1', now)).toEqual({ revokedAt: 'not a time' });
  });
});

describe('run policy snapshot and decide()', () => {
  it('snapshots the override of the run profile only', () => {
    const rp = {
      version: 7,
      sha256: 'a'.repeat(64),
      profileOverrides: { 'ls-sim-se': { validityDays: 30 } },
    };
    expect(snapshotPolicy(rp, 'ls-sim-se')).toEqual({
      version: 7,
      sha256: 'a'.repeat(64),
      override: { validityDays: 30 },
    });
    expect(snapshotPolicy(rp, 'ls-sim-basic')).toEqual({ version: 7, sha256: 'a'.repeat(64), override: null });
    expect(snapshotPolicy(rp, 'constructor').override).toBeNull();
    expect(snapshotPolicy(null, 'ls-sim-se')).toEqual({ version: null, sha256: null, override: null });
  });

  it('a revoked station neither starts nor resumes a run', () => {
    const identity = {
      chipId: '0011223344556677',
      serialNumber: 'SN-1',
      state: { locked: false, certificateSha256: null },
    } as unknown as BoardIdentity;
    const revoked = stationError('FLOW_STATION_REVOKED', 'revoked');
    const activeRun = { runId: 'r1' } as unknown as RunRow;
    const args = { identity, current: null, currentCertSha256: null, reprovision: false };
    expect(decide({ ...args, activeRun: null }).action).toBe('start');
    expect(decide({ ...args, activeRun }).action).toBe('resume');
    for (const run of [null, activeRun]) {
      const d = decide({ ...args, activeRun: run, stationRevoked: revoked });
      expect(d).toEqual({ action: 'refuse', error: revoked });
    }
    expect(revoked.guidance).toContain('contact your supervisor');
  });
});

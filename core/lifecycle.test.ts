/** The device lifecycle state machine, table-driven: every (state, event, role) triple is legal or refused. */
import { describe, expect, it } from 'vitest';
import {
  CRL_REASON_CODES,
  DEVICE_STATES,
  LIFECYCLE_EVENTS,
  LIFECYCLE_ROLES,
  TRANSITIONS,
  credentialRevocation,
  normaliseSerial,
  rotateCredentials,
  transition,
  type Credential,
  type DeviceState,
  type LifecycleEvent,
  type LifecycleRole,
} from './lifecycle.js';

const EXPECTED: Record<string, DeviceState> = {
  'provisioned/activate': 'activated',
  'provisioned/rotate': 'provisioned',
  'provisioned/suspend': 'suspended',
  'provisioned/revoke': 'revoked',
  'provisioned/decommission': 'decommissioned',
  'activated/rotate': 'activated',
  'activated/suspend': 'suspended',
  'activated/revoke': 'revoked',
  'activated/decommission': 'decommissioned',
  'suspended/resume': 'activated',
  'suspended/revoke': 'revoked',
  'suspended/decommission': 'decommissioned',
  'revoked/decommission': 'decommissioned',
};

const triples: [DeviceState, LifecycleEvent, LifecycleRole][] = [];
for (const s of DEVICE_STATES)
  for (const e of LIFECYCLE_EVENTS) for (const r of LIFECYCLE_ROLES) triples.push([s, e, r]);

describe('transition table', () => {
  it('has exactly the documented transitions', () => {
    expect(Object.fromEntries(TRANSITIONS.map((t) => [`${t.from}/${t.event}`, t.to]))).toEqual(EXPECTED);
    expect(triples).toHaveLength(5 * 6 * 4);
  });

  it.each(triples)('%s + %s by %s', (state, event, role) => {
    const r = transition(state, event, role);
    const row = TRANSITIONS.find((t) => t.from === state && t.event === event);
    if (!row) {
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('INPUT_INVALID');
        expect(r.error.message).toContain(`cannot ${event} a ${state} device`);
      }
    } else if (!row.roles.includes(role)) {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.code).toBe('AUTH_FORBIDDEN');
    } else {
      expect(r).toEqual({ ok: true, value: EXPECTED[`${state}/${event}`] });
    }
  });

  it('final states say so; unknown inputs are refused', () => {
    const r = transition('decommissioned', 'activate', 'admin');
    expect(!r.ok && r.error.message).toMatch(/decommissioned is final/);
    expect(transition('lost' as DeviceState, 'activate', 'admin').ok).toBe(false);
    expect(transition('activated', 'explode' as LifecycleEvent, 'admin').ok).toBe(false);
    expect(transition('activated', 'suspend', 'janitor' as LifecycleRole).ok).toBe(false);
  });

  it('a device can never suspend or decommission itself; a station cannot resume', () => {
    expect(transition('activated', 'suspend', 'device').ok).toBe(false);
    expect(transition('activated', 'decommission', 'station').ok).toBe(false);
    expect(transition('suspended', 'resume', 'station').ok).toBe(false);
  });

  it('a station may revoke a board it scrapped, suspended or not (POST /v1/revocations)', () => {
    for (const s of ['provisioned', 'activated', 'suspended'] as const)
      expect(transition(s, 'revoke', 'station')).toEqual({ ok: true, value: 'revoked' });
    expect(transition('revoked', 'revoke', 'station').ok).toBe(false);
  });
});

describe('credentials', () => {
  const c1: Credential = {
    version: 1,
    serial: 'ab',
    sha256: 'x'.repeat(64),
    notBefore: '2026-01-01T00:00:00.000Z',
    notAfter: '2027-01-01T00:00:00.000Z',
    status: 'active',
    reason: null,
    revokedAt: null,
  };

  it('rotation supersedes the active credential and appends version n+1', () => {
    const h = rotateCredentials([c1], { serial: 'cd', sha256: 'y'.repeat(64), notBefore: 'a', notAfter: 'b' }, 'T');
    expect(h.map((c) => [c.version, c.status, c.reason, c.revokedAt])).toEqual([
      [1, 'superseded', 'superseded', 'T'],
      [2, 'active', null, null],
    ]);
    expect(h.filter((c) => c.status === 'active')).toHaveLength(1);
  });

  it('status for CRL/OCSP: good, hold when suspended, revoked with reason, superseded', () => {
    expect(credentialRevocation('activated', c1, null)).toEqual({ status: 'good' });
    expect(credentialRevocation('suspended', c1, 'S')).toEqual({
      status: 'revoked',
      reason: CRL_REASON_CODES.certificateHold,
      at: 'S',
    });
    expect(
      credentialRevocation('revoked', { status: 'revoked', reason: 'keyCompromise', revokedAt: 'R' }, null),
    ).toEqual({ status: 'revoked', reason: 1, at: 'R' });
    expect(credentialRevocation('activated', { status: 'superseded', reason: null, revokedAt: 'R' }, null)).toEqual({
      status: 'revoked',
      reason: 4,
      at: 'R',
    });
  });

  it('serials are normalised', () => {
    expect(normaliseSerial('00AB')).toBe('ab');
    expect(normaliseSerial('000')).toBe('0');
  });
});

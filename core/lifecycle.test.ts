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

/**
 * The expected machine, written out cell by cell (NOT derived from TRANSITIONS): for every (state, event) the
 * target state and the roles allowed, or `null` when the event is illegal in that state.
 * Roles: a = admin, o = security-officer, s = station, d = device.
 */
const CELLS: Record<DeviceState, Record<LifecycleEvent, readonly [DeviceState, string] | null>> = {
  provisioned: {
    activate: ['activated', 'aosd'],
    suspend: ['suspended', 'ao'],
    resume: null,
    rotate: ['provisioned', 'asd'],
    revoke: ['revoked', 'aos'],
    decommission: ['decommissioned', 'ao'],
  },
  activated: {
    activate: null,
    suspend: ['suspended', 'ao'],
    resume: null,
    rotate: ['rotated', 'asd'],
    revoke: ['revoked', 'aos'],
    decommission: ['decommissioned', 'ao'],
  },
  rotated: {
    activate: null,
    suspend: ['suspended', 'ao'],
    resume: null,
    rotate: ['rotated', 'asd'],
    revoke: ['revoked', 'aos'],
    decommission: ['decommissioned', 'ao'],
  },
  suspended: {
    activate: null,
    suspend: null,
    resume: ['activated', 'ao'],
    rotate: null,
    revoke: ['revoked', 'aos'],
    decommission: ['decommissioned', 'ao'],
  },
  revoked: {
    activate: null,
    suspend: null,
    resume: null,
    rotate: null,
    revoke: null,
    decommission: ['decommissioned', 'ao'],
  },
  decommissioned: {
    activate: null,
    suspend: null,
    resume: null,
    rotate: null,
    revoke: null,
    decommission: null,
  },
};
const ROLE_LETTER: Record<LifecycleRole, string> = { admin: 'a', 'security-officer': 'o', station: 's', device: 'd' };

type Outcome = DeviceState | 'illegal' | 'forbidden';
const triples: [DeviceState, LifecycleEvent, LifecycleRole, Outcome][] = [];
for (const s of DEVICE_STATES)
  for (const e of LIFECYCLE_EVENTS)
    for (const r of LIFECYCLE_ROLES) {
      const cell = CELLS[s][e];
      triples.push([s, e, r, cell === null ? 'illegal' : cell[1].includes(ROLE_LETTER[r]) ? cell[0] : 'forbidden']);
    }

describe('transition table', () => {
  it('covers every state, event and role; TRANSITIONS lists exactly the legal cells', () => {
    expect([...DEVICE_STATES]).toEqual([
      'provisioned',
      'activated',
      'rotated',
      'suspended',
      'revoked',
      'decommissioned',
    ]);
    expect(triples).toHaveLength(6 * 6 * 4);
    const legal = Object.entries(CELLS).flatMap(([s, row]) =>
      Object.entries(row).flatMap(([e, c]) => (c ? [`${s}/${e}->${c[0]}`] : [])),
    );
    expect(TRANSITIONS.map((t) => `${t.from}/${t.event}->${t.to}`).sort()).toEqual(legal.sort());
    expect(triples.filter((t) => t[3] !== 'illegal' && t[3] !== 'forbidden')).toHaveLength(43);
  });

  it.each(triples)('%s + %s by %s -> %s', (state, event, role, outcome) => {
    const r = transition(state, event, role);
    if (outcome === 'illegal') {
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('INPUT_INVALID');
        expect(r.error.message).toContain(`cannot ${event} a ${state} device`);
      }
    } else if (outcome === 'forbidden') {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.code).toBe('AUTH_FORBIDDEN');
    } else {
      expect(r).toEqual({ ok: true, value: outcome });
    }
  });

  it('rotation: provisioned stays provisioned, activated and rotated become rotated; rotated cannot activate', () => {
    expect(transition('provisioned', 'rotate', 'station')).toEqual({ ok: true, value: 'provisioned' });
    expect(transition('activated', 'rotate', 'device')).toEqual({ ok: true, value: 'rotated' });
    expect(transition('rotated', 'rotate', 'device')).toEqual({ ok: true, value: 'rotated' });
    const a = transition('rotated', 'activate', 'admin');
    expect(!a.ok && a.error.message).toMatch(/cannot activate a rotated device \(allowed: rotate, suspend, revoke/);
    // suspended (from rotated) resumes to activated.
    expect(transition('rotated', 'suspend', 'security-officer')).toEqual({ ok: true, value: 'suspended' });
    expect(transition('suspended', 'resume', 'security-officer')).toEqual({ ok: true, value: 'activated' });
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
    for (const s of ['provisioned', 'activated', 'rotated', 'suspended'] as const)
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
    expect(credentialRevocation('rotated', c1, null)).toEqual({ status: 'good' });
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

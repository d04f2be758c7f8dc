/**
 * Device identity lifecycle (pure): states, events, the explicit transition table with the roles allowed to
 * trigger each transition, and the versioned credential history of a device. The registry persists the
 * result; this module only decides (docs/lifecycle.md).
 *
 *   provisioned --activate--> activated --suspend--> suspended --resume--> activated
 *   provisioned --rotate--> provisioned     (never activated: a reworked board keeps waiting for activation)
 *   activated|rotated --rotate--> rotated   (new credential; the old one is superseded)
 *   provisioned|activated|rotated --suspend--> suspended
 *   provisioned|activated|rotated|suspended --revoke--> revoked --decommission--> decommissioned
 *   provisioned|activated|rotated|suspended --decommission--> decommissioned
 *
 * `rotated` is an activated device that has re-keyed at least once: it has the same exits as `activated`
 * (rotate, suspend, revoke, decommission) with the same roles, `activate` is illegal on it, and `resume`
 * brings a suspended device back to `activated` (the suspension does not remember whether it had rotated;
 * the credential history does).
 */
import { fail } from './errors.js';
import { ok, type Result } from './result.js';

export const DEVICE_STATES = ['provisioned', 'activated', 'rotated', 'suspended', 'revoked', 'decommissioned'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

export const LIFECYCLE_EVENTS = ['activate', 'suspend', 'resume', 'rotate', 'revoke', 'decommission'] as const;
export type LifecycleEvent = (typeof LIFECYCLE_EVENTS)[number];

export const LIFECYCLE_ROLES = ['admin', 'security-officer', 'station', 'device'] as const;
export type LifecycleRole = (typeof LIFECYCLE_ROLES)[number];

/** RFC 5280 revocation reasons a device credential can be revoked with (certificateHold is for suspension). */
export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/** RFC 5280 CRLReason codes (5.3.1), including certificateHold (6) for suspended devices. */
export const CRL_REASON_CODES: Readonly<Record<RevocationReason | 'certificateHold', number>> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
};

export interface Transition {
  readonly from: DeviceState;
  readonly event: LifecycleEvent;
  readonly to: DeviceState;
  readonly roles: readonly LifecycleRole[];
}

const OFFICERS = ['admin', 'security-officer'] as const;

/** Every allowed transition. Anything not listed is illegal. */
export const TRANSITIONS: readonly Transition[] = [
  { from: 'provisioned', event: 'activate', to: 'activated', roles: [...OFFICERS, 'station', 'device'] },
  // A board reworked before it was ever activated gets a new credential but is still only provisioned:
  // `rotated` means "activated and re-keyed", and activation must stay possible (rotated cannot activate).
  { from: 'provisioned', event: 'rotate', to: 'provisioned', roles: ['admin', 'station', 'device'] },
  { from: 'provisioned', event: 'suspend', to: 'suspended', roles: OFFICERS },
  { from: 'provisioned', event: 'revoke', to: 'revoked', roles: [...OFFICERS, 'station'] },
  { from: 'provisioned', event: 'decommission', to: 'decommissioned', roles: OFFICERS },
  { from: 'activated', event: 'rotate', to: 'rotated', roles: ['admin', 'station', 'device'] },
  { from: 'activated', event: 'suspend', to: 'suspended', roles: OFFICERS },
  { from: 'activated', event: 'revoke', to: 'revoked', roles: [...OFFICERS, 'station'] },
  { from: 'activated', event: 'decommission', to: 'decommissioned', roles: OFFICERS },
  // rotated: the exits of activated, same roles (activate is illegal: it is already active).
  { from: 'rotated', event: 'rotate', to: 'rotated', roles: ['admin', 'station', 'device'] },
  { from: 'rotated', event: 'suspend', to: 'suspended', roles: OFFICERS },
  { from: 'rotated', event: 'revoke', to: 'revoked', roles: [...OFFICERS, 'station'] },
  { from: 'rotated', event: 'decommission', to: 'decommissioned', roles: OFFICERS },
  { from: 'suspended', event: 'resume', to: 'activated', roles: OFFICERS },
  // A station may revoke a suspended board it scrapped (signed scrap event, POST /v1/revocations).
  { from: 'suspended', event: 'revoke', to: 'revoked', roles: [...OFFICERS, 'station'] },
  { from: 'suspended', event: 'decommission', to: 'decommissioned', roles: OFFICERS },
  { from: 'revoked', event: 'decommission', to: 'decommissioned', roles: OFFICERS },
];

export const isDeviceState = (x: unknown): x is DeviceState => (DEVICE_STATES as readonly unknown[]).includes(x);
export const isLifecycleEvent = (x: unknown): x is LifecycleEvent =>
  (LIFECYCLE_EVENTS as readonly unknown[]).includes(x);
export const isRevocationReason = (x: unknown): x is RevocationReason =>
  (REVOCATION_REASONS as readonly unknown[]).includes(x);

/** The transition row for (state, event), or undefined when the event is illegal in that state. */
export function findTransition(state: DeviceState, event: LifecycleEvent): Transition | undefined {
  return TRANSITIONS.find((t) => t.from === state && t.event === event);
}

/**
 * Apply `event` to a device in `state` on behalf of `actor`. INPUT_INVALID for an unknown state or event or an
 * illegal transition (the message lists what is allowed), AUTH_FORBIDDEN when the role may not do it.
 */
export function transition(state: DeviceState, event: LifecycleEvent, actor: LifecycleRole): Result<DeviceState> {
  if (!isDeviceState(state)) return fail('INPUT_INVALID', `unknown device state ${String(state)}`);
  if (!isLifecycleEvent(event)) return fail('INPUT_INVALID', `unknown lifecycle event ${String(event)}`);
  if (!(LIFECYCLE_ROLES as readonly unknown[]).includes(actor))
    return fail('INPUT_INVALID', `unknown lifecycle role ${String(actor)}`);
  const t = findTransition(state, event);
  if (!t) {
    const allowed = TRANSITIONS.filter((x) => x.from === state).map((x) => x.event);
    return fail(
      'INPUT_INVALID',
      `illegal lifecycle transition: cannot ${event} a ${state} device` +
        (allowed.length ? ` (allowed: ${allowed.join(', ')})` : ` (${state} is final)`),
      { from: state, event, illegal: true },
    );
  }
  if (!t.roles.includes(actor))
    return fail('AUTH_FORBIDDEN', `role ${actor} may not ${event} a ${state} device (allowed: ${t.roles.join(', ')})`, {
      from: state,
      event,
      role: actor,
    });
  return ok(t.to);
}

// ---------------------------------------------------------------- credentials

/**
 * `pending`: reserved for a re-enrolment before the certificate is signed; on hold (CRL certificateHold) until
 * the rotation commits, so a crash between signing and committing never leaves two valid credentials.
 */
export type CredentialStatus = 'active' | 'pending' | 'revoked' | 'superseded';

/** One certificate of a device: version n of its credential history. */
export interface Credential {
  readonly version: number;
  /** Certificate serial number, lower-case hex without leading zeros. */
  readonly serial: string;
  /** SHA-256 (hex) of the certificate DER. */
  readonly sha256: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly status: CredentialStatus;
  readonly reason: RevocationReason | null;
  readonly revokedAt: string | null;
}

/** Normalise a certificate serial (hex) for comparisons: lower case, no leading zeros ("0" for zero). */
export function normaliseSerial(hex: string): string {
  const s = hex.toLowerCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/**
 * What a CRL / OCSP responder says about a credential of a device in `state`:
 * good, revoked with an RFC 5280 reason (superseded credentials: `superseded`), or on hold (suspended device).
 */
export function credentialRevocation(
  state: DeviceState,
  c: Pick<Credential, 'status' | 'reason' | 'revokedAt'>,
  suspendedAt: string | null,
): { readonly status: 'good' } | { readonly status: 'revoked'; readonly reason: number; readonly at: string } {
  if (c.status === 'superseded')
    return { status: 'revoked', reason: CRL_REASON_CODES.superseded, at: c.revokedAt ?? suspendedAt ?? '' };
  if (c.status === 'pending')
    return { status: 'revoked', reason: CRL_REASON_CODES.certificateHold, at: c.revokedAt ?? '' };
  if (c.status === 'revoked')
    return { status: 'revoked', reason: CRL_REASON_CODES[c.reason ?? 'unspecified'], at: c.revokedAt ?? '' };
  if (state === 'suspended' && suspendedAt)
    return { status: 'revoked', reason: CRL_REASON_CODES.certificateHold, at: suspendedAt };
  return { status: 'good' };
}

/** The credential history after a rotation: the active one becomes superseded at `at`, `next` is appended. */
export function rotateCredentials(
  history: readonly Credential[],
  next: Omit<Credential, 'version' | 'status' | 'reason' | 'revokedAt'>,
  at: string,
): Credential[] {
  const out = history.map((c) =>
    c.status === 'active' ? { ...c, status: 'superseded' as const, reason: 'superseded' as const, revokedAt: at } : c,
  );
  const version = history.reduce((m, c) => Math.max(m, c.version), 0) + 1;
  out.push({ ...next, version, status: 'active', reason: null, revokedAt: null });
  return out;
}

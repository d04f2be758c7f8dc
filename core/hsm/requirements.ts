/**
 * What the station needs from a PKCS#11 token, per job, and the check of a token's real mechanism list against it.
 * Pure: the adapter (native/hsm) reads C_GetMechanismList / C_GetMechanismInfo and passes the result here.
 *
 * Requirements:
 * - `signing-key-p256` / `signing-key-p384`: generate an EC key pair on the curve in the token and sign with CKM_ECDSA
 *   (issuing CA, station and registry keys).
 * - `key-injection`: profiles with keyMode `injected` (docs/hsm.md "Key injection"): EC P-256 key pair generation,
 *   ECDH1 derive (into an AES key) and AES key wrap with padding as RFC 5649 (the token profile names which
 *   mechanism does that; without a profile, CKM_AES_KEY_WRAP_KWP, the PKCS#11 3.0 RFC 5649 mechanism).
 */
import { fail, stationError, type StationError } from '../errors.js';
import { ok, type Result } from '../result.js';
import { MECHANISMS, type MechanismName, type TokenProfile } from './token-profile.js';

/** CK_MECHANISM_INFO flags the station checks. */
export const CKF = {
  GENERATE: 0x8000,
  SIGN: 0x800,
  WRAP: 0x20000,
  GENERATE_KEY_PAIR: 0x10000,
  DERIVE: 0x80000,
} as const;

/** One mechanism as the token reports it (C_GetMechanismInfo). */
export interface MechanismInfo {
  readonly type: number;
  readonly minKeySize: number;
  readonly maxKeySize: number;
  readonly flags: number;
}

export const TOKEN_REQUIREMENTS = ['signing-key-p256', 'signing-key-p384', 'key-injection'] as const;
export type TokenRequirement = (typeof TOKEN_REQUIREMENTS)[number];

/** One mechanism a requirement needs: the flag it must carry and, for EC, the key size (bits) it must cover. */
export interface MechanismNeed {
  readonly mechanism: MechanismName;
  readonly flag: keyof typeof CKF;
  readonly bits?: number;
}

/** What the station uses a requirement for (in messages). */
export const REQUIREMENT_PURPOSE: Readonly<Record<TokenRequirement, string>> = {
  'signing-key-p256': 'P-256 signing keys (issuing CA, station key)',
  'signing-key-p384': 'P-384 signing keys',
  'key-injection': 'profiles with keyMode injected',
};

/** The mechanisms a requirement needs on a token with this profile (null: no profile known). */
export function mechanismsNeeded(req: TokenRequirement, profile: TokenProfile | null): readonly MechanismNeed[] {
  switch (req) {
    case 'signing-key-p256':
      return [
        { mechanism: 'CKM_EC_KEY_PAIR_GEN', flag: 'GENERATE_KEY_PAIR', bits: 256 },
        { mechanism: 'CKM_ECDSA', flag: 'SIGN', bits: 256 },
      ];
    case 'signing-key-p384':
      return [
        { mechanism: 'CKM_EC_KEY_PAIR_GEN', flag: 'GENERATE_KEY_PAIR', bits: 384 },
        { mechanism: 'CKM_ECDSA', flag: 'SIGN', bits: 384 },
      ];
    case 'key-injection':
      return [
        { mechanism: 'CKM_EC_KEY_PAIR_GEN', flag: 'GENERATE_KEY_PAIR', bits: 256 },
        { mechanism: 'CKM_ECDH1_DERIVE', flag: 'DERIVE', bits: 256 },
        { mechanism: rfc5649WrapMechanism(profile) ?? 'CKM_AES_KEY_WRAP_KWP', flag: 'WRAP' },
      ];
  }
}

/**
 * The mechanism that wraps as RFC 5649 on this token: the profile's `rfc5649Wrap` (SoftHSM2 implements it as
 * CKM_AES_KEY_WRAP_PAD; NSS implements CKM_AES_KEY_WRAP_PAD as RFC 3394 + PKCS#7 padding and RFC 5649 as
 * CKM_AES_KEY_WRAP_KWP), CKM_AES_KEY_WRAP_KWP without a profile, null when the profile says the token has none.
 */
export function rfc5649WrapMechanism(profile: TokenProfile | null): MechanismName | null {
  if (!profile) return 'CKM_AES_KEY_WRAP_KWP';
  return profile.rfc5649Wrap;
}

/** The result of checking one requirement against a token. */
export interface RequirementCheck {
  readonly requirement: TokenRequirement;
  readonly satisfied: boolean;
  /** Mechanisms absent, lacking the flag, or not covering the key size (e.g. `CKM_ECDH1_DERIVE`). */
  readonly missing: readonly string[];
  /** Why it is not satisfied, for people (empty when satisfied). */
  readonly message: string;
}

/** One mechanism the station uses, as found on the token. */
export interface MechanismCheck {
  readonly mechanism: MechanismName;
  readonly present: boolean;
  readonly flags?: number;
  readonly minKeySize?: number;
  readonly maxKeySize?: number;
}

/** The station's mechanisms on a token (present or not, with their info). */
export function mechanismChecks(list: readonly MechanismInfo[]): MechanismCheck[] {
  return (Object.entries(MECHANISMS) as [MechanismName, number][]).map(([mechanism, type]) => {
    const m = list.find((x) => x.type === type);
    return m
      ? { mechanism, present: true, flags: m.flags, minKeySize: m.minKeySize, maxKeySize: m.maxKeySize }
      : { mechanism, present: false };
  });
}

/** Check one requirement against a token's mechanism list (`tokenName` for the message). */
export function checkRequirement(
  req: TokenRequirement,
  list: readonly MechanismInfo[],
  profile: TokenProfile | null,
  tokenName: string,
): RequirementCheck {
  const missing: string[] = [];
  if (req === 'key-injection' && profile && profile.rfc5649Wrap === null) missing.push('RFC 5649 key wrap');
  for (const need of mechanismsNeeded(req, profile)) {
    if (req === 'key-injection' && missing.length > 0 && need.flag === 'WRAP') continue;
    const m = list.find((x) => x.type === MECHANISMS[need.mechanism]);
    if (!m) missing.push(need.mechanism);
    else if ((m.flags & CKF[need.flag]) === 0) missing.push(`${need.mechanism} (no CKF_${need.flag})`);
    else if (need.bits !== undefined && !(m.minKeySize <= need.bits && need.bits <= m.maxKeySize))
      missing.push(`${need.mechanism} (${need.bits}-bit keys)`);
  }
  if (missing.length === 0) return { requirement: req, satisfied: true, missing, message: '' };
  return {
    requirement: req,
    satisfied: false,
    missing,
    message: `token ${tokenName} has no ${missing.join(', ')}: ${REQUIREMENT_PURPOSE[req]} cannot run on it`,
  };
}

/** Check every requirement (in TOKEN_REQUIREMENTS order). */
export function checkRequirements(
  list: readonly MechanismInfo[],
  profile: TokenProfile | null,
  tokenName: string,
): RequirementCheck[] {
  return TOKEN_REQUIREMENTS.map((r) => checkRequirement(r, list, profile, tokenName));
}

/** HSM_TOKEN_LACKS_MECHANISM for an unsatisfied requirement (ok when satisfied). */
export function requirementResult(check: RequirementCheck): Result<void> {
  if (check.satisfied) return ok(undefined);
  return fail('HSM_TOKEN_LACKS_MECHANISM', check.message, {
    requirement: check.requirement,
    missing: check.missing,
  });
}

/** The fields of a board profile that decide what it needs from the token. */
export interface ProfileNeeds {
  readonly id: string;
  readonly keyMode: 'onboard' | 'injected';
  readonly curve: 'P-256' | 'P-384';
}

/** The requirements a board profile puts on the station's token. */
export function profileRequirements(p: ProfileNeeds): TokenRequirement[] {
  return p.keyMode === 'injected' ? ['key-injection'] : [];
}

/** A board profile that cannot run on the token, with the coded error that says why. */
export interface UnsupportedProfile {
  readonly profileId: string;
  readonly requirement: TokenRequirement;
  readonly error: StationError;
}

/**
 * The board profiles that cannot run on a token, from its requirement checks (a `TokenReport`'s `requirements`, or
 * `HsmAdmin.checkRequirements()`): each with HSM_TOKEN_LACKS_MECHANISM naming what the token lacks. A requirement
 * the checks do not cover counts as unsupported (the token was not inspected for it).
 */
export function profilesUnsupported(
  token: { readonly requirements: readonly RequirementCheck[] },
  profiles: readonly ProfileNeeds[],
): UnsupportedProfile[] {
  const out: UnsupportedProfile[] = [];
  for (const p of profiles) {
    for (const req of profileRequirements(p)) {
      const c = token.requirements.find((x) => x.requirement === req);
      if (c?.satisfied) continue;
      const why = c ? c.message : `the token was not checked for ${REQUIREMENT_PURPOSE[req]}`;
      out.push({
        profileId: p.id,
        requirement: req,
        error: stationError('HSM_TOKEN_LACKS_MECHANISM', `board profile ${p.id} refused: ${why}`, {
          profile: p.id,
          requirement: req,
          missing: c?.missing ?? [],
        }),
      });
      break;
    }
  }
  return out;
}

/**
 * Requirements against mechanism lists: what each requirement needs, the message naming what a token lacks, the
 * RFC 5649 wrap mechanism per profile, and profilesUnsupported.
 */
import { describe, expect, it } from 'vitest';
import {
  CKF,
  checkRequirement,
  checkRequirements,
  profilesUnsupported,
  requirementResult,
  type MechanismInfo,
} from './requirements.js';
import { MECHANISMS, parseTokenProfile, type MechanismName, type TokenProfile } from './token-profile.js';

const EC = { minKeySize: 256, maxKeySize: 521 };
const info = (name: MechanismName, flags: number, size = EC): MechanismInfo => ({
  type: MECHANISMS[name],
  flags,
  ...size,
});
const FULL: MechanismInfo[] = [
  info('CKM_EC_KEY_PAIR_GEN', CKF.GENERATE_KEY_PAIR),
  info('CKM_ECDSA', CKF.SIGN),
  info('CKM_ECDH1_DERIVE', CKF.DERIVE),
  info('CKM_AES_KEY_GEN', CKF.GENERATE, { minKeySize: 16, maxKeySize: 32 }),
  info('CKM_AES_KEY_WRAP_PAD', CKF.WRAP, { minKeySize: 16, maxKeySize: 32 }),
];
/** What tpm2-pkcs11 1.9 on swtpm listed (resources/tokens/tpm2-pkcs11.json). */
const TPM2: MechanismInfo[] = [
  info('CKM_EC_KEY_PAIR_GEN', CKF.GENERATE_KEY_PAIR, { minKeySize: 192, maxKeySize: 638 }),
  info('CKM_ECDSA', CKF.SIGN, { minKeySize: 192, maxKeySize: 638 }),
  info('CKM_AES_KEY_GEN', CKF.GENERATE, { minKeySize: 16, maxKeySize: 32 }),
];

function profile(over: Partial<TokenProfile>): TokenProfile {
  const base = {
    schema: 'line-station/token-profile/v1',
    id: 'test-token',
    name: 'Test token',
    match: { moduleNames: ['libtest.so'] },
    modulePaths: ['/usr/lib/libtest.so'],
    mechanisms: [],
    rfc5649Wrap: 'CKM_AES_KEY_WRAP_PAD',
    keyAttributes: { refused: [] },
    keyProtection: { enforced: true, note: 'n' },
    login: { userPinSetBy: 'init-token', note: 'n' },
    pinLock: { locksAfter: null, note: 'n' },
    measured: { version: 'v', date: '2026-12-05', inCi: false },
  };
  const r = parseTokenProfile({ ...base, ...over }, 'test');
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

describe('checkRequirement', () => {
  it('a full token satisfies every requirement when its profile names the wrap it lists', () => {
    expect(checkRequirements(FULL, profile({}), 'T').every((r) => r.satisfied)).toBe(true);
  });

  it('without a profile, key injection asks for CKM_AES_KEY_WRAP_KWP (PKCS#11 3.0 RFC 5649)', () => {
    const c = checkRequirement('key-injection', FULL, null, 'X');
    expect(c).toMatchObject({ satisfied: false, missing: ['CKM_AES_KEY_WRAP_KWP'] });
    expect(c.message).toBe('token X has no CKM_AES_KEY_WRAP_KWP: profiles with keyMode injected cannot run on it');
  });

  it('tpm2-pkcs11: P-256 and P-384 signing yes, key injection no (no ECDH, no wrap)', () => {
    const [p256, p384, inj] = checkRequirements(TPM2, profile({ rfc5649Wrap: null }), 'tpm');
    expect(p256!.satisfied).toBe(true);
    expect(p384!.satisfied).toBe(true);
    expect(inj).toMatchObject({ satisfied: false, missing: ['RFC 5649 key wrap', 'CKM_ECDH1_DERIVE'] });
    const r = requirementResult(inj!);
    expect(r.ok ? null : r.error.code).toBe('HSM_TOKEN_LACKS_MECHANISM');
  });

  it('a mechanism without the needed flag or key size counts as missing', () => {
    const noSign = FULL.map((m) => (m.type === MECHANISMS.CKM_ECDSA ? { ...m, flags: 0 } : m));
    expect(checkRequirement('signing-key-p256', noSign, null, 'T').missing).toEqual(['CKM_ECDSA (no CKF_SIGN)']);
    const small = FULL.map((m) => (m.type === MECHANISMS.CKM_EC_KEY_PAIR_GEN ? { ...m, maxKeySize: 256 } : m));
    expect(checkRequirement('signing-key-p384', small, null, 'T').missing).toEqual([
      'CKM_EC_KEY_PAIR_GEN (384-bit keys)',
    ]);
    expect(checkRequirement('signing-key-p256', small, null, 'T').satisfied).toBe(true);
  });
});

describe('profilesUnsupported', () => {
  const boards = [
    { id: 'onboard-256', keyMode: 'onboard', curve: 'P-256' },
    { id: 'injected-256', keyMode: 'injected', curve: 'P-256' },
  ] as const;

  it('refuses injected-key profiles on a token without RFC 5649 wrap, naming what it lacks', () => {
    const requirements = checkRequirements(TPM2, profile({ rfc5649Wrap: null }), 'tpm2 "station"');
    const out = profilesUnsupported({ requirements }, boards);
    expect(out.map((u) => [u.profileId, u.requirement, u.error.code])).toEqual([
      ['injected-256', 'key-injection', 'HSM_TOKEN_LACKS_MECHANISM'],
    ]);
    expect(out[0]!.error.message).toBe(
      'board profile injected-256 refused: token tpm2 "station" has no RFC 5649 key wrap, CKM_ECDH1_DERIVE: profiles with keyMode injected cannot run on it',
    );
  });

  it('refuses nothing on a full token, and counts an unchecked requirement as unsupported', () => {
    expect(profilesUnsupported({ requirements: checkRequirements(FULL, profile({}), 'T') }, boards)).toEqual([]);
    const out = profilesUnsupported({ requirements: [] }, boards);
    expect(out.map((u) => u.profileId)).toEqual(['injected-256']);
  });
});

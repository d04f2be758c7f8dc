/** Token profile parsing, matching and library parameters. */
import { describe, expect, it } from 'vitest';
import {
  libraryParametersFor,
  matchTokenProfile,
  mechanismName,
  parseTokenProfile,
  type TokenProfile,
} from './token-profile.js';

const base = {
  schema: 'line-station/token-profile/v1',
  id: 'nss-like',
  name: 'NSS-like',
  match: { moduleNames: ['libsoftokn3.so'], model: 'NSS 3' },
  modulePaths: ['/usr/lib/x86_64-linux-gnu/libsoftokn3.so'],
  libraryParameters: "configdir='sql:{tokenDir}' dbTokenDescription='{tokenLabel}'",
  mechanisms: ['CKM_ECDSA'],
  rfc5649Wrap: 'CKM_AES_KEY_WRAP_KWP',
  keyAttributes: { refused: ['CKA_COPYABLE'] },
  keyProtection: { enforced: false, note: 'n' },
  login: { userPinSetBy: 'security-officer', note: 'n' },
  pinLock: { locksAfter: null, note: 'n' },
  measured: { version: 'v', date: '2026-12-05', inCi: true },
};
const parsed = (x: unknown): TokenProfile => {
  const r = parseTokenProfile(x, 'x.json');
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};

describe('parseTokenProfile', () => {
  it('accepts a valid profile and rejects unknown fields, mechanisms and relative module paths', () => {
    expect(parsed(base).id).toBe('nss-like');
    for (const bad of [
      { ...base, extra: 1 },
      { ...base, mechanisms: ['CKM_MD5'] },
      { ...base, modulePaths: ['lib/libsoftokn3.so'] },
      { ...base, keyAttributes: { refused: ['CKA_SENSITIVE'] } },
      { ...base, libraryParameters: 'a\nb' },
    ]) {
      const r = parseTokenProfile(bad, 'bad.json');
      expect(r.ok ? null : r.error.code).toBe('HSM_TOKEN_PROFILE_INVALID');
      expect(r.ok ? '' : r.error.message).toContain('bad.json');
    }
  });
});

describe('matchTokenProfile / libraryParametersFor / mechanismName', () => {
  const p = parsed(base);
  it('matches on the module file name, then on the token model when both are known', () => {
    expect(matchTokenProfile([p], '/opt/x/libsoftokn3.so')).toBe(p);
    expect(matchTokenProfile([p], '/opt/x/libsoftokn3.so', { model: 'NSS 3           ' })).toBe(p);
    expect(matchTokenProfile([p], '/opt/x/libsoftokn3.so', { model: 'Other' })).toBeNull();
    expect(matchTokenProfile([p], '/usr/lib/softhsm/libsofthsm2.so')).toBeNull();
  });

  it('fills the placeholders; refuses a missing one and quotes in a value', () => {
    const r = libraryParametersFor(p, { tokenDir: '/d/nss', tokenLabel: 'L' });
    expect(r.ok ? r.value : null).toBe("configdir='sql:/d/nss' dbTokenDescription='L'");
    const missing = libraryParametersFor(p, { tokenLabel: 'L' });
    expect(missing.ok ? null : missing.error.code).toBe('CONFIG_INVALID');
    const quote = libraryParametersFor(p, { tokenDir: "/d/x' flags=readOnly '", tokenLabel: 'L' });
    expect(quote.ok ? null : quote.error.code).toBe('CONFIG_INVALID');
    const none = libraryParametersFor(parsed({ ...base, libraryParameters: undefined }), {});
    expect(none.ok ? none.value : 'x').toBeUndefined();
  });

  it('names mechanisms', () => {
    expect(mechanismName(0x210b)).toBe('CKM_AES_KEY_WRAP_KWP');
    expect(mechanismName(0x1234)).toBe('0x1234');
  });
});

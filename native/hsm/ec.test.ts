import { describe, expect, it } from 'vitest';
import { opensslSelfSignedDer } from '../../testkit/pki/test-util.js';
import { createECDH, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  certificateFields,
  CURVES,
  certificateSubject,
  curveFromEcParams,
  decodeEcPoint,
  isOnCurve,
  parseEcSpki,
  rawSignatureToDer,
  spkiFromPoint,
} from './ec.js';
import { codeForCkr, ckrOf, mapPkcs11Error } from './errors.js';

const spkiOf = (k: ReturnType<typeof generateKeyPairSync>['publicKey']): Uint8Array =>
  new Uint8Array(k.export({ format: 'der', type: 'spki' }));

describe('EC helpers', () => {
  it('builds SPKI DER identical to what node produces, for P-256 and P-384', () => {
    for (const [curve, name] of [
      ['P-256', 'prime256v1'],
      ['P-384', 'secp384r1'],
    ] as const) {
      const ecdh = createECDH(name);
      ecdh.generateKeys();
      const point = new Uint8Array(ecdh.getPublicKey());
      const spki = spkiFromPoint(point, CURVES[curve]);
      const k = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      expect(k.asymmetricKeyDetails?.namedCurve).toBe(name);
      expect(Buffer.from(k.export({ format: 'der', type: 'spki' })).equals(Buffer.from(spki))).toBe(true);
      expect(isOnCurve(point, CURVES[curve])).toBe(true);
    }
  });

  it('decodes CKA_EC_POINT in DER-octet-string and raw form, rejects garbage', () => {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const raw = new Uint8Array(ecdh.getPublicKey());
    const der = new Uint8Array([0x04, raw.length, ...raw]);
    expect(decodeEcPoint(der, CURVES['P-256'])).toEqual(raw);
    expect(decodeEcPoint(raw, CURVES['P-256'])).toEqual(raw);
    expect(decodeEcPoint(der.subarray(0, 40), CURVES['P-256'])).toBeNull();
    expect(decodeEcPoint(der, CURVES['P-384'])).toBeNull();
    expect(curveFromEcParams(CURVES['P-384'].ecParams)?.curve).toBe('P-384');
    expect(curveFromEcParams(new Uint8Array([6, 5, 0x2b, 0x81, 4, 0, 0x23]))).toBeNull(); // P-521
  });

  it('parseEcSpki accepts a valid P-256 key and rejects wrong curve, off-curve, compressed and garbage input', () => {
    const good = spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const r = parseEcSpki(good, 'P-256');
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.length).toBe(65);

    const p384 = spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey);
    const wrong = parseEcSpki(p384, 'P-256');
    expect(wrong.ok ? null : wrong.error.code).toBe('INPUT_INVALID');
    if (!wrong.ok) expect(wrong.error.message).toMatch(/secp384r1.*P-256/);

    const off = new Uint8Array(good);
    off[off.length - 1] = off[off.length - 1]! ^ 0x01; // y changed: no longer on the curve
    const offR = parseEcSpki(off, 'P-256');
    expect(offR.ok ? null : offR.error.message).toMatch(/not on P-256/);

    const ed = spkiOf(generateKeyPairSync('ed25519').publicKey);
    expect(parseEcSpki(ed, 'P-256').ok).toBe(false);
    expect(parseEcSpki(new Uint8Array([1, 2, 3]), 'P-256').ok).toBe(false);
    expect(parseEcSpki(new Uint8Array(0), 'P-256').ok).toBe(false);
    // Compressed point SPKI (node can produce it): rejected, the protocol wants uncompressed points.
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const compressed = new Uint8Array([
      ...Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'),
      ...ecdh.getPublicKey(undefined, 'compressed'),
    ]);
    expect(createPublicKey({ key: Buffer.from(compressed), format: 'der', type: 'spki' }).type).toBe('public');
    expect(parseEcSpki(compressed, 'P-256').ok).toBe(false);
    // x >= p with a y that would otherwise be checked: rejected.
    const big = new Uint8Array(good);
    big.fill(0xff, 27, 59);
    expect(parseEcSpki(big, 'P-256').ok).toBe(false);
  });

  it('converts raw r||s to DER that node verifies', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    for (let i = 0; i < 20; i++) {
      const data = Buffer.from(`message ${i}`);
      const raw = sign('sha384', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      expect(verify('sha384', data, publicKey, Buffer.from(rawSignatureToDer(raw)))).toBe(true);
    }
  });

  it('extracts the subject, issuer and serial number of a certificate made by openssl', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ls-ec-'));
    const der = opensslSelfSignedDer(dir, '/CN=Line Station Test CA/O=Acme');
    const out = execFileSync('openssl', ['x509', '-inform', 'DER', '-in', join(dir, 'c.der'), '-noout', '-serial']);
    const serialHex = out
      .toString()
      .trim()
      .replace(/^serial=/, '');
    const fields = certificateFields(der)!;
    expect(Buffer.from(fields.issuer).equals(Buffer.from(fields.subject))).toBe(true); // self-signed
    expect(fields.serialNumber[0]).toBe(0x02); // DER INTEGER
    const serialValue = Buffer.from(fields.serialNumber.subarray(2)).toString('hex');
    expect(BigInt(`0x${serialValue}`)).toBe(BigInt(`0x${serialHex}`));
    const subject = certificateSubject(der);
    expect(subject).not.toBeNull();
    expect(Buffer.from(subject!).toString('latin1')).toContain('Line Station Test CA');
    expect(subject![0]).toBe(0x30);
    expect(certificateSubject(der.subarray(0, 100))).toBeNull();
    expect(certificateSubject(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]))).toBeNull();
  });
});

describe('CKR mapping', () => {
  const e = (name: string, code = 0): Error => {
    // The shape pkcs11js produces: message = CKR name (Pkcs11Error), native stack elsewhere.
    const x = new Error(name) as Error & { code: number };
    x.code = code;
    return x;
  };

  it('maps every specified CKR value', () => {
    expect(codeForCkr('CKR_PIN_INCORRECT')).toBe('HSM_PIN_INCORRECT');
    expect(codeForCkr('CKR_PIN_LOCKED')).toBe('HSM_PIN_LOCKED');
    for (const c of ['CKR_TOKEN_NOT_PRESENT', 'CKR_DEVICE_REMOVED', 'CKR_SLOT_ID_INVALID'])
      expect(codeForCkr(c)).toBe('HSM_TOKEN_ABSENT');
    for (const c of ['CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_USER_NOT_LOGGED_IN'])
      expect(codeForCkr(c)).toBe('HSM_SESSION_LOST');
    expect(codeForCkr('CKR_MECHANISM_INVALID')).toBe('HSM_MECHANISM_UNSUPPORTED');
    expect(codeForCkr('CKR_FUNCTION_FAILED')).toBe('HSM_FAILED');
  });

  it('PIN locked (SoftHSM2 never locks, so the mapping is tested directly) and unknown CKR names', () => {
    const locked = mapPkcs11Error(e('CKR_PIN_LOCKED', 0xa4), 'C_Login');
    expect(locked.code).toBe('HSM_PIN_LOCKED');
    expect(locked.action).toBe('call-supervisor');
    expect(locked.details).toEqual({ op: 'C_Login', ckr: 'CKR_PIN_LOCKED' });
    const other = mapPkcs11Error(e('CKR_DEVICE_MEMORY', 0x31), 'C_GenerateKeyPair');
    expect(other.code).toBe('HSM_FAILED');
    expect(other.message).toContain('CKR_DEVICE_MEMORY');
    expect(other.message).toContain('C_GenerateKeyPair');
    expect(ckrOf(new TypeError('Argument 1 has wrong type'))).toBeNull();
    const native = mapPkcs11Error(new TypeError('Argument 1 has wrong type\n    at secret stack'), 'C_Sign');
    expect(native.code).toBe('HSM_FAILED');
    expect(native.message).not.toContain('stack');
  });
});

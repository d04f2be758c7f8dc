import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyCsr } from '../../core/pki/csr.js';
import { makeCsr, makeCsrGeneric, type CsrCurve } from './csr.js';
import { nodeCrypto } from './pki.js';

const dir = mkdtempSync(join(tmpdir(), 'ls-sim-csr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The element at `pos` of DER `der`: where its contents start and where it ends. */
function element(der: Uint8Array, pos: number): { start: number; end: number } {
  let len = der[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  return { start, end: start + len };
}

/** The CSR's certificationRequestInfo and signatureAlgorithm (hex): everything but the (randomised) signature. */
function parts(der: Uint8Array): { info: string; algorithm: string } {
  const outer = element(der, 0);
  expect(outer.end).toBe(der.length);
  const info = element(der, outer.start);
  const alg = element(der, info.end);
  const hex = (a: number, b: number) => Buffer.from(der.subarray(a, b)).toString('hex');
  return { info: hex(outer.start, info.end), algorithm: hex(info.end, alg.end) };
}

const SUBJECTS = [
  'LS1A2B3C4D', // what the station sends: the board's serial number (PrintableString)
  'LS-unit 42',
  "a'b(c)+d,e-f.g/h:i=j?k", // every PrintableString punctuation mark
  'Gerät Nº 7', // UTF8String
  'x_y@z', // not printable: UTF8String
  '#0c03616263', // @peculiar/x509 reads a leading # as hex: the generic path keeps its answer
  'say "hi"',
  'back\\slash',
];

describe('the board CSR, encoded directly', () => {
  for (const curve of ['P-256', 'P-384'] as CsrCurve[])
    it(`is the CSR @peculiar/x509 writes for the same key and subject (${curve}); openssl and the station verify it`, async () => {
      const key = generateKeyPairSync('ec', { namedCurve: curve === 'P-256' ? 'prime256v1' : 'secp384r1' });
      const spki = new Uint8Array(key.publicKey.export({ type: 'spki', format: 'der' }));
      for (const subject of SUBJECTS) {
        const fast = await makeCsr(key.privateKey, curve, subject);
        const generic = await makeCsrGeneric(key.privateKey, curve, subject);
        // ECDSA signatures are randomised: everything else is byte for byte the same.
        expect(parts(fast), subject).toEqual(parts(generic));
        const parsed = new x509.Pkcs10CertificateRequest(fast);
        expect(await parsed.verify(nodeCrypto)).toBe(true);
        const file = join(dir, 'csr.der');
        writeFileSync(file, fast);
        execFileSync('openssl', ['req', '-inform', 'DER', '-in', file, '-verify', '-noout'], { stdio: 'pipe' });
        const v = await verifyCsr(fast, { publicKeySpki: spki });
        expect(v.ok, subject).toBe(true);
      }
    });

  it('a changed signature does not verify (the proof of possession is real)', async () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const csr = await makeCsr(a.privateKey, 'P-256', 'LS00000001');
    const forged = new Uint8Array(csr);
    forged[forged.length - 5]! ^= 0x01; // a bit inside the signature's s value
    expect(await new x509.Pkcs10CertificateRequest(forged).verify(nodeCrypto)).toBe(false);
    const v = await verifyCsr(forged, {});
    expect(v.ok ? 'verified' : v.error.code).toBe('CSR_POP_FAILED');
  });
});

import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CryptoKeyPair } from './ecdsa.js';
import { Pkcs10CertificateRequest, Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { verifyCsr } from './csr.js';
import { toPem } from './pem.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { utf8 } from '../bytes.js';

const dir = mkdtempSync(join(tmpdir(), 'ls-csr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function makeCsr(curve: 'P-256' | 'P-384', cn = 'LS-000123') {
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const csr = await Pkcs10CertificateRequestGenerator.create({
    name: `CN=${cn}`,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: curve === 'P-256' ? 'SHA-256' : 'SHA-384' },
  });
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));
  return { der: new Uint8Array(csr.rawData), spki };
}

describe('verifyCsr', () => {
  it('accepts a good P-256 and P-384 CSR (and openssl agrees)', async () => {
    for (const curve of ['P-256', 'P-384'] as const) {
      const { der, spki } = await makeCsr(curve);
      const r = await verifyCsr(der, { publicKeySpki: spki });
      expect(r).toEqual({ ok: true, value: { publicKeySpki: spki, subject: 'CN=LS-000123', curve } });
      writeFileSync(join(dir, 'good.csr'), toPem(der, 'CERTIFICATE REQUEST'));
      const o = spawnSync('openssl', ['req', '-in', join(dir, 'good.csr'), '-verify', '-noout'], { encoding: 'utf8' });
      expect(o.status).toBe(0);
      expect(`${o.stdout}${o.stderr}`).toMatch(/verify OK/i);
    }
  });

  it('a tampered CSR fails proof of possession (openssl agrees)', async () => {
    const { der } = await makeCsr('P-256', 'LS-AAAAAA');
    const i = Buffer.from(der).indexOf(Buffer.from('LS-AAAAAA'));
    expect(i).toBeGreaterThan(0);
    const bad = new Uint8Array(der);
    bad[i + 3] = 'B'.charCodeAt(0);
    const r = await verifyCsr(bad);
    expect(r.ok ? '' : r.error.code).toBe('CSR_POP_FAILED');
    writeFileSync(join(dir, 'bad.csr'), toPem(bad, 'CERTIFICATE REQUEST'));
    const o = spawnSync('openssl', ['req', '-in', join(dir, 'bad.csr'), '-verify', '-noout'], { encoding: 'utf8' });
    // OpenSSL 3.0 exits 0 here but reports the failure.
    expect(`${o.stdout}${o.stderr}`).toMatch(/verify failure/i);
    expect(`${o.stdout}${o.stderr}`).not.toMatch(/verify OK/i);
    // Flipping a bit of the signature also fails.
    const bad2 = new Uint8Array(der);
    bad2[bad2.length - 5]! ^= 0x01;
    const r2 = await verifyCsr(bad2);
    expect(r2.ok ? '' : r2.error.code).toBe('CSR_POP_FAILED');
  });

  it('on every changed byte, accepts exactly what both the full parser and openssl accept', async () => {
    const { der } = await makeCsr('P-256', 'LS-CCCCCC');
    for (let i = 0; i < der.length; i += 2) {
      const bad = der.slice();
      bad[i] = bad[i]! ^ 0x04;
      const r = await verifyCsr(bad);
      let full = false;
      try {
        full = await new Pkcs10CertificateRequest(bad).verify();
      } catch {
        full = false;
      }
      writeFileSync(join(dir, 'changed.csr'), toPem(bad, 'CERTIFICATE REQUEST'));
      const o = spawnSync('openssl', ['req', '-in', join(dir, 'changed.csr'), '-verify', '-noout'], {
        encoding: 'utf8',
      });
      const openssl = /verify OK/i.test(`${o.stdout}${o.stderr}`);
      expect(`${i}:${r.ok}`).toBe(`${i}:${full && openssl}`);
      if (r.ok) expect(r.value.subject).toBe(new Pkcs10CertificateRequest(bad).subject);
    }
  });

  it('garbage and non-EC keys are CSR_INVALID; a different key than expected is refused', async () => {
    for (const g of [
      new Uint8Array(0),
      utf8('hello'),
      new Uint8Array([0x30, 0x82, 0xff, 0xff]),
      new Uint8Array(9000),
    ]) {
      const r = await verifyCsr(g);
      expect(r.ok ? '' : r.error.code).toBe('CSR_INVALID');
    }
    const { der } = await makeCsr('P-256');
    const r = await verifyCsr(der.subarray(0, der.length - 10));
    expect(r.ok ? '' : r.error.code).toBe('CSR_INVALID');
    const other = await createTestSigner('P-256');
    const mismatch = await verifyCsr(der, { publicKeySpki: other.publicKeySpki });
    expect(mismatch.ok ? '' : mismatch.error.message).toContain('different key');

    const rsa = await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    );
    const rsaCsr = await Pkcs10CertificateRequestGenerator.create({
      name: 'CN=x',
      keys: rsa,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' },
    });
    const rr = await verifyCsr(new Uint8Array(rsaCsr.rawData));
    expect(rr.ok ? '' : rr.error.message).toContain('not an EC P-256 or P-384');
  });
});

/** CRL and OCSP (core/pki/crl.ts, ocsp.ts) checked by openssl: signatures, reasons, hold, nonce, unknown. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from '@peculiar/x509';
import { systemClock } from '../ports.js';
import { createCrl, serialHexForDer } from './crl.js';
import { issueDeviceCertificate } from './device-cert.js';
import { certIdMatchesIssuer, createOcspResponse, ocspErrorResponse, parseOcspRequest } from './ocsp.js';
import { toPem } from './pem.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { createTestPki, must, type TestPki } from '../../testkit/pki/test-util.js';

let dir: string;
let pki: TestPki;
const devs: { der: Uint8Array; serial: string }[] = [];

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-revocation-'));
  pki = await createTestPki(systemClock);
  for (let i = 0; i < 3; i++) {
    const key = await createTestSigner('P-256');
    const c = must(
      await issueDeviceCertificate({
        ca: { signer: pki.ca.signer, certificate: pki.ca.der },
        publicKeySpki: key.publicKeySpki,
        profile: { validityDays: 1, subject: { commonName: 'dev-{serialNumber}' } },
        vars: { serialNumber: `SN${i}`, chipId: `0000000${i}`, model: 'M', workOrder: 'WO' },
        clock: systemClock,
      }),
    );
    devs.push({ der: c.der, serial: c.serialNumber });
    writeFileSync(join(dir, `dev${i}.pem`), toPem(c.der, 'CERTIFICATE'));
  }
  writeFileSync(join(dir, 'root.pem'), toPem(pki.root.der, 'CERTIFICATE'));
  writeFileSync(join(dir, 'ca.pem'), toPem(pki.ca.der, 'CERTIFICATE'));
  writeFileSync(join(dir, 'chain.pem'), toPem(pki.ca.der, 'CERTIFICATE') + toPem(pki.root.der, 'CERTIFICATE'));
});

afterAll(() => (process.env['KEEP'] ? undefined : rmSync(dir, { recursive: true, force: true })));

describe('CRL', () => {
  it('v2 CRL with number, AKI, reasons and hold; openssl verifies it and refuses the revoked certificate', async () => {
    const now = new Date();
    const der = must(
      await createCrl({
        signer: pki.ca.signer,
        issuerCertificate: pki.ca.der,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + 3600_000),
        crlNumber: 7,
        entries: [
          { serial: devs[0]!.serial, revokedAt: now.toISOString(), reason: 1 },
          { serial: devs[1]!.serial, revokedAt: now.toISOString(), reason: 6 },
        ],
      }),
    );
    writeFileSync(join(dir, 'crl.der'), der);
    const text = openssl(['crl', '-in', 'crl.der', '-inform', 'DER', '-CAfile', 'chain.pem', '-noout', '-text']);
    expect(text.out).toContain('verify OK');
    expect(text.out).toMatch(/Version 2/);
    expect(text.out).toMatch(/X509v3 CRL Number:\s*\n\s*7/);
    expect(text.out).toContain('X509v3 Authority Key Identifier');
    expect(text.out).toContain('Key Compromise');
    expect(text.out).toContain('Certificate Hold');
    expect(text.out).toContain('Next Update');
    openssl(['crl', '-in', 'crl.der', '-inform', 'DER', '-out', 'crl.pem']);
    const v0 = openssl([
      'verify',
      '-crl_check',
      '-CAfile',
      'root.pem',
      '-untrusted',
      'ca.pem',
      '-CRLfile',
      'crl.pem',
      'dev0.pem',
    ]);
    expect(v0.out).toContain('certificate revoked');
    const v2 = openssl([
      'verify',
      '-crl_check',
      '-CAfile',
      'root.pem',
      '-untrusted',
      'ca.pem',
      '-CRLfile',
      'crl.pem',
      'dev2.pem',
    ]);
    expect(v2.status).toBe(0);
  });

  it('refuses a signer that is not the issuer, bad numbers and bad reasons', async () => {
    const base = {
      signer: pki.ca.signer,
      issuerCertificate: pki.ca.der,
      thisUpdate: new Date(),
      nextUpdate: new Date(Date.now() + 1000),
      crlNumber: 1,
      entries: [],
    };
    expect((await createCrl({ ...base, signer: pki.root.signer })).ok).toBe(false);
    expect((await createCrl({ ...base, crlNumber: 0 })).ok).toBe(false);
    expect((await createCrl({ ...base, entries: [{ serial: 'ab', revokedAt: 'x', reason: 1 }] })).ok).toBe(false);
    expect(
      (await createCrl({ ...base, entries: [{ serial: 'ab', revokedAt: base.thisUpdate.toISOString(), reason: 7 }] }))
        .ok,
    ).toBe(false);
    expect(serialHexForDer('0f')).toBe('0f');
    expect(serialHexForDer('8f')).toBe('008f');
  });
});

describe('OCSP', () => {
  it('parses an openssl request, answers revoked/good/unknown with the nonce; openssl verifies the response', async () => {
    const req = openssl([
      'ocsp',
      '-issuer',
      'ca.pem',
      '-cert',
      'dev0.pem',
      '-cert',
      'dev2.pem',
      '-cert',
      'dev1.pem',
      '-reqout',
      'req.der',
    ]);
    expect(req.status).toBe(0);
    const parsed = must(parseOcspRequest(new Uint8Array(readFileSync(join(dir, 'req.der')))));
    expect(parsed.queries).toHaveLength(3);
    expect(parsed.nonce).not.toBeNull();
    expect(parsed.queries[0]!.serial).toBe(new X509Certificate(devs[0]!.der).serialNumber.replace(/^0+/, ''));
    for (const q of parsed.queries) expect(await certIdMatchesIssuer(q.certId, pki.ca.der)).toBe(true);
    expect(await certIdMatchesIssuer(parsed.queries[0]!.certId, pki.root.der)).toBe(false);
    const now = new Date();
    const resp = must(
      await createOcspResponse({
        signer: pki.ca.signer,
        issuerCertificate: pki.ca.der,
        producedAt: now,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + 600_000),
        nonce: parsed.nonce,
        answers: [
          { certId: parsed.queries[0]!.certId, status: { status: 'revoked', revokedAt: now.toISOString(), reason: 1 } },
          { certId: parsed.queries[1]!.certId, status: { status: 'good' } },
          { certId: parsed.queries[2]!.certId, status: { status: 'unknown' } },
        ],
      }),
    );
    writeFileSync(join(dir, 'resp.der'), resp);
    // -reqin without -cert: openssl checks the nonce of THIS request (with -cert it would build a new one).
    const out = openssl([
      'ocsp',
      '-reqin',
      'req.der',
      '-respin',
      'resp.der',
      '-issuer',
      'ca.pem',
      '-CAfile',
      'root.pem',
      '-resp_text',
    ]);
    expect(out.out).toContain('Response verify OK');
    expect(out.out.match(/Cert Status: (\w+)/g)).toEqual([
      'Cert Status: revoked',
      'Cert Status: good',
      'Cert Status: unknown',
    ]);
    expect(out.out).toMatch(/Reason: keyCompromise/i);
    expect(out.out).toContain('OCSP Nonce');
    expect(out.out).not.toMatch(/fraction|\.\d\d GMT/);
    expect(out.out).not.toMatch(/nonce verify error/i);
    const byCert = openssl([
      'ocsp',
      '-respin',
      'resp.der',
      '-issuer',
      'ca.pem',
      '-CAfile',
      'root.pem',
      '-no_nonce',
      '-cert',
      'dev0.pem',
      '-cert',
      'dev2.pem',
      '-cert',
      'dev1.pem',
    ]);
    expect(byCert.out).toMatch(/dev0.pem: revoked/);
  });

  it('malformed requests are refused; error responses are well-formed', () => {
    expect(parseOcspRequest(new Uint8Array([1, 2, 3])).ok).toBe(false);
    writeFileSync(join(dir, 'err.der'), ocspErrorResponse('malformedRequest'));
    expect(openssl(['ocsp', '-respin', 'err.der', '-resp_text', '-noverify']).out).toMatch(/malformedrequest/i);
  });
});

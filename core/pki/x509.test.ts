import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from '@peculiar/x509';
import { createRootCertificate, issueStationCertificate } from './ca.js';
import {
  DeviceCertificateProfileSchema,
  issueDeviceCertificate,
  lifetimeCappedAt,
  renderRevocationUrls,
  renderTemplate,
  type DeviceCertificateProfile,
} from './device-cert.js';
import { certificateSha256, fromPem, fromPemAll, fromPemChain, toPem } from './pem.js';
import { createTestSigner, failingSigner } from '../../testkit/pki/test-signer.js';
import { createTestPki, fixedClock, must, type TestPki } from '../../testkit/pki/test-util.js';
import { stationError } from '../errors.js';
import { sha256Hex } from '../bytes.js';

const NOW = '2026-03-01T12:00:00.000Z';
const clock = fixedClock(NOW);
const PROFILE: DeviceCertificateProfile = {
  subject: { commonName: '{serialNumber}', organization: 'Line Station Devices', serialNumber: '{chipId}' },
  sanUri: 'urn:line-station:device:{model}:{chipId}',
  validityDays: 3650,
  policyOid: '1.3.6.1.4.1.61211.1.1',
  extendedKeyUsage: ['clientAuth'],
};
const VARS = { serialNumber: 'LS-000123', chipId: '0a1b2c3d4e5f6071', model: 'ls-devkit', workOrder: 'WO-2026-001' };

let dir: string;
let pki: TestPki;

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-pki-'));
  pki = await createTestPki(clock);
  writeFileSync(join(dir, 'root.pem'), toPem(pki.root.der, 'CERTIFICATE'));
  writeFileSync(join(dir, 'ca.pem'), toPem(pki.ca.der, 'CERTIFICATE'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('device certificate issuance', () => {
  it('issues a chain that openssl verifies strictly, with the profile extensions', async () => {
    const device = await createTestSigner('P-256');
    const issued = must(
      await issueDeviceCertificate({
        ca: { signer: pki.ca.signer, certificate: pki.ca.der },
        publicKeySpki: device.publicKeySpki,
        profile: PROFILE,
        vars: VARS,
        clock,
      }),
    );
    writeFileSync(join(dir, 'device.pem'), toPem(issued.der, 'CERTIFICATE'));
    // openssl checks at the real current time; our certs are valid 2026-03-01 .. +10 y, so pin the time.
    const at = String(Math.floor(new Date(NOW).getTime() / 1000) + 3600);
    const v = openssl([
      'verify',
      '-x509_strict',
      '-attime',
      at,
      '-CAfile',
      'root.pem',
      '-untrusted',
      'ca.pem',
      'device.pem',
    ]);
    expect(v.out).toContain('device.pem: OK');
    expect(v.status).toBe(0);

    const text = execFileSync('openssl', ['x509', '-in', join(dir, 'device.pem'), '-noout', '-text'], {
      encoding: 'utf8',
    });
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\s/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Client Authentication\s/);
    expect(text).toContain('URI:urn:line-station:device:ls-devkit:0a1b2c3d4e5f6071');
    expect(text).toContain('Policy: 1.3.6.1.4.1.61211.1.1');
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).toContain('X509v3 Authority Key Identifier');
    expect(text).toContain('Subject: O = Line Station Devices, CN = LS-000123, serialNumber = 0a1b2c3d4e5f6071');
    expect(text).toContain('ecdsa-with-SHA256');

    const serialOut = execFileSync('openssl', ['x509', '-in', join(dir, 'device.pem'), '-noout', '-serial'], {
      encoding: 'utf8',
    });
    expect(serialOut.trim().toLowerCase()).toBe(`serial=${issued.serialNumber}`);
    expect(issued.serialNumber).toMatch(/^[4-7][0-9a-f]{31}$/); // positive, exactly 16 bytes
    expect(issued.sha256).toBe(await sha256Hex(issued.der));
    expect(issued.notBefore).toBe('2026-03-01T11:59:00.000Z');
    expect(issued.notAfter).toBe(new Date(new Date(NOW).getTime() + 3650 * 86_400_000).toISOString());
    const fp = execFileSync('openssl', ['x509', '-in', join(dir, 'device.pem'), '-noout', '-fingerprint', '-sha256'], {
      encoding: 'utf8',
    });
    expect(fp.split('=')[1]!.trim().replace(/:/g, '').toLowerCase()).toBe(issued.sha256);
  });

  it('never outlives its issuing CA: notAfter capped at the CA notAfter (openssl), and reported', async () => {
    const device = await createTestSigner('P-256');
    const caEnd = new X509Certificate(pki.ca.der).notAfter;
    const year5 = fixedClock(new Date(new Date(NOW).getTime() + 5 * 365 * 86_400_000));
    expect(lifetimeCappedAt({ certificate: pki.ca.der }, PROFILE.validityDays, clock.now())).toBeNull();
    expect(lifetimeCappedAt({ certificate: pki.ca.der }, PROFILE.validityDays, year5.now())).toBe(caEnd.toISOString());
    const issued = must(
      await issueDeviceCertificate({
        ca: { signer: pki.ca.signer, certificate: pki.ca.der },
        publicKeySpki: device.publicKeySpki,
        profile: PROFILE,
        vars: VARS,
        clock: year5,
      }),
    );
    expect(issued.notAfter).toBe(caEnd.toISOString());
    expect(issued.cappedAt).toBe(caEnd.toISOString());
    writeFileSync(join(dir, 'capped.pem'), toPem(issued.der, 'CERTIFICATE'));
    const end = openssl(['x509', '-in', 'capped.pem', '-noout', '-enddate']);
    expect(new Date(end.out.split('=')[1]!.trim()).getTime()).toBe(caEnd.getTime());
    const chain = ['-x509_strict', '-CAfile', 'root.pem', '-untrusted', 'ca.pem', 'capped.pem'];
    const before = String(Math.floor(caEnd.getTime() / 1000) - 60);
    expect(openssl(['verify', '-attime', before, ...chain]).status).toBe(0);
    // Uncapped, it would still have been valid here; the CA is not, and neither is the certificate.
    const after = String(Math.floor(caEnd.getTime() / 1000) + 60);
    expect(openssl(['verify', '-attime', after, ...chain]).out).toContain('certificate has expired');
  });

  it('carries the CRL distribution point and the OCSP address (openssl -ext), and refuses other URLs', async () => {
    const device = await createTestSigner('P-256');
    const revocationUrls = {
      crl: 'http://registry.example:8443/v1/crl/station-7.crl',
      ocsp: 'http://registry.example:8443/v1/ocsp',
    };
    const issued = must(
      await issueDeviceCertificate({
        ca: { signer: pki.ca.signer, certificate: pki.ca.der },
        publicKeySpki: device.publicKeySpki,
        profile: PROFILE,
        vars: VARS,
        clock,
        revocationUrls,
      }),
    );
    writeFileSync(join(dir, 'urls.pem'), toPem(issued.der, 'CERTIFICATE'));
    const ext = openssl(['x509', '-in', 'urls.pem', '-noout', '-ext', 'crlDistributionPoints,authorityInfoAccess']);
    expect(ext.status).toBe(0);
    expect(ext.out).toMatch(
      /X509v3 CRL Distribution Points:\s+Full Name:\s+URI:http:\/\/registry\.example:8443\/v1\/crl\/station-7\.crl/,
    );
    expect(ext.out).toMatch(/Authority Information Access:\s+OCSP - URI:http:\/\/registry\.example:8443\/v1\/ocsp/);
    const at = String(Math.floor(new Date(NOW).getTime() / 1000) + 3600);
    const v = openssl([
      'verify',
      '-x509_strict',
      '-attime',
      at,
      '-CAfile',
      'root.pem',
      '-untrusted',
      'ca.pem',
      'urls.pem',
    ]);
    expect(v.status, v.out).toBe(0);
    for (const bad of [{ crl: 'ldap://x/crl' }, { ocsp: 'http://a b/' }, { crl: 'http://x/\n' }]) {
      const r = await issueDeviceCertificate({
        ca: { signer: pki.ca.signer, certificate: pki.ca.der },
        publicKeySpki: device.publicKeySpki,
        profile: PROFILE,
        vars: VARS,
        clock,
        revocationUrls: bad,
      });
      expect(r.ok ? '' : r.error.code).toBe('CERT_ISSUE_FAILED');
    }
    expect(renderRevocationUrls({ crl: 'https://pki.example/crl/{stationId}.crl' }, 'st-1')).toEqual({
      crl: 'https://pki.example/crl/st-1.crl',
    });
  });

  it('rejects a certificate from another CA (openssl fails the chain)', async () => {
    const other = await createTestPki(clock);
    const device = await createTestSigner('P-256');
    const issued = must(
      await issueDeviceCertificate({
        ca: { signer: other.ca.signer, certificate: other.ca.der },
        publicKeySpki: device.publicKeySpki,
        profile: PROFILE,
        vars: VARS,
        clock,
      }),
    );
    writeFileSync(join(dir, 'foreign.pem'), toPem(issued.der, 'CERTIFICATE'));
    const at = String(Math.floor(new Date(NOW).getTime() / 1000) + 3600);
    const v = openssl([
      'verify',
      '-x509_strict',
      '-attime',
      at,
      '-CAfile',
      'root.pem',
      '-untrusted',
      'ca.pem',
      'foreign.pem',
    ]);
    expect(v.status).not.toBe(0);
  });

  it('uses the given serial and P-384 keys', async () => {
    const device = await createTestSigner('P-384');
    const serial = new Uint8Array([0x01, 0x02, 0x03]);
    const issued = must(
      await issueDeviceCertificate({
        ca: { signer: pki.ca.signer, certificate: pki.ca.der },
        publicKeySpki: device.publicKeySpki,
        profile: PROFILE,
        vars: VARS,
        clock,
        serialNumber: serial,
      }),
    );
    expect(issued.serialNumber).toBe('010203');
    expect(new X509Certificate(issued.der).serialNumber).toBe('010203');
  });

  it('refuses injection through template variables and bad templates', async () => {
    const device = await createTestSigner('P-256');
    const base = { ca: { signer: pki.ca.signer, certificate: pki.ca.der }, publicKeySpki: device.publicKeySpki, clock };
    for (const serialNumber of ['LS-1, O=Evil', 'LS+1', 'a b', '', 'x"y', 'ok\n', 'é']) {
      const r = await issueDeviceCertificate({ ...base, profile: PROFILE, vars: { ...VARS, serialNumber } });
      expect(r.ok ? 'ok' : r.error.code, serialNumber).toBe('CERT_ISSUE_FAILED');
    }
    const badChip = await issueDeviceCertificate({
      ...base,
      profile: PROFILE,
      vars: { ...VARS, chipId: 'ABCDEF0123' },
    });
    expect(badChip.ok).toBe(false);
    const unknown = await issueDeviceCertificate({
      ...base,
      profile: { ...PROFILE, sanUri: 'urn:x:{secret}' },
      vars: VARS,
    });
    expect(unknown.ok ? '' : unknown.error.message).toContain('{secret}');
    expect(renderTemplate('a{model}b{chipId}', VARS)).toEqual({ ok: true, value: 'als-devkitb0a1b2c3d4e5f6071' });
    expect(renderTemplate('a{model', VARS).ok).toBe(false);
  });

  it('refuses non-EC keys, a CA that does not match its signer, and a non-CA issuer', async () => {
    const device = await createTestSigner('P-256');
    const rsa = await globalThis.crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    );
    const rsaSpki = new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', rsa.publicKey));
    const r1 = await issueDeviceCertificate({
      ca: { signer: pki.ca.signer, certificate: pki.ca.der },
      publicKeySpki: rsaSpki,
      profile: PROFILE,
      vars: VARS,
      clock,
    });
    expect(r1.ok ? '' : r1.error.code).toBe('CERT_ISSUE_FAILED');
    const r2 = await issueDeviceCertificate({
      ca: { signer: pki.ca.signer, certificate: pki.root.der },
      publicKeySpki: device.publicKeySpki,
      profile: PROFILE,
      vars: VARS,
      clock,
    });
    expect(r2.ok ? '' : r2.error.message).toContain('does not belong to the signing key');
    const leaf = must(
      await issueDeviceCertificate({
        ca: { signer: pki.ca.signer, certificate: pki.ca.der },
        publicKeySpki: device.publicKeySpki,
        profile: PROFILE,
        vars: VARS,
        clock,
      }),
    );
    const r3 = await issueDeviceCertificate({
      ca: { signer: device, certificate: leaf.der },
      publicKeySpki: device.publicKeySpki,
      profile: PROFILE,
      vars: VARS,
      clock,
    });
    expect(r3.ok ? '' : r3.error.message).toContain('not a CA');
    const late = await issueDeviceCertificate({
      ca: { signer: pki.ca.signer, certificate: pki.ca.der },
      publicKeySpki: device.publicKeySpki,
      profile: PROFILE,
      vars: VARS,
      clock: fixedClock('2040-01-01T00:00:00Z'),
    });
    expect(late.ok ? '' : late.error.message).toContain('is not valid at');
  });

  it("returns the signer's own error when the HSM fails", async () => {
    const device = await createTestSigner('P-256');
    const broken = failingSigner(pki.ca.signer, stationError('HSM_SESSION_LOST', 'session closed'));
    const r = await issueDeviceCertificate({
      ca: { signer: broken, certificate: pki.ca.der },
      publicKeySpki: device.publicKeySpki,
      profile: PROFILE,
      vars: VARS,
      clock,
    });
    expect(r.ok ? '' : r.error.code).toBe('HSM_SESSION_LOST');
    // A signer that returns garbage is caught by the self-check / length check.
    const liar = { ...pki.ca.signer, sign: async () => ({ ok: true as const, value: new Uint8Array(64).fill(7) }) };
    const r2 = await issueDeviceCertificate({
      ca: { signer: liar, certificate: pki.ca.der },
      publicKeySpki: device.publicKeySpki,
      profile: PROFILE,
      vars: VARS,
      clock,
    });
    expect(r2.ok).toBe(false);
  });
});

describe('board profiles in resources/boards', () => {
  it('every certificate block is a valid DeviceCertificateProfile and issues', async () => {
    const boards = join(process.cwd(), 'resources', 'boards');
    const files = readdirSync(boards).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    const device = await createTestSigner('P-256');
    for (const f of files) {
      const profile = JSON.parse(readFileSync(join(boards, f), 'utf8')).certificate;
      expect(DeviceCertificateProfileSchema.safeParse(profile).success, f).toBe(true);
      const r = await issueDeviceCertificate({
        ca: { signer: pki.ca.signer, certificate: pki.ca.der },
        publicKeySpki: device.publicKeySpki,
        profile,
        vars: { ...VARS, serialNumber: 'AA:BB:CC:DD:EE:FF', model: 'ESP32-S3-DEVKITC-1' },
        clock,
      });
      expect(r.ok, f).toBe(true);
    }
  });
});

describe('CA and station certificates', () => {
  it('root and issuing CA carry the CA profile', () => {
    const root = execFileSync('openssl', ['x509', '-in', join(dir, 'root.pem'), '-noout', '-text'], {
      encoding: 'utf8',
    });
    expect(root).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE\s/);
    expect(root).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(root).toContain('Subject: O = Line Station Test, CN = Test Root CA');
    expect(root).toContain('Issuer: O = Line Station Test, CN = Test Root CA');
    const ca = execFileSync('openssl', ['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text'], { encoding: 'utf8' });
    expect(ca).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(ca).toContain('X509v3 Authority Key Identifier');
  });

  it('station certificate verifies and has digitalSignature only', async () => {
    const st = await createTestSigner('P-256');
    const der = must(
      await issueStationCertificate({
        issuer: { signer: pki.ca.signer, certificate: pki.ca.der },
        subjectPublicKeySpki: st.publicKeySpki,
        stationId: 'station-07',
        validityDays: 825,
        extendedKeyUsage: ['1.3.6.1.4.1.61211.2.1'],
        clock,
      }),
    );
    writeFileSync(join(dir, 'station.pem'), toPem(der, 'CERTIFICATE'));
    const at = String(Math.floor(new Date(NOW).getTime() / 1000) + 60);
    const v = openssl([
      'verify',
      '-x509_strict',
      '-attime',
      at,
      '-CAfile',
      'root.pem',
      '-untrusted',
      'ca.pem',
      '-purpose',
      'any',
      'station.pem',
    ]);
    expect(v.out).toContain('station.pem: OK');
    const text = execFileSync('openssl', ['x509', '-in', join(dir, 'station.pem'), '-noout', '-text'], {
      encoding: 'utf8',
    });
    expect(text).toContain('CN = station-07');
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\s/);
    expect(text).toContain('1.3.6.1.4.1.61211.2.1');
  });

  it('pathLen 0 CA cannot issue CA certificates; DN values are not parsed', async () => {
    const sub = await createTestSigner('P-256');
    const { issueCaCertificate } = await import('./ca.js');
    const r = await issueCaCertificate({
      issuer: { signer: pki.ca.signer, certificate: pki.ca.der },
      subjectPublicKeySpki: sub.publicKeySpki,
      subject: { commonName: 'Sub' },
      validityDays: 10,
      clock,
    });
    expect(r.ok ? '' : r.error.message).toContain('pathLen 0');
    const s = await createTestSigner('P-384');
    const der = must(
      await createRootCertificate({ signer: s, subject: { commonName: 'CN=x, O=y' }, validityDays: 1, clock }),
    );
    const c = new X509Certificate(der);
    expect(c.subjectName.getField('CN')).toEqual(['CN=x, O=y']);
    expect(c.subjectName.getField('O')).toEqual([]);
    expect(c.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-384' } });
  });
});

describe('PEM', () => {
  it('round-trips and matches openssl', async () => {
    const pem = toPem(pki.root.der, 'CERTIFICATE');
    expect(must(fromPem(pem))).toEqual(pki.root.der);
    const der = execFileSync('openssl', ['x509', '-in', join(dir, 'root.pem'), '-outform', 'DER']);
    expect(new Uint8Array(der)).toEqual(pki.root.der);
    expect(await certificateSha256(pki.root.der)).toBe(await sha256Hex(new Uint8Array(der)));
    const chain = must(fromPemChain(toPem(pki.ca.der, 'CERTIFICATE') + '\n' + pem));
    expect(chain).toEqual([pki.ca.der, pki.root.der]);
  });

  it('rejects malformed PEM with INPUT_INVALID', () => {
    const pem = toPem(pki.root.der, 'CERTIFICATE');
    const bad = [
      '',
      'hello',
      pem.replace('-----END CERTIFICATE-----', ''),
      pem.replace('END CERTIFICATE', 'END PRIVATE KEY'),
      pem.replace(/\n([A-Za-z0-9])/, '\n!$1'),
      `junk\n${pem}`,
      pem.replace('-----BEGIN CERTIFICATE-----\nM', '-----BEGIN CERTIFICATE-----\n'), // length not a multiple of 4
    ];
    for (const b of bad) {
      const r = fromPemAll(b);
      expect(r.ok ? 'ok' : r.error.code, JSON.stringify(b.slice(0, 40))).toBe('INPUT_INVALID');
    }
    expect(fromPem(pem + pem).ok).toBe(false);
    expect(fromPem(pem, 'PUBLIC KEY').ok).toBe(false);
    expect(fromPemChain(toPem(pki.root.der, 'PUBLIC KEY')).ok).toBe(false);
  });
});

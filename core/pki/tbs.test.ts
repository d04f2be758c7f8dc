/**
 * The direct DER encoder of device certificates (tbs.ts, used by device-cert.ts) against @peculiar/x509's generator,
 * which built them before: for the same fields both write the same tbsCertificate, compared field by field and then
 * as bytes, for a minimal profile and one with every optional extension; openssl reads and verifies the result.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuthorityInfoAccessExtension,
  BasicConstraintsExtension,
  CRLDistributionPointsExtension,
  CertificatePolicyExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
} from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { createTestPki, fixedClock, must, type TestPki } from '../../testkit/pki/test-util.js';
import { certificateParts } from './der.js';
import { issueDeviceCertificate, type DeviceCertificateProfile } from './device-cert.js';
import { toPem } from './pem.js';
import { time } from './tbs.js';
import { buildName, ekuOids, issue, keyIdExtensions, loadIssuer } from './x509.js';

const NOW = new Date('2026-03-01T12:00:00.789Z');
const clock = fixedClock(NOW);
const dir = mkdtempSync(join(tmpdir(), 'ls-tbs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VARS = { serialNumber: 'LS-000123', chipId: 'c0ffee0012345678', model: 'LS-1', workOrder: 'WO-7' };
const FULL: DeviceCertificateProfile = {
  subject: { commonName: '{serialNumber}', organization: 'Ünïcode Org', serialNumber: '{chipId}' },
  sanUri: 'urn:line-station:{model}:{serialNumber}',
  validityDays: 365,
  policyOid: '1.3.6.1.4.1.55555.1.2',
  extendedKeyUsage: ['clientAuth', '1.3.6.1.4.1.55555.3'],
};
const MINIMAL: DeviceCertificateProfile = { subject: { commonName: 'device {serialNumber}' }, validityDays: 30 };
const URLS = { crl: 'http://pki.example/crl/s1.crl', ocsp: 'http://pki.example/ocsp' };

let pki: TestPki;
let device: TestSigner;

beforeAll(async () => {
  pki = await createTestPki(clock);
  device = await createTestSigner('P-256');
});

/** The device certificate as @peculiar/x509's generator built it (the code before tbs.ts), for the same fields. */
async function peculiarBuilt(
  profile: DeviceCertificateProfile,
  serial: Uint8Array,
  notAfter: Date,
  urls?: typeof URLS,
): Promise<Uint8Array> {
  const ca = { signer: pki.ca.signer, certificate: pki.ca.der };
  const issuerCert = must(loadIssuer(ca, NOW, false));
  const render = (t: string) => t.replace(/\{(\w+)\}/g, (_, k: keyof typeof VARS) => VARS[k]);
  const eku = profile.extendedKeyUsage ?? [];
  const name = must(
    buildName({
      commonName: render(profile.subject.commonName),
      organization: profile.subject.organization && render(profile.subject.organization),
      serialNumber: profile.subject.serialNumber && render(profile.subject.serialNumber),
    }),
  );
  const issued = must(
    await issue({
      signer: ca.signer,
      issuerCert,
      subject: name,
      subjectSpki: device.publicKeySpki,
      notBefore: new Date(NOW.getTime() - 60_000),
      notAfter,
      serial,
      extensions: async (crypto) => [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        ...(eku.length ? [new ExtendedKeyUsageExtension(ekuOids(eku), false)] : []),
        ...(profile.sanUri
          ? [new SubjectAlternativeNameExtension([{ type: 'url', value: render(profile.sanUri) }], false)]
          : []),
        ...(profile.policyOid ? [new CertificatePolicyExtension([profile.policyOid], false)] : []),
        ...(urls ? [new CRLDistributionPointsExtension([urls.crl], false)] : []),
        ...(urls ? [new AuthorityInfoAccessExtension({ ocsp: [urls.ocsp] }, false)] : []),
        ...(await keyIdExtensions(crypto, device.publicKeySpki, issuerCert, ca.signer.publicKeySpki)),
      ],
    }),
  );
  return issued.der;
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: 'pipe' });
}

describe('device certificate encoder', () => {
  for (const [label, profile, urls] of [
    ['minimal', MINIMAL, undefined],
    ['every optional extension', FULL, URLS],
  ] as const) {
    it(`writes the tbsCertificate @peculiar/x509 wrote (${label}), field by field and as bytes`, async () => {
      const serial = Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? 0x4a : i * 7));
      const mine = must(
        await issueDeviceCertificate({
          ca: { signer: pki.ca.signer, certificate: pki.ca.der },
          publicKeySpki: device.publicKeySpki,
          profile,
          vars: VARS,
          clock,
          serialNumber: serial,
          ...(urls ? { revocationUrls: urls } : {}),
        }),
      );
      const theirs = await peculiarBuilt(profile, serial, new Date(mine.notAfter), urls);
      const a = certificateParts(mine.der)!;
      const b = certificateParts(theirs)!;
      expect(a.serial).toBe(b.serial);
      expect(a.tbsAlgorithm).toEqual(b.tbsAlgorithm);
      expect(a.algorithm).toEqual(b.algorithm);
      expect(a.issuer).toEqual(b.issuer);
      expect([a.notBefore, a.notAfter]).toEqual([b.notBefore, b.notAfter]);
      expect(a.subject).toEqual(b.subject);
      expect(a.spki).toEqual(b.spki);
      expect(a.extensions.map((e) => e.oid)).toEqual(b.extensions.map((e) => e.oid));
      for (const [i, e] of a.extensions.entries()) {
        expect(e.critical, e.oid).toBe(b.extensions[i]!.critical);
        expect(e.value, e.oid).toEqual(b.extensions[i]!.value);
      }
      expect(a.tbs).toEqual(b.tbs);

      // openssl reads it and verifies it under the test PKI.
      const f = (n: string, der: Uint8Array) => {
        const p = join(dir, `${label.replace(/ /g, '-')}-${n}.pem`);
        writeFileSync(p, toPem(der, 'CERTIFICATE'));
        return p;
      };
      const text = openssl(['x509', '-in', f('device', mine.der), '-noout', '-text']);
      expect(text).toContain('Digital Signature');
      if (profile === FULL) {
        expect(text).toContain('URI:urn:line-station:LS-1:LS-000123');
        expect(text).toContain('OCSP - URI:http://pki.example/ocsp');
        expect(text).toContain('serialNumber = c0ffee0012345678');
      }
      const out = openssl([
        'verify',
        '-attime',
        String(Math.floor(NOW.getTime() / 1000)),
        '-CAfile',
        f('root', pki.root.der),
        '-untrusted',
        f('ca', pki.ca.der),
        f('device', mine.der),
      ]);
      expect(out).toMatch(/OK/);
    });
  }

  it('writes UTCTime through 2049 and GeneralizedTime from 2050, in whole seconds', () => {
    const str = (b: Uint8Array) => `${b[0]!.toString(16)}:${new TextDecoder().decode(b.subarray(2))}`;
    expect(str(time(new Date('2049-12-31T23:59:59.999Z')))).toBe('17:491231235959Z');
    expect(str(time(new Date('2050-01-01T00:00:00Z')))).toBe('18:20500101000000Z');
  });
});

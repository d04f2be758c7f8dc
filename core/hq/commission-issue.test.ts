/**
 * Commissioning, issuing side (core/hq/commission-issue.ts): the request a station builds passes HQ's checks, the
 * station CA certificate carries its profile (checked with openssl), device certificates of every bundled board
 * profile verify with openssl under it while a DNS-SAN certificate and a serverAuth certificate are refused, and
 * every hostile request or answer is refused with its code.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
} from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, sha256Hex, toBase64Url, utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { createRootCertificate, issueCaCertificate, issueRevocationSignerCertificate } from '../pki/ca.js';
import { verifyCertificateChain } from '../pki/chain.js';
import { createCsr } from '../pki/csr.js';
import { issueDeviceCertificate } from '../pki/device-cert.js';
import { signJws } from '../pki/jws.js';
import { toPem } from '../pki/pem.js';
import { buildName, issue, keyIdExtensions, loadIssuer, randomSerial } from '../pki/x509.js';
import type { Signer } from '../ports.js';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { fixedClock, must } from '../../testkit/pki/test-util.js';
import { COMMISSION_REQUEST_TYP, stationCaSubject, type CommissionRequest } from './commission.js';
import {
  buildCommissionRequest,
  checkCommissionRequest,
  issueStationCa,
  signCommissionAnswer,
  verifyCommissionAnswer,
  type BuiltCommissionRequest,
  type VerifiedCommissionRequest,
} from './commission-issue.js';

const NOW = new Date('2026-12-06T02:00:00Z');
const clock = fixedClock(NOW);
const ORG = 'Line Station';
const TOKEN = { manufacturer: 'SoftHSM project', model: 'SoftHSM v2', serial: '1234', label: 'station' };
const VARS = { serialNumber: 'LS-000123', chipId: '0a1b2c3d4e5f6071', model: 'ls-devkit', workOrder: 'WO-2026-001' };

let dir: string;
let hqRoot: { signer: TestSigner; der: Uint8Array };
let hqCa: { signer: TestSigner; der: Uint8Array };
let answerKey: { signer: TestSigner; der: Uint8Array };
let caSigner: TestSigner;
let stationSigner: TestSigner;
let built: BuiltCommissionRequest;

const pem = (name: string, ders: readonly Uint8Array[]): string => {
  const p = join(dir, name);
  writeFileSync(p, ders.map((d) => toPem(d, 'CERTIFICATE')).join(''));
  return p;
};
/** `openssl verify` with the HQ root as the only anchor; the exit status and output. */
function opensslVerify(leaf: Uint8Array, untrusted: readonly Uint8Array[], extra: string[] = []) {
  const r = spawnSync(
    'openssl',
    [
      'verify',
      '-attime',
      String(Math.floor(NOW.getTime() / 1000) + 60),
      '-CAfile',
      pem('root.pem', [hqRoot.der]),
      '-untrusted',
      pem('untrusted.pem', untrusted),
      ...extra,
      pem('leaf.pem', [leaf]),
    ],
    { encoding: 'utf8' },
  );
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function request(overrides: Partial<{ caSigner: Signer; stationSigner: Signer; stationId: string }> = {}) {
  return must(
    await buildCommissionRequest({
      caSigner: overrides.caSigner ?? caSigner,
      stationSigner: overrides.stationSigner ?? stationSigner,
      stationId: overrides.stationId ?? 'line-1',
      organization: ORG,
      token: TOKEN,
      requestId: '6f1c2b4a-3d5e-4f60-8a71-92b3c4d5e6f7',
      stationCertDays: 825,
      clock,
    }),
  );
}

/** Sign an arbitrary request payload with `signer`, x5c = [x5c]: the forger's tool. */
async function forge(payload: unknown, signer: Signer, x5c: Uint8Array, typ = COMMISSION_REQUEST_TYP) {
  return must(await signJws({ signer, payload: utf8(canonicalJson(payload)), header: { typ, x5c: [x5c] } }));
}

const check = (jws: unknown, expectStationId?: string) =>
  checkCommissionRequest(jws, { organization: ORG, now: NOW, ...(expectStationId ? { expectStationId } : {}) });

async function verified(): Promise<VerifiedCommissionRequest> {
  return must(await check(built.jws, 'line-1'));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-commission-issue-'));
  const rootSigner = await createTestSigner('P-384');
  const rootDer = must(
    await createRootCertificate({
      signer: rootSigner,
      subject: { commonName: 'Line Station HQ Root', organization: ORG },
      validityDays: 7300,
      clock,
    }),
  );
  hqRoot = { signer: rootSigner, der: rootDer };
  const hqCaSigner = await createTestSigner('P-256');
  hqCa = {
    signer: hqCaSigner,
    der: must(
      await issueCaCertificate({
        issuer: { signer: rootSigner, certificate: rootDer },
        subjectPublicKeySpki: hqCaSigner.publicKeySpki,
        subject: { commonName: 'Line Station HQ CA', organization: ORG },
        validityDays: 1825,
        pathLength: 1,
        clock,
      }),
    ),
  };
  const answerSigner = await createTestSigner('P-256');
  answerKey = {
    signer: answerSigner,
    der: must(
      await createRootCertificate({
        signer: answerSigner,
        subject: { commonName: 'registry' },
        validityDays: 365,
        clock,
      }),
    ),
  };
  caSigner = await createTestSigner('P-256');
  stationSigner = await createTestSigner('P-256');
  built = await request();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the request a station builds', () => {
  it('passes every check of headquarters', async () => {
    const v = await verified();
    expect(v.request.stationId).toBe('line-1');
    expect(v.requestSha256).toBe(await sha256Hex(built.jws));
    expect(v.caPublicKeySpki).toEqual(caSigner.publicKeySpki);
    expect(v.stationPublicKeySpki).toEqual(stationSigner.publicKeySpki);
  });

  it('openssl: the CSR self-signature verifies and names the station CA', () => {
    writeFileSync(join(dir, 'ca.csr'), toPem(built.caCsr, 'CERTIFICATE REQUEST'));
    const out = execFileSync('openssl', ['req', '-in', join(dir, 'ca.csr'), '-noout', '-verify', '-subject'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out).toContain('subject=O = Line Station, CN = Line Station Issuing CA line-1');
  });

  it('P-384 keys work too', async () => {
    const r = await request({
      caSigner: await createTestSigner('P-384'),
      stationSigner: await createTestSigner('P-384'),
      stationId: 'line-384',
    });
    expect((await check(r.jws, 'line-384')).ok).toBe(true);
  });
});

describe('the station CA certificate', () => {
  let caDer: Uint8Array;
  beforeAll(async () => {
    caDer = must(
      await issueStationCa({
        hqIssuer: { signer: hqCa.signer, certificate: hqCa.der },
        verified: await verified(),
        validityDays: 1095,
        now: NOW,
      }),
    ).der;
  });

  it('carries pathLen 0, keyCertSign+cRLSign, the name constraints and the EKUs (openssl x509 -text)', () => {
    const text = execFileSync('openssl', ['x509', '-in', pem('sca.pem', [caDer]), '-noout', '-text'], {
      encoding: 'utf8',
    });
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toMatch(
      /X509v3 Name Constraints: critical\s+Excluded:\s+DNS:\s+IP:0\.0\.0\.0\/0\.0\.0\.0\s+IP:0:0:0:0:0:0:0:0\/0:0:0:0:0:0:0:0/,
    );
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Client Authentication, OCSP Signing/);
    expect(text).toContain('Subject: O = Line Station, CN = Line Station Issuing CA line-1');
    expect(text).toContain('Issuer: O = Line Station, CN = Line Station HQ CA');
  });

  it('openssl: the station certificate made before it verifies under it up to the HQ root', () => {
    expect(opensslVerify(built.stationCertificate, [caDer, hqCa.der]).status).toBe(0);
  });

  it('openssl: device certificates of every bundled board profile verify (also -purpose sslclient)', async () => {
    const boards = join(process.cwd(), 'resources', 'boards');
    const files = readdirSync(boards).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) {
      const profile = (JSON.parse(readFileSync(join(boards, f), 'utf8')) as { certificate: unknown }).certificate;
      const device = await createTestSigner('P-256');
      const cert = must(
        await issueDeviceCertificate({
          ca: { signer: caSigner, certificate: caDer },
          publicKeySpki: device.publicKeySpki,
          profile: profile as never,
          vars: VARS,
          clock,
        }),
      );
      const r = opensslVerify(cert.der, [caDer, hqCa.der], ['-purpose', 'sslclient']);
      expect(r.status, `${f}: ${r.out}`).toBe(0);
      expect((await verifyCertificateChain([cert.der, caDer, hqCa.der], [hqRoot.der], NOW)).ok, f).toBe(true);
    }
  });

  it('openssl: the delegated revocation signer verifies under it', async () => {
    const rs = await createTestSigner('P-256');
    const cert = must(
      await issueRevocationSignerCertificate({
        issuer: { signer: caSigner, certificate: caDer },
        subjectPublicKeySpki: rs.publicKeySpki,
        validityDays: 30,
        clock,
      }),
    );
    expect(opensslVerify(cert.der, [caDer, hqCa.der], ['-purpose', 'ocsphelper']).status).toBe(0);
  });

  /** A leaf from the (stolen) station CA key with the given SAN and EKU: the attacker's certificate. */
  async function rogueLeaf(
    san: Array<{ type: 'dns' | 'ip' | 'email' | 'url'; value: string }>,
    eku: string[],
    commonName = 'LS-000999',
  ) {
    const leaf = await createTestSigner('P-256');
    const issuerCert = must(loadIssuer({ signer: caSigner, certificate: caDer }, NOW, false));
    return must(
      await issue({
        signer: caSigner,
        issuerCert,
        subject: must(buildName({ commonName, organization: 'Line Station Devices' })),
        subjectSpki: leaf.publicKeySpki,
        notBefore: new Date(NOW.getTime() - 60_000),
        notAfter: new Date(NOW.getTime() + 86_400_000),
        serial: randomSerial(),
        extensions: async (crypto) => [
          new BasicConstraintsExtension(false, undefined, true),
          new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
          new ExtendedKeyUsageExtension(eku, false),
          ...(san.length ? [new SubjectAlternativeNameExtension(san, false)] : []),
          ...(await keyIdExtensions(crypto, leaf.publicKeySpki, issuerCert, caSigner.publicKeySpki)),
        ],
      }),
    ).der;
  }

  it('attack: a stolen station CA key mints a TLS server certificate for a host: openssl and our verifier refuse it', async () => {
    for (const san of [
      { type: 'dns' as const, value: 'registry.example.com' },
      { type: 'ip' as const, value: '10.0.0.1' },
    ]) {
      const der = await rogueLeaf([san], [ExtendedKeyUsage.clientAuth]);
      const r = opensslVerify(der, [caDer, hqCa.der]);
      expect(r.status, san.type).not.toBe(0);
      expect(r.out, san.type).toMatch(/excluded subtree violation/);
      const ours = await verifyCertificateChain([der, caDer, hqCa.der], [hqRoot.der], NOW);
      expect(ours.ok ? '' : ours.error, san.type).toMatch(/excludes by its name constraints/);
    }
    // No SAN, a host name as CN: OpenSSL checks such a CN against the DNS subtrees too.
    const cnHost = await rogueLeaf([], [ExtendedKeyUsage.clientAuth], 'registry.example.com');
    expect(opensslVerify(cnHost, [caDer, hqCa.der]).out).toMatch(/excluded subtree violation/);
    // The same certificate with a URN SAN is a device identity and verifies: the control.
    const urn = await rogueLeaf([{ type: 'url', value: 'urn:line-station:device:x:1' }], [ExtendedKeyUsage.clientAuth]);
    expect(opensslVerify(urn, [caDer, hqCa.der]).status).toBe(0);
  });

  it('attack: a serverAuth or e-mail certificate from the station CA fails openssl -purpose (EKU constraint of the CA)', async () => {
    const server = await rogueLeaf([], [ExtendedKeyUsage.serverAuth]);
    const r = opensslVerify(server, [caDer, hqCa.der], ['-purpose', 'sslserver']);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/at 1 depth lookup: unsuitable certificate purpose/);
    const mail = await rogueLeaf([{ type: 'email', value: 'ceo@example.com' }], [ExtendedKeyUsage.emailProtection]);
    const m = opensslVerify(mail, [caDer, hqCa.der], ['-purpose', 'smimesign']);
    expect(m.status).not.toBe(0);
    expect(m.out).toMatch(/at 1 depth lookup: unsuitable certificate purpose/);
  });

  it('never outlives the HQ CA; refuses a station certificate EKU outside its own', async () => {
    const long = must(
      await issueStationCa({
        hqIssuer: { signer: hqCa.signer, certificate: hqCa.der },
        verified: await verified(),
        validityDays: 36500,
        now: NOW,
      }),
    );
    const hqCaNotAfter = must(loadIssuer({ signer: hqCa.signer, certificate: hqCa.der }, NOW, true)).notAfter;
    expect(new Date(long.notAfter).getTime()).toBe(hqCaNotAfter.getTime());
    const v = await verified();
    const r = await issueStationCa({
      hqIssuer: { signer: hqCa.signer, certificate: hqCa.der },
      verified: { ...v, stationCertificateEku: [ExtendedKeyUsage.serverAuth] },
      validityDays: 30,
      now: NOW,
    });
    expect(r.ok ? '' : r.error.code).toBe('COMMISSION_STATION_CERT_INVALID');
  });
});

describe('hostile requests', () => {
  const payload = (): CommissionRequest =>
    JSON.parse(new TextDecoder().decode(fromBase64Url(built.jws.split('.')[1]!))) as CommissionRequest;
  const code = async (jws: unknown, expect?: string) => {
    const r = await check(jws, expect);
    return r.ok ? 'ok' : r.error.code;
  };

  it('not a JWS, too large, wrong typ, extra field, alg none: COMMISSION_REQUEST_MALFORMED', async () => {
    expect(await code(42)).toBe('COMMISSION_REQUEST_MALFORMED');
    expect(await code('a.b')).toBe('COMMISSION_REQUEST_MALFORMED');
    expect(await code('A'.repeat(70_000))).toBe('COMMISSION_REQUEST_MALFORMED');
    expect(await code(await forge(payload(), stationSigner, built.stationCertificate, 'other+jws'))).toBe(
      'COMMISSION_REQUEST_MALFORMED',
    );
    expect(await code(await forge({ ...payload(), extra: 1 }, stationSigner, built.stationCertificate))).toBe(
      'COMMISSION_REQUEST_MALFORMED',
    );
    const [, p] = built.jws.split('.');
    const none = `${toBase64Url(utf8('{"alg":"none","typ":"' + COMMISSION_REQUEST_TYP + '"}'))}.${p}.`;
    expect(await code(none)).toBe('COMMISSION_REQUEST_MALFORMED');
  });

  it('tampered in transit (payload changed, signature kept): COMMISSION_SIGNATURE_INVALID', async () => {
    const [h, , s] = built.jws.split('.');
    const changed = toBase64Url(utf8(canonicalJson({ ...payload(), stationId: 'line-2' })));
    expect(await code(`${h}.${changed}.${s}`)).toBe('COMMISSION_SIGNATURE_INVALID');
  });

  it('signed by another key, or x5c is not the station certificate: COMMISSION_SIGNATURE_INVALID', async () => {
    const other = await createTestSigner('P-256');
    expect(await code(await forge(payload(), other, built.stationCertificate))).toBe('COMMISSION_SIGNATURE_INVALID');
    const otherReq = await request({ stationSigner: other });
    expect(await code(await forge(payload(), stationSigner, otherReq.stationCertificate))).toBe(
      'COMMISSION_SIGNATURE_INVALID',
    );
  });

  it('another station or organisation than expected: COMMISSION_SUBJECT_MISMATCH', async () => {
    expect(await code(built.jws, 'line-2')).toBe('COMMISSION_SUBJECT_MISMATCH');
    const r = await checkCommissionRequest(built.jws, { organization: 'Other Corp', now: NOW });
    expect(r.ok ? '' : r.error.code).toBe('COMMISSION_SUBJECT_MISMATCH');
  });

  it('a CSR for another name, or without proof of possession: COMMISSION_SUBJECT_MISMATCH / COMMISSION_CSR_INVALID', async () => {
    const wrongName = must(await createCsr(caSigner, { commonName: 'Line Station HQ CA', organization: ORG }));
    expect(
      await code(await forge({ ...payload(), caCsr: toBase64Url(wrongName) }, stationSigner, built.stationCertificate)),
    ).toBe('COMMISSION_SUBJECT_MISMATCH');
    const broken = new Uint8Array(built.caCsr);
    broken[broken.length - 5] = broken[broken.length - 5]! ^ 0x01; // inside the signature
    const r = await check(
      await forge({ ...payload(), caCsr: toBase64Url(broken) }, stationSigner, built.stationCertificate),
    );
    expect(r.ok ? '' : r.error.code).toBe('COMMISSION_CSR_INVALID');
  });

  it('a station certificate not signed by the CSR key (another CA key): COMMISSION_STATION_CERT_INVALID', async () => {
    const otherCa = await createTestSigner('P-256');
    const other = await request({ caSigner: otherCa });
    // Keep the genuine CSR, swap in the station certificate signed by another CA key (same name, same station key).
    const forged = await forge(
      { ...payload(), stationCertificate: toBase64Url(other.stationCertificate) },
      stationSigner,
      other.stationCertificate,
    );
    const r = await check(forged);
    expect(r.ok ? '' : r.error.message).toMatch(/not signed by the station CA key/);
  });

  it('the CA key as station key: COMMISSION_STATION_CERT_INVALID', async () => {
    const r = await buildCommissionRequest({
      caSigner,
      stationSigner: caSigner,
      stationId: 'line-1',
      organization: ORG,
      token: TOKEN,
      requestId: '6f1c2b4a-3d5e-4f60-8a71-92b3c4d5e6f7',
      stationCertDays: 30,
      clock,
    });
    expect(r.ok ? '' : r.error.code).toBe('COMMISSION_STATION_CERT_INVALID');
  });

  it('a CA certificate passed off as the station certificate: COMMISSION_STATION_CERT_INVALID', async () => {
    const transient = must(
      await createRootCertificate({
        signer: caSigner,
        subject: stationCaSubject('line-1', ORG),
        validityDays: 1,
        clock,
      }),
    );
    const caCert = must(
      await issueCaCertificate({
        issuer: { signer: caSigner, certificate: transient },
        subjectPublicKeySpki: stationSigner.publicKeySpki,
        subject: { commonName: 'line-1', organization: ORG },
        validityDays: 30,
        clock,
      }),
    );
    const r = await check(
      await forge({ ...payload(), stationCertificate: toBase64Url(caCert) }, stationSigner, caCert),
    );
    expect(r.ok ? '' : `${r.error.code} ${r.error.message}`).toMatch(/COMMISSION_STATION_CERT_INVALID .*CA:false/);
  });
});

describe('the answer', () => {
  async function answer(
    opts: { signer?: TestSigner; signerDer?: Uint8Array; caDer?: Uint8Array; chain?: Uint8Array[] } = {},
  ) {
    const v = await verified();
    const caDer =
      opts.caDer ??
      must(
        await issueStationCa({
          hqIssuer: { signer: hqCa.signer, certificate: hqCa.der },
          verified: v,
          validityDays: 1095,
          now: NOW,
        }),
      ).der;
    return must(
      await signCommissionAnswer({
        signer: opts.signer ?? answerKey.signer,
        signerCertificate: opts.signerDer ?? answerKey.der,
        registryId: 'hq-test',
        verified: v,
        caCertificate: caDer,
        hqChain: opts.chain ?? [hqCa.der, hqRoot.der],
        workOrders: ['WO-1'],
        now: NOW,
      }),
    ).jws;
  }
  const verifyOpts = async () => ({
    pinnedSignerCert: answerKey.der,
    stationId: 'line-1',
    requestId: built.request.requestId,
    requestSha256: built.requestSha256,
    stationCertificate: built.stationCertificate,
    caPublicKeySpki: caSigner.publicKeySpki,
    hqRootSha256: await sha256Hex(hqRoot.der),
    now: NOW,
  });
  const code = async (jws: string, o: Partial<Awaited<ReturnType<typeof verifyOpts>>> = {}) => {
    const r = await verifyCommissionAnswer(jws, { ...(await verifyOpts()), ...o });
    return r.ok ? 'ok' : r.error.code;
  };

  it('verifies with the pinned certificate and gives the certificates to install', async () => {
    const r = must(await verifyCommissionAnswer(await answer(), await verifyOpts()));
    expect(r.hqChain).toHaveLength(2);
    expect(r.answer.workOrders).toEqual(['WO-1']);
    expect(r.hqRootSha256).toBe(await sha256Hex(hqRoot.der));
  });

  it('attack: a fake registry signs with its own key and puts its certificate in x5c: refused', async () => {
    const fake = await createTestSigner('P-256');
    const fakeDer = must(
      await createRootCertificate({ signer: fake, subject: { commonName: 'registry' }, validityDays: 1, clock }),
    );
    expect(await code(await answer({ signer: fake, signerDer: fakeDer }))).toBe('COMMISSION_ANSWER_INVALID');
  });

  it('attack: a fake HQ chain (its own root and CA) is refused against the pinned root', async () => {
    const rootSigner = await createTestSigner('P-256');
    const fakeRoot = must(
      await createRootCertificate({
        signer: rootSigner,
        subject: { commonName: 'Line Station HQ Root', organization: ORG },
        validityDays: 10,
        clock,
      }),
    );
    const fakeCa = must(
      await issueStationCa({
        hqIssuer: { signer: rootSigner, certificate: fakeRoot },
        verified: await verified(),
        validityDays: 5,
        now: NOW,
      }),
    ).der;
    const jws = await answer({ caDer: fakeCa, chain: [fakeRoot] });
    expect(await code(jws)).toBe('COMMISSION_ANSWER_INVALID');
    // Without a pinned root the chain itself is consistent: the pinned answer key is what stops it then.
    expect(await code(jws, { hqRootSha256: undefined } as never)).toBe('ok');
  });

  it('an answer to another request, station or station certificate is refused', async () => {
    const jws = await answer();
    expect(await code(jws, { requestSha256: '0'.repeat(64) })).toBe('COMMISSION_ANSWER_INVALID');
    expect(await code(jws, { stationId: 'line-2' })).toBe('COMMISSION_ANSWER_INVALID');
    expect(await code(jws, { requestId: '00000000-0000-4000-8000-000000000000' })).toBe('COMMISSION_ANSWER_INVALID');
    const other = await request({ stationSigner: await createTestSigner('P-256') });
    expect(await code(jws, { stationCertificate: other.stationCertificate })).toBe('COMMISSION_ANSWER_INVALID');
  });

  it('a CA certificate for another key (not the one that signed the station certificate) is refused', async () => {
    const otherCaKey = await createTestSigner('P-256');
    const other = must(await check((await request({ caSigner: otherCaKey })).jws));
    const otherCa = must(
      await issueStationCa({
        hqIssuer: { signer: hqCa.signer, certificate: hqCa.der },
        verified: other,
        validityDays: 30,
        now: NOW,
      }),
    ).der;
    const jws = await answer({ caDer: otherCa });
    expect(await code(jws)).toBe('COMMISSION_ANSWER_INVALID');
    expect(await code(jws, { caPublicKeySpki: undefined } as never)).toBe('COMMISSION_ANSWER_INVALID');
  });
});

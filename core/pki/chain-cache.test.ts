/**
 * The memoised attestation chain check (chain-cache.ts): the same verdict and message as the full check
 * (chain.ts verifyCertificateChain) on good chains and on every tampered leaf byte of a sample, the memo is used and
 * bounded, and the attacks on it are refused: an intermediate with the cached one's subject but another key, an
 * intermediate that expired after it was cached, a leaf the cached intermediate did not sign. openssl verify agrees.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
  Extension as X509Extension,
  type Extension,
} from '@peculiar/x509';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { deviceIdentityNameConstraintsDer, OID_NAME_CONSTRAINTS } from './ca.js';
import { chainMemo, verifyLeafChain } from './chain-cache.js';
import { verifyCertificateChain } from './chain.js';
import { certificateParts } from './der.js';
import type { CryptoKeyPair } from './ecdsa.js';
import { toPem } from './pem.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const DAY = 86_400_000;
const ECDSA256 = { name: 'ECDSA', hash: 'SHA-256' };
const dir = mkdtempSync(join(tmpdir(), 'ls-chain-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Ca {
  readonly keys: CryptoKeyPair;
  readonly der: Uint8Array;
  readonly subject: string;
}

const keys = async (): Promise<CryptoKeyPair> =>
  (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;

async function root(name: string): Promise<Ca> {
  const k = await keys();
  const c = await X509CertificateGenerator.createSelfSigned({
    name: `CN=${name}`,
    keys: k,
    notBefore: new Date(NOW.getTime() - 10 * DAY),
    notAfter: new Date(NOW.getTime() + 3650 * DAY),
    signingAlgorithm: ECDSA256,
    extensions: [new BasicConstraintsExtension(true, 1, true), new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true)],
  });
  return { keys: k, der: new Uint8Array(c.rawData), subject: c.subject };
}

async function intermediate(parent: Ca, name: string, notAfter = new Date(NOW.getTime() + 3650 * DAY)): Promise<Ca> {
  const k = await keys();
  const c = await X509CertificateGenerator.create({
    subject: `CN=${name}`,
    issuer: parent.subject,
    publicKey: k.publicKey,
    signingKey: parent.keys.privateKey,
    notBefore: new Date(NOW.getTime() - 10 * DAY),
    notAfter,
    signingAlgorithm: ECDSA256,
    extensions: [new BasicConstraintsExtension(true, 0, true), new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true)],
  });
  return { keys: k, der: new Uint8Array(c.rawData), subject: c.subject };
}

async function leaf(issuer: Ca, chip: string, extensions?: Extension[]): Promise<Uint8Array> {
  const k = await keys();
  const c = await X509CertificateGenerator.create({
    subject: [{ CN: [`attest ${chip}`] }, { '2.5.4.5': [chip] }],
    issuer: issuer.subject,
    publicKey: k.publicKey,
    signingKey: issuer.keys.privateKey,
    notBefore: new Date(NOW.getTime() - DAY),
    notAfter: new Date(NOW.getTime() + 3650 * DAY),
    signingAlgorithm: ECDSA256,
    extensions: extensions ?? [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    ],
  });
  return new Uint8Array(c.rawData);
}

/** The verdict of both checks, which must agree (ok or the same message). */
async function both(chain: Uint8Array[], anchors: Uint8Array[], at = NOW): Promise<string> {
  const full = await verifyCertificateChain(chain, anchors, at);
  const memo = await verifyLeafChain(chain, anchors, at);
  const a = full.ok ? 'ok' : full.error;
  const b = memo.ok ? 'ok' : memo.error;
  expect(b).toBe(a);
  if (full.ok && memo.ok) {
    expect(memo.value.spki).toEqual(new Uint8Array(full.value.leaf.publicKey.rawData));
    expect(memo.value.serialNumbers).toEqual(full.value.leaf.subjectName.getField('2.5.4.5'));
    expect(memo.value.subject).toBe(full.value.leaf.subject);
  }
  return b;
}

/** openssl verify of `leafDer` under `rootDer` with `untrusted` at `at`: true when it verifies. */
function opensslVerifies(leafDer: Uint8Array, rootDer: Uint8Array, untrusted: Uint8Array[], at = NOW): boolean {
  const n = Math.random().toString(36).slice(2);
  const f = (name: string, pem: string) => {
    const p = join(dir, `${n}-${name}.pem`);
    writeFileSync(p, pem);
    return p;
  };
  const args = [
    'verify',
    '-attime',
    String(Math.floor(at.getTime() / 1000)),
    '-CAfile',
    f('root', toPem(rootDer, 'CERTIFICATE')),
  ];
  if (untrusted.length) args.push('-untrusted', f('inter', untrusted.map((d) => toPem(d, 'CERTIFICATE')).join('')));
  args.push(f('leaf', toPem(leafDer, 'CERTIFICATE')));
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

let vendorRoot: Ca;
let vendorCa: Ca;

beforeAll(async () => {
  vendorRoot = await root('Vendor Root');
  vendorCa = await intermediate(vendorRoot, 'Vendor Attestation CA');
});
beforeEach(() => chainMemo.clear());

describe('verifyLeafChain', () => {
  it('gives the full check verdict on good chains, and reuses one memo entry for every board of a vendor chain', async () => {
    for (const chip of ['c0ffee0000000001', 'c0ffee0000000002', 'c0ffee0000000003']) {
      const l = await leaf(vendorCa, chip);
      expect(await both([l, vendorCa.der], [vendorRoot.der])).toBe('ok');
      expect(opensslVerifies(l, vendorRoot.der, [vendorCa.der])).toBe(true);
    }
    expect(chainMemo.sizes()).toEqual({ certificates: 2, paths: 1 });
    // The simulator's shape: the leaf signed by the root, the root also in the chain.
    const direct = await leaf(vendorRoot, 'c0ffee0000000004');
    expect(await both([direct, vendorRoot.der], [vendorRoot.der])).toBe('ok');
    expect(await both([direct], [vendorRoot.der])).toBe('ok');
    expect(chainMemo.sizes().paths).toBe(3);
  });

  it('refuses an intermediate with the cached subject but another key, and a leaf it signed', async () => {
    const l = await leaf(vendorCa, 'c0ffee0000000010');
    expect(await both([l, vendorCa.der], [vendorRoot.der])).toBe('ok');
    // The attacker's "Vendor Attestation CA", self-made under an untrusted root of the same name.
    const rogueRoot = await root('Vendor Root');
    const rogueCa = await intermediate(rogueRoot, 'Vendor Attestation CA');
    const forged = await leaf(rogueCa, 'c0ffee0000000010');
    expect(await both([forged, rogueCa.der], [vendorRoot.der])).toMatch(/signature does not verify|not a trusted root/);
    // ... presented with the genuine (cached) intermediate: not signed by it.
    expect(await both([forged, vendorCa.der], [vendorRoot.der])).toMatch(/no trusted issuer found for leaf/);
    // ... with both: the genuine one cannot have signed it, the rogue one is not under the root.
    expect(await both([forged, vendorCa.der, rogueCa.der], [vendorRoot.der])).not.toBe('ok');
    expect(opensslVerifies(forged, vendorRoot.der, [vendorCa.der, rogueCa.der])).toBe(false);
  });

  it('refuses an intermediate that expired after it was cached, and one not yet valid', async () => {
    const shortCa = await intermediate(vendorRoot, 'Vendor Attestation CA 2', new Date(NOW.getTime() + 30 * DAY));
    const l = await leaf(shortCa, 'c0ffee0000000020');
    expect(await both([l, shortCa.der], [vendorRoot.der])).toBe('ok');
    expect(chainMemo.sizes().paths).toBe(1);
    const later = new Date(NOW.getTime() + 31 * DAY);
    expect(await both([l, shortCa.der], [vendorRoot.der], later)).toMatch(/intermediate certificate #1 .* expired/);
    expect(opensslVerifies(l, vendorRoot.der, [shortCa.der], later)).toBe(false);
    const before = new Date(NOW.getTime() - 11 * DAY);
    expect(await both([l, shortCa.der], [vendorRoot.der], before)).toMatch(/not valid before/);
  });

  it('refuses a leaf the cached intermediate did not sign (every byte of its signature changed in turn)', async () => {
    const l = await leaf(vendorCa, 'c0ffee0000000030');
    expect(await both([l, vendorCa.der], [vendorRoot.der])).toBe('ok');
    // The ECDSA-Sig-Value closes the certificate: change bytes of r and s (past its SEQUENCE and r's header).
    const sigStart = l.length - certificateParts(l)!.signature.length + 4;
    for (let i = sigStart; i < l.length; i += 3) {
      const bad = l.slice();
      bad[i] = bad[i]! ^ 0x01;
      expect(await both([bad, vendorCa.der], [vendorRoot.der])).not.toBe('ok');
    }
  });

  it('gives the full check verdict on every tampered byte of a leaf (sample)', async () => {
    const l = await leaf(vendorCa, 'c0ffee0000000040');
    expect(await both([l, vendorCa.der], [vendorRoot.der])).toBe('ok');
    for (let i = 0; i < l.length; i += 3) {
      const bad = l.slice();
      bad[i] = bad[i]! ^ 0x20;
      await both([bad, vendorCa.der], [vendorRoot.der]);
    }
  });

  it('refuses a leaf whose name an issuer excludes, before and after the memo holds the path', async () => {
    const k = await keys();
    const c = await X509CertificateGenerator.create({
      subject: 'CN=Constrained Vendor CA',
      issuer: vendorRoot.subject,
      publicKey: k.publicKey,
      signingKey: vendorRoot.keys.privateKey,
      notBefore: new Date(NOW.getTime() - 10 * DAY),
      notAfter: new Date(NOW.getTime() + 3650 * DAY),
      signingAlgorithm: ECDSA256,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new X509Extension(OID_NAME_CONSTRAINTS, true, deviceIdentityNameConstraintsDer()),
      ],
    });
    const ca: Ca = { keys: k, der: new Uint8Array(c.rawData), subject: c.subject };
    const withSan = (type: 'dns' | 'url', value: string) =>
      leaf(ca, 'c0ffee0000000050', [
        new BasicConstraintsExtension(false, undefined, true),
        new SubjectAlternativeNameExtension([{ type, value }], false),
      ]);
    const dns = await withSan('dns', 'board.example');
    expect(await both([dns, ca.der], [vendorRoot.der])).toMatch(/dNSName name that issuer .* excludes/);
    expect(await both([await leaf(ca, 'c0ffee0000000051'), ca.der], [vendorRoot.der])).toBe('ok');
    expect(chainMemo.sizes().paths).toBe(1);
    expect(await both([dns, ca.der], [vendorRoot.der])).toMatch(/dNSName name that issuer .* excludes/);
    expect(opensslVerifies(dns, vendorRoot.der, [ca.der])).toBe(false);
    expect(await both([await withSan('url', 'urn:board:1'), ca.der], [vendorRoot.der])).toBe('ok');
  });

  it('holds a bounded number of vendor paths', async () => {
    for (let i = 0; i < 34; i++) {
      const ca = await intermediate(vendorRoot, `Vendor CA ${i}`);
      expect(await both([await leaf(ca, 'c0ffee00000000aa'), ca.der], [vendorRoot.der])).toBe('ok');
    }
    expect(chainMemo.sizes().paths).toBeLessThanOrEqual(32);
    expect(chainMemo.sizes().certificates).toBeLessThanOrEqual(64);
  });
});

import 'reflect-metadata';
import type { CryptoKeyPair } from './ecdsa.js';
import { describe, expect, it, beforeAll } from 'vitest';
import {
  BasicConstraintsExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  X509CertificateGenerator,
  type X509Certificate,
} from '@peculiar/x509';
import { attestationMessage, verifyAttestation } from './attestation.js';
import { rawToDerSignature, derToRawSignature } from './ecdsa.js';
import { createTestSigner, type TestSigner } from './test-signer.js';
import { fixedClock } from './test-util.js';
import { sha256Hex, utf8 } from '../bytes.js';
import type { AttestationEvidence } from '../model.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const clock = fixedClock(NOW);
const CHIP = 'c0ffee0012345678';
const DAY = 86_400_000;
const ECDSA256 = { name: 'ECDSA', hash: 'SHA-256' };

interface Vendor {
  rootKeys: CryptoKeyPair;
  root: X509Certificate;
  interKeys: CryptoKeyPair;
  inter: X509Certificate;
}

async function keys(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
}

async function makeVendor(name: string, opts: { interIsCa?: boolean } = {}): Promise<Vendor> {
  const rootKeys = await keys();
  const root = await X509CertificateGenerator.createSelfSigned({
    name: `CN=${name} Root`,
    keys: rootKeys,
    notBefore: new Date(NOW.getTime() - 10 * DAY),
    notAfter: new Date(NOW.getTime() + 3650 * DAY),
    signingAlgorithm: ECDSA256,
    extensions: [new BasicConstraintsExtension(true, 1, true), new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true)],
  });
  const interKeys = await keys();
  const inter = await X509CertificateGenerator.create({
    subject: `CN=${name} Attestation CA`,
    issuer: root.subject,
    publicKey: interKeys.publicKey,
    signingKey: rootKeys.privateKey,
    notBefore: new Date(NOW.getTime() - 10 * DAY),
    notAfter: new Date(NOW.getTime() + 3650 * DAY),
    signingAlgorithm: ECDSA256,
    extensions: [new BasicConstraintsExtension(opts.interIsCa ?? true, 0, true)],
  });
  return { rootKeys, root, interKeys, inter };
}

async function makeLeaf(
  v: Vendor,
  chipId: string,
  opts: { notAfter?: Date; extensions?: Extension[] } = {},
): Promise<{ keys: CryptoKeyPair; leaf: X509Certificate }> {
  const k = await keys();
  const leaf = await X509CertificateGenerator.create({
    subject: [{ CN: [`attest ${chipId}`] }, { '2.5.4.5': [chipId] }],
    issuer: v.inter.subject,
    publicKey: k.publicKey,
    signingKey: v.interKeys.privateKey,
    notBefore: new Date(NOW.getTime() - DAY),
    notAfter: opts.notAfter ?? new Date(NOW.getTime() + 3650 * DAY),
    signingAlgorithm: ECDSA256,
    extensions: opts.extensions ?? [new BasicConstraintsExtension(false, undefined, true)],
  });
  return { keys: k, leaf };
}

async function evidenceFor(
  k: CryptoKeyPair,
  chain: X509Certificate[],
  nonce: Uint8Array,
  chipId: string,
): Promise<AttestationEvidence> {
  const raw = new Uint8Array(
    await crypto.subtle.sign(ECDSA256, k.privateKey, attestationMessage(nonce, chipId) as Uint8Array<ArrayBuffer>),
  );
  return { signature: rawToDerSignature(raw), chain: chain.map((c) => new Uint8Array(c.rawData)) };
}

const der = (c: X509Certificate) => new Uint8Array(c.rawData);
const nonce = crypto.getRandomValues(new Uint8Array(32));

let vendor: Vendor;
let good: { keys: CryptoKeyPair; leaf: X509Certificate };

beforeAll(async () => {
  vendor = await makeVendor('Vendor');
  good = await makeLeaf(vendor, CHIP);
});

async function codeOf(ev: AttestationEvidence, opts: { chipId?: string; anchors?: Uint8Array[]; n?: Uint8Array } = {}) {
  const r = await verifyAttestation({
    nonce: opts.n ?? nonce,
    chipId: opts.chipId ?? CHIP,
    evidence: ev,
    trustAnchors: opts.anchors ?? [der(vendor.root)],
    clock,
  });
  return r.ok ? 'ok' : r.error.code;
}

describe('attestationMessage', () => {
  it('is prefix || nonce || chipId', () => {
    const m = attestationMessage(new Uint8Array([1, 2]), 'ab');
    expect(Buffer.from(m).toString('hex')).toBe(
      Buffer.from('line-station/attest/v1\0').toString('hex') + '0102' + '6162',
    );
  });
});

describe('verifyAttestation', () => {
  it('accepts a good chain and signature', async () => {
    const ev = await evidenceFor(good.keys, [good.leaf, vendor.inter], nonce, CHIP);
    const r = await verifyAttestation({ nonce, chipId: CHIP, evidence: ev, trustAnchors: [der(vendor.root)], clock });
    expect(r).toEqual({
      ok: true,
      value: { leafSha256: await sha256Hex(der(good.leaf)), leafSubject: `CN=attest ${CHIP}, 2.5.4.5=${CHIP}` },
    });
    // The root may also be included in the evidence; other anchors may be configured.
    const other = await makeVendor('Other');
    const ev2 = await evidenceFor(good.keys, [good.leaf, vendor.inter, vendor.root], nonce, CHIP);
    expect(await codeOf(ev2, { anchors: [der(other.root), der(vendor.root)] })).toBe('ok');
  });

  it('rejects a chain to an untrusted root', async () => {
    const other = await makeVendor('Other');
    const ev = await evidenceFor(good.keys, [good.leaf, vendor.inter], nonce, CHIP);
    expect(await codeOf(ev, { anchors: [der(other.root)] })).toBe('ATTEST_CHAIN_INVALID');
    // A look-alike root with the same name but a different key.
    const fake = await makeVendor('Vendor');
    expect(await codeOf(ev, { anchors: [der(fake.root)] })).toBe('ATTEST_CHAIN_INVALID');
    // Missing intermediate.
    const ev2 = await evidenceFor(good.keys, [good.leaf], nonce, CHIP);
    expect(await codeOf(ev2)).toBe('ATTEST_CHAIN_INVALID');
  });

  it('rejects an expired leaf and an intermediate that is not a CA', async () => {
    const expired = await makeLeaf(vendor, CHIP, { notAfter: new Date(NOW.getTime() - 1000) });
    const ev = await evidenceFor(expired.keys, [expired.leaf, vendor.inter], nonce, CHIP);
    const r = await verifyAttestation({ nonce, chipId: CHIP, evidence: ev, trustAnchors: [der(vendor.root)], clock });
    expect(r.ok ? '' : r.error.code).toBe('ATTEST_CHAIN_INVALID');
    expect(r.ok ? '' : r.error.message).toContain('expired');
    const notCa = await makeVendor('NotCa', { interIsCa: false });
    const leaf = await makeLeaf(notCa, CHIP);
    const ev2 = await evidenceFor(leaf.keys, [leaf.leaf, notCa.inter], nonce, CHIP);
    expect(await codeOf(ev2, { anchors: [der(notCa.root)] })).toBe('ATTEST_CHAIN_INVALID');
  });

  it('rejects unknown critical extensions', async () => {
    const odd = await makeLeaf(vendor, CHIP, {
      extensions: [new Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([5, 0]))],
    });
    const ev = await evidenceFor(odd.keys, [odd.leaf, vendor.inter], nonce, CHIP);
    expect(await codeOf(ev)).toBe('ATTEST_CHAIN_INVALID');
  });

  it('rejects a leaf for another chip', async () => {
    const other = await makeLeaf(vendor, 'deadbeef00000001');
    const ev = await evidenceFor(other.keys, [other.leaf, vendor.inter], nonce, CHIP);
    expect(await codeOf(ev)).toBe('ATTEST_IDENTITY_MISMATCH');
  });

  it('rejects a signature over another nonce, chip or with another key', async () => {
    const otherNonce = crypto.getRandomValues(new Uint8Array(32));
    const ev = await evidenceFor(good.keys, [good.leaf, vendor.inter], otherNonce, CHIP);
    expect(await codeOf(ev)).toBe('ATTEST_SIGNATURE_INVALID');
    expect(await codeOf(ev, { n: otherNonce })).toBe('ok');
    const ev2 = await evidenceFor(await keys(), [good.leaf, vendor.inter], nonce, CHIP);
    expect(await codeOf(ev2)).toBe('ATTEST_SIGNATURE_INVALID');
    // Raw r||s instead of DER is refused.
    const ev3 = await evidenceFor(good.keys, [good.leaf, vendor.inter], nonce, CHIP);
    const raw = derToRawSignature(ev3.signature, 'P-256')!;
    expect(await codeOf({ ...ev3, signature: raw })).toBe('ATTEST_SIGNATURE_INVALID');
  });

  it('never throws on malformed evidence', async () => {
    const ev = await evidenceFor(good.keys, [good.leaf, vendor.inter], nonce, CHIP);
    const cases: unknown[] = [
      null,
      {},
      { signature: ev.signature, chain: [] },
      { signature: ev.signature, chain: [new Uint8Array([0x30, 0x03, 1, 2, 3])] },
      { signature: ev.signature, chain: [utf8('not a cert')] },
      { signature: ev.signature, chain: ['x'] },
      { signature: 'sig', chain: ev.chain },
      { signature: ev.signature, chain: [der(good.leaf).subarray(0, 100), der(vendor.inter)] },
      { signature: ev.signature, chain: Array(20).fill(der(vendor.inter)) },
    ];
    for (const c of cases) expect(await codeOf(c as AttestationEvidence)).toBe('ATTEST_CHAIN_INVALID');
    for (const sig of [new Uint8Array(0), new Uint8Array([0x30, 0x00]), new Uint8Array(200).fill(0x30)])
      expect(await codeOf({ ...ev, signature: sig })).toBe('ATTEST_SIGNATURE_INVALID');
    // A corrupted trust anchor is reported, not thrown.
    expect(await codeOf(ev, { anchors: [utf8('garbage')] })).toBe('ATTEST_CHAIN_INVALID');
  });

  it('DER <-> raw signature conversion is strict and round-trips', async () => {
    const s: TestSigner = await createTestSigner('P-384');
    for (let i = 0; i < 20; i++) {
      const r = await s.sign(new Uint8Array([i]));
      if (!r.ok) throw new Error('sign');
      const d = rawToDerSignature(r.value);
      expect(derToRawSignature(d, 'P-384')).toEqual(r.value);
      expect(derToRawSignature(new Uint8Array([...d, 0]), 'P-384')).toBeNull();
      expect(derToRawSignature(d, 'P-256')).toBeNull();
    }
  });
});

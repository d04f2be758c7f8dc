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
import {
  attestationMessage,
  decodeStatement,
  encodeStatement,
  measurementsDigest,
  verifyAttestation,
  type AttestationStatement,
  type ExpectedBinding,
} from './attestation.js';
import { rawToDerSignature, derToRawSignature } from './ecdsa.js';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { fixedClock } from '../../testkit/pki/test-util.js';
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
  return { protocol: 1, signature: rawToDerSignature(raw), chain: chain.map((c) => new Uint8Array(c.rawData)) };
}

async function statementEvidence(
  k: CryptoKeyPair,
  chain: X509Certificate[],
  statement: AttestationStatement,
): Promise<AttestationEvidence> {
  const bytes = encodeStatement(statement);
  const raw = new Uint8Array(await crypto.subtle.sign(ECDSA256, k.privateKey, bytes as Uint8Array<ArrayBuffer>));
  return {
    protocol: 2,
    statement: bytes,
    signature: rawToDerSignature(raw),
    chain: chain.map((c) => new Uint8Array(c.rawData)),
  };
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
      value: {
        leafSha256: await sha256Hex(der(good.leaf)),
        leafSubject: `CN=attest ${CHIP}, 2.5.4.5=${CHIP}`,
        statement: null,
      },
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

describe('protocol 2 statements', () => {
  const MEAS = {
    firmware: [{ name: 'application', version: '1.4.2', sha256: 'ab'.repeat(32) }],
    secureBoot: true,
    debugLocked: true,
    fuseDigest: 'cd'.repeat(32),
    configDigest: 'ef'.repeat(32),
  };

  it('has the documented byte layout and decodes only its canonical form', async () => {
    const key = new Uint8Array(91).fill(4);
    const st: AttestationStatement = {
      role: 'transport',
      nonce,
      chipId: CHIP,
      key,
      measurementsSha256: '11'.repeat(32),
    };
    const b = encodeStatement(st);
    const hex = Buffer.from(b).toString('hex');
    expect(hex).toBe(
      Buffer.from('line-station/attest/v2\0').toString('hex') +
        '02' +
        Buffer.from(nonce).toString('hex') +
        '10' +
        Buffer.from(CHIP).toString('hex') +
        '005b' +
        '04'.repeat(91) +
        '11'.repeat(32),
    );
    expect(decodeStatement(b)).toEqual(st);
    expect(decodeStatement(b.subarray(0, b.length - 1))).toBeNull();
    expect(decodeStatement(new Uint8Array([...b, 0]))).toBeNull();
    const upper = new Uint8Array(b);
    upper.set(utf8(CHIP.toUpperCase()), 23 + 1 + 32 + 1);
    expect(decodeStatement(upper)).toBeNull();
    const role3 = new Uint8Array(b);
    role3[23] = 3;
    expect(decodeStatement(role3)).toBeNull();
  });

  it('measurementsDigest is SHA-256 over the canonical JSON of the manifest measurements', async () => {
    const json =
      '{"configDigest":"' +
      'ef'.repeat(32) +
      '","debugLocked":true,"firmware":[{"name":"application","sha256":"' +
      'ab'.repeat(32) +
      '","version":"1.4.2"}],"fuseDigest":"' +
      'cd'.repeat(32) +
      '","secureBoot":true}';
    expect(await measurementsDigest(MEAS)).toBe(await sha256Hex(json));
  });

  it('verifies chain, signature and every bound field, each with its own code', async () => {
    const device = await createTestSigner('P-256');
    const digest = await measurementsDigest(MEAS);
    const st: AttestationStatement = {
      role: 'device',
      nonce,
      chipId: CHIP,
      key: device.publicKeySpki,
      measurementsSha256: digest,
    };
    const expected: ExpectedBinding = {
      role: 'device',
      key: device.publicKeySpki,
      curve: 'P-256',
      measurementsSha256: digest,
    };
    const verify = (ev: AttestationEvidence, over: Partial<ExpectedBinding> = {}) =>
      verifyAttestation({
        nonce,
        chipId: CHIP,
        evidence: ev,
        trustAnchors: [der(vendor.root)],
        clock,
        expected: { ...expected, ...over },
      });
    const check = async (ev: AttestationEvidence, over: Partial<ExpectedBinding> = {}) => {
      const r = await verify(ev, over);
      return r.ok ? 'ok' : r.error.code;
    };
    const chain = [good.leaf, vendor.inter];
    const ok = await statementEvidence(good.keys, chain, st);
    const r = await verify(ok);
    expect(r.ok && r.value.statement).toEqual(st);

    // Another key (a relay's), role, curve, measurements, nonce (replay), chip.
    const other = await createTestSigner('P-256');
    expect(await check(ok, { key: other.publicKeySpki })).toBe('ATTEST_KEY_MISMATCH');
    expect(await check(ok, { role: 'transport' })).toBe('ATTEST_KEY_MISMATCH');
    expect(await check(ok, { curve: 'P-384' })).toBe('ATTEST_KEY_TYPE_MISMATCH');
    expect(await check(ok, { measurementsSha256: '00'.repeat(32) })).toBe('ATTEST_MEASUREMENT_MISMATCH');
    const old = await statementEvidence(good.keys, chain, { ...st, nonce: new Uint8Array(32).fill(9) });
    expect(await check(old)).toBe('ATTEST_NONCE_MISMATCH');
    const chip = await statementEvidence(good.keys, chain, { ...st, chipId: 'deadbeef00000001' });
    expect(await check(chip)).toBe('ATTEST_IDENTITY_MISMATCH');
    // A statement altered after signing, or signed by another key; garbage instead of a statement.
    const altered = encodeStatement({ ...st, key: other.publicKeySpki });
    expect(await check({ ...ok, statement: altered } as AttestationEvidence)).toBe('ATTEST_SIGNATURE_INVALID');
    expect(await check(await statementEvidence(await keys(), chain, st))).toBe('ATTEST_SIGNATURE_INVALID');
    expect(await check({ ...ok, statement: utf8('line-station/attest/v2\0junk') } as AttestationEvidence)).toBe(
      'ATTEST_STATEMENT_INVALID',
    );
  });
});

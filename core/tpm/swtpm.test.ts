/**
 * core/tpm against a real TPM (swtpm, testkit/tpm/swtpm.ts): EKs of three kinds against their certificates,
 * MakeCredential here + ActivateCredential there (and refused for another TPM's EK or another key), Certify and
 * Quote verified with our code, and the independent cross-check with tpm2-tools and openssl.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manufactureTpm, startSwtpm, tpm2tools, type LocalCa, type RunningSwtpm } from '../../testkit/tpm/swtpm.js';
import { toHex } from '../bytes.js';
import type { Result } from '../result.js';
import { parseAttest, parseSignature, verifyAttest } from './attest.js';
import { Tpm, type LoadedObject } from './commands.js';
import { TPMA_NV, TPMA_OBJECT, TPM_ALG, TPM_CC, TPM_RH } from './constants.js';
import type { TpmTransmit } from './transport.js';
import { makeCredential, type MadeCredential } from './credential.js';
import { EK_CERT_INDEX, createEk, readEkCertificate } from './ek.js';
import { pcrDigest } from './pcr.js';
import { objectName, parsePublic2b, publicMatchesSpki, publicToSpki } from './public.js';
import {
  attestationKeyTemplate,
  checkKeyPublic,
  deviceKeyTemplate,
  ekAuthorisation,
  srkTemplate,
  type EkKind,
} from './templates.js';

const run = promisify(execFile);

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

function spkiOf(certDer: Uint8Array): Uint8Array {
  const cert = AsnConvert.parse(certDer, Certificate);
  return new Uint8Array(AsnConvert.serialize(cert.tbsCertificate.subjectPublicKeyInfo));
}

const KINDS: readonly EkKind[] = ['rsa2048', 'eccP256', 'eccP384'];

describe('core/tpm on swtpm', () => {
  let root: string;
  let swA: RunningSwtpm;
  let swB: RunningSwtpm;
  let a: Tpm;
  let b: Tpm;
  let srk: LoadedObject;
  let ak: LoadedObject;
  let dev: LoadedObject;
  let ca: LocalCa;

  /** Create and load a key from `template` under the SRK of `tpm`. */
  async function key(tpm: Tpm, parent: number, template = attestationKeyTemplate()): Promise<LoadedObject> {
    const created = value(await tpm.create(parent, template));
    const loaded = value(await tpm.load(parent, created));
    return { handle: loaded.handle, public: created.public, publicBytes: created.publicBytes, name: loaded.name };
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ls-core-tpm-'));
    const caDir = join(root, 'vendor-ca');
    const [ma, mb] = await Promise.all([
      manufactureTpm({ dir: join(root, 'a'), localca: caDir }),
      manufactureTpm({ dir: join(root, 'b'), localca: caDir }),
    ]);
    ca = ma.ca;
    [swA, swB] = await Promise.all([startSwtpm({ dir: ma.dir }), startSwtpm({ dir: mb.dir })]);
    a = new Tpm(swA.transmit);
    b = new Tpm(swB.transmit);
    srk = value(await a.createPrimary(TPM_RH.OWNER, srkTemplate()));
    ak = await key(a, srk.handle, attestationKeyTemplate());
    dev = await key(a, srk.handle, deviceKeyTemplate());
    // swtpm (libtpms) holds 3 transient objects: the loaded keys stay usable without their parent.
    value(await a.flushContext(srk.handle));
  });
  afterAll(async () => {
    await Promise.all([swA?.stop(), swB?.stop()]);
    await rm(root, { recursive: true, force: true });
  });

  it('reads the TPM properties (manufacturer, lockout state, NV buffer)', async () => {
    const info = value(await a.info());
    expect(info.manufacturer).toBe('IBM');
    expect(info.inLockout).toBe(false);
    expect(info.nvBufferMax).toBeGreaterThan(0);
    expect(info.nvIndexMax).toBeGreaterThanOrEqual(2048);
    expect(info.maxAuthFail).toBeGreaterThan(0);
  });

  it.each(KINDS)('the %s EK created from its template is the key its NV certificate certifies', async (kind) => {
    const cert = value(await readEkCertificate(a, kind));
    const ek = value(await createEk(a, kind));
    try {
      expect(await publicMatchesSpki(ek.public, spkiOf(cert))).toBe(true);
      // The same template on the other TPM gives another key: the certificate is not B's.
      const other = value(await createEk(b, kind));
      expect(await publicMatchesSpki(other.public, spkiOf(cert))).toBe(false);
      value(await b.flushContext(other.handle));
      // Our Name of the public area is the TPM's.
      expect(toHex(value(await objectName(ek.public)))).toBe(toHex(ek.name));
    } finally {
      value(await a.flushContext(ek.handle));
    }
  });

  it('keys created under the SRK have the template attributes and the Name we compute', async () => {
    expect(ak.public.objectAttributes).toBe(0x00050072);
    expect(dev.public.objectAttributes).toBe(0x00040072);
    expect(toHex(value(await objectName(ak.public)))).toBe(toHex(ak.name));
    const rp = value(await a.readPublic(dev.handle));
    expect(toHex(rp.publicBytes)).toBe(toHex(dev.publicBytes));
    expect(toHex(rp.name)).toBe(toHex(dev.name));
  });

  it.each(KINDS)('MakeCredential at the station, ActivateCredential by the TPM (%s EK)', async (kind) => {
    const ek = value(await createEk(a, kind));
    try {
      const secret = globalThis.crypto.getRandomValues(new Uint8Array(32));
      const activate = (made: MadeCredential): Promise<Result<Uint8Array>> =>
        a.activateCredential({
          activateHandle: ak.handle,
          keyHandle: ek.handle,
          ekAuth: ekAuthorisation(ek.public),
          ...made,
        });
      const got = value(await activate(value(await makeCredential(ek.public, secret, ak.name))));
      expect(toHex(got)).toBe(toHex(secret));

      // Made for another key's Name: the TPM refuses it (integrity check).
      const wrongName = value(await makeCredential(ek.public, secret, dev.name));
      const refused = await activate(wrongName);
      expect(refused.ok ? 'activated' : refused.error.code).toBe('TPM_COMMAND_FAILED');

      // Made for another TPM's EK (same template, B's key): A cannot recover it.
      const otherEk = value(await createEk(b, kind));
      const forB = value(await makeCredential(otherEk.public, secret, ak.name));
      value(await b.flushContext(otherEk.handle));
      const wrongTpm = await activate(forB);
      expect(wrongTpm.ok ? 'activated' : wrongTpm.error.code).toBe('TPM_COMMAND_FAILED');
      // No session left behind by the failures.
      expect(value(await a.getHandles(0x03000000)).length).toBe(0);
    } finally {
      value(await a.flushContext(ek.handle));
    }
  });

  it('attack: a relay that clears fixedTPM|fixedParent in the template and restores them in the answer is caught by the Names', async () => {
    // The rogue relay rewrites TPM2_Create: the TPM makes a duplicable key, the station is shown fixedTPM|fixedParent.
    const TAMPERED = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent;
    const flip = (bytes: Uint8Array, attrsAt: number): Uint8Array => {
      const out = bytes.slice();
      new DataView(out.buffer).setUint32(attrsAt, new DataView(out.buffer).getUint32(attrsAt) ^ TAMPERED);
      return out;
    };
    const rogue: TpmTransmit = async (cmd, opts) => {
      const dv = new DataView(cmd.buffer, cmd.byteOffset);
      if (dv.getUint32(6) !== TPM_CC.Create) return swB.transmit(cmd, opts);
      // header 10, parentHandle 4, authorizationSize 4 + area, inSensitive TPM2B, inPublic size 2, type 2, nameAlg 2
      const sens = 18 + dv.getUint32(14);
      const res = await swB.transmit(flip(cmd, sens + 2 + dv.getUint16(sens) + 6), opts);
      if (!res.ok || res.value.length <= 10) return res;
      const rv = new DataView(res.value.buffer, res.value.byteOffset);
      // header 10, parameterSize 4, outPrivate TPM2B, outPublic size 2, type 2, nameAlg 2
      return { ok: true, value: flip(res.value, 14 + 2 + rv.getUint16(14) + 6) };
    };
    const srkB = value(await b.createPrimary(TPM_RH.OWNER, srkTemplate()));
    try {
      const shown = value(await new Tpm(rogue).create(srkB.handle, attestationKeyTemplate()));
      expect(checkKeyPublic(shown.public, attestationKeyTemplate()).ok).toBe(true); // the lie looks right
      // The TPM will not load the doctored public area (it is bound to the private part) ...
      const doctored = await b.load(srkB.handle, shown);
      expect(doctored.ok ? 'loaded' : doctored.error.code).toBe('TPM_COMMAND_FAILED');
      // ... and the key it really made (duplicable) has another Name than the station computes from the lie,
      // so credential activation and TPM2_Certify, both bound to Names, cannot vouch for it.
      const realPublic = flip(shown.publicBytes, 4);
      const real = value(await b.load(srkB.handle, { private: shown.private, publicBytes: realPublic }));
      value(await b.flushContext(real.handle));
      expect(toHex(value(await objectName(shown.public)))).not.toBe(toHex(real.name));
      const ek = value(await createEk(b, 'eccP256'));
      const made = value(
        await makeCredential(ek.public, new Uint8Array(32).fill(1), value(await objectName(shown.public))),
      );
      const real2 = value(await b.load(srkB.handle, { private: shown.private, publicBytes: realPublic }));
      value(await b.flushContext(srkB.handle));
      const r = await b.activateCredential({
        activateHandle: real2.handle,
        keyHandle: ek.handle,
        ekAuth: ekAuthorisation(ek.public),
        ...made,
      });
      expect(r.ok ? 'activated' : r.error.details?.rcName).toMatch(/^TPM_RC_INTEGRITY/);
      value(await b.flushContext(ek.handle));
      value(await b.flushContext(real2.handle));
    } finally {
      await b.flushContext(srkB.handle);
    }
  });

  it('Certify: the AK signs the device key Name with the nonce; our verifier accepts it and nothing else', async () => {
    const nonce = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const c = value(await a.certify({ objectHandle: dev.handle, signHandle: ak.handle, qualifyingData: nonce }));
    const att = value(parseAttest(c.attest));
    expect(att.attested.kind).toBe('certify');
    if (att.attested.kind !== 'certify') return;
    expect(toHex(att.attested.name)).toBe(toHex(dev.name));
    expect(toHex(att.extraData)).toBe(toHex(nonce));
    expect(value(parseSignature(c.signatureBytes))).toEqual(c.signature);
    expect((await verifyAttest(ak.public, c.attest, c.signature)).ok).toBe(true);
    const tampered = c.attest.slice();
    tampered[tampered.length - 1]! ^= 1;
    const bad = await verifyAttest(ak.public, tampered, c.signature);
    expect(bad.ok ? 'verified' : bad.error.code).toBe('ATTEST_SIGNATURE_INVALID');
    const wrongKey = await verifyAttest(dev.public, c.attest, c.signature);
    expect(wrongKey.ok ? 'verified' : wrongKey.error.code).toBe('ATTEST_SIGNATURE_INVALID');
  });

  it('Quote: the PCR digest matches PCR_Read, the signature verifies (and tpm2_checkquote agrees)', async () => {
    const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode('boot')));
    value(await a.pcrExtend(16, [{ hashAlg: TPM_ALG.SHA256, digest }]));
    const selection = [{ hashAlg: TPM_ALG.SHA256, pcrs: [16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }];
    const nonce = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const q = value(await a.quote({ signHandle: ak.handle, qualifyingData: nonce, selection }));
    const att = value(parseAttest(q.attest));
    if (att.attested.kind !== 'quote') throw new Error('not a quote');
    expect(att.attested.pcrSelect).toEqual([{ hashAlg: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16] }]);
    const values = value(await a.pcrRead(selection));
    expect(values.length).toBe(12); // more than the 8 one PCR_Read returns
    expect(toHex(values.find((v) => v.pcr === 16)!.digest)).not.toBe(toHex(new Uint8Array(32)));
    expect(toHex(value(await pcrDigest(selection, values)))).toBe(toHex(att.attested.pcrDigest));
    expect((await verifyAttest(ak.public, q.attest, q.signature)).ok).toBe(true);

    // Independent: tpm2_checkquote with the AK as PEM from our SPKI, the attest and TPMT_SIGNATURE bytes.
    const spki = value(await publicToSpki(ak.public));
    const pem = `-----BEGIN PUBLIC KEY-----\n${Buffer.from(spki).toString('base64')}\n-----END PUBLIC KEY-----\n`;
    await writeFile(join(root, 'ak.pem'), pem);
    await writeFile(join(root, 'quote.msg'), q.attest);
    await writeFile(join(root, 'quote.sig'), q.signatureBytes);
    const tools = tpm2tools(swA);
    const checkquote = (qualifying: Uint8Array): Promise<unknown> =>
      tools('tpm2_checkquote', [
        ...['-u', join(root, 'ak.pem'), '-m', join(root, 'quote.msg'), '-s', join(root, 'quote.sig')],
        ...['-q', toHex(qualifying), '-g', 'sha256'],
      ]);
    await checkquote(nonce);
    await expect(checkquote(new Uint8Array(32))).rejects.toThrow();
  });

  it('independent cross-check: NV certificate and key public area read back with tpm2-tools and openssl', async () => {
    const tools = tpm2tools(swA);
    // A certificate followed by more data, so that the index is bigger than one NV buffer (chunked read and write).
    const cert = value(await readEkCertificate(a, 'rsa2048'));
    const { nvBufferMax } = value(await a.info());
    const data = globalThis.crypto.getRandomValues(new Uint8Array(Math.max(cert.length, nvBufferMax) + 200));
    data.set(cert);
    const index = 0x01500010;
    const attrs = TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA | TPMA_NV.WRITEDEFINE;
    value(await a.nvDefineSpace({ nvIndex: index, size: data.length, attributes: attrs }));
    value(await a.nvWrite(index, data));
    value(await a.nvWriteLock(index));
    const out = join(root, 'nv.bin');
    await tools('tpm2_nvread', ['0x01500010', '-C', 'o', '-o', out]);
    const readBack = new Uint8Array(await readFile(out));
    expect(toHex(readBack)).toBe(toHex(data));
    expect(toHex(value(await a.nvRead(index)))).toBe(toHex(data));
    const certFile = join(root, 'nv.der');
    await writeFile(certFile, readBack.subarray(0, cert.length));
    const pemFile = join(root, 'nv.pem');
    await run('openssl', ['x509', '-inform', 'der', '-in', certFile, '-out', pemFile]);
    const verified = await run('openssl', [
      ...['verify', '-CAfile', ca.rootCertPem, '-untrusted', ca.issuerCertPem, pemFile],
    ]);
    expect(verified.stdout).toContain('OK');
    const pub = value(await a.nvReadPublic(index));
    expect(pub.attributes & TPMA_NV.WRITELOCKED).toBeTruthy();
    const again = await a.nvWrite(index, cert);
    expect(again.ok ? '' : again.error.details?.rcName).toBe('TPM_RC_NV_LOCKED');

    // The device key, persisted, read back by tpm2_readpublic: same TPM2B_PUBLIC, same PEM key, same Name.
    value(await a.evictControl(dev.handle, 0x81000010));
    const pubFile = join(root, 'dev.pub');
    const devPem = join(root, 'dev.pem');
    const shown = await tools('tpm2_readpublic', ['-c', '0x81000010', '-o', pubFile]);
    await tools('tpm2_readpublic', ['-c', '0x81000010', '-o', devPem, '-f', 'pem']);
    const theirs = value(parsePublic2b(new Uint8Array(await readFile(pubFile))));
    expect(theirs).toEqual(dev.public);
    expect(shown.stdout).toContain(`name: ${toHex(dev.name)}`);
    expect(theirs.objectAttributes & TPMA_OBJECT.fixedTPM).toBeTruthy();
    const der = await run('openssl', ['pkey', '-pubin', '-in', devPem, '-outform', 'der'], { encoding: 'buffer' });
    expect(toHex(new Uint8Array(der.stdout))).toBe(toHex(value(await publicToSpki(dev.public))));
    value(await a.evictControl(0x81000010, 0x81000010));
    value(await a.nvUndefineSpace(index));
  });

  it('a TPM in dictionary-attack lockout: info() says so and authorisations are TPM_LOCKOUT', async () => {
    const tools = tpm2tools(swB);
    const bSrk = value(await b.createPrimary(TPM_RH.OWNER, srkTemplate()));
    const bKey = await key(b, bSrk.handle, attestationKeyTemplate());
    value(await b.flushContext(bSrk.handle));
    // Two failed authorisations lock the TPM (tpm2_dictionarylockout sets the policy; an index with a password).
    await tools('tpm2_dictionarylockout', ['-s', '-n', '2', '-t', '600', '-l', '600']);
    await tools('tpm2_nvdefine', ['0x01500020', '-C', 'o', '-s', '8', '-a', 'authread|authwrite', '-p', 'secret']);
    const codes: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await b.nvRead(0x01500020);
      codes.push(r.ok ? 'ok' : r.error.code === 'TPM_LOCKOUT' ? 'TPM_LOCKOUT' : String(r.error.details?.rcName));
    }
    expect(codes).toEqual(['TPM_RC_AUTH_FAIL (session 1)', 'TPM_RC_AUTH_FAIL (session 1)', 'TPM_LOCKOUT']);
    const info = value(await b.info());
    expect(info.inLockout).toBe(true);
    expect(info.lockoutCounter).toBe(2);
    // A DA-protected key with an empty auth value is refused as well (the driver's certify/quote see TPM_LOCKOUT).
    const q = await b.quote({ signHandle: bKey.handle, qualifyingData: new Uint8Array(32), selection: [] });
    expect(q.ok ? 'quoted' : q.error.code).toBe('TPM_LOCKOUT');
    value(await b.flushContext(bKey.handle));
  });

  it('the EK certificate indices are the profile indices', () => {
    expect(EK_CERT_INDEX).toEqual({ rsa2048: 0x01c00002, eccP256: 0x01c0000a, eccP384: 0x01c00016 });
  });
});

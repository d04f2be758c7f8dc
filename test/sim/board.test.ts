import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  createCipheriv,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  verify as nodeVerify,
  webcrypto,
  X509Certificate as NodeX509,
} from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoWorkOrder, simBaseline, simMeasurements } from './baseline.js';
import { attestationMessage, SimBoard, type SimResponse } from './board.js';
import { loadOrCreateVendorPki, nodeCrypto, toPem, type VendorPki } from './pki.js';

let dir: string;
let pki: VendorPki;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ls-sim-board-'));
  pki = await loadOrCreateVendorPki(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const newBoard = (model: 'LS-SIM-SE' | 'LS-SIM-BASIC', stateFile = join(dir, `b${n++}.json`)) =>
  SimBoard.open({ stateFile, model, pki, versions: [1], maxFrame: 4096 });

function okBody(r: SimResponse): Record<string, unknown> {
  if ('error' in r) throw new Error(`unexpected error response ${JSON.stringify(r)}`);
  return r;
}
const errCode = (r: SimResponse): unknown => (r['error'] as { code?: unknown } | undefined)?.code;
const bytes = (x: unknown): Uint8Array => {
  expect(x).toBeInstanceOf(Uint8Array);
  return x as Uint8Array;
};
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

/** A test CA that issues a device certificate for `spki` (what the station does, minus the HSM). */
async function issueFor(spki: Uint8Array, curve: 'P-256' | 'P-384' = 'P-256'): Promise<Uint8Array[]> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const ca = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    { name: 'CN=Test Device CA', keys: ca, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
    nodeCrypto,
  );
  const pub = await webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: curve }, true, ['verify']);
  const leaf = await x509.X509CertificateGenerator.create(
    {
      subject: 'CN=device',
      issuer: caCert.subject,
      publicKey: pub,
      signingKey: ca.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    },
    nodeCrypto,
  );
  return [new Uint8Array(leaf.rawData), new Uint8Array(caCert.rawData)];
}

describe('hello and identify', () => {
  it('negotiates the highest common version and refuses none', async () => {
    const b = await newBoard('LS-SIM-SE');
    expect(okBody(await b.handle('hello', { versions: [0, 1] }))).toMatchObject({ version: 1, maxFrame: 4096 });
    expect(errCode(await b.handle('hello', { versions: [2, 3] }))).toBe('VERSION');
    expect(errCode(await b.handle('hello', { versions: 'x' }))).toBe('BAD_REQUEST');
    expect(errCode(await b.handle('nope', {}))).toBe('UNSUPPORTED');
    expect(errCode(await b.handle('identify', null))).toBe('BAD_REQUEST');
  });

  it('reports identity, capabilities per model and empty state', async () => {
    const se = okBody(await (await newBoard('LS-SIM-SE')).handle('identify', {}));
    expect(se['chipId']).toMatch(/^[0-9a-f]{32}$/);
    expect(se['serialNumber']).toMatch(/^LS[0-9A-F]{8}$/);
    expect(se).toMatchObject({
      model: 'LS-SIM-SE',
      hardwareRevision: 'B2',
      firmwareVersion: '1.4.2',
      capabilities: { onboardKeygen: true, keyInjection: false, curves: ['P-256', 'P-384'] },
      state: { hasKey: false, certSha256: null, locked: false },
    });
    const basic = okBody(await (await newBoard('LS-SIM-BASIC')).handle('identify', {}));
    expect(basic['capabilities']).toEqual({ onboardKeygen: false, keyInjection: true, curves: ['P-256'] });
    expect(basic['chipId']).not.toBe(se['chipId']);
  });
});

describe('attestation', () => {
  it('signs prefix||nonce||chipId with the certified key; chain verifies to the vendor root (openssl)', async () => {
    const b = await newBoard('LS-SIM-SE');
    const nonce = new Uint8Array(webcrypto.getRandomValues(new Uint8Array(32)));
    const r = okBody(await b.handle('attest', { nonce }));
    const chain = r['chain'] as Uint8Array[];
    expect(chain).toHaveLength(2);
    const leaf = new NodeX509(Buffer.from(chain[0]!));
    const root = new NodeX509(Buffer.from(chain[1]!));
    expect(root.raw.equals(Buffer.from(pki.rootCert.rawData))).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.subject).toContain(`serialNumber=${b.chipId}`);
    expect(leaf.subject).toContain(`CN=LS attestation ${b.chipId}`);
    const sig = bytes(r['signature']);
    expect(sig[0]).toBe(0x30); // DER SEQUENCE
    const msg = Buffer.concat([Buffer.from('line-station/attest/v1\0'), nonce, Buffer.from(b.chipId)]);
    expect(Buffer.from(attestationMessage(nonce, b.chipId)).equals(msg)).toBe(true);
    expect(nodeVerify('sha256', msg, leaf.publicKey, sig)).toBe(true);
    // a different nonce does not verify
    const other = Buffer.from(msg);
    other[30] = other[30]! ^ 1;
    expect(nodeVerify('sha256', other, leaf.publicKey, sig)).toBe(false);
    // independent check with the openssl CLI
    writeFileSync(join(dir, 'leaf.pem'), leaf.toString());
    const out = execFileSync('openssl', ['verify', '-CAfile', pki.rootPath, join(dir, 'leaf.pem')]).toString();
    expect(out).toContain(': OK');
  });

  it('rejects a bad nonce and, with badAttestation, signs with a key that does not match', async () => {
    const b = await newBoard('LS-SIM-BASIC');
    expect(errCode(await b.handle('attest', { nonce: new Uint8Array(31) }))).toBe('BAD_REQUEST');
    expect(errCode(await b.handle('attest', {}))).toBe('BAD_REQUEST');
    b.faults = { badAttestation: true };
    const nonce = new Uint8Array(32).fill(7);
    const r = okBody(await b.handle('attest', { nonce }));
    const leaf = new NodeX509(Buffer.from((r['chain'] as Uint8Array[])[0]!));
    expect(nodeVerify('sha256', attestationMessage(nonce, b.chipId), leaf.publicKey, bytes(r['signature']))).toBe(
      false,
    );
  });
});

describe('on-board keygen (SE)', () => {
  it.each(['P-256', 'P-384'] as const)('generates a %s key and a CSR signed by it', async (curve) => {
    const b = await newBoard('LS-SIM-SE');
    const r = okBody(await b.handle('keygen', { curve, subject: 'LS-unit 42' }));
    const csr = new x509.Pkcs10CertificateRequest(bytes(r['csr']));
    expect(await csr.verify(nodeCrypto)).toBe(true);
    expect(csr.subject).toBe('CN=LS-unit 42');
    expect(Buffer.from(csr.publicKey.rawData).equals(Buffer.from(bytes(r['publicKey'])))).toBe(true);
    const pk = createPublicKey({ key: Buffer.from(bytes(r['publicKey'])), format: 'der', type: 'spki' });
    expect(pk.asymmetricKeyDetails?.namedCurve).toBe(curve === 'P-256' ? 'prime256v1' : 'secp384r1');
    expect(b.snapshot()).toMatchObject({ hasKey: true, certSha256: null, locked: false });
    // openssl agrees the CSR self-signature is valid
    writeFileSync(join(dir, 'csr.der'), bytes(r['csr']));
    execFileSync('openssl', ['req', '-inform', 'DER', '-in', join(dir, 'csr.der'), '-verify', '-noout'], {
      stdio: 'pipe',
    });
  });

  it('replaces a pending key on repeated keygen; refuses bad input, unsupported curves and BASIC boards', async () => {
    const b = await newBoard('LS-SIM-SE');
    const a1 = okBody(await b.handle('keygen', { curve: 'P-256', subject: 'x' }));
    const a2 = okBody(await b.handle('keygen', { curve: 'P-256', subject: 'x' }));
    expect(Buffer.from(bytes(a1['publicKey'])).equals(Buffer.from(bytes(a2['publicKey'])))).toBe(false);
    // the certificate must now match the second key, not the first
    expect(errCode(await b.handle('installCert', { chain: await issueFor(bytes(a1['publicKey'])) }))).toBe(
      'CERT_REFUSED',
    );
    expect(okBody(await b.handle('installCert', { chain: await issueFor(bytes(a2['publicKey'])) }))).toHaveProperty(
      'certSha256',
    );
    expect(errCode(await b.handle('keygen', { curve: 'P-521', subject: 'x' }))).toBe('BAD_REQUEST');
    expect(errCode(await b.handle('keygen', { curve: 'P-256', subject: '' }))).toBe('BAD_REQUEST');
    expect(errCode(await b.handle('keygen', { curve: 'P-256', subject: 'a\nb' }))).toBe('BAD_REQUEST');
    const basic = await newBoard('LS-SIM-BASIC');
    expect(errCode(await basic.handle('keygen', { curve: 'P-256', subject: 'x' }))).toBe('UNSUPPORTED');
    expect(errCode(await basic.handle('injectBegin', { curve: 'P-384' }))).toBe('UNSUPPORTED');
    expect(errCode(await b.handle('injectBegin', { curve: 'P-256' }))).toBe('UNSUPPORTED');
  });
});

/** What the HSM does for key injection, with node crypto: ECDH(station eph, board transport) -> KEK -> AES-KWP(PKCS#8). */
function wrapFor(transportSpki: Uint8Array) {
  const device = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const eph = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const transport = createPublicKey({ key: Buffer.from(transportSpki), format: 'der', type: 'spki' });
  const kek = diffieHellman({ privateKey: eph.privateKey, publicKey: transport });
  expect(kek.length).toBe(32);
  const c = createCipheriv('id-aes256-wrap-pad', kek, Buffer.from('A65959A6', 'hex'));
  const wrapped = Buffer.concat([c.update(device.privateKey.export({ type: 'pkcs8', format: 'der' })), c.final()]);
  return {
    curve: 'P-256',
    ephemeralKey: new Uint8Array(eph.publicKey.export({ type: 'spki', format: 'der' })),
    wrappedKey: new Uint8Array(wrapped),
    publicKey: new Uint8Array(device.publicKey.export({ type: 'spki', format: 'der' })),
    subject: 'LS-injected',
  };
}

describe('key injection (BASIC)', () => {
  it('unwraps an RFC 5649 wrap under the ECDH KEK, installs the key and proves possession with a CSR', async () => {
    const b = await newBoard('LS-SIM-BASIC');
    const t = okBody(await b.handle('injectBegin', { curve: 'P-256' }));
    const req = wrapFor(bytes(t['transportKey']));
    const r = okBody(await b.handle('injectKey', req));
    expect(Buffer.from(bytes(r['publicKey'])).equals(Buffer.from(req.publicKey))).toBe(true);
    const csr = new x509.Pkcs10CertificateRequest(bytes(r['csr']));
    expect(await csr.verify(nodeCrypto)).toBe(true);
    expect(Buffer.from(csr.publicKey.rawData).equals(Buffer.from(req.publicKey))).toBe(true);
    expect(b.snapshot().hasKey).toBe(true);
    // the transport key is single-use
    expect(errCode(await b.handle('injectKey', req))).toBe('BAD_REQUEST');
  });

  it('refuses a wrong public key, a tampered wrap and a wrap for another transport key', async () => {
    const b = await newBoard('LS-SIM-BASIC');
    let t = okBody(await b.handle('injectBegin', { curve: 'P-256' }));
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
      type: 'spki',
      format: 'der',
    });
    expect(
      errCode(await b.handle('injectKey', { ...wrapFor(bytes(t['transportKey'])), publicKey: new Uint8Array(other) })),
    ).toBe('BAD_REQUEST');
    t = okBody(await b.handle('injectBegin', { curve: 'P-256' }));
    const req = wrapFor(bytes(t['transportKey']));
    req.wrappedKey[5] = req.wrappedKey[5]! ^ 0x01;
    expect(errCode(await b.handle('injectKey', req))).toBe('BAD_REQUEST');
    const stale = okBody(await b.handle('injectBegin', { curve: 'P-256' }));
    okBody(await b.handle('injectBegin', { curve: 'P-256' })); // a new transport key replaces the old one
    expect(errCode(await b.handle('injectKey', wrapFor(bytes(stale['transportKey']))))).toBe('BAD_REQUEST');
    expect(errCode(await b.handle('injectKey', { curve: 'P-256' }))).toBe('BAD_REQUEST');
    expect(b.snapshot().hasKey).toBe(false);
  });
});

describe('certificate, measurements, lock, zeroize, persistence', () => {
  it('installs a matching certificate and answers SHA-256 of the stored leaf', async () => {
    const b = await newBoard('LS-SIM-SE');
    expect(errCode(await b.handle('installCert', { chain: [new Uint8Array([0x30, 0])] }))).toBe('NO_KEY');
    const k = okBody(await b.handle('keygen', { curve: 'P-384', subject: 'dev' }));
    const chain = await issueFor(bytes(k['publicKey']), 'P-384');
    expect(errCode(await b.handle('installCert', { chain: [new Uint8Array([1, 2, 3])] }))).toBe('CERT_REFUSED');
    expect(errCode(await b.handle('installCert', { chain: [] }))).toBe('BAD_REQUEST');
    b.faults = { refuseCert: true };
    expect(errCode(await b.handle('installCert', { chain }))).toBe('CERT_REFUSED');
    b.faults = {};
    const r = okBody(await b.handle('installCert', { chain }));
    expect(Buffer.from(bytes(r['certSha256'])).equals(Buffer.from(sha256(chain[0]!)))).toBe(true);
    const id = okBody(await b.handle('identify', {}));
    expect(Buffer.from(bytes((id['state'] as Record<string, unknown>)['certSha256'])).toString('hex')).toBe(
      Buffer.from(sha256(chain[0]!)).toString('hex'),
    );
  });

  it('measures per the published formulas; faults change exactly the faulted values', async () => {
    for (const model of ['LS-SIM-SE', 'LS-SIM-BASIC'] as const) {
      const b = await newBoard(model);
      const m = okBody(await b.handle('measure', {}));
      const want = (s: string) => createHash('sha256').update(s).digest('hex');
      const fw = m['firmware'] as { name: string; version: string; sha256: Uint8Array }[];
      expect(fw.map((f) => [f.name, f.version, Buffer.from(f.sha256).toString('hex')])).toEqual([
        ['bootloader', '2.0.1', want(`${model}:bootloader:2.0.1`)],
        ['application', '1.4.2', want(`${model}:application:1.4.2`)],
      ]);
      expect(m['secureBoot']).toBe(true);
      expect(m['debugLocked']).toBe(true);
      expect(Buffer.from(bytes(m['fuseDigest'])).toString('hex')).toBe(want(`${model}:fuses:v1`));
      expect(Buffer.from(bytes(m['configDigest'])).toString('hex')).toBe(want(`${model}:config:v1`));
      b.faults = { badFirmware: true, debugUnlocked: true };
      const bad = okBody(await b.handle('measure', {}));
      const badFw = bad['firmware'] as { name: string; sha256: Uint8Array }[];
      expect(Buffer.from(badFw[0]!.sha256).toString('hex')).toBe(want(`${model}:bootloader:2.0.1`));
      expect(Buffer.from(badFw[1]!.sha256).toString('hex')).not.toBe(want(`${model}:application:1.4.2`));
      expect(bad['debugLocked']).toBe(false);
      expect(simBaseline().firmware['application']).not.toContain(Buffer.from(badFw[1]!.sha256).toString('hex'));
    }
  });

  it('resources/work-orders/WO-DEMO-1.json carries the baseline of both models', () => {
    const file = JSON.parse(
      readFileSync(new URL('../../resources/work-orders/WO-DEMO-1.json', import.meta.url), 'utf8'),
    ) as Record<string, unknown>;
    expect(file).toEqual(demoWorkOrder());
    const base = file['baseline'] as { fuseDigests: string[]; firmware: Record<string, string[]> };
    for (const model of ['LS-SIM-SE', 'LS-SIM-BASIC'] as const) {
      const m = simMeasurements(model);
      expect(base.fuseDigests).toContain(Buffer.from(m.fuseDigest).toString('hex'));
      expect(base.firmware['application']).toContain(Buffer.from(m.firmware[1]!.sha256).toString('hex'));
    }
  });

  it('lock blocks identity changes; zeroize needs the chip id and erases key, cert and lock', async () => {
    const b = await newBoard('LS-SIM-SE');
    const k = okBody(await b.handle('keygen', { curve: 'P-256', subject: 'dev' }));
    const chain = await issueFor(bytes(k['publicKey']));
    okBody(await b.handle('installCert', { chain }));
    expect(okBody(await b.handle('lock', {}))).toEqual({ locked: true });
    expect(errCode(await b.handle('keygen', { curve: 'P-256', subject: 'dev' }))).toBe('LOCKED');
    expect(errCode(await b.handle('installCert', { chain }))).toBe('LOCKED');
    expect((okBody(await b.handle('identify', {}))['state'] as Record<string, unknown>)['locked']).toBe(true);
    const basic = await newBoard('LS-SIM-BASIC');
    okBody(await basic.handle('lock', {}));
    expect(errCode(await basic.handle('injectBegin', { curve: 'P-256' }))).toBe('LOCKED');
    expect(
      errCode(
        await basic.handle('injectKey', {
          ...wrapFor(
            new Uint8Array(
              generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' }),
            ),
          ),
        }),
      ),
    ).toBe('LOCKED');

    expect(errCode(await b.handle('zeroize', { chipId: '00'.repeat(16) }))).toBe('BAD_REQUEST');
    expect(b.snapshot().locked).toBe(true);
    expect(okBody(await b.handle('zeroize', { chipId: b.chipId }))).toEqual({ zeroized: true });
    expect(b.snapshot()).toMatchObject({ hasKey: false, certSha256: null, locked: false });
    okBody(await b.handle('keygen', { curve: 'P-256', subject: 'again' }));
  });

  it('persists identity, key, certificate and lock across restarts, atomically, with private keys only in storage', async () => {
    const file = join(dir, 'persist.json');
    const b = await newBoard('LS-SIM-SE', file);
    const k = okBody(await b.handle('keygen', { curve: 'P-256', subject: 'dev' }));
    const chain = await issueFor(bytes(k['publicKey']));
    const installed = okBody(await b.handle('installCert', { chain }));
    okBody(await b.handle('lock', {}));
    const again = await newBoard('LS-SIM-BASIC', file); // the stored model wins
    expect(again.model).toBe('LS-SIM-SE');
    expect(again.chipId).toBe(b.chipId);
    expect(again.serialNumber).toBe(b.serialNumber);
    expect(again.snapshot()).toEqual(b.snapshot());
    expect(again.snapshot().certSha256).toBe(Buffer.from(bytes(installed['certSha256'])).toString('hex'));
    // the same attestation identity signs after restart
    const nonce = new Uint8Array(32).fill(1);
    const r = okBody(await again.handle('attest', { nonce }));
    const leaf = new NodeX509(Buffer.from((r['chain'] as Uint8Array[])[0]!));
    expect(nodeVerify('sha256', attestationMessage(nonce, b.chipId), leaf.publicKey, bytes(r['signature']))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const stored = JSON.parse(readFileSync(file, 'utf8')) as {
      deviceKey: { keyPem: string };
      locked: boolean;
      chain: string[];
    };
    expect(stored.locked).toBe(true);
    expect(stored.chain[0]).toBe(toPem(chain[0]!, 'CERTIFICATE'));
    expect(
      createPublicKey(stored.deviceKey.keyPem)
        .export({ type: 'spki', format: 'der' })
        .equals(Buffer.from(bytes(k['publicKey']))),
    ).toBe(true);
  });
});

/**
 * Key injection round trip against every PKCS#11 implementation of the suite (SoftHSM2, NSS softoken), with
 * node:crypto playing the board:
 * transport key pair -> generateWrappedDeviceKey -> ECDH (x-coordinate) -> AES-KWP unwrap -> PKCS#8.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { Result } from '../../core/result.js';
import type { WrappedDeviceKey } from '../../core/ports.js';
import { openHsm, type HsmAdmin } from './index.js';
import { captureLogger } from '../../testkit/hsm.js';
import { TEST_TOKEN_KINDS, createKindToken, type KindToken } from '../../testkit/tokens.js';

const PIN = 'inject-PIN-8080';
const logger = captureLogger();

function must<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

const spki = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: 'der', type: 'spki' }));

/** What the board does: KEK = x-coordinate of ECDH(transport private, station ephemeral public); unwrap (RFC 5649). */
function boardUnwrap(transportPrivate: KeyObject, w: WrappedDeviceKey): KeyObject {
  const eph = createPublicKey({ key: Buffer.from(w.ephemeralPublicKeySpki), format: 'der', type: 'spki' });
  const kek = diffieHellman({ privateKey: transportPrivate, publicKey: eph });
  expect(kek.length).toBe(32);
  const d = createDecipheriv('id-aes256-wrap-pad', kek, Buffer.from('a65959a6', 'hex'));
  const pkcs8 = Buffer.concat([d.update(Buffer.from(w.wrappedKey)), d.final()]);
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
}

/** Private-key and secret-key objects visible in the token (token and session objects), via a raw session. */
function secretObjectsLeft(tok: KindToken): number {
  const P = pkcs11js;
  const r = tok.raw();
  try {
    let n = 0;
    for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_SECRET_KEY]) n += r.find([{ type: P.CKA_CLASS, value: cls }]).length;
    return n;
  } finally {
    r.close();
  }
}

describe.each(TEST_TOKEN_KINDS)('generateWrappedDeviceKey on %s', (kind) => {
  let tok: KindToken;
  let hsm: HsmAdmin;

  beforeAll(async () => {
    tok = await createKindToken(kind, 'station', PIN);
    hsm = must(await openHsm({ ...tok.open, pin: PIN, logger }));
  });

  afterAll(async () => {
    await hsm?.close();
    await tok?.cleanup();
  });

  it('round trip: the board unwraps a PKCS#8 P-256 key matching publicKeySpki, and it signs', async () => {
    expect(secretObjectsLeft(tok)).toBe(0);
    const transport = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const w = must(await hsm.generateWrappedDeviceKey({ curve: 'P-256', publicKeySpki: spki(transport.publicKey) }));
    expect(w.curve).toBe('P-256');
    expect(w.wrappedKey.length % 8).toBe(0);
    const deviceKey = boardUnwrap(transport.privateKey, w);
    expect(deviceKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const derivedPublic = spki(createPublicKey(deviceKey));
    expect(Buffer.from(derivedPublic).equals(Buffer.from(w.publicKeySpki))).toBe(true);
    const msg = Buffer.from('device CSR to be');
    const sig = sign('sha256', msg, deviceKey);
    expect(
      verify('sha256', msg, createPublicKey({ key: Buffer.from(w.publicKeySpki), format: 'der', type: 'spki' }), sig),
    ).toBe(true);
    // After the call: no private key (device, ephemeral) and no KEK remain in the token.
    expect(secretObjectsLeft(tok)).toBe(0);
  });

  it('a different transport key cannot unwrap (the KEK is bound to the board)', async () => {
    const transport = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const w = must(await hsm.generateWrappedDeviceKey({ curve: 'P-256', publicKeySpki: spki(transport.publicKey) }));
    expect(() => boardUnwrap(other.privateKey, w)).toThrow();
    // each call yields a fresh device key and a fresh ephemeral key
    const w2 = must(await hsm.generateWrappedDeviceKey({ curve: 'P-256', publicKeySpki: spki(transport.publicKey) }));
    expect(Buffer.from(w2.publicKeySpki).equals(Buffer.from(w.publicKeySpki))).toBe(false);
    expect(Buffer.from(w2.ephemeralPublicKeySpki).equals(Buffer.from(w.ephemeralPublicKeySpki))).toBe(false);
  });

  it('rejects bad transport keys with INPUT_INVALID and leaves nothing behind', async () => {
    const good = spki(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const offCurve = new Uint8Array(good);
    offCurve[offCurve.length - 1] = offCurve[offCurve.length - 1]! ^ 0x01;
    const cases: Uint8Array[] = [
      offCurve,
      spki(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey), // wrong curve for 'P-256'
      spki(generateKeyPairSync('ed25519').publicKey),
      new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]),
      new Uint8Array(0),
    ];
    for (const publicKeySpki of cases) {
      const r = await hsm.generateWrappedDeviceKey({ curve: 'P-256', publicKeySpki });
      expect(r.ok ? null : r.error.code).toBe('INPUT_INVALID');
    }
    const badCurve = await hsm.generateWrappedDeviceKey({ curve: 'P-999' as never, publicKeySpki: good });
    expect(badCurve.ok ? null : badCurve.error.code).toBe('INPUT_INVALID');
    expect(secretObjectsLeft(tok)).toBe(0);
  });

  it('P-384 injection is refused with HSM_MECHANISM_UNSUPPORTED (the ECDH truncation side is module-specific)', async () => {
    const t = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const r = await hsm.generateWrappedDeviceKey({ curve: 'P-384', publicKeySpki: spki(t.publicKey) });
    expect(r.ok ? null : r.error.code).toBe('HSM_MECHANISM_UNSUPPORTED');
    expect(r.ok ? '' : r.error.message).toMatch(/P-256 only/);
  });

  it('concurrent injections (and signing) do not interfere', async () => {
    must(await hsm.generateSigningKey('ca', 'P-256'));
    const signer = must(await hsm.signer('ca'));
    const runs = Array.from({ length: 12 }, async (_, i) => {
      const transport = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const [w, sig] = await Promise.all([
        hsm.generateWrappedDeviceKey({ curve: 'P-256', publicKeySpki: spki(transport.publicKey) }),
        signer.sign(new Uint8Array([i])),
      ]);
      expect(must(sig).length).toBe(64);
      const key = boardUnwrap(transport.privateKey, must(w));
      return Buffer.from(spki(createPublicKey(key))).equals(Buffer.from(must(w).publicKeySpki));
    });
    expect((await Promise.all(runs)).every(Boolean)).toBe(true);
    // only the long-term signing key remains
    expect(secretObjectsLeft(tok)).toBe(1);
    expect(JSON.stringify(logger.lines)).not.toContain(PIN);
  });

  it('after every session is closed behind its back (logged out too), injection recovers and leaves nothing behind', async () => {
    const transport = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const inject = () => hsm.generateWrappedDeviceKey({ curve: 'P-256', publicKeySpki: spki(transport.publicKey) });
    must(await inject()); // a pooled session exists now
    const r = tok.raw();
    r.lib.C_CloseAllSessions(r.slot); // closes the raw session too
    const lost = logger.lines.filter((l) => l.msg.includes('session lost')).length;
    const w = must(await inject());
    const key = boardUnwrap(transport.privateKey, w);
    expect(Buffer.from(spki(createPublicKey(key))).equals(Buffer.from(w.publicKeySpki))).toBe(true);
    expect(logger.lines.filter((l) => l.msg.includes('session lost')).length).toBeGreaterThan(lost);
    expect(secretObjectsLeft(tok)).toBe(1); // the signing key of the test before
  });
});

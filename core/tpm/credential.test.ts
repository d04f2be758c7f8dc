/**
 * credential.ts against an independent implementation of the TPM's side in node:crypto (OpenSSL): KDFa, KDFe and
 * AES-CFB as vectors, then MakeCredential unwrapped the way TPM2_ActivateCredential does it (Part 1 §24) for an RSA
 * 2048 EK (OAEP SHA-256, label "IDENTITY\0") and ECC P-256/P-384 EKs (ECDH + KDFe). The swtpm test does the same
 * with the real TPM.
 */
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createHmac,
  generateKeyPairSync,
  privateDecrypt,
  constants as C,
  type KeyObject,
} from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toHex } from '../bytes.js';
import { TPM_ALG, TPM_ECC } from './constants.js';
import { aesCfbEncrypt, kdfa, kdfe, makeCredential } from './credential.js';
import type { TpmPublic } from './public.js';
import { ekTemplate } from './templates.js';

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** KDFa with node's HMAC (Part 1 §11.4.10.2). */
function nodeKdfa(hash: string, key: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bits: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 1; Buffer.concat(out).length * 8 < bits; i++) {
    out.push(
      createHmac(hash, key)
        .update(Buffer.concat([u32(i), Buffer.from(label + '\0'), u, v, u32(bits)]))
        .digest(),
    );
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

/** KDFe with node's hash (Part 1 §11.4.10.3). */
function nodeKdfe(hash: string, z: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, bits: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 1; Buffer.concat(out).length * 8 < bits; i++) {
    out.push(
      createHash(hash)
        .update(Buffer.concat([u32(i), z, Buffer.from(label + '\0'), u, v]))
        .digest(),
    );
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

const b64u = (s: string): Buffer => Buffer.from(s, 'base64url');

/** TPM2_ActivateCredential's checks, in node:crypto: returns the credential or throws. */
function nodeActivate(ek: TpmPublic, priv: KeyObject, blob: Uint8Array, secret: Uint8Array, name: Uint8Array): Buffer {
  const hash = ek.nameAlg === TPM_ALG.SHA384 ? 'sha384' : 'sha256';
  const size = hash === 'sha384' ? 48 : 32;
  let seed: Buffer;
  if (ek.type === 'rsa') {
    seed = privateDecrypt(
      { key: priv, padding: C.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, oaepLabel: Buffer.from('IDENTITY\0') },
      secret,
    );
  } else {
    const s = Buffer.from(secret);
    const xl = s.readUInt16BE(0);
    const x = s.subarray(2, 2 + xl);
    const y = s.subarray(4 + xl);
    const ecdh = createECDH(ek.curve === TPM_ECC.NIST_P256 ? 'prime256v1' : 'secp384r1');
    ecdh.setPrivateKey(b64u(priv.export({ format: 'jwk' }).d!));
    const z = ecdh.computeSecret(Buffer.concat([Buffer.of(4), x, y]));
    seed = nodeKdfe(hash, z, 'IDENTITY', x, ek.x, size * 8);
  }
  const b = Buffer.from(blob);
  const hl = b.readUInt16BE(0);
  const integrity = b.subarray(2, 2 + hl);
  const encIdentity = b.subarray(2 + hl);
  const hmacKey = nodeKdfa(hash, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), size * 8);
  const expected = createHmac(hash, hmacKey)
    .update(Buffer.concat([encIdentity, name]))
    .digest();
  if (!expected.equals(integrity)) throw new Error('TPM_RC_INTEGRITY');
  const bits = ek.symmetric!.keyBits;
  const symKey = nodeKdfa(hash, seed, 'STORAGE', name, new Uint8Array(0), bits);
  const d = createDecipheriv(`aes-${bits}-cfb`, symKey, Buffer.alloc(16));
  const plain = Buffer.concat([d.update(encIdentity), d.final()]);
  return plain.subarray(2, 2 + plain.readUInt16BE(0));
}

function softwareEk(kind: 'rsa2048' | 'eccP256' | 'eccP384'): { pub: TpmPublic; priv: KeyObject } {
  const t = ekTemplate(kind);
  if (t.type === 'rsa') {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = b64u(publicKey.export({ format: 'jwk' }).n!);
    return { pub: { ...t, modulus: new Uint8Array(n) }, priv: privateKey };
  }
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: kind === 'eccP256' ? 'P-256' : 'P-384' });
  const jwk = publicKey.export({ format: 'jwk' });
  return { pub: { ...t, x: new Uint8Array(b64u(jwk.x!)), y: new Uint8Array(b64u(jwk.y!)) }, priv: privateKey };
}

describe('KDFa, KDFe, AES-CFB', () => {
  it('KDFa and KDFe equal the node:crypto versions (SHA-256 and SHA-384, several lengths)', async () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    const u = Uint8Array.of(0, 11, 1, 2, 3);
    for (const [alg, hash] of [
      [TPM_ALG.SHA256, 'sha256'],
      [TPM_ALG.SHA384, 'sha384'],
    ] as const) {
      for (const bits of [128, 256, 384, 520]) {
        const a = await kdfa(alg, key, 'STORAGE', u, new Uint8Array(0), bits);
        expect(a.ok && toHex(a.value)).toBe(nodeKdfa(hash, key, 'STORAGE', u, new Uint8Array(0), bits).toString('hex'));
        const e = await kdfe(alg, key, 'IDENTITY', u, key, bits);
        expect(e.ok && toHex(e.value)).toBe(nodeKdfe(hash, key, 'IDENTITY', u, key, bits).toString('hex'));
      }
    }
  });

  it('AES-CFB from single-block CBC equals OpenSSL aes-128-cfb and aes-256-cfb (partial last block)', async () => {
    for (const bits of [128, 256]) {
      const key = Uint8Array.from({ length: bits / 8 }, (_, i) => i * 7);
      const iv = Uint8Array.from({ length: 16 }, (_, i) => 255 - i);
      for (const len of [0, 1, 16, 34, 50]) {
        const data = Uint8Array.from({ length: len }, (_, i) => i);
        const c = createCipheriv(`aes-${bits}-cfb`, key, iv);
        const expected = Buffer.concat([c.update(data), c.final()]);
        expect(toHex(await aesCfbEncrypt(key, iv, data))).toBe(expected.toString('hex'));
      }
    }
  });
});

describe('makeCredential', () => {
  const name = Uint8Array.from(Buffer.concat([Buffer.of(0, 0x0b), createHash('sha256').update('ak').digest()]));

  it.each(['rsa2048', 'eccP256', 'eccP384'] as const)(
    '%s EK: unwrapped by the TPM procedure in node:crypto',
    async (kind) => {
      const ek = softwareEk(kind);
      const credential = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
      const made = await makeCredential(ek.pub, credential, name);
      if (!made.ok) throw new Error(made.error.message);
      expect(toHex(nodeActivate(ek.pub, ek.priv, made.value.credentialBlob, made.value.secret, name))).toBe(
        toHex(credential),
      );
      // For another object's Name the integrity check fails; for another EK the seed differs.
      const other = Uint8Array.from(name).fill(7, 2);
      expect(() => nodeActivate(ek.pub, ek.priv, made.value.credentialBlob, made.value.secret, other)).toThrow();
      const stranger = softwareEk(kind);
      expect(() => nodeActivate(ek.pub, stranger.priv, made.value.credentialBlob, made.value.secret, name)).toThrow();
    },
  );

  it('refuses an empty or oversized credential and an EK without AES-CFB', async () => {
    const ek = softwareEk('eccP256');
    const empty = await makeCredential(ek.pub, new Uint8Array(0), name);
    expect(empty.ok ? '' : empty.error.code).toBe('INPUT_INVALID');
    const big = await makeCredential(ek.pub, new Uint8Array(33), name);
    expect(big.ok ? '' : big.error.code).toBe('INPUT_INVALID');
    const noSym = await makeCredential({ ...ek.pub, symmetric: null }, new Uint8Array(16), name);
    expect(noSym.ok ? '' : noSym.error.code).toBe('TPM_UNSUPPORTED');
  });
});

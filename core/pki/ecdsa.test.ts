/**
 * ECDSA verification on both backends (ecdsa.ts): node:crypto, which Node uses, and WebCrypto, the browser's path,
 * give the same verdicts, refuse the same bad keys, and the memo of imported keys never answers for other bytes.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nodeCrypto } from '../bytes.js';
import type { Curve } from '../model.js';
import {
  clearVerifyKeys,
  curveHash,
  curveSize,
  importVerifyKey,
  importWebVerifyKey,
  verifyRaw,
  type ImportedKey,
} from './ecdsa.js';

function keyPair(curve: Curve): { spki: Uint8Array; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return { spki: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })), privateKey };
}

function signRaw(privateKey: KeyObject, curve: Curve, data: Uint8Array): Uint8Array {
  const hash = curve === 'P-256' ? 'sha256' : 'sha384';
  return new Uint8Array(sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
}

const verify = (k: ImportedKey, sig: Uint8Array, data: Uint8Array): Promise<boolean> =>
  verifyRaw(k.key, k.curve, curveHash(k.curve), sig, data);

/** The SPKI of P-256 with the point (x, y) (32-byte big-endian coordinates), whatever the values. */
function p256Spki(x: bigint, y: bigint): Uint8Array {
  const { spki } = keyPair('P-256');
  const out = spki.slice();
  const hex = (v: bigint) => Uint8Array.from(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));
  out.set(hex(x), out.length - 64);
  out.set(hex(y), out.length - 32);
  return out;
}

const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}

describe('ECDSA verification: node:crypto and WebCrypto', () => {
  it('runs on node:crypto in Node (the station and registry path)', async () => {
    expect(nodeCrypto).not.toBeNull();
    const k = await importVerifyKey(keyPair('P-256').spki);
    expect(k && k.key instanceof nodeCrypto!.KeyObject).toBe(true);
  });

  for (const curve of ['P-256', 'P-384'] as const) {
    it(`gives WebCrypto's verdicts (${curve}): good, tampered data, tampered signature, another key`, async () => {
      const a = keyPair(curve);
      const b = keyPair(curve);
      const data = Uint8Array.from(Buffer.from(`statement ${curve}`));
      const sig = signRaw(a.privateKey, curve, data);
      const other = data.slice();
      other[0]! ^= 1;
      const badSig = sig.slice();
      badSig[5]! ^= 0x40;
      const zeroS = sig.slice();
      zeroS.fill(0, curveSize(curve));
      const cases: [Uint8Array, Uint8Array, Uint8Array][] = [
        [a.spki, sig, data],
        [a.spki, sig, other],
        [a.spki, badSig, data],
        [a.spki, zeroS, data],
        [a.spki, sig.subarray(1), data],
        [b.spki, sig, data],
      ];
      const verdicts: boolean[][] = [];
      for (const [spki, s, d] of cases) {
        const n = await importVerifyKey(spki);
        const w = await importWebVerifyKey(spki);
        verdicts.push([await verify(n!, s, d), await verify(w!, s, d)]);
      }
      expect(verdicts).toEqual([
        [true, true],
        [false, false],
        [false, false],
        [false, false],
        [false, false],
        [false, false],
      ]);
    });
  }

  it('refuses, as WebCrypto does, a point off the curve and a coordinate at or above the field prime', async () => {
    const { spki } = keyPair('P-256');
    const off = spki.slice();
    off[off.length - 1]! ^= 1;
    // An on-curve point with a small x, written with x + p (still 32 bytes): the same point, not a canonical encoding.
    let x = 1n;
    let y = 0n;
    for (; ; x++) {
      const rhs = (((x * x * x - 3n * x + B) % P) + P) % P;
      y = modPow(rhs, (P + 1n) / 4n, P);
      if ((y * y) % P === rhs) break;
    }
    const canonical = p256Spki(x, y);
    const aboveP = p256Spki(x + P, y);
    expect(await importWebVerifyKey(canonical)).not.toBeNull();
    expect(await importVerifyKey(canonical)).not.toBeNull();
    for (const bad of [off, aboveP]) {
      expect(await importWebVerifyKey(bad)).toBeNull();
      expect(await importVerifyKey(bad)).toBeNull();
    }
  });

  it('refuses what is not an uncompressed P-256/P-384 point', async () => {
    const { spki } = keyPair('P-256');
    const compressedTag = spki.slice();
    compressedTag[compressedTag.length - 65] = 0x02;
    expect(await importVerifyKey(compressedTag)).toBeNull();
    expect(await importVerifyKey(spki.subarray(0, spki.length - 1))).toBeNull();
    expect(await importVerifyKey(new Uint8Array(0))).toBeNull();
  });
});

describe('the memo of imported keys (by exact SPKI bytes)', () => {
  it('never answers for other bytes: the caller rewriting its buffer in place gets the new key', async () => {
    clearVerifyKeys();
    const a = keyPair('P-256');
    const b = keyPair('P-256');
    const data = Uint8Array.from(Buffer.from('record'));
    const sigA = signRaw(a.privateKey, 'P-256', data);
    const sigB = signRaw(b.privateKey, 'P-256', data);
    const buffer = a.spki.slice();
    const ka = await importVerifyKey(buffer);
    expect(await verify(ka!, sigA, data)).toBe(true);
    buffer.set(b.spki); // same length, same buffer object, other key
    const kb = await importVerifyKey(buffer);
    expect(await verify(kb!, sigB, data)).toBe(true);
    expect(await verify(kb!, sigA, data)).toBe(false);
    // And the first key is still A's (its memo entry was not changed by the caller's rewrite).
    const again = await importVerifyKey(a.spki);
    expect(await verify(again!, sigA, data)).toBe(true);
    expect(await verify(again!, sigB, data)).toBe(false);
  });

  it('keeps answering right past its bound (entries evicted are imported again)', async () => {
    clearVerifyKeys();
    const pairs = Array.from({ length: 70 }, () => keyPair('P-256'));
    const data = Uint8Array.from(Buffer.from('x'));
    for (const round of [0, 1]) {
      for (const [i, p] of pairs.entries()) {
        const k = await importVerifyKey(p.spki);
        const next = pairs[(i + 1) % pairs.length]!;
        expect(await verify(k!, signRaw(p.privateKey, 'P-256', data), data), `round ${round} key ${i}`).toBe(true);
        expect(await verify(k!, signRaw(next.privateKey, 'P-256', data), data)).toBe(false);
      }
    }
  });
});

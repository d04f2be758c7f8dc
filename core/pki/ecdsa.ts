/**
 * ECDSA helpers shared by the PKI, attestation and JWS code: curve detection from SPKI, strict DER <-> raw (r||s)
 * signature conversion, and verification. Pure: verification runs on node:crypto where the runtime has it (Node,
 * through core/bytes.ts `nodeCrypto`: synchronous, no thread-pool job) and on globalThis.crypto.subtle where it has
 * not (the browser); both refuse the same keys (not on the curve, a coordinate not below the field prime) and accept
 * the same signatures. Imported keys are memoised by their exact SPKI bytes (./memo.ts).
 */
import type { KeyObject, webcrypto } from 'node:crypto';
import { nodeCrypto, toBase64Url } from '../bytes.js';
import type { Curve } from '../model.js';
import type { SignatureAlgorithm } from '../ports.js';
import { ecSpkiCurve } from './der.js';
import { bytesKey, Lru } from './memo.js';

// WebCrypto types (type-only import: erased at runtime, the code uses globalThis.crypto).
export type Crypto = webcrypto.Crypto;
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type BufferSource = webcrypto.BufferSource;
export type AlgorithmIdentifier = webcrypto.AlgorithmIdentifier;
export type EcdsaParams = webcrypto.EcdsaParams;

/** Byte length of one coordinate / scalar for a curve. */
export function curveSize(curve: Curve): number {
  return curve === 'P-256' ? 32 : 48;
}

/** The JWS / WebCrypto hash that goes with a curve (P-256 -> SHA-256, P-384 -> SHA-384). */
export function curveHash(curve: Curve): 'SHA-256' | 'SHA-384' {
  return curve === 'P-256' ? 'SHA-256' : 'SHA-384';
}

/** The JWS algorithm name that goes with a curve. */
export function curveAlgorithm(curve: Curve): SignatureAlgorithm {
  return curve === 'P-256' ? 'ES256' : 'ES384';
}

/** The hash a JWS algorithm uses. */
export function algorithmHash(alg: SignatureAlgorithm): 'SHA-256' | 'SHA-384' {
  return alg === 'ES256' ? 'SHA-256' : 'SHA-384';
}

/** Copy into a fresh ArrayBuffer-backed Uint8Array (WebCrypto's BufferSource typing wants one). */
export function buf(b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}

/**
 * The curve of an EC SubjectPublicKeyInfo (DER), or null when it is not an EC P-256 / P-384 key
 * with a named curve and an uncompressed point of the right length (strict DER, ./der.ts). Never throws.
 */
export function spkiCurve(spki: Uint8Array): Curve | null {
  return spki instanceof Uint8Array ? ecSpkiCurve(spki) : null;
}

/** A public key imported for ECDSA verification: a node:crypto KeyObject (Node) or a WebCrypto CryptoKey (browser). */
export type VerifyKey = KeyObject | CryptoKey;

/** An imported verification key and its curve. */
export interface ImportedKey {
  readonly key: VerifyKey;
  readonly curve: Curve;
}

/** Distinct keys remembered (the vendor chain, the CA and station keys, and the last boards' own keys). */
const MAX_KEYS = 64;
const imported = new Lru<Promise<ImportedKey | null>>(MAX_KEYS);
const NODE_CURVE: Record<Curve, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };

/**
 * Import an EC SPKI for ECDSA verification; null if it is not a valid P-256/P-384 key (named curve, uncompressed
 * point on the curve with coordinates below the field prime). Memoised by the exact SPKI bytes: the same bytes are
 * the same key, other bytes another entry.
 */
export function importVerifyKey(spki: Uint8Array): Promise<ImportedKey | null> {
  const curve = spkiCurve(spki);
  if (!curve) return Promise.resolve(null);
  const k = bytesKey(spki);
  const hit = imported.get(k);
  if (hit) return hit;
  const value = nodeCrypto ? Promise.resolve(importNode(spki, curve)) : importWeb(spki.slice(), curve);
  imported.set(k, value);
  return value;
}

/** Forget every memoised key (tests). */
export function clearVerifyKeys(): void {
  imported.clear();
}

/**
 * node:crypto import of a key spkiCurve accepted, as a JWK of its point's coordinates (the SPKI ends with the
 * uncompressed point 04 || x || y, der.ts ecSpkiCurve): OpenSSL refuses a point off the curve or a coordinate not
 * below the field prime, as it does for the SPKI itself, at about half the cost of decoding the SPKI.
 */
function importNode(spki: Uint8Array, curve: Curve): ImportedKey | null {
  const size = curveSize(curve);
  const point = spki.subarray(spki.length - 2 * size);
  try {
    const key = nodeCrypto!.createPublicKey({
      key: {
        kty: 'EC',
        crv: curve,
        x: toBase64Url(point.subarray(0, size)),
        y: toBase64Url(point.subarray(size)),
      },
      format: 'jwk',
    });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== NODE_CURVE[curve]) return null;
    return { key, curve };
  } catch {
    return null;
  }
}

/** WebCrypto import (the browser's path; importWebVerifyKey). */
async function importWeb(spki: Uint8Array, curve: Curve): Promise<ImportedKey | null> {
  try {
    const key = await globalThis.crypto.subtle.importKey(
      'spki',
      buf(spki),
      { name: 'ECDSA', namedCurve: curve },
      true,
      ['verify'],
    );
    return { key, curve };
  } catch {
    return null;
  }
}

/** Import with WebCrypto whatever the runtime (not memoised): the browser's path, for the tests that compare both. */
export async function importWebVerifyKey(spki: Uint8Array): Promise<ImportedKey | null> {
  const curve = spkiCurve(spki);
  return curve ? importWeb(spki.slice(), curve) : null;
}

function isCryptoKey(key: VerifyKey): key is CryptoKey {
  return !(nodeCrypto && key instanceof nodeCrypto.KeyObject);
}

/**
 * Verify a raw r||s ECDSA signature; false on any problem (wrong length, bad key). Never throws. A KeyObject is
 * verified with node:crypto (synchronously, the signature as IEEE P1363 r||s), a CryptoKey with WebCrypto.
 */
export async function verifyRaw(
  key: VerifyKey,
  curve: Curve,
  hash: 'SHA-256' | 'SHA-384',
  signature: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  if (signature.length !== 2 * curveSize(curve)) return false;
  try {
    if (!isCryptoKey(key)) {
      const name = hash === 'SHA-256' ? 'sha256' : 'sha384';
      return nodeCrypto!.verify(name, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    }
    return await globalThis.crypto.subtle.verify({ name: 'ECDSA', hash }, key, buf(signature), buf(data));
  } catch {
    return false;
  }
}

function readLength(der: Uint8Array, pos: number): { len: number; next: number } | null {
  const first = der[pos];
  if (first === undefined) return null;
  if (first < 0x80) return { len: first, next: pos + 1 };
  if (first !== 0x81) return null; // ECDSA signatures for P-256/P-384 never need more than one length byte
  const len = der[pos + 1];
  if (len === undefined || len < 0x80) return null; // non-minimal length encoding
  return { len, next: pos + 2 };
}

function readInteger(der: Uint8Array, pos: number, size: number): { value: Uint8Array; next: number } | null {
  if (der[pos] !== 0x02) return null;
  const l = readLength(der, pos + 1);
  if (!l || l.len === 0) return null;
  const end = l.next + l.len;
  if (end > der.length) return null;
  let v = der.subarray(l.next, end);
  if ((v[0]! & 0x80) !== 0) return null; // negative
  if (v.length > 1 && v[0] === 0 && (v[1]! & 0x80) === 0) return null; // non-minimal
  if (v[0] === 0 && v.length > 1) v = v.subarray(1);
  if (v.length > size) return null;
  if (v.every((x) => x === 0)) return null; // r and s must be in [1, n-1]
  const out = new Uint8Array(size);
  out.set(v, size - v.length);
  return { value: out, next: end };
}

/**
 * Strict DER ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }) to raw r||s of the curve's size.
 * Returns null on any deviation from DER (BER forms, trailing bytes, oversize integers).
 */
export function derToRawSignature(der: Uint8Array, curve: Curve): Uint8Array | null {
  const size = curveSize(curve);
  if (der[0] !== 0x30) return null;
  const seq = readLength(der, 1);
  if (!seq || seq.next + seq.len !== der.length) return null;
  const r = readInteger(der, seq.next, size);
  if (!r) return null;
  const s = readInteger(der, r.next, size);
  if (!s || s.next !== der.length) return null;
  const out = new Uint8Array(2 * size);
  out.set(r.value, 0);
  out.set(s.value, size);
  return out;
}

function encodeInteger(v: Uint8Array): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const body = v.subarray(i);
  const pad = (body[0]! & 0x80) !== 0 ? 1 : 0;
  const out = new Uint8Array(2 + pad + body.length);
  out[0] = 0x02;
  out[1] = pad + body.length;
  out.set(body, 2 + pad);
  return out;
}

/** Raw r||s to DER ECDSA-Sig-Value. Throws on an odd length (a bug in the caller). */
export function rawToDerSignature(raw: Uint8Array): Uint8Array {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new Error('rawToDerSignature: odd signature length');
  const half = raw.length / 2;
  const r = encodeInteger(raw.subarray(0, half));
  const s = encodeInteger(raw.subarray(half));
  const len = r.length + s.length;
  const head = len < 0x80 ? [0x30, len] : [0x30, 0x81, len];
  const out = new Uint8Array(head.length + len);
  out.set(head, 0);
  out.set(r, head.length);
  out.set(s, head.length + r.length);
  return out;
}

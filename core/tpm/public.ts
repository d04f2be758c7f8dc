/**
 * TPMT_PUBLIC for ECC and RSA keys: parse, marshal, the key's Name and its SubjectPublicKeyInfo.
 * TPM 2.0 Library Part 2 §12.2 (TPMT_PUBLIC, TPMU_PUBLIC_PARMS, TPMS_ECC_PARMS, TPMS_RSA_PARMS, TPMT_SYM_DEF_OBJECT,
 * TPMT_ECC_SCHEME / TPMT_RSA_SCHEME, TPMT_KDF_SCHEME), Part 1 §16 (Names: nameAlg || H_nameAlg(TPMT_PUBLIC)).
 */
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { CURVES, HASHES, TPM_ALG } from './constants.js';
import { TpmReader, TpmWriter, parseAll } from './marshal.js';
import type { webcrypto } from 'node:crypto';

/** TPMT_SYM_DEF_OBJECT when not NULL (a storage key's or EK's inner wrapper: AES-128/256-CFB). */
export interface SymDef {
  readonly algorithm: number;
  readonly keyBits: number;
  readonly mode: number;
}

/** A signing/encryption/KDF scheme: its algorithm and hash (and ECDAA's count). */
export interface Scheme {
  readonly scheme: number;
  readonly hashAlg: number;
  readonly count?: number;
}

interface PublicBase {
  readonly nameAlg: number;
  /** TPMA_OBJECT bits (constants.ts `TPMA_OBJECT`). */
  readonly objectAttributes: number;
  readonly authPolicy: Uint8Array;
  /** null for TPM_ALG_NULL. */
  readonly symmetric: SymDef | null;
  /** null for TPM_ALG_NULL. */
  readonly scheme: Scheme | null;
}

export interface EccPublic extends PublicBase {
  readonly type: 'ecc';
  /** TPM_ECC_CURVE (constants.ts `TPM_ECC`). */
  readonly curve: number;
  readonly kdf: Scheme | null;
  readonly x: Uint8Array;
  readonly y: Uint8Array;
}

export interface RsaPublic extends PublicBase {
  readonly type: 'rsa';
  readonly keyBits: number;
  /** 0 means the default 65537 (Part 2 §12.2.3, TPMS_RSA_PARMS). */
  readonly exponent: number;
  readonly modulus: Uint8Array;
}

/** A parsed TPMT_PUBLIC (ECC or RSA; other object types are refused). */
export type TpmPublic = EccPublic | RsaPublic;

function readSym(r: TpmReader): SymDef | null {
  const algorithm = r.u16();
  if (algorithm === TPM_ALG.NULL) return null;
  // TPMU_SYM_KEY_BITS and TPMU_SYM_MODE: both UINT16 for every block cipher; XOR has a hash and no mode.
  if (algorithm === TPM_ALG.XOR) {
    r.fail('XOR symmetric definition is not supported');
    return null;
  }
  return { algorithm, keyBits: r.u16(), mode: r.u16() };
}

function writeSym(w: TpmWriter, s: SymDef | null): void {
  if (!s) w.u16(TPM_ALG.NULL);
  else w.u16(s.algorithm).u16(s.keyBits).u16(s.mode);
}

/** TPMT_*_SCHEME: every scheme we accept carries a hash; ECDAA adds a count; RSAES carries nothing. */
function readScheme(r: TpmReader): Scheme | null {
  const scheme = r.u16();
  if (scheme === TPM_ALG.NULL) return null;
  if (scheme === TPM_ALG.RSAES) return { scheme, hashAlg: TPM_ALG.NULL };
  const hashAlg = r.u16();
  if (scheme === TPM_ALG.ECDAA) return { scheme, hashAlg, count: r.u16() };
  return { scheme, hashAlg };
}

function writeScheme(w: TpmWriter, s: Scheme | null): void {
  if (!s) {
    w.u16(TPM_ALG.NULL);
    return;
  }
  w.u16(s.scheme);
  if (s.scheme === TPM_ALG.RSAES) return;
  w.u16(s.hashAlg);
  if (s.scheme === TPM_ALG.ECDAA) w.u16(s.count ?? 0);
}

/** Read a TPMT_PUBLIC (the reader fails on other object types). */
export function readPublic(r: TpmReader): TpmPublic {
  const type = r.u16();
  const nameAlg = r.u16();
  const objectAttributes = r.u32();
  const authPolicy = r.tpm2b(64);
  if (type === TPM_ALG.ECC) {
    const symmetric = readSym(r);
    const scheme = readScheme(r);
    const curve = r.u16();
    const kdf = readScheme(r);
    const x = r.tpm2b(66);
    const y = r.tpm2b(66);
    return { type: 'ecc', nameAlg, objectAttributes, authPolicy, symmetric, scheme, curve, kdf, x, y };
  }
  if (type === TPM_ALG.RSA) {
    const symmetric = readSym(r);
    const scheme = readScheme(r);
    const keyBits = r.u16();
    const exponent = r.u32();
    const modulus = r.tpm2b(512);
    return { type: 'rsa', nameAlg, objectAttributes, authPolicy, symmetric, scheme, keyBits, exponent, modulus };
  }
  r.fail(`object type 0x${type.toString(16)} is not ECC or RSA`);
  return {
    type: 'ecc',
    nameAlg,
    objectAttributes,
    authPolicy,
    symmetric: null,
    scheme: null,
    curve: 0,
    kdf: null,
    x: new Uint8Array(0),
    y: new Uint8Array(0),
  };
}

/** Write a TPMT_PUBLIC. */
export function writePublic(w: TpmWriter, p: TpmPublic): void {
  w.u16(p.type === 'ecc' ? TPM_ALG.ECC : TPM_ALG.RSA)
    .u16(p.nameAlg)
    .u32(p.objectAttributes)
    .tpm2b(p.authPolicy);
  writeSym(w, p.symmetric);
  writeScheme(w, p.scheme);
  if (p.type === 'ecc') {
    w.u16(p.curve);
    writeScheme(w, p.kdf);
    w.tpm2b(p.x).tpm2b(p.y);
  } else {
    w.u16(p.keyBits).u32(p.exponent).tpm2b(p.modulus);
  }
}

/** The TPMT_PUBLIC bytes (what a Name hashes). */
export function marshalPublic(p: TpmPublic): Uint8Array {
  const w = new TpmWriter();
  writePublic(w, p);
  return w.toBytes();
}

/** Parse a TPMT_PUBLIC (all of `bytes`). */
export function parsePublic(bytes: Uint8Array): Result<TpmPublic> {
  return parseAll(bytes, 'TPMT_PUBLIC', readPublic);
}

/** Parse a TPM2B_PUBLIC (all of `bytes`: the UINT16 size and the TPMT_PUBLIC it wraps), as tpm2-tools writes it. */
export function parsePublic2b(bytes: Uint8Array): Result<TpmPublic> {
  return parseAll(bytes, 'TPM2B_PUBLIC', (r) => r.sized(readPublic));
}

/** A digest with a TPM hash algorithm (WebCrypto). */
export async function tpmHash(hashAlg: number, data: Uint8Array): Promise<Result<Uint8Array>> {
  const h = HASHES[hashAlg];
  if (!h) return fail('TPM_UNSUPPORTED', `hash algorithm 0x${hashAlg.toString(16)} is not supported`);
  return ok(new Uint8Array(await globalThis.crypto.subtle.digest(h.name, data as Uint8Array<ArrayBuffer>)));
}

/** The object's Name: nameAlg (UINT16) || H_nameAlg(TPMT_PUBLIC) (Part 1 §16). */
export async function objectName(p: TpmPublic): Promise<Result<Uint8Array>> {
  const d = await tpmHash(p.nameAlg, marshalPublic(p));
  if (!d.ok) return d;
  return ok(new TpmWriter().u16(p.nameAlg).bytes(d.value).toBytes());
}

const b64u = (b: Uint8Array): string => {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};

function exponentBytes(e: number): Uint8Array {
  const v = e === 0 ? 65537 : e;
  const out = [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  while (out.length > 1 && out[0] === 0) out.shift();
  return Uint8Array.from(out);
}

/** The key as a JWK (public part), for WebCrypto import. */
export function publicToJwk(p: TpmPublic): Result<webcrypto.JsonWebKey> {
  if (p.type === 'ecc') {
    const c = CURVES[p.curve];
    if (!c) return fail('TPM_UNSUPPORTED', `ECC curve 0x${p.curve.toString(16)} is not supported`);
    if (p.x.length !== c.size || p.y.length !== c.size) {
      return fail('TPM_KEY_ATTRIBUTES_INVALID', `ECC point of ${p.x.length}/${p.y.length} bytes on ${c.name}`);
    }
    return ok({ kty: 'EC', crv: c.name, x: b64u(p.x), y: b64u(p.y), ext: true });
  }
  if (p.modulus.length * 8 !== p.keyBits) {
    return fail('TPM_KEY_ATTRIBUTES_INVALID', `RSA modulus of ${p.modulus.length * 8} bits, keyBits ${p.keyBits}`);
  }
  return ok({ kty: 'RSA', n: b64u(p.modulus), e: b64u(exponentBytes(p.exponent)), ext: true });
}

/** Import the public key into WebCrypto for `usage` (ECDSA/ECDH/RSA-OAEP/RSASSA), with the given hash for RSA. */
export async function importPublic(
  p: TpmPublic,
  usage: 'verify' | 'ecdh' | 'encrypt',
  hash: 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512' = 'SHA-256',
): Promise<Result<webcrypto.CryptoKey>> {
  const jwk = publicToJwk(p);
  if (!jwk.ok) return jwk;
  const alg =
    p.type === 'ecc'
      ? { name: usage === 'ecdh' ? 'ECDH' : 'ECDSA', namedCurve: jwk.value.crv! }
      : { name: usage === 'encrypt' ? 'RSA-OAEP' : 'RSASSA-PKCS1-v1_5', hash };
  const usages: webcrypto.KeyUsage[] = usage === 'verify' ? ['verify'] : usage === 'encrypt' ? ['encrypt'] : [];
  try {
    return ok(await globalThis.crypto.subtle.importKey('jwk', jwk.value, alg, true, usages));
  } catch (e) {
    return fail('TPM_KEY_ATTRIBUTES_INVALID', `the TPM key is not a valid public key: ${(e as Error).message}`);
  }
}

/** DER SubjectPublicKeyInfo of the key (id-ecPublicKey with the named curve, or rsaEncryption). */
export async function publicToSpki(p: TpmPublic): Promise<Result<Uint8Array>> {
  const k = await importPublic(p, 'verify');
  if (!k.ok) return k;
  return ok(new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', k.value)));
}

/**
 * Does the DER SubjectPublicKeyInfo `spki` (e.g. from the EK certificate) hold the same public key as `p`?
 * Compares key components (curve and point, or modulus and exponent), not encodings.
 */
export async function publicMatchesSpki(p: TpmPublic, spki: Uint8Array): Promise<boolean> {
  const mine = publicToJwk(p);
  if (!mine.ok) return false;
  const alg =
    p.type === 'ecc' ? { name: 'ECDSA', namedCurve: mine.value.crv! } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  let theirs: webcrypto.JsonWebKey;
  try {
    const k = await globalThis.crypto.subtle.importKey('spki', spki as Uint8Array<ArrayBuffer>, alg, true, ['verify']);
    theirs = await globalThis.crypto.subtle.exportKey('jwk', k);
  } catch {
    return false;
  }
  return p.type === 'ecc'
    ? theirs.kty === 'EC' && theirs.crv === mine.value.crv && theirs.x === mine.value.x && theirs.y === mine.value.y
    : theirs.kty === 'RSA' && theirs.n === mine.value.n && theirs.e === mine.value.e;
}

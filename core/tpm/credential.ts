/**
 * MakeCredential at the station: protect a credential (a random secret) so that only the TPM holding the EK can
 * recover it, and only for the object (key) with the given Name (TPM2_ActivateCredential).
 *
 * TPM 2.0 Library Part 1 §24 ("Credential Protection"): a seed is protected to the EK (Part 1 Annex B, RSA: OAEP
 * with the EK's nameAlg and label "IDENTITY\0"; Annex C, ECC: one-pass Diffie-Hellman with an ephemeral key on the
 * EK's curve and seed = KDFe(nameAlg, Z, "IDENTITY", ephemeral x, EK x, digest bits)); then
 *   symKey    = KDFa(nameAlg, seed, "STORAGE", Name, ∅, EK symmetric key bits)            (§24.4)
 *   encIdentity = AES-CFB(symKey, IV = 0, TPM2B_DIGEST(credential))                        (§24.4)
 *   HMACkey   = KDFa(nameAlg, seed, "INTEGRITY", ∅, ∅, digest bits)                       (§24.5)
 *   outerHMAC = HMAC_nameAlg(HMACkey, encIdentity || Name)                                 (§24.5)
 *   credentialBlob (TPM2B_ID_OBJECT content) = TPM2B(outerHMAC) || encIdentity
 * KDFa: Part 1 §11.4.10.2 (SP 800-108 counter mode with HMAC); KDFe: §11.4.10.3 (SP 800-56A concatenation KDF).
 * Works for RSA EKs (L-1) and ECC EKs (L-2 P-256, H-3 P-384) alike. WebCrypto has no AES-CFB: CFB-128 is built from
 * single-block AES-CBC encryptions with a zero IV (E_K(x) is the first block of CBC(K, IV=0, x)).
 */
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { CURVES, HASHES, TPM_ALG } from './constants.js';
import { TpmWriter } from './marshal.js';
import { importPublic, type TpmPublic } from './public.js';
import type { webcrypto } from 'node:crypto';

/** MakeCredential's output, ready for TPM2_ActivateCredential. */
export interface MadeCredential {
  /** The content of TPM2B_ID_OBJECT: TPM2B_DIGEST integrityHMAC || encIdentity. */
  readonly credentialBlob: Uint8Array;
  /** The content of TPM2B_ENCRYPTED_SECRET: the OAEP-encrypted seed (RSA) or the ephemeral TPMS_ECC_POINT (ECC). */
  readonly secret: Uint8Array;
}

const subtle = (): webcrypto.SubtleCrypto => globalThis.crypto.subtle;
const enc = new TextEncoder();
const u8 = (b: Uint8Array): Uint8Array<ArrayBuffer> => b as Uint8Array<ArrayBuffer>;

function u32be(n: number): Uint8Array {
  return new TpmWriter().u32(n).toBytes();
}

function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const w = new TpmWriter();
  for (const p of parts) w.bytes(p);
  return w.toBytes();
}

function truncateBits(out: Uint8Array, bits: number): Uint8Array {
  const bytes = out.slice(0, Math.ceil(bits / 8));
  if (bits % 8 !== 0) bytes[0]! &= 0xff >> (8 - (bits % 8));
  return bytes;
}

/** KDFa (Part 1 §11.4.10.2): HMAC_hash(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32), i = 1.. */
export async function kdfa(
  hashAlg: number,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Promise<Result<Uint8Array>> {
  const h = HASHES[hashAlg];
  if (!h) return fail('TPM_UNSUPPORTED', `KDFa hash 0x${hashAlg.toString(16)} is not supported`);
  if (key.length === 0) return fail('INPUT_INVALID', 'KDFa with an empty key');
  const k = await subtle().importKey('raw', u8(key), { name: 'HMAC', hash: h.name }, false, ['sign']);
  const out: Uint8Array[] = [];
  const fixedPart = concat(enc.encode(label), Uint8Array.of(0), contextU, contextV, u32be(bits));
  for (let i = 1, got = 0; got * 8 < bits; i++) {
    const block = new Uint8Array(await subtle().sign('HMAC', k, u8(concat(u32be(i), fixedPart))));
    out.push(block);
    got += block.length;
  }
  return ok(truncateBits(concat(...out), bits));
}

/** KDFe (Part 1 §11.4.10.3): H([i]32 || Z || label || 0x00 || partyU || partyV), i = 1.. */
export async function kdfe(
  hashAlg: number,
  z: Uint8Array,
  label: string,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number,
): Promise<Result<Uint8Array>> {
  const h = HASHES[hashAlg];
  if (!h) return fail('TPM_UNSUPPORTED', `KDFe hash 0x${hashAlg.toString(16)} is not supported`);
  const tail = concat(z, enc.encode(label), Uint8Array.of(0), partyU, partyV);
  const out: Uint8Array[] = [];
  for (let i = 1, got = 0; got * 8 < bits; i++) {
    const block = new Uint8Array(await subtle().digest(h.name, u8(concat(u32be(i), tail))));
    out.push(block);
    got += block.length;
  }
  return ok(truncateBits(concat(...out), bits));
}

/** AES-CFB-128 encryption (full-block feedback), from single-block AES-CBC with a zero IV. */
export async function aesCfbEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await subtle().importKey('raw', u8(key), { name: 'AES-CBC' }, false, ['encrypt']);
  const zeroIv = new Uint8Array(16);
  const out = new Uint8Array(data.length);
  let feedback = iv.slice(0, 16);
  for (let o = 0; o < data.length; o += 16) {
    const ks = new Uint8Array(await subtle().encrypt({ name: 'AES-CBC', iv: zeroIv }, k, u8(feedback))).subarray(0, 16);
    const n = Math.min(16, data.length - o);
    for (let i = 0; i < n; i++) out[o + i] = data[o + i]! ^ ks[i]!;
    feedback = out.slice(o, o + 16);
  }
  return out;
}

/** The seed and its protection to the EK: OAEP (RSA) or ephemeral ECDH + KDFe (ECC). */
async function protectSeed(
  ek: TpmPublic,
  digestSize: number,
): Promise<Result<{ seed: Uint8Array; secret: Uint8Array }>> {
  const h = HASHES[ek.nameAlg]!;
  if (ek.type === 'rsa') {
    const seed = globalThis.crypto.getRandomValues(new Uint8Array(digestSize));
    const key = await importPublic(ek, 'encrypt', h.name);
    if (!key.ok) return key;
    const secret = new Uint8Array(
      await subtle().encrypt({ name: 'RSA-OAEP', label: u8(enc.encode('IDENTITY\0')) }, key.value, u8(seed)),
    );
    return ok({ seed, secret });
  }
  const c = CURVES[ek.curve];
  if (!c) return fail('TPM_UNSUPPORTED', `ECC curve 0x${ek.curve.toString(16)} is not supported`);
  const ekKey = await importPublic(ek, 'ecdh');
  if (!ekKey.ok) return ekKey;
  const eph = (await subtle().generateKey({ name: 'ECDH', namedCurve: c.name }, false, [
    'deriveBits',
  ])) as webcrypto.CryptoKeyPair;
  const z = new Uint8Array(
    await subtle().deriveBits({ name: 'ECDH', public: ekKey.value }, eph.privateKey, c.size * 8),
  );
  const raw = new Uint8Array(await subtle().exportKey('raw', eph.publicKey)); // 0x04 || x || y
  const x = raw.subarray(1, 1 + c.size);
  const y = raw.subarray(1 + c.size);
  const seed = await kdfe(ek.nameAlg, z, 'IDENTITY', x, ek.x, digestSize * 8);
  if (!seed.ok) return seed;
  return ok({ seed: seed.value, secret: new TpmWriter().tpm2b(x).tpm2b(y).toBytes() });
}

/**
 * TPM2_MakeCredential computed at the station (Part 1 §24, Part 3 §12.6 for the TPM's own version): `credential`
 * (at most the EK nameAlg's digest size) for the object named `objectName`, protected to `ek`.
 */
export async function makeCredential(
  ek: TpmPublic,
  credential: Uint8Array,
  objectName: Uint8Array,
): Promise<Result<MadeCredential>> {
  const h = HASHES[ek.nameAlg];
  if (!h) return fail('TPM_UNSUPPORTED', `EK nameAlg 0x${ek.nameAlg.toString(16)} is not supported`);
  const sym = ek.symmetric;
  if (
    !sym ||
    sym.algorithm !== TPM_ALG.AES ||
    sym.mode !== TPM_ALG.CFB ||
    (sym.keyBits !== 128 && sym.keyBits !== 256)
  ) {
    return fail('TPM_UNSUPPORTED', 'the EK is not a storage key with AES-128/256-CFB');
  }
  if (credential.length === 0 || credential.length > h.size) {
    return fail('INPUT_INVALID', `a credential of ${credential.length} bytes (1..${h.size})`);
  }
  const protectedSeed = await protectSeed(ek, h.size);
  if (!protectedSeed.ok) return protectedSeed;
  const { seed, secret } = protectedSeed.value;
  const symKey = await kdfa(ek.nameAlg, seed, 'STORAGE', objectName, new Uint8Array(0), sym.keyBits);
  if (!symKey.ok) return symKey;
  const encIdentity = await aesCfbEncrypt(
    symKey.value,
    new Uint8Array(16),
    new TpmWriter().tpm2b(credential).toBytes(),
  );
  const hmacKey = await kdfa(ek.nameAlg, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), h.size * 8);
  if (!hmacKey.ok) return hmacKey;
  const k = await subtle().importKey('raw', u8(hmacKey.value), { name: 'HMAC', hash: h.name }, false, ['sign']);
  const outerHmac = new Uint8Array(await subtle().sign('HMAC', k, u8(concat(encIdentity, objectName))));
  return ok({ credentialBlob: new TpmWriter().tpm2b(outerHmac).bytes(encIdentity).toBytes(), secret });
}

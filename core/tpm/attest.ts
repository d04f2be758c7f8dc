/**
 * TPMS_ATTEST and TPMT_SIGNATURE: parse what TPM2_Certify and TPM2_Quote return, and verify the signature with the
 * signing key's public area.
 * TPM 2.0 Library Part 2 §10.12 (TPMS_ATTEST, TPMS_CLOCK_INFO, TPMS_CERTIFY_INFO, TPMS_QUOTE_INFO), §11.3
 * (TPMT_SIGNATURE, TPMS_SIGNATURE_ECC, TPMS_SIGNATURE_RSA); Part 3 §18.2 (Certify), §18.4 (Quote).
 * The signature is over H_hashAlg(TPMS_ATTEST bytes): ECDSA with r and s as TPM2B (WebCrypto wants them fixed-size,
 * concatenated), RSASSA-PKCS1-v1_5 as one TPM2B.
 */
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { CURVES, HASHES, TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from './constants.js';
import { TpmReader, parseAll } from './marshal.js';
import { readPcrSelection, type PcrSelection } from './pcr.js';
import { importPublic, type TpmPublic } from './public.js';
import type { webcrypto } from 'node:crypto';

/** A parsed TPMT_SIGNATURE (ECDSA or RSASSA/RSAPSS). */
export type TpmSignature =
  | { readonly kind: 'ecdsa'; readonly hashAlg: number; readonly r: Uint8Array; readonly s: Uint8Array }
  | { readonly kind: 'rsassa' | 'rsapss'; readonly hashAlg: number; readonly sig: Uint8Array };

/** Read a TPMT_SIGNATURE (the reader fails on other signature algorithms). */
export function readSignature(r: TpmReader): TpmSignature {
  const sigAlg = r.u16();
  const hashAlg = r.u16();
  if (sigAlg === TPM_ALG.ECDSA) return { kind: 'ecdsa', hashAlg, r: r.tpm2b(66), s: r.tpm2b(66) };
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) {
    return { kind: sigAlg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss', hashAlg, sig: r.tpm2b(512) };
  }
  r.fail(`signature algorithm 0x${sigAlg.toString(16)} is not ECDSA, RSASSA or RSAPSS`);
  return { kind: 'ecdsa', hashAlg, r: new Uint8Array(0), s: new Uint8Array(0) };
}

/** Parse a TPMT_SIGNATURE (all of `bytes`). */
export function parseSignature(bytes: Uint8Array): Result<TpmSignature> {
  return parseAll(bytes, 'TPMT_SIGNATURE', readSignature);
}

/** TPMS_CLOCK_INFO. */
export interface ClockInfo {
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
}

/** What a certify or quote attests. */
export type Attested =
  | { readonly kind: 'certify'; readonly name: Uint8Array; readonly qualifiedName: Uint8Array }
  | { readonly kind: 'quote'; readonly pcrSelect: PcrSelection[]; readonly pcrDigest: Uint8Array };

/** A parsed TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY or TPM_ST_ATTEST_QUOTE. */
export interface TpmsAttest {
  readonly magic: number;
  /** TPM_ST_ATTEST_CERTIFY (0x8017) or TPM_ST_ATTEST_QUOTE (0x8018). */
  readonly type: number;
  /** Qualified Name of the signing key. */
  readonly qualifiedSigner: Uint8Array;
  /** The caller's qualifyingData (the station's nonce). */
  readonly extraData: Uint8Array;
  readonly clockInfo: ClockInfo;
  readonly firmwareVersion: bigint;
  readonly attested: Attested;
}

/**
 * Parse a TPMS_ATTEST (all of `bytes`). A wrong magic (not TPM_GENERATED_VALUE: not made by a TPM) is
 * ATTEST_STATEMENT_INVALID; other types than certify/quote and malformed bytes are TPM_RESPONSE_MALFORMED.
 */
export function parseAttest(bytes: Uint8Array): Result<TpmsAttest> {
  const parsed = parseAll(bytes, 'TPMS_ATTEST', (r): TpmsAttest => {
    const magic = r.u32();
    const type = r.u16();
    const qualifiedSigner = r.tpm2b(66);
    const extraData = r.tpm2b(66);
    const clockInfo = { clock: r.u64(), resetCount: r.u32(), restartCount: r.u32(), safe: r.u8() === 1 };
    const firmwareVersion = r.u64();
    let attested: Attested;
    if (type === TPM_ST.ATTEST_CERTIFY) {
      attested = { kind: 'certify', name: r.tpm2b(66), qualifiedName: r.tpm2b(66) };
    } else if (type === TPM_ST.ATTEST_QUOTE) {
      attested = { kind: 'quote', pcrSelect: readPcrSelection(r), pcrDigest: r.tpm2b(64) };
    } else {
      r.fail(`attestation type 0x${type.toString(16)} is not certify or quote`);
      attested = { kind: 'certify', name: new Uint8Array(0), qualifiedName: new Uint8Array(0) };
    }
    return { magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion, attested };
  });
  if (parsed.ok && parsed.value.magic !== TPM_GENERATED_VALUE) {
    return fail(
      'ATTEST_STATEMENT_INVALID',
      `TPMS_ATTEST magic 0x${parsed.value.magic.toString(16)} is not TPM_GENERATED_VALUE`,
    );
  }
  return parsed;
}

function fixed(b: Uint8Array, size: number): Uint8Array | undefined {
  let v = b;
  while (v.length > size && v[0] === 0) v = v.subarray(1);
  if (v.length > size) return undefined;
  const out = new Uint8Array(size);
  out.set(v, size - v.length);
  return out;
}

/**
 * Verify `signature` over the TPMS_ATTEST bytes `attest` with the signing key `signer` (its TPMT_PUBLIC).
 * ECDSA (P-256/P-384, the hash the signature names) or RSASSA-PKCS1-v1_5. ATTEST_SIGNATURE_INVALID when it does
 * not verify or does not fit the key; TPM_UNSUPPORTED for algorithms we do not verify.
 */
export async function verifyAttest(
  signer: TpmPublic,
  attest: Uint8Array,
  signature: TpmSignature,
): Promise<Result<void>> {
  const hash = HASHES[signature.hashAlg];
  if (!hash || hash.name === 'SHA-1') {
    return fail('TPM_UNSUPPORTED', `signature hash 0x${signature.hashAlg.toString(16)} is not accepted`);
  }
  let params: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams;
  let sig: Uint8Array;
  if (signature.kind === 'ecdsa') {
    if (signer.type !== 'ecc') return fail('ATTEST_SIGNATURE_INVALID', 'an ECDSA signature from an RSA key');
    const c = CURVES[signer.curve];
    if (!c) return fail('TPM_UNSUPPORTED', `ECC curve 0x${signer.curve.toString(16)} is not supported`);
    const r = fixed(signature.r, c.size);
    const s = fixed(signature.s, c.size);
    if (!r || !s) return fail('ATTEST_SIGNATURE_INVALID', 'ECDSA signature values larger than the curve');
    sig = new Uint8Array(2 * c.size);
    sig.set(r, 0);
    sig.set(s, c.size);
    params = { name: 'ECDSA', hash: hash.name };
  } else if (signature.kind === 'rsassa') {
    if (signer.type !== 'rsa') return fail('ATTEST_SIGNATURE_INVALID', 'an RSA signature from an ECC key');
    sig = signature.sig;
    params = { name: 'RSASSA-PKCS1-v1_5' };
  } else {
    return fail('TPM_UNSUPPORTED', 'RSAPSS attestation signatures are not verified');
  }
  const key = await importPublic(signer, 'verify', hash.name);
  if (!key.ok) return key;
  const good = await globalThis.crypto.subtle
    .verify(params, key.value, sig as Uint8Array<ArrayBuffer>, attest as Uint8Array<ArrayBuffer>)
    .catch(() => false);
  return good
    ? ok(undefined)
    : fail('ATTEST_SIGNATURE_INVALID', 'the TPM attestation signature does not verify with the key');
}

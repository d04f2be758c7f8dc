/**
 * Trust in a TPM's endorsement key certificate (docs/tpm.md "Trust" and "identify"): its path to the TPM vendor
 * roots among the station's attestation roots, and the chip id the station derives from it.
 *
 * A TPM stores only its EK certificate, so the attestation roots may hold the vendor's EK-issuing intermediates
 * beside its roots: self-signed certificates of the list are the trust anchors, the others are offered as
 * intermediates (when the list has no self-signed certificate at all, every one of them is an anchor).
 */
import 'reflect-metadata';
import { X509Certificate } from '@peculiar/x509';
import { sha256, toHex } from '../../bytes.js';
import { fail } from '../../errors.js';
import { ok, type Result } from '../../result.js';
import { parseCertificate, verifyCertificateChain } from '../../pki/chain.js';
import { buf } from '../../pki/ecdsa.js';

export interface TrustedEk {
  /** The EK certificate (DER). */
  readonly certificate: Uint8Array;
  /** Its SubjectPublicKeyInfo (DER). */
  readonly spki: Uint8Array;
  /** The validated path, DER, EK certificate first, trust anchor last. */
  readonly path: readonly Uint8Array[];
}

async function selfSigned(der: Uint8Array): Promise<boolean> {
  try {
    const c = new X509Certificate(buf(der));
    return await c.isSelfSigned(globalThis.crypto);
  } catch {
    return false;
  }
}

/** Split the attestation roots into trust anchors (self-signed) and intermediates (the rest). */
export async function splitRoots(
  roots: readonly Uint8Array[],
): Promise<{ anchors: Uint8Array[]; intermediates: Uint8Array[] }> {
  const anchors: Uint8Array[] = [];
  const intermediates: Uint8Array[] = [];
  for (const r of roots) ((await selfSigned(r)) ? anchors : intermediates).push(r);
  return anchors.length > 0 ? { anchors, intermediates } : { anchors: [...roots], intermediates: [] };
}

/**
 * Verify an EK certificate to the attestation roots at `at`: TPM_EK_CERT_INVALID when it is not a certificate,
 * ATTEST_CHAIN_INVALID when it does not chain to a configured TPM vendor root.
 */
export async function verifyEkCertificate(
  certificate: Uint8Array,
  roots: readonly Uint8Array[],
  at: Date,
): Promise<Result<TrustedEk>> {
  const parsed = parseCertificate(certificate, 'EK certificate');
  if (!parsed.ok) return fail('TPM_EK_CERT_INVALID', parsed.error);
  const { anchors, intermediates } = await splitRoots(roots);
  const path = await verifyCertificateChain([certificate, ...intermediates], anchors, at);
  if (!path.ok)
    return fail('ATTEST_CHAIN_INVALID', `the TPM's EK certificate is not from a trusted TPM vendor: ${path.error}`, {
      subject: parsed.value.subject,
      issuer: parsed.value.issuer,
    });
  return ok({
    certificate,
    spki: new Uint8Array(parsed.value.publicKey.rawData),
    path: path.value.path.map((c) => new Uint8Array(c.rawData)),
  });
}

/**
 * The chip id of a TPM board (the contract in docs/tpm.md): lower-case hex of the first 16 bytes of SHA-256 over
 * the DER SubjectPublicKeyInfo of its EK certificate.
 */
export async function chipIdOf(ekSpki: Uint8Array): Promise<string> {
  return toHex((await sha256(ekSpki)).subarray(0, 16));
}

/**
 * Board attestation: the board's factory attestation key signs attestationMessage(nonce, chipId);
 * its certificate chains to a vendor root and names the chip in the subject serialNumber (2.5.4.5).
 */
import 'reflect-metadata';
import { concatBytes, utf8 } from '../bytes.js';
import { fail } from '../errors.js';
import type { AttestationEvidence } from '../model.js';
import type { Clock } from '../ports.js';
import { ok, type Result } from '../result.js';
import { verifyCertificateChain } from './chain.js';
import { curveHash, derToRawSignature, importVerifyKey, verifyRaw } from './ecdsa.js';
import { certificateSha256 } from './pem.js';

const PREFIX = 'line-station/attest/v1\0';
const OID_SERIAL_NUMBER = '2.5.4.5';

/** The signed attestation message: utf8("line-station/attest/v1\0") || nonce || utf8(chipId). */
export function attestationMessage(nonce: Uint8Array, chipId: string): Uint8Array {
  return concatBytes(utf8(PREFIX), nonce, utf8(chipId));
}

export interface VerifiedAttestation {
  /** SHA-256 (hex) of the attestation leaf certificate. */
  readonly leafSha256: string;
  readonly leafSubject: string;
}

/**
 * Verify attestation evidence: chain to one trust anchor at clock.now() (ATTEST_CHAIN_INVALID, also for
 * malformed evidence), leaf subject serialNumber == chipId (ATTEST_IDENTITY_MISMATCH), DER ECDSA
 * signature over attestationMessage(nonce, chipId) with the leaf key (ATTEST_SIGNATURE_INVALID).
 */
export async function verifyAttestation(params: {
  nonce: Uint8Array;
  chipId: string;
  evidence: AttestationEvidence;
  trustAnchors: readonly Uint8Array[];
  clock: Clock;
}): Promise<Result<VerifiedAttestation>> {
  const { nonce, chipId, evidence } = params;
  if (!(nonce instanceof Uint8Array) || nonce.length < 16)
    return fail('INTERNAL', 'attestation nonce must be at least 16 bytes');
  if (
    !evidence ||
    typeof evidence !== 'object' ||
    !(evidence.signature instanceof Uint8Array) ||
    !Array.isArray(evidence.chain) ||
    !evidence.chain.every((c) => c instanceof Uint8Array)
  )
    return fail(
      'ATTEST_CHAIN_INVALID',
      'attestation evidence is malformed (expected a signature and a list of DER certificates)',
    );
  const chain = await verifyCertificateChain(evidence.chain, params.trustAnchors, params.clock.now());
  if (!chain.ok) return fail('ATTEST_CHAIN_INVALID', `attestation chain invalid: ${chain.error}`);
  const leaf = chain.value.leaf;
  const serials = leaf.subjectName.getField(OID_SERIAL_NUMBER);
  if (serials.length !== 1 || serials[0] !== chipId)
    return fail(
      'ATTEST_IDENTITY_MISMATCH',
      `the attestation certificate is for chip ${serials.join(',') || '(none)'}, not ${chipId}`,
      {
        expected: chipId,
        actual: serials.join(','),
      },
    );
  const key = await importVerifyKey(new Uint8Array(leaf.publicKey.rawData));
  if (!key) return fail('ATTEST_CHAIN_INVALID', 'the attestation key is not an EC P-256 or P-384 key');
  const raw = derToRawSignature(evidence.signature, key.curve);
  if (!raw) return fail('ATTEST_SIGNATURE_INVALID', 'the attestation signature is not a DER ECDSA signature');
  const good = await verifyRaw(key.key, key.curve, curveHash(key.curve), raw, attestationMessage(nonce, chipId));
  if (!good)
    return fail('ATTEST_SIGNATURE_INVALID', 'the attestation signature does not verify for this nonce and chip');
  return ok({ leafSha256: await certificateSha256(evidence.chain[0]!), leafSubject: leaf.subject });
}

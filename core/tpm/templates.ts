/**
 * Key templates (TPMT_PUBLIC with empty or zero unique fields) the station asks a TPM to create.
 *
 * - EK templates: TCG EK Credential Profile for TPM Family 2.0, Level 0, Version 2.5, §B.3.3 (template L-1, RSA 2048)
 *   and §B.3.4 (L-2, ECC NIST P-256), both with the standard policy PolicySecret(TPM_RH_ENDORSEMENT) (§B.6.2, policy
 *   digest A, SHA-256), and §B.4.5 (H-3, ECC NIST P-384, SHA-384, what swtpm 0.7.1's swtpm_setup makes for its ECC EK;
 *   userWithAuth set, so it is usable with an empty password).
 * - SRK: TCG TPM v2.0 Provisioning Guidance §7.5.1 (ECC P-256 storage primary key in the owner hierarchy).
 * - Attestation key and device identity key: ECC P-256 ECDSA/SHA-256 signing keys, after TCG "TPM 2.0 Keys for Device
 *   Identity and Attestation" §7.3 (IAK: restricted signing; IDevID: non-restricted signing). Deviation (docs/tpm.md):
 *   the station creates them as ordinary keys under the SRK (TPM2_Create) with userWithAuth and an empty auth value,
 *   not as endorsement-hierarchy primaries with the spec's adminWithPolicy policies.
 */
import { fromHex } from '../bytes.js';
import { TPMA_OBJECT as A, TPM_ALG, TPM_ECC } from './constants.js';
import type { EccPublic, RsaPublic, TpmPublic } from './public.js';

/** EK policy digest A: PolicySecret(TPM_RH_ENDORSEMENT), SHA-256 (EK Credential Profile §B.6.2). */
export const EK_POLICY_A_SHA256 = fromHex('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');
/** EK policy digest B, SHA-384 (the PolicyOR for high-range templates, §B.6.3). */
export const EK_POLICY_B_SHA384 = fromHex(
  'b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12',
);

/** The EK kinds core/tpm knows: template and certificate NV index (ek.ts). */
export type EkKind = 'rsa2048' | 'eccP256' | 'eccP384';

const EK_ATTRS = A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.adminWithPolicy | A.restricted | A.decrypt; // 0x000300b2

const zeros = (n: number): Uint8Array => new Uint8Array(n);

/** The EK template of `kind` (TCG EK Credential Profile templates L-1, L-2, H-3). */
export function ekTemplate(kind: EkKind): TpmPublic {
  switch (kind) {
    case 'rsa2048':
      return {
        type: 'rsa',
        nameAlg: TPM_ALG.SHA256,
        objectAttributes: EK_ATTRS,
        authPolicy: EK_POLICY_A_SHA256,
        symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
        scheme: null,
        keyBits: 2048,
        exponent: 0,
        modulus: zeros(256),
      } satisfies RsaPublic;
    case 'eccP256':
      return {
        type: 'ecc',
        nameAlg: TPM_ALG.SHA256,
        objectAttributes: EK_ATTRS,
        authPolicy: EK_POLICY_A_SHA256,
        symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
        scheme: null,
        curve: TPM_ECC.NIST_P256,
        kdf: null,
        x: zeros(32),
        y: zeros(32),
      } satisfies EccPublic;
    case 'eccP384':
      return {
        type: 'ecc',
        nameAlg: TPM_ALG.SHA384,
        objectAttributes: EK_ATTRS | A.userWithAuth,
        authPolicy: EK_POLICY_B_SHA384,
        symmetric: { algorithm: TPM_ALG.AES, keyBits: 256, mode: TPM_ALG.CFB },
        scheme: null,
        curve: TPM_ECC.NIST_P384,
        kdf: null,
        x: zeros(0),
        y: zeros(0),
      } satisfies EccPublic;
  }
}

/** Does using this EK need the PolicySecret(TPM_RH_ENDORSEMENT) session (no userWithAuth), or an empty password? */
export function ekAuthorisation(ek: TpmPublic): 'policy-secret-endorsement' | 'password' {
  return ek.objectAttributes & A.userWithAuth ? 'password' : 'policy-secret-endorsement';
}

/** The storage root key: ECC P-256, restricted decrypt, AES-128-CFB, noDA (Provisioning Guidance §7.5.1). */
export function srkTemplate(): EccPublic {
  return {
    type: 'ecc',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes:
      A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.userWithAuth | A.noDA | A.restricted | A.decrypt,
    authPolicy: zeros(0),
    symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
    scheme: null,
    curve: TPM_ECC.NIST_P256,
    kdf: null,
    x: zeros(32),
    y: zeros(32),
  };
}

/** The attributes every station-created signing key must have (and must be checked for in what the TPM returns). */
export const SIGNING_KEY_ATTRS = A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.userWithAuth | A.sign;

function signingKey(restricted: boolean): EccPublic {
  return {
    type: 'ecc',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: SIGNING_KEY_ATTRS | (restricted ? A.restricted : 0),
    authPolicy: zeros(0),
    symmetric: null,
    scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
    curve: TPM_ECC.NIST_P256,
    kdf: null,
    x: zeros(0),
    y: zeros(0),
  };
}

/** Attestation key (IAK-like): restricted signing, ECC P-256, ECDSA SHA-256 (attributes 0x00050072). */
export function attestationKeyTemplate(): EccPublic {
  return signingKey(true);
}

/** Device identity key (IDevID-like): non-restricted signing, ECC P-256, ECDSA SHA-256 (attributes 0x00040072). */
export function deviceKeyTemplate(): EccPublic {
  return signingKey(false);
}

/**
 * Key templates (TPMT_PUBLIC with empty or zero unique fields) the station asks a TPM to create.
 *
 * - EK templates: TCG EK Credential Profile for TPM Family 2.0, Annex B: template L-1 (RSA 2048) and L-2
 *   (ECC NIST P-256), both with the standard policy PolicySecret(TPM_RH_ENDORSEMENT) (policy digest A, SHA-256), and
 *   high-range template H-3 (ECC NIST P-384, SHA-384, what swtpm 0.7.1's swtpm_setup makes for its ECC EK;
 *   userWithAuth set, so it is usable with an empty password).
 * - SRK: TCG TPM v2.0 Provisioning Guidance, SRK template (ECC P-256 storage primary key in the owner hierarchy).
 * - Attestation key and device identity key: ECC P-256 ECDSA/SHA-256 signing keys, after TCG "TPM 2.0 Keys for Device
 *   Identity and Attestation" (IAK: restricted signing; IDevID: non-restricted signing), with userWithAuth, an
 *   empty auth value and no policy (simpler than the spec's adminWithPolicy templates). They work with TPM2_Create
 *   under the SRK or TPM2_CreatePrimary; a driver may derive its own variant (e.g. a distinct `unique`).
 */
import { fromHex } from '../bytes.js';
import { fail } from '../errors.js';
import { ok, type Result } from '../result.js';
import { CURVES, TPMA_OBJECT as A, TPM_ALG, TPM_ECC } from './constants.js';
import type { EccPublic, RsaPublic, TpmPublic } from './public.js';

/** EK policy digest A: PolicySecret(TPM_RH_ENDORSEMENT), SHA-256 (EK Credential Profile, Annex B). */
export const EK_POLICY_A_SHA256 = fromHex('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');
/** EK policy digest B, SHA-384 (the PolicyOR of the high-range templates, Annex B). */
export const EK_POLICY_B_SHA384 = fromHex(
  'b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12',
);

/** The EK kinds core/tpm knows: template and certificate NV index (ek.ts). */
export type EkKind = 'rsa2048' | 'eccP256' | 'eccP384';

const EK_ATTRS = A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.adminWithPolicy | A.restricted | A.decrypt; // 0x000300b2

const zeros = (n: number): Uint8Array => new Uint8Array(n);

const AES_128_CFB = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB } as const;

/** What the low-range templates L-1 and L-2 share (EK Credential Profile, Annex B). */
const lowRange = () => ({
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: EK_ATTRS,
  authPolicy: EK_POLICY_A_SHA256,
  symmetric: AES_128_CFB,
  scheme: null,
});

/** The EK template of `kind` (TCG EK Credential Profile templates L-1, L-2, H-3). */
export function ekTemplate(kind: EkKind): TpmPublic {
  switch (kind) {
    case 'rsa2048':
      return { type: 'rsa', ...lowRange(), keyBits: 2048, exponent: 0, modulus: zeros(256) } satisfies RsaPublic;
    case 'eccP256':
      return {
        type: 'ecc',
        ...lowRange(),
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

/** The storage root key: ECC P-256, restricted decrypt, AES-128-CFB, noDA (TCG Provisioning Guidance). */
export function srkTemplate(): EccPublic {
  return {
    type: 'ecc',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes:
      A.fixedTPM | A.fixedParent | A.sensitiveDataOrigin | A.userWithAuth | A.noDA | A.restricted | A.decrypt,
    authPolicy: zeros(0),
    symmetric: AES_128_CFB,
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

const ATTRIBUTE_NAMES = Object.entries(A) as [keyof typeof A, number][];

/** The names of the TPMA_OBJECT bits set in `attrs` ("fixedTPM|fixedParent|…"). */
export function attributeNames(attrs: number): string {
  return ATTRIBUTE_NAMES.filter(([, bit]) => (attrs & bit) !== 0)
    .map(([n]) => n)
    .join('|');
}

/**
 * Check that a key's public area (as the TPM, through the relay, reported it) is what `template` asked for: same
 * type, nameAlg, attributes (exactly: fixedTPM, fixedParent, sensitiveDataOrigin… none missing, none added),
 * empty authPolicy, scheme, curve, and a point of the curve's size. TPM_KEY_ATTRIBUTES_INVALID otherwise.
 * The report is only trustworthy once the key's Name (computed from this public area) is bound by the TPM:
 * ActivateCredential for the attestation key, a verified TPM2_Certify for a key it certifies (docs/tpm.md).
 */
export function checkKeyPublic(pub: TpmPublic, template: EccPublic): Result<void> {
  const problems: string[] = [];
  if (pub.type !== 'ecc') problems.push(`type ${pub.type}, expected ecc`);
  if (pub.nameAlg !== template.nameAlg) problems.push(`nameAlg 0x${pub.nameAlg.toString(16)}`);
  if (pub.objectAttributes !== template.objectAttributes) {
    const missing = template.objectAttributes & ~pub.objectAttributes;
    const extra = pub.objectAttributes & ~template.objectAttributes;
    if (missing) problems.push(`missing ${attributeNames(missing)}`);
    if (extra) problems.push(`unexpected ${attributeNames(extra) || `0x${extra.toString(16)}`}`);
  }
  if (pub.authPolicy.length !== 0) problems.push('an authPolicy is set');
  if (pub.type === 'ecc') {
    if (pub.curve !== template.curve) problems.push(`curve 0x${pub.curve.toString(16)}`);
    if (pub.scheme?.scheme !== template.scheme?.scheme || pub.scheme?.hashAlg !== template.scheme?.hashAlg) {
      problems.push('signing scheme differs');
    }
    const size = CURVES[template.curve]?.size;
    if (pub.x.length !== size || pub.y.length !== size) problems.push('point size differs from the curve');
  }
  if (problems.length === 0) return ok(undefined);
  return fail(
    'TPM_KEY_ATTRIBUTES_INVALID',
    `the TPM key is not the key the station asked for: ${problems.join('; ')}`,
    {
      objectAttributes: `0x${pub.objectAttributes.toString(16).padStart(8, '0')}`,
      attributes: attributeNames(pub.objectAttributes),
      problems,
    },
  );
}

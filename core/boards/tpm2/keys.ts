/**
 * The two keys the station has the TPM make (docs/tpm.md "Templates"): the attestation key (IAK, re-derived as a
 * primary key of the endorsement hierarchy) and the device identity key (IDevID, under the SRK, persistent), and the
 * check of every public area the TPM returns for them: a relay that altered a template (e.g. cleared fixedTPM) is
 * caught here, before anything is persisted, certified or issued.
 */
import { toBase64, toHex } from '../../bytes.js';
import { fail } from '../../errors.js';
import { ok, type Result } from '../../result.js';
import { TPMA_OBJECT as A, TPM_ALG, TPM_ECC, TPM_RH } from '../../tpm/constants.js';
import { objectName, type TpmPublic } from '../../tpm/public.js';
import { attestationKeyTemplate, SIGNING_KEY_ATTRS } from '../../tpm/templates.js';
import type { TpmSession } from './session.js';

const ATTRIBUTE_NAMES: ReadonlyArray<[string, number]> = [
  ['fixedTPM', A.fixedTPM],
  ['fixedParent', A.fixedParent],
  ['sensitiveDataOrigin', A.sensitiveDataOrigin],
  ['userWithAuth', A.userWithAuth],
  ['sign', A.sign],
  ['restricted', A.restricted],
  ['decrypt', A.decrypt],
];

/**
 * The public area of a station-made signing key must be ECC P-256 with ECDSA-SHA256 and have fixedTPM,
 * fixedParent, sensitiveDataOrigin, userWithAuth and sign set, decrypt clear, and restricted exactly as asked
 * (IAK: set, IDevID: clear). TPM_KEY_ATTRIBUTES_INVALID naming what differs.
 */
export function checkSigningKey(p: TpmPublic, what: 'IAK' | 'IDevID'): Result<void> {
  const restricted = what === 'IAK';
  if (p.type !== 'ecc' || p.curve !== TPM_ECC.NIST_P256)
    return fail('TPM_KEY_ATTRIBUTES_INVALID', `the ${what} is not an ECC P-256 key`, { key: what });
  if (p.nameAlg !== TPM_ALG.SHA256)
    return fail('TPM_KEY_ATTRIBUTES_INVALID', `the ${what}'s nameAlg is not SHA-256`, { key: what });
  if (!p.scheme || p.scheme.scheme !== TPM_ALG.ECDSA || p.scheme.hashAlg !== TPM_ALG.SHA256)
    return fail('TPM_KEY_ATTRIBUTES_INVALID', `the ${what}'s scheme is not ECDSA-SHA256`, { key: what });
  const want = SIGNING_KEY_ATTRS | (restricted ? A.restricted : 0);
  const mask = want | A.restricted | A.decrypt;
  const got = p.objectAttributes & mask;
  if (got !== want) {
    const missing = ATTRIBUTE_NAMES.filter(([, b]) => want & b && !(got & b)).map(([n]) => n);
    const extra = ATTRIBUTE_NAMES.filter(([, b]) => !(want & b) && got & b).map(([n]) => n);
    return fail(
      'TPM_KEY_ATTRIBUTES_INVALID',
      `the ${what} the TPM made ${missing.length ? `lacks ${missing.join(', ')}` : ''}${
        missing.length && extra.length ? ' and ' : ''
      }${extra.length ? `has ${extra.join(', ')}` : ''}: the key template was altered on its way to the TPM`,
      { key: what, missing, extra, attributes: `0x${p.objectAttributes.toString(16).padStart(8, '0')}` },
    );
  }
  return ok(undefined);
}

/** A TPM key as the evidence records it: TPMT_PUBLIC (base64) and its Name computed by the station (hex). */
export interface KeyRecord {
  readonly public: string;
  readonly name: string;
}

export async function keyRecord(publicBytes: Uint8Array, p: TpmPublic): Promise<Result<KeyRecord>> {
  const name = await objectName(p);
  if (!name.ok) return name;
  return ok({ public: toBase64(publicBytes), name: toHex(name.value) });
}

export interface LoadedIak {
  readonly handle: number;
  readonly public: TpmPublic;
  readonly publicBytes: Uint8Array;
  /** The Name the station computes from the public area (never the TPM's word for it). */
  readonly name: Uint8Array;
}

/**
 * Re-derive the IAK: TPM2_CreatePrimary(TPM_RH_ENDORSEMENT, IAK template). Same endorsement seed and template, same
 * key (docs/tpm.md "Templates"). Checked with checkSigningKey; `track` flushes it.
 */
export async function loadIak(s: TpmSession, track: (h: number) => number): Promise<Result<LoadedIak>> {
  const iak = await s.tpm.createPrimary(TPM_RH.ENDORSEMENT, attestationKeyTemplate(), s.call);
  if (!iak.ok) return iak;
  track(iak.value.handle);
  const checked = checkSigningKey(iak.value.public, 'IAK');
  if (!checked.ok) return checked;
  const name = await objectName(iak.value.public);
  if (!name.ok) return name;
  return ok({
    handle: iak.value.handle,
    public: iak.value.public,
    publicBytes: iak.value.publicBytes,
    name: name.value,
  });
}

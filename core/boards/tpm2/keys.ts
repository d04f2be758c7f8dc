/**
 * The two keys the station has the TPM make (docs/tpm.md "Templates"): the attestation key (IAK, re-derived as a
 * primary key of the endorsement hierarchy) and the device identity key (IDevID, under the SRK, persistent), and the
 * check of every public area the TPM returns for them: a relay that altered a template (e.g. cleared fixedTPM) is
 * caught here, before anything is persisted, certified or issued.
 */
import { toBase64, toHex } from '../../bytes.js';
import { fail } from '../../errors.js';
import { ok, type Result } from '../../result.js';
import { TPM_RH } from '../../tpm/constants.js';
import { objectName, type TpmPublic } from '../../tpm/public.js';
import { attestationKeyTemplate, checkKeyPublic, deviceKeyTemplate } from '../../tpm/templates.js';
import type { TpmSession } from './session.js';

/**
 * The public area of a station-made signing key must be exactly what its template asked for (core/tpm
 * `checkKeyPublic`: ECC P-256, ECDSA-SHA256, fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, sign, and
 * restricted for the IAK only; nothing more). TPM_KEY_ATTRIBUTES_INVALID naming the key and what differs.
 */
export function checkSigningKey(p: TpmPublic, what: 'IAK' | 'IDevID'): Result<void> {
  const r = checkKeyPublic(p, what === 'IAK' ? attestationKeyTemplate() : deviceKeyTemplate());
  if (r.ok) return r;
  return fail(r.error.code, `the ${what}: ${r.error.message} (was its template altered on the way to the TPM?)`, {
    ...r.error.details,
    key: what,
  });
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
  const iak = await s.tpm.createPrimary(TPM_RH.ENDORSEMENT, attestationKeyTemplate(), s.keygen);
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

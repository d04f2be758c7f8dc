/**
 * The TPM's endorsement key, as the station establishes it (docs/tpm.md "identify" 2–5): the EK certificate read
 * from its TCG NV index, its path to the TPM vendor roots, the EK made again from the TCG template (TPM2_CreatePrimary
 * in the endorsement hierarchy) with the certificate's public key, and the chip id derived from the certificate.
 */
import { fail } from '../../errors.js';
import { ok, type Result } from '../../result.js';
import { createEk as createEkPrimary, readEkCertificate as readEkCertificateNv } from '../../tpm/ek.js';
import { objectName, publicMatchesSpki, type TpmPublic } from '../../tpm/public.js';
import type { DriverContext } from '../driver.js';
import { chipIdOf, verifyEkCertificate, type TrustedEk } from './ek-trust.js';
import type { TpmSession } from './session.js';

export interface EkCertificate extends TrustedEk {
  /** The chip id derived from the certificate (ek-trust.ts `chipIdOf`). */
  readonly chipId: string;
}

export interface LoadedEk {
  readonly handle: number;
  readonly public: TpmPublic;
  /** TPMT_PUBLIC as the TPM returned it. */
  readonly publicBytes: Uint8Array;
  readonly name: Uint8Array;
}

/**
 * Read the EK certificate of the profile's EK type from NV and verify it to the attestation roots:
 * TPM_EK_CERT_INVALID (missing or not a certificate), ATTEST_CHAIN_INVALID (not from a trusted TPM vendor).
 */
export async function readEkCertificate(s: TpmSession, ctx: DriverContext): Promise<Result<EkCertificate>> {
  const der = await readEkCertificateNv(s.tpm, s.ekKind, s.call);
  if (!der.ok) return der;
  const trusted = await verifyEkCertificate(der.value, ctx.attestationRoots, ctx.clock.now());
  if (!trusted.ok) return trusted;
  ctx.note(`EK certificate (${s.profile.ekType}) verified to the TPM vendor root`);
  return ok({ ...trusted.value, chipId: await chipIdOf(trusted.value.spki) });
}

/**
 * Make the EK (TPM2_CreatePrimary with the TCG template; the caller's `track` flushes it) and check that its public
 * key is the certificate's: TPM_EK_CERT_INVALID otherwise.
 */
export async function createEk(
  s: TpmSession,
  cert: EkCertificate,
  track: (h: number) => number,
): Promise<Result<LoadedEk>> {
  const ek = await createEkPrimary(s.tpm, s.ekKind, s.keygen);
  if (!ek.ok) return ek;
  track(ek.value.handle);
  if (!(await publicMatchesSpki(ek.value.public, cert.spki)))
    return fail('TPM_EK_CERT_INVALID', "the TPM's endorsement key is not the key of its EK certificate");
  const name = await objectName(ek.value.public);
  if (!name.ok) return name;
  return ok({ handle: ek.value.handle, public: ek.value.public, publicBytes: ek.value.publicBytes, name: name.value });
}

/**
 * Endorsement keys: where their certificates live in NV, reading them, and recreating the EK from its template.
 * TCG EK Credential Profile for TPM Family 2.0 §2.2 (EK certificate NV indices: low range 0x01c00002 RSA 2048,
 * 0x01c0000a ECC NIST P-256; high range 0x01c00012.. e.g. 0x01c00016 ECC NIST P-384) and Annex B (templates).
 * The EK is a primary key in the endorsement hierarchy: TPM2_CreatePrimary with the profile's template yields the
 * same key every time, and that key must be the one the certificate certifies (the caller compares it with
 * `publicMatchesSpki`).
 */
import { fail } from '../errors.js';
import type { CallOptions } from '../ports.js';
import { ok, type Result } from '../result.js';
import type { LoadedObject, Tpm } from './commands.js';
import { TPMA_NV, TPM_RH } from './constants.js';
import { ekTemplate, type EkKind } from './templates.js';

/** NV index of each EK kind's certificate (EK Credential Profile §2.2). */
export const EK_CERT_INDEX: Readonly<Record<EkKind, number>> = {
  rsa2048: 0x01c00002,
  eccP256: 0x01c0000a,
  eccP384: 0x01c00016,
};

/** The largest EK certificate core/tpm reads (a DER certificate; swtpm's are ~1 KiB). */
export const EK_CERT_MAX = 4096;

/**
 * Read the EK certificate (DER) of `kind` from its NV index. TPM_EK_CERT_INVALID when the index is missing, not
 * written, or implausibly large; a trailing-zero padded certificate (some vendors pad the index) is cut to its
 * DER length.
 */
export async function readEkCertificate(tpm: Tpm, kind: EkKind, opts?: CallOptions): Promise<Result<Uint8Array>> {
  const index = EK_CERT_INDEX[kind];
  const hex = `0x${index.toString(16).padStart(8, '0')}`;
  const pub = await tpm.nvReadPublic(index, opts);
  if (!pub.ok) {
    if (pub.error.code === 'TPM_COMMAND_FAILED') {
      return fail(
        'TPM_EK_CERT_INVALID',
        `no ${kind} EK certificate at NV ${hex} (${String(pub.error.details?.rcName)})`,
      );
    }
    return pub;
  }
  if ((pub.value.attributes & TPMA_NV.WRITTEN) === 0) return fail('TPM_EK_CERT_INVALID', `NV ${hex} was never written`);
  if (pub.value.dataSize < 16 || pub.value.dataSize > EK_CERT_MAX) {
    return fail('TPM_EK_CERT_INVALID', `NV ${hex} holds ${pub.value.dataSize} bytes`);
  }
  const data = await tpm.nvRead(index, opts);
  if (!data.ok) return data;
  const len = derLength(data.value);
  if (len === undefined || len > data.value.length) {
    return fail('TPM_EK_CERT_INVALID', `NV ${hex} does not hold a DER certificate`);
  }
  return ok(data.value.slice(0, len));
}

/** Length of the DER SEQUENCE at the start of `b` (header included), or undefined. */
function derLength(b: Uint8Array): number | undefined {
  if (b.length < 2 || b[0] !== 0x30) return undefined;
  const first = b[1]!;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 3 || b.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = (len << 8) | b[2 + i]!;
  return 2 + n + len;
}

/** Create (TPM2_CreatePrimary in the endorsement hierarchy) the EK of `kind` from its standard template. */
export function createEk(tpm: Tpm, kind: EkKind, opts?: CallOptions): Promise<Result<LoadedObject>> {
  return tpm.createPrimary(TPM_RH.ENDORSEMENT, ekTemplate(kind), opts);
}

/**
 * The baseline of a TPM board (docs/tpm.md "measure"): the IAK bound to the EK by credential activation, then a
 * TPM2_Quote by the IAK over the profile's PCRs with a fresh nonce, verified against PCR_Read, and the PCR values
 * judged against the work order's `baseline.pcrs`. What attest needs later (EK path, EK and IAK public areas, the
 * activation) is checkpointed as `driver.tpmMeasure`.
 */
import { z } from 'zod';
import { bytesEqual, sha256Hex, toBase64, toBase64Url, toHex } from '../../bytes.js';
import { canonicalJson } from '../../canonical.js';
import { fail, type StationError } from '../../errors.js';
import type { BoardIdentity } from '../../model.js';
import { evaluatePcrBaseline, type TpmMeasurements } from '../../provisioning/baseline.js';
import { ok, type Result } from '../../result.js';
import { parseAttest, verifyAttest, type TpmSignature } from '../../tpm/attest.js';
import { makeCredential } from '../../tpm/credential.js';
import { pcrDigest, type PcrSelection, type PcrValue } from '../../tpm/pcr.js';
import type { TpmPublic } from '../../tpm/public.js';
import { ekAuthorisation } from '../../tpm/templates.js';
import type { DriverContext, MeasureResult } from '../driver.js';
import { createEk, readEkCertificate, type LoadedEk } from './ek.js';
import { keyRecord, loadIak, type LoadedIak } from './keys.js';
import type { TpmSession } from './session.js';

const TpmKey = z.object({ public: z.string(), name: z.string() }).strict();

/** What the measure step checkpoints for the attest step (`run.data.driver.tpmMeasure`). */
export const TpmMeasureCheckpointSchema = z
  .object({
    /** The validated EK certificate path, standard base64 DER, EK certificate first. */
    chain: z.array(z.string()).min(1),
    leafSha256: z.string(),
    ek: TpmKey,
    iak: TpmKey,
    activation: z.object({ ekName: z.string(), iakName: z.string(), at: z.string() }).strict(),
  })
  .strict();
export type TpmMeasureCheckpoint = z.infer<typeof TpmMeasureCheckpointSchema>;

/** The measure checkpoint of this run; INTERNAL when it is missing or malformed (a step out of order is a bug). */
export function measureCheckpoint(ctx: DriverContext): Result<TpmMeasureCheckpoint> {
  const c = TpmMeasureCheckpointSchema.safeParse(
    (ctx.runData.driver as Record<string, unknown> | undefined)?.tpmMeasure,
  );
  return c.success ? ok(c.data) : fail('INTERNAL', 'the run has no TPM measure checkpoint (driver.tpmMeasure)');
}

/**
 * Prove the IAK is in the EK's TPM: MakeCredential(EK public, secret, IAK name) at the station,
 * TPM2_ActivateCredential by the TPM; the secret must come back. ATTEST_TPM_ACTIVATION_FAILED otherwise (also when
 * the TPM refuses: a relay that answers with another TPM cannot decrypt the seed or fails the integrity check).
 */
async function activate(s: TpmSession, ctx: DriverContext, ek: LoadedEk, iak: LoadedIak): Promise<Result<void>> {
  const secret = ctx.random(32);
  const made = await makeCredential(ek.public, secret, iak.name);
  if (!made.ok) return made;
  const got = await s.tpm.activateCredential(
    {
      activateHandle: iak.handle,
      keyHandle: ek.handle,
      ekAuth: ekAuthorisation(ek.public),
      credentialBlob: made.value.credentialBlob,
      secret: made.value.secret,
    },
    s.call,
  );
  const refused = (e: StationError) =>
    fail(
      'ATTEST_TPM_ACTIVATION_FAILED',
      `TPM2_ActivateCredential failed (${e.message}): the attestation key is not proven to be in the TPM of the EK`,
      { ...(e.details ?? {}) },
    );
  if (!got.ok)
    return got.error.code === 'TPM_COMMAND_FAILED' || got.error.code === 'TPM_RESPONSE_MALFORMED'
      ? refused(got.error)
      : got;
  if (!bytesEqual(got.value, secret))
    return fail(
      'ATTEST_TPM_ACTIVATION_FAILED',
      'the TPM answered the credential with another secret: the answer did not come from the TPM of the EK',
    );
  return ok(undefined);
}

/**
 * Verify a TPM2_Quote: signed by the IAK (ATTEST_SIGNATURE_INVALID), over this nonce (ATTEST_NONCE_MISMATCH:
 * stale or replayed), of exactly the profile's selection and of the values PCR_Read gave
 * (ATTEST_TPM_QUOTE_INVALID).
 */
export async function verifyQuote(q: {
  readonly attest: Uint8Array;
  readonly signature: TpmSignature;
  readonly iak: TpmPublic;
  readonly nonce: Uint8Array;
  readonly selection: readonly PcrSelection[];
  readonly values: readonly PcrValue[];
}): Promise<Result<void>> {
  const parsed = parseAttest(q.attest);
  if (!parsed.ok) return parsed;
  const sig = await verifyAttest(q.iak, q.attest, q.signature);
  if (!sig.ok) return sig;
  const a = parsed.value;
  if (a.attested.kind !== 'quote') return fail('ATTEST_TPM_QUOTE_INVALID', 'the TPM answered the quote with a certify');
  if (!bytesEqual(a.extraData, q.nonce))
    return fail('ATTEST_NONCE_MISMATCH', 'the quote is not over this nonce: a stale or replayed quote');
  const sel = a.attested.pcrSelect.filter((b) => b.pcrs.length > 0);
  const same =
    sel.length === q.selection.length &&
    sel.every(
      (b, i) =>
        b.hashAlg === q.selection[i]!.hashAlg &&
        b.pcrs.length === q.selection[i]!.pcrs.length &&
        b.pcrs.every((p, j) => p === q.selection[i]!.pcrs[j]),
    );
  if (!same) return fail('ATTEST_TPM_QUOTE_INVALID', 'the quote is over other PCRs than the profile selects');
  const digest = await pcrDigest(q.selection, q.values);
  if (!digest.ok) return digest;
  if (!bytesEqual(digest.value, a.attested.pcrDigest))
    return fail('ATTEST_TPM_QUOTE_INVALID', 'the quoted PCR digest is not the digest of the PCR values read');
  return ok(undefined);
}

export async function measureTpm(
  s: TpmSession,
  ctx: DriverContext,
  identity: BoardIdentity,
): Promise<Result<MeasureResult>> {
  const cert = await readEkCertificate(s, ctx);
  if (!cert.ok) return cert;
  if (cert.value.chipId !== identity.chipId)
    return fail(
      'BOARD_IDENTITY_INVALID',
      `the TPM's EK certificate is chip ${cert.value.chipId}, not ${identity.chipId}`,
    );
  return s.scoped(async (track) => {
    const ek = await createEk(s, cert.value, track);
    if (!ek.ok) return ek;
    const iak = await loadIak(s, track);
    if (!iak.ok) return iak;
    ctx.note('IAK derived in the endorsement hierarchy (restricted ECC P-256 signing key)');
    const act = await activate(s, ctx, ek.value, iak.value);
    if (!act.ok) return act;
    const activatedAt = ctx.clock.now().toISOString();
    ctx.note("credential activated: the IAK is in the EK's TPM");
    const nonce = ctx.random(32);
    const q = await s.tpm.quote(
      { signHandle: iak.value.handle, qualifyingData: nonce, selection: s.pcrSelection },
      s.call,
    );
    if (!q.ok) return q;
    const values = await s.tpm.pcrRead(s.pcrSelection, s.call);
    if (!values.ok) return values;
    const v = await verifyQuote({
      attest: q.value.attest,
      signature: q.value.signature,
      iak: iak.value.public,
      nonce,
      selection: s.pcrSelection,
      values: values.value,
    });
    if (!v.ok) return v;
    ctx.note(`quote over PCRs ${s.profile.pcrSelection.join(',')} (${s.profile.pcrBank}) verified`);
    const ekRec = await keyRecord(ek.value.publicBytes, ek.value.public);
    if (!ekRec.ok) return ekRec;
    const iakRec = await keyRecord(iak.value.publicBytes, iak.value.public);
    if (!iakRec.ok) return iakRec;
    const measurements: TpmMeasurements = {
      pcrBank: s.profile.pcrBank,
      pcrs: Object.fromEntries(values.value.map((x) => [String(x.pcr), toHex(x.digest)])),
      quote: {
        attest: toBase64(q.value.attest),
        signature: toBase64(q.value.signatureBytes),
        nonce: toBase64Url(nonce),
      },
      ak: iakRec.value,
    };
    const verdict = evaluatePcrBaseline(measurements, ctx.workOrder.baseline);
    ctx.note(verdict.pass ? 'PCR values match the work order' : 'PCR values do not match the work order');
    const checkpoint: TpmMeasureCheckpoint = {
      chain: cert.value.path.map((d) => toBase64(d)),
      leafSha256: await sha256Hex(cert.value.certificate),
      ek: ekRec.value,
      iak: iakRec.value,
      activation: { ekName: ekRec.value.name, iakName: iakRec.value.name, at: activatedAt },
    };
    return ok({
      measurements,
      measurementsSha256: await sha256Hex(canonicalJson(measurements)),
      verdict,
      checkpoint: { tpmMeasure: checkpoint },
    });
  });
}

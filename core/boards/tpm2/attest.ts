/**
 * The attest step of a TPM board (docs/tpm.md "attest"): TPM2_Certify of the IDevID by the IAK with the flow's nonce
 * as qualifying data, verified, and the evidence a third party needs to re-check it (record mode `tpm2`,
 * docs/formats.md "TPM evidence").
 */
import { bytesEqual, toBase64, toBase64Url, toHex } from '../../bytes.js';
import { fail } from '../../errors.js';
import { ok, type Result } from '../../result.js';
import { parseAttest, verifyAttest } from '../../tpm/attest.js';
import { objectName, publicToSpki } from '../../tpm/public.js';
import type { AttestInput, AttestResult, DriverContext } from '../driver.js';
import { checkSigningKey, keyRecord, loadIak } from './keys.js';
import { measureCheckpoint } from './measure.js';
import type { TpmSession } from './session.js';

export async function attestTpm(s: TpmSession, ctx: DriverContext, input: AttestInput): Promise<Result<AttestResult>> {
  const m = measureCheckpoint(ctx);
  if (!m.ok) return m;
  const handle = s.profile.persistentHandles.idevid;
  return s.scoped(async (track) => {
    const iak = await loadIak(s, track);
    if (!iak.ok) return iak;
    if (toHex(iak.value.name) !== m.value.activation.iakName)
      return fail('ATTEST_KEY_MISMATCH', 'the IAK the TPM derives now is not the one whose credential it activated', {
        expected: m.value.activation.iakName,
        actual: toHex(iak.value.name),
      });
    const idevid = await s.tpm.readPublic(handle, s.call);
    if (!idevid.ok) return idevid;
    const checked = checkSigningKey(idevid.value.public, 'IDevID');
    if (!checked.ok) return checked;
    const spki = await publicToSpki(idevid.value.public);
    if (!spki.ok) return spki;
    if (!bytesEqual(spki.value, input.bound.key))
      return fail('ATTEST_KEY_MISMATCH', 'the TPM holds another IDevID than the key of the key step');
    const name = await objectName(idevid.value.public);
    if (!name.ok) return name;
    const c = await s.tpm.certify(
      { objectHandle: handle, signHandle: iak.value.handle, qualifyingData: input.nonce },
      s.call,
    );
    if (!c.ok) return c;
    const parsed = parseAttest(c.value.attest);
    if (!parsed.ok) return parsed;
    const sig = await verifyAttest(iak.value.public, c.value.attest, c.value.signature);
    if (!sig.ok) return sig;
    const a = parsed.value;
    if (a.attested.kind !== 'certify')
      return fail('ATTEST_STATEMENT_INVALID', 'the TPM answered TPM2_Certify with another kind of attestation');
    if (!bytesEqual(a.extraData, input.nonce))
      return fail('ATTEST_NONCE_MISMATCH', 'the certify is not over this nonce: a stale or replayed attestation');
    if (!bytesEqual(a.attested.name, name.value))
      return fail(
        'ATTEST_KEY_MISMATCH',
        'the IAK certified another key than the IDevID the station is about to certify',
        {
          expected: toHex(name.value),
          actual: toHex(a.attested.name),
        },
      );
    ctx.note('TPM2_Certify: the IAK certified the IDevID with this nonce');
    const rec = await keyRecord(idevid.value.publicBytes, idevid.value.public);
    if (!rec.ok) return rec;
    const mv = m.value;
    return ok({
      leafSha256: mv.leafSha256,
      evidence: {
        mode: 'tpm2',
        nonce: toBase64Url(input.nonce),
        leafSha256: mv.leafSha256,
        chain: mv.chain,
        ek: { type: s.profile.ekType, public: mv.ek.public, name: mv.ek.name },
        iak: mv.iak,
        idevid: { ...rec.value, handle: `0x${handle.toString(16).padStart(8, '0')}` },
        certify: { attest: toBase64(c.value.attest), signature: toBase64(c.value.signatureBytes) },
        activation: { result: 'secret-matched', ...mv.activation },
        measurementsSha256: input.measurementsSha256,
      },
    });
  });
}

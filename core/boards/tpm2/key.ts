/**
 * The key step of a TPM board (docs/tpm.md "key"): the IDevID, an ECC P-256 signing key made in the TPM under the
 * SRK, its public area checked, then made persistent. A key already persistent at the profile's handle (this run's,
 * or one made persistent just before an unplug) is used instead: one identity, never a second key.
 */
import { bytesEqual, fromBase64Url, toBase64Url } from '../../bytes.js';
import { fail } from '../../errors.js';
import { ok, type Result } from '../../result.js';
import { TPM_RH } from '../../tpm/constants.js';
import { publicToSpki, type TpmPublic } from '../../tpm/public.js';
import { deviceKeyTemplate, srkTemplate } from '../../tpm/templates.js';
import type { BoundKey, DriverContext } from '../driver.js';
import { checkSigningKey, keyRecord } from './keys.js';
import type { TpmSession } from './session.js';

const hex = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;

/** The SRK at its persistent handle, made and persisted when absent (TPM2_CreatePrimary + TPM2_EvictControl). */
async function ensureSrk(s: TpmSession, ctx: DriverContext, track: (h: number) => number): Promise<Result<number>> {
  const srk = s.profile.persistentHandles.srk;
  const present = await s.present(srk);
  if (!present.ok) return present;
  if (present.value) return ok(srk);
  const made = await s.tpm.createPrimary(TPM_RH.OWNER, srkTemplate(), s.keygen);
  if (!made.ok) return made;
  track(made.value.handle);
  const persisted = await s.tpm.evictControl(made.value.handle, srk, s.flash);
  if (!persisted.ok) return persisted;
  ctx.note(`SRK created and made persistent at ${hex(srk)}`);
  return ok(srk);
}

/** A new IDevID under the SRK, checked, loaded and made persistent at the profile's handle. */
async function createIdevid(s: TpmSession, ctx: DriverContext): Promise<Result<TpmPublic>> {
  const handle = s.profile.persistentHandles.idevid;
  return s.scoped(async (track) => {
    const srk = await ensureSrk(s, ctx, track);
    if (!srk.ok) return srk;
    const created = await s.tpm.create(srk.value, deviceKeyTemplate(), s.keygen);
    if (!created.ok) return created;
    // Before anything is loaded or persisted: a relay that altered the template is caught here.
    const checked = checkSigningKey(created.value.public, 'IDevID');
    if (!checked.ok) return checked;
    const loaded = await s.tpm.load(srk.value, created.value, s.call);
    if (!loaded.ok) return loaded;
    track(loaded.value.handle);
    const persisted = await s.tpm.evictControl(loaded.value.handle, handle, s.flash);
    if (!persisted.ok) return persisted;
    ctx.note(`IDevID created in the TPM (fixedTPM, fixedParent, sensitiveDataOrigin) and persistent at ${hex(handle)}`);
    return ok(created.value.public);
  });
}

export async function keyTpm(s: TpmSession, ctx: DriverContext): Promise<Result<BoundKey>> {
  const handle = s.profile.persistentHandles.idevid;
  const runKey = ctx.runData.key;
  const present = await s.present(handle);
  if (!present.ok) return present;
  let pub: TpmPublic;
  let publicBytes: Uint8Array;
  if (present.value) {
    const read = await s.tpm.readPublic(handle, s.call);
    if (!read.ok) return read;
    pub = read.value.public;
    publicBytes = read.value.publicBytes;
    ctx.note(`IDevID found persistent at ${hex(handle)}: using it`);
  } else {
    if (runKey)
      return fail('ATTEST_KEY_MISMATCH', `the TPM no longer holds this run's device key at ${hex(handle)}`, {
        handle: hex(handle),
      });
    const made = await createIdevid(s, ctx);
    if (!made.ok) return made;
    const read = await s.tpm.readPublic(handle, s.call);
    if (!read.ok) return read;
    pub = read.value.public;
    publicBytes = read.value.publicBytes;
  }
  const checked = checkSigningKey(pub, 'IDevID');
  if (!checked.ok) return checked;
  const spki = await publicToSpki(pub);
  if (!spki.ok) return spki;
  const rec = await keyRecord(publicBytes, pub);
  if (!rec.ok) return rec;
  if (runKey) {
    if (!bytesEqual(fromBase64Url(runKey.publicKeySpki), spki.value))
      return fail('ATTEST_KEY_MISMATCH', `the TPM holds another key at ${hex(handle)} than this run's device key`, {
        handle: hex(handle),
      });
    return ok({ role: 'device', key: spki.value, created: null });
  }
  return ok({
    role: 'device',
    key: spki.value,
    // No CSR: the proof that the TPM holds the key is TPM2_Certify by the IAK (attest step, docs/tpm.md).
    created: { mode: 'onboard', curve: 'P-256', publicKeySpki: toBase64Url(spki.value), csr: '' },
    checkpoint: { tpmKey: { handle: hex(handle), ...rec.value } },
  });
}

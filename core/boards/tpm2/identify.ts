/**
 * identify for a TPM board (docs/tpm.md "identify"): not in lockout, EK certificate trusted, EK in the TPM is the
 * certificate's, chip id derived from it (the claim must be it), and the identity state read from the TPM.
 */
import { sha256Hex } from '../../bytes.js';
import { fail } from '../../errors.js';
import type { BoardIdentity } from '../../model.js';
import { ok, type Result } from '../../result.js';
import { TPMA_NV } from '../../tpm/constants.js';
import type { DriverContext, IdentifyResult } from '../driver.js';
import { createEk, readEkCertificate } from './ek.js';
import type { TpmSession } from './session.js';

/** TPM_LOCKOUT when the TPM is in dictionary-attack lockout (TPM_PT_PERMANENT inLockout). */
export async function checkNotInLockout(s: TpmSession, ctx: DriverContext): Promise<Result<void>> {
  const info = await s.tpm.info(s.call);
  if (!info.ok) return info;
  if (info.value.inLockout)
    return fail(
      'TPM_LOCKOUT',
      `the board's TPM is in dictionary-attack lockout (${info.value.lockoutCounter} failed authorisations of ${info.value.maxAuthFail})`,
      { lockoutCounter: info.value.lockoutCounter, maxAuthFail: info.value.maxAuthFail },
    );
  ctx.note(`TPM ${info.value.manufacturer} ${info.value.vendorString}: not in lockout`);
  return ok(undefined);
}

/** The identity state as the TPM holds it: the persistent IDevID, the certificate NV index and its write lock. */
export async function tpmState(s: TpmSession): Promise<Result<BoardIdentity['state']>> {
  const key = await s.present(s.profile.persistentHandles.idevid);
  if (!key.ok) return key;
  const nv = await s.present(s.profile.certificateNvIndex);
  if (!nv.ok) return nv;
  if (!nv.value) return ok({ hasKey: key.value, certificateSha256: null, locked: false });
  const pub = await s.tpm.nvReadPublic(s.profile.certificateNvIndex, s.call);
  if (!pub.ok) return pub;
  const locked = (pub.value.attributes & TPMA_NV.WRITELOCKED) !== 0;
  if ((pub.value.attributes & TPMA_NV.WRITTEN) === 0) return ok({ hasKey: key.value, certificateSha256: null, locked });
  const data = await s.tpm.nvRead(s.profile.certificateNvIndex, s.call);
  if (!data.ok) return data;
  return ok({ hasKey: key.value, certificateSha256: await sha256Hex(data.value), locked });
}

export async function identifyTpm(
  s: TpmSession,
  ctx: DriverContext,
  claimed: BoardIdentity,
): Promise<Result<IdentifyResult>> {
  const lockout = await checkNotInLockout(s, ctx);
  if (!lockout.ok) return lockout;
  const cert = await readEkCertificate(s, ctx);
  if (!cert.ok) return cert;
  const ek = await s.scoped((track) => createEk(s, cert.value, track));
  if (!ek.ok) return ek;
  ctx.note('EK created from the TCG template: it is the certificate key');
  if (claimed.chipId !== cert.value.chipId)
    return fail(
      'BOARD_IDENTITY_INVALID',
      `the board claims chip id ${claimed.chipId}; its TPM's EK certificate gives ${cert.value.chipId}`,
      { claimed: claimed.chipId, derived: cert.value.chipId },
    );
  const state = await tpmState(s);
  if (!state.ok) return state;
  ctx.note(
    `TPM identity state: ${state.value.hasKey ? 'device key present' : 'no device key'}, ${
      state.value.certificateSha256 ? `certificate in NV${state.value.locked ? ' (locked)' : ''}` : 'no certificate'
    }`,
  );
  return ok({ identity: { ...claimed, state: state.value } });
}

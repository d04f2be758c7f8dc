/**
 * The device certificate in TPM NV, and erasing the identity (docs/tpm.md "install", "lock", "zeroize"):
 * NV_DefineSpace of the profile's index (an ordinary owner index, WRITEDEFINE so that NV_WriteLock lasts until the
 * index is deleted), NV_Write, NV_Read back and compare; NV_WriteLock; EvictControl + NV_UndefineSpace.
 */
import { sha256Hex } from '../../bytes.js';
import { fail } from '../../errors.js';
import type { BoardIdentity } from '../../model.js';
import { ok, type Result } from '../../result.js';
import { TPMA_NV } from '../../tpm/constants.js';
import type { DriverContext } from '../driver.js';
import { readEkCertificate } from './ek.js';
import type { TpmSession } from './session.js';

/** Attributes of the certificate index (an ordinary index: TPM_NT 0), empty auth value. */
export const CERT_NV_ATTRIBUTES =
  TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.WRITEDEFINE | TPMA_NV.NO_DA;

const hex = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;

/** Store the device certificate (the chain's leaf, DER) in NV and read it back; the SHA-256 of what the TPM holds. */
export async function installTpm(
  s: TpmSession,
  ctx: DriverContext,
  chain: readonly Uint8Array[],
): Promise<Result<{ readonly certificateSha256: string }>> {
  const leaf = chain[0];
  if (!leaf) return fail('INTERNAL', 'install without a certificate');
  const index = s.profile.certificateNvIndex;
  const want = await sha256Hex(leaf);
  const present = await s.present(index);
  if (!present.ok) return present;
  if (present.value) {
    const pub = await s.tpm.nvReadPublic(index, s.call);
    if (!pub.ok) return pub;
    const held = pub.value.attributes & TPMA_NV.WRITTEN ? await s.tpm.nvRead(index, s.call) : null;
    if (held && !held.ok) return held;
    if (held && (await sha256Hex(held.value)) === want) {
      ctx.note(`device certificate already in NV ${hex(index)}`);
      return ok({ certificateSha256: want });
    }
    if (pub.value.attributes & TPMA_NV.WRITELOCKED)
      return fail('BOARD_LOCKED', `NV ${hex(index)} holds another certificate and is write-locked`, {
        nvIndex: hex(index),
      });
    const gone = await s.tpm.nvUndefineSpace(index, s.flash);
    if (!gone.ok) return gone;
  }
  const defined = await s.tpm.nvDefineSpace(
    { nvIndex: index, size: leaf.length, attributes: CERT_NV_ATTRIBUTES },
    s.flash,
  );
  if (!defined.ok) return defined;
  const written = await s.tpm.nvWrite(index, leaf, s.flash);
  if (!written.ok) return written;
  const back = await s.tpm.nvRead(index, s.call);
  if (!back.ok) return back;
  const got = await sha256Hex(back.value);
  if (got !== want)
    return fail('CERT_INSTALL_MISMATCH', `NV ${hex(index)} reads back another certificate than the one written`, {
      expected: want,
      actual: got,
    });
  ctx.note(`device certificate written to NV ${hex(index)} (${leaf.length} bytes) and read back`);
  return ok({ certificateSha256: got });
}

/** NV_WriteLock the certificate index; already locked is success. */
export async function lockTpm(s: TpmSession, ctx: DriverContext): Promise<Result<void>> {
  const index = s.profile.certificateNvIndex;
  const pub = await s.tpm.nvReadPublic(index, s.call);
  if (!pub.ok) return pub;
  if (pub.value.attributes & TPMA_NV.WRITELOCKED) return ok(undefined);
  const locked = await s.tpm.nvWriteLock(index, s.flash);
  if (!locked.ok) return locked;
  ctx.note(`NV ${hex(index)} write-locked`);
  return ok(undefined);
}

/** Erase the identity: evict the persistent IDevID, undefine the certificate index. The chip id is the guard. */
export async function zeroizeTpm(s: TpmSession, ctx: DriverContext, identity: BoardIdentity): Promise<Result<void>> {
  const cert = await readEkCertificate(s, ctx);
  if (!cert.ok) return cert;
  if (cert.value.chipId !== identity.chipId)
    return fail(
      'BOARD_IDENTITY_INVALID',
      `zeroize for chip ${identity.chipId}, but the TPM is chip ${cert.value.chipId}`,
    );
  const key = s.profile.persistentHandles.idevid;
  const hasKey = await s.present(key);
  if (!hasKey.ok) return hasKey;
  if (hasKey.value) {
    const evicted = await s.tpm.evictControl(key, key, s.flash);
    if (!evicted.ok) return evicted;
    ctx.note(`IDevID at ${hex(key)} evicted`);
  }
  const index = s.profile.certificateNvIndex;
  const hasNv = await s.present(index);
  if (!hasNv.ok) return hasNv;
  if (hasNv.value) {
    const gone = await s.tpm.nvUndefineSpace(index, s.flash);
    if (!gone.ok) return gone;
    ctx.note(`NV ${hex(index)} undefined`);
  }
  return ok(undefined);
}

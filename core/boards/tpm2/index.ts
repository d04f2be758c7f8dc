/**
 * The TPM 2.0 driver (`driver: "tpm2"`, docs/tpm.md): boards whose hardware root is a TPM 2.0 reached through the
 * board's TPM relay (`BoardClient.tpmTransmit`). Follows TCG "TPM 2.0 Keys for Device Identity and Attestation":
 * the EK certificate is verified, an attestation key (IAK) is bound to the EK by credential activation and quotes
 * the PCRs, the device identity key (IDevID) is made in the TPM and certified by the IAK, and the device certificate
 * the station issues for it is stored in TPM NV. Every TPM step is reported with `ctx.note`.
 */
import type { Result } from '../../result.js';
import type { BoardDriver, DriverContext } from '../driver.js';
import { attestTpm } from './attest.js';
import { identifyTpm } from './identify.js';
import { keyTpm } from './key.js';
import { measureTpm } from './measure.js';
import { installTpm, lockTpm, zeroizeTpm } from './nv.js';
import { tpmSession, type TpmSession } from './session.js';

/** Run `step` with the call's TPM session (INTERNAL when the profile lacks its tpm block). */
function withTpm<T>(ctx: DriverContext, step: (s: TpmSession) => Promise<Result<T>>): Promise<Result<T>> {
  const s = tpmSession(ctx);
  return s.ok ? step(s.value) : Promise.resolve(s);
}

export const tpm2Driver: BoardDriver = {
  id: 'tpm2',
  identify: (ctx, claimed) => withTpm(ctx, (s) => identifyTpm(s, ctx, claimed)),
  measure: (ctx, identity) => withTpm(ctx, (s) => measureTpm(s, ctx, identity)),
  key: (ctx) => withTpm(ctx, (s) => keyTpm(s, ctx)),
  attest: (ctx, input) => withTpm(ctx, (s) => attestTpm(s, ctx, input)),
  install: (ctx, _identity, chain) => withTpm(ctx, (s) => installTpm(s, ctx, chain)),
  lock: (ctx) => withTpm(ctx, (s) => lockTpm(s, ctx)),
  zeroize: (ctx, identity) => withTpm(ctx, (s) => zeroizeTpm(s, ctx, identity)),
};

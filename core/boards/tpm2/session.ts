/**
 * The TPM of the board a driver call is about: `core/tpm`'s `Tpm` over the board's relay (`BoardClient.tpmTransmit`),
 * every command with the call's options (cancellation, the profile's timeout), and the bookkeeping the driver needs
 * around it: what the profile says (EK kind, handles, PCRs), which handles are present, and flushing what a step
 * loaded (a TPM has few transient slots: swtpm 3) whatever the step's outcome.
 */
import { fail } from '../../errors.js';
import type { CallOptions } from '../../ports.js';
import type { TpmProfile } from '../../provisioning/profiles.js';
import { ok, type Result } from '../../result.js';
import { Tpm } from '../../tpm/commands.js';
import { TPM_ALG } from '../../tpm/constants.js';
import type { PcrSelection } from '../../tpm/pcr.js';
import type { EkKind } from '../../tpm/templates.js';
import type { DriverContext } from '../driver.js';

/** core/tpm's EK kind of the profile's EK type (template L-1 / L-2 and certificate NV index: core/tpm/ek.ts). */
const EK_KIND: Readonly<Record<TpmProfile['ekType'], EkKind>> = { 'rsa-2048': 'rsa2048', 'ecc-p256': 'eccP256' };

const BANK_ALG: Readonly<Record<TpmProfile['pcrBank'], number>> = {
  sha1: TPM_ALG.SHA1,
  sha256: TPM_ALG.SHA256,
  sha384: TPM_ALG.SHA384,
};

/** A driver call's view of the board's TPM. */
export interface TpmSession {
  readonly tpm: Tpm;
  /** Every command: the profile's `timeouts.defaultMs`. */
  readonly call: CallOptions;
  /** Commands that generate a key (TPM2_CreatePrimary, TPM2_Create: an RSA EK takes seconds on a real TPM): `keygenMs`. */
  readonly keygen: CallOptions;
  /** Commands that write the TPM's NV (NV_DefineSpace, NV_Write, NV_WriteLock, NV_UndefineSpace, EvictControl): `flashMs`. */
  readonly flash: CallOptions;
  readonly profile: TpmProfile;
  readonly ekKind: EkKind;
  readonly pcrSelection: readonly PcrSelection[];
  /** Run `body`, then flush every transient handle it registered with `track` (also when it failed). */
  scoped<T>(body: (track: (handle: number) => number) => Promise<Result<T>>): Promise<Result<T>>;
  /** Whether a persistent object (0x81......) or NV index (0x01......) is present (TPM2_GetCapability HANDLES). */
  present(handle: number): Promise<Result<boolean>>;
}

/** The TPM session of a driver call; INTERNAL when the profile has no tpm block (the schema requires it). */
export function tpmSession(ctx: DriverContext): Result<TpmSession> {
  const profile = ctx.profile.tpm;
  if (!profile) return fail('INTERNAL', `profile ${ctx.profile.id} has driver tpm2 but no tpm block`);
  const call = ctx.call;
  const tpm = new Tpm((command, opts) => ctx.board.tpmTransmit(command, opts));
  return ok({
    tpm,
    call,
    keygen: { ...call, timeoutMs: ctx.profile.timeouts.keygenMs },
    flash: { ...call, timeoutMs: ctx.profile.timeouts.flashMs },
    profile,
    ekKind: EK_KIND[profile.ekType],
    pcrSelection: [{ hashAlg: BANK_ALG[profile.pcrBank], pcrs: profile.pcrSelection }],
    async scoped(body) {
      const loaded: number[] = [];
      try {
        return await body((h) => {
          loaded.push(h);
          return h;
        });
      } finally {
        // Best effort: a board that went away takes its transient objects with it (swtpm: a new connection).
        for (const h of loaded.reverse()) await tpm.flushContext(h, call);
      }
    },
    async present(handle) {
      const list = await tpm.getHandles(handle, 1, call);
      if (!list.ok) return list;
      return ok(list.value[0] === handle);
    },
  });
}

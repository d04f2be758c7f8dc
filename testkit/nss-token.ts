/**
 * Test tokens on NSS softoken (libsoftokn3): a private key-database directory and its user PIN,
 * set through PKCS#11 itself (no tool, no PIN on a command line). The token's label is the `dbTokenDescription`
 * library parameter of the token profile (resources/tokens/nss-softoken.json), so the same parameters must be used
 * by every `openHsm` of the directory; NSS cannot be initialised twice in one process with other parameters.
 *
 * Test support only (testkit/): NSS softoken does not enforce non-extractability (docs/hsm.md "Second implementation").
 */
import { chmod, mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fail } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { libraryParametersFor, type TokenProfile } from '../core/hsm/token-profile.js';
import { PRIVATE_DIR_MODE } from '../native/data-dir.js';
import { mapPkcs11Error } from '../native/hsm/errors.js';
import { acquireModule, releaseModule } from '../native/hsm/module-registry.js';
import { P, type Handle } from '../native/hsm/pkcs11.js';
import { findTokenSlot } from '../native/hsm/pkcs11-hsm.js';
import { findProfileModule, tokenProfileById } from '../native/hsm/token-profiles.js';

export interface NssTokenEnv {
  /** The key database directory (0700). */
  readonly tokenDir: string;
  readonly module: string;
  /** C_Initialize library parameters naming the directory and the label. */
  readonly libraryParameters: string;
  readonly tokenLabel: string;
  readonly profile: TokenProfile;
}

/** Module, library parameters and profile for an NSS key database directory and label (nothing is created). */
export function nssTokenEnv(dir: string, tokenLabel: string): Result<NssTokenEnv> {
  if (!/^[\x20-\x26\x28-\x7e]{1,32}$/.test(tokenLabel))
    return fail('INPUT_INVALID', 'token label must be 1..32 printable ASCII characters without quotes', {});
  const profile = tokenProfileById('nss-softoken');
  if (!profile.ok) return profile;
  const module = findProfileModule(profile.value) ?? profile.value.modulePaths[0]!;
  const tokenDir = resolve(dir);
  const params = libraryParametersFor(profile.value, { tokenDir, tokenLabel });
  if (!params.ok) return params;
  return ok({ tokenDir, module, libraryParameters: params.value ?? '', tokenLabel, profile: profile.value });
}

/**
 * Create the directory (0700) and an NSS key database in it whose token has this label and user PIN: the security
 * officer logs in with the empty SO PIN of a fresh database and sets the user PIN (C_InitPIN). INPUT_INVALID if the
 * database already has a user PIN. PINs are never logged.
 */
export async function createNssToken(
  dir: string,
  opts: { readonly tokenLabel: string; readonly pin: string },
): Promise<Result<NssTokenEnv>> {
  const { pin } = opts;
  if (typeof pin !== 'string' || pin.length < 4 || pin.length > 255 || /[\0\n\r]/.test(pin))
    return fail('INPUT_INVALID', 'user PIN must be 4..255 characters without control characters', {});
  const env = nssTokenEnv(dir, opts.tokenLabel);
  if (!env.ok) return env;
  await mkdir(env.value.tokenDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await chmod(env.value.tokenDir, PRIVATE_DIR_MODE);
  const m = acquireModule(env.value.module, env.value.libraryParameters);
  if (!m.ok) return m;
  try {
    const found = findTokenSlot(m.value, env.value.tokenLabel);
    if (!found.ok) return found;
    const slot = found.value.slot;
    if (!slot)
      return fail('HSM_TOKEN_ABSENT', `NSS did not open a key database token "${env.value.tokenLabel}"`, {
        tokensPresent: found.value.seen,
      });
    const lib = m.value.lib;
    if ((lib.C_GetTokenInfo(slot).flags & P.CKF_USER_PIN_INITIALIZED) !== 0)
      return fail('INPUT_INVALID', `the NSS database in ${env.value.tokenDir} already has a user PIN`, {});
    let s: Handle | null = null;
    try {
      s = lib.C_OpenSession(slot, P.CKF_RW_SESSION | P.CKF_SERIAL_SESSION);
      lib.C_Login(s, P.CKU_SO, '');
      lib.C_InitPIN(s, pin);
      lib.C_Logout(s);
    } catch (e) {
      return err(mapPkcs11Error(e, 'C_InitPIN'));
    } finally {
      if (s)
        try {
          lib.C_CloseSession(s);
        } catch {
          /* ignore */
        }
    }
    return ok(env.value);
  } finally {
    releaseModule(m.value);
  }
}

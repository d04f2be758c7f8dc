/**
 * The process-wide registry of loaded PKCS#11 modules: one PKCS11 instance per module path, reference counted;
 * C_Initialize with CKF_OS_LOCKING_OK (and the token profile's library parameters, e.g. NSS's configdir);
 * CKR_CRYPTOKI_ALREADY_INITIALIZED tolerated; C_Finalize only if we initialised and the last user released it.
 * Also the per-slot login registry (logout only when the last adapter of a login closes).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { fail } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import { ckrOf, mapPkcs11Error } from './errors.js';
import { P, type PKCS11 } from './pkcs11.js';

export interface LoadedModule {
  readonly path: string;
  readonly lib: PKCS11;
  /** The library parameters it was initialised with ('' for none). */
  readonly libraryParameters: string;
  /** Did we call C_Initialize successfully (so we must C_Finalize)? */
  readonly initialisedByUs: boolean;
  users: number;
  /** Logged-in adapters per slot (decimal slot id): logout only when the last one closes. */
  readonly logins: Map<string, { count: number; pinDigest: Buffer }>;
}

const modules = new Map<string, LoadedModule>();

/**
 * Load and initialise a module, or share the loaded one. A module already initialised with other library
 * parameters cannot be initialised again in this process: HSM_MODULE_LOAD_FAILED.
 */
export function acquireModule(path: string, libraryParameters?: string): Result<LoadedModule> {
  const params = libraryParameters ?? '';
  const existing = modules.get(path);
  if (existing) {
    if (existing.libraryParameters !== params) {
      return fail(
        'HSM_MODULE_LOAD_FAILED',
        `PKCS#11 module ${path} is already initialised in this process with other library parameters`,
        { module: path },
      );
    }
    existing.users++;
    return ok(existing);
  }
  let lib: PKCS11;
  try {
    lib = new P.PKCS11();
    lib.load(path);
  } catch (e) {
    const first = e instanceof Error ? (e.message.split('\n')[0] ?? '').slice(0, 200) : 'load failed';
    return fail('HSM_MODULE_LOAD_FAILED', `cannot load PKCS#11 module ${path}: ${first}`, { module: path });
  }
  let initialisedByUs = true;
  try {
    lib.C_Initialize(
      params ? { flags: P.CKF_OS_LOCKING_OK, libraryParameters: params } : { flags: P.CKF_OS_LOCKING_OK },
    );
  } catch (e) {
    if (ckrOf(e) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      initialisedByUs = false;
    } else {
      try {
        lib.close();
      } catch {
        /* ignore */
      }
      const se = mapPkcs11Error(e, 'C_Initialize');
      return err({ ...se, details: { ...se.details, module: path } });
    }
  }
  const m: LoadedModule = { path, lib, libraryParameters: params, initialisedByUs, users: 1, logins: new Map() };
  modules.set(path, m);
  return ok(m);
}

/** Drop one reference; the last one finalizes (if we initialised) and unloads the module. */
export function releaseModule(m: LoadedModule): void {
  m.users--;
  if (m.users > 0) return;
  modules.delete(m.path);
  if (m.initialisedByUs) {
    try {
      m.lib.C_Finalize();
    } catch {
      /* ignore */
    }
    try {
      m.lib.close();
    } catch {
      /* ignore */
    }
  }
}

/** Keyed digest of a PIN (random per-process key) so that concurrent logins can be compared without a second copy. */
const PIN_DIGEST_KEY = randomBytes(32);
export const pinDigest = (pin: string): Buffer => createHmac('sha256', PIN_DIGEST_KEY).update(pin, 'utf8').digest();

/** Number of modules currently loaded through openHsm (for tests and diagnostics). */
export function loadedModuleCount(): number {
  return modules.size;
}

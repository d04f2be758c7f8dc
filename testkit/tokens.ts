/**
 * Test tokens of every PKCS#11 implementation the suite runs against (SoftHSM2 and NSS softoken), behind one shape,
 * so that adapter and end-to-end tests can be parameterised: `describe.each(TEST_TOKEN_KINDS)`. Each token lives in
 * its own temp directory; `raw()` opens a pkcs11js session of the test's own on the same token (to inspect and attack
 * it behind the adapter's back). The token makers are native/softhsm-dev.ts (also used by station init) and
 * testkit/nss-token.ts.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { TokenProfile } from '../core/hsm/token-profile.js';
import { createSoftHsmEnv, initToken } from '../native/softhsm-dev.js';
import { createNssToken } from './nss-token.js';
import { tokenProfileById } from '../native/hsm/index.js';

export const TEST_TOKEN_KINDS = ['softhsm2', 'nss-softoken'] as const;
export type TestTokenKind = (typeof TEST_TOKEN_KINDS)[number];

type Template = { type: number; value?: number | boolean | string | Buffer }[];

/** A pkcs11js session of the test's own on the token (initialised with the token's library parameters). */
export interface RawSession {
  readonly lib: InstanceType<typeof pkcs11js.PKCS11>;
  readonly slot: Buffer;
  readonly session: Buffer;
  find(template: Template): Buffer[];
  get(o: Buffer, type: number): Buffer;
  close(): void;
}

export interface KindToken {
  readonly kind: TestTokenKind;
  readonly profile: TokenProfile;
  readonly module: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly dir: string;
  /** C_Initialize library parameters (NSS), undefined for SoftHSM2. */
  readonly libraryParameters: string | undefined;
  /** What openHsm / inspectToken need besides the PIN. */
  readonly open: { readonly module: string; readonly tokenLabel: string; readonly libraryParameters?: string };
  raw(): RawSession;
  cleanup(): Promise<void>;
}

/**
 * A fresh token of this kind with this label and user PIN in a temp directory (or `opts.dir`). SoftHSM2 sets SOFTHSM2_CONF
 * (process-wide: call before the first openHsm of the module in the process); NSS is one token per directory.
 */
export async function createKindToken(
  kind: TestTokenKind,
  tokenLabel: string,
  pin: string,
  opts: { readonly dir?: string } = {},
): Promise<KindToken> {
  let dir: string;
  if (opts.dir) {
    dir = opts.dir;
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } else dir = await mkdtemp(join(tmpdir(), `line-station-${kind}-`));
  const profile = tokenProfileById(kind);
  if (!profile.ok) throw new Error(profile.error.message);
  let module: string;
  let libraryParameters: string | undefined;
  if (kind === 'softhsm2') {
    const env = await createSoftHsmEnv(dir);
    const r = await initToken(env, { label: tokenLabel, soPin: 'so-pin-0000', pin });
    if (!r.ok) throw new Error(`initToken ${tokenLabel}: ${r.error.message}`);
    module = env.module;
  } else {
    const r = await createNssToken(join(dir, 'nssdb'), { tokenLabel, pin });
    if (!r.ok) throw new Error(`createNssToken ${tokenLabel}: ${r.error.message}`);
    module = r.value.module;
    libraryParameters = r.value.libraryParameters;
  }
  const open = { module, tokenLabel, ...(libraryParameters !== undefined ? { libraryParameters } : {}) };
  const raw = (): RawSession => {
    const P = pkcs11js;
    const lib = new P.PKCS11();
    lib.load(module);
    try {
      lib.C_Initialize(libraryParameters ? { libraryParameters } : undefined);
    } catch (e) {
      if (!String((e as Error).message).startsWith('CKR_CRYPTOKI_ALREADY_INITIALIZED')) throw e;
    }
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === tokenLabel);
    if (!slot) throw new Error('slot not found');
    const session = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    return {
      lib,
      slot,
      session,
      find(template) {
        lib.C_FindObjectsInit(session, template);
        const r = lib.C_FindObjects(session, 100);
        lib.C_FindObjectsFinal(session);
        return r;
      },
      get: (o, type) => lib.C_GetAttributeValue(session, o, [{ type }])[0]!.value!,
      close: () => lib.C_CloseSession(session),
    };
  };
  return {
    kind,
    profile: profile.value,
    module,
    tokenLabel,
    pin,
    dir,
    libraryParameters,
    open,
    raw,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

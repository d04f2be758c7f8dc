/**
 * The Line Station driver's keys: the key the attestation binds (key step) and the key injection that completes an
 * injected device key after its transport key was attested (certify step). docs/protocol.md §3.
 */
import { bytesEqual, fromBase64Url, toBase64Url } from '../../bytes.js';
import { fail } from '../../errors.js';
import type { BoardIdentity } from '../../model.js';
import type { CallOptions } from '../../ports.js';
import { checkKeyType } from '../../pki/attestation.js';
import { verifyCsr } from '../../pki/csr.js';
import { ok, type Result } from '../../result.js';
import type { RunData } from '../../provisioning/store.js';
import type { BoundKey, DriverContext } from '../driver.js';

/** Key generation and injection wait for the profile's `keygenMs`. */
export const keygenCall = (ctx: DriverContext): CallOptions => ({
  ...ctx.call,
  timeoutMs: ctx.profile.timeouts.keygenMs,
});

/**
 * The key step: the device key this run already has on the board (role device; a resumed run), a new on-board key
 * (role device; type and curve checked, CSR proof of possession), or the board's ephemeral transport key for an
 * injection (role transport). Every key is checked against the profile's key type and curve before it is used:
 * ATTEST_KEY_TYPE_MISMATCH (e.g. a P-384 key where the profile says P-256).
 */
export async function keyToAttest(ctx: DriverContext, identity: BoardIdentity): Promise<Result<BoundKey>> {
  const { profile, runData } = ctx;
  const curve = profile.curve;
  if (runData.key) return ok({ role: 'device', key: fromBase64Url(runData.key.publicKeySpki), created: null });
  if (profile.keyMode === 'onboard') {
    if (!identity.capabilities.onboardKeygen)
      return fail('BOARD_UNSUPPORTED', 'profile asks for on-board key generation; the board cannot');
    const g = await ctx.board.generateKey({ curve, subject: identity.serialNumber }, keygenCall(ctx));
    if (!g.ok) return g;
    const type = checkKeyType(g.value.publicKeySpki, curve, 'key the board generated');
    if (!type.ok) return type;
    const v = await verifyCsr(g.value.csr, { publicKeySpki: g.value.publicKeySpki });
    if (!v.ok) return v;
    return ok({
      role: 'device',
      key: g.value.publicKeySpki,
      created: {
        mode: 'onboard',
        curve,
        publicKeySpki: toBase64Url(g.value.publicKeySpki),
        csr: toBase64Url(g.value.csr),
      },
    });
  }
  if (!identity.capabilities.keyInjection)
    return fail('BOARD_UNSUPPORTED', 'profile asks for key injection; the board cannot');
  const t = await ctx.board.beginKeyInjection({ curve }, keygenCall(ctx));
  if (!t.ok) return t;
  const type = checkKeyType(t.value.publicKeySpki, curve, "board's transport key");
  if (!type.ok) return type;
  return ok({ role: 'transport', key: t.value.publicKeySpki, created: null });
}

/**
 * Key injection after the transport key was attested: the HSM makes the device key and wraps it for exactly that
 * transport key; the board unwraps it and proves possession with a CSR.
 */
export async function injectDeviceKey(
  ctx: DriverContext,
  identity: BoardIdentity,
  bound: BoundKey,
): Promise<Result<NonNullable<RunData['key']>>> {
  const curve = ctx.profile.curve;
  const wrapped = await ctx.hsm.generateWrappedDeviceKey({ curve, publicKeySpki: bound.key });
  if (!wrapped.ok) return wrapped;
  const inj = await ctx.board.injectWrappedKey({ ...wrapped.value, subject: identity.serialNumber }, keygenCall(ctx));
  if (!inj.ok) return inj;
  if (!bytesEqual(inj.value.publicKeySpki, wrapped.value.publicKeySpki)) {
    return fail('CSR_POP_FAILED', 'the board reports a different public key than the injected one');
  }
  // The CSR signed with the injected key proves the board unwrapped and holds it.
  const v = await verifyCsr(inj.value.csr, { publicKeySpki: wrapped.value.publicKeySpki });
  if (!v.ok) return v;
  return ok({
    mode: 'injected',
    curve,
    publicKeySpki: toBase64Url(wrapped.value.publicKeySpki),
    csr: toBase64Url(inj.value.csr),
  });
}

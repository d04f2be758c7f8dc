/**
 * The Line Station driver (`driver: "ls"`): boards that speak the Line Station wire protocol end to end
 * (docs/protocol.md). The board measures itself, makes or unwraps its device key, attests with its vendor
 * attestation key, stores its certificate, locks and erases on request; every step is one or two protocol requests.
 */
import { sha256Hex } from '../../bytes.js';
import { fail } from '../../errors.js';
import { measurementsDigest } from '../../pki/attestation.js';
import type { CallOptions } from '../../ports.js';
import { evaluateBaseline } from '../../provisioning/baseline.js';
import { ok } from '../../result.js';
import type { BoardDriver, DriverContext } from '../driver.js';
import { attestBoard } from './attest.js';
import { injectDeviceKey, keyToAttest } from './key.js';

/** Writes to the board's flash (certificate, lock, erase) wait for the profile's `flashMs`. */
const flashCall = (ctx: DriverContext): CallOptions => ({ ...ctx.call, timeoutMs: ctx.profile.timeouts.flashMs });

export const lsDriver: BoardDriver = {
  id: 'ls',

  /** The board's identify answer is the identity: the flow checked its text, profile and protocol already. */
  identify: (_ctx, claimed) => Promise.resolve(ok({ identity: claimed })),

  async measure(ctx) {
    const m = await ctx.board.readMeasurements(ctx.call);
    if (!m.ok) return m;
    return ok({
      measurements: m.value,
      measurementsSha256: await measurementsDigest(m.value),
      verdict: evaluateBaseline(m.value, ctx.workOrder.baseline),
    });
  },

  key: keyToAttest,
  attest: attestBoard,
  completeKey: injectDeviceKey,

  /** Write the chain, check the hash the board answers, then read back through identify. */
  async install(ctx, _identity, chain) {
    const leaf = chain[0];
    if (!leaf) throw new Error('install without a certificate');
    const expected = await sha256Hex(leaf);
    const inst = await ctx.board.installCertificate(chain, flashCall(ctx));
    if (!inst.ok) return inst;
    if (inst.value.certificateSha256 !== expected) {
      return fail('CERT_INSTALL_MISMATCH', 'the board reports a different certificate than the one written', {
        expected,
        actual: inst.value.certificateSha256,
      });
    }
    const back = await ctx.board.identify(ctx.call);
    if (!back.ok) return back;
    if (back.value.state.certificateSha256 !== expected) {
      return fail('CERT_INSTALL_MISMATCH', 'read-back after install does not show the certificate', {});
    }
    return ok({ certificateSha256: expected });
  },

  /** A board that answers BOARD_LOCKED is locked already (a resumed run): success. */
  async lock(ctx) {
    const lk = await ctx.board.lock(flashCall(ctx));
    if (!lk.ok && lk.error.code !== 'BOARD_LOCKED') return lk;
    return ok(undefined);
  },

  async zeroize(ctx, identity) {
    const z = await ctx.board.zeroize(identity.chipId, flashCall(ctx));
    return z.ok ? ok(undefined) : z;
  },
};

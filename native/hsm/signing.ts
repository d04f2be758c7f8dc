/**
 * Signing: a Signer for a token key (data hashed in software, CKM_ECDSA in the token, raw r‖s), on the pool of
 * signing sessions with C_SignAsync so that signatures run on worker threads in parallel; one transparent recovery.
 */
import type { Signer } from '../../core/ports.js';
import { fail } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CurveSpec } from './ec.js';
import { HANDLE_STALE_CKR, SESSION_LOST_CKR, ckrOf, mapPkcs11Error } from './errors.js';
import { keyMaterial, privateKeyHandle } from './objects.js';
import { P, StationErrorBox } from './pkcs11.js';
import type { SignSession, TokenSession } from './session.js';

/** A Signer for the private key labelled `label` (ECDSA; data hashed in software, signed with CKM_ECDSA). */
export function signer(t: TokenSession, label: string): Result<Signer> {
  const r = t.run('signer', (s) => keyMaterial(t, s, label));
  if (!r.ok) return r;
  const { spec, spki } = r.value;
  const sign = async (data: Uint8Array): Promise<Result<Uint8Array>> => {
    if (!(data instanceof Uint8Array)) return fail('INPUT_INVALID', 'sign: data must be bytes', { label });
    const digest = new Uint8Array(await globalThis.crypto.subtle.digest(spec.hash, data as Uint8Array<ArrayBuffer>));
    return signDigest(t, label, digest, spec);
  };
  return ok({ algorithm: spec.algorithm, curve: spec.curve, publicKeySpki: spki, sign });
}

/** CKM_ECDSA over a precomputed digest on a pooled session; one transparent recovery. */
async function signDigest(
  t: TokenSession,
  label: string,
  digest: Uint8Array,
  spec: CurveSpec,
): Promise<Result<Uint8Array>> {
  for (let attempt = 0; ; attempt++) {
    const gen = t.generation;
    let sess: SignSession | null = null;
    let broken = false;
    try {
      const key = t.run('C_FindObjects', (s) => privateKeyHandle(t, s, label));
      if (!key.ok) return key;
      sess = await t.acquireSignSession();
      t.lib.C_SignInit(sess.handle, { mechanism: P.CKM_ECDSA }, key.value);
      const sig = await t.lib.C_SignAsync(sess.handle, Buffer.from(digest), Buffer.alloc(2 * spec.size + 16));
      if (sig.length !== 2 * spec.size) {
        return fail('HSM_FAILED', `C_Sign returned ${sig.length} bytes, expected ${2 * spec.size}`, { label });
      }
      return ok(new Uint8Array(sig));
    } catch (e) {
      broken = true;
      if (e instanceof StationErrorBox) return err(e.error);
      const ckr = ckrOf(e);
      if (attempt === 0 && ckr && SESSION_LOST_CKR.has(ckr)) {
        const r = t.recover(gen, 'C_Sign');
        if (!r.ok) return r;
        continue;
      }
      if (attempt === 0 && ckr && HANDLE_STALE_CKR.has(ckr)) {
        t.keyHandles.delete(label);
        continue;
      }
      return err(mapPkcs11Error(e, 'C_Sign'));
    } finally {
      if (sess) t.releaseSignSession(sess, broken);
    }
  }
}

/**
 * Signing: a Signer for a token key (data hashed in software, CKM_ECDSA in the token, raw r‖s), on the pool of
 * signing sessions with C_SignAsync so that signatures run on worker threads in parallel; one transparent recovery.
 *
 * Per signature the main thread does: one node:crypto hash (synchronous: a WebCrypto digest is a thread-pool
 * round trip that costs more than hashing a certificate), C_SignInit with the cached private key handle, and the
 * C_SignAsync dispatch. The key handle is looked up by label once per session generation (objects.ts); a handle
 * looked up again (after session recovery or a stale handle) may belong to a different key with the same label
 * (the pair was replaced behind the station's back), so the first signature with it is verified against the
 * signer's public key before it is returned.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { Signer } from '../../core/ports.js';
import { fail } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import type { CurveSpec } from './ec.js';
import { HANDLE_STALE_CKR, SESSION_LOST_CKR, ckrOf, mapPkcs11Error } from './errors.js';
import { keyMaterial, privateKeyHandle } from './objects.js';
import { P, StationErrorBox, type Handle } from './pkcs11.js';
import type { SignSession, TokenSession } from './session.js';

/** A Signer for the private key labelled `label` (ECDSA; data hashed in software, signed with CKM_ECDSA). */
export function signer(t: TokenSession, label: string): Result<Signer> {
  const r = t.run('signer', (s) => keyMaterial(t, s, label));
  if (!r.ok) return r;
  const { spec, spki, handle } = r.value;
  const hash = spec.hash === 'SHA-256' ? 'sha256' : 'sha384';
  const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  const identity: KeyIdentity = { handle, publicKey, hash };
  const sign = async (data: Uint8Array): Promise<Result<Uint8Array>> => {
    if (!(data instanceof Uint8Array)) return fail('INPUT_INVALID', 'sign: data must be bytes', { label });
    const digest = createHash(hash).update(data).digest();
    return signDigest(t, label, data, digest, spec, identity);
  };
  return ok({ algorithm: spec.algorithm, curve: spec.curve, publicKeySpki: spki, sign });
}

/** The key a signer was opened with: the handle it was checked against, and its public key. */
interface KeyIdentity {
  /** The private key handle whose signatures are known to verify under `publicKey`. */
  handle: Handle;
  readonly publicKey: KeyObject;
  readonly hash: 'sha256' | 'sha384';
}

/** CKM_ECDSA over a precomputed digest on a pooled session; one transparent recovery. */
async function signDigest(
  t: TokenSession,
  label: string,
  data: Uint8Array,
  digest: Buffer,
  spec: CurveSpec,
  identity: KeyIdentity,
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
      const sig = await t.lib.C_SignAsync(sess.handle, digest, Buffer.alloc(2 * spec.size + 16));
      if (sig.length !== 2 * spec.size) {
        return fail('HSM_FAILED', `C_Sign returned ${sig.length} bytes, expected ${2 * spec.size}`, { label });
      }
      if (!sameHandle(key.value, identity.handle)) {
        // Looked up again: prove it is still the signer's key before trusting the handle.
        const good = verify(identity.hash, data, { key: identity.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
        if (!good) {
          if (sameHandle(t.keyHandles.get(label), key.value)) t.keyHandles.delete(label);
          t.log?.log('error', "the key with this label is no longer the signer's key", { label });
          return fail(
            'HSM_KEY_NOT_FOUND',
            `the key labelled "${label}" on the token is not the key this signer was opened with (replaced?)`,
            { label },
          );
        }
        identity.handle = key.value;
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

/** Handles are Buffers (CK_OBJECT_HANDLE bytes): equal when their bytes are. */
function sameHandle(a: Handle | undefined, b: Handle): boolean {
  return a !== undefined && Buffer.compare(a, b) === 0;
}

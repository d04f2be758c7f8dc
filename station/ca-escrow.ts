/**
 * Station side of the issuing CA key escrow (docs/lifecycle.md): wrap the station's issuing CA private key
 * for the registry token's transport key, inside the station HSM (ECDH -> AES-256 KEK -> AES key wrap with
 * padding), and sign the hand-over with the station key. The key never exists in plaintext outside a token.
 * Not wired into the CLI yet: `station escrow` will call this between the registry's escrow/begin and
 * escrow/complete.
 */
import { fromBase64Url, toBase64Url } from '../core/bytes.js';
import { fail } from '../core/errors.js';
import type { Curve } from '../core/model.js';
import type { Signer } from '../core/ports.js';
import { ok, type Result } from '../core/result.js';
import type { HsmAdmin } from '../native/hsm/index.js';
import { escrowSignedBytes, type EscrowCompletion } from '../registry/lifecycle/service.js';

export interface EscrowBeginAnswer {
  readonly stationId: string;
  readonly curve: Curve;
  /** base64url SPKI of the registry token's transport key. */
  readonly transportKeySpki: string;
}

/**
 * Produce the body of `POST /v1/admin/stations/:id/escrow/complete` from the answer of escrow/begin:
 * the station HSM wraps `caKeyLabel` (generated `{ wrappable: true }`) and the station key signs the blob.
 */
export async function wrapIssuingCaForEscrow(p: {
  readonly hsm: Pick<HsmAdmin, 'exportWrappedKey'>;
  readonly caKeyLabel: string;
  readonly stationSigner: Signer;
  readonly begin: EscrowBeginAnswer;
}): Promise<Result<EscrowCompletion>> {
  let tk: Uint8Array;
  try {
    tk = fromBase64Url(p.begin.transportKeySpki);
  } catch {
    return fail('INPUT_INVALID', 'escrow: transportKeySpki is not base64url');
  }
  const w = await p.hsm.exportWrappedKey(p.caKeyLabel, { curve: p.begin.curve, publicKeySpki: tk });
  if (!w.ok) return w;
  const sig = await p.stationSigner.sign(escrowSignedBytes(p.begin.stationId, tk, w.value));
  if (!sig.ok) return sig;
  return ok({
    ephemeralPublicKeySpki: toBase64Url(w.value.ephemeralPublicKeySpki),
    wrappedKey: toBase64Url(w.value.wrappedKey),
    publicKeySpki: toBase64Url(w.value.publicKeySpki),
    transportKeySpki: p.begin.transportKeySpki,
    signature: toBase64Url(sig.value),
  });
}

/**
 * Test helper: a Signer backed by a WebCrypto key pair (for tests and the simulator only; production
 * signers are HSM keys). Also exposes the CryptoKeys so tests can build CSRs or sign evidence.
 */
import type { Curve } from '../../core/model.js';
import type { Signer } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { buf, curveAlgorithm, curveHash, type CryptoKeyPair } from '../../core/pki/ecdsa.js';
import type { StationError } from '../../core/errors.js';

export interface TestSigner extends Signer {
  readonly keys: CryptoKeyPair;
}

/** Generate a fresh EC key pair and wrap it as a Signer (ES256 for P-256, ES384 for P-384). */
export async function createTestSigner(curve: Curve = 'P-256'): Promise<TestSigner> {
  const keys = (await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  return signerFromKeyPair(keys, curve);
}

/** Wrap an existing WebCrypto ECDSA key pair as a Signer. */
export async function signerFromKeyPair(keys: CryptoKeyPair, curve: Curve): Promise<TestSigner> {
  const publicKeySpki = new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', keys.publicKey));
  const hash = curveHash(curve);
  return {
    algorithm: curveAlgorithm(curve),
    curve,
    publicKeySpki,
    keys,
    async sign(data: Uint8Array): Promise<Result<Uint8Array>> {
      const sig = await globalThis.crypto.subtle.sign({ name: 'ECDSA', hash }, keys.privateKey, buf(data));
      return ok(new Uint8Array(sig));
    },
  };
}

/** A Signer that always fails with the given error (to test error propagation). */
export function failingSigner(base: Signer, error: StationError): Signer {
  return {
    algorithm: base.algorithm,
    curve: base.curve,
    publicKeySpki: base.publicKeySpki,
    sign: async () => ({ ok: false, error }),
  };
}

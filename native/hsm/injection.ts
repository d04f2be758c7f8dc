/**
 * Key injection (P-256): the device key is generated in the token, wrapped (RFC 5649) under a KEK derived by ECDH
 * with the board's transport key, and destroyed; every object is a session object, destroyed also on error.
 * The wrap mechanism comes from the token profile (SoftHSM2: CKM_AES_KEY_WRAP_PAD; NSS: CKM_AES_KEY_WRAP_KWP);
 * the caller checks the `key-injection` requirement first. docs/hsm.md "Key injection".
 */
import type { ECDH1 } from 'pkcs11js';
import type { TransportKey, WrappedDeviceKey } from '../../core/ports.js';
import { fail, stationError } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import { MECHANISMS, type MechanismName } from '../../core/hsm/token-profile.js';
import { CURVES, decodeEcPoint, parseEcSpki, spkiFromPoint } from './ec.js';
import { ckrOf } from './errors.js';
import { P, StationErrorBox, attr, type Handle } from './pkcs11.js';
import type { TokenSession } from './session.js';

/** Validate the board's transport key: P-256 only (P-384 is refused: the ECDH truncation side is module-specific). */
export function checkTransportKey(transport: TransportKey): Result<Uint8Array> {
  if (transport?.curve !== 'P-256' && transport?.curve !== 'P-384') {
    return fail('INPUT_INVALID', 'transport key: unknown curve', { curve: String(transport?.curve) });
  }
  if (transport.curve !== 'P-256') {
    return fail(
      'HSM_MECHANISM_UNSUPPORTED',
      `key injection supports P-256 only (requested ${transport.curve}); use on-board key generation for P-384`,
      { curve: transport.curve },
    );
  }
  return parseEcSpki(transport.publicKeySpki, transport.curve);
}

/** Generate, wrap and destroy a device key for the board whose transport point is `boardPoint` (validated). */
export function generateWrappedDeviceKey(
  t: TokenSession,
  boardPoint: Uint8Array,
  wrapMechanism: MechanismName,
): Result<WrappedDeviceKey> {
  const spec = CURVES['P-256'];
  return t.run('generateWrappedDeviceKey', (s) => {
    const lib = t.lib;
    const created: Handle[] = [];
    try {
      const ecParams = Buffer.from(spec.ecParams);
      // (1) device key pair: session objects; private key sensitive, extractable only by wrapping.
      const dev = lib.C_GenerateKeyPair(
        s,
        { mechanism: P.CKM_EC_KEY_PAIR_GEN },
        [
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_EC_PARAMS, value: ecParams },
          { type: P.CKA_VERIFY, value: true },
          { type: P.CKA_LABEL, value: 'line-station-device-key' },
        ],
        [
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_PRIVATE, value: true },
          { type: P.CKA_SENSITIVE, value: true },
          { type: P.CKA_EXTRACTABLE, value: true },
          { type: P.CKA_SIGN, value: false },
          { type: P.CKA_DERIVE, value: false },
          { type: P.CKA_LABEL, value: 'line-station-device-key' },
        ],
      );
      created.push(dev.privateKey, dev.publicKey);
      // (2) station ephemeral ECDH key pair.
      const eph = lib.C_GenerateKeyPair(
        s,
        { mechanism: P.CKM_EC_KEY_PAIR_GEN },
        [
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_EC_PARAMS, value: ecParams },
        ],
        [
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_PRIVATE, value: true },
          { type: P.CKA_SENSITIVE, value: true },
          { type: P.CKA_EXTRACTABLE, value: false },
          { type: P.CKA_DERIVE, value: true },
          { type: P.CKA_SIGN, value: false },
        ],
      );
      created.push(eph.privateKey, eph.publicKey);
      // (3) KEK = ECDH(ephemeral private, board transport public), CKD_NULL, 32 bytes as AES-256.
      const kek = lib.C_DeriveKey(
        s,
        {
          mechanism: P.CKM_ECDH1_DERIVE,
          parameter: { type: P.CK_PARAMS_EC_DH, kdf: P.CKD_NULL, publicData: Buffer.from(boardPoint) } as ECDH1,
        },
        eph.privateKey,
        [
          { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
          { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_VALUE_LEN, value: 32 },
          { type: P.CKA_WRAP, value: true },
          { type: P.CKA_ENCRYPT, value: false },
          { type: P.CKA_DECRYPT, value: false },
          { type: P.CKA_EXTRACTABLE, value: false },
          { type: P.CKA_SENSITIVE, value: true },
        ],
      );
      created.push(kek);
      // (4) wrap the device private key (PKCS#8) with AES key wrap with padding (RFC 5649).
      const wrapped = lib.C_WrapKey(
        s,
        { mechanism: MECHANISMS[wrapMechanism] },
        kek,
        dev.privateKey,
        Buffer.alloc(4096),
      );
      const devPoint = decodeEcPoint(attr(lib, s, dev.publicKey, P.CKA_EC_POINT), spec);
      const ephPoint = decodeEcPoint(attr(lib, s, eph.publicKey, P.CKA_EC_POINT), spec);
      if (!devPoint || !ephPoint) {
        throw new StationErrorBox(stationError('HSM_FAILED', 'generated key has a malformed CKA_EC_POINT'));
      }
      t.log?.log('debug', 'device key generated and wrapped for injection', {
        curve: spec.curve,
        wrappedBytes: wrapped.length,
      });
      return {
        curve: spec.curve,
        ephemeralPublicKeySpki: spkiFromPoint(ephPoint, spec),
        wrappedKey: new Uint8Array(wrapped),
        publicKeySpki: spkiFromPoint(devPoint, spec),
      };
    } finally {
      // (5) always destroy what we created (private keys and KEK first).
      for (const h of created) {
        try {
          lib.C_DestroyObject(s, h);
        } catch (e) {
          t.log?.log('warn', 'could not destroy a session object after key injection', {
            ckr: ckrOf(e) ?? 'unknown',
          });
        }
      }
    }
  });
}

/**
 * Token key administration: generate a protected EC signing key pair (with read-back of its protection), store a
 * certificate, find a key's attributes, destroy a key pair (station key rotation). docs/hsm.md "Keys and attributes".
 */
import { randomBytes } from 'node:crypto';
import type { Curve } from '../../core/model.js';
import type { HsmKeyInfo } from '../../core/ports.js';
import { fail, stationError } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { TokenProfile } from '../../core/hsm/token-profile.js';
import { CURVES, certificateFields, decodeEcPoint, spkiFromPoint, type CurveSpec } from './ec.js';
import { findOne, keyInfo, readProtection, unprotectedAttributes } from './objects.js';
import { P, StationErrorBox, attr, findAll, validLabel, type Template } from './pkcs11.js';
import type { TokenSession } from './session.js';

/**
 * Template of every signing private key (issuing CA, station, registry keys): sensitive and never extractable, so
 * no wrapping key -- one the user PIN holder creates included -- can ever take it out of the token (C_WrapKey:
 * CKR_KEY_UNEXTRACTABLE), CKA_VALUE is never readable, and PKCS#11 forbids turning either attribute back. Not
 * copyable, so C_CopyObject cannot make a twin with other attributes -- unless the token profile says the token
 * refuses CKA_COPYABLE (NSS softoken: CKR_GENERAL_ERROR), then it is left out. CKA_WRAP_WITH_TRUSTED is not needed
 * (and would not help on SoftHSM2, where only the SO can mark a wrapping key trusted): a non-extractable key cannot
 * be wrapped by any key. See docs/hsm.md "Key attributes".
 */
export function signingKeyProtection(profile: TokenProfile | null): Template {
  const refused = new Set(profile?.keyAttributes.refused ?? []);
  return [
    { type: P.CKA_SENSITIVE, value: true },
    { type: P.CKA_EXTRACTABLE, value: false },
    ...(refused.has('CKA_COPYABLE') ? [] : [{ type: P.CKA_COPYABLE, value: false }]),
  ];
}

/** Generate a token-resident signing key pair (see HsmAdmin.generateSigningKey). */
export function generateSigningKey(
  t: TokenSession,
  profile: TokenProfile | null,
  label: string,
  curve: Curve,
): Result<{ publicKeySpki: Uint8Array; id: string }> {
  if (!validLabel(label)) return fail('INPUT_INVALID', 'key label must be 1..64 printable ASCII characters', {});
  const spec = (CURVES as Partial<Record<string, CurveSpec>>)[curve];
  if (!spec)
    return fail('INPUT_INVALID', `unsupported curve ${String(curve)} (P-256, P-384)`, { curve: String(curve) });
  return t.run('generateSigningKey', (s) => {
    const lib = t.lib;
    for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY]) {
      if (
        findAll(lib, s, [
          { type: P.CKA_CLASS, value: cls },
          { type: P.CKA_LABEL, value: label },
        ]).length > 0
      ) {
        throw new StationErrorBox(
          stationError(
            'INPUT_INVALID',
            `a key labelled "${label}" already exists on the token; refusing to overwrite`,
            {
              label,
            },
          ),
        );
      }
    }
    const id = randomBytes(16);
    const common = [
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_LABEL, value: label },
      { type: P.CKA_ID, value: id },
    ];
    const kp = lib.C_GenerateKeyPair(
      s,
      { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [
        ...common,
        { type: P.CKA_EC_PARAMS, value: Buffer.from(spec.ecParams) },
        { type: P.CKA_PRIVATE, value: false },
        { type: P.CKA_VERIFY, value: true },
      ],
      [
        ...common,
        { type: P.CKA_PRIVATE, value: true },
        ...signingKeyProtection(profile),
        { type: P.CKA_SIGN, value: true },
        { type: P.CKA_DERIVE, value: false },
        { type: P.CKA_DECRYPT, value: false },
        { type: P.CKA_UNWRAP, value: false },
      ],
    );
    // A token may ignore template attributes: read them back and refuse (destroying the pair) a key that could
    // leave the token.
    const weak = unprotectedAttributes(readProtection(lib, s, kp.privateKey));
    if (weak.length > 0) {
      for (const h of [kp.privateKey, kp.publicKey]) lib.C_DestroyObject(s, h);
      throw new StationErrorBox(
        stationError('HSM_KEY_EXPORTABLE', `the token did not generate "${label}" as required: ${weak.join(', ')}`, {
          label,
          attributes: weak,
        }),
      );
    }
    const point = decodeEcPoint(attr(lib, s, kp.publicKey, P.CKA_EC_POINT), spec);
    if (!point) throw new StationErrorBox(stationError('HSM_FAILED', 'generated key has a malformed CKA_EC_POINT'));
    t.keyHandles.set(label, kp.privateKey);
    t.log?.log('info', 'signing key generated', { label, curve, id: id.toString('hex') });
    return { publicKeySpki: spkiFromPoint(point, spec), id: id.toString('hex') };
  });
}

/** Store a certificate (see HsmAdmin.importCertificate). */
export function importCertificate(t: TokenSession, label: string, der: Uint8Array): Result<{ id: string }> {
  if (!validLabel(label))
    return fail('INPUT_INVALID', 'certificate label must be 1..64 printable ASCII characters', {});
  const fields = der instanceof Uint8Array ? certificateFields(der) : null;
  if (!fields) return fail('INPUT_INVALID', 'not a DER X.509 certificate', { label });
  return t.run('importCertificate', (s) => {
    const lib = t.lib;
    const key = findOne(lib, s, P.CKO_PRIVATE_KEY, label) ?? findOne(lib, s, P.CKO_PUBLIC_KEY, label);
    const id = key ? attr(lib, s, key, P.CKA_ID) : randomBytes(16);
    const old = findAll(lib, s, [
      { type: P.CKA_CLASS, value: P.CKO_CERTIFICATE },
      { type: P.CKA_LABEL, value: label },
    ]);
    for (const h of old) lib.C_DestroyObject(s, h);
    lib.C_CreateObject(s, [
      { type: P.CKA_CLASS, value: P.CKO_CERTIFICATE },
      { type: P.CKA_CERTIFICATE_TYPE, value: P.CKC_X_509 },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_PRIVATE, value: false },
      { type: P.CKA_LABEL, value: label },
      { type: P.CKA_ID, value: id },
      { type: P.CKA_SUBJECT, value: Buffer.from(fields.subject) },
      { type: P.CKA_ISSUER, value: Buffer.from(fields.issuer) },
      { type: P.CKA_SERIAL_NUMBER, value: Buffer.from(fields.serialNumber) },
      { type: P.CKA_VALUE, value: Buffer.from(der) },
    ]);
    t.log?.log('info', old.length ? 'certificate replaced' : 'certificate imported', { label });
    return { id: id.toString('hex') };
  });
}

/** DER of the certificate object labelled `label`, or null. */
export function readCertificate(t: TokenSession, label: string): Result<Uint8Array | null> {
  return t.run('certificate', (s) => {
    const h = findOne(t.lib, s, P.CKO_CERTIFICATE, label);
    return h ? new Uint8Array(attr(t.lib, s, h, P.CKA_VALUE)) : null;
  });
}

/** Private key attributes for `label`, or null. */
export function findKey(t: TokenSession, label: string): Result<HsmKeyInfo | null> {
  return t.run('findKey', (s) => {
    const h = findOne(t.lib, s, P.CKO_PRIVATE_KEY, label);
    return h ? keyInfo(t.lib, s, h) : null;
  });
}

/** Destroy the key pair objects labelled `label` (see HsmAdmin.destroyKeyPair; station key rotation). */
export function destroyKeyPair(t: TokenSession, label: string): Result<{ destroyed: number }> {
  if (!validLabel(label)) return fail('INPUT_INVALID', 'key label must be 1..64 printable ASCII characters', {});
  return t.run('destroyKeyPair', (s) => {
    let destroyed = 0;
    for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY])
      for (const h of findAll(t.lib, s, [
        { type: P.CKA_CLASS, value: cls },
        { type: P.CKA_LABEL, value: label },
      ])) {
        t.lib.C_DestroyObject(s, h);
        destroyed++;
      }
    t.keyHandles.delete(label);
    t.log?.log('info', 'key pair destroyed', { label, destroyed });
    return { destroyed };
  });
}

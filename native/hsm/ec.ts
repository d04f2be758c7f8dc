/**
 * EC helpers for the PKCS#11 adapter: curve tables, CKA_EC_PARAMS / CKA_EC_POINT decoding, SPKI DER
 * building and validated SPKI parsing, and a minimal DER reader (for X.509 subject extraction).
 * No pkcs11js here: pure functions over bytes, unit-testable without a token.
 */
import { createPublicKey } from 'node:crypto';
import type { Curve } from '../../core/model.js';
import type { SignatureAlgorithm } from '../../core/ports.js';
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';
import { bytesEqual, fromHex, toHex } from '../../core/bytes.js';

export interface CurveSpec {
  readonly curve: Curve;
  /** DER of the named-curve OID (the value of CKA_EC_PARAMS). */
  readonly ecParams: Uint8Array;
  /** Field element / coordinate size in bytes. */
  readonly size: number;
  readonly algorithm: SignatureAlgorithm;
  readonly hash: 'SHA-256' | 'SHA-384';
  /** SPKI DER prefix up to and including the BIT STRING's unused-bits byte; the uncompressed point follows. */
  readonly spkiPrefix: Uint8Array;
  /** Field prime p and curve coefficient b (a = -3) for on-curve checks. */
  readonly p: bigint;
  readonly b: bigint;
}

export const CURVES: Readonly<Record<Curve, CurveSpec>> = {
  'P-256': {
    curve: 'P-256',
    ecParams: fromHex('06082a8648ce3d030107'),
    size: 32,
    algorithm: 'ES256',
    hash: 'SHA-256',
    spkiPrefix: fromHex('3059301306072a8648ce3d020106082a8648ce3d030107034200'),
    p: BigInt('0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff'),
    b: BigInt('0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b'),
  },
  'P-384': {
    curve: 'P-384',
    ecParams: fromHex('06052b81040022'),
    size: 48,
    algorithm: 'ES384',
    hash: 'SHA-384',
    spkiPrefix: fromHex('3076301006072a8648ce3d020106052b81040022036200'),
    p: BigInt('0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff'),
    b: BigInt('0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef'),
  },
};

/** Which curve a CKA_EC_PARAMS value names (only named-curve OIDs for P-256 / P-384 are accepted). */
export function curveFromEcParams(ecParams: Uint8Array): CurveSpec | null {
  for (const spec of Object.values(CURVES)) if (bytesEqual(spec.ecParams, ecParams)) return spec;
  return null;
}

/**
 * Decode CKA_EC_POINT into the raw uncompressed point (0x04 || X || Y).
 * PKCS#11 says the value is a DER OCTET STRING; some modules return the raw point. Both are accepted.
 */
export function decodeEcPoint(value: Uint8Array, spec: CurveSpec): Uint8Array | null {
  const rawLen = 1 + 2 * spec.size;
  if (value.length === rawLen && value[0] === 0x04) return value;
  try {
    const tlv = readTlv(value, 0);
    if (tlv.tag === 0x04 && tlv.end === value.length) {
      const inner = value.subarray(tlv.start, tlv.end);
      if (inner.length === rawLen && inner[0] === 0x04) return inner;
    }
  } catch {
    return null;
  }
  return null;
}

/** True iff (x, y) satisfies y^2 = x^3 - 3x + b (mod p) with 0 <= x, y < p. */
export function isOnCurve(point: Uint8Array, spec: CurveSpec): boolean {
  if (point.length !== 1 + 2 * spec.size || point[0] !== 0x04) return false;
  const x = BigInt('0x' + toHex(point.subarray(1, 1 + spec.size)));
  const y = BigInt('0x' + toHex(point.subarray(1 + spec.size)));
  const { p, b } = spec;
  if (x >= p || y >= p) return false;
  const mod = (n: bigint): bigint => ((n % p) + p) % p;
  return mod(y * y) === mod(x * x * x - 3n * x + b);
}

/** SPKI DER for an uncompressed EC point on the given curve. */
export function spkiFromPoint(point: Uint8Array, spec: CurveSpec): Uint8Array {
  if (point.length !== 1 + 2 * spec.size || point[0] !== 0x04)
    throw new Error('spkiFromPoint: not an uncompressed point');
  const out = new Uint8Array(spec.spkiPrefix.length + point.length);
  out.set(spec.spkiPrefix, 0);
  out.set(point, spec.spkiPrefix.length);
  return out;
}

/**
 * Parse and validate an EC public key (SPKI DER) on the expected curve; returns the uncompressed point.
 * Rejects other algorithms/curves, compressed or malformed points and points not on the curve (INPUT_INVALID).
 */
export function parseEcSpki(spki: Uint8Array, curve: Curve): Result<Uint8Array> {
  const spec = CURVES[curve];
  if (!(spki instanceof Uint8Array) || spki.length === 0 || spki.length > 512) {
    return fail('INPUT_INVALID', 'transport public key: not a DER SubjectPublicKeyInfo', { curve });
  }
  const expectedLen = spec.spkiPrefix.length + 1 + 2 * spec.size;
  if (spki.length !== expectedLen || !bytesEqual(spki.subarray(0, spec.spkiPrefix.length), spec.spkiPrefix)) {
    // Tell apart "wrong curve" from "garbage" for a clearer message.
    let actual: string | undefined;
    try {
      const k = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      actual = k.asymmetricKeyType === 'ec' ? String(k.asymmetricKeyDetails?.namedCurve) : k.asymmetricKeyType;
    } catch {
      actual = undefined;
    }
    return fail(
      'INPUT_INVALID',
      actual
        ? `transport public key is ${actual}, expected an uncompressed ${curve} point`
        : 'transport public key: not a valid DER SubjectPublicKeyInfo',
      { curve, ...(actual ? { actual } : {}) },
    );
  }
  const point = spki.subarray(spec.spkiPrefix.length);
  if (!isOnCurve(point, spec)) {
    return fail('INPUT_INVALID', `transport public key: point is not on ${curve}`, { curve });
  }
  // Independent check by OpenSSL (also rejects the point at infinity and bad encodings).
  try {
    createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    return fail('INPUT_INVALID', `transport public key: rejected by the EC decoder (${curve})`, { curve });
  }
  return ok(new Uint8Array(point));
}

// ---------------------------------------------------------------- minimal DER reader

export interface Tlv {
  readonly tag: number;
  /** Offset of the value. */
  readonly start: number;
  /** Offset just past the value. */
  readonly end: number;
  /** Offset of the tag byte. */
  readonly headerStart: number;
}

/** Read one DER TLV at `offset` (single-byte tags, definite lengths up to 4 length bytes). Throws on malformed input. */
export function readTlv(buf: Uint8Array, offset: number): Tlv {
  const tag = buf[offset];
  let lenByte = buf[offset + 1];
  if (tag === undefined || lenByte === undefined) throw new Error('DER: truncated header');
  let p = offset + 2;
  let len = lenByte;
  if (lenByte & 0x80) {
    const n = lenByte & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: unsupported length');
    len = 0;
    for (let i = 0; i < n; i++) {
      lenByte = buf[p++];
      if (lenByte === undefined) throw new Error('DER: truncated length');
      len = len * 256 + lenByte;
    }
  }
  if (p + len > buf.length) throw new Error('DER: value exceeds buffer');
  return { tag, start: p, end: p + len, headerStart: offset };
}

/** The DER-encoded subject Name of an X.509 certificate (CKA_SUBJECT), or null if the input is not a certificate. */
export function certificateSubject(der: Uint8Array): Uint8Array | null {
  return certificateFields(der)?.subject ?? null;
}

/**
 * The fields of an X.509 certificate a PKCS#11 certificate object carries: subject and issuer Names (DER) and the
 * serial number (DER INTEGER, CKA_SERIAL_NUMBER), or null if the input is not a certificate. NSS softoken refuses a
 * certificate object without CKA_ISSUER and CKA_SERIAL_NUMBER (CKR_TEMPLATE_INCOMPLETE).
 */
export function certificateFields(
  der: Uint8Array,
): { subject: Uint8Array; issuer: Uint8Array; serialNumber: Uint8Array } | null {
  try {
    const cert = readTlv(der, 0);
    if (cert.tag !== 0x30 || cert.end !== der.length) return null;
    const tbs = readTlv(der, cert.start);
    if (tbs.tag !== 0x30) return null;
    let p = tbs.start;
    let t = readTlv(der, p);
    if (t.tag === 0xa0) t = readTlv(der, (p = t.end)); // version
    if (t.tag !== 0x02) return null; // serialNumber
    const serial = t;
    const fields: Tlv[] = [];
    p = t.end;
    for (let i = 0; i < 4; i++) {
      const f = readTlv(der, p);
      if (f.tag !== 0x30) return null;
      fields.push(f);
      p = f.end;
    }
    const [, issuer, , subject] = fields as [Tlv, Tlv, Tlv, Tlv]; // signature, issuer, validity, subject
    return {
      subject: der.slice(subject.headerStart, subject.end),
      issuer: der.slice(issuer.headerStart, issuer.end),
      serialNumber: der.slice(serial.headerStart, serial.end),
    };
  } catch {
    return null;
  }
}

/** Convert a raw r||s ECDSA signature to DER (for verifiers such as node:crypto's default 'der' encoding). */
export function rawSignatureToDer(raw: Uint8Array): Uint8Array {
  const n = raw.length / 2;
  const int = (b: Uint8Array): number[] => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = Array.from(b.subarray(i));
    if ((v[0] ?? 0) & 0x80) v.unshift(0);
    return [0x02, v.length, ...v];
  };
  const body = [...int(raw.subarray(0, n)), ...int(raw.subarray(n))];
  const len = body.length < 128 ? [body.length] : [0x81, body.length];
  return new Uint8Array([0x30, ...len, ...body]);
}

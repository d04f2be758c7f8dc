/**
 * Board attestation (docs/formats.md "Attestation"). The board's factory attestation key, whose certificate chains
 * to a vendor root and names the chip in the subject serialNumber (2.5.4.5), signs:
 *
 * - protocol 2 (key-bound): `encodeStatement(...)`, binding the fresh nonce, the chip id, the key the station is
 *   about to certify (role device) or wrap to (role transport), and the SHA-256 of the measurements it reported;
 * - protocol 1 (legacy, only where a board profile allows it): `attestationMessage(nonce, chipId)`.
 */
import 'reflect-metadata';
import { bytesEqual, concatBytes, sha256Hex, toHex, utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { fail } from '../errors.js';
import type { AttestationEvidence, AttestKeyRole, Curve, Measurements } from '../model.js';
import type { Clock } from '../ports.js';
import { ok, type Result } from '../result.js';
import { verifyLeafChain } from './chain-cache.js';
import { curveHash, derToRawSignature, importVerifyKey, spkiCurve, verifyRaw } from './ecdsa.js';
import { certificateSha256 } from './pem.js';

const PREFIX_V1 = 'line-station/attest/v1\0';
/** Domain separation of protocol v2 statements (23 bytes, the NUL included). */
export const STATEMENT_PREFIX = 'line-station/attest/v2\0';
const NONCE_SIZE = 32;
const DIGEST_SIZE = 32;
const MAX_KEY_SIZE = 1024;
const ROLE_BYTE: Record<AttestKeyRole, number> = { device: 0x01, transport: 0x02 };

/** The signed legacy (protocol 1) message: utf8("line-station/attest/v1\0") || nonce || utf8(chipId). */
export function attestationMessage(nonce: Uint8Array, chipId: string): Uint8Array {
  return concatBytes(utf8(PREFIX_V1), nonce, utf8(chipId));
}

/** What a protocol 2 statement says. */
export interface AttestationStatement {
  readonly role: AttestKeyRole;
  readonly nonce: Uint8Array;
  /** Lower-case hex, 8..64 characters. */
  readonly chipId: string;
  /** SubjectPublicKeyInfo DER of the bound key. */
  readonly key: Uint8Array;
  /** SHA-256 (hex) of the measurements the board reported (measurementsDigest). */
  readonly measurementsSha256: string;
}

/**
 * The statement bytes (docs/formats.md "Attestation statement"):
 * prefix(23) || role(1) || nonce(32) || len(chipId)(1) || chipId || len(key)(2, big-endian) || key || digest(32).
 * Throws RangeError on out-of-range fields (a bug of the caller).
 */
export function encodeStatement(s: AttestationStatement): Uint8Array {
  if (s.nonce.length !== NONCE_SIZE) throw new RangeError('statement nonce must be 32 bytes');
  if (!/^(?:[0-9a-f]{2}){4,32}$/.test(s.chipId)) throw new RangeError('statement chipId must be 8..64 lower-case hex');
  if (s.key.length < 1 || s.key.length > MAX_KEY_SIZE) throw new RangeError('statement key must be 1..1024 bytes');
  if (!/^[0-9a-f]{64}$/.test(s.measurementsSha256)) throw new RangeError('statement digest must be SHA-256 hex');
  const chip = utf8(s.chipId);
  const digest = new Uint8Array(DIGEST_SIZE);
  for (let i = 0; i < DIGEST_SIZE; i++) digest[i] = parseInt(s.measurementsSha256.slice(2 * i, 2 * i + 2), 16);
  return concatBytes(
    utf8(STATEMENT_PREFIX),
    Uint8Array.of(ROLE_BYTE[s.role]),
    s.nonce,
    Uint8Array.of(chip.length),
    chip,
    Uint8Array.of(s.key.length >> 8, s.key.length & 0xff),
    s.key,
    digest,
  );
}

/** Parse statement bytes strictly (exact layout, no trailing bytes); null if they are not a statement. */
export function decodeStatement(b: Uint8Array): AttestationStatement | null {
  const prefix = utf8(STATEMENT_PREFIX);
  let p = prefix.length;
  if (b.length < p + 1 + NONCE_SIZE + 1 || !bytesEqual(b.subarray(0, p), prefix)) return null;
  const roleByte = b[p++]!;
  const role = (Object.keys(ROLE_BYTE) as AttestKeyRole[]).find((r) => ROLE_BYTE[r] === roleByte);
  if (!role) return null;
  const nonce = b.slice(p, p + NONCE_SIZE);
  p += NONCE_SIZE;
  const chipLen = b[p++]!;
  if (p + chipLen + 2 > b.length) return null;
  const chipId = new TextDecoder().decode(b.subarray(p, p + chipLen));
  p += chipLen;
  const keyLen = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  if (p + keyLen + DIGEST_SIZE !== b.length) return null;
  const key = b.slice(p, p + keyLen);
  p += keyLen;
  const measurementsSha256 = toHex(b.subarray(p, p + DIGEST_SIZE));
  const s: AttestationStatement = { role, nonce, chipId, key, measurementsSha256 };
  try {
    // Only the canonical encoding is a statement (e.g. upper-case or odd-length chip ids are not).
    return bytesEqual(encodeStatement(s), b) ? s : null;
  } catch {
    return null;
  }
}

/**
 * The measurements as a statement binds them: the canonical JSON of the exact `measurements` member of the baseline
 * manifest (hex digests lower case, firmware in the order the board reported).
 */
export function measurementsJson(m: Measurements): string {
  return canonicalJson({
    firmware: m.firmware.map((f) => ({ name: f.name, version: f.version, sha256: f.sha256 })),
    secureBoot: m.secureBoot,
    debugLocked: m.debugLocked,
    fuseDigest: m.fuseDigest,
    configDigest: m.configDigest,
  });
}

/** SHA-256 (hex) over utf8(measurementsJson(m)): the digest a protocol 2 statement binds. */
export function measurementsDigest(m: Measurements): Promise<string> {
  return sha256Hex(measurementsJson(m));
}

/** What the station expects a protocol 2 statement to bind. */
export interface ExpectedBinding {
  readonly role: AttestKeyRole;
  /** SPKI DER of the key the station will certify (device) or wrap to (transport). */
  readonly key: Uint8Array;
  /** The curve the key must have: the profile's curve (device), P-256 (transport). */
  readonly curve: Curve;
  /** measurementsDigest() of the measurements the station checked against the baseline. */
  readonly measurementsSha256: string;
}

export interface VerifiedAttestation {
  /** SHA-256 (hex) of the attestation leaf certificate. */
  readonly leafSha256: string;
  readonly leafSubject: string;
  /** The verified statement (protocol 2), or null (legacy protocol 1: nothing bound but nonce and chip id). */
  readonly statement: AttestationStatement | null;
}

/**
 * The key an attestation will bind must be an EC key on `curve`: ATTEST_KEY_TYPE_MISMATCH otherwise (e.g. a P-384
 * key where the profile says P-256). Checked as soon as a key arrives, before anything else is done with it.
 */
export function checkKeyType(spki: Uint8Array, curve: Curve, what: string): Result<void> {
  const actual = spkiCurve(spki);
  if (actual !== curve)
    return fail(
      'ATTEST_KEY_TYPE_MISMATCH',
      `the ${what} is ${actual ? `an EC ${actual}` : 'not an EC'} key; expected EC ${curve}`,
      {
        expected: curve,
        actual: actual ?? 'not EC P-256/P-384',
      },
    );
  return ok(undefined);
}

/**
 * Verify attestation evidence: chain to one trust anchor at clock.now() (ATTEST_CHAIN_INVALID, also for malformed
 * evidence), leaf subject serialNumber == chipId (ATTEST_IDENTITY_MISMATCH), DER ECDSA signature with the leaf key
 * (ATTEST_SIGNATURE_INVALID). Protocol 2 (`expected` required): a well-formed statement (ATTEST_STATEMENT_INVALID)
 * naming this chip (ATTEST_IDENTITY_MISMATCH) and this nonce (ATTEST_NONCE_MISMATCH: stale or replayed), binding
 * exactly the expected key in the expected role (ATTEST_KEY_MISMATCH) of the expected type
 * (ATTEST_KEY_TYPE_MISMATCH) and the measurements the station checked (ATTEST_MEASUREMENT_MISMATCH).
 * Protocol 1 evidence is verified as legacy evidence; whether it is acceptable is the caller's decision.
 */
export async function verifyAttestation(params: {
  nonce: Uint8Array;
  chipId: string;
  evidence: AttestationEvidence;
  trustAnchors: readonly Uint8Array[];
  clock: Clock;
  expected?: ExpectedBinding;
}): Promise<Result<VerifiedAttestation>> {
  const { nonce, chipId, evidence } = params;
  if (!(nonce instanceof Uint8Array) || nonce.length < 16)
    return fail('INTERNAL', 'attestation nonce must be at least 16 bytes');
  if (
    !evidence ||
    typeof evidence !== 'object' ||
    !(evidence.signature instanceof Uint8Array) ||
    !Array.isArray(evidence.chain) ||
    !evidence.chain.every((c) => c instanceof Uint8Array)
  )
    return fail(
      'ATTEST_CHAIN_INVALID',
      'attestation evidence is malformed (expected a signature and a list of DER certificates)',
    );
  let statement: AttestationStatement | null = null;
  if (evidence.protocol === 2) {
    if (!params.expected) return fail('INTERNAL', 'a protocol 2 attestation needs the expected binding');
    statement = evidence.statement instanceof Uint8Array ? decodeStatement(evidence.statement) : null;
    if (!statement)
      return fail('ATTEST_STATEMENT_INVALID', 'the attestation statement is not in the protocol 2 statement format');
  }
  const chain = await verifyLeafChain(evidence.chain, params.trustAnchors, params.clock.now());
  if (!chain.ok) return fail('ATTEST_CHAIN_INVALID', `attestation chain invalid: ${chain.error}`);
  const leaf = chain.value;
  const serials = leaf.serialNumbers;
  if (serials.length !== 1 || serials[0] !== chipId)
    return fail(
      'ATTEST_IDENTITY_MISMATCH',
      `the attestation certificate is for chip ${serials.join(',') || '(none)'}, not ${chipId}`,
      {
        expected: chipId,
        actual: serials.join(','),
      },
    );
  const key = await importVerifyKey(leaf.spki);
  if (!key) return fail('ATTEST_CHAIN_INVALID', 'the attestation key is not an EC P-256 or P-384 key');
  const raw = derToRawSignature(evidence.signature, key.curve);
  if (!raw) return fail('ATTEST_SIGNATURE_INVALID', 'the attestation signature is not a DER ECDSA signature');
  const signed = evidence.protocol === 2 ? evidence.statement : attestationMessage(nonce, chipId);
  const good = await verifyRaw(key.key, key.curve, curveHash(key.curve), raw, signed);
  if (!good)
    return fail(
      'ATTEST_SIGNATURE_INVALID',
      evidence.protocol === 2
        ? 'the attestation signature does not verify over the statement'
        : 'the attestation signature does not verify for this nonce and chip',
    );
  if (statement && params.expected) {
    const bound = checkBinding(statement, { nonce, chipId, ...params.expected });
    if (!bound.ok) return bound;
  }
  const leafSha256 = await certificateSha256(evidence.chain[0]!);
  return ok({
    leafSha256,
    // The subject string is formatted on demand (the flow records only the fingerprint).
    get leafSubject() {
      return leaf.subject;
    },
    statement,
  });
}

/** The signed statement says what the station expects (called after the signature verified). */
function checkBinding(
  s: AttestationStatement,
  want: ExpectedBinding & { readonly nonce: Uint8Array; readonly chipId: string },
): Result<void> {
  if (s.chipId !== want.chipId)
    return fail('ATTEST_IDENTITY_MISMATCH', `the statement is for chip ${s.chipId}, not ${want.chipId}`, {
      expected: want.chipId,
      actual: s.chipId,
    });
  if (!bytesEqual(s.nonce, want.nonce))
    return fail('ATTEST_NONCE_MISMATCH', 'the statement is not over this challenge: a stale or replayed attestation');
  if (s.role !== want.role)
    return fail('ATTEST_KEY_MISMATCH', `the statement binds the ${s.role} key, not the ${want.role} key`, {
      expected: want.role,
      actual: s.role,
    });
  const type = checkKeyType(s.key, want.curve, `${s.role} key in the statement`);
  if (!type.ok) return type;
  if (!bytesEqual(s.key, want.key))
    return fail(
      'ATTEST_KEY_MISMATCH',
      `the board attests a different ${want.role} key than the one it reported: the key did not come from this board`,
      { role: want.role },
    );
  if (s.measurementsSha256 !== want.measurementsSha256)
    return fail(
      'ATTEST_MEASUREMENT_MISMATCH',
      'the statement binds other measurements than the ones the station checked against the baseline',
      { expected: want.measurementsSha256, actual: s.measurementsSha256 },
    );
  return ok(undefined);
}

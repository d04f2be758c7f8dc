/**
 * Station key rotation on the wire (docs/lifecycle.md "Station key rotation"): the station's request (JWS typ
 * line-station-key-rotation+jws, signed by its CURRENT station key, x5c = its current chain) and the registry's
 * answer (JWS typ line-station-key-rotation-answer+jws, signed with the registry receipt key), plus the two
 * hand-carried files. Pure apart from WebCrypto: used by the station (station/rotate-key.ts) and the registry
 * (registry/station-keys/rotation.ts `stationKeyRotation`).
 */
import { z } from 'zod';
import { utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { fail } from '../errors.js';
import { signJws } from '../pki/jws.js';
import type { Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { parseCompactJws, verifyDocument, type ParsedJws } from './jws.js';
import { zodMessage } from './protocol.js';

export const KEY_ROTATION_TYP = 'line-station-key-rotation+jws';
export const KEY_ROTATION_SCHEMA = 'line-station/station-key-rotation/v1';
export const KEY_ROTATION_ANSWER_TYP = 'line-station-key-rotation-answer+jws';
export const KEY_ROTATION_ANSWER_SCHEMA = 'line-station/station-key-rotation-answer/v1';
/** `station rotate-key --out` file. */
export const KEY_ROTATION_REQUEST_FILE = 'line-station/station-key-rotation-request/v1';
/** `registry rotate-station-key --out` file. */
export const KEY_ROTATION_ANSWER_FILE = 'line-station/station-key-rotation-answer-file/v1';
/** Largest request or answer JWS accepted. */
export const MAX_KEY_ROTATION_CHARS = 64 * 1024;
/**
 * Largest hand-carried request or answer file read (`registry rotate-station-key --request`,
 * `station rotate-key --answer`).
 */
export const MAX_KEY_ROTATION_FILE_BYTES = 256 * 1024;

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const StationId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);
const Iso = z.iso.datetime({ offset: true });
const Jws = z.string().min(1).max(MAX_KEY_ROTATION_CHARS);

/** What the station signs with its current key. */
export const KeyRotationRequestSchema = z
  .object({
    schema: z.literal(KEY_ROTATION_SCHEMA),
    /** Idempotency key: the same request again gets the same answer. */
    requestId: z.uuid(),
    stationId: StationId,
    /** SHA-256 (hex) of the station certificate in use (the signer's). */
    previousCertificateSha256: Hex64,
    /** The new chain: new station certificate, the same issuing CA, root (PEM). */
    chainPem: z
      .string()
      .min(1)
      .max(32 * 1024),
    requestedAt: Iso,
  })
  .strict();
export type KeyRotationRequest = z.infer<typeof KeyRotationRequestSchema>;

/** What the registry signs when it switched the station to the new certificate. */
export const KeyRotationAnswerSchema = z
  .object({
    schema: z.literal(KEY_ROTATION_ANSWER_SCHEMA),
    registryId: z.string().min(1).max(128),
    requestId: z.uuid(),
    stationId: StationId,
    /** SHA-256 (hex) of the request payload (the signed JSON bytes). */
    requestSha256: Hex64,
    previousCertificateSha256: Hex64,
    certificateSha256: Hex64,
    /** From this instant on, records signed with the previous key are refused. */
    rotatedAt: Iso,
  })
  .strict();
export type KeyRotationAnswer = z.infer<typeof KeyRotationAnswerSchema>;

/** Body of POST /v1/stations/key-rotation, and the hand-carried request file. */
export const KeyRotationBodySchema = z.object({ request: Jws }).strict();
export const KeyRotationRequestFileSchema = z
  .object({ schema: z.literal(KEY_ROTATION_REQUEST_FILE), stationId: StationId, requestId: z.uuid(), request: Jws })
  .strict();
export const KeyRotationAnswerFileSchema = z
  .object({
    schema: z.literal(KEY_ROTATION_ANSWER_FILE),
    stationId: StationId,
    requestId: z.uuid(),
    answer: Jws,
  })
  .strip();

/**
 * The HTTP 200 body of `POST /v1/stations/key-rotation` as the station reads it: the signed answer (verified with
 * `verifyKeyRotationAnswer`) and whether the request had been applied before (anything but `true` is false).
 */
export const KeyRotationResponseSchema = z.object({ answer: z.string(), repeated: z.unknown().optional() });

/** The registry's answer (HTTP 200 body; the CLI prints it with --json). */
export interface KeyRotationResult {
  readonly stationId: string;
  readonly requestId: string;
  readonly previousCertificateSha256: string;
  readonly certificateSha256: string;
  readonly rotatedAt: string;
  /** True when this request had been applied before (the stored answer is returned). */
  readonly repeated: boolean;
  /** The signed answer (JWS). */
  readonly answer: string;
}

/** Sign a rotation request with the station's CURRENT key (x5c = its current chain, DER leaf first). */
export async function signKeyRotationRequest(
  signer: Signer,
  currentChain: readonly Uint8Array[],
  req: KeyRotationRequest,
): Promise<Result<string>> {
  return signJws({
    signer,
    payload: utf8(canonicalJson(req)),
    header: { typ: KEY_ROTATION_TYP, kid: req.stationId, x5c: currentChain },
  });
}

/** Sign the registry's answer with the receipt key. */
export async function signKeyRotationAnswer(
  signer: Signer,
  registryChain: readonly Uint8Array[],
  a: KeyRotationAnswer,
): Promise<Result<string>> {
  return signJws({
    signer,
    payload: utf8(canonicalJson(a)),
    header: { typ: KEY_ROTATION_ANSWER_TYP, kid: a.registryId, x5c: registryChain },
  });
}

/**
 * Parse a request JWS without verifying it (the registry then picks the key the payload names). `parsed` is the
 * parsed JWS (header, signing input, signature).
 */
export function parseKeyRotationRequest(
  jws: string,
): Result<{ payload: KeyRotationRequest; payloadBytes: Uint8Array; parsed: ParsedJws }> {
  const p = parseCompactJws(jws.trim(), 'key rotation request', MAX_KEY_ROTATION_CHARS);
  if (!p.ok) return fail('INPUT_INVALID', p.error.message);
  if (p.value.header.typ !== KEY_ROTATION_TYP)
    return fail('INPUT_INVALID', `key rotation request: typ is not ${KEY_ROTATION_TYP}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.value.payload));
  } catch {
    return fail('INPUT_INVALID', 'key rotation request: the payload is not JSON');
  }
  const r = KeyRotationRequestSchema.safeParse(json);
  if (!r.success) return fail('INPUT_INVALID', `key rotation request: ${zodMessage(r.error)}`);
  return ok({ payload: r.data, payloadBytes: p.value.payload, parsed: p.value });
}

/**
 * Verify the registry's answer with the registry certificate the station was enrolled with (never a key from the
 * message): typ, signature, schema, and that it answers `expect` (request id, station, both certificates).
 */
export async function verifyKeyRotationAnswer(
  jws: string,
  registryCertificate: Uint8Array,
  expect: {
    readonly requestId: string;
    readonly stationId: string;
    readonly previousCertificateSha256: string;
    readonly certificateSha256: string;
  },
): Promise<Result<KeyRotationAnswer>> {
  const a = await verifyDocument(
    'key rotation answer',
    jws,
    KEY_ROTATION_ANSWER_TYP,
    KeyRotationAnswerSchema,
    registryCertificate,
    MAX_KEY_ROTATION_CHARS,
  );
  if (!a.ok) return a;
  const d = a.value.payload;
  for (const k of ['requestId', 'stationId', 'previousCertificateSha256', 'certificateSha256'] as const)
    if (d[k] !== expect[k])
      return fail('INPUT_INVALID', `key rotation answer: ${k} is ${d[k]}, this station's request has ${expect[k]}`);
  return ok(d);
}

/**
 * Registry-side compact JWS parsing and verification (signing is core/pki/jws.ts `signJws`). Split into parse and
 * verify so that the registry can (a) tell a malformed/truncated JWS from a bad signature in its reasons and
 * (b) verify thousands of records with one imported key (the ENROLLED station key, never a key taken from
 * the message). Same strictness as core/pki/jws.ts: ES256/ES384, canonical base64url, header {alg, typ, kid, x5c} only.
 */
import type { z } from 'zod';
import { utf8 } from '../bytes.js';
import { fail } from '../errors.js';
import type { SignatureAlgorithm } from '../ports.js';
import { err, ok, type Result } from '../result.js';
import { algorithmHash, importVerifyKey, verifyRaw, type VerifyKey as ImportedVerifyKey } from '../pki/ecdsa.js';
import type { Curve } from '../model.js';
import { parseCertificate } from '../pki/chain.js';
// protocol.ts imports this module too; neither uses the other's exports at load time.
import { zodMessage } from '../zod-message.js';

/** Upper bound for one compact JWS we accept (a bundle of 500 records fits well below). */
export const MAX_JWS_CHARS = 12 * 1024 * 1024;

export interface JwsHeader {
  readonly alg: SignatureAlgorithm;
  readonly typ?: string;
  readonly kid?: string;
  /** Certificates, standard base64 DER, leaf first. */
  readonly x5c?: readonly string[];
  readonly [k: string]: unknown;
}

export interface ParsedJws {
  readonly header: JwsHeader;
  /** The decoded payload bytes (exactly what was signed). */
  readonly payload: Uint8Array;
  /** `b64(header) "." b64(payload)`: the signing input. */
  readonly signingInput: Uint8Array;
  readonly signature: Uint8Array;
}

/** Why a JWS was refused: `malformed` (cannot be parsed at all) or `signature` (parsed, does not verify). */
export type JwsFailure = { readonly kind: 'malformed' | 'signature' | 'header'; readonly message: string };

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Parse a compact JWS strictly (3 parts, canonical base64url, JSON object header, ES256/ES384, no `crit`). */
/** Parse a compact JWS strictly; `maxChars` bounds it (bundles are allowed to be larger than other JWS). */
export function parseCompactJws(jws: unknown, what = 'JWS', maxChars = MAX_JWS_CHARS): Result<ParsedJws, JwsFailure> {
  const bad = (message: string): Result<ParsedJws, JwsFailure> =>
    err({ kind: 'malformed', message: `${what}: ${message}` });
  if (typeof jws !== 'string') return bad('expected a string');
  if (jws.length === 0) return bad('empty');
  if (jws.length > maxChars) return bad(`longer than ${maxChars} characters`);
  const parts = jws.split('.');
  if (parts.length !== 3)
    return bad(`expected 3 dot-separated parts (compact serialization), found ${parts.length}: truncated or not a JWS`);
  const [h, p, s] = parts as [string, string, string];
  // Canonical base64url only: decoding and re-encoding must give back the same text. Node's decoder skips
  // characters outside the alphabet and accepts '+', '/' and '=', so any of those, a stray trailing bit or an
  // impossible length changes the re-encoding: one comparison checks the alphabet and the canonical form.
  const decoded: Uint8Array[] = [];
  for (const [name, v] of [
    ['header', h],
    ['payload', p],
    ['signature', s],
  ] as const) {
    const b = Buffer.from(v, 'base64url');
    if (b.toString('base64url') !== v)
      return bad(
        B64URL.test(v) && v.length % 4 !== 1 ? 'non-canonical base64url' : `the ${name} is not valid base64url`,
      );
    decoded.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  }
  const [hb, pb, sb] = decoded as [Uint8Array, Uint8Array, Uint8Array];
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hb));
  } catch {
    return bad('the protected header is not JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header))
    return bad('the protected header is not an object');
  const hdr = header as Record<string, unknown>;
  if (hdr['alg'] !== 'ES256' && hdr['alg'] !== 'ES384')
    return err({
      kind: 'header',
      message: `${what}: unsupported alg ${JSON.stringify(hdr['alg'])} (ES256/ES384 only)`,
    });
  for (const k of Object.keys(hdr))
    if (!['alg', 'typ', 'kid', 'x5c'].includes(k))
      return err({ kind: 'header', message: `${what}: unsupported header parameter ${JSON.stringify(k)}` });
  if (hdr['typ'] !== undefined && typeof hdr['typ'] !== 'string')
    return err({ kind: 'header', message: `${what}: typ must be a string` });
  if (hdr['kid'] !== undefined && typeof hdr['kid'] !== 'string')
    return err({ kind: 'header', message: `${what}: kid must be a string` });
  if (hdr['x5c'] !== undefined) {
    const x = hdr['x5c'];
    if (
      !Array.isArray(x) ||
      x.length === 0 ||
      x.length > 8 ||
      !x.every((c) => typeof c === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(c))
    )
      return err({ kind: 'header', message: `${what}: x5c must be 1..8 base64 DER certificates` });
  }
  return ok({ header: hdr as unknown as JwsHeader, payload: pb, signingInput: utf8(`${h}.${p}`), signature: sb });
}

/** An imported verification key (cache it: importing is the costly part). */
export interface VerifyKey {
  readonly key: ImportedVerifyKey;
  readonly curve: Curve;
}

/** Import an EC SPKI for JWS verification; null if it is not a P-256 / P-384 key. */
export async function importJwsKey(spki: Uint8Array): Promise<VerifyKey | null> {
  return importVerifyKey(spki);
}

/** Verify a parsed JWS with `key`; the alg must match the key's curve (ES256 with P-256, ES384 with P-384). */
export async function verifyParsedJws(jws: ParsedJws, key: VerifyKey, what = 'JWS'): Promise<Result<true, JwsFailure>> {
  const expected: SignatureAlgorithm = key.curve === 'P-256' ? 'ES256' : 'ES384';
  if (jws.header.alg !== expected)
    return err({ kind: 'header', message: `${what}: alg ${jws.header.alg} does not match the ${key.curve} key` });
  const valid = await verifyRaw(key.key, key.curve, algorithmHash(jws.header.alg), jws.signature, jws.signingInput);
  return valid
    ? ok(true)
    : err({ kind: 'signature', message: `${what}: the signature does not verify with the expected key` });
}

/**
 * Verify a compact JWS of `typ` signed by the registry with the registry certificate this station was enrolled
 * with (never a key taken from the message), then validate its JSON payload with `schema`. CONFIG_INVALID when the
 * certificate is unusable, INPUT_INVALID otherwise; messages start with `what`. `json` is the payload as signed.
 */
export async function verifyDocument<S extends z.ZodType>(
  what: string,
  jws: string,
  typ: string,
  schema: S,
  registryCertificate: Uint8Array,
  maxChars = MAX_JWS_CHARS,
): Promise<Result<{ payload: z.output<S>; json: string }>> {
  const cert = parseCertificate(registryCertificate, 'registry certificate');
  if (!cert.ok) return fail('CONFIG_INVALID', cert.error);
  const key = await importJwsKey(new Uint8Array(cert.value.publicKey.rawData));
  if (!key) return fail('CONFIG_INVALID', 'the registry certificate key is not an EC P-256/P-384 key');
  const parsed = parseCompactJws(jws.trim(), what, maxChars);
  if (!parsed.ok) return fail('INPUT_INVALID', parsed.error.message);
  if (parsed.value.header.typ !== typ) return fail('INPUT_INVALID', `${what}: typ is not ${typ}`);
  const v = await verifyParsedJws(parsed.value, key, what);
  if (!v.ok) return fail('INPUT_INVALID', `${v.error.message} (the registry certificate of this station)`);
  let json: string;
  let value: unknown;
  try {
    json = new TextDecoder('utf-8', { fatal: true }).decode(parsed.value.payload);
    value = JSON.parse(json);
  } catch {
    return fail('INPUT_INVALID', `${what}: the payload is not JSON`);
  }
  const p = schema.safeParse(value);
  if (!p.success) return fail('INPUT_INVALID', `${what}: ${zodMessage(p.error)}`);
  return ok({ payload: p.data, json });
}

/** Decode the x5c header to DER (leaf first); INPUT_INVALID when absent. */
export function x5cDer(header: JwsHeader): Result<Uint8Array[]> {
  if (!header.x5c) return fail('INPUT_INVALID', 'the JWS has no x5c header');
  return ok(header.x5c.map((c) => new Uint8Array(Buffer.from(c, 'base64'))));
}

/** Standard base64 of DER, for x5c. */
export function derToX5c(der: Uint8Array): string {
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
}

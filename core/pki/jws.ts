/**
 * JWS compact serialization (RFC 7515) with ES256 / ES384 through a Signer, and a strict verifier.
 * The protected header is canonical JSON: {alg, kid?, typ, x5c?} where x5c is the DER chain
 * (leaf first) in standard base64 as RFC 7515 §4.1.6 requires. No unprotected header, no `crit`.
 */
import { bytesEqual, fromBase64Url, toBase64, toBase64Url, utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { fail } from '../errors.js';
import type { Clock, Signer, SignatureAlgorithm } from '../ports.js';
import { systemClock } from '../ports.js';
import { ok, type Result } from '../result.js';
import { verifyCertificateChain } from './chain.js';
import { algorithmHash, curveAlgorithm, curveSize, importVerifyKey, verifyRaw } from './ecdsa.js';

const MAX_JWS_CHARS = 4 * 1024 * 1024;
const MAX_HEADER_CHARS = 64 * 1024;

export interface JwsHeader {
  readonly alg: SignatureAlgorithm;
  readonly typ: string;
  /** DER certificates, standard base64, leaf first. */
  readonly x5c?: readonly string[];
  readonly kid?: string;
}

/** Strict base64url: only the alphabet, no padding, and canonical (re-encodes to the same text). */
function decodeB64Url(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  const b = fromBase64Url(s);
  return toBase64Url(b) === s ? b : null;
}

function decodeStdB64(s: string): Uint8Array | null {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s) || s.length === 0) return null;
  const b = new Uint8Array(Buffer.from(s, 'base64'));
  return toBase64(b) === s ? b : null;
}

/**
 * Sign `payload` as a compact JWS with the signer's algorithm. `header.x5c` is the signer's certificate
 * chain (DER, leaf first). Signer errors are returned as is.
 */
export async function signJws(params: {
  signer: Signer;
  payload: Uint8Array;
  header: { typ: string; x5c?: readonly Uint8Array[]; kid?: string };
}): Promise<Result<string>> {
  const { signer, payload, header } = params;
  if (curveAlgorithm(signer.curve) !== signer.algorithm)
    return fail(
      'INTERNAL',
      `JWS: ${signer.algorithm} requires ${signer.algorithm === 'ES256' ? 'P-256' : 'P-384'}, signer key is ${signer.curve}`,
    );
  const protectedHeader: Record<string, unknown> = { alg: signer.algorithm, typ: header.typ };
  if (header.x5c) protectedHeader['x5c'] = header.x5c.map((d) => toBase64(d));
  if (header.kid !== undefined) protectedHeader['kid'] = header.kid;
  const input = `${toBase64Url(utf8(canonicalJson(protectedHeader)))}.${toBase64Url(payload)}`;
  const sig = await signer.sign(utf8(input));
  if (!sig.ok) return sig;
  if (sig.value.length !== 2 * curveSize(signer.curve))
    return fail('HSM_FAILED', `signer returned a ${sig.value.length}-byte signature, expected raw r||s`);
  return ok(`${input}.${toBase64Url(sig.value)}`);
}

export interface VerifiedJws {
  readonly header: JwsHeader;
  readonly payload: Uint8Array;
  /** The verified x5c chain (DER, leaf first) when trust anchors were used. */
  readonly chain?: readonly Uint8Array[];
}

/**
 * Verify a compact JWS. The key is `publicKeySpki`, or, with `trustAnchors`, the leaf of the header's
 * x5c chain after validating it to an anchor at `clock.now()` (both given: they must agree). With
 * `typ`, the header typ must match. Every problem is INPUT_INVALID with a message saying what failed.
 */
export async function verifyJws(
  jws: string,
  opts: { publicKeySpki?: Uint8Array; trustAnchors?: readonly Uint8Array[]; clock?: Clock; typ?: string },
): Promise<Result<VerifiedJws>> {
  if (typeof jws !== 'string') return fail('INPUT_INVALID', 'JWS: expected a string');
  if (jws.length > MAX_JWS_CHARS) return fail('INPUT_INVALID', 'JWS: too large');
  const parts = jws.split('.');
  if (parts.length !== 3) return fail('INPUT_INVALID', 'JWS: expected compact serialization with 3 parts');
  const [h64, p64, s64] = parts as [string, string, string];
  if (h64.length > MAX_HEADER_CHARS) return fail('INPUT_INVALID', 'JWS: header too large');
  const hBytes = decodeB64Url(h64);
  const payload = decodeB64Url(p64);
  const sig = decodeB64Url(s64);
  if (!hBytes || !payload || !sig) return fail('INPUT_INVALID', 'JWS: a part is not canonical base64url');
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hBytes));
  } catch {
    return fail('INPUT_INVALID', 'JWS: protected header is not UTF-8 JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header))
    return fail('INPUT_INVALID', 'JWS: protected header is not a JSON object');
  const h = header as Record<string, unknown>;
  for (const k of Object.keys(h))
    if (!['alg', 'typ', 'x5c', 'kid'].includes(k))
      return fail('INPUT_INVALID', `JWS: unsupported header parameter ${k}`);
  if (h['alg'] !== 'ES256' && h['alg'] !== 'ES384')
    return fail('INPUT_INVALID', `JWS: unsupported alg ${JSON.stringify(h['alg'])} (ES256 or ES384 only)`);
  const alg = h['alg'];
  if (typeof h['typ'] !== 'string') return fail('INPUT_INVALID', 'JWS: header typ missing');
  if (opts.typ !== undefined && h['typ'] !== opts.typ)
    return fail('INPUT_INVALID', `JWS: typ is ${h['typ']}, expected ${opts.typ}`);
  if (h['kid'] !== undefined && typeof h['kid'] !== 'string') return fail('INPUT_INVALID', 'JWS: kid is not a string');
  let x5c: Uint8Array[] | undefined;
  if (h['x5c'] !== undefined) {
    if (!Array.isArray(h['x5c']) || h['x5c'].length === 0 || h['x5c'].length > 8)
      return fail('INPUT_INVALID', 'JWS: x5c must be a non-empty array of at most 8 certificates');
    x5c = [];
    for (const [i, c] of (h['x5c'] as unknown[]).entries()) {
      const d = typeof c === 'string' ? decodeStdB64(c) : null;
      if (!d) return fail('INPUT_INVALID', `JWS: x5c[${i}] is not standard base64`);
      x5c.push(d);
    }
  }

  let spki: Uint8Array | undefined = opts.publicKeySpki;
  if (opts.trustAnchors) {
    if (!x5c) return fail('INPUT_INVALID', 'JWS: no x5c certificate chain to verify against the trust anchors');
    const chain = await verifyCertificateChain(x5c, opts.trustAnchors, (opts.clock ?? systemClock).now());
    if (!chain.ok) return fail('INPUT_INVALID', `JWS: signer certificate chain invalid: ${chain.error}`);
    const leafSpki = new Uint8Array(chain.value.leaf.publicKey.rawData);
    if (spki && !bytesEqual(spki, leafSpki))
      return fail('INPUT_INVALID', 'JWS: x5c leaf key differs from the expected key');
    spki = leafSpki;
  }
  if (!spki) return fail('INPUT_INVALID', 'JWS: no key to verify with (give publicKeySpki or trustAnchors)');
  const key = await importVerifyKey(spki);
  if (!key) return fail('INPUT_INVALID', 'JWS: verification key is not an EC P-256 or P-384 key');
  if (curveAlgorithm(key.curve) !== alg)
    return fail('INPUT_INVALID', `JWS: alg ${alg} does not match a ${key.curve} key`);
  if (!(await verifyRaw(key.key, key.curve, algorithmHash(alg), sig, utf8(`${h64}.${p64}`))))
    return fail('INPUT_INVALID', 'JWS: signature does not verify');
  const out: JwsHeader = {
    alg,
    typ: h['typ'],
    ...(typeof h['kid'] === 'string' ? { kid: h['kid'] } : {}),
    ...(h['x5c'] !== undefined ? { x5c: h['x5c'] as string[] } : {}),
  };
  return ok({ header: out, payload, ...(opts.trustAnchors && x5c ? { chain: x5c } : {}) });
}

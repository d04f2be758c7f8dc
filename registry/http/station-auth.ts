/**
 * Station request authentication (`Authorization: LS-Sig <JWS>`, core/hq/protocol.ts `signRequest`): step 1 from
 * the headers alone, step 2 the body digest once the body is read (registry/http/front-door.ts runs both).
 * Imports core, registry/common and registry/trust.
 */
import { createHash } from 'node:crypto';
import { err, ok, type Result } from '../../core/result.js';
import { importJwsKey, parseCompactJws, verifyParsedJws, type VerifyKey } from '../../core/hq/jws.js';
import {
  AUTH_SCHEME,
  MAX_CLOCK_SKEW_S,
  REQUEST_TYP,
  RequestClaimsSchema,
  StationIdSchema,
  zodMessage,
  type RequestClaims,
} from '../../core/hq/protocol.js';
import { audienceOf, type Caller, type RegistryContext } from '../common/context.js';
import { apiFail, storeError, type ApiError } from '../common/errors.js';
import { stationTrust } from '../stations/trust.js';
import type { StationTrust } from '../trust/verify.js';

/** A station request whose headers passed (signature, audience, method, path, time); the body is not read yet. */
export interface StationHeaderAuth {
  readonly trust: StationTrust;
  readonly claims: RequestClaims;
}

/** The longest `Authorization` header value read (a request JWS is ~600 characters). */
const MAX_AUTHORIZATION_CHARS = 8 * 1024;

/** Verifies the signatures of requests naming an unknown station, so that they cost what a known station's do. */
let decoyKey: Promise<VerifyKey> | null = null;
const decoy = (): Promise<VerifyKey> =>
  (decoyKey ??= globalThis.crypto.subtle
    .generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
    .then((k) => globalThis.crypto.subtle.exportKey('spki', k.publicKey))
    .then(async (spki) => (await importJwsKey(new Uint8Array(spki)))!));

/**
 * Station authentication, step 1, from the headers alone (`Authorization: LS-Sig <JWS>`, no body byte read):
 * well-formed (AUTH_MALFORMED), for this registry (`aud`, AUTH_AUDIENCE_MISMATCH), signed by the ENROLLED key of
 * the station named in `kid` (AUTH_UNKNOWN_STATION / AUTH_SIGNATURE_INVALID: the front door answers both the same),
 * the station not revoked (AUTH_STATION_REVOKED, only told to a valid signature), this method and request target
 * (AUTH_REQUEST_MISMATCH), `ts` within ±300 s (AUTH_CLOCK_SKEW), and then its nonce new for this station
 * (AUTH_REPLAY; stored now, kept ≥ 600 s): a captured header replayed with another body is refused before any
 * body byte is read or a large-body slot taken. Stores nothing but the nonce of a header that passed.
 * A revoked station is told so (AUTH_STATION_REVOKED) unless `o.allowRevoked` (only `GET /v1/station-status`,
 * whose signed answer says so).
 */
export async function authenticateStationHeaders(
  ctx: RegistryContext,
  authorization: string | undefined,
  method: string,
  target: string,
  o: { readonly allowRevoked?: boolean } = {},
): Promise<Result<StationHeaderAuth, ApiError>> {
  if (!authorization)
    return apiFail('AUTH_REQUIRED', `missing Authorization header (${AUTH_SCHEME} <signed request JWS>)`);
  const sp = authorization.indexOf(' ');
  if (sp < 0 || authorization.slice(0, sp) !== AUTH_SCHEME)
    return apiFail('AUTH_MALFORMED', `the Authorization scheme must be ${AUTH_SCHEME}`);
  const p = parseCompactJws(authorization.slice(sp + 1).trim(), 'request signature', MAX_AUTHORIZATION_CHARS);
  if (!p.ok) return apiFail('AUTH_MALFORMED', p.error.message);
  if (p.value.header.typ !== REQUEST_TYP)
    return apiFail('AUTH_MALFORMED', `request signature: typ must be ${REQUEST_TYP}`);
  const kid = StationIdSchema.safeParse(p.value.header.kid);
  if (!kid.success) return apiFail('AUTH_MALFORMED', 'request signature: kid must be the station id');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.value.payload));
  } catch {
    return apiFail('AUTH_MALFORMED', 'request signature: the payload is not JSON');
  }
  const claims = RequestClaimsSchema.safeParse(json);
  if (!claims.success) return apiFail('AUTH_MALFORMED', `request signature: ${zodMessage(claims.error)}`);
  const c = claims.data;
  // Before any database work: a request signed for another registry (captured there and replayed here).
  if (c.aud !== audienceOf(ctx))
    return apiFail(
      'AUTH_AUDIENCE_MISMATCH',
      `the request is signed for another registry (aud ${c.aud}); this registry's audience is the SHA-256 of its certificate, ${audienceOf(ctx)}`,
    );
  const trust = await stationTrust(ctx, kid.data, true);
  if (!trust.ok) {
    if (trust.error.code === 'AUTH_UNKNOWN_STATION') await verifyParsedJws(p.value, await decoy());
    return trust;
  }
  const v = await verifyParsedJws(p.value, trust.value.stationKey, 'request signature');
  if (!v.ok) return apiFail('AUTH_SIGNATURE_INVALID', `${v.error.message} (enrolled key of station ${kid.data})`);
  if (trust.value.row.revokedAt && o.allowRevoked !== true)
    return apiFail('AUTH_STATION_REVOKED', `station ${kid.data} was revoked at ${trust.value.row.revokedAt}`);
  if (c.method !== method.toUpperCase() || c.path !== target)
    return apiFail(
      'AUTH_REQUEST_MISMATCH',
      `the request signature is for ${c.method} ${c.path}, not ${method} ${target}`,
    );
  const now = ctx.clock.now();
  if (Math.abs(now.getTime() - new Date(c.ts).getTime()) > MAX_CLOCK_SKEW_S * 1000)
    return apiFail(
      'AUTH_CLOCK_SKEW',
      `the request time ${c.ts} differs from the registry time ${now.toISOString()} by more than ${MAX_CLOCK_SKEW_S} s`,
    );
  const expires = new Date(new Date(c.ts).getTime() + 2 * MAX_CLOCK_SKEW_S * 1000).toISOString();
  const fresh = await ctx.db.useNonce(trust.value.row.stationId, c.nonce, expires, now.toISOString());
  if (!fresh.ok) return err(storeError(fresh.error));
  if (!fresh.value) return apiFail('AUTH_REPLAY', 'this request signature was already used (replayed nonce)');
  return ok({ trust: trust.value, claims: c });
}

/**
 * Station authentication, step 2, once the body is read: the signature covers these exact bytes
 * (AUTH_REQUEST_MISMATCH).
 */
export async function authenticateStationBody(
  ctx: RegistryContext,
  h: StationHeaderAuth,
  body: Uint8Array,
): Promise<Result<Caller & { kind: 'station' }, ApiError>> {
  if (h.claims.bodySha256 !== createHash('sha256').update(body).digest('hex'))
    return apiFail('AUTH_REQUEST_MISMATCH', 'the request signature does not cover this body (bodySha256 differs)');
  return ok({ kind: 'station', trust: h.trust });
}

/**
 * The station's two commissioning documents, through the core functions both sides share
 * (core/hq/commission-issue.ts): the request it builds with its two token keys, and the answer it accepts only when
 * it verifies with the certificate the station PINS (the registry certificate, or the development HQ's root) and
 * answers exactly this request with a CA certificate for this station's CA key.
 */
import { fromBase64Url, sha256Hex } from '../../core/bytes.js';
import { fail } from '../../core/errors.js';
import {
  CommissionRequestSchema,
  MAX_COMMISSION_JWS_CHARS,
  type CommissionAnswer,
  type CommissionRequest,
  type CommissionTokenInfo,
} from '../../core/hq/commission.js';
import { parseCompactJws } from '../../core/hq/jws.js';
import { buildCommissionRequest, verifyCommissionAnswer } from '../../core/hq/commission-issue.js';
import type { Clock, Signer } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { STATION_CERT_DAYS } from '../config.js';

/** A request ready to send or carry: the compact JWS and its SHA-256 (hex, of its ASCII bytes). */
export interface BuiltRequest {
  readonly jws: string;
  readonly sha256: string;
}

/** Build and sign the commissioning request (station certificate issued by the CA key before its certificate exists). */
export async function buildRequest(p: {
  readonly stationId: string;
  readonly requestId: string;
  readonly organization: string;
  readonly caSigner: Signer;
  readonly stationSigner: Signer;
  readonly token: CommissionTokenInfo;
  readonly clock: Clock;
}): Promise<Result<BuiltRequest>> {
  const r = await buildCommissionRequest({ ...p, stationCertDays: STATION_CERT_DAYS });
  if (!r.ok) return r;
  return ok({ jws: r.value.jws, sha256: r.value.requestSha256 });
}

/** SHA-256 (hex) of a request JWS, as the answer names it and the officer compares it. */
export function requestSha256(jws: string): Promise<string> {
  return sha256Hex(jws);
}

/** A verified answer, its certificates decoded. */
export interface VerifiedAnswer {
  readonly answer: CommissionAnswer;
  readonly caCertificate: Uint8Array;
  /** HQ CA first, HQ root last. */
  readonly hqChain: readonly Uint8Array[];
  readonly hqRoot: Uint8Array;
}

/**
 * Verify an answer with the pinned certificate (never a key from the message) against the request it must answer
 * (station, request id and hash, station certificate, a CA certificate for this CA key, the path to the HQ root)
 * and, when given, the HQ root the operator pinned (`--hq-root`): COMMISSION_ANSWER_INVALID naming the failed check.
 */
export async function verifyAnswer(p: {
  readonly answerJws: string;
  readonly pinned: Uint8Array;
  readonly requestJws: string;
  readonly caSigner: Signer;
  readonly hqRoot: Uint8Array | null;
  readonly clock: Clock;
}): Promise<Result<VerifiedAnswer>> {
  const req = parseOwnRequest(p.requestJws);
  if (!req.ok) return req;
  const v = await verifyCommissionAnswer(p.answerJws, {
    pinnedSignerCert: p.pinned,
    stationId: req.value.request.stationId,
    requestId: req.value.request.requestId,
    requestSha256: await requestSha256(p.requestJws),
    stationCertificate: req.value.stationCertificate,
    caPublicKeySpki: p.caSigner.publicKeySpki,
    ...(p.hqRoot ? { hqRootSha256: await sha256Hex(p.hqRoot) } : {}),
    now: p.clock.now(),
  });
  if (!v.ok) return v;
  return ok({ ...v.value, hqRoot: v.value.hqChain[v.value.hqChain.length - 1]! });
}

/** The station certificate (DER) a request carries (the station's own request: parsed, not verified again). */
export function requestStationCertificate(requestJws: string): Result<Uint8Array> {
  const r = parseOwnRequest(requestJws);
  return r.ok ? ok(r.value.stationCertificate) : r;
}

function parseOwnRequest(requestJws: string): Result<{ request: CommissionRequest; stationCertificate: Uint8Array }> {
  const parsed = parseCompactJws(requestJws, 'commissioning request', MAX_COMMISSION_JWS_CHARS);
  if (!parsed.ok) return fail('CONFIG_INVALID', `the kept ${parsed.error.message}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(parsed.value.payload));
  } catch {
    return fail('CONFIG_INVALID', 'the kept commissioning request: the payload is not JSON');
  }
  const r = CommissionRequestSchema.safeParse(json);
  if (!r.success) return fail('CONFIG_INVALID', 'the kept commissioning request is not a commissioning request');
  return ok({ request: r.data, stationCertificate: fromBase64Url(r.data.stationCertificate) });
}

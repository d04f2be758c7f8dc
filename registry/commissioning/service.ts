/**
 * Station commissioning at headquarters (docs/registry-api.md "Commissioning"; the contract is core/hq/commission.ts):
 * one-time enrolment codes (`registry commission-station --id S`), the online commissioning of a station with a code
 * (`POST /v1/stations/commission`) and the hand-carried one (`registry commission-station --request R --out A`).
 * Both end in `commission`: ONE transaction checks the code (or none, for the admin), issues the station CA with the
 * HQ CA key, enrols the station with its full chain, records the station CA, consumes the code, stores the answer and
 * appends `station.commissioned` to the lifecycle log. The same request again gets the stored answer (resumable).
 * Imports core, native/registry-store (the stations rows in a transaction), registry/common, registry/store, ./.
 */
import { sha256Hex } from '../../core/bytes.js';
import {
  checkCommissionRequest,
  issueStationCa,
  signCommissionAnswer,
  type VerifiedCommissionRequest,
} from '../../core/hq/commission-issue.js';
import type { Signer } from '../../core/ports.js';
import { ENROLMENT_CODE_RE, normaliseEnrolmentCode, type CommissionBody } from '../../core/hq/commission.js';
import { StationIdSchema, WorkOrderSchema } from '../../core/hq/protocol.js';
import { toPem } from '../../core/pki/pem.js';
import { ok, type Result } from '../../core/result.js';
import { insertStationIn } from '../../native/registry-store/stations-sql.js';
import { apiFail, type ApiError } from '../common/errors.js';
import { now, type CommissioningSettings, type RegistryContext } from '../common/context.js';
import { transact } from '../common/tx.js';
import { appendEvent } from '../store/lifecycle.js';
import * as cs from './store.js';

/** Largest validity of an enrolment code (hours; the CLI's default is registry/commissioning/commands.ts's). */
export const MAX_CODE_HOURS = 24 * 30;

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** A fresh enrolment code: 15 random bytes = 120 bits as 24 base32 characters, "LS-" + 6 groups of 4. */
export function newEnrolmentCode(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(15));
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  const code = `LS-${out.match(/.{4}/g)!.join('-')}`;
  if (!ENROLMENT_CODE_RE.test(code)) throw new Error('newEnrolmentCode: bad encoding'); // a bug
  return code;
}

/** The commissioning settings with the HQ CA open. */
export interface OpenCommissioning extends CommissioningSettings {
  readonly hq: { readonly signer: Signer; readonly chain: readonly Uint8Array[]; readonly rootSha256: string };
}

/** The commissioning settings, or HQ_CA_UNAVAILABLE saying what to run. */
export function commissioningOf(ctx: RegistryContext): Result<OpenCommissioning, ApiError> {
  const c = ctx.lifecycle?.commissioning;
  if (!c) return apiFail('HQ_CA_UNAVAILABLE', 'this registry was started without its HQ CA (registry token)');
  if (!c.hqCa.ok) return apiFail('HQ_CA_UNAVAILABLE', c.hqCa.error.message);
  return ok({ ...c, hq: c.hqCa.value });
}

/**
 * Issue a one-time enrolment code for station `stationId` (not enrolled yet) and its work orders, valid `validHours`.
 * Only its SHA-256 is stored; the code is returned once, to be printed to the admin and never logged.
 */
export async function issueEnrolmentCode(
  ctx: RegistryContext,
  o: { stationId: string; workOrders: readonly string[]; validHours: number },
): Promise<Result<{ code: string; stationId: string; expiresAt: string; workOrders: string[] }, ApiError>> {
  if (!StationIdSchema.safeParse(o.stationId).success)
    return apiFail('BODY_INVALID', 'station id: expected 1..64 of A-Z a-z 0-9 . _ -');
  for (const w of o.workOrders)
    if (!WorkOrderSchema.safeParse(w).success)
      return apiFail('BODY_INVALID', `work order ${JSON.stringify(w)} is invalid`);
  if (!Number.isInteger(o.validHours) || o.validHours < 1 || o.validHours > MAX_CODE_HOURS)
    return apiFail('BODY_INVALID', `validity: expected 1..${MAX_CODE_HOURS} hours`);
  const code = newEnrolmentCode();
  const codeSha256 = await sha256Hex(code);
  const createdAt = now(ctx);
  const expiresAt = new Date(ctx.clock.now().getTime() + o.validHours * 3_600_000).toISOString();
  const workOrders = [...new Set(o.workOrders)].sort();
  return transact(ctx.db.sql, async (x) => {
    const enrolled = await x.all('SELECT revoked_at FROM stations WHERE station_id = ?', [o.stationId]);
    if (enrolled.length)
      return apiFail('STATION_CONFLICT', `station ${o.stationId} is already enrolled (a revoked id stays revoked)`);
    await cs.insertCode(x, { codeSha256, stationId: o.stationId, workOrders, createdAt, expiresAt });
    // The code's hash prefix only: enough to tell codes apart in the log, useless to an attacker.
    await appendEvent(x, createdAt, 'station.enrolment-code-issued', {
      stationId: o.stationId,
      codeId: codeSha256.slice(0, 12),
      expiresAt,
      workOrders,
      actor: 'admin',
    });
    return ok({ code, stationId: o.stationId, expiresAt, workOrders });
  });
}

/** What a commissioning answers: the answer JWS, whether it is a stored one, and what the admin compares. */
export interface CommissionOutcome {
  readonly answer: string;
  readonly repeated: boolean;
  readonly stationId: string;
  readonly requestSha256: string;
  readonly stationCaSha256: string;
}

/** The one generic refusal of a code: unknown, expired, used (for another request) or for another station. */
const refused = () =>
  apiFail<never>('COMMISSION_REFUSED', 'the enrolment code is not valid for this request (unknown, expired or used)');

/**
 * `POST /v1/stations/commission`: the code authorises. The request is checked first (no database, no code needed),
 * then everything else in one transaction (`commission`).
 */
export async function commissionWithCode(
  ctx: RegistryContext,
  body: CommissionBody,
): Promise<Result<CommissionOutcome, ApiError>> {
  const settings = commissioningOf(ctx);
  if (!settings.ok) return settings;
  const code = normaliseEnrolmentCode(body.code);
  const verified = await checkCommissionRequest(body.request, {
    organization: settings.value.organization,
    now: ctx.clock.now(),
  });
  if (!verified.ok) return apiFail('COMMISSION_REQUEST_INVALID', `${verified.error.code}: ${verified.error.message}`);
  if (!code) return refused();
  return commission(ctx, verified.value, { codeSha256: await sha256Hex(code) });
}

/**
 * The hand-carried path (`registry commission-station --id S --request R`): the admin at headquarters is the
 * authority, `stationId` must be the request's.
 */
export async function commissionByAdmin(
  ctx: RegistryContext,
  o: { stationId: string; requestJws: string; workOrders: readonly string[] },
): Promise<Result<CommissionOutcome, ApiError>> {
  const settings = commissioningOf(ctx);
  if (!settings.ok) return settings;
  for (const w of o.workOrders)
    if (!WorkOrderSchema.safeParse(w).success)
      return apiFail('BODY_INVALID', `work order ${JSON.stringify(w)} is invalid`);
  const verified = await checkCommissionRequest(o.requestJws.trim(), {
    organization: settings.value.organization,
    expectStationId: o.stationId,
    now: ctx.clock.now(),
  });
  if (!verified.ok) return apiFail('COMMISSION_REQUEST_INVALID', `${verified.error.code}: ${verified.error.message}`);
  return commission(ctx, verified.value, { workOrders: [...new Set(o.workOrders)].sort() });
}

type Authority = { readonly codeSha256: string } | { readonly workOrders: readonly string[] };

/** The transaction of both paths. */
async function commission(
  ctx: RegistryContext,
  verified: VerifiedCommissionRequest,
  by: Authority,
): Promise<Result<CommissionOutcome, ApiError>> {
  const settings = commissioningOf(ctx);
  if (!settings.ok) return settings;
  const { hq, stationCaValidityDays, stationCaEku } = settings.value;
  const stationId = verified.request.stationId;
  const at = ctx.clock.now();
  const stored = (answer: string, stationCaSha256: string): CommissionOutcome => ({
    answer,
    repeated: true,
    stationId,
    requestSha256: verified.requestSha256,
    stationCaSha256,
  });
  const r = await transact(ctx.db.sql, async (x): Promise<Result<CommissionOutcome, ApiError>> => {
    let workOrders: readonly string[];
    if ('codeSha256' in by) {
      const c = await cs.codeByHash(x, by.codeSha256);
      if (!c || c.stationId !== stationId) return refused();
      if (c.usedAt) {
        if (c.requestSha256 !== verified.requestSha256 || !c.answerJws) return refused();
        const ca = await cs.stationCaOf(x, stationId);
        return ok(stored(c.answerJws, ca?.sha256 ?? ''));
      }
      if (Date.parse(c.expiresAt) <= at.getTime()) return refused();
      workOrders = c.workOrders;
    } else workOrders = by.workOrders;
    const existing = await cs.stationCaOf(x, stationId);
    if (existing) {
      if (existing.requestSha256 === verified.requestSha256 && !('codeSha256' in by))
        return ok(stored(existing.answerJws, existing.sha256));
      return apiFail('STATION_CONFLICT', `station ${stationId} is already commissioned (a revoked id stays revoked)`);
    }
    const ca = await issueStationCa({
      hqIssuer: { signer: hq.signer, certificate: hq.chain[0]! },
      verified,
      validityDays: stationCaValidityDays,
      extendedKeyUsage: stationCaEku,
      now: at,
    });
    if (!ca.ok)
      return ca.error.code === 'COMMISSION_STATION_CERT_INVALID'
        ? apiFail('COMMISSION_REQUEST_INVALID', `${ca.error.code}: ${ca.error.message}`)
        : apiFail('INTERNAL', `the station CA could not be issued: ${ca.error.code}: ${ca.error.message}`);
    const answer = await signCommissionAnswer({
      signer: ctx.signer,
      signerCertificate: ctx.registryChain[0]!,
      registryId: ctx.registryId,
      verified,
      caCertificate: ca.value.der,
      hqChain: hq.chain,
      workOrders,
      now: at,
    });
    if (!answer.ok)
      return apiFail('INTERNAL', `the answer could not be signed: ${answer.error.code}: ${answer.error.message}`);
    const chain = [verified.stationCertificate, ca.value.der, ...hq.chain];
    const created = await insertStationIn(x, {
      stationId,
      chainPem: chain.map((d) => toPem(d, 'CERTIFICATE')).join(''),
      certificateSha256: verified.stationCertificateSha256,
      issuingCaSha256: ca.value.sha256,
      rootSha256: await sha256Hex(hq.chain[hq.chain.length - 1]!),
      workOrders: [...workOrders],
      enrolledAt: at.toISOString(),
    });
    if (!created)
      return apiFail('STATION_CONFLICT', `station ${stationId} is already enrolled (a revoked id stays revoked)`);
    await cs.insertStationCa(x, {
      serial: ca.value.serialNumber.toLowerCase(),
      stationId,
      sha256: ca.value.sha256,
      certificatePem: toPem(ca.value.der, 'CERTIFICATE'),
      requestSha256: verified.requestSha256,
      answerJws: answer.value.jws,
      issuedAt: at.toISOString(),
      notAfter: ca.value.notAfter,
    });
    if ('codeSha256' in by) {
      const used = await cs.consumeCode(x, by.codeSha256, {
        usedAt: at.toISOString(),
        requestSha256: verified.requestSha256,
        answerJws: answer.value.jws,
      });
      if (!used) return refused(); // cannot happen inside the serialised transaction; never half-written
    }
    await appendEvent(x, at.toISOString(), 'station.commissioned', {
      stationId,
      requestId: verified.request.requestId,
      requestSha256: verified.requestSha256,
      stationCaSerial: ca.value.serialNumber.toLowerCase(),
      stationCaSha256: ca.value.sha256,
      stationCertificateSha256: verified.stationCertificateSha256,
      token: verified.request.token,
      via: 'codeSha256' in by ? 'online' : 'hand-carried',
      actor: 'codeSha256' in by ? 'enrolment-code' : 'admin',
    });
    await ctx.lifecycle?.failpoint?.('commission');
    return ok({
      answer: answer.value.jws,
      repeated: false,
      stationId,
      requestSha256: verified.requestSha256,
      stationCaSha256: ca.value.sha256,
    });
  });
  if (r.ok && !r.value.repeated) {
    ctx.logger.log('info', 'station commissioned', {
      stationId,
      requestSha256: r.value.requestSha256,
      stationCaSha256: r.value.stationCaSha256,
    });
  }
  return r;
}

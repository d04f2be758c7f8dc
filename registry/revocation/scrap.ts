/**
 * Station revocation events (POST /v1/revocations and a bundle's `revocations`): scrap events revoke a device the
 * station provisioned, failed-issuance events (./failed-issuance.ts) revoke a certificate issued for a run that
 * ended without a record. Imports core, registry/common, registry/trust, registry/store and ./crl.ts.
 */
import { SCRAP_TYP, ScrapIdent, ScrapPayloadSchema, type ScrapPayload } from '../../core/hq/scrap.js';
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../core/canonical.js';
import { normaliseSerial, transition } from '../../core/lifecycle.js';
import { ok, type Result } from '../../core/result.js';
import { parseCompactJws } from '../../core/hq/jws.js';
import {
  FAILED_ISSUANCE_TYP,
  MAX_REVOCATION_EVENT_CHARS,
  MAX_REVOCATION_EVENTS,
  zodMessage,
  type RevocationRejectReason,
  type RevocationResult,
} from '../../core/hq/protocol.js';
import { verifyStationSigned, type StationTrust } from '../trust/verify.js';
import { applyFailedIssuance, verifyFailedIssuance, type CheckedFailedIssuance } from './failed-issuance.js';
import * as st from '../store/lifecycle.js';
import { apiFail, type ApiError } from '../common/errors.js';
import { transact } from '../common/tx.js';
import { applyEvent } from '../store/device-transition.js';
import { now, type LifecycleContext } from '../common/context.js';
import { refreshCrl } from './crl.js';

/** Most scrap and failed-issuance events in one POST /v1/revocations. */
export const MAX_SCRAP_REQUESTS = MAX_REVOCATION_EVENTS;
const MAX_SCRAP_JWS_CHARS = MAX_REVOCATION_EVENT_CHARS;

/** Why a scrap or failed-issuance event was refused (core/hq/protocol.ts REVOCATION_REJECT_REASONS). */
export type ScrapRejectReason = RevocationRejectReason;
/** The answer per event (core/hq/protocol.ts RevocationResultSchema). */
export type ScrapResult = RevocationResult;

const scrapKey = (stationId: string, requestId: string): string => `scrap.${stationId}.${requestId}`;

/** Verify one scrap event of `trust`'s station (signature, typ, x5c, schema, station id); no database access. */
async function verifyScrapJws(
  trust: StationTrust,
  jws: string,
): Promise<{ ok: true; kind: 'scrap'; payload: ScrapPayload; sha256: string } | { ok: false; result: ScrapResult }> {
  let requestId: string | null = null;
  const reject = (reason: ScrapRejectReason, message: string) =>
    ({ ok: false, result: { requestId, status: 'rejected', reason, message } }) as const;
  const p = parseCompactJws(jws, 'scrap event', MAX_SCRAP_JWS_CHARS);
  if (!p.ok) return reject(p.error.kind === 'malformed' ? 'malformed' : 'header-invalid', p.error.message);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.value.payload));
  } catch {
    json = undefined;
  }
  const rid = (json as { requestId?: unknown } | undefined)?.requestId;
  if (typeof rid === 'string' && ScrapIdent.safeParse(rid).success) requestId = rid;
  if (p.value.header.typ !== SCRAP_TYP)
    return reject('header-invalid', `scrap event: typ is ${String(p.value.header.typ)}, expected ${SCRAP_TYP}`);
  const leaf = p.value.header.x5c?.[0];
  if (leaf === undefined) return reject('signer-mismatch', 'scrap event: no x5c station certificate');
  // The payload is only read here to learn when the event was made; nothing acts on it before the signature checks.
  if (json === undefined) return reject('payload-invalid', 'scrap event: the payload is not UTF-8 JSON');
  const r = ScrapPayloadSchema.safeParse(json);
  if (!r.success) return reject('payload-invalid', `scrap event: ${zodMessage(r.error)}`);
  // The enrolled key, or one replaced by a station key rotation after the event was made (scrappedAt).
  const v = verifyStationSigned(trust, p.value, 'scrap event', r.data.scrappedAt);
  if (!v.ok) return reject(v.error.reason, v.error.message);
  if (r.data.stationId !== trust.row.stationId)
    return reject(
      'station-mismatch',
      `scrap event: made by station ${r.data.stationId}, submitted by ${trust.row.stationId}`,
    );
  return {
    ok: true,
    kind: 'scrap',
    payload: r.data,
    sha256: createHash('sha256').update(p.value.payload).digest('hex'),
  };
}

/** Verify one event of POST /v1/revocations: a failed-issuance event by its typ, anything else as a scrap event. */
async function verifyRevocationEvent(
  trust: StationTrust,
  jws: string,
): Promise<
  | Awaited<ReturnType<typeof verifyScrapJws>>
  | ({ ok: true } & CheckedFailedIssuance)
  | { ok: false; result: ScrapResult }
> {
  const p = parseCompactJws(jws, 'revocation event', MAX_SCRAP_JWS_CHARS);
  if (p.ok && p.value.header.typ === FAILED_ISSUANCE_TYP) return verifyFailedIssuance(trust, p.value);
  return verifyScrapJws(trust, jws);
}

/**
 * Station revocation events (POST /v1/revocations, and the `revocations` of a bundle):
 *
 * - scrap events (typ line-station-scrap+jws, payload line-station/scrap/v1) must be signed by the caller's ENROLLED
 *   key with x5c leaf = its enrolled certificate, name the caller as stationId, and name an active credential of a
 *   device this station provisioned (same serial number and chip id; certificate hash if given). Accepted ones
 *   revoke the device (role station, reason cessationOfOperation) with their `device.scrapped` events;
 * - failed-issuance events (typ line-station-failed-issuance+jws, ./failed-issuance.ts) carry a certificate the
 *   station's issuing CA issued for a run that ended without a record; accepted ones are revoked at once
 *   (`failed_issuances`, `certificate.failed-issuance` event).
 *
 * All in ONE transaction; the station's CRL is re-signed afterwards. Idempotent: a repeated delivery answers
 * `duplicate` and changes nothing (scrap: by (station, requestId); failed issuance: by (station, certificate)).
 */
export async function stationScrapRevocations(
  ctx: LifecycleContext,
  trust: StationTrust,
  requests: readonly string[],
  via: 'online' | 'bundle' = 'online',
): Promise<Result<{ results: ScrapResult[] }, ApiError>> {
  if (requests.length > MAX_SCRAP_REQUESTS)
    return apiFail('BODY_INVALID', `at most ${MAX_SCRAP_REQUESTS} revocation events per request`);
  const stationId = trust.row.stationId;
  const checked: Awaited<ReturnType<typeof verifyRevocationEvent>>[] = [];
  for (const jws of requests) checked.push(await verifyRevocationEvent(trust, jws));
  const r = await transact(ctx.db.sql, async (x) => {
    const at = now(ctx);
    const results: ScrapResult[] = [];
    for (const c of checked) {
      if (!c.ok) {
        results.push(c.result);
        continue;
      }
      if (c.kind === 'failed-issuance') {
        results.push(await applyFailedIssuance(x, at, stationId, c, via));
        continue;
      }
      const p = c.payload;
      const reject = (reason: ScrapRejectReason, message: string) =>
        results.push({ requestId: p.requestId, status: 'rejected', reason, message });
      if ((await st.getSetting(x, scrapKey(stationId, p.requestId))) !== null) {
        results.push({ requestId: p.requestId, status: 'duplicate' });
        continue;
      }
      const serial = normaliseSerial(p.certificateSerial);
      const cred = await st.credentialBySerial(x, stationId, serial);
      const d = cred ? await st.findDevice(x, cred.serialNumber) : null;
      if (!cred || !d || d.stationId !== stationId) {
        reject('unknown-credential', `certificate ${serial} is not a credential of a device of station ${stationId}`);
        continue;
      }
      if (
        d.serialNumber !== p.serialNumber ||
        d.chipId !== p.chipId ||
        (p.certificateSha256 !== null && cred.sha256 !== p.certificateSha256)
      ) {
        reject('device-mismatch', `certificate ${serial} belongs to another board than the scrap event names`);
        continue;
      }
      if (cred.status !== 'active') {
        reject('credential-not-active', `certificate ${serial} is ${cred.status} (device ${d.state})`);
        continue;
      }
      const t = transition(d.state, 'revoke', 'station');
      if (!t.ok) {
        reject('transition-invalid', t.error.message);
        continue;
      }
      const done = await applyEvent(x, at, d, 'revoke', 'station', 'cessationOfOperation');
      if (!done.ok) return done; // not reached: the transition was checked above
      await st.appendEvent(x, at, 'device.scrapped', {
        serialNumber: d.serialNumber,
        chipId: d.chipId,
        stationId,
        requestId: p.requestId,
        recordId: p.recordId,
        certSerial: serial,
        note: p.note,
        supervisor: p.supervisor,
        operator: p.operator,
        scrappedAt: p.scrappedAt,
        scrapEventSha256: c.sha256,
      });
      await st.setSetting(x, scrapKey(stationId, p.requestId), canonicalJson({ serialNumber: d.serialNumber, at }));
      results.push({ requestId: p.requestId, status: 'revoked' });
    }
    return ok(results);
  });
  if (!r.ok) return r;
  const revoked = r.value.filter((x) => x.status === 'revoked').length;
  if (revoked) {
    ctx.logger.log('info', 'station revocation events applied (scrapped devices, failed issuances)', {
      stationId,
      revoked,
    });
    const crl = await refreshCrl(ctx, stationId);
    if (!crl.ok)
      ctx.logger.log('warn', 'CRL not re-signed after station revocation events', { stationId, code: crl.error.code });
  }
  return ok({ results: r.value });
}

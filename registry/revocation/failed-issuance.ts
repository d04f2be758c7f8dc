/**
 * Failed-issuance events at the registry (docs/lifecycle.md "Failed issuance"): a certificate a station issued for a
 * run that ended without a record. No record, device or credential exists for it here, so the event carries the
 * certificate; it is accepted only when the station's key signed the event and the station's issuing CA issued the
 * certificate, and it is then revoked at once (table `failed_issuances`, reason cessationOfOperation): the station's
 * CRL lists it and OCSP answers revoked. Idempotent by (station, certificate serial).
 */
import { createHash } from 'node:crypto';
import { fromBase64Url } from '../../core/bytes.js';
import { FailedIssuancePayloadSchema, type FailedIssuancePayload } from '../../core/failed-issuance.js';
import { normaliseSerial } from '../../core/lifecycle.js';
import { toPem } from '../../core/pki/pem.js';
import type { SqlExec } from '../../core/hq/registry-db.js';
import type { ParsedJws } from '../../core/hq/jws.js';
import { zodMessage, type RevocationRejectReason, type RevocationResult } from '../../core/hq/protocol.js';
import { checkDeviceCertificate } from '../trust/records.js';
import { verifyStationSigned, type StationTrust } from '../trust/verify.js';
import * as st from '../store/lifecycle.js';

/** A failed-issuance event that verified (signature, schema, certificate); nothing is stored yet. */
export interface CheckedFailedIssuance {
  readonly kind: 'failed-issuance';
  readonly payload: FailedIssuancePayload;
  /** SHA-256 (hex) of the signed payload bytes. */
  readonly sha256: string;
  readonly certDer: Uint8Array;
  readonly certSerial: string;
}

type Rejected = { readonly ok: false; readonly result: RevocationResult };

/**
 * Verify one failed-issuance event of `trust`'s station (typ already checked by the caller): JSON payload schema,
 * the station's key (or one replaced by a rotation after `failedAt`), the station id, and the certificate: it
 * parses, its SHA-256 and serial are the event's, and the station's issuing CA issued it (signature, names).
 * No database access.
 */
export function verifyFailedIssuance(
  trust: StationTrust,
  jws: ParsedJws,
): ({ readonly ok: true } & CheckedFailedIssuance) | Rejected {
  let requestId: string | null = null;
  const reject = (reason: RevocationRejectReason, message: string): Rejected => ({
    ok: false,
    result: { requestId, status: 'rejected', reason, message },
  });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(jws.payload));
  } catch {
    return reject('payload-invalid', 'failed-issuance event: the payload is not UTF-8 JSON');
  }
  const rid = (json as { requestId?: unknown } | null)?.requestId;
  if (typeof rid === 'string' && /^failed-issuance:[0-9a-f]{1,64}$/.test(rid)) requestId = rid;
  if (jws.header.x5c?.[0] === undefined) return reject('signer-mismatch', 'failed-issuance event: no x5c');
  const r = FailedIssuancePayloadSchema.safeParse(json);
  if (!r.success) return reject('payload-invalid', `failed-issuance event: ${zodMessage(r.error)}`);
  const p = r.data;
  const v = verifyStationSigned(trust, jws, 'failed-issuance event', p.failedAt);
  if (!v.ok) return reject(v.error.reason, v.error.message);
  if (p.stationId !== trust.row.stationId)
    return reject(
      'station-mismatch',
      `failed-issuance event: made by station ${p.stationId}, submitted by ${trust.row.stationId}`,
    );
  let der: Uint8Array;
  try {
    der = fromBase64Url(p.certificate);
  } catch {
    return reject('certificate-invalid', 'failed-issuance event: the certificate is not base64url');
  }
  if (createHash('sha256').update(der).digest('hex') !== p.certificateSha256)
    return reject('certificate-invalid', 'failed-issuance event: certificateSha256 is not the hash of the certificate');
  // Issued by this station's issuing CA, checked when the station says the run failed (the certificate was valid then).
  const c = checkDeviceCertificate(trust, der, new Date(p.failedAt));
  if (!c.ok) return reject('certificate-invalid', `failed-issuance event: the certificate ${c.error}`);
  const serial = normaliseSerial(c.value.serialNumber);
  if (serial !== normaliseSerial(p.certificateSerial))
    return reject(
      'certificate-invalid',
      `failed-issuance event: names serial ${p.certificateSerial}, the certificate has ${serial}`,
    );
  return {
    ok: true,
    kind: 'failed-issuance',
    payload: p,
    sha256: createHash('sha256').update(jws.payload).digest('hex'),
    certDer: der,
    certSerial: serial,
  };
}

/**
 * Revoke a verified failed issuance inside the caller's transaction: `duplicate` when this certificate's failed
 * issuance is stored already, `certificate-in-record` when a record of this station holds the certificate
 * (it was not a failed issuance), otherwise a `failed_issuances` row (revoked at `at`) and a
 * `certificate.failed-issuance` lifecycle event.
 */
export async function applyFailedIssuance(
  x: SqlExec,
  at: string,
  stationId: string,
  c: CheckedFailedIssuance,
  via: 'online' | 'bundle',
): Promise<RevocationResult> {
  const p = c.payload;
  if (await st.failedIssuance(x, stationId, c.certSerial)) return { requestId: p.requestId, status: 'duplicate' };
  if (await st.credentialBySerial(x, stationId, c.certSerial))
    return {
      requestId: p.requestId,
      status: 'rejected',
      reason: 'certificate-in-record',
      message: `certificate ${c.certSerial} is the credential of a record of station ${stationId}: it was not a failed issuance`,
    };
  await st.insertFailedIssuance(x, {
    stationId,
    certSerial: c.certSerial,
    requestId: p.requestId,
    sha256: p.certificateSha256,
    certPem: toPem(c.certDer, 'CERTIFICATE'),
    chipId: p.chipId,
    serialNumber: p.serialNumber,
    workOrder: p.workOrder,
    runId: p.runId,
    failureCode: p.failure.code,
    failureStep: p.failure.step,
    reason: p.reason,
    issuedAt: p.issuedAt,
    failedAt: p.failedAt,
    revokedAt: at,
    eventSha256: c.sha256,
    via,
  });
  await st.appendEvent(
    x,
    at,
    'certificate.failed-issuance',
    {
      stationId,
      certSerial: c.certSerial,
      certificateSha256: p.certificateSha256,
      serialNumber: p.serialNumber,
      chipId: p.chipId,
      workOrder: p.workOrder,
      requestId: p.requestId,
      failureCode: p.failure.code,
      failureStep: p.failure.step,
      reason: p.reason,
      issuedAt: p.issuedAt,
      failedAt: p.failedAt,
      eventSha256: c.sha256,
      via,
    },
    p.runId,
  );
  return { requestId: p.requestId, status: 'revoked' };
}

/**
 * The failed-issuance event (docs/formats.md "Failed-issuance event"): a certificate the station's issuing CA issued
 * for a run that ended without a record (install or read-back failed, baseline or lock failed, record signing
 * failed, a supervisor scrapped the board mid-run). The station queues it in the transaction that fails the run
 * (native/store failRun), signs the canonical JSON payload with the station key (compact JWS, typ
 * `line-station-failed-issuance+jws`, x5c = station chain) and sends it like a scrap event to `POST
 * /v1/revocations` (or in a bundle). No record exists at headquarters for such a certificate, so the event carries
 * the certificate itself; the registry checks it was issued by that station's issuing CA, lists it on the CRL and
 * answers OCSP `revoked` (reason cessationOfOperation). Pure: the station store and the registry both import it.
 */
import { z } from 'zod';
import { canonicalJson } from './canonical.js';
import type { StepName } from './model.js';

export const FAILED_ISSUANCE_SCHEMA = 'line-station/failed-issuance/v1';
export const FAILED_ISSUANCE_TYP = 'line-station-failed-issuance+jws';
/** RFC 5280 reason of a failed issuance: the certificate was never put in service. */
export const FAILED_ISSUANCE_REASON = 'cessationOfOperation';
/** Longest failure message carried (longer ones are cut). */
export const FAILED_ISSUANCE_MAX_MESSAGE = 512;

const Text = z.string().min(1).max(256);
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
const Iso = z.iso.datetime();

export const FailedIssuancePayloadSchema = z
  .object({
    schema: z.literal(FAILED_ISSUANCE_SCHEMA),
    /** `failed-issuance:<certificateSerial>`: one event per certificate, the idempotency key at the registry. */
    requestId: z.string().regex(/^failed-issuance:[0-9a-f]{1,64}$/, 'expected failed-issuance:<serial hex>'),
    stationId: Text,
    runId: Text,
    chipId: Text,
    /** The board's serial number (not the certificate's). */
    serialNumber: Text,
    workOrder: Text,
    /** Certificate serial number, lower-case hex without leading zero bytes' separators (as the station logs it). */
    certificateSerial: z.string().regex(/^[0-9a-f]{1,64}$/, 'expected lower-case hex'),
    certificateSha256: Hex64,
    /** The certificate, DER, base64url without padding. */
    certificate: z
      .string()
      .min(1)
      .max(16 * 1024)
      .regex(/^[A-Za-z0-9_-]+$/, 'expected base64url'),
    reason: z.literal(FAILED_ISSUANCE_REASON),
    /** Why the run failed: its error code, the step, and the message (cut to 512 characters). */
    failure: z
      .object({
        code: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'expected an error code'),
        step: Text,
        message: z.string().max(FAILED_ISSUANCE_MAX_MESSAGE),
      })
      .strict(),
    issuedAt: Iso,
    failedAt: Iso,
  })
  .strict();
export type FailedIssuancePayload = z.infer<typeof FailedIssuancePayloadSchema>;

/** The request id of the failed-issuance event of a certificate. */
export const failedIssuanceRequestId = (certificateSerial: string): string =>
  `failed-issuance:${certificateSerial.toLowerCase()}`;

/** The event payload as signed: canonical JSON (docs/formats.md). */
export function failedIssuancePayloadJson(p: {
  readonly stationId: string;
  readonly runId: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly workOrder: string;
  readonly certificateSerial: string;
  readonly certificateSha256: string;
  /** base64url DER */
  readonly certificate: string;
  readonly failure: { readonly code: string; readonly step: StepName; readonly message: string };
  readonly issuedAt: string;
  readonly failedAt: string;
}): string {
  const payload: FailedIssuancePayload = {
    schema: FAILED_ISSUANCE_SCHEMA,
    requestId: failedIssuanceRequestId(p.certificateSerial),
    stationId: p.stationId,
    runId: p.runId,
    chipId: p.chipId,
    serialNumber: p.serialNumber,
    workOrder: p.workOrder,
    certificateSerial: p.certificateSerial.toLowerCase(),
    certificateSha256: p.certificateSha256.toLowerCase(),
    certificate: p.certificate,
    reason: FAILED_ISSUANCE_REASON,
    failure: {
      code: p.failure.code,
      step: p.failure.step,
      message: p.failure.message.slice(0, FAILED_ISSUANCE_MAX_MESSAGE),
    },
    issuedAt: p.issuedAt,
    failedAt: p.failedAt,
  };
  return canonicalJson(payload);
}

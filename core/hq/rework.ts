/**
 * A failed rework (docs/lifecycle.md "Failed rework"): a supervisor-approved re-provisioning (a rotation run) erased
 * the board's identity (its `zeroized` checkpoint) and then failed for good. The board no longer holds the credential
 * of its record, while headquarters still shows that credential active, so the run's failure queues its revocation:
 * a scrap event (core/hq/scrap.ts, schema line-station/scrap/v1, reason cessationOfOperation) for the superseded
 * record's certificate, built here and queued by the Store's failRun in the transaction that fails the run, signed
 * with the station key afterwards and sent like any scrap event (POST /v1/revocations or a bundle). Pure.
 */
import { canonicalJson } from '../canonical.js';
import { SCRAP_SCHEMA, ScrapPayloadSchema, type ScrapPayload } from './scrap.js';

/** The request id of a failed rework's revocation: one per run (so it is queued at most once). */
export function reworkRevocationRequestId(runId: string): string {
  return `rework-failed:${runId}`;
}

/** The local `reason` of such a request (revocation_requests.reason); the event itself says cessationOfOperation. */
export const REWORK_REVOCATION_REASON = 'rework-failed';

/** Longest note carried in the event (the scrap schema allows 1024 characters). */
const MAX_NOTE = 1024;

/** What the failing rotation run knows. */
export interface FailedRework {
  readonly runId: string;
  readonly stationId: string;
  readonly chipId: string;
  readonly serialNumber: string;
  /** The record the rework was to supersede, and its certificate (the credential the board lost). */
  readonly recordId: string;
  readonly certificateSerial: string;
  readonly certificateSha256: string | null;
  readonly failure: { readonly code: string; readonly step: string; readonly message: string };
  readonly supervisor: string;
  readonly operator: string;
  readonly failedAt: string;
}

/**
 * The scrap event payload of a failed rework, as the exact canonical JSON the station key signs. Throws when the
 * input does not fit the scrap schema (ids the station itself wrote: a bug, not an input error).
 */
export function reworkRevocationPayloadJson(f: FailedRework): string {
  const payload: ScrapPayload = {
    schema: SCRAP_SCHEMA,
    requestId: reworkRevocationRequestId(f.runId),
    stationId: f.stationId,
    chipId: f.chipId,
    serialNumber: f.serialNumber,
    recordId: f.recordId,
    certificateSerial: f.certificateSerial,
    certificateSha256: f.certificateSha256,
    reason: 'cessationOfOperation',
    note: `rework failed: ${f.failure.code} at ${f.failure.step}: ${f.failure.message}`.slice(0, MAX_NOTE),
    supervisor: f.supervisor,
    operator: f.operator,
    scrappedAt: f.failedAt,
  };
  return canonicalJson(ScrapPayloadSchema.parse(payload));
}

/**
 * A batch request body read once (docs/registry-api.md "POST /v1/batches", docs/architecture.md "Registry ingest"):
 * the main thread parses and validates only the envelope (batchId, certificates, auditHead) and FINDS the records,
 * whose JSON text the verification worker of each record parses and validates (registry/trust/pool.ts
 * `verifyText`); no record is parsed on the main thread, serialised again and copied to a worker as a string.
 *
 * The records are found by a scan of the bytes that knows only what JSON needs to find a value's end (strings with
 * their escapes, brackets: ./body-scan.ts); it validates nothing. Whenever it is not sure (the body not UTF-8, not an object, a key
 * with an escape, `records` twice, not an array, fewer than 1 or more than MAX_BATCH_RECORDS records, the envelope
 * invalid), it answers null and the caller reads the body whole as before (`strictJsonBody`), which says what is
 * wrong in the same words; so does a worker that cannot read its share. Every record's share is parsed by exactly one
 * JSON.parse: when the shares parse and the envelope parses, the whole body does, to the same values. Imports core,
 * registry/trust and ./body-scan.ts.
 */
import { BatchRequestSchema, MAX_BATCH_RECORDS, type BatchRequest } from '../../core/hq/protocol.js';
import type { RecordsText } from '../trust/pool.js';
import { findArray, splitBody, type FoundArray } from './body-scan.js';

/** A batch body split: the envelope parsed and valid, the records found but not parsed. */
export interface BatchText {
  readonly envelope: Omit<BatchRequest, 'records'>;
  readonly records: RecordsText;
}

/**
 * Find the records of a batch body: the top-level object's `records` array and each element's span (./body-scan.ts),
 * or null when the scan is not sure. The caller still parses every byte (the envelope here, the records in the
 * workers).
 */
export function findRecords(b: Buffer): FoundArray | null {
  return findArray(b, ['records'], MAX_BATCH_RECORDS);
}

/**
 * Split a batch body (the route's bytes): the envelope parsed and checked with BatchRequestSchema (its records
 * stood in for by one empty string; their count was checked by the scan), the records found. Null: read the body
 * whole (`strictJsonBody`), which answers what is wrong.
 */
export function splitBatchBody(body: Uint8Array): BatchText | null {
  const s = splitBody(body, ['records'], MAX_BATCH_RECORDS, '[""]');
  if (!s) return null;
  const p = BatchRequestSchema.safeParse(s.envelope);
  if (!p.success) return null;
  const { records: _standIn, ...envelope } = p.data;
  return { envelope, records: { body: s.body, starts: s.found.starts, ends: s.found.ends } };
}

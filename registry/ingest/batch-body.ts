/**
 * A batch request body read once (docs/registry-api.md "POST /v1/batches", docs/architecture.md "Registry ingest"):
 * the main thread parses and validates only the envelope (batchId, certificates, auditHead) and FINDS the records,
 * whose JSON text the verification worker of each record parses and validates (registry/trust/pool.ts
 * `verifyText`); no record is parsed on the main thread, serialised again and copied to a worker as a string.
 *
 * The records are found by a scan of the bytes that knows only what JSON needs to find a value's end (strings with
 * their escapes, brackets); it validates nothing. Whenever it is not sure (the body not UTF-8, not an object, a key
 * with an escape, `records` twice, not an array, fewer than 1 or more than MAX_BATCH_RECORDS records, the envelope
 * invalid), it answers null and the caller reads the body whole as before (`strictJsonBody`), which says what is
 * wrong in the same words; so does a worker that cannot read its share. Every record's share is parsed by exactly one
 * JSON.parse: when the shares parse and the envelope parses, the whole body does, to the same values. Imports core
 * and registry/trust.
 */
import { isUtf8 } from 'node:buffer';
import { BatchRequestSchema, MAX_BATCH_RECORDS, type BatchRequest } from '../../core/hq/protocol.js';
import type { RecordsText } from '../trust/pool.js';

/** A batch body split: the envelope parsed and valid, the records found but not parsed. */
export interface BatchText {
  readonly envelope: Omit<BatchRequest, 'records'>;
  readonly records: RecordsText;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const RECORDS = Buffer.from('records');

const isWs = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** The end (exclusive) of the string starting at the quote at `i`, or -1. */
function stringEnd(b: Buffer, i: number): number {
  let from = i + 1;
  for (;;) {
    const q = b.indexOf(QUOTE, from);
    if (q < 0) return -1;
    let slashes = 0;
    for (let k = q - 1; k > i && b[k] === BACKSLASH; k--) slashes++;
    if (slashes % 2 === 0) return q + 1;
    from = q + 1;
  }
}

/** The end (exclusive) of the value starting at `i` (no whitespace before it), or -1. Validates nothing. */
function valueEnd(b: Buffer, i: number): number {
  const c = b[i];
  if (c === QUOTE) return stringEnd(b, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < b.length;) {
      const d = b[j]!;
      if (d === QUOTE) {
        j = stringEnd(b, j);
        if (j < 0) return -1;
        continue;
      }
      if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return j + 1;
      }
      j++;
    }
    return -1;
  }
  // A number or a literal: up to the next delimiter (JSON.parse checks it).
  let j = i;
  while (j < b.length) {
    const d = b[j];
    if (d === 0x2c || d === 0x7d || d === 0x5d || isWs(d)) break;
    j++;
  }
  return j === i ? -1 : j;
}

const skipWs = (b: Buffer, i: number): number => {
  while (isWs(b[i])) i++;
  return i;
};

/**
 * Find the records of a batch body: the top-level object's `records` array and each element's span, or null when
 * the scan is not sure (see the header). The caller still parses every byte (the envelope here, the records in
 * the workers).
 */
export function findRecords(b: Buffer): { start: number; end: number; starts: number[]; ends: number[] } | null {
  let i = skipWs(b, 0);
  if (b[i] !== 0x7b) return null;
  i++;
  let found: { start: number; end: number; starts: number[]; ends: number[] } | null = null;
  for (;;) {
    i = skipWs(b, i);
    if (b[i] !== QUOTE) return null;
    const keyEnd = stringEnd(b, i);
    if (keyEnd < 0) return null;
    const key = b.subarray(i + 1, keyEnd - 1);
    if (key.includes(BACKSLASH)) return null; // an escaped key could spell `records`
    i = skipWs(b, keyEnd);
    if (b[i] !== 0x3a) return null;
    i = skipWs(b, i + 1);
    if (key.equals(RECORDS)) {
      if (found || b[i] !== 0x5b) return null;
      const start = i;
      const starts: number[] = [];
      const ends: number[] = [];
      i = skipWs(b, i + 1);
      for (;;) {
        const e = valueEnd(b, i);
        if (e < 0 || starts.length === MAX_BATCH_RECORDS) return null;
        starts.push(i);
        ends.push(e);
        i = skipWs(b, e);
        if (b[i] === 0x2c) {
          i = skipWs(b, i + 1);
          continue;
        }
        if (b[i] !== 0x5d) return null;
        i++;
        break;
      }
      found = { start, end: i, starts, ends };
    } else {
      i = valueEnd(b, i);
      if (i < 0) return null;
    }
    i = skipWs(b, i);
    if (b[i] === 0x2c) {
      i++;
      continue;
    }
    if (b[i] !== 0x7d) return null;
    break;
  }
  return skipWs(b, i + 1) === b.length ? found : null;
}

/**
 * Split a batch body (the route's bytes): the envelope parsed and checked with BatchRequestSchema (its records
 * stood in for by one empty string; their count was checked by the scan), the records found. Null: read the body
 * whole (`strictJsonBody`), which answers what is wrong.
 */
export function splitBatchBody(body: Uint8Array): BatchText | null {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (!isUtf8(b)) return null;
  const r = findRecords(b);
  if (!r) return null;
  let json: unknown;
  try {
    json = JSON.parse(`${b.toString('utf8', 0, r.start)}[""]${b.toString('utf8', r.end)}`);
  } catch {
    return null;
  }
  const p = BatchRequestSchema.safeParse(json);
  if (!p.success) return null;
  const { records: _standIn, ...envelope } = p.data;
  return { envelope, records: { body: b, starts: r.starts, ends: r.ends } };
}

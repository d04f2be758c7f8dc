/**
 * The scan that finds the records of a request body without parsing them (./batch-body.ts, ./bundle-body.ts;
 * docs/architecture.md "Registry ingest: what the main thread does"): it walks the body's bytes along a path of
 * object keys (`records` of a batch, `bundle` then `records` of a bundle) to an array, and finds each element's span.
 * It knows only what JSON needs to find a value's end (strings with their escapes, brackets); it validates nothing.
 * Whenever it is not sure (not an object where the path goes, a key with an escape, a key of the path twice, the end
 * not an array, an empty array or more than `max` elements, anything after the top-level value) it answers null and
 * the caller reads the body whole. The caller still parses every byte: the body with the array replaced (the
 * envelope), and the elements' spans (the verification workers' shares). Imports nothing of ours.
 */
import { isUtf8 } from 'node:buffer';

/** Where the array is: body[start, end) is the array `[` … `]`, and element k is body[starts[k], ends[k]). */
export interface FoundArray {
  readonly start: number;
  readonly end: number;
  readonly starts: number[];
  readonly ends: number[];
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const isWs = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

const skipWs = (b: Buffer, i: number): number => {
  while (isWs(b[i])) i++;
  return i;
};

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

/** The array starting at the `[` at `i`: its elements' spans (1..max of them), or null. */
function scanArray(b: Buffer, i: number, max: number): FoundArray | null {
  const start = i;
  const starts: number[] = [];
  const ends: number[] = [];
  i = skipWs(b, i + 1);
  for (;;) {
    const e = valueEnd(b, i);
    if (e < 0 || starts.length === max) return null;
    starts.push(i);
    ends.push(e);
    i = skipWs(b, e);
    if (b[i] === 0x2c) {
      i = skipWs(b, i + 1);
      continue;
    }
    if (b[i] !== 0x5d) return null;
    return { start, end: i + 1, starts, ends };
  }
}

/**
 * The object starting at the `{` at `i`: its end, and what `path` (keys, first one a member of this object) leads
 * to in it (null when the path's key is absent), or null when the scan is not sure.
 */
function scanObject(
  b: Buffer,
  i: number,
  path: readonly Buffer[],
  max: number,
): { end: number; found: FoundArray | null } | null {
  const [want, ...rest] = path;
  i++;
  let found: FoundArray | null = null;
  let seen = false;
  for (;;) {
    i = skipWs(b, i);
    if (b[i] !== QUOTE) return null;
    const keyEnd = stringEnd(b, i);
    if (keyEnd < 0) return null;
    const key = b.subarray(i + 1, keyEnd - 1);
    if (key.includes(BACKSLASH)) return null; // an escaped key could spell a key of the path
    i = skipWs(b, keyEnd);
    if (b[i] !== 0x3a) return null;
    i = skipWs(b, i + 1);
    if (want && key.equals(want)) {
      if (seen) return null; // JSON.parse keeps the last one: read the body whole
      seen = true;
      if (rest.length === 0) {
        if (b[i] !== 0x5b) return null;
        found = scanArray(b, i, max);
        if (!found) return null;
        i = found.end;
      } else {
        if (b[i] !== 0x7b) return null;
        const inner = scanObject(b, i, rest, max);
        if (!inner) return null;
        found = inner.found;
        i = inner.end;
      }
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
    return { end: i + 1, found };
  }
}

/**
 * Find the array at `path` in a body that is one JSON object (e.g. ['bundle', 'records']: the object's `bundle`
 * object's `records` array) and each of its 1..max elements' spans, or null when the scan is not sure (see the
 * header) or the path is not there.
 */
export function findArray(b: Buffer, path: readonly string[], max: number): FoundArray | null {
  if (path.length === 0) return null;
  const i = skipWs(b, 0);
  if (b[i] !== 0x7b) return null;
  const r = scanObject(
    b,
    i,
    path.map((k) => Buffer.from(k)),
    max,
  );
  return r && r.found && skipWs(b, r.end) === b.length ? r.found : null;
}

/** A body split by `splitBody`: the envelope parsed (not validated), the array found in `body`. */
export interface SplitBody {
  /** JSON.parse of the body with the array replaced by the stand-in. */
  readonly envelope: unknown;
  readonly body: Buffer;
  readonly found: FoundArray;
}

/**
 * Split a request body (the route's bytes): UTF-8 (`buffer.isUtf8`), the array at `path` found (`findArray`), the
 * rest of the body parsed with the array replaced by `standIn` (JSON text the caller's schema accepts in its place).
 * Null when the body is not UTF-8, the scan is not sure, or the rest does not parse: read the body whole.
 */
export function splitBody(body: Uint8Array, path: readonly string[], max: number, standIn: string): SplitBody | null {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (!isUtf8(b)) return null;
  const found = findArray(b, path, max);
  if (!found) return null;
  try {
    return {
      envelope: JSON.parse(`${b.toString('utf8', 0, found.start)}${standIn}${b.toString('utf8', found.end)}`),
      body: b,
      found,
    };
  } catch {
    return null;
  }
}

/**
 * A batch body read once (./batch-body.ts): the scan that finds the records never yields a split whose parts parse
 * to anything but what the whole body parses to (mutated bodies); the bodies it is not sure of are read whole. Over
 * real HTTP: ./format-v2.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { findRecords, splitBatchBody } from './batch-body.js';
import { jsonMutations } from '../../testkit/json-mutations.js';

/** What the whole body parses to, or null. */
function whole(b: Buffer): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b));
  } catch {
    return null;
  }
}

/** What the split parses to (envelope + records parsed in two shares, as two workers would), or null. */
function split(b: Buffer): unknown {
  const r = findRecords(b);
  if (!r) return null;
  try {
    const env = JSON.parse(`${b.toString('utf8', 0, r.start)}[]${b.toString('utf8', r.end)}`) as Record<
      string,
      unknown
    >;
    const mid = Math.ceil(r.starts.length / 2);
    const shares = [
      [0, mid],
      [mid, r.starts.length],
    ].filter(([a, z]) => a! < z!);
    const records: unknown[] = [];
    for (const [a, z] of shares) {
      const part = JSON.parse(`[${b.toString('utf8', r.starts[a!], r.ends[z! - 1])}]`) as unknown[];
      if (part.length !== z! - a!) return null;
      records.push(...part);
    }
    return { ...env, records };
  } catch {
    return null;
  }
}

describe('finding the records of a batch body', () => {
  const body = JSON.stringify({
    batchId: 'b',
    certificates: ['QUJD', 'REVG'],
    records: [
      'eyJ.a].b}.c,"',
      { alg: 'ES256', kid: 'a"],\\"records\\":[{', x5c: [0, 1], payload: { n: -1.5e3, t: true, z: null, u: 'ü€😀' } },
      { signature: 'x', nested: [[{ a: ['[', '{', '\\', '"'] }]], e: {} },
      7,
      'last',
    ],
    auditHead: { signed: 'h', proof: [] },
  });

  it('splits the records exactly where JSON.parse sees them, strings with brackets and escapes included', () => {
    const b = Buffer.from(body);
    expect(findRecords(b)?.starts).toHaveLength(5);
    expect(split(b)).toEqual(whole(b));
    const spaced = Buffer.from(JSON.stringify(JSON.parse(body), null, 2));
    expect(split(spaced)).toEqual(whole(spaced));
  });

  it('is not sure (null: the body is read whole) of duplicate or escaped `records` keys, a BOM, and non-arrays', () => {
    for (const text of [
      body.replace('"auditHead"', '"records":[1],"auditHead"'),
      body.replace('"records"', '"rec\\u006frds"'),
      `\ufeff${body}`,
      '{"records":{"a":1}}',
      '{"records":[]}',
      '{"records":[1,]}',
      '{"records":[1 2]}',
      `${body} x`,
      '[{"records":[1]}]',
    ])
      expect(findRecords(Buffer.from(text)), text.slice(0, 40)).toBeNull();
    expect(splitBatchBody(Buffer.from(body.replace('"last"', '"\xff"'), 'latin1'))).toBeNull(); // not UTF-8
  });

  it('never splits a mutated body into parts that parse to anything but what the whole body parses to', () => {
    let agreed = 0;
    for (const t of jsonMutations(body, 12, 4000)) {
      const b = Buffer.from(t);
      const s = split(b);
      if (s === null) continue;
      // The split parsed: then the whole body parses, to the same values.
      expect(whole(b), t).toEqual(s);
      agreed++;
    }
    expect(agreed).toBeGreaterThan(100);
  });
});

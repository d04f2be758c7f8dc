/**
 * A bundle body read once (./bundle-body.ts, ./body-scan.ts): the scan finds `bundle.records` and never yields a
 * split whose parts parse to anything but what the whole body parses to (mutated bodies); the bodies it is not sure
 * of, and bundles sent as a string, are read whole. Over real HTTP: ./bundle-import.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { findArray } from './body-scan.js';
import { splitBundleBody } from './bundle-body.js';
import { jsonMutations } from '../../testkit/json-mutations.js';

const PATH = ['bundle', 'records'] as const;

/** What the whole body parses to, or null. */
function whole(b: Buffer): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b));
  } catch {
    return null;
  }
}

/** What the split parses to (the rest + records parsed in two shares, as two workers would), or null. */
function split(b: Buffer): unknown {
  const r = findArray(b, PATH, 2000);
  if (!r) return null;
  try {
    const env = JSON.parse(`${b.toString('utf8', 0, r.start)}[]${b.toString('utf8', r.end)}`) as {
      bundle: Record<string, unknown>;
    };
    const mid = Math.ceil(r.starts.length / 2);
    const records: unknown[] = [];
    for (const [a, z] of [
      [0, mid],
      [mid, r.starts.length],
    ] as const) {
      if (a >= z) continue;
      const part = JSON.parse(`[${b.toString('utf8', r.starts[a], r.ends[z - 1])}]`) as unknown[];
      if (part.length !== z - a) return null;
      records.push(...part);
    }
    // The stand-in `[]` is where the records were: put them back in its place.
    if (!Array.isArray(env.bundle.records) || env.bundle.records.length !== 0) return null;
    env.bundle.records = records;
    return env;
  } catch {
    return null;
  }
}

describe('finding the records of a bundle body', () => {
  const bundle = {
    schema: 'line-station/bundle/v2',
    signed: 'eyJ.a.b',
    certificates: ['QUJD', 'REVG'],
    records: [
      'eyJ.a].b}.c,"',
      { alg: 'ES256', kid: 'a"],\\"records\\":[{', x5c: [0, 1], payload: { n: -1.5e3, t: true, z: null, u: 'ü€😀' } },
      { signature: 'x', nested: [[{ a: ['[', '{', '\\', '"'] }]], e: {}, records: [1] },
      7,
      'last',
    ],
    auditHead: { signed: 'h', proof: [], records: ['not these'] },
  };
  const body = JSON.stringify({ bundle, allowRevokedStation: false });

  it('splits the records exactly where JSON.parse sees them, not a `records` elsewhere', () => {
    const b = Buffer.from(body);
    expect(findArray(b, PATH, 2000)?.starts).toHaveLength(5);
    expect(split(b)).toEqual(whole(b));
    const spaced = Buffer.from(JSON.stringify(JSON.parse(body), null, 2));
    expect(split(spaced)).toEqual(whole(spaced));
    // `bundle` after another member, `records` first in it.
    const { records, ...rest } = bundle;
    const reordered = Buffer.from(JSON.stringify({ allowRevokedStation: true, bundle: { records, ...rest } }));
    expect(split(reordered)).toEqual(whole(reordered));
  });

  it('is not sure (null: the body is read whole) of duplicate or escaped keys, strings, non-arrays, and limits', () => {
    const cases = [
      body.replace('"allowRevokedStation"', '"bundle":{"records":[1]},"x"'), // `bundle` twice
      body.replace('"auditHead"', '"records":[1],"auditHead"'), // `records` twice in the bundle
      body.replace('"records"', '"rec\\u006frds"'),
      body.replace('"bundle"', '"bun\\u0064le"'),
      `\ufeff${body}`,
      `${body} x`,
      '{"bundle":"eyJ.a.b"}', // a bundle sent as a string (v1 JWS, or a v2 file's text)
      '{"bundle":{"records":{"a":1}}}',
      '{"bundle":{"records":[]}}',
      '{"bundle":{"records":[1,]}}',
      '{"bundle":{"records":[1 2]}}',
      '{"bundle":{"signed":"x"}}', // no records
      '{"records":[1]}', // a batch, not a bundle
      '[{"bundle":{"records":[1]}}]',
    ];
    for (const text of cases) expect(findArray(Buffer.from(text), PATH, 2000), text.slice(0, 50)).toBeNull();
    expect(findArray(Buffer.from('{"bundle":{"records":[1,2,3]}}'), PATH, 2)).toBeNull(); // more than max
    expect(splitBundleBody(Buffer.from(body.replace('"last"', '"\xff"'), 'latin1'))).toBeNull(); // not UTF-8
    expect(splitBundleBody(Buffer.from(body))).toBeNull(); // found, but not a valid bundle request
  });

  it('never splits a mutated body into parts that parse to anything but what the whole body parses to', () => {
    let agreed = 0;
    for (const t of jsonMutations(body, 7, 4000)) {
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

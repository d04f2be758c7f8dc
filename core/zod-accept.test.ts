/**
 * compileAccept against zod itself: on valid records (v1, v2 key-bound) and manifests (LS and TPM measurements) and
 * on thousands of mutations of them (every member removed, every value replaced by each JSON type and by boundary
 * lengths, an extra member in every object, every string changed by one character), the compiled test accepts
 * exactly what `safeParse` accepts, and zod then returns the value unchanged.
 */
import 'reflect-metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { systemClock } from './ports.js';
import { toBase64, toBase64Url } from './bytes.js';
import { encodeStatement } from './pki/attestation.js';
import { ProvisioningRecordSchema, RECORD_SCHEMA_V3 } from './provisioning/record.js';
import { ManifestSchema } from './provisioning/baseline.js';
import { createTestSigner } from '../testkit/pki/test-signer.js';
import { createTestStation, makeRecord } from '../testkit/registry/fixtures.js';
import { acceptOrParse, compileAccept, type Accept } from './zod-accept.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const h = (c: string) => c.repeat(64);
const payloadOf = (jws: string): Json =>
  JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as Json;

let v1: Json;
let v2: Json;
let v3: Json;
let manifest: Json;
let tpmManifest: Json;

beforeAll(async () => {
  const station = await createTestStation('zod-accept', systemClock);
  const made = await makeRecord(station, systemClock, { format: 'v1' });
  v1 = JSON.parse(made.json) as Json;
  if (made.record.schema === RECORD_SCHEMA_V3) throw new Error('a v1 record expected');
  manifest = payloadOf(made.record.manifest.jws);
  v3 = JSON.parse((await makeRecord(station, systemClock)).json) as Json;
  const device = await createTestSigner('P-256');
  const nonce = new Uint8Array(32).fill(1);
  const r = made.record;
  v2 = JSON.parse(
    JSON.stringify({
      ...r,
      schema: 'line-station/provisioning-record/v2',
      key: { ...r.key, publicKeySpki: toBase64Url(device.publicKeySpki) },
      attestation: {
        mode: 'key-bound-v2',
        nonce: toBase64Url(nonce),
        leafSha256: h('e'),
        chain: [toBase64(station.chain[1]!)],
        signature: toBase64(new Uint8Array(70).fill(0x30)),
        statement: toBase64(
          encodeStatement({
            role: 'device',
            nonce,
            chipId: r.board.chipId,
            key: device.publicKeySpki,
            measurementsSha256: h('a'),
          }),
        ),
        boundKey: { role: 'device', spki: toBase64(device.publicKeySpki) },
        measurementsSha256: h('a'),
      },
    }),
  ) as Json;
  const m = manifest as { [k: string]: Json };
  tpmManifest = {
    ...m,
    measurements: {
      pcrBank: 'sha256',
      pcrs: { '0': h('1'), '7': h('2'), '10': h('3') },
      quote: { attest: toBase64(new Uint8Array(60).fill(7)), signature: 'AAAA', nonce: toBase64Url(nonce) },
      ak: { public: 'AAAA', name: `000b${h('4')}` },
    },
    policy: {
      ...(m['policy'] as { [k: string]: Json }),
      pcrs: { bank: 'sha256', values: { '0': [h('1')], '7': [h('2'), h('5')] } },
    },
  };
});

/** Replacement values for any member: every JSON type, and lengths around the schemas' bounds. */
const REPLACEMENTS: Json[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  2 ** 53,
  '',
  'a',
  'A'.repeat(256),
  'A'.repeat(257),
  'A'.repeat(16_385),
  '2026-01-01T00:00:00Z',
  '2026-13-01T00:00:00Z',
  [],
  ['a'],
  {},
  { a: 1 },
];

/** Every mutation of `v` described above, as [what, value]. */
function* mutations(v: Json, path: string[] = []): Generator<[string, Json]> {
  const at = path.join('.') || '(root)';
  if (Array.isArray(v)) {
    yield [`${at}: emptied`, []];
    yield [`${at}: doubled`, [...v, ...v]];
    for (let i = 0; i < v.length; i++) {
      yield [`${at}[${i}] removed`, v.filter((_, j) => j !== i)];
      for (const [w, x] of mutations(v[i]!, [...path, String(i)])) yield [w, v.map((y, j) => (j === i ? x : y))];
    }
  } else if (v !== null && typeof v === 'object') {
    yield [`${at}: extra member`, { ...v, extra: 1 }];
    for (const k of Object.keys(v)) {
      const { [k]: _, ...rest } = v;
      yield [`${at}.${k} removed`, rest];
      for (const [w, x] of mutations(v[k]!, [...path, k])) yield [w, { ...v, [k]: x }];
    }
  } else if (typeof v === 'string') {
    yield [`${at}: +1 char`, `${v}a`];
    yield [`${at}: upper`, v.toUpperCase()];
    if (v.length > 0) yield [`${at}: -1 char`, v.slice(0, -1)];
    yield [`${at}: space`, ` ${v}`];
  } else if (typeof v === 'number') {
    yield [`${at}: negated`, -v - 1];
    yield [`${at}: fraction`, v + 0.5];
  }
  for (const r of REPLACEMENTS) yield [`${at} = ${JSON.stringify(r).slice(0, 20)}`, r];
}

function compare(schema: z.ZodType, accept: Accept, base: Json): { accepted: number; refused: number } {
  let accepted = 0;
  let refused = 0;
  for (const [what, value] of [['(valid)', base] as [string, Json], ...mutations(base)]) {
    const zod = schema.safeParse(value);
    const fast = accept(value);
    if (fast !== zod.success) throw new Error(`${what}: compiled ${fast}, zod ${zod.success}`);
    if (zod.success) expect(zod.data).toEqual(value);
    if (fast) accepted++;
    else refused++;
  }
  return { accepted, refused };
}

describe('compileAccept', () => {
  it('accepts exactly what zod accepts: records v1, v2 and v3 and their mutations', () => {
    const accept = compileAccept(ProvisioningRecordSchema);
    expect(accept).not.toBeNull();
    expect(accept!(v1)).toBe(true);
    expect(accept!(v2)).toBe(true);
    expect(accept!(v3)).toBe(true);
    const a = compare(ProvisioningRecordSchema, accept!, v1);
    const b = compare(ProvisioningRecordSchema, accept!, v2);
    const c = compare(ProvisioningRecordSchema, accept!, v3);
    // Both sides of the comparison are exercised: many mutations are valid records too, most are not.
    expect(a.accepted + b.accepted + c.accepted).toBeGreaterThan(50);
    expect(a.refused + b.refused + c.refused).toBeGreaterThan(1500);
    expect(c.accepted).toBeGreaterThan(10);
    expect(c.refused).toBeGreaterThan(500);
  });

  it('accepts exactly what zod accepts: manifests (LS and TPM measurements) and their mutations', () => {
    const accept = compileAccept(ManifestSchema);
    expect(accept).not.toBeNull();
    const a = compare(ManifestSchema, accept!, manifest);
    const b = compare(ManifestSchema, accept!, tpmManifest);
    expect(a.accepted + b.accepted).toBeGreaterThan(20);
    expect(a.refused + b.refused).toBeGreaterThan(1000);
  });

  it('refusals are worded by zod; an accepted value is returned as it is', () => {
    const accept = compileAccept(ProvisioningRecordSchema);
    const bad = { ...(v1 as object), operator: '' };
    const r = acceptOrParse(ProvisioningRecordSchema, accept, bad);
    expect(r.success).toBe(false);
    expect(r.error?.issues).toEqual(ProvisioningRecordSchema.safeParse(bad).error?.issues);
    const good = acceptOrParse(ProvisioningRecordSchema, accept, v1);
    expect(good.success && good.data).toBe(v1);
  });

  it('does not compile what would change the value or what it does not know; never accepts a changed value', () => {
    expect(compileAccept(z.object({ a: z.string().default('x') }).strict())).toBeNull();
    expect(compileAccept(z.string().transform((s) => s.length))).toBeNull();
    expect(compileAccept(z.object({ a: z.string() }).catchall(z.number()))).toBeNull();
    // A non-strict object strips unknown members: not accepted here (zod decides), though zod succeeds.
    const loose = compileAccept(z.object({ a: z.string() }))!;
    expect(loose({ a: 'x' })).toBe(true);
    expect(loose({ a: 'x', b: 1 })).toBe(false);
    // An overwriting check: accepted only when it leaves the value as it is.
    const trim = compileAccept(z.string().trim())!;
    expect(trim('a')).toBe(true);
    expect(trim(' a')).toBe(false);
    // Inherited or prototype tricks are never accepted.
    const obj = compileAccept(z.object({ a: z.string().optional() }).strict())!;
    expect(obj(Object.create({ a: 'x' }))).toBe(false);
    expect(obj(JSON.parse('{"__proto__": {"a": 1}}'))).toBe(false);
    expect(obj(new (class {})())).toBe(false);
  });
});

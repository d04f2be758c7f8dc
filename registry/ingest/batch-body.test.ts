/**
 * A batch body read once (./batch-body.ts): the scan that finds the records never yields a split whose parts parse
 * to anything but what the whole body parses to (mutated bodies), and over real HTTP a body the workers cannot read
 * (a share that does not parse, a record too long or invalid for the schema, in either worker's share, duplicate
 * keys, invalid UTF-8) gets exactly the answer of the body read whole, storing nothing.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { packRecords } from '../../core/hq/pack.js';
import { BatchRequestSchema, MAX_RECORD_CHARS, signRequest, type BatchResponse } from '../../core/hq/protocol.js';
import { strictJsonBody, type RouteRequest } from '../common/route.js';
import { startRegistry, type RunningRegistry } from '../http/server.js';
import { verifyPool } from '../trust/pool.js';
import { createTestStation, makeManyRecords, type TestStation } from '../../testkit/registry/fixtures.js';
import {
  audienceAt,
  backends,
  call,
  createRegistryKeys,
  createTestDb,
  quietLogger,
  type TestDb,
  type TestKeys,
} from '../../testkit/registry/harness.js';
import { findRecords, splitBatchBody } from './batch-body.js';

const uuid = () => globalThis.crypto.randomUUID();

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
    let seed = 12;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = ['"', '\\', '[', ']', '{', '}', ',', ':', ' ', 'x', '1', '\u00e9'];
    let agreed = 0;
    for (let k = 0; k < 4000; k++) {
      let t = body;
      for (let m = 0; m <= rand(3); m++) {
        const at = rand(t.length);
        const op = rand(3);
        if (op === 0) t = t.slice(0, at) + t.slice(at + 1);
        else if (op === 1) t = t.slice(0, at) + alphabet[rand(alphabet.length)]! + t.slice(at);
        else t = t.slice(0, at) + t.slice(at, at + rand(20)) + t.slice(at);
      }
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

for (const backend of backends()) {
  describe(`a batch body the workers cannot read gets the answer of the body read whole (${backend})`, () => {
    let keys: TestKeys;
    let A: TestStation;
    let tdb: TestDb;
    let db: RegistryDb;
    let reg: RunningRegistry;
    let good: { certificates: string[]; records: unknown[] };

    beforeAll(async () => {
      keys = await createRegistryKeys();
      A = await createTestStation('station-body', systemClock);
      tdb = await createTestDb(backend);
      db = await tdb.open();
      const r = await startRegistry({
        db,
        port: 0,
        signer: keys.signer,
        registryChain: keys.chain,
        registryId: 'registry-body',
        adminToken: keys.adminToken,
        clock: systemClock,
        logger: quietLogger,
      });
      if (!r.ok) throw new Error(r.error.message);
      reg = r.value;
      const e = await call(reg.url, 'POST', '/v1/admin/stations', {
        bearer: keys.adminToken,
        body: { stationId: A.id, chainPem: A.chainPem },
      });
      expect(e.status, e.text).toBe(201);
      const made = await makeManyRecords(A, systemClock, 40, 8);
      good = packRecords(made.map((m) => m.jws)) as { certificates: string[]; records: unknown[] };
    });
    afterAll(async () => {
      await verifyPool().close();
      await reg?.close();
      await db?.close();
      await tdb?.cleanup();
      await keys?.cleanup();
    });

    const stored = async () => {
      const c = await db.counts();
      if (!c.ok) throw new Error(c.error.message);
      return c.value.records;
    };
    /** POST raw bytes as station A. */
    const post = async (body: Uint8Array) => {
      const auth = await signRequest(
        A.signer,
        A.id,
        'POST',
        '/v1/batches',
        body,
        systemClock,
        await audienceAt(reg.url),
      );
      if (!auth.ok) throw new Error(auth.error.message);
      const res = await fetch(`${reg.url}/v1/batches`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: auth.value },
        body,
      });
      return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
    };
    /** The answer of the body read whole, as the route read it before it was split (strictJsonBody). */
    const readWhole = (body: Uint8Array) => {
      const r = strictJsonBody(
        { req: { headers: { 'content-type': 'application/json' } }, body } as unknown as RouteRequest,
        BatchRequestSchema,
      );
      return r.ok ? null : r.error;
    };
    const withRecord = (i: number, text: string, batchId = uuid()) => {
      const parts = good.records.map((r) => JSON.stringify(r));
      parts[i] = text;
      return Buffer.from(
        `{"batchId":"${batchId}","certificates":${JSON.stringify(good.certificates)},"records":[${parts.join(',')}]}`,
      );
    };

    it('a record that does not parse, is too long, or is not a record, in either share: BODY_INVALID, nothing stored', async () => {
      const before = await stored();
      // The good body splits (the records go to the workers unparsed): each case below breaks one record of it.
      expect(splitBatchBody(withRecord(0, JSON.stringify(good.records[0])))?.records.starts).toHaveLength(40);
      const second = JSON.stringify(good.records[30]);
      for (const [i, text] of [
        [30, second.replace('"alg":"ES256"', '"alg":ES256')], // the second worker's share does not parse
        [3, second.replace('"alg":"ES256"', '"alg":"ES256",')], // the first's
        [25, JSON.stringify('x'.repeat(MAX_RECORD_CHARS + 1))], // too long
        [39, JSON.stringify({ ...(good.records[30] as object), signature: '!' })], // not base64url
        [0, second.replace('"alg":"ES256"', '"alg":"ES256","extra":1')], // a member the schema does not have
        [12, '[]'],
      ] as const) {
        const body = withRecord(i, text);
        const expected = readWhole(body);
        expect(expected?.code, text.slice(0, 60)).toBe('BODY_INVALID');
        const r = await post(body);
        expect(r.status).toBe(400);
        expect(r.json.error).toEqual({ code: expected!.code, message: expected!.message });
      }
      expect(await stored()).toBe(before);
    });

    it('invalid UTF-8 inside a record: the answer of the body read whole', async () => {
      const bytes = withRecord(33, JSON.stringify(good.records[33]).replace('"alg":"ES256"', '"alg":"ES256","k":"@"'));
      bytes[bytes.indexOf('"k":"@"') + 5] = 0xff;
      expect(readWhole(bytes)).toMatchObject({ code: 'BODY_INVALID' });
      const r = await post(bytes);
      expect(r.status).toBe(400);
      expect(r.json.error).toEqual({ code: 'BODY_INVALID', message: readWhole(bytes)!.message });
    });

    it('duplicate keys read as JSON.parse reads them (the last one), in the envelope and in a record', async () => {
      const before = await stored();
      const batchId = uuid();
      const record = JSON.stringify(good.records[7]).replace('{"alg":"ES256"', '{"alg":"none","alg":"ES256"');
      const body = withRecord(7, record, batchId);
      const text = body.toString('utf8');
      // `records` twice: the first (bad) list is replaced by the second, as JSON.parse does.
      const twice = Buffer.from(text.replace('"records":[', '"records":[1,2],"records":['));
      expect(readWhole(twice)).toBeNull();
      const r = await post(twice);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect((r.json as unknown as BatchResponse).summary).toMatchObject({ accepted: 40, rejected: 0 });
      expect(await stored()).toBe(before + 40);
      // Without the envelope's duplicate the body splits; the record's duplicate `alg` still reads as its last.
      // The same batch id: the same records read (or it would be BATCH_CONFLICT), answered as repeated.
      const again = await post(body);
      expect(again.status, JSON.stringify(again.json)).toBe(200);
      expect(again.json as unknown as BatchResponse).toMatchObject({ repeated: true, summary: { accepted: 40 } });
    });
  });
}

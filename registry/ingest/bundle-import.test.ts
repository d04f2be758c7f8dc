/**
 * `POST /v1/bundles` over real HTTP, SQLite and (when LINE_STATION_TEST_PG_URL is set) PostgreSQL, with a v2 bundle
 * object whose records the verification workers parse (./bundle-body.ts, ./service.ts `importBundleText`): every
 * body, good or altered, truncated, incomplete or unreadable, gets exactly the answer of the same body read whole by
 * the main thread (its twin: the same JSON with the key `bundle` escaped, which the scan is never sure of), and a
 * refused one stores nothing. Good bundles as a v1 JWS or a v2 file's text (not split) are imported as before.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../core/ports.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import {
  BundleRequestSchema,
  MAX_RECORD_CHARS,
  createBundle,
  createBundleV2,
  signRequest,
  type BundleFileV2,
  type BundleResponse,
} from '../../core/hq/protocol.js';
import { strictJsonBody, type RouteRequest } from '../common/route.js';
import { verifyPool } from '../trust/pool.js';
import { splitBundleBody } from './bundle-body.js';
import { startRegistry, type RunningRegistry } from '../http/server.js';
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

/** Records in the test bundle: enough for two workers' shares (the pool's parallel threshold is 16). */
const N = 40;

let keys: TestKeys;
let A: TestStation;
let B: TestStation;
let R: TestStation;
let fileA: BundleFileV2;
let textA: string;
let v1A: string;
let fileB: BundleFileV2;
let fileR: BundleFileV2;

/** 10 s ago: records (and their certificates) made before any revocation in this file, not in its second. */
const earlier: Clock = { now: () => new Date(Date.now() - 10_000), monotonicMs: () => systemClock.monotonicMs() };

const v2Of = async (s: TestStation, n: number) => {
  const made = await makeManyRecords(s, earlier, n, 8);
  const common = {
    signer: s.signer,
    chain: s.chain,
    stationId: s.id,
    records: made.map((m) => m.jws),
    clock: systemClock,
  };
  const v2 = await createBundleV2(common);
  if (!v2.ok) throw new Error(v2.error.message);
  return { v2: v2.value, common };
};

beforeAll(async () => {
  keys = await createRegistryKeys();
  [A, B, R] = await Promise.all([
    createTestStation('bundle-a', systemClock),
    createTestStation('bundle-b', systemClock),
    createTestStation('bundle-r', systemClock),
  ]);
  const a = await v2Of(A, N);
  textA = a.v2.content;
  fileA = JSON.parse(textA) as BundleFileV2;
  // The same records as a v1 bundle (another bundle id: its own batch).
  const v1 = await createBundle(a.common);
  if (!v1.ok) throw new Error(v1.error.message);
  v1A = v1.value.jws;
  fileB = JSON.parse((await v2Of(B, 20)).v2.content) as BundleFileV2;
  fileR = JSON.parse((await v2Of(R, 20)).v2.content) as BundleFileV2;
}, 120_000);
afterAll(async () => {
  await keys?.cleanup();
});

/** The same JSON with the top-level key `bundle` escaped: JSON.parse reads the same, the scan is never sure of it. */
const twinOf = (body: Buffer): Buffer => {
  const t = body.toString('latin1'); // byte for byte (a body may not be UTF-8)
  if (!t.startsWith('{"bundle":')) throw new Error('a test body starts with {"bundle":');
  return Buffer.from(`{"bun\\u0064le":${t.slice('{"bundle":'.length)}`, 'latin1');
};

/** The answer of the body read whole (strictJsonBody), or null when it reads. */
const readWhole = (body: Uint8Array) => {
  const r = strictJsonBody(
    { req: { headers: { 'content-type': 'application/json' } }, body } as unknown as RouteRequest,
    BundleRequestSchema,
  );
  return r.ok ? null : r.error;
};

/**
 * `{"bundle":{...file but its records,"records":RECORDS...inBundle}...top}` as bytes: RECORDS the records' JSON
 * text as given (the file's own by default), `inBundle` and `top` text added inside the bundle object and after it.
 */
const bodyOf = (
  file: BundleFileV2,
  o: { records?: readonly string[]; recordsText?: string; inBundle?: string; top?: string } = {},
) => {
  const { records: _r, ...head } = file;
  const recordsText = o.recordsText ?? `[${(o.records ?? file.records.map((r) => JSON.stringify(r))).join(',')}]`;
  const headText = JSON.stringify(head).slice(0, -1);
  return Buffer.from(`{"bundle":${headText},"records":${recordsText}${o.inBundle ?? ''}}${o.top ?? ''}}`);
};

for (const backend of backends()) {
  describe(`bundle import, records read by the workers (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;
    let reg: RunningRegistry;
    const stored = async () => {
      const c = await db.counts();
      if (!c.ok) throw new Error(c.error.message);
      return c.value.records;
    };
    const admin = (method: string, path: string, body?: unknown) =>
      call(reg.url, method, path, { bearer: keys.adminToken, ...(body !== undefined ? { body } : {}) });

    /** POST raw bytes to /v1/bundles as the admin or a station. */
    const post = async (body: Uint8Array, as: 'admin' | TestStation = 'admin') => {
      let authorization = `Bearer ${keys.adminToken}`;
      if (as !== 'admin') {
        const a = await signRequest(
          as.signer,
          as.id,
          'POST',
          '/v1/bundles',
          body,
          systemClock,
          await audienceAt(reg.url),
        );
        if (!a.ok) throw new Error(a.error.message);
        authorization = a.value;
      }
      const res = await fetch(`${reg.url}/v1/bundles`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization },
        body,
      });
      return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
    };

    /**
     * A body refused: the same status and error as its twin read whole (and, when the body does not read, as
     * strictJsonBody words it), and nothing stored. `split`: whether the route's scan path took it.
     */
    const expectRefusedAsWhole = async (
      body: Buffer,
      what: string,
      split: boolean,
      as: 'admin' | TestStation = 'admin',
    ) => {
      expect(splitBundleBody(body) !== null, `${what}: split`).toBe(split);
      expect(splitBundleBody(twinOf(body)), `${what}: twin`).toBeNull();
      const before = await stored();
      const expected = await post(twinOf(body), as);
      const got = await post(body, as);
      expect(expected.status, `${what}: ${JSON.stringify(expected.json)}`).toBeGreaterThanOrEqual(400);
      expect({ status: got.status, error: got.json.error }, what).toEqual({
        status: expected.status,
        error: expected.json.error,
      });
      const whole = readWhole(body);
      if (whole) expect(got.json.error, what).toEqual({ code: whole.code, message: whole.message });
      expect(await stored(), what).toBe(before);
      return got.json.error!;
    };

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      const r = await startRegistry({
        db,
        port: 0,
        signer: keys.signer,
        registryChain: keys.chain,
        registryId: 'registry-bundle-scan',
        adminToken: keys.adminToken,
        clock: systemClock,
        logger: quietLogger,
      });
      if (!r.ok) throw new Error(r.error.message);
      reg = r.value;
      for (const s of [A, B, R]) {
        const e = await admin('POST', '/v1/admin/stations', { stationId: s.id, chainPem: s.chainPem });
        expect(e.status, e.text).toBe(201);
      }
      expect(verifyPool().parallel(N)).toBe(true); // the route gives these bundles' records to the workers
    });
    afterAll(async () => {
      await reg?.close();
      await db?.close();
      await tdb?.cleanup();
    });

    it('altered, truncated or incomplete: BUNDLE_INVALID as the body read whole, nothing stored', async () => {
      const recs = fileA.records.map((r) => JSON.stringify(r));
      const flip = (s: string, at: string) => {
        const i = s.indexOf(at) + at.length + 5;
        return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      };
      const codes: Record<string, string> = {};
      const cases: Array<[string, Buffer]> = [
        [
          'record changed (first share)',
          bodyOf(fileA, { records: recs.map((r, i) => (i === 3 ? flip(r, '"signature":"') : r)) }),
        ],
        [
          'record changed (second share)',
          bodyOf(fileA, { records: recs.map((r, i) => (i === 33 ? flip(r, '"signature":"') : r)) }),
        ],
        ['records swapped', bodyOf(fileA, { records: [recs[1]!, recs[0]!, ...recs.slice(2)] })],
        ['record dropped', bodyOf(fileA, { records: recs.slice(0, -1) })],
        ['record repeated', bodyOf(fileA, { records: [...recs, recs[5]!] })],
        [
          'certificate replaced',
          bodyOf({ ...fileA, certificates: [fileA.certificates[1]!, ...fileA.certificates.slice(1)] }),
        ],
        ['certificate added', bodyOf({ ...fileA, certificates: [...fileA.certificates, fileA.certificates[0]!] })],
        ['events added', bodyOf({ ...fileA, revocations: ['a.b.c'] })],
        ['manifest changed', bodyOf({ ...fileA, signed: flip(fileA.signed, '.') })],
      ];
      for (const [what, body] of cases) {
        const e = await expectRefusedAsWhole(body, what, true);
        codes[what] = `${e.code}: ${e.message}`;
      }
      expect(codes['record changed (second share)']).toBe(
        'BUNDLE_INVALID: bundle is incomplete or altered: recordsSha256 does not match its records',
      );
      expect(codes['records swapped']).toBe(codes['record changed (second share)']);
      expect(codes['record dropped']).toBe(
        `BUNDLE_INVALID: bundle is incomplete: it declares ${N} records but holds ${N - 1}`,
      );
      expect(codes['certificate replaced']).toBe(
        'BUNDLE_INVALID: bundle is incomplete or altered: the certificate table does not match the signed manifest',
      );
      expect(codes['events added']).toMatch(/^BUNDLE_INVALID: .*the revocation events does not match/);
      const good = bodyOf(fileA);
      await expectRefusedAsWhole(good.subarray(0, good.length - 3), 'truncated', false);
      await expectRefusedAsWhole(good.subarray(0, Math.floor(good.length / 2)), 'cut in a record', false);
      expect(
        await db.getBatch(A.id, JSON.parse(Buffer.from(fileA.signed.split('.')[1]!, 'base64url').toString()).bundleId),
      ).toMatchObject({ ok: true, value: null });
    });

    it('a body the workers or the scan cannot read: BODY_INVALID in the words of the body read whole', async () => {
      const recs = fileA.records.map((r) => JSON.stringify(r));
      const at = (i: number, text: string) => bodyOf(fileA, { records: recs.map((r, k) => (k === i ? text : r)) });
      const invalidUtf8 = at(30, recs[30]!.replace('"alg":"ES256"', '"alg":"ES256","k":"@"'));
      invalidUtf8[invalidUtf8.indexOf('"k":"@"') + 5] = 0xff;
      const cases: Array<[string, Buffer, boolean]> = [
        // Split, then a worker cannot read its share: the first's, the second's.
        ['a record not JSON (first share)', at(2, recs[2]!.replace('"alg":"ES256"', '"alg":ES256')), true],
        [
          'a member the schema does not have (second share)',
          at(35, recs[35]!.replace('"alg":"ES256"', '"alg":"ES256","x":1')),
          true,
        ],
        ['a record not a record', at(20, '[]'), true],
        ['a record too long', at(39, JSON.stringify('x'.repeat(MAX_RECORD_CHARS + 1))), true],
        // Not split: the scan is not sure, or the rest is not a valid request.
        ['invalid UTF-8 in a record', invalidUtf8, false],
        ['records not an array', bodyOf(fileA, { recordsText: `{"a":[${recs.join(',')}]}` }), false],
        ['records twice, the last not records', bodyOf(fileA, { inBundle: ',"records":[1]' }), false],
        ['an unknown member beside the bundle', bodyOf(fileA, { top: ',"extra":1' }), false],
        ['allowRevokedStation not a boolean', bodyOf(fileA, { top: ',"allowRevokedStation":"yes"' }), false],
        ['the bundle twice, the last not a bundle', bodyOf(fileA, { top: ',"bundle":{"records":[1]}' }), false],
      ];
      for (const [what, body, split] of cases) {
        const e = await expectRefusedAsWhole(body, what, split);
        expect(e.code, what).toBe('BODY_INVALID');
      }
    });

    it('refused before the records are read (who may import it, which station): the answer of the body read whole', async () => {
      // A station may not set allowRevokedStation, nor import another station's bundle.
      const flagged = bodyOf(fileA, { top: ',"allowRevokedStation":true' });
      expect((await expectRefusedAsWhole(flagged, 'station flag', true, A)).code).toBe('AUTH_FORBIDDEN');
      expect((await expectRefusedAsWhole(bodyOf(fileB), 'other station', true, A)).code).toBe('AUTH_FORBIDDEN');
      // A revoked station's bundle without allowRevokedStation.
      expect((await admin('POST', `/v1/admin/stations/${R.id}/revoke`)).status).toBe(200);
      expect((await expectRefusedAsWhole(bodyOf(fileR), 'revoked', true)).code).toBe('AUTH_STATION_REVOKED');
      // ... and with it (admin): its records, completed before the revocation, are taken in.
      const before = await stored();
      const r = await post(bodyOf(fileR, { top: ',"allowRevokedStation":true' }));
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      const refused = (r.json as unknown as BundleResponse).results.filter((x) => x.status !== 'accepted');
      expect(refused.map((x) => `${x.status} ${x.reason}: ${x.message}`)).toEqual([]);
      expect((r.json as unknown as BundleResponse).summary).toMatchObject({ accepted: 20, rejected: 0 });
      expect(await stored()).toBe(before + 20);
    });

    it('good bundles: a v2 object (split), its text, a v1 JWS; escaped and duplicate keys read as JSON.parse reads them', async () => {
      const before = await stored();
      const body = bodyOf(fileA);
      expect(splitBundleBody(body)?.records.starts).toHaveLength(N);
      const first = await post(body, A);
      expect(first.status, JSON.stringify(first.json)).toBe(200);
      const res = first.json as unknown as BundleResponse;
      expect(res).toMatchObject({ repeated: false, summary: { accepted: N, rejected: 0 } });
      expect(await stored()).toBe(before + N);
      // The same bundle read whole (its twin, its text, `records` twice with the real ones last, an escaped key):
      // the same batch, answered as repeated with the same receipt (BATCH_CONFLICT if any read other records).
      for (const [what, again] of [
        ['twin', twinOf(body)],
        ['text', Buffer.from(JSON.stringify({ bundle: textA }))],
        ['records twice', Buffer.from(body.toString().replace('"records":[', '"records":[1,2],"records":['))],
        ['escaped records', Buffer.from(body.toString().replace('"records":[', '"rec\\u006frds":['))],
      ] as const) {
        expect(splitBundleBody(again), what).toBeNull();
        const r = await post(again, A);
        expect(r.status, `${what}: ${JSON.stringify(r.json)}`).toBe(200);
        expect(r.json, what).toMatchObject({ repeated: true, receipt: res.receipt, summary: res.summary });
      }
      // Split again (the admin this time, spaced out): repeated too.
      const spaced = Buffer.from(JSON.stringify({ bundle: { ...fileA, records: fileA.records } }, null, 1));
      expect(splitBundleBody(spaced)?.records.starts).toHaveLength(N);
      expect((await post(spaced)).json).toMatchObject({ repeated: true, receipt: res.receipt });
      // The same records in a v1 bundle (a string: not split) are another bundle of the same records: duplicates.
      const v1 = await post(Buffer.from(JSON.stringify({ bundle: v1A })), A);
      expect(v1.status, JSON.stringify(v1.json)).toBe(200);
      expect(v1.json).toMatchObject({ repeated: false, summary: { accepted: 0, duplicate: N } });
      expect(await stored()).toBe(before + N);
    });
  });
}

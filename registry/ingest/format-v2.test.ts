/**
 * Batch and bundle format v2 over real HTTP, SQLite and (when LINE_STATION_TEST_PG_URL is set) PostgreSQL: records
 * packed against one certificate table are rebuilt byte for byte (the stored JWS is the station's and verifies on
 * its own with jose), a v2 bundle with any modified byte, a swapped certificate or record, or cut short is refused
 * as a whole, and v1 and v2 of the same batch are the same batch. A batch body the verification workers cannot read
 * (a share that does not parse, a record too long or not a record, in either worker's share, invalid UTF-8, duplicate
 * keys: ./batch-body.ts) gets exactly the answer of the body read whole, and stores nothing.
 */
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { compactVerify, decodeProtectedHeader, importX509 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { packRecords, type PackedJws } from '../../core/hq/pack.js';
import {
  BatchRequestSchema,
  createBundleV2,
  MAX_RECORD_CHARS,
  signRequest,
  type BatchResponse,
  type BundleFileV2,
  type BundleResponse,
} from '../../core/hq/protocol.js';
import { strictJsonBody, type RouteRequest } from '../common/route.js';
import { splitBatchBody } from './batch-body.js';
import { startRegistry, type RunningRegistry } from '../http/server.js';
import { createTestStation, makeManyRecords, makeRecord, type TestStation } from '../../testkit/registry/fixtures.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
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

let keys: TestKeys;
let A: TestStation;

beforeAll(async () => {
  keys = await createRegistryKeys();
  A = await createTestStation('station-v2', systemClock);
});
afterAll(async () => {
  await keys?.cleanup();
});

const uuid = () => globalThis.crypto.randomUUID();

async function storedVerifies(jws: string): Promise<unknown> {
  const { x5c } = decodeProtectedHeader(jws);
  const pem = `-----BEGIN CERTIFICATE-----\n${x5c![0]}\n-----END CERTIFICATE-----`;
  const { payload } = await compactVerify(jws, await importX509(pem, 'ES256'));
  return JSON.parse(new TextDecoder().decode(payload));
}

for (const backend of backends()) {
  describe(`format v2 (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;
    let reg: RunningRegistry;
    const records = async () => {
      const c = await db.counts();
      if (!c.ok) throw new Error(c.error.message);
      return c.value.records;
    };
    const admin = (method: string, path: string, body?: unknown) =>
      call(reg.url, method, path, { bearer: keys.adminToken, ...(body !== undefined ? { body } : {}) });

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      const r = await startRegistry({
        db,
        port: 0,
        signer: keys.signer,
        registryChain: keys.chain,
        registryId: 'registry-v2',
        adminToken: keys.adminToken,
        clock: systemClock,
        logger: quietLogger,
      });
      if (!r.ok) throw new Error(r.error.message);
      reg = r.value;
      const e = await admin('POST', '/v1/admin/stations', { stationId: A.id, chainPem: A.chainPem });
      expect(e.status, e.text).toBe(201);
    });
    afterAll(async () => {
      await reg?.close();
      await db?.close();
      await tdb?.cleanup();
    });

    it('stores packed batch records byte for byte; the same batch in v1 is the same batch', async () => {
      const made = await makeManyRecords(A, systemClock, 20, 4); // 20: the worker pool verifies them
      const jws = made.map((m) => m.jws);
      const batchId = uuid();
      const v2 = await call(reg.url, 'POST', '/v1/batches', { body: { batchId, ...packRecords(jws) }, station: A });
      expect(v2.status, v2.text).toBe(200);
      const r2 = v2.json as BatchResponse;
      expect(r2.summary).toMatchObject({ accepted: 20, rejected: 0 });
      const stored = await db.listRecords({ stationId: A.id, limit: 100 });
      if (!stored.ok) throw new Error(stored.error.message);
      const byId = new Map(stored.value.map((s) => [s.recordId, s.jws]));
      for (const m of made) {
        expect(byId.get(m.recordId)).toBe(m.jws);
        expect(await storedVerifies(byId.get(m.recordId)!)).toMatchObject({ recordId: m.recordId });
      }
      const v1 = await call(reg.url, 'POST', '/v1/batches', { body: { batchId, records: jws }, station: A });
      expect(v1.status, v1.text).toBe(200);
      expect((v1.json as BatchResponse).repeated).toBe(true);
      expect((v1.json as BatchResponse).receipt).toBe(r2.receipt);
    });

    it('a packed record that names no certificate is malformed; the others are stored', async () => {
      const made = await makeManyRecords(A, systemClock, 3, 1);
      const p = packRecords(made.map((m) => m.jws));
      const bad = { ...(p.records[1] as PackedJws), x5c: [p.certificates.length + 5] };
      const before = await records();
      const r = await call(reg.url, 'POST', '/v1/batches', {
        body: { batchId: uuid(), certificates: p.certificates, records: [p.records[0], bad, p.records[2]] },
        station: A,
      });
      expect(r.status, r.text).toBe(200);
      const res = r.json as BatchResponse;
      expect(res.summary).toMatchObject({ accepted: 2, rejected: 1 });
      expect(res.results[1]).toMatchObject({ status: 'rejected', reason: 'malformed', recordId: null });
      expect(await records()).toBe(before + 2);
    });

    it('a full packed batch: only the records with a bad signature are refused, each with its reason', async () => {
      // 500 records (the worker pool verifies them in slices); record 437's manifest is signed by another key,
      // record 12's signature has one character changed, record 250's signature is not canonical base64url.
      const made = await makeManyRecords(A, systemClock, 499, 8);
      const other = await createTestSigner('P-256');
      const bad = await makeRecord(A, systemClock, { manifestSigner: other });
      const jws = [...made.slice(0, 437).map((m) => m.jws), bad.jws, ...made.slice(437).map((m) => m.jws)];
      const p = packRecords(jws);
      const recs = [...p.records] as PackedJws[];
      const flip = (sig: string, i: number) => sig.slice(0, i) + (sig[i] === 'A' ? 'B' : 'A') + sig.slice(i + 1);
      recs[12] = { ...recs[12]!, signature: flip(recs[12]!.signature, 10) };
      // 64 bytes are 86 base64url characters: the last one carries 2 unused bits, which must be zero.
      const s250 = recs[250]!.signature;
      recs[250] = { ...recs[250]!, signature: s250.slice(0, 85) + ('AQgw'.includes(s250[85]!) ? 'B' : 'A') };
      const before = await records();
      const r = await call(reg.url, 'POST', '/v1/batches', {
        body: { batchId: uuid(), certificates: p.certificates, records: recs },
        station: A,
      });
      expect(r.status, r.text).toBe(200);
      const res = r.json as BatchResponse;
      expect(res.summary).toMatchObject({ accepted: 497, rejected: 3 });
      expect(res.results[437]).toMatchObject({
        status: 'rejected',
        reason: 'manifest-invalid',
        recordId: bad.recordId,
      });
      expect(res.results[12]).toMatchObject({ status: 'rejected', reason: 'signature-invalid' });
      expect(res.results[250]).toMatchObject({ status: 'rejected', reason: 'malformed' });
      expect(res.results.filter((x) => x.status === 'accepted')).toHaveLength(497);
      expect(await records()).toBe(before + 497);
      // What is stored is the station's JWS, byte for byte, and reads back as its JSON.
      const dev = await db.deviceRecords(made[436]!.record.board.serialNumber);
      if (!dev.ok) throw new Error(dev.error.message);
      expect(dev.value.map((d) => d.jws)).toEqual([made[436]!.jws]);
      expect(dev.value[0]!.recordJson).toBe(made[436]!.json);
    }, 300_000);

    it('imports a v2 bundle (text or JSON body) once; any modification rejects it as a whole', async () => {
      const made = await makeManyRecords(A, systemClock, 3, 3);
      const b = await createBundleV2({
        signer: A.signer,
        chain: A.chain,
        stationId: A.id,
        records: made.map((m) => m.jws),
        clock: systemClock,
      });
      if (!b.ok) throw new Error(b.error.message);
      const text = b.value.content;
      const file = JSON.parse(text) as BundleFileV2;
      const before = await records();
      const expectInvalid = async (bundle: unknown, what: string) => {
        const r = await admin('POST', '/v1/bundles', { bundle });
        expect(r.status, `${what}: ${r.text}`).toBe(422);
        expect((r.json as { error: { code: string } }).error.code).toBe('BUNDLE_INVALID');
      };
      // One character changed at ~80 places of the file text.
      const step = Math.max(1, Math.floor(text.length / 80));
      for (let i = 0; i < text.length; i += step) {
        const c = text[i]!;
        const v = text.slice(0, i) + (c === 'A' ? 'B' : c === '0' ? '1' : 'A') + text.slice(i + 1);
        await expectInvalid(v, `position ${i}`);
      }
      await expectInvalid(text.slice(0, Math.floor(text.length / 2)), 'truncated');
      // Structural changes that keep valid JSON: swapped records, a certificate replaced, one more certificate,
      // a record dropped (with the count left), the audit head or events added without the signature.
      await expectInvalid({ ...file, records: [file.records[1], file.records[0], file.records[2]] }, 'swapped');
      await expectInvalid({ ...file, certificates: [file.certificates[1], ...file.certificates.slice(1)] }, 'cert');
      await expectInvalid({ ...file, certificates: [...file.certificates, file.certificates[0]] }, 'extra cert');
      await expectInvalid({ ...file, records: file.records.slice(0, 2) }, 'dropped');
      await expectInvalid({ ...file, revocations: ['a.b.c'] }, 'events added');
      expect(await records()).toBe(before);

      const first = await admin('POST', '/v1/bundles', { bundle: text });
      expect(first.status, first.text).toBe(200);
      const fr = first.json as BundleResponse;
      expect(fr).toMatchObject({ bundleId: b.value.bundleId, summary: { accepted: 3 } });
      // The batch is keyed by the digest of exactly its records' JWS (the bundle's recordsSha256, checked once):
      // SHA-256 over their concatenation, computed here independently.
      const digest = createHash('sha256')
        .update(made.map((m) => m.jws).join(''), 'utf8')
        .digest('hex');
      const batchRow = await db.getBatch(A.id, b.value.bundleId);
      expect(batchRow.ok && batchRow.value?.contentSha256).toBe(digest);
      const again = await admin('POST', '/v1/bundles', { bundle: file });
      expect(again.status, again.text).toBe(200);
      expect((again.json as BundleResponse).repeated).toBe(true);
      expect(await records()).toBe(before + 3);
    });

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
    /** A packed batch of 40 records (the two workers' shares) whose record i is `text`. */
    let batch40: { certificates: string[]; records: unknown[] } | undefined;
    const goodBatch = async () =>
      (batch40 ??= packRecords((await makeManyRecords(A, systemClock, 40, 8)).map((m) => m.jws)) as {
        certificates: string[];
        records: unknown[];
      });
    const withRecord = (i: number, text: string, batchId = uuid()) => {
      const parts = batch40!.records.map((r) => JSON.stringify(r));
      parts[i] = text;
      return Buffer.from(
        `{"batchId":"${batchId}","certificates":${JSON.stringify(batch40!.certificates)},"records":[${parts.join(',')}]}`,
      );
    };

    // A batch body the workers cannot read (registry/ingest/batch-body.ts) gets the answer of the body read whole.
    it('a record that does not parse, is too long, or is not a record, in either share: BODY_INVALID, nothing stored', async () => {
      const good = await goodBatch();
      const before = await records();
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
      expect(await records()).toBe(before);
    });

    it('invalid UTF-8 inside a record: the answer of the body read whole', async () => {
      const good = await goodBatch();
      const bytes = withRecord(33, JSON.stringify(good.records[33]).replace('"alg":"ES256"', '"alg":"ES256","k":"@"'));
      bytes[bytes.indexOf('"k":"@"') + 5] = 0xff;
      expect(readWhole(bytes)).toMatchObject({ code: 'BODY_INVALID' });
      const r = await post(bytes);
      expect(r.status).toBe(400);
      expect(r.json.error).toEqual({ code: 'BODY_INVALID', message: readWhole(bytes)!.message });
    });

    it('duplicate keys read as JSON.parse reads them (the last one), in the envelope and in a record', async () => {
      const good = await goodBatch();
      const before = await records();
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
      expect(await records()).toBe(before + 40);
      // Without the envelope's duplicate the body splits; the record's duplicate `alg` still reads as its last.
      // The same batch id: the same records read (or it would be BATCH_CONFLICT), answered as repeated.
      const again = await post(body);
      expect(again.status, JSON.stringify(again.json)).toBe(200);
      expect(again.json as unknown as BatchResponse).toMatchObject({ repeated: true, summary: { accepted: 40 } });
    });
  });
}

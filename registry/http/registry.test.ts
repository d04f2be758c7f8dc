/**
 * The registry over real HTTP on 127.0.0.1, with the receipt key in SoftHSM2, against SQLite and (when
 * LINE_STATION_TEST_PG_URL is set) PostgreSQL: the same suite for both backends.
 */
import 'reflect-metadata';
import { compactVerify, decodeProtectedHeader, importX509 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromPem } from '../../core/pki/pem.js';
import { systemClock, type Clock } from '../../core/ports.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import {
  createBundle,
  signRequest,
  verifyReceipt,
  RECEIPT_TYP,
  type BatchResponse,
  type BundleResponse,
  type ReceiptPayload,
} from '../../core/hq/protocol.js';
import { startRegistry, type RunningRegistry } from './server.js';
import {
  createTestStation,
  makeDevice,
  makeRecord,
  makeRecords,
  type MadeRecord,
  type TestStation,
} from '../../testkit/registry/fixtures.js';
import {
  backends,
  call,
  createRegistryKeys,
  createTestDb,
  quietLogger,
  type TestDb,
  type TestKeys,
  audienceAt,
} from '../../testkit/registry/harness.js';

let keys: TestKeys;
let A: TestStation;
let B: TestStation;
let R: TestStation;
let X: TestStation;
let recsA: MadeRecord[];

beforeAll(async () => {
  keys = await createRegistryKeys();
  [A, B, R, X] = await Promise.all([
    createTestStation('station-a', systemClock),
    createTestStation('station-b', systemClock),
    createTestStation('station-r', systemClock),
    createTestStation('station-x', systemClock),
  ]);
  recsA = await makeRecords(A, systemClock, 6);
});

afterAll(async () => {
  await keys?.cleanup();
});

const uuid = () => globalThis.crypto.randomUUID();

function flipChar(s: string, i: number): string {
  const c = s[i]!;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const repl = c === '.' ? 'A' : alphabet[(alphabet.indexOf(c) + 17) % 64]!;
  return s.slice(0, i) + repl + s.slice(i + 1);
}

async function joseVerify(receipt: string): Promise<ReceiptPayload> {
  const key = await importX509(keys.certificatePem, 'ES256');
  const { payload, protectedHeader } = await compactVerify(receipt, key);
  expect(protectedHeader.typ).toBe(RECEIPT_TYP);
  return JSON.parse(new TextDecoder().decode(payload)) as ReceiptPayload;
}

for (const backend of backends()) {
  describe(`registry (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;
    let reg: RunningRegistry;
    let clock: Clock;

    const counts = async () => {
      const c = await db.counts();
      if (!c.ok) throw new Error(c.error.message);
      return c.value;
    };
    const post = (path: string, body: unknown, station: TestStation = A) =>
      call(reg.url, 'POST', path, { body, station });
    const admin = (method: string, path: string, body?: unknown) =>
      call(reg.url, method, path, { bearer: keys.adminToken, ...(body !== undefined ? { body } : {}) });

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      clock = systemClock;
      const r = await startRegistry({
        db,
        port: 0,
        signer: keys.signer,
        registryChain: keys.chain,
        registryId: 'registry-test',
        adminToken: keys.adminToken,
        clock,
        logger: quietLogger,
      });
      if (!r.ok) throw new Error(r.error.message);
      reg = r.value;
      for (const s of [A, B, R]) {
        const e = await admin('POST', '/v1/admin/stations', { stationId: s.id, chainPem: s.chainPem });
        expect(e.status, e.text).toBe(201);
      }
    });

    afterAll(async () => {
      await reg?.close();
      await db?.close();
      await tdb?.cleanup();
    });

    it('answers health without authentication', async () => {
      const h = await call(reg.url, 'GET', '/v1/health');
      expect(h.status).toBe(200);
      expect(h.json).toMatchObject({ status: 'ok', api: 'v1', registryId: 'registry-test' });
    });

    it('enrols stations only with the admin token and a consistent chain', async () => {
      expect(
        (await call(reg.url, 'POST', '/v1/admin/stations', { body: { stationId: 'station-x', chainPem: X.chainPem } }))
          .status,
      ).toBe(401);
      const wrong = await call(reg.url, 'POST', '/v1/admin/stations', {
        body: { stationId: 'station-x', chainPem: X.chainPem },
        bearer: 'A'.repeat(43),
      });
      expect(wrong.status).toBe(403);
      // CN of the station certificate must be the station id.
      const cn = await admin('POST', '/v1/admin/stations', { stationId: 'station-y', chainPem: X.chainPem });
      expect(cn.status).toBe(400);
      expect(cn.text).toContain('station-x');
      // Only [station, CA, root].
      const short = await admin('POST', '/v1/admin/stations', {
        stationId: 'station-x',
        chainPem: X.chainPem.split('-----END CERTIFICATE-----\n')[0] + '-----END CERTIFICATE-----\n',
      });
      expect(short.status).toBe(400);
      // Same station again: a no-op; another chain for the same id: a conflict.
      const again = await admin('POST', '/v1/admin/stations', { stationId: A.id, chainPem: A.chainPem });
      expect(again.status).toBe(200);
      expect((again.json as { created: boolean }).created).toBe(false);
      const other = await admin('POST', '/v1/admin/stations', { stationId: A.id, chainPem: B.chainPem });
      expect(other.status).toBe(400); // B's certificate CN is station-b
      expect((await counts()).stations).toBe(3);
    });

    it('ingests a batch, signs a receipt that jose verifies, and is idempotent by batch and record id', async () => {
      const batchId = uuid();
      const first = await post('/v1/batches', { batchId, records: recsA.slice(0, 4).map((r) => r.jws) });
      expect(first.status, first.text).toBe(200);
      const b = first.json as BatchResponse;
      expect(b.summary).toEqual({ accepted: 4, duplicate: 0, conflict: 0, rejected: 0 });
      expect(b.repeated).toBe(false);
      const viaJose = await joseVerify(b.receipt);
      expect(viaJose).toMatchObject({
        schema: 'line-station/receipt/v1',
        stationId: A.id,
        batchId,
        registryId: 'registry-test',
      });
      expect(viaJose.accepted).toEqual(recsA.slice(0, 4).map((r) => ({ recordId: r.recordId, sha256: r.sha256 })));
      expect(decodeProtectedHeader(b.receipt).x5c?.length).toBe(1);
      const mine = await verifyReceipt(b.receipt, fromPemOrThrow(keys.certificatePem), { stationId: A.id, batchId });
      expect(mine.ok).toBe(true);
      expect((await counts()).records).toBe(4);

      // The same batch again (a retry): the stored answer, the same receipt.
      const again = await post('/v1/batches', { batchId, records: recsA.slice(0, 4).map((r) => r.jws) });
      expect(again.status).toBe(200);
      expect((again.json as BatchResponse).repeated).toBe(true);
      expect((again.json as BatchResponse).receipt).toBe(b.receipt);

      // Same records in a new batch: duplicates, acknowledged again, stored once.
      const dup = await post('/v1/batches', { batchId: uuid(), records: recsA.slice(2, 5).map((r) => r.jws) });
      const d = dup.json as BatchResponse;
      expect(d.summary).toEqual({ accepted: 1, duplicate: 2, conflict: 0, rejected: 0 });
      expect((await joseVerify(d.receipt)).accepted.map((x) => x.recordId)).toEqual(
        recsA.slice(2, 5).map((r) => r.recordId),
      );
      expect((await counts()).records).toBe(5);

      // Same batchId, different content: refused, nothing stored.
      const clash = await post('/v1/batches', { batchId, records: [recsA[5]!.jws] });
      expect(clash.status).toBe(409);
      expect((clash.json as { error: { code: string } }).error.code).toBe('BATCH_CONFLICT');
      expect((await counts()).records).toBe(5);
    });

    it('flags a conflict when a record id comes back with different content', async () => {
      const orig = recsA[0]!;
      const forged = await makeRecord(A, systemClock, { recordId: orig.recordId });
      const before = await counts();
      const r = await post('/v1/batches', { batchId: uuid(), records: [forged.jws] });
      const b = r.json as BatchResponse;
      expect(b.results[0]).toMatchObject({ status: 'conflict', reason: 'conflict', recordId: orig.recordId });
      expect((await joseVerify(b.receipt)).rejected).toEqual([
        { index: 0, recordId: orig.recordId, reason: 'conflict' },
      ]);
      const after = await counts();
      expect(after.records).toBe(before.records);
      expect(after.conflicts).toBe(before.conflicts + 1);
      const c = await db.listConflicts(A.id);
      expect(c.ok && c.value.at(-1)).toMatchObject({
        recordId: orig.recordId,
        storedSha256: orig.sha256,
        offeredSha256: forged.sha256,
      });
      const dev = await admin('GET', `/v1/devices/${orig.record.board.serialNumber}`);
      expect((dev.json as { records: Array<{ sha256: string }> }).records.map((x) => x.sha256)).toEqual([orig.sha256]);
    });

    it('rejects invalid records with their reason and stores none of them', async () => {
      const other = await createTestSigner('P-256');
      const foreignDevice = await makeDevice(B, systemClock);
      const cases: Array<[string, Promise<string> | string]> = [
        ['signature-invalid', makeRecord(A, systemClock, { recordSigner: other }).then((r) => r.jws)],
        ['signer-mismatch', makeRecord(B, systemClock).then((r) => r.jws)],
        [
          'station-mismatch',
          makeRecord(A, systemClock, { mutate: (r) => ({ ...r, station: { ...r.station, id: 'station-b' } }) }).then(
            (r) => r.jws,
          ),
        ],
        ['certificate-invalid', makeRecord(A, systemClock, { device: foreignDevice }).then((r) => r.jws)],
        [
          'key-mismatch',
          (async () => {
            const k = await createTestSigner('P-256');
            const spki = Buffer.from(k.publicKeySpki).toString('base64url');
            return (
              await makeRecord(A, systemClock, {
                format: 'v1', // key-bound evidence (v2, v3) binds the key: another key does not pass the schema
                mutate: (r) => ({ ...r, key: { ...r.key, publicKeySpki: spki } }),
              })
            ).jws;
          })(),
        ],
        ['manifest-invalid', makeRecord(A, systemClock, { manifestSigner: other }).then((r) => r.jws)],
        ['malformed', 'not-a-jws'],
        ['malformed', recsA[5]!.jws.slice(0, 500)],
        // A well-formed signature of another record.
        [
          'signature-invalid',
          recsA[5]!.jws.slice(0, recsA[5]!.jws.lastIndexOf('.')) + recsA[4]!.jws.slice(recsA[4]!.jws.lastIndexOf('.')),
        ],
      ];
      const jws = await Promise.all(cases.map(([, j]) => j));
      const before = await counts();
      const r = await post('/v1/batches', { batchId: uuid(), records: jws });
      expect(r.status, r.text).toBe(200);
      const b = r.json as BatchResponse;
      expect(b.results.map((x) => x.reason)).toEqual(cases.map(([reason]) => reason));
      expect(b.results.every((x) => x.status === 'rejected' && typeof x.message === 'string')).toBe(true);
      expect((await joseVerify(b.receipt)).accepted).toEqual([]);
      expect((await counts()).records).toBe(before.records);
    });

    it('rejects every single-character modification of a record', async () => {
      const target = (await makeRecords(A, systemClock, 1))[0]!;
      const positions: number[] = [];
      for (let i = 0; i < target.jws.length; i += Math.max(1, Math.floor(target.jws.length / 400))) positions.push(i);
      positions.push(target.jws.indexOf('.'), target.jws.lastIndexOf('.'), target.jws.length - 1);
      const variants = positions.map((i) => flipChar(target.jws, i)).filter((v) => v !== target.jws);
      const before = await counts();
      const r = await post('/v1/batches', { batchId: uuid(), records: variants.slice(0, 500) });
      expect(r.status, r.text).toBe(200);
      const b = r.json as BatchResponse;
      for (const res of b.results) {
        expect(res.status).toBe('rejected');
        expect(['malformed', 'header-invalid', 'signer-mismatch', 'signature-invalid']).toContain(res.reason);
      }
      expect((await counts()).records).toBe(before.records);
      // The unmodified record is still accepted afterwards.
      const okr = await post('/v1/batches', { batchId: uuid(), records: [target.jws] });
      expect((okr.json as BatchResponse).summary.accepted).toBe(1);
    });

    it('refuses unauthenticated, unknown, mis-signed, replayed, stale and revoked requests and stores nothing', async () => {
      const fresh = await makeRecords(A, systemClock, 1);
      const body = JSON.stringify({ batchId: uuid(), records: [fresh[0]!.jws] });
      const before = await counts();
      const expectCode = async (
        p: Promise<{ status: number; json: unknown; text: string }>,
        status: number,
        code: string,
      ) => {
        const a = await p;
        expect(a.status, a.text).toBe(status);
        expect((a.json as { error: { code: string } }).error.code).toBe(code);
        expect(a.text).not.toMatch(/\bat .*\.ts:\d+/); // never a stack trace
      };
      await expectCode(call(reg.url, 'POST', '/v1/batches', { rawBody: body }), 401, 'AUTH_REQUIRED');
      // Malformed header, unknown station, bad signature: the same generic answer (the log has the reason).
      await expectCode(
        call(reg.url, 'POST', '/v1/batches', { rawBody: body, authorization: 'Basic abc' }),
        401,
        'AUTH_SIGNATURE_INVALID',
      );
      await expectCode(
        call(reg.url, 'POST', '/v1/batches', { rawBody: body, station: X }),
        401,
        'AUTH_SIGNATURE_INVALID',
      );
      // Mis-signed: station A's id, another key.
      const impostor: TestStation = { ...A, signer: await createTestSigner('P-256') };
      await expectCode(
        call(reg.url, 'POST', '/v1/batches', { rawBody: body, station: impostor }),
        401,
        'AUTH_SIGNATURE_INVALID',
      );
      const aud = await audienceAt(reg.url);
      const signA = (path: string, b: string) => signRequest(A.signer, A.id, 'POST', path, b, systemClock, aud);
      // Replayed: the exact same signed request twice.
      const auth = await signA('/v1/batches', body);
      if (!auth.ok) throw new Error(auth.error.message);
      const once = await call(reg.url, 'POST', '/v1/batches', { rawBody: body, authorization: auth.value });
      expect(once.status).toBe(200);
      const afterOnce = await counts();
      await expectCode(
        call(reg.url, 'POST', '/v1/batches', { rawBody: body, authorization: auth.value }),
        401,
        'AUTH_REPLAY',
      );
      // Signed for another body or path.
      const auth2 = await signA('/v1/batches', body);
      if (!auth2.ok) throw new Error(auth2.error.message);
      const body2 = JSON.stringify({ batchId: uuid(), records: [fresh[0]!.jws] });
      await expectCode(
        call(reg.url, 'POST', '/v1/batches', { rawBody: body2, authorization: auth2.value }),
        401,
        'AUTH_REQUEST_MISMATCH',
      );
      const auth3 = await signA('/v1/bundles', body2);
      if (!auth3.ok) throw new Error(auth3.error.message);
      await expectCode(
        call(reg.url, 'POST', '/v1/batches', { rawBody: body2, authorization: auth3.value }),
        401,
        'AUTH_REQUEST_MISMATCH',
      );
      // Stale: the station clock is 10 minutes off.
      const late: Clock = { now: () => new Date(Date.now() - 600_000), monotonicMs: () => 0 };
      await expectCode(
        call(reg.url, 'POST', '/v1/batches', { rawBody: body2, station: A, clock: late }),
        401,
        'AUTH_CLOCK_SKEW',
      );
      // Revoked: refused from then on (bundles too). The record is made 2 s before the revocation: X.509 times have
      // whole seconds, and a certificate issued in the second of the revocation counts as issued after it.
      const earlier: Clock = { now: () => new Date(Date.now() - 2000), monotonicMs: () => 0 };
      const rec = await makeRecords(R, earlier, 1);
      const rb = JSON.stringify({ batchId: uuid(), records: [rec[0]!.jws] });
      const rv = await admin('POST', `/v1/admin/stations/${R.id}/revoke`);
      expect(rv.status).toBe(200);
      await expectCode(call(reg.url, 'POST', '/v1/batches', { rawBody: rb, station: R }), 403, 'AUTH_STATION_REVOKED');
      const bundle = await createBundle({
        signer: R.signer,
        chain: R.chain,
        stationId: R.id,
        records: [rec[0]!.jws],
        clock: systemClock,
      });
      if (!bundle.ok) throw new Error(bundle.error.message);
      await expectCode(
        call(reg.url, 'POST', '/v1/bundles', { body: { bundle: bundle.value.jws }, bearer: keys.adminToken }),
        403,
        'AUTH_STATION_REVOKED',
      );
      const after = await counts();
      expect(after.records).toBe(afterOnce.records);
      expect(after.batches).toBe(afterOnce.batches);
      expect(afterOnce.records).toBe(before.records + 1); // only the one legitimate request
      expect(after.stations).toBe(before.stations);

      // HQ may still take in what the revoked station made BEFORE its revocation: an admin import, deliberately
      // (allowRevokedStation), accepts those records and rejects the ones completed after it (STATION_REVOKED).
      const afterRev = await makeRecords(R, systemClock, 1); // completed after the revocation
      const both = await createBundle({
        signer: R.signer,
        chain: R.chain,
        stationId: R.id,
        records: [rec[0]!.jws, afterRev[0]!.jws],
        clock: systemClock,
      });
      if (!both.ok) throw new Error(both.error.message);
      const byStation = await call(reg.url, 'POST', '/v1/bundles', {
        body: { bundle: both.value.jws, allowRevokedStation: true },
        station: R,
      });
      expect(byStation.status).toBe(403); // a revoked station cannot even authenticate
      const imported = await call(reg.url, 'POST', '/v1/bundles', {
        body: { bundle: both.value.jws, allowRevokedStation: true },
        bearer: keys.adminToken,
      });
      expect(imported.status, imported.text).toBe(200);
      const ir = imported.json as BundleResponse;
      expect(ir.summary).toMatchObject({ accepted: 1, rejected: 1 });
      expect(ir.results.find((x) => x.recordId === rec[0]!.record.recordId)?.status).toBe('accepted');
      expect(ir.results.find((x) => x.recordId === afterRev[0]!.record.recordId)).toMatchObject({
        status: 'rejected',
        reason: 'STATION_REVOKED',
      });
      expect((await counts()).records).toBe(after.records + 1);
      // Audited with the ingest, once: the same bundle again stores nothing and writes no second event.
      const again = await call(reg.url, 'POST', '/v1/bundles', {
        body: { bundle: both.value.jws, allowRevokedStation: true },
        bearer: keys.adminToken,
      });
      expect((again.json as BundleResponse).repeated).toBe(true);
      const ev = await db.sql.all(
        `SELECT payload FROM lifecycle_events WHERE type = 'station.revoked-bundle-imported'`,
      );
      expect(ev.map((e) => JSON.parse(String(e['payload'])) as { records: string[] })).toMatchObject([
        { records: [rec[0]!.record.recordId] },
      ]);
    });

    it('imports bundles: twice is harmless, any modified byte or truncation rejects the whole bundle', async () => {
      const recs = await makeRecords(A, systemClock, 3);
      const b = await createBundle({
        signer: A.signer,
        chain: A.chain,
        stationId: A.id,
        records: recs.map((r) => r.jws),
        clock: systemClock,
      });
      if (!b.ok) throw new Error(b.error.message);
      const before = await counts();
      const first = await call(reg.url, 'POST', '/v1/bundles', { body: { bundle: b.value.jws }, station: A });
      expect(first.status, first.text).toBe(200);
      const fr = first.json as BundleResponse;
      expect(fr.bundleId).toBe(b.value.bundleId);
      expect(fr.summary.accepted).toBe(3);
      expect((await joseVerify(fr.receipt)).batchId).toBe(b.value.bundleId);
      const second = await call(reg.url, 'POST', '/v1/bundles', {
        body: { bundle: b.value.jws },
        bearer: keys.adminToken,
      });
      expect(second.status).toBe(200);
      expect((second.json as BundleResponse).repeated).toBe(true);
      expect((await counts()).records).toBe(before.records + 3);
      // A station may not submit another station's bundle.
      const foreign = await call(reg.url, 'POST', '/v1/bundles', { body: { bundle: b.value.jws }, station: B });
      expect(foreign.status).toBe(403);

      const recs2 = await makeRecords(A, systemClock, 2);
      const b2 = await createBundle({
        signer: A.signer,
        chain: A.chain,
        stationId: A.id,
        records: recs2.map((r) => r.jws),
        clock: systemClock,
      });
      if (!b2.ok) throw new Error(b2.error.message);
      const mid = await counts();
      const step = Math.max(1, Math.floor(b2.value.jws.length / 60));
      for (let i = 0; i < b2.value.jws.length; i += step) {
        const v = flipChar(b2.value.jws, i);
        const r = await call(reg.url, 'POST', '/v1/bundles', { body: { bundle: v }, bearer: keys.adminToken });
        expect(r.status, `position ${i}: ${r.text}`).toBe(422);
        expect((r.json as { error: { code: string } }).error.code).toBe('BUNDLE_INVALID');
      }
      const cut = await call(reg.url, 'POST', '/v1/bundles', {
        body: { bundle: b2.value.jws.slice(0, Math.floor(b2.value.jws.length / 2)) },
        bearer: keys.adminToken,
      });
      expect(cut.status).toBe(422);
      expect((cut.json as { error: { message: string } }).error.message).toMatch(/truncated|corrupted|modified/);
      expect((await counts()).records).toBe(mid.records);
    });

    it('detects any modification of a receipt', async () => {
      const recs = await makeRecords(A, systemClock, 1);
      const r = await post('/v1/batches', { batchId: uuid(), records: [recs[0]!.jws] });
      const receipt = (r.json as BatchResponse).receipt;
      const cert = fromPemOrThrow(keys.certificatePem);
      const step = Math.max(1, Math.floor(receipt.length / 80));
      for (let i = 0; i < receipt.length; i += step) {
        const v = flipChar(receipt, i);
        if (v === receipt) continue;
        expect((await verifyReceipt(v, cert)).ok, `position ${i}`).toBe(false);
        await expect(joseVerify(v)).rejects.toThrow();
      }
      expect((await verifyReceipt(receipt, cert)).ok).toBe(true);
      // Another registry's certificate does not verify it.
      const otherSigner = await createTestSigner('P-256');
      const { createRootCertificate } = await import('../../core/pki/ca.js');
      const otherCert = await createRootCertificate({
        signer: otherSigner,
        subject: { commonName: 'Other' },
        validityDays: 10,
        clock: systemClock,
      });
      if (!otherCert.ok) throw new Error('cert');
      expect((await verifyReceipt(receipt, otherCert.value)).ok).toBe(false);
    });

    it('answers queries: device, records with pagination, stations and stats', async () => {
      const dev = recsA[1]!;
      const d = await admin('GET', `/v1/devices/${dev.record.board.chipId}`);
      expect(d.status).toBe(200);
      expect(d.json).toMatchObject({
        chipId: dev.record.board.chipId,
        serialNumber: dev.record.board.serialNumber,
        currentRecordId: dev.recordId,
      });
      expect((await admin('GET', '/v1/devices/LSUNKNOWN')).status).toBe(404);
      expect((await call(reg.url, 'GET', `/v1/devices/${dev.record.board.chipId}`)).status).toBe(401);

      const total = Number(
        (await db.sql.all('SELECT COUNT(*) AS n FROM records WHERE station_id = ?', [A.id]))[0]!['n'],
      );
      expect(total).toBeGreaterThan(3);
      const seen = new Set<string>();
      let cursor: string | null = null;
      let pages = 0;
      do {
        const q: string = `/v1/records?station=${A.id}&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
        const p = await admin('GET', q);
        expect(p.status, p.text).toBe(200);
        const page = p.json as { records: Array<{ recordId: string; stationId: string }>; nextCursor: string | null };
        for (const r of page.records) {
          expect(r.stationId).toBe(A.id);
          seen.add(r.recordId);
        }
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 100);
      expect(seen.size).toBe(total);
      const wo = await admin('GET', `/v1/records?workOrder=NOPE&limit=5`);
      expect((wo.json as { records: unknown[] }).records).toEqual([]);
      const future = await admin(
        'GET',
        `/v1/records?from=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`,
      );
      expect((future.json as { records: unknown[] }).records).toEqual([]);
      expect((await admin('GET', '/v1/records?limit=0')).status).toBe(400);
      expect((await admin('GET', '/v1/records?bogus=1')).status).toBe(400);

      const st = await admin('GET', '/v1/stations');
      const list = (
        st.json as {
          stations: Array<{ stationId: string; records: number; lastSyncAt: string | null; revokedAt: string | null }>;
        }
      ).stations;
      const a = list.find((s) => s.stationId === A.id)!;
      expect(a.records).toBe(total);
      expect(a.lastSyncAt).not.toBeNull();
      expect(list.find((s) => s.stationId === R.id)!.revokedAt).not.toBeNull();
      const stats = await admin('GET', '/v1/stats');
      // every station's records: A's, plus R's one taken in before its revocation
      const all = (await counts()).records;
      expect(all).toBe(total + 1);
      expect(stats.json).toMatchObject({ stations: 3, records: all, devices: all });
    });

    it('answers bad requests with typed JSON errors', async () => {
      const bad = await call(reg.url, 'POST', '/v1/batches', { rawBody: '{not json', station: A });
      expect(bad.status).toBe(400);
      expect(bad.json).toMatchObject({ error: { code: 'BODY_INVALID' } });
      const extra = await post('/v1/batches', { batchId: uuid(), records: [recsA[0]!.jws], extra: 1 });
      expect(extra.status).toBe(400);
      const notUuid = await post('/v1/batches', { batchId: 'x', records: [recsA[0]!.jws] });
      expect(notUuid.status).toBe(400);
      const tooMany = await post('/v1/batches', { batchId: uuid(), records: Array.from({ length: 501 }, () => 'x') });
      expect(tooMany.status).toBe(400);
      // The caller is checked before the size (the front door reads no body of an unauthenticated caller).
      const huge = await call(reg.url, 'POST', '/v1/batches', {
        rawBody: 'x'.repeat(9 * 1024 * 1024),
        authorization: 'LS-Sig x',
      });
      expect(huge.status).toBe(401);
      expect(huge.json).toMatchObject({ error: { code: 'AUTH_SIGNATURE_INVALID' } });
      const hugeSigned = await call(reg.url, 'POST', '/v1/batches', {
        rawBody: 'x'.repeat(9 * 1024 * 1024),
        station: A,
      });
      expect(hugeSigned.status).toBe(413);
      expect(hugeSigned.json).toMatchObject({ error: { code: 'BODY_TOO_LARGE' } });
      expect((await call(reg.url, 'GET', '/v1/nope')).status).toBe(404);
      expect((await call(reg.url, 'DELETE', '/v1/health')).status).toBe(405);
    });
  });
}

function fromPemOrThrow(pem: string): Uint8Array {
  const r = fromPem(pem, 'CERTIFICATE');
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

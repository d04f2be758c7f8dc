/**
 * Record format v3 (the station chain once: no `chain`, the manifest as `{payload, signature}` rebuilt with the
 * record's own header) through the real paths, over HTTP with SQLite (and PostgreSQL when LINE_STATION_TEST_PG_URL is
 * set): `POST /v1/batches` (packed v2 batch and v1 compact strings) and a signed bundle import. v3 and v2 records are
 * stored byte for byte; every attack on what v3 changed is refused with the reason the v2 checks give: a manifest
 * payload changed after signing, a manifest signature of another key or of another record, an x5c chain swapped
 * after signing or signed over another issuing chain, a v3 record with a `chain` member or a `manifest.jws`, a
 * v2-shaped manifest under the v3 schema and the other way round.
 */
import 'reflect-metadata';
import { compactVerify, importX509 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../core/canonical.js';
import { utf8 } from '../../core/bytes.js';
import { systemClock } from '../../core/ports.js';
import { signJws } from '../../core/pki/jws.js';
import { toPem } from '../../core/pki/pem.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { packRecords, type PackedJws } from '../../core/hq/pack.js';
import { createBundleV2, type BatchResponse, type BundleResponse } from '../../core/hq/protocol.js';
import {
  RECORD_SCHEMA,
  RECORD_SCHEMA_V3,
  RECORD_TYP,
  type ProvisioningRecord,
} from '../../core/provisioning/record.js';
import { jwsHeaderOf, recordManifestJws } from '../../core/provisioning/record-manifest.js';
import {
  createTestStation,
  makeDevice,
  makeRecord,
  type DeviceIdentity,
  type MadeRecord,
  type TestStation,
} from '../../testkit/registry/fixtures.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import {
  backends,
  call,
  createRegistryKeys,
  startEnrolledRegistry,
  type EnrolledRegistry,
  type TestKeys,
} from '../../testkit/registry/harness.js';

let keys: TestKeys;
let A: TestStation;
let twin: TestStation;
let device: DeviceIdentity;

beforeAll(async () => {
  keys = await createRegistryKeys();
  A = await createTestStation('station-v3', systemClock);
  // Same station id, another PKI: its issuing CA and root are not A's.
  twin = await createTestStation(A.id, systemClock);
  device = await makeDevice(A, systemClock);
});
afterAll(async () => {
  await keys?.cleanup();
});

const uuid = () => globalThis.crypto.randomUUID();
const v3 = (r: ProvisioningRecord) => {
  if (r.schema !== RECORD_SCHEMA_V3) throw new Error('a v3 record expected');
  return r;
};

/** A record payload signed by A's key as it is (no schema check), x5c = A's chain. */
async function signedAsIs(base: MadeRecord, payload: unknown): Promise<MadeRecord> {
  const jws = await signJws({
    signer: A.signer,
    payload: utf8(canonicalJson(payload)),
    header: { typ: RECORD_TYP, x5c: A.chain },
  });
  if (!jws.ok) throw new Error(jws.error.message);
  return { ...base, jws: jws.value };
}

/** The attacks, each with the reason the registry must give (the one the v2 check of the same kind gives). */
async function attacks(): Promise<Array<[string, string, string]>> {
  const other = await createTestSigner('P-256');
  const base = () => makeRecord(A, systemClock, { device });
  const a = await base();
  const b = await base();
  const ma = v3(a.record).manifest;
  const v2 = await makeRecord(A, systemClock, { device, format: 'v2' });
  const v2Jws = v2.record.schema === RECORD_SCHEMA ? v2.record.manifest.jws : '';
  // x5c swapped after signing: the header names twin's issuing CA and root.
  const [h, p, s] = a.jws.split('.') as [string, string, string];
  const hdr = JSON.parse(Buffer.from(h, 'base64url').toString()) as { x5c: string[] };
  const swappedHeader = {
    ...hdr,
    x5c: [hdr.x5c[0]!, ...twin.chain.slice(1).map((d) => Buffer.from(d).toString('base64'))],
  };
  const swapped = `${Buffer.from(canonicalJson(swappedHeader)).toString('base64url')}.${p}.${s}`;
  const otherChain = [A.chain[0]!, ...twin.chain.slice(1)];
  return [
    [
      'manifest payload changed after signing',
      'manifest-invalid',
      (
        await makeRecord(A, systemClock, {
          device,
          mutate: (r) => {
            const m = v3(r).manifest;
            const payload = { ...m.payload, capturedAt: '2020-01-01T00:00:00.000Z' };
            return { ...r, manifest: { ...m, payload } } as ProvisioningRecord;
          },
        })
      ).jws,
    ],
    [
      'manifest payload of another board (with its signature)',
      'manifest-invalid',
      (await makeRecord(A, systemClock, { device, mutate: (r) => ({ ...r, manifest: ma }) as ProvisioningRecord })).jws,
    ],
    [
      "another record's manifest signature",
      'manifest-invalid',
      (
        await makeRecord(A, systemClock, {
          device,
          mutate: (r) => ({ ...r, manifest: { ...v3(r).manifest, signature: ma.signature } }) as ProvisioningRecord,
        })
      ).jws,
    ],
    [
      'manifest signed by another key',
      'manifest-invalid',
      (await makeRecord(A, systemClock, { device, manifestSigner: other })).jws,
    ],
    ['x5c swapped after signing', 'signature-invalid', swapped],
    [
      "record signed over another issuing chain, manifest over A's",
      'certificate-invalid', // (the x5c check comes first; the manifest would not verify either)
      (
        await makeRecord(A, systemClock, {
          device,
          x5c: otherChain,
          // the manifest as the station signed it over its own chain
          mutate: (r) => ({ ...r, manifest: v3(b.record).manifest }) as ProvisioningRecord,
        })
      ).jws,
    ],
    [
      'record and manifest signed over another issuing chain',
      'certificate-invalid',
      (await makeRecord(A, systemClock, { device, x5c: otherChain })).jws,
    ],
    [
      'v3 record with a chain member',
      'payload-invalid',
      (
        await signedAsIs(b, {
          ...b.record,
          chain: [toPem(A.chain[1]!, 'CERTIFICATE'), toPem(A.chain[2]!, 'CERTIFICATE')],
        })
      ).jws,
    ],
    [
      'v3 record with manifest.jws as well',
      'payload-invalid',
      (await signedAsIs(b, { ...b.record, manifest: { ...v3(b.record).manifest, jws: v2Jws } })).jws,
    ],
    [
      'v2-shaped manifest under the v3 schema',
      'payload-invalid',
      (await signedAsIs(b, { ...b.record, manifest: { jws: v2Jws } })).jws,
    ],
    [
      'v3-shaped manifest under the v2 schema',
      'payload-invalid',
      (await signedAsIs(v2, { ...v2.record, manifest: v3(b.record).manifest })).jws,
    ],
    [
      'v3 schema on a v2 record (chain and manifest.jws)',
      'payload-invalid',
      (await signedAsIs(v2, { ...v2.record, schema: RECORD_SCHEMA_V3 })).jws,
    ],
  ];
}

for (const backend of backends()) {
  describe(`record format v3 (${backend})`, () => {
    let running: EnrolledRegistry;
    let db: RegistryDb;
    let reg: { url: string };
    const count = async () => {
      const c = await db.counts();
      if (!c.ok) throw new Error(c.error.message);
      return c.value.records;
    };
    const admin = (method: string, path: string, body?: unknown) => running.admin(method, path, body);

    beforeAll(async () => {
      running = await startEnrolledRegistry(backend, keys, [A], 'registry-v3');
      ({ db } = running);
      reg = { url: running.url };
    });
    afterAll(async () => {
      await running?.close();
    });

    it('stores v3 and v2 records byte for byte; a stored v3 record and its rebuilt manifest verify with jose', async () => {
      const made = [
        ...(await Promise.all([0, 1, 2, 3].map(() => makeRecord(A, systemClock, { device })))),
        await makeRecord(A, systemClock, { device, format: 'v2' }),
        await makeRecord(A, systemClock, { device, format: 'v1' }),
      ];
      expect(made.map((m) => m.record.schema).slice(3)).toEqual([
        RECORD_SCHEMA_V3,
        RECORD_SCHEMA,
        'line-station/provisioning-record/v1',
      ]);
      const r = await call(reg.url, 'POST', '/v1/batches', {
        body: { batchId: uuid(), ...packRecords(made.map((m) => m.jws)) },
        station: A,
      });
      expect(r.status, r.text).toBe(200);
      expect((r.json as BatchResponse).summary).toMatchObject({ accepted: 6, rejected: 0 });
      const stored = await db.deviceRecords(made[0]!.record.board.serialNumber);
      if (!stored.ok) throw new Error(stored.error.message);
      expect(stored.value.map((d) => d.jws)).toEqual([made[0]!.jws]);
      // Independently (jose): the stored record with its x5c leaf, then the manifest rebuilt by the docs' rule.
      const jws = stored.value[0]!.jws;
      const header = jwsHeaderOf(jws)!;
      const leaf = await importX509(
        `-----BEGIN CERTIFICATE-----\n${header.x5c![0]}\n-----END CERTIFICATE-----`,
        'ES256',
      );
      const rec = JSON.parse(new TextDecoder().decode((await compactVerify(jws, leaf)).payload)) as unknown;
      const manifest = recordManifestJws(rec, header);
      if (!manifest.ok) throw new Error(manifest.error);
      const v = await compactVerify(manifest.value, leaf);
      expect(v.protectedHeader).toEqual({ alg: 'ES256', typ: 'line-station-manifest+jws', x5c: header.x5c });
      expect(JSON.parse(new TextDecoder().decode(v.payload))).toEqual(v3(made[0]!.record).manifest.payload);
    });

    it('refuses every v3 attack in a packed batch, as compact strings, and in a bundle, with the v2 reason codes', async () => {
      const list = await attacks();
      // Valid records around the attacks: 20+ records, so the verification workers check them (ingest's path).
      const good = await Promise.all(Array.from({ length: 8 }, () => makeRecord(A, systemClock, { device })));
      const jws = [good[0]!.jws, ...list.map(([, , j]) => j), ...good.slice(1).map((g) => g.jws)];
      const expected = ['accepted', ...list.map(([, reason]) => reason), ...Array<string>(7).fill('accepted')];
      const reasons = (res: BatchResponse) => res.results.map((x) => (x.status === 'accepted' ? 'accepted' : x.reason));
      const before = await count();
      // Packed (format v2 batch): the rebuild works on every one of them.
      const packed = packRecords(jws);
      expect(packed.records.every((x) => typeof x === 'object')).toBe(true);
      const r1 = await call(reg.url, 'POST', '/v1/batches', { body: { batchId: uuid(), ...packed }, station: A });
      expect(r1.status, r1.text).toBe(200);
      const res1 = r1.json as BatchResponse;
      list.forEach(([what, reason], i) => expect(reasons(res1)[i + 1], what).toBe(reason));
      expect(reasons(res1)).toEqual(expected);
      // The same records as compact JWS strings (a v1 batch): the same answers.
      const r2 = await call(reg.url, 'POST', '/v1/batches', { body: { batchId: uuid(), records: jws }, station: A });
      expect(r2.status, r2.text).toBe(200);
      // (the valid records are already stored: answered as duplicates, not stored again)
      expect(reasons(r2.json as BatchResponse).slice(1, list.length + 1)).toEqual(expected.slice(1, list.length + 1));
      expect(await count()).toBe(before + 8);
      // A bundle the station signed, holding the attacks: each refused with its reason, nothing else stored.
      const extra = await makeRecord(A, systemClock, { device });
      const b = await createBundleV2({
        signer: A.signer,
        chain: A.chain,
        stationId: A.id,
        records: [extra.jws, ...list.map(([, , j]) => j)],
        clock: systemClock,
      });
      if (!b.ok) throw new Error(b.error.message);
      expect((JSON.parse(b.value.content) as { records: unknown[] }).records.every((x) => typeof x === 'object')).toBe(
        true,
      );
      const r3 = await admin('POST', '/v1/bundles', { bundle: b.value.content });
      expect(r3.status, r3.text).toBe(200);
      expect(reasons(r3.json as BundleResponse)).toEqual(expected.slice(0, list.length + 1));
      expect(await count()).toBe(before + 9);
    });

    it('a packed v3 record whose x5c names another certificate of the table is refused (signature-invalid)', async () => {
      const made = [await makeRecord(A, systemClock, { device }), await makeRecord(twin, systemClock)];
      const p = packRecords(made.map((m) => m.jws));
      const rec = p.records[0] as PackedJws;
      const twinCa = p.certificates.indexOf(Buffer.from(twin.chain[1]!).toString('base64'));
      expect(twinCa).toBeGreaterThan(0);
      const swapped = { ...rec, x5c: [rec.x5c![0]!, twinCa, rec.x5c![2]!] };
      const r = await call(reg.url, 'POST', '/v1/batches', {
        body: { batchId: uuid(), certificates: p.certificates, records: [swapped] },
        station: A,
      });
      expect(r.status, r.text).toBe(200);
      expect((r.json as BatchResponse).results[0]).toMatchObject({ status: 'rejected', reason: 'signature-invalid' });
    });
  });
}

/**
 * Record verification of a packed batch in the verification workers (the path ingest and bundle import take:
 * verifyPool, one-pass rebuild, per-batch caches, compiled schemas) against the reference path (each record as its
 * compact JWS, parsed and decoded from its text, on this thread): the same verdict, reason and message for every
 * record, on a batch that mixes valid records with attacks on what is cached or answered without zod: a record
 * signed by another key, a manifest signed by another key, a device certificate from another CA with the same
 * names, a manifest replaced or tampered with inside a record the station signed, a station certificate as the device
 * certificate, another device key, and records that differ only in fields the compiled schema checks.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import { toPem } from '../../core/pki/pem.js';
import { signJws } from '../../core/pki/jws.js';
import { canonicalJson } from '../../core/canonical.js';
import { toBase64Url, utf8 } from '../../core/bytes.js';
import { RECORD_SCHEMA_V3, RECORD_TYP } from '../../core/provisioning/record.js';
import { packRecords } from '../../core/hq/pack.js';
import type { ProvisioningRecord } from '../../core/provisioning/record.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import {
  createTestStation,
  enrolledTrust,
  makeDevice,
  makeRecord,
  type MadeRecord,
  type TestStation,
} from '../../testkit/registry/fixtures.js';
import { verifyInline, verifyPool } from './pool.js';
import type { StationTrust } from './verify.js';

let A: TestStation;
let trust: StationTrust;

beforeAll(async () => {
  A = await createTestStation('station-attack', systemClock);
  trust = await enrolledTrust(A);
});
afterAll(async () => {
  await verifyPool().close();
});

describe('verification of a packed batch in the workers', () => {
  it('gives every record the verdict of the reference path; attacks on the caches are refused', async () => {
    const device = await makeDevice(A, systemClock);
    const valid: MadeRecord[] = [];
    for (let i = 0; i < 12; i++) valid.push(await makeRecord(A, systemClock, { device }));
    const other = await createTestSigner('P-256');
    // Another station with the same id: its issuing CA has the same subject name as A's, with another key.
    const twin = await createTestStation(A.id, systemClock);
    const twinDevice = await makeDevice(twin, systemClock);
    // v2 records (manifest.jws, chain) and v1 ones are still read: some in the batch too.
    const v2 = await makeRecord(A, systemClock, { device, format: 'v2' });
    const v1 = await makeRecord(A, systemClock, { device, format: 'v1' });
    valid.splice(3, 0, v2, v1);
    const v2Manifest = (m: MadeRecord): string => {
      if (m.record.schema === RECORD_SCHEMA_V3) throw new Error('a v2 record expected');
      return m.record.manifest.jws;
    };
    const v3Manifest = (m: MadeRecord) => {
      if (m.record.schema !== RECORD_SCHEMA_V3) throw new Error('a v3 record expected');
      return m.record.manifest;
    };
    const tamperedManifest = (() => {
      const [h, p, s] = v2Manifest(v2).split('.') as [string, string, string];
      const m = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as { board: { serialNumber: string } };
      m.board.serialNumber = valid[0]!.record.board.serialNumber;
      return `${h}.${Buffer.from(JSON.stringify(m)).toString('base64url')}.${s}`;
    })();
    const mutate = (f: (r: ProvisioningRecord) => ProvisioningRecord, format: 'v2' | 'v3' = 'v3') =>
      makeRecord(A, systemClock, { device, mutate: f, format });
    // Signed by the station as it is, without the schema check signRecord makes.
    const invalid = async (f: (r: ProvisioningRecord) => unknown): Promise<MadeRecord> => {
      const base = await makeRecord(A, systemClock, { device });
      const payload = utf8(canonicalJson(f(base.record)));
      const signed = await signJws({ signer: A.signer, payload, header: { typ: RECORD_TYP, x5c: A.chain } });
      if (!signed.ok) throw new Error(signed.error.message);
      return { ...base, jws: signed.value };
    };
    const attacks: Array<[string, MadeRecord]> = [
      ['signature-invalid', await makeRecord(A, systemClock, { device, recordSigner: other })],
      ['manifest-invalid', await makeRecord(A, systemClock, { device, manifestSigner: other })],
      ['certificate-invalid', await makeRecord(A, systemClock, { device: twinDevice })],
      ['manifest-invalid', await makeRecord(A, systemClock, { device, manifestSigner: other, format: 'v2' })],
      [
        'manifest-invalid',
        await mutate((r) => ({ ...r, manifest: { jws: v2Manifest(v2) } }) as ProvisioningRecord, 'v2'),
      ],
      [
        'manifest-invalid',
        await mutate((r) => ({ ...r, manifest: { jws: tamperedManifest } }) as ProvisioningRecord, 'v2'),
      ],
      // v3: another board's manifest, a manifest payload changed after signing, another manifest signature.
      ['manifest-invalid', await mutate((r) => ({ ...r, manifest: v3Manifest(valid[0]!) }) as ProvisioningRecord)],
      [
        'manifest-invalid',
        await mutate((r) => {
          const m = v3Manifest({ record: r } as MadeRecord);
          const payload = { ...m.payload, capturedAt: '2020-01-01T00:00:00.000Z' };
          return { ...r, manifest: { ...m, payload } } as ProvisioningRecord;
        }),
      ],
      [
        'manifest-invalid',
        await mutate((r) => {
          const m = v3Manifest({ record: r } as MadeRecord);
          return { ...r, manifest: { ...m, signature: v3Manifest(valid[0]!).signature } } as ProvisioningRecord;
        }),
      ],
      [
        'certificate-invalid',
        await mutate((r) => ({
          ...r,
          certificate: { ...r.certificate, pem: toPem(A.chain[0]!, 'CERTIFICATE') },
        })),
      ],
      [
        'certificate-invalid',
        await mutate((r) => ({ ...r, certificate: { ...r.certificate, sha256: 'a'.repeat(64) } })),
      ],
      [
        'key-mismatch',
        // (v1: key-bound evidence binds the key, so a v2/v3 record with another key does not pass the schema)
        await makeRecord(A, systemClock, {
          device,
          format: 'v1',
          mutate: (r) => ({ ...r, key: { ...r.key, publicKeySpki: toBase64Url(other.publicKeySpki) } }),
        }),
      ],
      ['payload-invalid', await invalid((r) => ({ ...r, operator: '' }))],
      ['payload-invalid', await invalid((r) => ({ ...r, operator: 'o'.repeat(257) }))],
      ['payload-invalid', await invalid((r) => ({ ...r, extra: 1 }))],
      ['payload-invalid', await invalid((r) => ({ ...r, timings: { identify: -1 } }))],
      ['payload-invalid', await invalid((r) => ({ ...r, completedAt: '2026-01-01 00:00:00' }))],
      [
        'payload-invalid',
        await invalid((r) => ({ ...r, board: { ...r.board, chipId: r.board.chipId.toUpperCase() } })),
      ],
      ['payload-invalid', await invalid((r) => ({ ...r, kind: 'rotation' }))],
      ['payload-invalid', await invalid((r) => ({ ...r, certificate: { ...r.certificate, serialNumber: 'x' } }))],
      ['work-order-not-allowed', await makeRecord(A, systemClock, { device, workOrder: 'WO-OTHER' })],
    ];
    // Valid records before, between and after the attacks: every cache is warm when an attack comes.
    const batch = [...valid.slice(0, 6), ...attacks.map(([, m]) => m), ...valid.slice(6)];
    const jws = batch.map((m) => m.jws);
    const packed = packRecords(jws);
    expect(packed.records.every((r) => typeof r === 'object')).toBe(true);
    const now = new Date();
    const workers = await verifyPool().verify(trust, packed.records, packed.certificates, now);
    const reference = verifyInline(trust, jws, [], now);
    expect(workers).toHaveLength(batch.length);
    for (let i = 0; i < batch.length; i++) {
      expect(workers[i]!.jws).toBe(jws[i]);
      expect(workers[i]!.check).toEqual(reference[i]!.check);
    }
    const reasons = workers.map((c) => (c.check.ok ? 'ok' : c.check.result.reason));
    expect(reasons).toEqual([
      ...Array<string>(6).fill('ok'),
      ...attacks.map(([reason]) => reason),
      ...Array<string>(valid.length - 6).fill('ok'),
    ]);
    // The same batch verified on this thread from its packed form: the same answers.
    const inline = verifyInline(trust, packed.records, packed.certificates, now);
    expect(inline.map((c) => c.check)).toEqual(workers.map((c) => c.check));
  });
});

import 'reflect-metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import { compactVerify, decodeProtectedHeader, importX509 } from 'jose';
import { buildManifest, evaluateBaseline, signManifest, verifyManifest, type BaselinePolicy } from './baseline.js';
import { encodeRecord, signRecord, verifyRecord, type ProvisioningRecord } from './record.js';
import { issueStationCertificate } from '../pki/ca.js';
import { toPem } from '../pki/pem.js';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { createTestPki, fixedClock, must, type TestPki } from '../../testkit/pki/test-util.js';
import { canonicalJson } from '../canonical.js';
import { sha256Hex, toBase64, toBase64Url, utf8 } from '../bytes.js';
import { encodeStatement } from '../pki/attestation.js';
import type { BoardIdentity, Measurements } from '../model.js';

const clock = fixedClock('2026-03-01T12:00:00Z');
const h = (c: string) => c.repeat(64);
let pki: TestPki;
let station: TestSigner;
let chain: Uint8Array[];

const IDENTITY: BoardIdentity = {
  protocolVersion: 1,
  chipId: '0a1b2c3d4e5f6071',
  serialNumber: 'LS-000123',
  model: 'ls-devkit',
  hardwareRevision: 'C',
  firmwareVersion: '2.1.0',
  capabilities: { onboardKeygen: true, keyInjection: true, curves: ['P-256'] },
  state: { hasKey: true, certificateSha256: null, locked: false },
};
const POLICY: BaselinePolicy = {
  firmware: { application: [h('b')] },
  secureBoot: 'required',
  debugLocked: 'any',
};
const MEAS: Measurements = {
  firmware: [{ name: 'application', version: '2.1.0', sha256: h('b') }],
  secureBoot: true,
  debugLocked: false,
  fuseDigest: h('c'),
  configDigest: h('d'),
};

beforeAll(async () => {
  pki = await createTestPki(clock);
  station = await createTestSigner('P-256');
  const cert = must(
    await issueStationCertificate({
      issuer: { signer: pki.ca.signer, certificate: pki.ca.der },
      subjectPublicKeySpki: station.publicKeySpki,
      stationId: 'station-01',
      validityDays: 825,
      clock,
    }),
  );
  chain = [cert, pki.ca.der];
});

async function manifestJws(measurements = MEAS): Promise<string> {
  const verdict = evaluateBaseline(measurements, POLICY);
  const manifest = buildManifest({
    identity: IDENTITY,
    measurements,
    policy: POLICY,
    policyRef: { workOrder: 'WO-1', sha256: await sha256Hex(canonicalJson(POLICY)) },
    verdict,
    capturedAt: clock.now().toISOString(),
  });
  return must(await signManifest(station, chain, manifest));
}

async function makeRecord(): Promise<ProvisioningRecord> {
  const jws = await manifestJws();
  return {
    schema: 'line-station/provisioning-record/v2',
    recordId: crypto.randomUUID(),
    runId: 'run-1',
    kind: 'initial',
    supersedesRecordId: null,
    station: { id: 'station-01', certificateSha256: await sha256Hex(chain[0]!) },
    operator: 'alice',
    workOrder: 'WO-1',
    profileId: 'ls-devkit',
    board: {
      chipId: IDENTITY.chipId,
      serialNumber: IDENTITY.serialNumber,
      model: IDENTITY.model,
      hardwareRevision: 'C',
      firmwareVersion: '2.1.0',
      port: '/dev/ttyACM0',
    },
    attestation: {
      mode: 'key-bound-v2',
      nonce: toBase64Url(new Uint8Array(32).fill(1)),
      leafSha256: h('e'),
      chain: [toBase64(pki.ca.der)],
      signature: toBase64(new Uint8Array(70).fill(0x30)),
      statement: toBase64(
        encodeStatement({
          role: 'device',
          nonce: new Uint8Array(32).fill(1),
          chipId: IDENTITY.chipId,
          key: station.publicKeySpki,
          measurementsSha256: h('a'),
        }),
      ),
      boundKey: { role: 'device', spki: toBase64(station.publicKeySpki) },
      measurementsSha256: h('a'),
    },
    key: { mode: 'onboard', curve: 'P-256', publicKeySpki: toBase64Url(station.publicKeySpki) },
    certificate: { serialNumber: '4a' + '00'.repeat(15), sha256: h('f'), pem: toPem(pki.ca.der, 'CERTIFICATE') },
    chain: [toPem(pki.ca.der, 'CERTIFICATE')],
    manifest: { jws },
    verdict: { pass: true, violations: [] },
    timings: { identify: 12, attest: 40 },
    startedAt: '2026-03-01T11:59:00.000Z',
    completedAt: '2026-03-01T12:00:00.000Z',
    outcome: 'provisioned',
  };
}

describe('manifest', () => {
  it('round-trips and is verifiable with jose', async () => {
    const jws = await manifestJws();
    const m = must(await verifyManifest(jws, [pki.root.der], clock));
    expect(m.board.chipId).toBe(IDENTITY.chipId);
    expect(m.verdict).toEqual({ pass: true, violations: [] });
    expect(decodeProtectedHeader(jws).typ).toBe('line-station-manifest+jws');
    const v = await compactVerify(jws, await importX509(toPem(chain[0]!, 'CERTIFICATE'), 'ES256'));
    expect(JSON.parse(new TextDecoder().decode(v.payload))).toEqual(m);
    // A failing board's violations are in the signed manifest.
    const bad = must(await verifyManifest(await manifestJws({ ...MEAS, secureBoot: false }), [pki.root.der], clock));
    expect(bad.verdict.pass).toBe(false);
    expect(bad.verdict.violations[0]).toMatchObject({ rule: 'secureBoot', expected: true, actual: false });
  });
});

describe('provisioning record', () => {
  it('signs canonical JSON; verifyRecord and jose both verify it', async () => {
    const record = await makeRecord();
    const signed = must(await signRecord(station, chain, record));
    expect(signed.json).toBe(new TextDecoder().decode(encodeRecord(record)));
    expect(signed.json).toBe(canonicalJson(JSON.parse(signed.json)));
    expect(signed.sha256).toBe(await sha256Hex(signed.json));
    expect(must(await verifyRecord(signed.jws, [pki.root.der], clock))).toEqual(record);

    const v = await compactVerify(signed.jws, await importX509(toPem(chain[0]!, 'CERTIFICATE'), 'ES256'));
    expect(new TextDecoder().decode(v.payload)).toBe(signed.json);
    expect(v.protectedHeader.typ).toBe('line-station-record+jws');
    expect(v.protectedHeader.x5c).toHaveLength(2);
  });

  it('rejects a record from another PKI, a manifest passed as a record, and a tampered payload', async () => {
    const signed = must(await signRecord(station, chain, await makeRecord()));
    const other = await createTestPki(clock);
    expect((await verifyRecord(signed.jws, [other.root.der], clock)).ok).toBe(false);
    const m = await verifyRecord(await manifestJws(), [pki.root.der], clock);
    expect(m.ok ? '' : m.error.message).toContain('typ');
    const [hh, p, s] = signed.jws.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    payload.operator = 'mallory';
    const forged = `${hh}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    const f = await verifyRecord(forged, [pki.root.der], clock);
    expect(f.ok ? '' : f.error.code).toBe('INPUT_INVALID');
  });

  it('refuses to sign an invalid record (INTERNAL) and enforces the rotation rule', async () => {
    const record = await makeRecord();
    const r1 = await signRecord(station, chain, { ...record, kind: 'rotation' });
    expect(r1.ok ? '' : r1.error.code).toBe('INTERNAL');
    expect(r1.ok ? '' : r1.error.message).toContain('supersedesRecordId');
    const r2 = await signRecord(station, chain, {
      ...record,
      kind: 'rotation',
      supersedesRecordId: crypto.randomUUID(),
    });
    expect(r2.ok).toBe(true);
    const r3 = await signRecord(station, chain, { ...record, board: { ...record.board, chipId: 'XYZ' } });
    expect(r3.ok ? '' : r3.error.message).toContain('board.chipId');
    const r4 = await signRecord(station, chain, { ...record, extra: 1 } as unknown as ProvisioningRecord);
    expect(r4.ok).toBe(false);
  });

  it('a v2 record must attest the certified key; v1 records (no evidence) still verify', async () => {
    const record = await makeRecord();
    if (record.schema !== 'line-station/provisioning-record/v2' || record.attestation.mode !== 'key-bound-v2')
      throw new Error('fixture');
    const other = await createTestSigner('P-256');
    const st = (key: Uint8Array, role: 'device' | 'transport' = 'device', digest = h('a')) =>
      toBase64(
        encodeStatement({
          role,
          nonce: new Uint8Array(32).fill(1),
          chipId: IDENTITY.chipId,
          key,
          measurementsSha256: digest,
        }),
      );
    // A statement binding another key than the one certified.
    const att = {
      ...record.attestation,
      statement: st(other.publicKeySpki),
      boundKey: { role: 'device' as const, spki: toBase64(other.publicKeySpki) },
    };
    const bad = await signRecord(station, chain, { ...record, attestation: att });
    expect(bad.ok ? '' : bad.error.message).toContain('attestation.boundKey.spki');
    const transportOnboard = await signRecord(station, chain, {
      ...record,
      attestation: {
        ...att,
        statement: st(other.publicKeySpki, 'transport'),
        boundKey: { ...att.boundKey, role: 'transport' },
      },
    });
    expect(transportOnboard.ok ? '' : transportOnboard.error.message).toContain('attestation.boundKey.role');
    // Fields that disagree with the signed statement (measurements, key), and a statement that is not one.
    for (const statement of [
      st(station.publicKeySpki, 'device', h('b')),
      st(other.publicKeySpki),
      toBase64(utf8('junk')),
    ]) {
      const r = await signRecord(station, chain, { ...record, attestation: { ...record.attestation, statement } });
      expect(r.ok ? '' : r.error.message).toContain('attestation.statement');
    }
    const v1: ProvisioningRecord = {
      ...record,
      schema: 'line-station/provisioning-record/v1',
      attestation: { nonce: record.attestation.nonce, leafSha256: record.attestation.leafSha256 },
    };
    const signed = must(await signRecord(station, chain, v1));
    expect(must(await verifyRecord(signed.jws, [pki.root.der], clock))).toEqual(v1);
    // A v1 record cannot carry v2 evidence, nor a v2 record v1's.
    const mixed = await signRecord(station, chain, {
      ...v1,
      attestation: record.attestation,
    } as unknown as ProvisioningRecord);
    expect(mixed.ok).toBe(false);
  });
});

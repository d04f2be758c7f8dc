/**
 * Test and benchmark fixtures: a station PKI made with the core functions (root -> issuing CA -> station
 * certificate, as station/init.ts does, with WebCrypto test signers) and realistic signed provisioning
 * records (device certificate issued by the station CA for a fresh device key, signed baseline manifest,
 * record signed by the station key with x5c = station chain), in the format the station writes (v3, with key-bound
 * attestation evidence: core/provisioning/flow.ts) or, by option, v2 or v1.
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sha256Hex, toBase64, toBase64Url } from '../../core/bytes.js';
import { encodeStatement, measurementsDigest } from '../../core/pki/attestation.js';
import { rawToDerSignature } from '../../core/pki/ecdsa.js';
import {
  buildManifest,
  evaluateBaseline,
  signManifest,
  type BaselinePolicy,
} from '../../core/provisioning/baseline.js';
import type { BoardIdentity, Measurements } from '../../core/model.js';
import type { Clock, Signer } from '../../core/ports.js';
import { createRootCertificate, issueCaCertificate, issueStationCertificate } from '../../core/pki/ca.js';
import { issueDeviceCertificate, type DeviceCertificateProfile } from '../../core/pki/device-cert.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner, type TestSigner } from '../pki/test-signer.js';
import { must } from '../pki/test-util.js';
import {
  recordFormatMembers,
  signRecord,
  type AttestationEvidenceRecord,
  type ProvisioningRecord,
} from '../../core/provisioning/record.js';
import { canonicalJson } from '../../core/canonical.js';
import type { StationRow } from '../../core/hq/registry-db.js';
import { loadStationTrust, type StationTrust } from '../../registry/trust/verify.js';

export interface TestStation {
  readonly id: string;
  readonly signer: TestSigner;
  readonly caSigner: TestSigner;
  /** DER: station certificate, issuing CA, root. */
  readonly chain: readonly Uint8Array[];
  readonly chainPem: string;
  readonly workOrder: string;
}

/** Make a station PKI like `station init`: own dev root -> issuing CA (pathLen 0) -> station signing certificate. */
export async function createTestStation(id: string, clock: Clock, workOrder = 'WO-TEST-1'): Promise<TestStation> {
  const rootSigner = await createTestSigner('P-256');
  const caSigner = await createTestSigner('P-256');
  const signer = await createTestSigner('P-256');
  const root = must(
    await createRootCertificate({
      signer: rootSigner,
      subject: { commonName: `Line Station Dev Root CA (${id})`, organization: 'Line Station' },
      validityDays: 7300,
      clock,
    }),
  );
  const ca = must(
    await issueCaCertificate({
      issuer: { signer: rootSigner, certificate: root },
      subjectPublicKeySpki: caSigner.publicKeySpki,
      subject: { commonName: `Line Station Issuing CA ${id}`, organization: 'Line Station' },
      validityDays: 3650,
      pathLength: 0,
      clock,
    }),
  );
  const st = must(
    await issueStationCertificate({
      issuer: { signer: caSigner, certificate: ca },
      subjectPublicKeySpki: signer.publicKeySpki,
      stationId: id,
      validityDays: 825,
      clock,
    }),
  );
  const chain = [st, ca, root];
  return { id, signer, caSigner, chain, chainPem: chain.map((d) => toPem(d, 'CERTIFICATE')).join(''), workOrder };
}

const repo = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const PROFILE = (
  JSON.parse(readFileSync(repo('resources/boards/ls-sim-basic.json'), 'utf8')) as {
    certificate: DeviceCertificateProfile;
  }
).certificate;
const POLICY: BaselinePolicy = {
  firmware: { application: ['4a91a48b7fe5816f8ce34892c386e76bd7af26a027af33b43c6d8f953a3f8ebb'] },
  secureBoot: 'required',
  debugLocked: 'required',
};

export interface MadeRecord {
  readonly recordId: string;
  readonly jws: string;
  readonly json: string;
  readonly sha256: string;
  readonly record: ProvisioningRecord;
}

export interface RecordOptions {
  readonly recordId?: string;
  readonly serialNumber?: string;
  readonly chipId?: string;
  readonly workOrder?: string;
  /** Reuse this device key (SPKI) instead of generating one. */
  readonly deviceKey?: Signer;
  /** Reuse this device key AND its certificate (fast fixtures: no certificate issuance per record). */
  readonly device?: DeviceIdentity;
  /** Change the record before signing (tests of payload checks). */
  readonly mutate?: (r: ProvisioningRecord) => ProvisioningRecord;
  /** Sign the record with this key instead of the station key (x5c still the station chain). */
  readonly recordSigner?: Signer;
  /** Sign the manifest with this key instead of the station key. */
  readonly manifestSigner?: Signer;
  /**
   * The record format: `v3` (default: what the station writes, the station chain once), `v2` (the same evidence,
   * `chain` PEM and `manifest.jws`), `v1` (schema v1: no attestation evidence, `chain` and `manifest.jws`).
   */
  readonly format?: 'v1' | 'v2' | 'v3';
  /** Sign the record and its manifest with this x5c (DER, station certificate first) instead of the station chain. */
  readonly x5c?: readonly Uint8Array[];
}

/** A stand-in board attestation key and certificate (one per process) for the key-bound evidence of v2/v3 records. */
let attester: Promise<{ signer: TestSigner; der: Uint8Array; sha256: string }> | null = null;
function attestationIdentity(clock: Clock) {
  attester ??= (async () => {
    const signer = await createTestSigner('P-256');
    const der = must(
      await createRootCertificate({
        signer,
        subject: { commonName: 'Line Station Test Attestation Key', organization: 'Line Station' },
        validityDays: 3650,
        clock,
      }),
    );
    return { signer, der, sha256: await sha256Hex(der) };
  })();
  return attester;
}

/** Key-bound (protocol 2) evidence binding the device key, the chip id and the measurements, as a board gives it. */
async function keyBoundEvidence(
  clock: Clock,
  chipId: string,
  deviceSpki: Uint8Array,
  measurements: Measurements,
): Promise<AttestationEvidenceRecord> {
  const a = await attestationIdentity(clock);
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const measurementsSha256 = await measurementsDigest(measurements);
  const statement = encodeStatement({ role: 'device', nonce, chipId, key: deviceSpki, measurementsSha256 });
  const raw = must(await a.signer.sign(statement));
  return {
    mode: 'key-bound-v2',
    nonce: toBase64Url(nonce),
    leafSha256: a.sha256,
    chain: [toBase64(a.der)],
    signature: toBase64(rawToDerSignature(raw)),
    statement: toBase64(statement),
    boundKey: { role: 'device', spki: toBase64(deviceSpki) },
    measurementsSha256,
  };
}

let counter = 0;

/** One realistic provisioning record of `station` (fresh device key unless given). */
export async function makeRecord(station: TestStation, clock: Clock, o: RecordOptions = {}): Promise<MadeRecord> {
  const n = ++counter;
  const rnd = toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(6)));
  const chipId = o.chipId ?? (await sha256Hex(`${station.id}/${n}/${rnd}`)).slice(0, 16);
  const serialNumber = o.serialNumber ?? `LS${chipId.slice(0, 8).toUpperCase()}`;
  const workOrder = o.workOrder ?? station.workOrder;
  const deviceKey = o.device?.key ?? o.deviceKey ?? (await createTestSigner('P-256'));
  const identity: BoardIdentity = {
    protocolVersion: 1,
    chipId,
    serialNumber,
    model: 'LS-SIM-BASIC',
    hardwareRevision: 'B',
    firmwareVersion: '1.4.2',
    capabilities: { onboardKeygen: false, keyInjection: true, curves: ['P-256'] },
    state: { hasKey: true, certificateSha256: null, locked: false },
  };
  const cert =
    o.device?.cert ??
    must(
      await issueDeviceCertificate({
        ca: { signer: station.caSigner, certificate: station.chain[1]! },
        publicKeySpki: deviceKey.publicKeySpki,
        profile: PROFILE,
        vars: { serialNumber, chipId, model: identity.model, workOrder },
        clock,
      }),
    );
  const measurements: Measurements = {
    firmware: [{ name: 'application', version: '1.4.2', sha256: POLICY.firmware['application']![0]! }],
    secureBoot: true,
    debugLocked: true,
    fuseDigest: 'a'.repeat(64),
    configDigest: 'b'.repeat(64),
  };
  const verdict = evaluateBaseline(measurements, POLICY);
  const now = clock.now().toISOString();
  const manifest = buildManifest({
    identity,
    measurements,
    policy: POLICY,
    policyRef: { workOrder, sha256: await sha256Hex(canonicalJson(POLICY)) },
    verdict,
    capturedAt: now,
  });
  const x5c = o.x5c ?? station.chain;
  const manifestJws = must(await signManifest(o.manifestSigner ?? station.signer, [...x5c], manifest));
  const format = o.format ?? 'v3';
  const v1Members = {
    schema: 'line-station/provisioning-record/v1' as const,
    attestation: {
      nonce: toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(32))),
      leafSha256: 'c'.repeat(64),
    },
    chain: [station.chain[1]!, station.chain[2]!].map((d) => toPem(d, 'CERTIFICATE')),
    manifest: { jws: manifestJws },
  };
  const members =
    format === 'v1'
      ? v1Members
      : {
          // What the station's flow writes (v3 when the manifest rebuilds from the record's header), or v2 forced.
          ...recordFormatMembers({
            alg: station.signer.algorithm,
            stationChain: format === 'v3' ? x5c : [],
            caChain: x5c.slice(1),
            manifestJws,
          }),
          attestation: await keyBoundEvidence(clock, chipId, deviceKey.publicKeySpki, measurements),
        };
  let record: ProvisioningRecord = {
    ...members,
    recordId: o.recordId ?? globalThis.crypto.randomUUID(),
    runId: globalThis.crypto.randomUUID(),
    kind: 'initial',
    supersedesRecordId: null,
    station: { id: station.id, certificateSha256: await sha256Hex(station.chain[0]!) },
    operator: 'op-1',
    workOrder,
    profileId: 'ls-sim-basic',
    board: {
      chipId,
      serialNumber,
      model: identity.model,
      hardwareRevision: identity.hardwareRevision,
      firmwareVersion: identity.firmwareVersion,
      port: '/dev/ttyACM0',
    },
    key: { mode: 'injected', curve: 'P-256', publicKeySpki: toBase64Url(deviceKey.publicKeySpki) },
    certificate: { serialNumber: cert.serialNumber, sha256: cert.sha256, pem: toPem(cert.der, 'CERTIFICATE') },
    verdict: { pass: verdict.pass, violations: [] },
    timings: { identify: 12, attest: 40 },
    startedAt: now,
    completedAt: now,
    outcome: 'provisioned',
  };
  if (o.mutate) record = o.mutate(record);
  const signed = must(await signRecord(o.recordSigner ?? station.signer, [...x5c], record));
  return { recordId: record.recordId, jws: signed.jws, json: signed.json, sha256: signed.sha256, record };
}

export interface DeviceIdentity {
  readonly key: Signer;
  readonly cert: { readonly der: Uint8Array; readonly serialNumber: string; readonly sha256: string };
}

/** A device key with a certificate issued by the station CA (to share among many fast fixture records). */
export async function makeDevice(station: TestStation, clock: Clock): Promise<DeviceIdentity> {
  const key = await createTestSigner('P-256');
  const chipId = (await sha256Hex(toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(8))))).slice(0, 16);
  const cert = must(
    await issueDeviceCertificate({
      ca: { signer: station.caSigner, certificate: station.chain[1]! },
      publicKeySpki: key.publicKeySpki,
      profile: PROFILE,
      vars: {
        serialNumber: `LS${chipId.slice(0, 8).toUpperCase()}`,
        chipId,
        model: 'LS-SIM-BASIC',
        workOrder: station.workOrder,
      },
      clock,
    }),
  );
  return { key, cert };
}

/**
 * Many records quickly: every record is distinct (record id, board, manifest, signatures) but they share a pool
 * of `devices` device certificates (issuing a certificate costs ~10 ms). For load tests only.
 */
export async function makeManyRecords(
  station: TestStation,
  clock: Clock,
  n: number,
  devices = 16,
  o: Pick<RecordOptions, 'format'> = {},
): Promise<MadeRecord[]> {
  const pool: DeviceIdentity[] = [];
  for (let i = 0; i < Math.min(devices, n); i++) pool.push(await makeDevice(station, clock));
  const out: MadeRecord[] = [];
  for (let i = 0; i < n; i++) out.push(await makeRecord(station, clock, { ...o, device: pool[i % pool.length]! }));
  return out;
}

/** N records (sequentially; a shared device key when `shareDeviceKey`, to make big fixtures faster). */
export async function makeRecords(
  station: TestStation,
  clock: Clock,
  n: number,
  o: { shareDeviceKey?: boolean } & Pick<RecordOptions, 'format'> = {},
): Promise<MadeRecord[]> {
  const key = o.shareDeviceKey ? await createTestSigner('P-256') : undefined;
  const out: MadeRecord[] = [];
  const format = o.format ? { format: o.format } : {};
  for (let i = 0; i < n; i++) out.push(await makeRecord(station, clock, key ? { ...format, deviceKey: key } : format));
  return out;
}

/**
 * The registry's trust material for `station` as if it had been enrolled (registry/trust/verify.ts
 * loadStationTrust of its row), for tests and benches that verify records without a registry database.
 */
export async function enrolledTrust(station: TestStation): Promise<StationTrust> {
  const row: StationRow = {
    stationId: station.id,
    chainPem: station.chainPem,
    certificateSha256: await sha256Hex(station.chain[0]!),
    issuingCaSha256: await sha256Hex(station.chain[1]!),
    rootSha256: await sha256Hex(station.chain[2]!),
    workOrders: [station.workOrder],
    enrolledAt: new Date().toISOString(),
    revokedAt: null,
    lastSyncAt: null,
  };
  const t = await loadStationTrust(row);
  if (!t.ok) throw new Error(t.error.message);
  return t.value;
}

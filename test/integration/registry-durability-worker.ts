/**
 * Worker (test only) for test/integration/registry-durability.test.ts, run under strace: a real registry
 * (`startRegistry`, SQLite at argv[2], already created and migrated) and, in the same process, its clients over
 * HTTP: the admin enrols a station, the station's SyncService sends a signed batch (and verifies the receipt),
 * the station imports a bundle, the admin revokes the station. After each answer came back to its client, the
 * worker prints `MARK <step> <json>` on stdout: the power-cut instants the test checks.
 * Usage: node --import tsx test/integration/registry-durability-worker.ts <sqlite-file> <station-db-dir>
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createRootCertificate } from '../../core/pki/ca.js';
import { createBundle } from '../../core/hq/protocol.js';
import { systemClock } from '../../core/ports.js';
import { startRegistry } from '../../registry/http/server.js';
import { openStationDb } from '../../native/store/index.js';
import { openSync } from '../../station/sync.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { createTestStation, makeRecords } from '../../testkit/registry/fixtures.js';
import { call } from '../../testkit/registry/harness.js';
import { commitRecords, quiet } from './sync-fixture.js';

const [file, stationDir] = process.argv.slice(2);
if (!file || !stationDir) {
  process.stderr.write('usage: registry-durability-worker.ts <sqlite-file> <station-db-dir>\n');
  process.exit(2);
}
const fail = (what: string): never => {
  process.stderr.write(`${what}\n`);
  process.exit(1);
};
/** The marker of a step, written once its answer is in this process (one write: the whole line). */
const mark = (step: string, data: unknown): void => void process.stdout.write(`MARK ${step} ${JSON.stringify(data)}\n`);

// Never outlive the test: this process (not a wrapper) ends itself if a step hangs.
setTimeout(() => fail('registry-durability-worker: timed out'), 120_000).unref();

const adminToken = randomUUID();
const signer = await createTestSigner('P-256');
const cert = await createRootCertificate({
  signer,
  subject: { commonName: 'Durability Test Registry' },
  validityDays: 30,
  clock: systemClock,
});
if (!cert.ok) fail(cert.error.message);
const reg = await startRegistry({
  db: `sqlite:${file}`,
  port: 0,
  signer,
  registryChain: [cert.ok ? cert.value : new Uint8Array()],
  registryId: 'registry-durability',
  adminToken,
  clock: systemClock,
  logger: quiet,
});
if (!reg.ok) fail(reg.error.message);
const url = reg.ok ? reg.value.url : '';

const station = await createTestStation('durable-station', systemClock);
const enrol = await call(url, 'POST', '/v1/admin/stations', {
  body: { stationId: station.id, chainPem: station.chainPem },
  bearer: adminToken,
});
if (enrol.status !== 201) fail(`enrol: ${enrol.status} ${enrol.text}`);
mark('enrolled', { stationId: station.id });

// The batch: records committed to a station database as the flow does, sent by the station's own sync client.
const opened = openStationDb(join(stationDir, 'station.db'), { synchronous: 'NORMAL' });
if (!opened.ok) fail(opened.error.message);
const sdb = opened.ok ? opened.value : fail('unreachable');
const batch = await makeRecords(station, systemClock, 3);
commitRecords(sdb.store, station, batch);
const sync = openSync({
  outbox: sdb.outbox,
  stationId: station.id,
  signer: station.signer,
  chain: station.chain,
  registryUrl: url,
  registryCertificate: cert.ok ? cert.value : new Uint8Array(),
  logger: quiet,
  timeoutMs: 30_000,
});
if (!sync.ok) fail(sync.error.message);
const service = sync.ok ? sync.value : fail('unreachable');
const synced = await service.syncOnce();
if (!synced.ok) fail(`sync: ${synced.error.message}`);
if (synced.ok && (synced.value.acknowledged !== batch.length || synced.value.pending !== 0))
  fail(`sync: ${JSON.stringify(synced.value)}`);
mark(
  'batch',
  batch.map((m) => m.recordId),
);
await service.close();
sdb.close();

// A bundle of other records, imported by the station over HTTP.
const more = await makeRecords(station, systemClock, 2);
const bundle = await createBundle({
  signer: station.signer,
  chain: station.chain,
  stationId: station.id,
  records: more.map((m) => m.jws),
  clock: systemClock,
});
if (!bundle.ok) fail(bundle.error.message);
const imported = await call(url, 'POST', '/v1/bundles', {
  body: { bundle: bundle.ok ? bundle.value.jws : '' },
  station,
});
if (imported.status !== 200) fail(`bundle: ${imported.status} ${imported.text}`);
mark(
  'bundle',
  more.map((m) => m.recordId),
);

// A lifecycle write: the station revoked by the admin.
const revoked = await call(url, 'POST', `/v1/admin/stations/${station.id}/revoke`, {
  body: { reason: 'keyCompromise' },
  bearer: adminToken,
});
if (revoked.status !== 200) fail(`revoke: ${revoked.status} ${revoked.text}`);
mark('revoked', { stationId: station.id });

if (reg.ok) await reg.value.close();
process.exit(0);

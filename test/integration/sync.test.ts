/**
 * SyncService against a real registry on 127.0.0.1 and real station databases (records committed through the
 * Store): the outbox trigger, batches and receipts, backoff while the registry is down, rejected and conflicting
 * records, receipts that must not be trusted (wrong registry key, another station, modified), partial and
 * repeated receipt imports, and bundles.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { createRootCertificate } from '../../core/pki/ca.js';
import { startRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { importBundle } from '../../registry/http/compose.js';
import { createTestStation, makeRecord, makeRecords, type TestStation } from '../../testkit/registry/fixtures.js';
import { backoffDelay, openSync, type SyncOptions, type SyncService, type SyncStatus } from '../../station/sync.js';
import {
  commitRecords,
  createStationDb,
  memoryLogger,
  quiet,
  startTestRegistry,
  type TestRegistry,
} from './sync-fixture.js';

let A: TestStation;
let B: TestStation;
let registry: TestRegistry;
const dbs: ReturnType<typeof createStationDb>[] = [];
const services: SyncService[] = [];
const log = memoryLogger();

function stationDb() {
  const d = createStationDb('NORMAL');
  dbs.push(d);
  return d;
}

function open(st: TestStation, file: string, o: Partial<SyncOptions> = {}): SyncService {
  const s = openSync({
    outbox: dbs.find((d) => d.file === file)!.db.outbox,
    stationId: st.id,
    signer: st.signer,
    chain: st.chain,
    registryUrl: registry.url,
    registryCertificate: registry.certificateDer,
    logger: log,
    backoff: { baseMs: 20, capMs: 200 },
    idleMs: 30,
    timeoutMs: 5000,
    ...o,
  });
  if (!s.ok) throw new Error(s.error.message);
  services.push(s.value);
  return s.value;
}

/** A key and certificate that are not the registry's (a station that pinned another registry, an impostor). */
async function foreignRegistry() {
  const signer = await createTestSigner('P-256');
  const cert = await createRootCertificate({
    signer,
    subject: { commonName: 'Not Our Registry' },
    validityDays: 1,
    clock: systemClock,
  });
  if (!cert.ok) throw new Error(cert.error.message);
  return { signer, certificate: cert.value };
}

beforeAll(async () => {
  A = await createTestStation('station-a', systemClock);
  B = await createTestStation('station-b', systemClock);
  const first = stationDb();
  registry = await startTestRegistry(first.dir, [A, B]);
});

afterAll(async () => {
  for (const s of services) await s.close();
  await registry?.close();
  for (const d of dbs) {
    d.store.close();
    rmSync(d.dir, { recursive: true, force: true });
  }
});

describe('sync service', () => {
  it('full-jitter backoff stays within [0, min(cap, base * 2^(n-1))]', () => {
    expect(backoffDelay(1, 1000, 300_000, () => 0.999)).toBe(999);
    expect(backoffDelay(4, 1000, 300_000, () => 0.5)).toBe(4000);
    expect(backoffDelay(30, 1000, 300_000, () => 0.999)).toBe(299_700);
    expect(backoffDelay(3, 1000, 300_000, () => 0)).toBe(0);
  });

  it('queues every committed record in its transaction; syncOnce sends batches and stores receipts', async () => {
    const d = stationDb();
    const recs = await makeRecords(A, systemClock, 7, { shareDeviceKey: true });
    commitRecords(d.store, A, recs);
    const s = open(A, d.file, { batchSize: 3 });
    expect(s.status()).toMatchObject({ pending: 7, sent: 0, acknowledged: 0, failed: 0, reachable: null });
    const changes: SyncStatus[] = [];
    const off = s.onChange((x) => changes.push(x));
    const r = await s.syncOnce();
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value).toMatchObject({
      pending: 0,
      sent: 0,
      acknowledged: 7,
      failed: 0,
      reachable: true,
      lastError: null,
    });
    expect(r.value.lastReceipt?.count).toBe(1); // batches of 3, 3, 1
    expect(changes.length).toBeGreaterThan(3);
    off();
    const row = s.outbox.row(recs[0]!.recordId)!;
    expect(row).toMatchObject({ state: 'acknowledged', attempts: 1 });
    const receipt = s.outbox.receipt(row.receiptId!)!;
    expect(receipt).toMatchObject({ source: 'online', accepted: 3, marked: 3, batchId: row.batchId });
    const audit = d.store.verifyAudit();
    expect(audit.ok).toBe(true);
    expect(d.store.listAudit(1, 1000).filter((e) => e.type === 'sync.acknowledged')).toHaveLength(3);
    // A run that cannot be committed queues nothing; the one committed before it is pending.
    const more = await makeRecords(A, systemClock, 1);
    expect(() => commitRecords(d.store, A, [...more, ...more])).toThrow();
    expect(s.status()).toMatchObject({ pending: 1, acknowledged: 7 });
  });

  it('a receipt that does not verify with the configured certificate marks nothing; the same batch id is resent', async () => {
    const d = stationDb();
    commitRecords(d.store, A, await makeRecords(A, systemClock, 2, { shareDeviceKey: true }));
    const { signer: other, certificate: otherCert } = await foreignRegistry();
    // A station that pinned another certificate signs for another audience: the registry refuses the batch.
    const elsewhere = open(A, d.file, { registryCertificate: otherCert });
    const r0 = await elsewhere.syncOnce();
    expect(!r0.ok && r0.error).toMatchObject({ code: 'SYNC_REJECTED', details: { code: 'AUTH_AUDIENCE_MISMATCH' } });
    expect(elsewhere.status()).toMatchObject({ pending: 0, sent: 2, acknowledged: 0 });
    await elsewhere.close();
    // An impostor at the registry URL presents the pinned certificate (the audience matches) but cannot sign with
    // its key: its receipt does not verify and marks nothing.
    const impostor = await startRegistry({
      db: `sqlite:${join(d.dir, 'impostor.db')}`,
      port: 0,
      signer: other,
      registryChain: [registry.certificateDer],
      registryId: 'impostor',
      clock: systemClock,
      logger: quiet,
    });
    if (!impostor.ok) throw new Error(impostor.error.message);
    expect((await enrollStation(impostor.value.context, { stationId: A.id, chainPem: A.chainPem })).ok).toBe(true);
    const wrong = open(A, d.file, { registryUrl: impostor.value.url });
    const r = await wrong.syncOnce();
    await impostor.value.close();
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('SYNC_RECEIPT_INVALID');
    expect(r.error.message).toMatch(/signature/i);
    expect(wrong.status()).toMatchObject({ pending: 0, sent: 2, acknowledged: 0 });
    const [batchId] = wrong.outbox.sentBatchIds();
    await wrong.close();
    const right = open(A, d.file);
    const r2 = await right.syncOnce();
    expect(r2.ok && r2.value).toMatchObject({ sent: 0, acknowledged: 2 });
    expect(right.outbox.receipt(right.outbox.lastReceipt()!.receiptId)!.batchId).toBe(batchId);
  });

  it('a batch refused as a whole keeps its reason and attempts (also across a restart) until it is accepted', async () => {
    const d = stationDb();
    commitRecords(d.store, A, await makeRecords(A, systemClock, 3, { shareDeviceKey: true }));
    const { certificate: otherCert } = await foreignRegistry();
    // Signed for another audience: the real registry refuses the batch at authentication, before reading it.
    const refused = open(A, d.file, { registryCertificate: otherCert });
    expect(refused.status().failingBatches).toEqual([]);
    expect((await refused.syncOnce()).ok).toBe(false);
    const [first] = refused.status().failingBatches;
    expect(first).toMatchObject({ records: 3, attempts: 1, code: 'SYNC_REJECTED' });
    expect(first!.message).toContain('AUTH_AUDIENCE_MISMATCH');
    expect(Date.parse(first!.at)).not.toBeNaN();
    expect((await refused.syncOnce()).ok).toBe(false);
    expect(refused.status().failingBatches).toMatchObject([{ batchId: first!.batchId, attempts: 2 }]);
    await refused.close();
    // A restart reads the reason from the database (the in-memory lastError is gone).
    const restarted = open(A, d.file, { registryCertificate: otherCert, registryUrl: null });
    expect(restarted.status()).toMatchObject({ lastError: null, sent: 3 });
    expect(restarted.status().failingBatches).toMatchObject([{ batchId: first!.batchId, attempts: 2 }]);
    await restarted.close();
    // Once the station pins the right certificate the same batch goes through and nothing is listed any more.
    const fixed = open(A, d.file);
    const r = await fixed.syncOnce();
    expect(r.ok && r.value).toMatchObject({ sent: 0, acknowledged: 3, failingBatches: [] });
    expect(fixed.outbox.receipt(fixed.outbox.lastReceipt()!.receiptId)!.batchId).toBe(first!.batchId);
    expect(fixed.outbox.unacknowledged(10)).toEqual([]);
  });

  it('backs off while the registry is down and delivers everything once it is back', async () => {
    const d = stationDb();
    commitRecords(d.store, A, await makeRecords(A, systemClock, 3, { shareDeviceKey: true }));
    await registry.reg.close();
    const s = open(A, d.file, { registryUrl: registry.url });
    const seen: SyncStatus[] = [];
    s.onChange((x) => seen.push(x));
    s.start();
    await new Promise((r) => setTimeout(r, 400));
    const down = s.status();
    expect(down.reachable).toBe(false);
    expect(down.lastError).toContain('SYNC_UNREACHABLE');
    expect(seen.some((x) => x.nextAttemptAt !== null)).toBe(true);
    expect(down.pending).toBe(3);
    await registry.restart();
    const deadline = Date.now() + 10_000;
    while (s.status().acknowledged < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(s.status()).toMatchObject({ acknowledged: 3, pending: 0, reachable: true, lastError: null });
    await s.stop();
  });

  it('records the registry rejects or holds with other content are failed (conflict flagged) and not retried', async () => {
    const d1 = stationDb();
    const d2 = stationDb();
    const original = await makeRecord(A, systemClock);
    // Another station database of the same station holds a DIFFERENT record with the same id (a restored backup).
    const twin = await makeRecord(A, systemClock, { recordId: original.recordId });
    commitRecords(d2.store, A, [twin]);
    const s2 = open(A, d2.file);
    expect((await s2.syncOnce()).ok).toBe(true);
    const bad = await makeRecord(A, systemClock, {
      mutate: (r) => ({ ...r, workOrder: 'WO-X', station: { ...r.station, id: 'station-zz' } }),
    });
    commitRecords(d1.store, A, [original, bad, ...(await makeRecords(A, systemClock, 1))]);
    const s1 = open(A, d1.file);
    const r = await s1.syncOnce();
    expect(r.ok && r.value).toMatchObject({ acknowledged: 1, failed: 2, pending: 0, sent: 0 });
    expect(s1.outbox.row(original.recordId)).toMatchObject({
      state: 'failed',
      failureReason: 'conflict',
      conflict: true,
    });
    expect(s1.outbox.row(bad.recordId)).toMatchObject({ state: 'failed', failureReason: 'station-mismatch' });
    expect(s1.outbox.counts().conflicts).toBe(1);
    // Not retried: another sync sends nothing.
    const again = await s1.syncOnce();
    expect(again.ok && again.value).toMatchObject({ acknowledged: 1, failed: 2 });
  });

  it('imports receipts: another station, modified, partial, twice — harmless and explained', async () => {
    const recs = await makeRecords(A, systemClock, 4, { shareDeviceKey: true });
    const full = stationDb();
    commitRecords(full.store, A, recs);
    const half = stationDb();
    commitRecords(half.store, A, recs.slice(0, 2));
    const sFull = open(A, full.file, { registryUrl: null });
    const sHalf = open(A, half.file, { registryUrl: null });
    const exp = await sFull.exportBundle();
    if (!exp.ok) throw new Error(exp.error.message);
    expect(exp.value.count).toBe(4);
    expect(exp.value.fileName).toMatch(/^station-a-\d{8}T\d{6}Z-4\.bundle\.jws$/);
    // Export notes the bundle but changes no state.
    expect(sFull.status()).toMatchObject({ pending: 4, acknowledged: 0 });
    expect(sFull.outbox.row(recs[0]!.recordId)!.exportId).not.toBeNull();
    const imp = await importBundle(registry.reg.context, { kind: 'admin' }, exp.value.content);
    if (!imp.ok) throw new Error(imp.error.message);
    const receipt = imp.value.receipt;

    // A receipt of another station's bundle.
    const bDb = stationDb();
    commitRecords(bDb.store, B, await makeRecords(B, systemClock, 1));
    const sB = open(B, bDb.file, { registryUrl: null });
    const bExp = await sB.exportBundle();
    if (!bExp.ok) throw new Error(bExp.error.message);
    const bImp = await importBundle(registry.reg.context, { kind: 'admin' }, bExp.value.content);
    if (!bImp.ok) throw new Error(bImp.error.message);
    const foreign = await sFull.importReceipt(bImp.value.receipt);
    expect(!foreign.ok && foreign.error).toMatchObject({ code: 'SYNC_RECEIPT_INVALID' });
    expect(!foreign.ok && foreign.error.message).toContain('for station station-b');

    // Modified receipts: a byte in the payload, in the signature, a truncated file.
    const [h, p, sig] = receipt.split('.') as [string, string, string];
    const flip = (x: string, i: number) => x.slice(0, i) + (x[i] === 'A' ? 'B' : 'A') + x.slice(i + 1);
    for (const bad of [`${h}.${flip(p, 40)}.${sig}`, `${h}.${p}.${flip(sig, 5)}`, receipt.slice(0, -30)]) {
      const r = await sFull.importReceipt(bad);
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error.message).toContain('nothing was marked');
    }
    expect(sFull.status()).toMatchObject({ pending: 4, acknowledged: 0 });

    // The valid receipt; then again.
    const ok1 = await sFull.importReceipt(receipt + '\n');
    expect(ok1.ok && ok1.value).toMatchObject({ marked: 4, alreadySynced: 0, unknown: 0 });
    const ok2 = await sFull.importReceipt(receipt);
    expect(ok2.ok && ok2.value).toMatchObject({ marked: 0, alreadySynced: 4, unknown: 0 });
    expect(ok2.ok && ok2.value.message).toContain('imported before');
    expect(sFull.status()).toMatchObject({ pending: 0, acknowledged: 4 });
    expect(full.store.verifyAudit().ok).toBe(true);

    // Partial: the other database knows only 2 of the 4 records.
    const part = await sHalf.importReceipt(receipt);
    expect(part.ok && part.value).toMatchObject({ marked: 2, alreadySynced: 0, unknown: 2 });
    expect(part.ok && part.value.message).toContain('2 are not records of this station');
    expect(sHalf.status()).toMatchObject({ pending: 0, acknowledged: 2 });

    // Online sync of records already imported by bundle: the registry answers duplicate, the station is consistent.
    const dup = stationDb();
    commitRecords(dup.store, A, recs.slice(0, 1));
    const sDup = open(A, dup.file);
    const r = await sDup.syncOnce();
    expect(r.ok && r.value).toMatchObject({ acknowledged: 1, failed: 0 });
    const c = await registry.reg.db.counts();
    expect(c.ok && c.value.conflicts).toBe(1); // only the deliberate conflict of the previous test
  });
});

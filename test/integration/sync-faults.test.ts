/**
 * Exactly-once sync under network faults, station side: 10,000 realistic signed records committed through the
 * real Store (the outbox trigger queues them) are synced by the real SyncService to a real registry on
 * 127.0.0.1 through the fault proxy (connection resets mid-request and mid-response, slow answers beyond the
 * client timeout, duplicated requests), with a registry restart and two station restarts (one of them exactly
 * between send and receipt). At the end: the registry holds every record exactly once, every record is
 * acknowledged at the station, and the station's audit chain verifies with the sync entries in it.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import { openRegistryDb } from '../../native/registry-store/index.js';
import { MAX_BUNDLE_RECORDS } from '../../core/hq/protocol.js';
import { startFaultProxy } from '../../testkit/registry/fault-proxy.js';
import {
  createTestStation,
  makeManyRecords,
  type MadeRecord,
  type TestStation,
} from '../../testkit/registry/fixtures.js';
import { openSync, type SyncOptions, type SyncService } from '../../station/sync.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';
import { commitRecords, createStationDb, memoryLogger, startTestRegistry, type TestRegistry } from './sync-fixture.js';

const TOTAL = Number(process.env['LS_SYNC_TEST_RECORDS'] ?? 10_000);

let station: TestStation;
let records: MadeRecord[];
let db: ReturnType<typeof createStationDb>;
let registry: TestRegistry;
const log = memoryLogger();
const figures: Record<string, number> = {};

beforeAll(async () => {
  station = await createTestStation('station-sync-eo', systemClock);
  let t = performance.now();
  records = await makeManyRecords(station, systemClock, TOTAL, 16);
  figures['generate s'] = (performance.now() - t) / 1000;
  db = createStationDb('NORMAL');
  t = commitRecords(db.store, station, records);
  figures['commit records/s'] = Math.round(TOTAL / (t / 1000));
  registry = await startTestRegistry(db.dir, [station]);
}, 240_000);

afterAll(async () => {
  await registry?.close();
  db?.store.close();
  if (db) rmSync(db.dir, { recursive: true, force: true });
  console.log(`sync figures (${TOTAL} records): ${JSON.stringify(figures)}`);
});

describe('exactly-once sync through faults (station side)', () => {
  it(`delivers ${TOTAL} records exactly once and acknowledges every one`, async () => {
    expect(db.store.countRecords()).toBe(TOTAL);
    const base: Omit<SyncOptions, 'registryUrl'> = {
      outbox: db.db.outbox,
      stationId: station.id,
      signer: station.signer,
      chain: station.chain,
      registryCertificate: registry.certificateDer,
      logger: log,
      backoff: { baseMs: 20, capMs: 400 },
      idleMs: 50,
      timeoutMs: 3000,
    };
    const open = (url: string, extra: Partial<SyncOptions> = {}): SyncService => {
      const s = openSync({ ...base, registryUrl: url, ...extra });
      if (!s.ok) throw new Error(s.error.message);
      return s.value;
    };

    // 0. Export throughput: one signed bundle holds at most MAX_BUNDLE_RECORDS (changes no state).
    {
      const s = open(registry.url);
      const t = performance.now();
      const b = await s.exportBundle();
      if (!b.ok) throw new Error(b.error.message);
      figures['export records/s'] = Math.round(b.value.count / ((performance.now() - t) / 1000));
      expect(b.value.count).toBe(Math.min(TOTAL, MAX_BUNDLE_RECORDS));
      expect(s.status()).toMatchObject({ pending: TOTAL, sent: 0 });
      await s.close();
    }

    // 1. Station restart between send and receipt: the registry stores the batch, the answer is lost
    //    (every connection reset mid-response), then the station process "dies".
    const lossy = await startFaultProxy({
      upstreamPort: registry.port,
      seed: 3,
      weights: { none: 0, 'reset-response': 1 },
    });
    let lostBatch: string | null = null;
    // Drive one batch by hand: claim it (state sent, batch id stored), post it through the lossy proxy.
    {
      const s = open(registry.url, {
        beforeSend: async (batchId) => {
          lostBatch = batchId;
          // Post the same batch through the lossy proxy first: stored at the registry, answer lost.
          const { signRequest } = await import('../../core/hq/protocol.js');
          const b = s.outbox.batch(batchId)!;
          const body = JSON.stringify({ batchId, records: b.items.map((i) => i.jws) });
          const { audienceAt } = await import('../../testkit/registry/harness.js');
          const aud = await audienceAt(registry.url);
          const auth = await signRequest(station.signer, station.id, 'POST', '/v1/batches', body, systemClock, aud);
          if (!auth.ok) throw new Error(auth.error.message);
          await fetch(`${lossy.url}/v1/batches`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: auth.value },
            body,
          }).then(
            (r) => r.text(),
            () => null,
          );
          // The station dies here, after the registry stored the batch and before any receipt.
          throw new Error('station killed between send and receipt');
        },
      });
      const r = await s.syncOnce();
      expect(!r.ok && r.error.message).toContain('station killed');
      await s.close();
    }
    await lossy.close();
    expect(lostBatch).not.toBeNull();
    {
      const probe = open(registry.url);
      const st = probe.status();
      expect(st.sent).toBe(500);
      expect(st.acknowledged).toBe(0);
      expect(probe.outbox.sentBatchIds()).toEqual([lostBatch]);
      await probe.close();
    }
    const c0 = await registry.reg.db.counts();
    expect(c0.ok && c0.value.records).toBe(500); // the registry holds the batch the station never heard about

    // 2. The background loop through random faults, with a registry restart and another station restart.
    const proxy = await startFaultProxy({
      upstreamPort: registry.port,
      seed: 17,
      weights: { none: 5, 'reset-request': 1, 'reset-response': 2, delay: 2, duplicate: 2 },
      maxDelayMs: 4500, // some answers come after the 3 s client timeout
    });
    const t0 = performance.now();
    let svc = open(proxy.url);
    let acked = 0;
    let registryRestarted = false;
    let stationRestarted = false;
    let restarting: Promise<void> | null = null;
    const watch = (s: SyncService) =>
      s.onChange((st) => {
        acked = st.acknowledged;
        if (!registryRestarted && st.acknowledged >= TOTAL * 0.3) {
          registryRestarted = true;
          restarting = registry.restart();
        }
        if (registryRestarted && !stationRestarted && st.acknowledged >= TOTAL * 0.6) {
          stationRestarted = true;
          // Restart the station's sync (new connection, in-memory state gone) while batches may be in flight.
          setImmediate(() => {
            void (async () => {
              await svc.close();
              svc = open(proxy.url);
              watch(svc);
              svc.start();
            })();
          });
        }
      });
    watch(svc);
    svc.start();
    const deadline = Date.now() + 150_000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 200));
      const st = svc.status();
      if (stationRestarted && st.pending + st.sent === 0 && st.acknowledged + st.failed === TOTAL) break;
      if (Date.now() > deadline)
        throw new Error(
          `sync did not finish: ${JSON.stringify(st)} acked=${acked}\n${log.lines.slice(-30).join('\n')}`,
        );
    }
    figures['sync through faults records/s'] = Math.round((TOTAL - 500) / ((performance.now() - t0) / 1000));
    const final = svc.status();
    await svc.close();
    await restarting;
    await proxy.close();
    figures['attempts (proxy connections)'] = Object.values(proxy.stats).reduce((a, b) => a + b, 0);
    for (const [k, v] of Object.entries(proxy.stats)) figures[`fault ${k}`] = v;

    // Station: every record acknowledged, none failed; the audit chain (with the sync entries) verifies.
    expect(final).toMatchObject({ pending: 0, sent: 0, acknowledged: TOTAL, failed: 0, lastError: null });
    const audit = db.store.verifyAudit();
    expect(audit.ok, JSON.stringify(audit)).toBe(true);
    // Every issued certificate is in a committed record, and every record is in the audit chain (the fixture's
    // signed records share device certificates, so only the serial links a record to its logged certificate).
    expect(await assertIssuanceInvariant({ dbFile: db.file, recordNamesCertificate: false })).toMatchObject({
      inRecord: TOTAL,
      activeRun: 0,
    });
    const syncEntries = [];
    for (let from = 1; ; from += 10_000) {
      const page = db.store.listAudit(from, 10_000);
      syncEntries.push(...page.filter((e) => e.type === 'sync.acknowledged'));
      if (page.length < 10_000) break;
    }
    const countSum = syncEntries.reduce((a, e) => a + Number(e.payload['count']), 0);
    // Every acknowledgement is audited; receipts with nothing new (repeats) write no entry.
    expect(countSum).toBe(TOTAL);

    // Registry: exactly TOTAL distinct records, every one of ours, no conflicts.
    await registry.close();
    const rdb = await openRegistryDb(`sqlite:${db.dir}/registry.db`);
    if (!rdb.ok) throw new Error(rdb.error.message);
    try {
      const c = await rdb.value.counts();
      if (!c.ok) throw new Error(c.error.message);
      expect(c.value.records).toBe(TOTAL);
      expect(c.value.conflicts).toBe(0);
      const all = await rdb.value.listRecords({ limit: TOTAL + 10 });
      if (!all.ok) throw new Error(all.error.message);
      const ids = new Map(all.value.map((r) => [r.recordId, r.sha256]));
      expect(ids.size).toBe(TOTAL);
      for (const r of records) expect(ids.get(r.recordId)).toBe(r.sha256);
    } finally {
      await rdb.value.close();
    }
    expect(registryRestarted).toBe(true);
    expect(stationRestarted).toBe(true);
    expect(proxy.stats['reset-response']).toBeGreaterThan(0);
    expect(proxy.stats['reset-request']).toBeGreaterThan(0);
    expect(proxy.stats['duplicate']).toBeGreaterThan(0);
    // Slow answers hit the client timeout (and were retried with the same batch id).
    expect(log.lines.some((l) => l.includes('no answer within'))).toBe(true);
  }, 200_000);
});

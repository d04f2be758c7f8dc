/**
 * Exactly once under faults: 10,000 realistic records pushed in batches of 500 through a fault-injecting
 * proxy (connection resets mid-request and mid-response, delays, duplicated requests) by a simple retrying
 * client (same batchId on every retry, a freshly signed request each time), with a registry restart in the
 * middle. The registry must hold exactly 10,000 distinct records and every record id must be in a receipt.
 */
import 'reflect-metadata';
import { request, Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromPem } from '../../core/pki/pem.js';
import { systemClock } from '../../core/ports.js';
import { openRegistryDb } from '../../native/registry-store/index.js';
import { signRequest, verifyReceipt, type BatchResponse } from '../../core/hq/protocol.js';
import { startRegistry, type RunningRegistry } from '../http/server.js';
import { startFaultProxy } from '../../testkit/registry/fault-proxy.js';
import {
  createTestStation,
  makeManyRecords,
  type MadeRecord,
  type TestStation,
} from '../../testkit/registry/fixtures.js';
import {
  backends,
  createRegistryKeys,
  createTestDb,
  quietLogger,
  type TestKeys,
} from '../../testkit/registry/harness.js';

const TOTAL = 10_000;
const BATCH = 500;

let keys: TestKeys;
let station: TestStation;
let records: MadeRecord[];

beforeAll(async () => {
  keys = await createRegistryKeys();
  station = await createTestStation('station-eo', systemClock);
  records = await makeManyRecords(station, systemClock, TOTAL, 24);
}, 180_000);

afterAll(async () => {
  await keys?.cleanup();
});

const agent = new Agent({ keepAlive: false });

/** One POST over a fresh connection; rejects on any network error (a reset, a refused connection). */
function postOnce(
  url: string,
  path: string,
  body: string,
  authorization: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url + path,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          res.complete
            ? resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })
            : reject(new Error('incomplete response')),
        );
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('response aborted')));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

for (const backend of backends()) {
  describe(`exactly once under faults (${backend})`, () => {
    it(`stores exactly ${TOTAL} records through resets, delays, duplicates and a restart`, async () => {
      const tdb = await createTestDb(backend);
      const start = async (port: number): Promise<RunningRegistry> => {
        const r = await startRegistry({
          db: tdb.url,
          port,
          signer: keys.signer,
          registryChain: keys.chain,
          registryId: 'registry-eo',
          adminToken: keys.adminToken,
          clock: systemClock,
          logger: quietLogger,
        });
        if (!r.ok) throw new Error(r.error.message);
        return r.value;
      };
      let reg = await start(0);
      const port = reg.port;
      const { audienceOf } = await import('../common/context.js');
      const { enrollStation } = await import('../stations/service.js');
      const aud = audienceOf(reg.context);
      const e = await enrollStation(reg.context, { stationId: station.id, chainPem: station.chainPem });
      expect(e.ok).toBe(true);
      const proxy = await startFaultProxy({
        upstreamPort: port,
        seed: backend === 'sqlite' ? 7 : 11,
        weights: { none: 4, 'reset-request': 1, 'reset-response': 2, delay: 1, duplicate: 2 },
        maxDelayMs: 150,
      });
      const cert = fromPem(keys.certificatePem, 'CERTIFICATE');
      if (!cert.ok) throw new Error('registry.pem');
      const receipted = new Map<string, string>();
      let attempts = 0;
      let restarted = false;
      let restarting: Promise<void> | null = null;
      const batches: Array<{ batchId: string; body: string }> = [];
      for (let i = 0; i < TOTAL; i += BATCH)
        batches.push({
          batchId: globalThis.crypto.randomUUID(),
          body: JSON.stringify({ batchId: '', records: [] }),
        });
      for (const [n, b] of batches.entries())
        b.body = JSON.stringify({
          batchId: b.batchId,
          records: records.slice(n * BATCH, (n + 1) * BATCH).map((r) => r.jws),
        });

      const send = async (b: { batchId: string; body: string }, n: number) => {
        for (let attempt = 0; attempt < 60; attempt++) {
          attempts++;
          const auth = await signRequest(station.signer, station.id, 'POST', '/v1/batches', b.body, systemClock, aud);
          if (!auth.ok) throw new Error(auth.error.message);
          let res: { status: number; text: string };
          try {
            res = await postOnce(proxy.url, '/v1/batches', b.body, auth.value);
          } catch {
            await new Promise((r) => setTimeout(r, 20 + attempt * 20));
            continue;
          }
          if (res.status !== 200) {
            // Only transient failures may happen here (a restart); anything else is a bug.
            expect([502, 503], res.text).toContain(res.status);
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          const body = JSON.parse(res.text) as BatchResponse;
          expect(body.batchId).toBe(b.batchId);
          const receipt = await verifyReceipt(body.receipt, cert.value, { stationId: station.id, batchId: b.batchId });
          if (!receipt.ok) throw new Error(receipt.error.message);
          expect(receipt.value.rejected).toEqual([]);
          for (const a of receipt.value.accepted) receipted.set(a.recordId, a.sha256);
          // Restart the registry once, in the middle, while other batches are in flight.
          if (n === 8 && !restarted) {
            restarted = true;
            restarting = (async () => {
              await reg.close();
              await new Promise((r) => setTimeout(r, 100));
              reg = await start(port);
            })();
          }
          return;
        }
        throw new Error(`batch ${n} did not get through`);
      };
      // Two batches in flight at a time.
      let next = 0;
      const worker = async () => {
        while (next < batches.length) {
          const n = next++;
          await send(batches[n]!, n);
        }
      };
      await Promise.all([worker(), worker()]);
      await restarting;
      await proxy.close();
      await reg.close();

      const db = await openRegistryDb(tdb.url);
      if (!db.ok) throw new Error(db.error.message);
      try {
        const c = await db.value.counts();
        if (!c.ok) throw new Error(c.error.message);
        expect(c.value.records).toBe(TOTAL);
        expect(c.value.conflicts).toBe(0);
        const all = await db.value.listRecords({ limit: TOTAL + 10 });
        if (!all.ok) throw new Error(all.error.message);
        const ids = new Set(all.value.map((r) => r.recordId));
        expect(ids.size).toBe(TOTAL);
        for (const r of records) {
          expect(ids.has(r.recordId)).toBe(true);
          expect(receipted.get(r.recordId)).toBe(r.sha256);
        }
      } finally {
        await db.value.close();
        await tdb.cleanup();
      }
      expect(restarted).toBe(true);
      expect(proxy.stats['reset-response']).toBeGreaterThan(0);
      expect(proxy.stats['duplicate']).toBeGreaterThan(0);
      expect(attempts).toBeGreaterThan(batches.length);
    }, 180_000);
  });
}

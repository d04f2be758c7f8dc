/**
 * The device lifecycle applied INSIDE the ingest transaction, and the `rotated` state, per backend (SQLite;
 * PostgreSQL with LINE_STATION_TEST_PG_URL): a failure injected in the apply step (FailPoint 'ingest-apply')
 * stores nothing and answers a retryable 503; the station's retry stores exactly one record, one device and one
 * active credential per board, and the event log verifies. Rotation records and re-enrolment move an activated
 * device to `rotated` (a provisioned one stays provisioned); the rotated device's credential is good on the CRL.
 */
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate, X509Crl } from '@peculiar/x509';
import { systemClock } from '../../core/ports.js';
import { fromPem } from '../../core/pki/pem.js';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { must } from '../../testkit/pki/test-util.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { createTestTokens, type TestToken } from '../../testkit/hsm.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { type RunningRegistry } from '../http/server.js';
import { makeRecord } from '../../testkit/registry/fixtures.js';
import { backends, call, createTestDb, type TestDb } from '../../testkit/registry/harness.js';
import { reconcileLifecycle } from './reconcile.js';
import { type FailPoint } from '../common/context.js';
import {
  createHsmStation,
  delegateOverHttp,
  startLifecycleRegistry,
  type HsmStation,
} from '../../testkit/registry/lifecycle.js';

const PIN = 'ingest-apply-PIN-77';
const ADMIN = 'admin-token-ingest-apply-0123';
const OFFICER = 'officer-token-ingest-apply-0123';
let tok: TestToken;
let stationHsm: HsmAdmin;
let registryHsm: HsmAdmin;

beforeAll(async () => {
  tok = await createTestTokens(['station', 'registry'], PIN);
  stationHsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN }));
  registryHsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'registry', pin: PIN }));
});

afterAll(async () => {
  await stationHsm?.close();
  await registryHsm?.close();
  await tok?.cleanup();
});

interface History {
  state: string;
  credentials: { version: number; status: string; serial: string }[];
}

for (const backend of backends()) {
  describe(`device lifecycle inside the ingest transaction (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;
    let reg: RunningRegistry;
    let station: HsmStation;
    let signerPem = '';
    let failNext: FailPoint | null = null;
    let failHits = 0;
    /** Hold the ingest transaction open this long in the apply step (so concurrent batches queue up). */
    let applyDelayMs = 0;
    const boards: { serial: string; chipId: string; key: TestSigner; pem: string }[] = [];

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      reg = await startLifecycleRegistry(db, {
        registryId: 'registry-ia',
        adminToken: ADMIN,
        lifecycle: {
          hsm: registryHsm,
          certificateLifetimeDays: 1,
          securityOfficerTokenSha256: createHash('sha256').update(OFFICER).digest(),
          failpoint: async (p) => {
            if (p === 'ingest-apply' && applyDelayMs) await new Promise((r) => setTimeout(r, applyDelayMs));
            if (failNext === p) {
              failNext = null;
              failHits++;
              throw new Error(`injected failure at ${p}`);
            }
          },
        },
      });
      station = await createHsmStation(stationHsm, `st-ia-${backend}`);
      const e = await call(reg.url, 'POST', '/v1/admin/stations', {
        bearer: ADMIN,
        body: { stationId: station.id, chainPem: station.chainPem },
      });
      expect(e.status, e.text).toBe(201);
      // Certify the registry's revocation signer (CRL signing needs it).
      signerPem = (await delegateOverHttp(reg, station)).certificatePem;
    });

    afterAll(async () => {
      await reg?.close();
      await db?.close();
      await tdb?.cleanup();
    });

    const history = async (serial: string): Promise<History> => {
      const h = await call(reg.url, 'GET', `/v1/devices/${serial}/history`, { bearer: ADMIN });
      expect(h.status, h.text).toBe(200);
      return h.json as History;
    };
    const one = async (q: string, args: unknown[] = []): Promise<number> =>
      Number((await db.sql.all(q, args))[0]!['n']);
    const tableCounts = async () => ({
      batches: await one('SELECT COUNT(*) AS n FROM batches'),
      records: await one('SELECT COUNT(*) AS n FROM records'),
      devices: await one('SELECT COUNT(*) AS n FROM devices'),
      credentials: await one('SELECT COUNT(*) AS n FROM credentials'),
      active: await one("SELECT COUNT(*) AS n FROM credentials WHERE status = 'active'"),
      events: await one('SELECT COUNT(*) AS n FROM lifecycle_events'),
    });
    const chainOk = async () => {
      const v = await call(reg.url, 'GET', '/v1/lifecycle/verify', { bearer: OFFICER });
      expect(v.status, v.text).toBe(200);
      expect(v.json).toMatchObject({ ok: true });
    };
    const post = (batchId: string, records: string[]) =>
      call(reg.url, 'POST', '/v1/batches', { station, body: { batchId, records } });

    it('a failure in the apply step stores nothing (503, retryable); the retry stores everything exactly once', async () => {
      const made = [];
      for (let i = 0; i < 3; i++) {
        const key = await createTestSigner('P-256');
        const m = await makeRecord(station, systemClock, { serialNumber: `IA-${backend}-${i}`, deviceKey: key });
        boards.push({ serial: m.record.board.serialNumber, chipId: m.record.board.chipId, key, pem: '' });
        boards[i]!.pem = m.record.certificate.pem;
        made.push(m.jws);
      }
      const before = await tableCounts();
      const batchId = globalThis.crypto.randomUUID();
      failNext = 'ingest-apply';
      const failed = await post(batchId, made);
      expect(failHits).toBe(1);
      expect(failed.status, failed.text).toBe(503);
      expect(failed.json).toMatchObject({ error: { code: 'STORE_UNAVAILABLE' } });
      // Rolled back as a whole: no batch row, no records, no devices, no credentials, no events.
      expect(must(await db.getBatch(station.id, batchId))).toBeNull();
      expect(await tableCounts()).toEqual(before);
      expect((await call(reg.url, 'GET', `/v1/devices/${boards[0]!.serial}/history`, { bearer: ADMIN })).status).toBe(
        404,
      );

      // The station retries the same batch: everything is stored once.
      const retry = await post(batchId, made);
      expect(retry.status, retry.text).toBe(200);
      expect(retry.json).toMatchObject({ repeated: false, summary: { accepted: 3, duplicate: 0, rejected: 0 } });
      const after = await tableCounts();
      expect(after).toMatchObject({ batches: before.batches + 1, records: 3, devices: 3, credentials: 3, active: 3 });
      expect(after.events).toBe(before.events + 3);
      for (const b of boards.slice(0, 3)) {
        const h = await history(b.serial);
        expect(h.state).toBe('provisioned');
        expect(h.credentials.map((c) => `${c.version}:${c.status}`)).toEqual(['1:active']);
      }
      // Same batch again: the stored answer. Same records in another batch: duplicates, nothing applied twice.
      expect((await post(batchId, made)).json).toMatchObject({ repeated: true });
      const dup = await post(globalThis.crypto.randomUUID(), made);
      expect(dup.json).toMatchObject({ summary: { accepted: 0, duplicate: 3 } });
      expect(await tableCounts()).toMatchObject({
        records: 3,
        devices: 3,
        credentials: 3,
        active: 3,
        events: after.events,
      });
      await chainOk();
    });

    it('concurrent batches each apply their devices in their own transaction (no interleaving)', async () => {
      const before = await tableCounts();
      const batches: string[][] = [];
      for (let b = 0; b < 4; b++) {
        const list: string[] = [];
        for (let i = 0; i < 4; i++)
          list.push((await makeRecord(station, systemClock, { serialNumber: `IA-${backend}-C${b}-${i}` })).jws);
        batches.push(list);
      }
      // Each batch holds its transaction open for 100 ms, so the others (and lifecycle reads) queue behind it.
      applyDelayMs = 100;
      const results = await Promise.all([
        ...batches.map((list) => post(globalThis.crypto.randomUUID(), list)),
        call(reg.url, 'GET', '/v1/lifecycle/verify', { bearer: OFFICER }),
      ]).finally(() => (applyDelayMs = 0));
      for (const r of results.slice(0, 4)) expect(r.json, r.text).toMatchObject({ summary: { accepted: 4 } });
      expect(await tableCounts()).toMatchObject({
        batches: before.batches + 4,
        records: before.records + 16,
        devices: before.devices + 16,
        credentials: before.credentials + 16,
        active: before.active + 16,
        events: before.events + 16,
      });
      await chainOk();
    });

    it('rotation records: activated -> rotated (and stays rotated), provisioned stays provisioned; rolled back on failure', async () => {
      const [b0, b1] = boards;
      const act = await call(reg.url, 'POST', `/v1/devices/${b0!.serial}/activate`, { bearer: OFFICER, body: {} });
      expect(act.json).toMatchObject({ state: 'activated' });
      const rot = async (b: (typeof boards)[number]) =>
        (await makeRecord(station, systemClock, { serialNumber: b.serial, chipId: b.chipId })).jws;
      const batch = [await rot(b0!), await rot(b1!)];
      const batchId = globalThis.crypto.randomUUID();
      const before = await tableCounts();
      failNext = 'ingest-apply';
      expect((await post(batchId, batch)).status).toBe(503);
      expect(await tableCounts()).toEqual(before);
      expect((await history(b0!.serial)).state).toBe('activated');

      const ok1 = await post(batchId, batch);
      expect(ok1.json).toMatchObject({ summary: { accepted: 2 } });
      const h0 = await history(b0!.serial);
      expect(h0.state).toBe('rotated');
      expect(h0.credentials.map((c) => `${c.version}:${c.status}`)).toEqual(['1:superseded', '2:active']);
      const h1 = await history(b1!.serial);
      expect(h1.state).toBe('provisioned');
      expect(h1.credentials.map((c) => `${c.version}:${c.status}`)).toEqual(['1:superseded', '2:active']);
      const ev = await db.sql.all("SELECT payload FROM lifecycle_events WHERE type = 'device.rotated' ORDER BY seq");
      expect(ev.map((e) => JSON.parse(e['payload'] as string) as { from: string; to: string })).toMatchObject([
        { from: 'activated', to: 'rotated' },
        { from: 'provisioned', to: 'provisioned' },
      ]);

      // rotated --rotate--> rotated; the active credential is good on the CRL, the superseded ones are listed.
      expect((await post(globalThis.crypto.randomUUID(), [await rot(b0!)])).json).toMatchObject({
        summary: { accepted: 1 },
      });
      const h0b = await history(b0!.serial);
      expect(h0b.state).toBe('rotated');
      expect(h0b.credentials.map((c) => c.status)).toEqual(['superseded', 'superseded', 'active']);
      const crlRes = await fetch(`${reg.url}/v1/crl/${station.id}.crl`);
      expect(crlRes.status).toBe(200);
      const crl = new X509Crl(await crlRes.arrayBuffer());
      // Signed by the registry's delegated signer (certified by the station's issuing CA), not by the CA key.
      expect(await crl.verify({ publicKey: new X509Certificate(must(fromPem(signerPem, 'CERTIFICATE'))) })).toBe(true);
      expect(await crl.verify({ publicKey: new X509Certificate(station.ca) })).toBe(false);
      const listed = new Set(crl.entries.map((e) => e.serialNumber.toLowerCase().replace(/^0+/, '')));
      expect(listed.has(h0b.credentials[2]!.serial)).toBe(false);
      expect(listed.has(h0b.credentials[0]!.serial) && listed.has(h0b.credentials[1]!.serial)).toBe(true);

      // Same exits as activated: activate is illegal; suspend then resume -> activated.
      const again = await call(reg.url, 'POST', `/v1/devices/${b0!.serial}/activate`, { bearer: ADMIN, body: {} });
      expect(again.status).toBe(409);
      expect(again.json).toMatchObject({ error: { code: 'LIFECYCLE_TRANSITION_INVALID' } });
      const sus = await call(reg.url, 'POST', `/v1/devices/${b0!.serial}/suspend`, {
        bearer: OFFICER,
        body: { reason: 'audit' },
      });
      expect(sus.json).toMatchObject({ state: 'suspended' });
      const res = await call(reg.url, 'POST', `/v1/devices/${b0!.serial}/resume`, { bearer: OFFICER, body: {} });
      expect(res.json).toMatchObject({ state: 'activated' });
      await chainOk();
    });

    it('re-enrolment at headquarters is refused (REENROLL_UNAVAILABLE: no issuing CA key there); nothing changes', async () => {
      const b2 = boards[2]!;
      const before = await history(b2.serial);
      const r = await call(reg.url, 'POST', '/v1/devices/reenroll', {
        body: { certificate: b2.pem, csr: 'AA', ts: new Date().toISOString(), nonce: 'A'.repeat(22), proof: 'AA' },
      });
      expect(r.status, r.text).toBe(501);
      expect(r.json).toMatchObject({ error: { code: 'REENROLL_UNAVAILABLE' } });
      expect(await history(b2.serial)).toEqual(before);
      await chainOk();
    });

    it('reconcile repairs records stored without lifecycle entries (the pre-v3 logged-only failure); dry run first', async () => {
      const serials = [`IA-${backend}-R0`, `IA-${backend}-R1`];
      const jws = [];
      for (const serialNumber of serials) jws.push((await makeRecord(station, systemClock, { serialNumber })).jws);
      const ok = await post(globalThis.crypto.randomUUID(), jws);
      expect(ok.status, ok.text).toBe(200);
      // What the old code could leave behind: records stored and acknowledged, no devices, no credentials.
      await db.sql.transaction(async (x) => {
        await x.run(`DELETE FROM credentials WHERE serial_number IN (?, ?)`, serials);
        await x.run(`DELETE FROM devices WHERE serial_number IN (?, ?)`, serials);
      });
      const gap = await tableCounts();
      const ctx = reg.context;
      const dry = must(await reconcileLifecycle(ctx, 'admin', true));
      expect(dry).toMatchObject({ dryRun: true, pending: 2, applied: 2 });
      expect(dry.records.map((r) => r.serialNumber).sort()).toEqual(serials);
      expect(await tableCounts()).toEqual(gap); // rolled back
      const done = must(await reconcileLifecycle(ctx, 'admin', false));
      expect(done).toMatchObject({ dryRun: false, pending: 2, applied: 2 });
      for (const s of serials) {
        const h = await history(s);
        expect(h.state).toBe('provisioned');
        expect(h.credentials.map((c) => c.status)).toEqual(['active']);
      }
      expect(await tableCounts()).toMatchObject({ devices: gap.devices + 2, credentials: gap.credentials + 2 });
      // Idempotent: nothing left to do.
      expect(must(await reconcileLifecycle(ctx, 'admin', false))).toMatchObject({ pending: 0, applied: 0 });
      await chainOk();
    });
  });
}

/**
 * Audit chain anchoring at the registry (docs/audit.md "Anchoring at the registry"), on SQLite and PostgreSQL: a
 * station database filled through the real Store, the real SyncService sending batches and bundles to a registry
 * on loopback. Heads are anchored and extend each other; the station gets them back signed (and refuses an answer
 * a fake registry signed or replayed); crafted submissions (a head that is not the proof's hash, a fork at an anchored entry,
 * a base the registry never anchored, a head signed by another key) are refused or recorded as findings while the
 * records are still ingested; a rewritten station database is reported; the bundle path anchors too.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { GENESIS_HASH } from '../../core/provisioning/audit.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { systemClock } from '../../core/ports.js';
import { rewriteAuditHistory } from '../../testkit/store-fixtures.js';
import { openSync, type SyncService } from '../../station/sync.js';
import { commitRecords, createStationDb, quiet } from './sync-fixture.js';
import { stationAudit, verifyStationAudit } from '../../registry/audit/audit-anchor.js';
import { AUDIT_HEADS_TYP, signAuditHead, type AuditHeadSubmission } from '../../core/hq/audit-head.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import { BatchResponseSchema, verifyReceipt } from '../../core/hq/protocol.js';
import type { RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { importBundle } from '../../registry/http/compose.js';
import { createTestStation, makeRecords, type TestStation } from '../../testkit/registry/fixtures.js';
import { backends, call, createTestDb, type TestDb } from '../../testkit/registry/harness.js';

for (const backend of backends()) {
  describe(`audit anchoring (${backend})`, () => {
    let tdb: TestDb;
    let reg: RunningRegistry;
    let station: TestStation;
    let d: ReturnType<typeof createStationDb>;
    let sync: SyncService;
    const regCert = () => reg.context.registryChain[0]!;
    const open = (url: string, cert = regCert(), batchSize = 10) => {
      const s = openSync({
        outbox: d.db.outbox,
        stationId: station.id,
        signer: station.signer,
        chain: station.chain,
        registryUrl: url,
        registryCertificate: cert,
        logger: quiet,
        batchSize,
      });
      if (!s.ok) throw new Error(s.error.message);
      return s.value;
    };
    const audit = async () => {
      const a = await verifyStationAudit(reg.context, station.id);
      if (!a.ok) throw new Error(a.error.message);
      return a.value;
    };
    const localHash = (seq: number) => d.store.listAudit(seq, 1)[0]!.hash;
    /** POST a batch (an already stored record: a duplicate) carrying `auditHead`; the receipt's verdict. */
    const postHead = async (auditHead: AuditHeadSubmission) => {
      const rec = d.store.listRecords({ limit: 1 })[0]!;
      const r = await call(reg.url, 'POST', '/v1/batches', {
        station,
        body: { batchId: globalThis.crypto.randomUUID(), records: [rec.jws], auditHead },
      });
      expect(r.status, r.text).toBe(200);
      const b = BatchResponseSchema.parse(r.json);
      expect(b.summary).toMatchObject({ duplicate: 1, rejected: 0 });
      const v = await verifyReceipt(b.receipt, regCert(), { stationId: station.id });
      if (!v.ok) throw new Error(v.error.message);
      return v.value.auditHead!;
    };
    /** A head over the station's current chain with a proof from `fromSeq` (entries as the station has them). */
    const submission = async (fromSeq: number, o: { signer?: typeof station.signer; hash?: string } = {}) => {
      const all = d.store.listAudit(1, 1_000_000);
      const head = all[all.length - 1]!;
      const jws = await signAuditHead({
        signer: o.signer ?? station.signer,
        chain: station.chain,
        stationId: station.id,
        seq: head.seq,
        hash: o.hash ?? head.hash,
        clock: systemClock,
      });
      if (!jws.ok) throw new Error(jws.error.message);
      return {
        head: jws.value,
        fromSeq,
        fromHash: fromSeq === 0 ? GENESIS_HASH : localHash(fromSeq),
        entries: all
          .filter((e) => e.seq > fromSeq)
          .map((e) => ({ seq: e.seq, ts: e.ts, type: e.type, runId: e.runId, payload: { ...e.payload } })),
      } satisfies AuditHeadSubmission;
    };

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      station = await createTestStation('anchor-station', systemClock);
      reg = await startLifecycleRegistry(await tdb.open(), { registryId: 'hq', adminToken: 'a'.repeat(32) });
      expect((await enrollStation(reg.context, { stationId: station.id, chainPem: station.chainPem })).ok).toBe(true);
      d = createStationDb('NORMAL');
      sync = open(reg.url);
    }, 120_000);
    afterAll(async () => {
      await sync?.close();
      d?.store.close();
      await reg?.close();
      await reg?.db.close();
      await tdb?.cleanup();
    });

    it('anchors the head of every batch; each extends the last; the station gets them back signed', async () => {
      commitRecords(d.store, station, await makeRecords(station, systemClock, 25, { shareDeviceKey: true }));
      const r = await sync.syncOnce();
      expect(r.ok && r.value).toMatchObject({ acknowledged: 25, pending: 0 });
      const a = await audit();
      expect(a).toMatchObject({ ok: true, findings: [], problems: [] });
      expect(a.heads).toHaveLength(3); // batches of 10, 10, 5
      expect(a.anchoredEntries).toBe(a.latest!.seq);
      for (const h of a.heads) expect(localHash(h.seq)).toBe(h.hash);
      expect(sync.outbox.auditAnchors().map((x) => x.seq)).toEqual(a.heads.map((h) => h.seq));

      const got = await sync.anchoredHeads();
      if (!got.ok) throw new Error(got.error.message);
      expect(got.value).toMatchObject({ stationId: station.id, latest: a.latest, findings: [] });
      expect(got.value.heads.map((h) => h.seq)).toEqual(a.heads.map((h) => h.seq));

      // The same over the admin route; the station route wants exactly a fresh challenge.
      const adm = await call(reg.url, 'GET', `/v1/stations/${station.id}/audit`, { bearer: 'a'.repeat(32) });
      expect(adm.status, adm.text).toBe(200);
      expect(adm.json).toMatchObject({ stationId: station.id, latest: a.latest, anchoredEntries: a.latest!.seq });
      const noChallenge = await call(reg.url, 'GET', '/v1/audit-heads', { station });
      expect(noChallenge.status).toBe(400);
      expect((await call(reg.url, 'GET', `/v1/stations/${station.id}/audit`)).status).toBe(401);

      // A fake registry on the station's URL: its own signature, or a genuine answer replayed, is refused.
      let mode: 'forge' | 'replay' = 'forge';
      let captured: string | null = null;
      const other = await createTestSigner('P-256');
      const fakeSrv = createServer((req, res) => {
        void (async () => {
          const url = new URL(req.url ?? '/', 'http://fake.invalid');
          let text: string;
          if (mode === 'forge') {
            const payload = { ...got.value, challenge: url.searchParams.get('challenge') ?? '', heads: [] };
            const jws = await signJws({
              signer: other,
              payload: utf8(canonicalJson(payload)),
              header: { typ: AUDIT_HEADS_TYP, kid: 'hq' },
            });
            text = JSON.stringify({ jws: jws.ok ? jws.value : '' });
          } else {
            // Relay the first request to the real registry, then replay its (genuine, signed) answer.
            captured ??= await (
              await fetch(reg.url + (req.url ?? '/'), { headers: { authorization: req.headers.authorization ?? '' } })
            ).text();
            text = captured;
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end(text);
        })();
      });
      await new Promise<void>((r) => fakeSrv.listen(0, '127.0.0.1', r));
      const viaFake = open(`http://127.0.0.1:${(fakeSrv.address() as AddressInfo).port}`);
      try {
        const forged = await viaFake.anchoredHeads();
        expect(forged.ok ? 'ok' : forged.error.code).toBe('SYNC_RECEIPT_INVALID');
        expect(forged.ok ? '' : forged.error.message).toMatch(/signature/);
        mode = 'replay';
        const first = await viaFake.anchoredHeads(); // relayed: genuine and fresh
        expect(first.ok).toBe(true);
        const replayed = await viaFake.anchoredHeads();
        expect(replayed.ok ? 'ok' : replayed.error.code).toBe('SYNC_RECEIPT_INVALID');
        expect(replayed.ok ? '' : replayed.error.message).toMatch(/does not echo this request/);
      } finally {
        await viaFake.close();
        await new Promise((r) => fakeSrv.close(r));
      }
    });

    it('refuses crafted heads: not the proof hash, forked, unanchored base, other key; records still stored', async () => {
      const before = await audit();
      const latest = before.latest!.seq;
      d.store.appendAudit('station.note', { note: 'new entry after the last head' });

      const mismatch = await postHead(await submission(latest, { hash: 'f'.repeat(64) }));
      expect(mismatch).toMatchObject({ status: 'refused', finding: 'proof-mismatch' });

      const forked = await submission(latest - 3);
      forked.entries[1] = { ...forked.entries[1]!, payload: { ...forked.entries[1]!.payload, forged: true } };
      // (the head's hash is the station's real one: the forged entry chains elsewhere from entry latest-2 on)
      const fv = await postHead(forked);
      expect(fv).toMatchObject({ status: 'refused', finding: 'forked' });
      expect(fv.message).toContain(`entry ${latest - 1}`);

      const gap = await submission(latest + 1);
      expect(await postHead(gap)).toMatchObject({ status: 'invalid', finding: null });

      const other = await createTestSigner('P-256');
      expect(await postHead(await submission(latest, { signer: other }))).toMatchObject({
        status: 'invalid',
        finding: null,
      });

      const a = await audit();
      expect(a.ok).toBe(false);
      expect(a.findings.map((f) => f.kind).sort()).toEqual(['forked', 'proof-mismatch']);
      expect(a.latest).toEqual(before.latest); // nothing of it anchored
      // The same forged submission again: the finding is not duplicated.
      await postHead(forked);
      expect((await stationAudit(reg.context, station.id)).ok && (await audit()).findings).toHaveLength(2);

      // An honest head still extends the anchored chain.
      expect(await postHead(await submission(latest))).toMatchObject({ status: 'anchored' });
      expect((await audit()).latest).toEqual({
        seq: d.store.listAudit(1, 1_000_000).at(-1)!.seq,
        hash: localHash(d.store.listAudit(1, 1_000_000).at(-1)!.seq),
      });
    });

    it('bundles carry the head too; the imported receipt records it at the station', async () => {
      commitRecords(d.store, station, await makeRecords(station, systemClock, 3, { shareDeviceKey: true }));
      const b = await sync.exportBundle();
      if (!b.ok) throw new Error(b.error.message);
      const imp = await importBundle(reg.context, { kind: 'admin' }, b.value.content);
      if (!imp.ok) throw new Error(imp.error.message);
      const v = await verifyReceipt(imp.value.receipt, regCert(), { stationId: station.id });
      if (!v.ok) throw new Error(v.error.message);
      expect(v.value.auditHead).toMatchObject({ status: 'anchored' });
      const applied = await sync.importReceipt(imp.value.receipt);
      expect(applied.ok).toBe(true);
      const anchors = sync.outbox.auditAnchors();
      expect(anchors[anchors.length - 1]).toEqual({ seq: v.value.auditHead!.seq, hash: v.value.auditHead!.hash });
    });

    it('a rewritten station database is reported at the next sync; its records are still ingested', async () => {
      const before = await audit();
      rewriteAuditHistory(d.file, 2, { rewritten: true });
      commitRecords(d.store, station, await makeRecords(station, systemClock, 2, { shareDeviceKey: true }));
      const r = await sync.syncOnce();
      expect(r.ok && r.value).toMatchObject({ pending: 0, failed: 0 });
      const a = await audit();
      const f = a.findings.find((x) => x.kind === 'rewritten');
      expect(f).toMatchObject({ atSeq: before.latest!.seq, anchoredHash: before.latest!.hash });
      expect(a.latest).toEqual(before.latest);
      const got = await sync.anchoredHeads();
      expect(got.ok && got.value.findings.map((x) => x.kind)).toContain('rewritten');
    });
  });
}

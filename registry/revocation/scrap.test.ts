/**
 * Station scrap revocations (POST /v1/revocations), per backend (SQLite; PostgreSQL with
 * LINE_STATION_TEST_PG_URL): real SoftHSM2 tokens (station CA key in the station token, the registry revocation signer in the registry token), records
 * ingested over HTTP, signed scrap events revoke the credential (history, CRL checked by openssl), duplicates
 * are harmless, events signed by another station / for another station's device / tampered change nothing.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { systemClock } from '../../core/ports.js';
import { issueStationCertificate } from '../../core/pki/ca.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { must } from '../../testkit/pki/test-util.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { createTestTokens, type TestToken } from '../../testkit/hsm.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { type RunningRegistry } from '../http/server.js';
import { createTestStation, makeRecord, type TestStation } from '../../testkit/registry/fixtures.js';
import {
  createHsmStation,
  delegateOverHttp,
  startLifecycleRegistry,
  type HsmStation,
} from '../../testkit/registry/lifecycle.js';
import { backends, call, createTestDb, type TestDb } from '../../testkit/registry/harness.js';
import { SCRAP_SCHEMA, SCRAP_TYP } from '../../core/hq/scrap.js';

const PIN = 'scrap-PIN-4242';
const ADMIN = 'admin-token-0123456789abcdef';
const OFFICER = 'officer-token-0123456789abcdef';
let tok: TestToken;
let stationHsm: HsmAdmin;
let registryHsm: HsmAdmin;
let work: string;

beforeAll(async () => {
  tok = await createTestTokens(['station', 'registry'], PIN);
  stationHsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN }));
  registryHsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'registry', pin: PIN }));
  work = mkdtempSync(join(tmpdir(), 'ls-scrap-'));
});

afterAll(async () => {
  await stationHsm?.close();
  await registryHsm?.close();
  await tok?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** A station whose issuing CA key is a WRAPPABLE key in the station token (as station init will make it). */
const hsmStation = (id: string) => createHsmStation(stationHsm, id, { workOrder: 'WO-SCRAP-1' });

interface Board {
  readonly serialNumber: string;
  readonly chipId: string;
  readonly recordId: string;
  readonly certSerial: string;
  readonly certSha256: string;
}

/** A scrap event as station/lifecycle signs it; `signer`/`chain` default to the station's. */
async function scrapJws(
  st: TestStation,
  b: Board,
  o: { stationId?: string; signer?: TestSigner; chain?: readonly Uint8Array[]; scrappedAt?: string } = {},
): Promise<{ requestId: string; jws: string }> {
  const requestId = randomUUID();
  const payload = {
    schema: SCRAP_SCHEMA,
    requestId,
    stationId: o.stationId ?? st.id,
    chipId: b.chipId,
    serialNumber: b.serialNumber,
    recordId: b.recordId,
    certificateSerial: b.certSerial,
    certificateSha256: b.certSha256,
    reason: 'cessationOfOperation',
    note: 'cracked housing',
    supervisor: 'sup-1',
    operator: 'op-1',
    scrappedAt: o.scrappedAt ?? new Date().toISOString(),
  };
  const jws = must(
    await signJws({
      signer: o.signer ?? st.signer,
      payload: utf8(canonicalJson(payload)),
      header: { typ: SCRAP_TYP, kid: o.stationId ?? st.id, x5c: o.chain ?? st.chain },
    }),
  );
  return { requestId, jws };
}

for (const backend of backends()) {
  describe(`station scrap revocations (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;
    let reg: RunningRegistry;
    let a: TestStation & { caLabel: string };
    let b: TestStation;
    const boards: Board[] = [];
    let foreign: Board;

    const ingest = async (st: TestStation, prefix: string, n: number): Promise<Board[]> => {
      const out: Board[] = [];
      const records = [];
      for (let i = 0; i < n; i++) {
        const m = await makeRecord(st, systemClock, {
          serialNumber: `${prefix}-${backend}-${i}`,
          deviceKey: await createTestSigner('P-256'),
          workOrder: st.workOrder,
        });
        out.push({
          serialNumber: m.record.board.serialNumber,
          chipId: m.record.board.chipId,
          recordId: m.record.recordId,
          certSerial: m.record.certificate.serialNumber,
          certSha256: m.record.certificate.sha256,
        });
        records.push(m.jws);
      }
      const r = await call(reg.url, 'POST', '/v1/batches', { station: st, body: { batchId: randomUUID(), records } });
      expect(r.status, r.text).toBe(200);
      return out;
    };
    const history = async (serial: string) => {
      const h = await call(reg.url, 'GET', `/v1/devices/${serial}/history`, { bearer: OFFICER });
      expect(h.status, h.text).toBe(200);
      return h.json as {
        state: string;
        credentials: { status: string; reason: string | null }[];
        events: { type: string; requestId?: string; actor?: string }[];
      };
    };
    const revoke = (st: TestStation, requests: string[]) =>
      call(reg.url, 'POST', '/v1/revocations', { station: st, body: { requests } });
    const crlText = async (): Promise<string> => {
      const r = await fetch(`${reg.url}/v1/crl/${a.id}.crl`);
      expect(r.status).toBe(200);
      writeFileSync(join(work, 'crl.der'), Buffer.from(await r.arrayBuffer()));
      const o = spawnSync(
        'openssl',
        ['crl', '-in', 'crl.der', '-inform', 'DER', '-CAfile', 'signer.pem', '-noout', '-text'],
        { cwd: work, encoding: 'utf8', timeout: 20_000 },
      );
      return `${o.stdout}${o.stderr}`;
    };

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      reg = await startLifecycleRegistry(db, {
        registryId: 'registry-scrap',
        adminToken: ADMIN,
        lifecycle: {
          hsm: registryHsm,
          crlIntervalS: 600,
          securityOfficerTokenSha256: createHash('sha256').update(OFFICER).digest(),
        },
      });
      a = await hsmStation(`scrap-a-${backend}`);
      b = await createTestStation(`scrap-b-${backend}`, systemClock, 'WO-SCRAP-1');
      for (const st of [a, b]) {
        const e = await call(reg.url, 'POST', '/v1/admin/stations', {
          bearer: ADMIN,
          body: { stationId: st.id, chainPem: st.chainPem },
        });
        expect(e.status, e.text).toBe(201);
      }
      // CRLs are signed by the registry's delegated signer: openssl crl checks them with its certificate.
      writeFileSync(join(work, 'signer.pem'), (await delegateOverHttp(reg, a as HsmStation)).certificatePem);
      boards.push(...(await ingest(a, 'SCR', 3)));
      foreign = (await ingest(b, 'SCRB', 1))[0]!;
      // Board 2 is on hold (suspended) when it is scrapped.
      const s = await call(reg.url, 'POST', `/v1/devices/${boards[2]!.serialNumber}/suspend`, {
        bearer: OFFICER,
        body: { reason: 'inspection' },
      });
      expect(s.status, s.text).toBe(200);
    });

    afterAll(async () => {
      await reg?.close();
      await db?.close();
      await tdb?.cleanup();
    });

    let first: { requestId: string; jws: string }[] = [];

    it('signed scrap events revoke the credentials (cessationOfOperation; history and CRL show it)', async () => {
      first = [await scrapJws(a, boards[0]!), await scrapJws(a, boards[2]!)];
      const r = await revoke(
        a,
        first.map((f) => f.jws),
      );
      expect(r.status, r.text).toBe(200);
      expect((r.json as { results: unknown[] }).results).toEqual(
        first.map((f) => ({ requestId: f.requestId, status: 'revoked' })),
      );
      for (const [i, f] of [
        [0, first[0]!],
        [2, first[1]!],
      ] as const) {
        const h = await history(boards[i]!.serialNumber);
        expect(h.state).toBe('revoked');
        expect(h.credentials).toMatchObject([{ status: 'revoked', reason: 'cessationOfOperation' }]);
        expect(h.events.find((e) => e.type === 'device.scrapped')?.requestId).toBe(f.requestId);
        expect(h.events.find((e) => e.type === 'device.revoke')?.actor).toBe('station');
      }
      const crl = await crlText();
      expect(crl).toContain('verify OK');
      const serial = (s: string) => s.toUpperCase().replace(/^0+/, '');
      expect(crl.toUpperCase()).toContain(serial(boards[0]!.certSerial));
      expect(crl.toUpperCase()).toContain(serial(boards[2]!.certSerial));
      expect(crl.toUpperCase()).not.toContain(serial(boards[1]!.certSerial));
      expect(crl).toContain('Cessation Of Operation');
      const v = await call(reg.url, 'GET', '/v1/lifecycle/verify', { bearer: OFFICER });
      expect(v.json).toMatchObject({ ok: true });
    });

    it('a second delivery answers duplicate and changes nothing', async () => {
      const before = await history(boards[0]!.serialNumber);
      const crlBefore = await crlText();
      const r = await revoke(a, [first[0]!.jws, first[0]!.jws]);
      expect(r.status, r.text).toBe(200);
      expect((r.json as { results: unknown[] }).results).toEqual([
        { requestId: first[0]!.requestId, status: 'duplicate' },
        { requestId: first[0]!.requestId, status: 'duplicate' },
      ]);
      expect(await history(boards[0]!.serialNumber)).toEqual(before);
      expect(await crlText()).toBe(crlBefore);
    });

    it('another station, another station’s device, tampering and bad headers are rejected; nothing changes', async () => {
      const target = boards[1]!;
      const before = await history(target.serialNumber);
      const foreignBefore = await history(foreign.serialNumber);
      const byA = await scrapJws(a, target);
      const [h, p, s] = byA.jws.split('.') as [string, string, string];
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, note: 'x' })).toString('base64url')}.${s}`;
      const badSig = `${h}.${p}.${s.slice(0, -4)}${s.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
      const cases: [TestStation, string, string][] = [
        // Station B delivers A's event for A's board (not signed by B).
        [b, byA.jws, 'signer-mismatch'],
        // Station B signs an event for A's board in its own name.
        [b, (await scrapJws(b, target)).jws, 'unknown-credential'],
        // Station B signs an event in A's name (its own key and chain).
        [b, (await scrapJws(b, target, { stationId: a.id })).jws, 'station-mismatch'],
        // Station A asks for B's board.
        [a, (await scrapJws(a, foreign)).jws, 'unknown-credential'],
        // A's event signed with another key under A's chain.
        [a, (await scrapJws(a, target, { signer: await createTestSigner('P-256') })).jws, 'signature-invalid'],
        [a, tampered, 'signature-invalid'],
        [a, badSig, 'signature-invalid'],
        [a, 'not.a.jws', 'malformed'],
        // Right board serial, another board's certificate.
        [a, (await scrapJws(a, { ...target, certSerial: boards[0]!.certSerial })).jws, 'device-mismatch'],
      ];
      for (const [st, jws, reason] of cases) {
        const r = await revoke(st, [jws]);
        expect(r.status, r.text).toBe(200);
        expect((r.json as { results: { status: string; reason: string }[] }).results[0], reason).toMatchObject({
          status: 'rejected',
          reason,
        });
      }
      // A board already revoked is not revoked again.
      const again = await revoke(a, [(await scrapJws(a, boards[0]!)).jws]);
      expect((again.json as { results: unknown[] }).results[0]).toMatchObject({ reason: 'credential-not-active' });
      expect(await history(target.serialNumber)).toEqual(before);
      expect(await history(foreign.serialNumber)).toEqual(foreignBefore);
      // Unauthenticated or officer calls are refused; an empty or oversized list is a bad body.
      expect((await call(reg.url, 'POST', '/v1/revocations', { body: { requests: [byA.jws] } })).status).toBe(401);
      expect(
        (await call(reg.url, 'POST', '/v1/revocations', { bearer: ADMIN, body: { requests: [byA.jws] } })).status,
      ).toBe(401);
      expect((await revoke(a, [])).status).toBe(400);
      expect(
        (
          await revoke(
            a,
            Array.from({ length: 501 }, () => 'a.b.c'),
          )
        ).status,
      ).toBe(400);
      // The untouched board is still good and scrappable by its own station.
      const ok = await revoke(a, [byA.jws]);
      expect((ok.json as { results: unknown[] }).results).toEqual([{ requestId: byA.requestId, status: 'revoked' }]);
    });

    it('after a station key rotation: events made before it with the old key are accepted, later ones refused', async () => {
      const fresh = await ingest(a, 'ROT', 3);
      const made = new Date(Date.now() - 1000).toISOString(); // scrapped (signed) before the rotation
      const before = await scrapJws(a, fresh[0]!, { scrappedAt: made });
      // Rotate station a's key (admin route; the new chain signed by the current key).
      const hsmA = a as unknown as HsmStation;
      const newSigner = await createTestSigner('P-256');
      const newCert = must(
        await issueStationCertificate({
          issuer: { signer: hsmA.caSigner, certificate: hsmA.ca },
          subjectPublicKeySpki: newSigner.publicKeySpki,
          stationId: a.id,
          validityDays: 30,
          clock: systemClock,
        }),
      );
      const newChain = [newCert, hsmA.ca, hsmA.root];
      const chainPem = newChain.map((d) => toPem(d, 'CERTIFICATE')).join('');
      const signature = toBase64Url(must(await a.signer.sign(utf8(chainPem))));
      const rot = await call(reg.url, 'POST', `/v1/admin/stations/${a.id}/rotate-key`, {
        bearer: ADMIN,
        body: { chainPem, signature },
      });
      expect(rot.status, rot.text).toBe(200);
      const a2: TestStation = { ...a, signer: newSigner, chain: newChain, chainPem };
      const after = await scrapJws(a, fresh[1]!); // old key, made now: after the rotation
      const byNew = await scrapJws(a2, fresh[2]!);
      const r = await revoke(a2, [before.jws, after.jws, byNew.jws]);
      expect(r.status, r.text).toBe(200);
      const results = (r.json as { results: { status: string; reason?: string; message?: string }[] }).results;
      expect(results[0]).toMatchObject({ status: 'revoked' });
      expect(results[1]).toMatchObject({ status: 'rejected', reason: 'signer-mismatch' });
      expect(results[1]!.message).toMatch(/replaced at .* after the rotation/);
      expect(results[2]).toMatchObject({ status: 'revoked' });
      expect((await history(fresh[1]!.serialNumber)).state).toBe('provisioned');
      expect((await history(fresh[0]!.serialNumber)).state).toBe('revoked');
      // The old key no longer authenticates requests.
      expect((await revoke(a, [after.jws])).status).toBe(401);
    });
  });
}

/**
 * Identity lifecycle end to end, per backend (SQLite; PostgreSQL with LINE_STATION_TEST_PG_URL): two real
 * SoftHSM2 tokens (station, registry), the registry's delegated revocation signer certified by the station's
 * issuing CA (which stays in the station token), records ingested over HTTP, transitions with roles, CRL and OCSP
 * signed by the delegate and checked by openssl, decommissioned devices refused at ingest, policy and quotas
 * signed, log verified.
 */
import 'reflect-metadata';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyJws } from '../../core/pki/jws.js';
import { systemClock } from '../../core/ports.js';
import { fromPem, toPem } from '../../core/pki/pem.js';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { must } from '../../testkit/pki/test-util.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { createTestTokens, type TestToken } from '../../testkit/hsm.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { audienceOf } from '../common/context.js';
import {
  requestClaimsOf,
  signRequest,
  STATION_STATUS_PATH,
  STATION_STATUS_TYP,
  StationStatusPayloadSchema,
} from '../../core/hq/protocol.js';
import { type RunningRegistry } from '../http/server.js';
import { makeRecord, type TestStation } from '../../testkit/registry/fixtures.js';
import { createHsmStation, delegateOverHttp, startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import { backends, call, createTestDb, type TestDb } from '../../testkit/registry/harness.js';
import { signerKeyLabel } from '../revocation/signer.js';
import { SIGNER_INSTALL_PATH, SIGNER_REQUEST_PATH } from '../../core/hq/revocation-signer.js';
import { createRootCertificate, issueRevocationSignerCertificate } from '../../core/pki/ca.js';
import { fromBase64Url } from '../../core/bytes.js';
import { verifyCsr } from '../../core/pki/csr.js';

const PIN = 'lifecycle-PIN-4242';
const ADMIN = 'admin-token-0123456789abcdef';
const OFFICER = 'officer-token-0123456789abcdef';
let tok: TestToken;
let stationHsm: HsmAdmin;
let registryHsm: HsmAdmin;
let work: string;

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { cwd: work, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function opensslAsync(args: string[]): Promise<string> {
  return new Promise((resolve) =>
    execFile('openssl', args, { cwd: work, timeout: 20_000 }, (_e, stdout, stderr) => resolve(`${stdout}${stderr}`)),
  );
}

beforeAll(async () => {
  tok = await createTestTokens(['station', 'registry'], PIN);
  stationHsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN }));
  registryHsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'registry', pin: PIN }));
  work = mkdtempSync(join(tmpdir(), 'ls-lifecycle-'));
});

afterAll(async () => {
  await stationHsm?.close();
  await registryHsm?.close();
  await tok?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** A station whose issuing CA key is generated in the station token (non-extractable, as station init makes it). */
const hsmStation = (id: string) => createHsmStation(stationHsm, id);

for (const backend of backends()) {
  describe(`identity lifecycle (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;
    let reg: RunningRegistry;
    let station: TestStation & { caLabel: string; ca: Uint8Array; root: Uint8Array };
    const devices: { serial: string; key: TestSigner; pem: string }[] = [];

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      reg = await startLifecycleRegistry(db, {
        registryId: 'registry-lc',
        adminToken: ADMIN,
        lifecycle: {
          hsm: registryHsm,
          crlIntervalS: 600,
          certificateLifetimeDays: 1,
          rotateBeforeDays: 0.25,
          securityOfficerTokenSha256: createHash('sha256').update(OFFICER).digest(),
        },
      });
      station = await hsmStation(`st-${backend}`);
      const e = await call(reg.url, 'POST', '/v1/admin/stations', {
        bearer: ADMIN,
        body: { stationId: station.id, chainPem: station.chainPem },
      });
      expect(e.status).toBe(201);
      writeFileSync(join(work, 'root.pem'), toPem(station.chain[2]!, 'CERTIFICATE'));
      writeFileSync(join(work, 'ca.pem'), toPem(station.chain[1]!, 'CERTIFICATE'));
      writeFileSync(
        join(work, 'chain.pem'),
        toPem(station.chain[1]!, 'CERTIFICATE') + toPem(station.chain[2]!, 'CERTIFICATE'),
      );
    });

    afterAll(async () => {
      await reg?.close();
      await db?.close();
      await tdb?.cleanup();
    });

    /**
     * The CRL as a relying party checks it: `openssl crl` verifies its signature with the delegated signer
     * certificate (same subject name as the CA, so the CRL names the CA as issuer), and `openssl verify
     * -crl_check -extended_crl` accepts it for the device (the signer certificate in -untrusted; it validates it
     * to the same root).
     */
    const crlCheck = async (devIndex: number): Promise<string> => {
      const r = await fetch(`${reg.url}/v1/crl/${station.id}.crl`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/pkix-crl');
      writeFileSync(join(work, 'crl.der'), Buffer.from(await r.arrayBuffer()));
      const text = openssl(['crl', '-in', 'crl.der', '-inform', 'DER', '-CAfile', 'signer.pem', '-noout', '-text']);
      expect(text.out).toContain('verify OK');
      openssl(['crl', '-in', 'crl.der', '-inform', 'DER', '-out', 'crl.pem']);
      writeFileSync(join(work, 'dev.pem'), devices[devIndex]!.pem);
      const v = openssl([
        'verify',
        '-crl_check',
        '-extended_crl',
        '-CAfile',
        'root.pem',
        '-untrusted',
        'ca-signer.pem',
        '-CRLfile',
        'crl.pem',
        'dev.pem',
      ]);
      return `${text.out}\n${v.out}`;
    };

    /** openssl ocsp against the live responder: asynchronous (the registry runs in this process). */
    const ocsp = (pem: string): Promise<string> => {
      writeFileSync(join(work, 'q.pem'), pem);
      return opensslAsync([
        'ocsp',
        '-issuer',
        'ca.pem',
        '-cert',
        'q.pem',
        '-url',
        `${reg.url}/v1/ocsp`,
        '-CAfile',
        'root.pem',
        '-resp_text',
      ]);
    };

    const chainOk = async () => {
      const v = await call(reg.url, 'GET', '/v1/lifecycle/verify', { bearer: OFFICER });
      expect(v.status).toBe(200);
      expect((v.json as { ok: boolean }).ok).toBe(true);
    };

    it('certifies the registry revocation signer: station-authenticated, answers signed, forged certificates refused', async () => {
      // No bearer token opens it: only the enrolled station's signature.
      expect((await call(reg.url, 'POST', SIGNER_REQUEST_PATH, { bearer: ADMIN, body: {} })).status).toBe(401);
      const first = await call(reg.url, 'POST', SIGNER_REQUEST_PATH, { station, body: {} });
      expect(first.status, first.text).toBe(200);
      const { jws, requestId } = first.json as { jws: string; requestId: string };
      const payload = JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as { csr: string };
      const csr = must(await verifyCsr(fromBase64Url(payload.csr)));
      // A certificate for the requested key issued by ANOTHER CA is refused; so is one without cRLSign (a station cert).
      const rogue = await createTestSigner('P-256');
      const rogueCa = must(
        await createRootCertificate({
          signer: rogue,
          subject: { commonName: `Issuing CA ${station.id}` },
          validityDays: 2,
          clock: systemClock,
        }),
      );
      const forged = must(
        await issueRevocationSignerCertificate({
          issuer: { signer: rogue, certificate: rogueCa },
          subjectPublicKeySpki: csr.publicKeySpki,
          validityDays: 2,
          clock: systemClock,
        }),
      );
      const bad = await call(reg.url, 'POST', SIGNER_INSTALL_PATH, {
        station,
        body: { requestId, certificatePem: toPem(forged.der, 'CERTIFICATE') },
      });
      expect(bad.status, bad.text).toBe(400);
      expect(bad.text).toContain('not signed by the issuing CA');
      expect((await call(reg.url, 'GET', `/v1/crl/${station.id}.crl`)).status).toBe(404);
      // The real exchange (station/revocation-signer.ts) takes the same pending request.
      const d = await delegateOverHttp(reg, station);
      expect(d.requestId).toBe(requestId);
      writeFileSync(join(work, 'signer.pem'), d.certificatePem);
      writeFileSync(join(work, 'ca-signer.pem'), toPem(station.chain[1]!, 'CERTIFICATE') + d.certificatePem);
      // The signer certificate: CA subject name, delegated usages, validates to the station root.
      const t = openssl([
        'x509',
        '-in',
        'signer.pem',
        '-noout',
        '-subject',
        '-issuer',
        '-ext',
        'keyUsage,extendedKeyUsage,basicConstraints',
      ]);
      expect(t.out).toContain('Digital Signature, CRL Sign');
      expect(t.out).toContain('OCSP Signing');
      expect(t.out).toContain('CA:FALSE');
      const subj = /subject=(.*)/.exec(t.out)![1];
      expect(t.out).toContain(`issuer=${subj}`);
      expect(openssl(['verify', '-CAfile', 'root.pem', '-untrusted', 'ca.pem', 'signer.pem']).out).toContain(
        'signer.pem: OK',
      );
      // Its key is a token object of the registry token: sensitive, never extractable.
      expect(must(await registryHsm.findKey(signerKeyLabel(requestId)))).toMatchObject({
        class: 'private',
        sensitive: true,
        extractable: false,
        unprotected: [],
      });
      // The same certificate again: the same signed confirmation (idempotent).
      const again = await call(reg.url, 'POST', SIGNER_INSTALL_PATH, {
        station,
        body: { requestId, certificatePem: d.certificatePem },
      });
      expect(again.status, again.text).toBe(200);
      expect(again.json).toMatchObject({ repeated: true, certificateSha256: d.certificateSha256 });
      expect(must(fromPem(d.certificatePem, 'CERTIFICATE')).length).toBeGreaterThan(300);
      devices.length = 0;
    });

    it('ingests records: devices provisioned with credential 1; CRL and OCSP say good', async () => {
      const records = [];
      for (let i = 0; i < 4; i++) {
        const key = await createTestSigner('P-256');
        const m = await makeRecord(station, systemClock, {
          serialNumber: `LC-${backend}-${i}`,
          deviceKey: key,
          workOrder: station.workOrder,
        });
        devices.push({ serial: `LC-${backend}-${i}`, key, pem: m.record.certificate.pem });
        records.push(m.jws);
      }
      const b = await call(reg.url, 'POST', '/v1/batches', {
        station,
        body: { batchId: globalThis.crypto.randomUUID(), records },
      });
      expect(b.status, b.text).toBe(200);
      expect((b.json as { summary: { accepted: number } }).summary.accepted).toBe(4);
      const h = await call(reg.url, 'GET', `/v1/devices/${devices[0]!.serial}/history`, { bearer: ADMIN });
      expect(h.json).toMatchObject({ state: 'provisioned', credentials: [{ version: 1, status: 'active' }] });
      const out = await crlCheck(0);
      expect(out).toMatch(/dev.pem: OK/);
      expect(await ocsp(devices[0]!.pem)).toMatch(/q.pem: good/);
      await chainOk();
    });

    it('transitions with roles; illegal ones refused; revoke shows in OCSP and the CRL (openssl)', async () => {
      const [d0, d1, d2] = devices;
      const act = await call(reg.url, 'POST', `/v1/devices/${d0!.serial}/activate`, { bearer: OFFICER, body: {} });
      expect(act.status, act.text).toBe(200);
      const rv = await call(reg.url, 'POST', `/v1/devices/${d0!.serial}/revoke`, {
        bearer: ADMIN,
        body: { reason: 'keyCompromise' },
      });
      expect(rv.json).toMatchObject({
        state: 'revoked',
        credentials: [{ status: 'revoked', reason: 'keyCompromise' }],
      });
      const again = await call(reg.url, 'POST', `/v1/devices/${d0!.serial}/resume`, { bearer: ADMIN, body: {} });
      expect(again.status).toBe(409);
      expect((again.json as { error: { code: string } }).error.code).toBe('LIFECYCLE_TRANSITION_INVALID');
      const noReason = await call(reg.url, 'POST', `/v1/devices/${d1!.serial}/suspend`, { bearer: OFFICER, body: {} });
      expect(noReason.status).toBe(400);
      const sus = await call(reg.url, 'POST', `/v1/devices/${d1!.serial}/suspend`, {
        bearer: OFFICER,
        body: { reason: 'lost in transit' },
      });
      expect(sus.json).toMatchObject({ state: 'suspended' });
      const nobody = await call(reg.url, 'POST', `/v1/devices/${d1!.serial}/resume`, {
        bearer: 'x'.repeat(32),
        body: {},
      });
      expect(nobody.status).toBe(403);
      const o0 = await ocsp(d0!.pem);
      expect(o0).toMatch(/q.pem: revoked/);
      expect(o0).toMatch(/Reason: keyCompromise/);
      expect(o0).toContain('Response verify OK');
      expect(await ocsp(d1!.pem)).toMatch(/Reason: certificateHold/);
      const c0 = await crlCheck(0);
      expect(c0).toContain('certificate revoked');
      expect(c0).toContain('Certificate Hold');
      expect(await crlCheck(2)).toMatch(/dev.pem: OK/);
      const res = await call(reg.url, 'POST', `/v1/devices/${d1!.serial}/resume`, { bearer: OFFICER, body: {} });
      expect(res.json).toMatchObject({ state: 'activated' });
      expect(await ocsp(d1!.pem)).toMatch(/q.pem: good/);
      // decommission: credential revoked (cessationOfOperation), identifiers blocked, new records refused.
      const dec = await call(reg.url, 'POST', `/v1/devices/${d2!.serial}/decommission`, { bearer: OFFICER, body: {} });
      expect(dec.json).toMatchObject({ state: 'decommissioned' });
      const again2 = await makeRecord(station, systemClock, { serialNumber: d2!.serial, workOrder: station.workOrder });
      const b = await call(reg.url, 'POST', '/v1/batches', {
        station,
        body: { batchId: globalThis.crypto.randomUUID(), records: [again2.jws] },
      });
      expect((b.json as { results: { status: string; reason: string }[] }).results[0]).toMatchObject({
        status: 'rejected',
        reason: 'DEVICE_DECOMMISSIONED',
      });
      const rel = await call(reg.url, 'POST', `/v1/devices/${d2!.serial}/release`, {
        bearer: ADMIN,
        body: { reason: 'refurbished, ticket 42' },
      });
      expect(rel.status, rel.text).toBe(200);
      await chainOk();
    });

    it('batch suspend and resume (incident hold): dry runs change nothing; the hold shows as certificateHold', async () => {
      const batch = (what: 'suspend' | 'resume', body: Record<string, unknown>) =>
        call(reg.url, 'POST', `/v1/lifecycle/${what}`, { bearer: OFFICER, body });
      type Batch = { event: string; changed: string[]; skipped: { serialNumber: string; state: string }[] };
      const noReason = await batch('suspend', { workOrder: station.workOrder, dryRun: true });
      expect(noReason.status, noReason.text).toBe(400);
      const dry = await batch('suspend', { workOrder: station.workOrder, reason: 'incident 42', dryRun: true });
      expect(dry.status, dry.text).toBe(200);
      const d = dry.json as Batch;
      expect(d.event).toBe('suspend');
      expect(d.changed.sort()).toEqual([devices[1]!.serial, devices[3]!.serial].sort());
      expect(d.skipped.map((x) => x.serialNumber).sort()).toEqual([devices[0]!.serial, devices[2]!.serial].sort());
      expect(await ocsp(devices[1]!.pem)).toMatch(/q.pem: good/); // the dry run changed nothing
      const real = await batch('suspend', {
        serialFrom: devices[1]!.serial,
        serialTo: devices[1]!.serial,
        reason: 'incident 42',
      });
      expect((real.json as Batch).changed).toEqual([devices[1]!.serial]);
      const held = await ocsp(devices[1]!.pem);
      expect(held).toMatch(/q.pem: revoked/);
      expect(held).toMatch(/Reason: certificateHold/);
      // Only suspended devices can resume: the dry run over the work order lists exactly the one on hold.
      const rdry = (await batch('resume', { workOrder: station.workOrder, dryRun: true })).json as Batch;
      expect(rdry.changed).toEqual([devices[1]!.serial]);
      const resumed = await batch('resume', { workOrder: station.workOrder });
      expect((resumed.json as Batch).changed).toEqual([devices[1]!.serial]);
      expect(await ocsp(devices[1]!.pem)).toMatch(/q.pem: good/);
      const h = await call(reg.url, 'GET', `/v1/devices/${devices[1]!.serial}/history`, { bearer: ADMIN });
      expect(h.json).toMatchObject({ state: 'activated' });
      await chainOk();
    });

    it('batch revoke: the dry run changes nothing; the real run revokes the rest of the work order', async () => {
      const dry = await call(reg.url, 'POST', '/v1/lifecycle/revoke', {
        bearer: OFFICER,
        body: { workOrder: station.workOrder, reason: 'cessationOfOperation', dryRun: true },
      });
      const d = dry.json as { changed: string[]; skipped: { serialNumber: string }[] };
      expect(d.changed.sort()).toEqual([devices[1]!.serial, devices[3]!.serial].sort());
      // revoked (0) and decommissioned (2) devices cannot be revoked: listed as skipped.
      expect(d.skipped.map((x) => x.serialNumber).sort()).toEqual([devices[0]!.serial, devices[2]!.serial].sort());
      const h = await call(reg.url, 'GET', `/v1/devices/${devices[1]!.serial}/history`, { bearer: ADMIN });
      expect(h.json).toMatchObject({ state: 'activated' });
      const real = await call(reg.url, 'POST', '/v1/lifecycle/revoke', {
        bearer: OFFICER,
        body: { serialFrom: devices[1]!.serial, serialTo: devices[1]!.serial, reason: 'cessationOfOperation' },
      });
      expect((real.json as { changed: string[] }).changed).toEqual([devices[1]!.serial]);
      expect(await ocsp(devices[1]!.pem)).toMatch(/Reason: cessationOfOperation/);
      await chainOk();
    });

    it('signed policy and quotas for stations; operator revocation is published', async () => {
      const op = await call(reg.url, 'POST', '/v1/admin/operators/op-7/revoke', {
        bearer: OFFICER,
        body: { reason: 'left the company' },
      });
      expect(op.status).toBe(200);
      const q = await call(reg.url, 'POST', '/v1/admin/quotas', {
        bearer: ADMIN,
        body: { workOrder: station.workOrder, stationId: station.id, quantity: 250 },
      });
      expect(q.status).toBe(200);
      const anchors = [reg.context.registryChain[0]!];
      const pol = await call(reg.url, 'GET', '/v1/policy', { station });
      expect(pol.status, pol.text).toBe(200);
      const pv = must(
        await verifyJws((pol.json as { jws: string }).jws, {
          trustAnchors: anchors,
          clock: systemClock,
          typ: 'line-station-policy+jws',
        }),
      );
      const policy = JSON.parse(new TextDecoder().decode(pv.payload)) as {
        version: number;
        revokedOperators: { operatorId: string }[];
        blocked: { serials: string[] };
      };
      expect(policy.revokedOperators.map((o) => o.operatorId)).toEqual(['op-7']);
      expect(policy.version).toBeGreaterThanOrEqual(1);
      const pol2 = await call(reg.url, 'GET', '/v1/policy', { station });
      expect((pol2.json as { version: number }).version).toBe(policy.version);
      const qs = await call(reg.url, 'GET', '/v1/quotas', { station });
      const qv = must(
        await verifyJws((qs.json as { jws: string }).jws, {
          trustAnchors: anchors,
          clock: systemClock,
          typ: 'line-station-quota+jws',
        }),
      );
      expect(JSON.parse(new TextDecoder().decode(qv.payload))).toMatchObject({
        stationId: station.id,
        quotas: [{ workOrder: station.workOrder, quantity: 250 }],
      });
      expect((await call(reg.url, 'GET', '/v1/policy')).status).toBe(401);
      await chainOk();
    });

    it('station status: signed, bound to the request (nonce, ts); answered to a revoked station, whose policy GET is 403', async () => {
      const st = await hsmStation(`st-status-${backend}`);
      const e = await call(reg.url, 'POST', '/v1/admin/stations', {
        bearer: ADMIN,
        body: { stationId: st.id, chainPem: st.chainPem },
      });
      expect(e.status).toBe(201);
      const ask = async () => {
        const auth = must(
          await signRequest(st.signer, st.id, 'GET', STATION_STATUS_PATH, '', systemClock, audienceOf(reg.context)),
        );
        const r = await call(reg.url, 'GET', STATION_STATUS_PATH, { authorization: auth });
        expect(r.status, r.text).toBe(200);
        const jws = (r.json as { jws: string }).jws;
        const v = must(
          await verifyJws(jws, {
            trustAnchors: [reg.context.registryChain[0]!],
            clock: systemClock,
            typ: STATION_STATUS_TYP,
          }),
        );
        const payload = StationStatusPayloadSchema.parse(JSON.parse(new TextDecoder().decode(v.payload)));
        const claims = requestClaimsOf(auth)!;
        expect(payload).toMatchObject({ stationId: st.id, requestNonce: claims.nonce, requestTs: claims.ts });
        return payload;
      };
      expect(await ask()).toMatchObject({ status: 'active', revokedAt: null });
      const rv = await call(reg.url, 'POST', `/v1/admin/stations/${st.id}/lifecycle-revoke`, { bearer: OFFICER });
      expect(rv.status, rv.text).toBe(200);
      const revokedAt = (rv.json as { station: { revokedAt: string } }).station.revokedAt;
      expect((await call(reg.url, 'GET', '/v1/policy', { station: st })).status).toBe(403);
      expect(await ask()).toMatchObject({ status: 'revoked', revokedAt });
      // Still a station request: unsigned, replayed or another station's key is refused.
      expect((await call(reg.url, 'GET', STATION_STATUS_PATH)).status).toBe(401);
      const auth = must(
        await signRequest(st.signer, st.id, 'GET', STATION_STATUS_PATH, '', systemClock, audienceOf(reg.context)),
      );
      expect((await call(reg.url, 'GET', STATION_STATUS_PATH, { authorization: auth })).status).toBe(200);
      expect((await call(reg.url, 'GET', STATION_STATUS_PATH, { authorization: auth })).status).toBe(401);
      const forged = must(
        await signRequest(station.signer, st.id, 'GET', STATION_STATUS_PATH, '', systemClock, audienceOf(reg.context)),
      );
      expect((await call(reg.url, 'GET', STATION_STATUS_PATH, { authorization: forged })).status).toBe(401);
    });
  });
}

/**
 * Failed-issuance events at the registry (POST /v1/revocations and bundles), per backend (SQLite; PostgreSQL with
 * LINE_STATION_TEST_PG_URL): real SoftHSM2 tokens (a delegated revocation signer in the registry token), a device
 * certificate issued by the station CA that no record names is revoked (CRL read by openssl, OCSP by openssl),
 * idempotent also for concurrent deliveries; events another station signed, for a certificate of another CA, for a
 * certificate in a record, or altered are refused with typed reasons and change nothing.
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { FAILED_ISSUANCE_TYP, failedIssuancePayloadJson } from '../../core/failed-issuance.js';
import { signJws } from '../../core/pki/jws.js';
import { fromPem, toPem } from '../../core/pki/pem.js';
import { systemClock } from '../../core/ports.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { must } from '../../testkit/pki/test-util.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { createTestTokens, type TestToken } from '../../testkit/hsm.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { createBundle, type RevocationResult } from '../../core/hq/protocol.js';
import type { RunningRegistry } from '../http/server.js';
import { createTestStation, makeRecord, type TestStation } from '../../testkit/registry/fixtures.js';
import { backends, call, createTestDb, type TestDb } from '../../testkit/registry/harness.js';
import {
  createHsmStation,
  delegateOverHttp,
  startLifecycleRegistry,
  type HsmStation,
} from '../../testkit/registry/lifecycle.js';

const PIN = 'fi-PIN-4242';
const ADMIN = 'admin-token-0123456789abcdef';
let tok: TestToken;
let stationHsm: HsmAdmin;
let registryHsm: HsmAdmin;
let work: string;

beforeAll(async () => {
  tok = await createTestTokens(['station', 'registry'], PIN);
  stationHsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'station', pin: PIN }));
  registryHsm = must(await openHsm({ module: tok.env.module, tokenLabel: 'registry', pin: PIN }));
  work = mkdtempSync(join(tmpdir(), 'ls-fi-reg-'));
});
afterAll(async () => {
  await stationHsm?.close();
  await registryHsm?.close();
  await tok?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

function openssl(args: string[]): Promise<string> {
  return new Promise((resolve) =>
    execFile('openssl', args, { cwd: work, timeout: 20_000 }, (_e, stdout, stderr) => resolve(`${stdout}${stderr}`)),
  );
}

interface Issued {
  readonly der: Uint8Array;
  readonly serial: string;
  readonly sha256: string;
  readonly serialNumber: string;
  readonly chipId: string;
  readonly recordJws: string;
}

/** A device certificate issued by `st`'s CA (inside a signed record that is NOT submitted unless asked). */
async function issue(st: TestStation, serialNumber: string): Promise<Issued> {
  const m = await makeRecord(st, systemClock, {
    serialNumber,
    deviceKey: await createTestSigner('P-256'),
    workOrder: st.workOrder,
  });
  const der = must(fromPem(m.record.certificate.pem, 'CERTIFICATE'));
  return {
    der,
    serial: m.record.certificate.serialNumber,
    sha256: m.record.certificate.sha256,
    serialNumber,
    chipId: m.record.board.chipId,
    recordJws: m.jws,
  };
}

/** The failed-issuance event station/lifecycle signs for `c` (payload from the same builder failRun uses). */
async function eventFor(
  st: TestStation,
  c: Issued,
  o: { stationId?: string; signer?: TestStation['signer']; alter?: (p: Record<string, unknown>) => void } = {},
): Promise<string> {
  const json = failedIssuancePayloadJson({
    stationId: o.stationId ?? st.id,
    runId: randomUUID(),
    chipId: c.chipId,
    serialNumber: c.serialNumber,
    workOrder: st.workOrder,
    certificateSerial: c.serial,
    certificateSha256: c.sha256,
    certificate: toBase64Url(c.der),
    failure: { code: 'BOARD_CERT_REFUSED', step: 'certify', message: 'certificate refused by board policy' },
    issuedAt: new Date(Date.now() - 1000).toISOString(),
    failedAt: new Date().toISOString(),
  });
  const payload = JSON.parse(json) as Record<string, unknown>;
  o.alter?.(payload);
  return must(
    await signJws({
      signer: o.signer ?? st.signer,
      payload: utf8(canonicalJson(payload)),
      header: { typ: FAILED_ISSUANCE_TYP, kid: o.stationId ?? st.id, x5c: st.chain },
    }),
  );
}

for (const backend of backends()) {
  describe(`failed-issuance events (${backend})`, () => {
    let tdb: TestDb;
    let db: RegistryDb;
    let reg: RunningRegistry;
    let a: HsmStation;
    let b: TestStation;
    const norm = (s: string) => s.toLowerCase().replace(/^0+/, '');
    const revoke = async (st: TestStation, requests: string[]): Promise<RevocationResult[]> => {
      const r = await call(reg.url, 'POST', '/v1/revocations', { station: st, body: { requests } });
      expect(r.status, r.text).toBe(200);
      return (r.json as { results: RevocationResult[] }).results;
    };
    const rows = async () => (await db.sql.all('SELECT * FROM failed_issuances ORDER BY cert_serial')).length;
    const crlSerials = async (): Promise<string> => {
      const r = await fetch(`${reg.url}/v1/crl/${a.id}.crl`);
      expect(r.status).toBe(200);
      writeFileSync(join(work, `crl-${backend}.der`), Buffer.from(await r.arrayBuffer()));
      return (
        await openssl(['crl', '-in', `crl-${backend}.der`, '-inform', 'DER', '-CAfile', 'chain.pem', '-noout', '-text'])
      ).toLowerCase();
    };
    const ocsp = async (c: Issued) => {
      writeFileSync(join(work, 'q.pem'), toPem(c.der, 'CERTIFICATE'));
      return openssl([
        'ocsp',
        '-issuer',
        'ca.pem',
        '-cert',
        'q.pem',
        '-url',
        `${reg.url}/v1/ocsp`,
        '-CAfile',
        'root.pem',
      ]);
    };

    beforeAll(async () => {
      tdb = await createTestDb(backend);
      db = await tdb.open();
      reg = await startLifecycleRegistry(db, {
        registryId: 'registry-fi',
        adminToken: ADMIN,
        lifecycle: { hsm: registryHsm, crlIntervalS: 600 },
      });
      a = await createHsmStation(stationHsm, `fi-a-${backend}`, { workOrder: 'WO-FI-1' });
      b = await createTestStation(`fi-b-${backend}`, systemClock, 'WO-FI-1');
      for (const st of [a, b]) {
        const e = await call(reg.url, 'POST', '/v1/admin/stations', {
          bearer: ADMIN,
          body: { stationId: st.id, chainPem: st.chainPem },
        });
        expect(e.status, e.text).toBe(201);
      }
      const signer = await delegateOverHttp(reg, a);
      writeFileSync(join(work, 'chain.pem'), signer.certificatePem);
      writeFileSync(join(work, 'ca.pem'), toPem(a.chain[1]!, 'CERTIFICATE'));
      writeFileSync(join(work, 'root.pem'), toPem(a.chain[2]!, 'CERTIFICATE'));
    });
    afterAll(async () => {
      await reg?.close();
      await db?.close();
      await tdb?.cleanup();
    });

    it('revokes a certificate no record names: CRL (openssl) and OCSP say revoked; a repeat is a duplicate', async () => {
      const c = await issue(a, `FI-${backend}-1`);
      expect(await ocsp(c)).toMatch(/q\.pem: unknown/);
      const ev = await eventFor(a, c);
      expect(await revoke(a, [ev, ev])).toEqual([
        { requestId: `failed-issuance:${c.serial}`, status: 'revoked' },
        { requestId: `failed-issuance:${c.serial}`, status: 'duplicate' },
      ]);
      const crl = await crlSerials();
      expect(crl).toContain('verify ok');
      expect(crl).toContain(norm(c.serial));
      expect(crl).toContain('cessation of operation');
      const o = await ocsp(c);
      expect(o).toMatch(/q\.pem: revoked/);
      expect(o).toContain('Reason: cessationOfOperation');
      expect(await revoke(a, [ev])).toEqual([{ requestId: `failed-issuance:${c.serial}`, status: 'duplicate' }]);
      expect(await rows()).toBe(1);
      const events = await db.sql.all(
        "SELECT payload FROM lifecycle_events WHERE type = 'certificate.failed-issuance'",
      );
      expect(events).toHaveLength(1);
      expect(JSON.parse(String(events[0]!['payload']))).toMatchObject({
        stationId: a.id,
        certSerial: norm(c.serial),
        failureCode: 'BOARD_CERT_REFUSED',
        via: 'online',
      });
      const v = await call(reg.url, 'GET', '/v1/lifecycle/verify', { bearer: ADMIN });
      expect(v.json).toMatchObject({ ok: true });
    });

    it('a late record for a certificate revoked as a failed issuance is refused at ingest (certificate-revoked-failed-issuance)', async () => {
      const c = await issue(a, `FI-${backend}-late`);
      expect(await revoke(a, [await eventFor(a, c)])).toEqual([
        { requestId: `failed-issuance:${c.serial}`, status: 'revoked' },
      ]);
      // The record the station signed for the same certificate arrives afterwards (a restored station disk, a
      // delayed bundle): refused with its typed reason, nothing stored, the certificate stays revoked.
      const batchId = randomUUID();
      const r = await call(reg.url, 'POST', '/v1/batches', { station: a, body: { batchId, records: [c.recordJws] } });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({
        results: [{ index: 0, status: 'rejected', reason: 'certificate-revoked-failed-issuance' }],
      });
      const stored = await db.sql.all('SELECT record_id FROM records WHERE serial_number = ?', [c.serialNumber]);
      expect(stored).toHaveLength(0);
      const creds = await db.sql.all('SELECT * FROM credentials WHERE cert_serial = ?', [norm(c.serial)]);
      expect(creds).toHaveLength(0);
      expect(await ocsp(c)).toMatch(/q\.pem: revoked/);
      expect(await crlSerials()).toContain(norm(c.serial));
      // The same refusal when the record comes in a bundle (registry import): listed as rejected in the receipt.
      const bundle = must(
        await createBundle({
          signer: a.signer,
          chain: a.chain,
          stationId: a.id,
          records: [c.recordJws],
          clock: systemClock,
        }),
      );
      const imp = await call(reg.url, 'POST', '/v1/bundles', { bearer: ADMIN, body: { bundle: bundle.jws } });
      expect(imp.status, imp.text).toBe(200);
      const receipt = (imp.json as { receipt: string }).receipt;
      const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(receipt.split('.')[1]!))) as {
        accepted: unknown[];
        rejected: { reason: string }[];
      };
      expect(payload.accepted).toEqual([]);
      expect(payload.rejected).toMatchObject([{ reason: 'certificate-revoked-failed-issuance' }]);
      expect(await db.sql.all('SELECT record_id FROM records WHERE serial_number = ?', [c.serialNumber])).toHaveLength(
        0,
      );
    });

    it('concurrent deliveries of one event revoke it exactly once', async () => {
      const c = await issue(a, `FI-${backend}-2`);
      const ev = await eventFor(a, c);
      const before = await rows();
      const answers = await Promise.all(
        Array.from({ length: 6 }, () =>
          call(reg.url, 'POST', '/v1/revocations', { station: a, body: { requests: [ev] } }),
        ),
      );
      // Each answer is revoked or duplicate (or a retryable 503 when two transactions raced on the same row).
      const statuses = answers.map((r) =>
        r.status === 200 ? (r.json as { results: RevocationResult[] }).results[0]!.status : String(r.status),
      );
      expect(statuses.filter((s) => s === 'revoked')).toHaveLength(1);
      for (const s of statuses) expect(['revoked', 'duplicate', '503']).toContain(s);
      expect(await revoke(a, [ev])).toEqual([{ requestId: `failed-issuance:${c.serial}`, status: 'duplicate' }]);
      expect(await rows()).toBe(before + 1);
    });

    it('typed refusals change nothing', async () => {
      const before = await rows();
      const inRecord = await issue(a, `FI-${backend}-rec`);
      const rec = await call(reg.url, 'POST', '/v1/batches', {
        station: a,
        body: { batchId: randomUUID(), records: [inRecord.recordJws] },
      });
      expect(rec.status, rec.text).toBe(200);
      const other = await issue(b, `FI-${backend}-b`); // issued by station b's CA
      const c = await issue(a, `FI-${backend}-3`);
      const results = await revoke(a, [
        await eventFor(a, inRecord),
        await eventFor(a, other),
        await eventFor(a, c, { alter: (p) => (p['certificateSha256'] = '0'.repeat(64)) }),
        await eventFor(a, c, { alter: (p) => (p['certificateSerial'] = 'abc123') }),
        await eventFor(a, c, { stationId: b.id }),
        await eventFor(a, c, { signer: b.signer }),
        await eventFor(a, c, { alter: (p) => (p['extra'] = 1) }),
        'not-a-jws',
      ]);
      expect(results.map((r) => r.reason)).toEqual([
        'certificate-in-record',
        'certificate-invalid',
        'certificate-invalid',
        'certificate-invalid',
        'station-mismatch',
        'signature-invalid',
        'payload-invalid',
        'malformed',
      ]);
      for (const r of results) expect(r.status).toBe('rejected');
      // Station b cannot report station a's certificate (its key did not sign; it names a).
      expect((await revoke(b, [await eventFor(a, c)]))[0]).toMatchObject({
        status: 'rejected',
        reason: 'signer-mismatch',
      });
      expect(await rows()).toBe(before);
      expect(await ocsp(c)).toMatch(/q\.pem: unknown/);
      expect(await ocsp(inRecord)).toMatch(/q\.pem: good/);
    });

    it('a bundle carries events only (no record): imported, revoked, listed in the receipt', async () => {
      const c = await issue(a, `FI-${backend}-4`);
      const bundle = must(
        await createBundle({
          signer: a.signer,
          chain: a.chain,
          stationId: a.id,
          records: [],
          revocations: [await eventFor(a, c)],
          clock: systemClock,
        }),
      );
      const r = await call(reg.url, 'POST', '/v1/bundles', { bearer: ADMIN, body: { bundle: bundle.jws } });
      expect(r.status, r.text).toBe(200);
      const receipt = (r.json as { receipt: string }).receipt;
      const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(receipt.split('.')[1]!))) as {
        accepted: unknown[];
        revocations: RevocationResult[];
      };
      expect(payload.accepted).toEqual([]);
      expect(payload.revocations).toEqual([{ requestId: `failed-issuance:${c.serial}`, status: 'revoked' }]);
      expect(await crlSerials()).toContain(norm(c.serial));
      const row = await db.sql.all('SELECT via FROM failed_issuances WHERE cert_serial = ?', [norm(c.serial)]);
      expect(row).toEqual([{ via: 'bundle' }]);
      expect(createHash('sha256').update(c.der).digest('hex')).toBe(c.sha256);
    });
  });
}

/**
 * Failed issuance end to end, with real parts: a development station (SoftHSM2, simulator on ptys, SQLite), the
 * real flow, and a registry on loopback with a delegated revocation signer the station certified (CRL and OCSP). A
 * board that refuses its
 * certificate, or does not keep it (read-back fails), fails its run AFTER the certificate was issued and logged; the
 * station revokes it at once (failed-issuance event queued in the failRun transaction, signed with the station key)
 * and reports it: online (`POST /v1/revocations`), offline (bundle -> registry import -> receipt), and after a
 * SIGKILL of the real `station provision` CLI between the failure and the sync. Checked with openssl (CRL text,
 * OCSP), the registry's lifecycle events, and the issuance invariant (testkit/issuance-invariant.ts).
 */
import 'reflect-metadata';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { FAILED_ISSUANCE_TYP, type FailedIssuancePayload } from '../../core/failed-issuance.js';
import { signJws } from '../../core/pki/jws.js';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import { systemClock } from '../../core/ports.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { readIssuanceSnapshot } from '../../testkit/issuance-snapshot.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import {
  registryAudience,
  RevocationsResponseSchema,
  signRequest,
  type RevocationResult,
} from '../../core/hq/protocol.js';
import type { RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { call } from '../../testkit/registry/harness.js';
import { main } from '../../station/cli/program.js';
import { updateStationConfig } from '../../station/config.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import { assertIssuanceInvariant, crlSerialsWithOpenssl, fetchCrl } from '../../testkit/issuance-invariant.js';

const ADMIN = 'admin-token-failed-issuance-0123456789';
const WO = 'WO-DEMO-1';
const OP_PIN = '480213';
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'station.mjs');
let w: World;
let reg: RunningRegistry;
let registryHsm: HsmAdmin;
let dbFile: string;
/** The delegated revocation signer certificates this station issued (its audit log): they sign the CRL. */
const signerPems = () => readIssuanceSnapshot(dbFile).revocationSignerPems;

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w?.logText().slice(-4000)}`);
  return r.value;
};
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);
const provision = (i: number) => w.engine.provision({ port: w.sim.ports[i]!, workOrder: WO, operator: 'op-1' });
const cli = async (args: string[]) => {
  const out: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, text: out.join('\n') };
};
const norm = (hex: string) => hex.toLowerCase().replace(/^0+/, '');
/** The registry's rows and events for failed issuances (what headquarters knows). */
const registryRows = async (serial?: string) => {
  const x = reg.context.db.sql;
  const rows = await x.all(
    `SELECT * FROM failed_issuances${serial ? ' WHERE cert_serial = ?' : ''} ORDER BY cert_serial`,
    serial ? [norm(serial)] : [],
  );
  const events = (await x.all("SELECT payload FROM lifecycle_events WHERE type = 'certificate.failed-issuance'"))
    .map((r) => JSON.parse(String(r['payload'])) as { certSerial: string; via: string })
    .filter((e) => !serial || e.certSerial === norm(serial));
  return { rows, events };
};
/** POST /v1/revocations as the station (LS-Sig), as station/lifecycle sends it. */
const postRevocations = async (requests: string[]): Promise<RevocationResult[]> => {
  const body = JSON.stringify({ requests });
  const audience = await registryAudience(reg.context.registryChain[0]!);
  const auth = must(
    await signRequest(
      w.engine.station.signer,
      w.engine.station.id,
      'POST',
      '/v1/revocations',
      body,
      systemClock,
      audience,
    ),
  );
  const res = await fetch(`${reg.url}/v1/revocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: auth },
    body,
  });
  expect(res.status).toBe(200);
  return RevocationsResponseSchema.parse(await res.json()).results;
};
/** A failed-issuance event signed with the station key (to forge variants of a genuine one). */
const signEvent = async (payload: FailedIssuancePayload) =>
  must(
    await signJws({
      signer: w.engine.station.signer,
      payload: utf8(canonicalJson(payload)),
      header: { typ: FAILED_ISSUANCE_TYP, kid: w.engine.station.id, x5c: [...w.engine.station.chain] },
    }),
  );
function openssl(args: string[]): Promise<string> {
  return new Promise((resolve) =>
    execFile('openssl', args, { cwd: w.dir, timeout: 20_000 }, (_e, stdout, stderr) => resolve(`${stdout}${stderr}`)),
  );
}
/** `openssl ocsp` against the registry's responder for a certificate (DER). */
const ocsp = (der: Uint8Array) => {
  writeFileSync(join(w.dir, 'q.pem'), toPem(der, 'CERTIFICATE'));
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
    '-resp_text',
  ]);
};
const invariant = (requireOnCrl = true) =>
  assertIssuanceInvariant({
    dbFile,
    registry: { url: reg.url, stationId: w.engine.station.id, requireOnCrl },
  });
const eventsOf = (i: number) =>
  w.engine.lifecycle.db.revocations({ kind: 'failed-issuance' }).filter((q) => q.chipId === w.sim.state(i).chipId);

beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE', faults: { refuseCert: true } }, // 0: install refused (online)
      { model: 'LS-SIM-SE', faults: { forgetCert: true } }, // 1: read-back fails (online)
      { model: 'LS-SIM-SE' }, // 2: provisioned (a record)
      { model: 'LS-SIM-BASIC', faults: { refuseCert: true } }, // 3: install refused (offline bundle)
      { model: 'LS-SIM-SE', faults: { refuseCert: true } }, // 4: install refused, station killed before the sync
      { model: 'LS-SIM-SE', faults: { disconnectOn: 'installCert' } }, // 5: certificate installed, run left active
      { model: 'LS-SIM-SE', faults: { disconnectOn: 'installCert' } }, // 6: gone after install: expires (background)
      { model: 'LS-SIM-SE', faults: { disconnectOn: 'installCert' } }, // 7: gone after install: expires (engine open)
    ],
  });
  dbFile = join(w.dataDir, 'station.db');
  const chain = must(fromPemChain(readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8')));
  writeFileSync(join(w.dir, 'ca.pem'), toPem(chain[1]!, 'CERTIFICATE'));
  writeFileSync(join(w.dir, 'root.pem'), toPem(chain[2]!, 'CERTIFICATE'));
  // The registry token lives in the SoftHSM2 configuration the module was loaded with (see lifecycle.test.ts).
  const cfg = w.engine.config;
  const pin = readFileSync(join(w.dataDir, 'secrets', 'root-user.pin'), 'utf8').trim();
  registryHsm = must(await openHsm({ module: cfg.config.hsm.module, tokenLabel: 'LS Offline Root', pin }));
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'registry-fi',
    adminToken: ADMIN,
    lifecycle: { hsm: registryHsm, crlIntervalS: 600 },
  });
  const regCertFile = join(w.dir, 'registry.pem');
  writeFileSync(regCertFile, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  must(
    await enrollStation(reg.context, {
      stationId: w.engine.station.id,
      chainPem: readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8'),
    }),
  );
  // The station certifies the registry's delegated revocation signer (it signs the CRL and OCSP answers).
  const r = await cli([
    'enroll',
    '--data-dir',
    w.dataDir,
    '--registry',
    reg.url,
    '--registry-cert',
    regCertFile,
    '--revocation-signer',
  ]);
  if (r.code !== 0) throw new Error(r.text);
  await w.reopen();
}, 120_000);

afterAll(async () => {
  await reg?.close();
  await registryHsm?.close();
  await w?.teardown();
});

describe('a certificate issued for a run that ends without a record is revoked at once and reported', () => {
  it('install refused / read-back failed after the certificate was logged: revoked online (CRL via openssl, OCSP), once', async () => {
    expect(codeOf(await provision(0))).toBe('BOARD_CERT_REFUSED');
    expect(codeOf(await provision(1))).toBe('CERT_INSTALL_MISMATCH');
    const certs = [0, 1].map((i) => w.engine.store.listIssuedCertificates(w.sim.state(i).chipId)[0]!);
    for (const i of [0, 1]) {
      const [q] = eventsOf(i);
      expect(q).toMatchObject({ state: 'queued', certificateSerial: certs[i]!.serialNumber });
      expect(q!.jws).not.toBeNull(); // signed right after the run failed
    }
    // Locally: revoked (queued); the registry's CRL does not list them yet.
    const before = await invariant(false);
    expect(before).toMatchObject({ failedIssuance: 2, signed: 2, onCrl: 0 });
    // The checker fails while they are not on the CRL, and on a CRL that does not verify with the issuing CA.
    await expect(invariant()).rejects.toThrow(/is not on the registry CRL/);
    const der0 = await fetchCrl(reg.url, w.engine.station.id);
    expect(() => crlSerialsWithOpenssl(der0, [toPem(reg.context.registryChain[0]!, 'CERTIFICATE')])).toThrow(
      /openssl crl/,
    );

    const sent = must(await w.engine.lifecycle.sendRevocations());
    expect(sent).toEqual({ sent: 2, unsupported: false });
    for (const i of [0, 1]) expect(eventsOf(i)[0]!.state).toBe('acknowledged');

    // The CRL (fetched over HTTP, parsed by openssl, signature checked against the issuing CA) lists both.
    expect(await invariant()).toMatchObject({ failedIssuance: 2, onCrl: 2 });
    const crlText = await (async () => {
      writeFileSync(join(w.dir, 'crl.der'), await fetchCrl(reg.url, w.engine.station.id));
      return openssl(['crl', '-inform', 'DER', '-in', 'crl.der', '-noout', '-text']);
    })();
    for (const c of certs) expect(crlText.toLowerCase()).toContain(norm(c.serialNumber));
    expect(crlText).toContain('Cessation Of Operation');
    // The event's certificate checks by hand as docs/formats.md says (issued by the station's issuing CA).
    const ev = JSON.parse(eventsOf(0)[0]!.payloadJson!) as FailedIssuancePayload;
    writeFileSync(join(w.dir, 'ev.pem'), toPem(fromBase64Url(ev.certificate), 'CERTIFICATE'));
    expect(await openssl(['verify', '-partial_chain', '-CAfile', 'ca.pem', 'ev.pem'])).toContain('ev.pem: OK');
    expect((await openssl(['x509', '-in', 'ev.pem', '-noout', '-serial'])).toLowerCase()).toContain(
      norm(ev.certificateSerial),
    );
    // OCSP says revoked.
    const o = await ocsp(certs[0]!.der);
    expect(o).toContain('Response verify OK');
    expect(o).toMatch(/q\.pem: revoked/);
    expect(o).toContain('Revocation Reason: cessationOfOperation');

    // Headquarters recorded it: one row and one lifecycle event per certificate, with the failure.
    const hq = await registryRows();
    expect(hq.rows).toHaveLength(2);
    expect(hq.events).toHaveLength(2);
    expect(hq.rows.map((r) => r['failure_code']).sort()).toEqual(['BOARD_CERT_REFUSED', 'CERT_INSTALL_MISMATCH']);
    const verify = await call(reg.url, 'GET', '/v1/lifecycle/verify', { bearer: ADMIN });
    expect((verify.json as { ok: boolean }).ok).toBe(true);

    // Idempotent: a retry of the same events answers duplicate and changes nothing.
    const again = await postRevocations([eventsOf(0)[0]!.jws!, eventsOf(1)[0]!.jws!]);
    expect(again.map((r) => r.status)).toEqual(['duplicate', 'duplicate']);
    expect((await registryRows()).events).toHaveLength(2);
    expect(must(await w.engine.lifecycle.sendRevocations())).toEqual({ sent: 0, unsupported: false });
  });

  it('the registry refuses with typed reasons: a certificate in a record, not from the station CA, altered, misattributed', async () => {
    expect(must(await provision(2)).status).toBe('provisioned');
    must(await w.engine.sync!.syncOnce());
    const genuine = JSON.parse(eventsOf(0)[0]!.payloadJson!) as FailedIssuancePayload;
    const rec = w.engine.store.findCurrentRecord(w.sim.state(2).chipId)!;
    const recCert = w.engine.store
      .listIssuedCertificates(rec.chipId)
      .find((c) => c.serialNumber === rec.certificateSerial)!;
    const withCert = (der: Uint8Array, serial: string, sha256: string): FailedIssuancePayload => ({
      ...genuine,
      requestId: `failed-issuance:${serial}`,
      certificateSerial: serial,
      certificateSha256: sha256,
      certificate: toBase64Url(der),
    });
    const registryCert = reg.context.registryChain[0]!;
    const regSha = Buffer.from(await crypto.subtle.digest('SHA-256', registryCert)).toString('hex');
    const results = await postRevocations([
      // the certificate of a committed record (synced): not a failed issuance
      await signEvent(withCert(recCert.der, recCert.serialNumber, recCert.sha256)),
      // a certificate that the station's issuing CA did not issue
      await signEvent(withCert(registryCert, 'abcdef', regSha)),
      // certificateSha256 that is not the certificate's
      await signEvent({ ...genuine, certificateSha256: '0'.repeat(64) }),
      // another station named in the payload
      await signEvent({ ...genuine, stationId: 'someone-else' }),
      // a genuine event with its payload altered after signing
      (() => {
        const [h, , s] = eventsOf(1)[0]!.jws!.split('.') as [string, string, string];
        const p = {
          ...(JSON.parse(eventsOf(1)[0]!.payloadJson!) as FailedIssuancePayload),
          failedAt: new Date().toISOString(),
        };
        return `${h}.${toBase64Url(utf8(canonicalJson(p)))}.${s}`;
      })(),
    ]);
    expect(results.map((r) => [r.status, r.reason])).toEqual([
      ['rejected', 'certificate-in-record'],
      ['rejected', 'certificate-invalid'],
      ['rejected', 'certificate-invalid'],
      ['rejected', 'station-mismatch'],
      ['rejected', 'signature-invalid'],
    ]);
    // Nothing changed at headquarters; the record's certificate is still good.
    expect((await registryRows()).rows).toHaveLength(2);
    expect(await ocsp(recCert.der)).toMatch(/q\.pem: good/);
    expect(fromBase64Url(genuine.certificate).length).toBeGreaterThan(100);
  });

  it('offline: the bundle carries the event (station export -> registry import -> receipt) and the CRL lists it', async () => {
    expect(codeOf(await provision(3))).toBe('BOARD_CERT_REFUSED');
    const cert = w.engine.store.listIssuedCertificates(w.sim.state(3).chipId)[0]!;
    const exp = must(await w.engine.sync!.exportBundle());
    expect(exp.revocationEvents).toBe(1);
    // What `registry import` does (importBundle), over HTTP with the admin token.
    const imp = await call(reg.url, 'POST', '/v1/bundles', { bearer: ADMIN, body: { bundle: exp.content } });
    expect(imp.status).toBe(200);
    const receipt = (imp.json as { receipt: string }).receipt;
    const receiptPayload = JSON.parse(Buffer.from(receipt.split('.')[1]!, 'base64url').toString('utf8')) as {
      revocations?: RevocationResult[];
    };
    expect(receiptPayload.revocations).toEqual([
      { requestId: `failed-issuance:${cert.serialNumber}`, status: 'revoked' },
    ]);
    expect(eventsOf(3)[0]!.state).toBe('queued');
    const applied = must(await w.engine.sync!.importReceipt(receipt));
    expect(applied.message).toContain('1 of 1 revocation event(s) acknowledged');
    expect(eventsOf(3)[0]!.state).toBe('acknowledged');
    const crl = crlSerialsWithOpenssl(await fetchCrl(reg.url, w.engine.station.id), signerPems());
    expect(crl.has(norm(cert.serialNumber))).toBe(true);
    expect((await registryRows(cert.serialNumber)).rows[0]).toMatchObject({ via: 'bundle' });
    // The same bundle again: the stored answer; still one row.
    const again = await call(reg.url, 'POST', '/v1/bundles', { bearer: ADMIN, body: { bundle: exp.content } });
    expect((again.json as { repeated: boolean }).repeated).toBe(true);
    expect((await registryRows(cert.serialNumber)).events).toHaveLength(1);
    await invariant();
  });

  it('a supervisor scraps a board whose run holds an installed certificate: the run fails, the background loop revokes it', async () => {
    // The board ran installCert (it holds the certificate) and vanished before answering: the run stays active.
    expect(codeOf(await provision(5))).toBe('LINK_DISCONNECTED');
    const st5 = w.sim.state(5);
    const cert = w.engine.store.listIssuedCertificates(st5.chipId)[0]!;
    expect(st5.certSha256).toBe(cert.sha256);
    expect(w.engine.store.findActiveRun(st5.chipId)).not.toBeNull();
    expect(await invariant()).toMatchObject({ activeRun: 1 }); // the documented exception, until the run ends
    // The supervisor scraps it (the service zeroizes the board first, then calls this).
    must(
      await w.engine.lifecycle.scrap({
        chipId: st5.chipId,
        serialNumber: st5.serialNumber,
        reason: 'never came back from rework',
        supervisor: 'sup-1',
        operator: 'op-1',
      }),
    );
    const run = w.engine.store
      .listAudit()
      .filter((e) => e.type === 'run.failed')
      .at(-1)!;
    expect(run.payload).toMatchObject({ code: 'FLOW_RUN_ABANDONED' });
    expect(eventsOf(5)[0]).toMatchObject({ state: 'queued', certificateSerial: cert.serialNumber });
    expect(eventsOf(5)[0]!.jws).not.toBeNull();
    // The background loop of station watch / serve sends it without a manual sync.
    w.engine.lifecycle.start();
    try {
      const t0 = Date.now();
      while (eventsOf(5)[0]!.state !== 'acknowledged') {
        if (Date.now() - t0 > 20_000) throw new Error(`not sent: ${JSON.stringify(eventsOf(5)[0])}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      w.engine.lifecycle.stop();
    }
    expect(await invariant()).toMatchObject({ activeRun: 0, failedIssuance: 4 });
  });

  it(
    'a SIGKILL of the station between the failed run and the sync: the next sync revokes it exactly once',
    { timeout: 120_000 },
    async () => {
      await w.engine.close(); // the station runs as a child process now
      const chipId = w.sim.state(4).chipId;
      // The CLI signs the operator in (hard-auth): an enrolled operator and the PIN in the environment.
      await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: OP_PIN }]);
      const child = spawn(
        process.execPath,
        [
          BIN,
          'provision',
          '--data-dir',
          w.dataDir,
          '--port',
          w.sim.ports[4]!,
          '--work-order',
          WO,
          '--operator',
          'op-1',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LINE_STATION_PIN: OP_PIN } },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
        child.on('exit', (code, signal) => res({ code, signal })),
      );
      // Kill the station the moment the failure is committed (the failed-issuance event is in the database).
      let killedWith: 'unsigned' | 'signed' | null = null;
      const t0 = Date.now();
      while (killedWith === null && child.exitCode === null && Date.now() - t0 < 60_000) {
        const q = readIssuanceSnapshot(dbFile).failedIssuances.find((f) => {
          const p = f.payload_json ? (JSON.parse(f.payload_json) as { chipId: string }) : null;
          return p?.chipId === chipId;
        });
        if (q) {
          child.kill('SIGKILL');
          killedWith = q.jws === null ? 'unsigned' : 'signed';
        } else await new Promise((r) => setTimeout(r, 2));
      }
      const ex = await exited;
      expect(ex.signal, out).toBe('SIGKILL');
      console.log(`station killed after the failed run committed; the event was ${killedWith} at the kill`);
      // The local half holds without the registry: the certificate's event is queued.
      const local = await assertIssuanceInvariant({ dbFile });
      expect(local.failedIssuance).toBe(5);

      // The real CLI syncs after the restart (signs an unsigned event first), then again: exactly one revocation.
      const s1 = await cli(['sync', '--data-dir', w.dataDir]);
      expect(s1.text).toContain('revocation event(s) acknowledged');
      const s2 = await cli(['sync', '--data-dir', w.dataDir]);
      expect(s2.code).toBe(0);
      const serial = readIssuanceSnapshot(dbFile).failedIssuances.find(
        (f) =>
          f.jws && f.state === 'acknowledged' && (JSON.parse(f.payload_json!) as { chipId: string }).chipId === chipId,
      )!.certificate_serial;
      const hq = await registryRows(serial);
      expect(hq.rows).toHaveLength(1);
      expect(hq.events).toHaveLength(1);
      await w.reopen();
      expect(await invariant()).toMatchObject({ failedIssuance: 5, onCrl: 5, activeRun: 0 });
    },
  );
  it(
    'an active run whose board never comes back expires (FLOW_RUN_EXPIRED): revoked by the background loop and at engine open; re-plugged, the board gets a new identity',
    { timeout: 120_000 },
    async () => {
      // The lifetime is 1 s here (config.json, read when the engine opens); nothing checks it during an attempt
      // that has not started yet, so the runs below are still active when provision() returns.
      must(
        updateStationConfig(w.dataDir, (raw) => ({
          ...raw,
          lifecycle: { ...(raw['lifecycle'] as object | undefined), activeRunLifetimeS: 1 },
        })),
      );
      await w.reopen();
      const failedRunOf = (chipId: string) =>
        w.engine.store
          .listAudit()
          .filter(
            (e) => e.type === 'run.failed' && e.runId !== null && w.engine.store.getRun(e.runId)?.chipId === chipId,
          )
          .at(-1);
      const onCrl = async () => crlSerialsWithOpenssl(await fetchCrl(reg.url, w.engine.station.id), signerPems());

      // Board 6: the certificate is installed, then the board is unplugged and never returns.
      expect(codeOf(await provision(6))).toBe('LINK_DISCONNECTED');
      const st6 = w.sim.state(6);
      const cert6 = w.engine.store.listIssuedCertificates(st6.chipId)[0]!;
      expect(st6.certSha256).toBe(cert6.sha256);
      const run6 = w.engine.store.findActiveRun(st6.chipId)!;
      expect(run6).not.toBeNull();
      expect(await invariant(false)).toMatchObject({ activeRun: 1 });
      // The background loop (station watch / serve) ends it past the lifetime and sends the event.
      w.engine.lifecycle.start();
      try {
        const t0 = Date.now();
        while (eventsOf(6)[0]?.state !== 'acknowledged') {
          if (Date.now() - t0 > 20_000) throw new Error(`not expired/sent: ${JSON.stringify(eventsOf(6))}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        w.engine.lifecycle.stop();
      }
      expect(w.engine.store.getRun(run6.runId)).toMatchObject({ state: 'failed', error: { code: 'FLOW_RUN_EXPIRED' } });
      expect(failedRunOf(st6.chipId)?.payload).toMatchObject({ code: 'FLOW_RUN_EXPIRED' });
      expect(eventsOf(6)).toHaveLength(1);
      expect(eventsOf(6)[0]).toMatchObject({ certificateSerial: cert6.serialNumber });
      expect(JSON.parse(eventsOf(6)[0]!.payloadJson!)).toMatchObject({ failure: { code: 'FLOW_RUN_EXPIRED' } });
      expect(await onCrl()).toContain(norm(cert6.serialNumber));
      expect((await registryRows(cert6.serialNumber)).rows).toMatchObject([{ failure_code: 'FLOW_RUN_EXPIRED' }]);

      // Board 7: the same, but the station is closed meanwhile; the engine ends the run when it opens.
      expect(codeOf(await provision(7))).toBe('LINK_DISCONNECTED');
      const st7 = w.sim.state(7);
      const cert7 = w.engine.store.listIssuedCertificates(st7.chipId)[0]!;
      const run7 = w.engine.store.findActiveRun(st7.chipId)!;
      expect(run7).not.toBeNull();
      await new Promise((r) => setTimeout(r, 1100));
      await w.reopen();
      expect(w.engine.store.getRun(run7.runId)).toMatchObject({ state: 'failed', error: { code: 'FLOW_RUN_EXPIRED' } });
      expect(eventsOf(7)[0]).toMatchObject({ state: 'queued', certificateSerial: cert7.serialNumber });
      expect(eventsOf(7)[0]!.jws).not.toBeNull(); // signed at engine open
      const s = await cli(['sync', '--data-dir', w.dataDir]);
      expect(s.text).toContain('revocation event(s) acknowledged');
      await w.reopen();
      expect(await onCrl()).toContain(norm(cert7.serialNumber));

      // Board 6 comes back: decide() starts a fresh run, a new key and certificate, and a record. Its new run
      // outlives the 1 s lifetime while the attempt is in flight (held before the install): not ended mid-attempt.
      await w.sim.plug(6);
      let midAttempt: unknown = null;
      const again = must(
        await w.engine.provision({
          port: w.sim.ports[6]!,
          workOrder: WO,
          operator: 'op-1',
          instrumentBoard: (b) => {
            const install = b.installCertificate.bind(b);
            (b as { installCertificate: typeof install }).installCertificate = async (chain, opts) => {
              await new Promise((r) => setTimeout(r, 1100));
              midAttempt = must(await w.engine.lifecycle.expireActiveRuns());
              return install(chain, opts);
            };
            return b;
          },
        }),
      );
      expect(midAttempt).toEqual([]);
      expect(again.status).toBe('provisioned');
      const certs6 = w.engine.store.listIssuedCertificates(st6.chipId);
      expect(certs6).toHaveLength(2);
      const rec6 = w.engine.store.findCurrentRecord(st6.chipId)!;
      expect(rec6.runId).not.toBe(run6.runId);
      expect(norm(rec6.certificateSerial)).not.toBe(norm(cert6.serialNumber));
      expect(w.sim.state(6).certSha256).not.toBe(cert6.sha256);
      expect(await invariant()).toMatchObject({ activeRun: 0, failedIssuance: 7, onCrl: 7 });
    },
  );
});

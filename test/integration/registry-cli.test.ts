/**
 * The registry lifecycle CLI end to end in a temp data dir, per backend (SQLite; PostgreSQL with
 * LINE_STATION_TEST_PG_URL): init, enrol a station whose issuing CA key is in a SoftHSM2 station token, certify
 * the registry's delegated revocation signer against a real `registry serve` child process with the station
 * function (`registry revocation-signers` lists it), ingest records, revoke with the CLI, export the CRL and check
 * it with openssl (-extended_crl), OCSP through `openssl ocsp -url` against serve, history, batch dry run, and the
 * event log.
 */
import 'reflect-metadata';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/ports.js';
import { toPem } from '../../core/pki/pem.js';
import { must } from '../../testkit/pki/test-util.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { openRegistryDb } from '../../native/registry-store/index.js';
import { initToken, type SoftHsmEnv } from '../../native/softhsm-dev.js';
import { delegateRevocationSigner } from '../../station/revocation-signer.js';
import { readRegistryCertificate } from '../../station/hq/pins.js';
import { main } from '../../registry/cli.js';
import { createBundle } from '../../core/hq/protocol.js';
import { makeRecord } from '../../testkit/registry/fixtures.js';
import { createHsmStation, type HsmStation } from '../../testkit/registry/lifecycle.js';
import { backends, createTestDb, type TestDb } from '../../testkit/registry/harness.js';
import { SERVE_FILE } from '../../registry/http/commands.js';
import { getCrlRow } from '../../registry/store/lifecycle.js';

const PIN = 'station-PIN-2468';
const WO = 'WO-LC-CLI';

function capture() {
  const lines: string[] = [];
  return {
    lines,
    text: () => lines.join('\n'),
    out: { log: (s: string) => lines.push(s), err: (s: string) => lines.push(s) },
  };
}

/** Run the CLI in this process; returns exit code and output. */
async function cli(...args: string[]): Promise<{ code: number; text: string }> {
  const c = capture();
  const code = await main(args, c.out);
  return { code, text: c.text() };
}

function startServe(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['bin/registry.mjs', 'serve', '--data-dir', dataDir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`no listening line: ${buf}`)), 20_000);
    const onData = (c: Buffer) => {
      buf += c.toString();
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve({ child, url: m[1]! });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${buf}`)));
  });
}

for (const backend of backends()) {
  describe(`registry lifecycle CLI (${backend})`, () => {
    let work: string;
    let D: string;
    let tdb: TestDb | null = null;
    let stationHsm: HsmAdmin;
    let station: HsmStation;
    let serve: { child: ChildProcess; url: string } | null = null;
    const devices: { serial: string; pem: string }[] = [];
    const sh = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { cwd: work, encoding: 'utf8', timeout: 20_000 });
      return { status: r.status, out: `${r.stdout}${r.stderr}` };
    };

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'ls-lc-cli-'));
      D = join(work, 'reg');
      const db: string[] = [];
      if (backend === 'postgres') {
        tdb = await createTestDb('postgres');
        db.push('--db', tdb.url);
      }
      const init = await cli('init', '--data-dir', D, '--registry-id', `reg-lc-${backend}`, ...db);
      expect(init.code, init.text).toBe(0);
      expect(init.text).toContain('security officer token');
      // The station token lives next to the registry token (one SoftHSM2 configuration per process).
      const env: SoftHsmEnv = {
        conf: join(D, 'hsm', 'softhsm2.conf'),
        tokenDir: join(D, 'hsm', 'tokens'),
        module: (JSON.parse(readFileSync(join(D, 'config.json'), 'utf8')) as { hsm: { module: string } }).hsm.module,
      };
      process.env['SOFTHSM2_CONF'] = env.conf;
      must(await initToken(env, { label: 'station', soPin: 'so-pin-0000', pin: PIN }));
      stationHsm = must(await openHsm({ module: env.module, tokenLabel: 'station', pin: PIN }));
      const id = `st-cli-${backend}`;
      station = await createHsmStation(stationHsm, id, {
        workOrder: WO,
        validityDays: { root: 30, ca: 30, station: 30 },
      });
      const { root, ca } = station;
      writeFileSync(join(work, 'root.pem'), toPem(root, 'CERTIFICATE'));
      writeFileSync(join(work, 'ca.pem'), toPem(ca, 'CERTIFICATE'));
      writeFileSync(join(work, 'station-chain.pem'), station.chainPem);
    });

    afterAll(async () => {
      if (serve && serve.child.exitCode === null) serve.child.kill('SIGKILL');
      await stationHsm?.close();
      await tdb?.cleanup();
      rmSync(work, { recursive: true, force: true });
    });

    it('creates a 0600 security officer token; no CRL before a revocation signer is certified (says what to do)', async () => {
      expect(statSync(join(D, 'secrets', 'security-officer.token')).mode & 0o777).toBe(0o600);
      const e = await cli(
        'enroll-station',
        '--data-dir',
        D,
        '--id',
        station.id,
        '--chain',
        join(work, 'station-chain.pem'),
      );
      expect(e.code, e.text).toBe(0);
      const r = await cli('crl', '--station', station.id, '--out', join(work, 'none.der'), '--data-dir', D);
      expect(r.code).toBe(1);
      expect(r.text).toMatch(/no revocation signer[\s\S]*station enroll .*--revocation-signer/);
      expect((await cli('revocation-signers', '--data-dir', D)).text).toMatch(/no revocation signers/);
      expect((await cli('revoke', 'X1', '--data-dir', D)).code).toBe(2); // no reason
      const bad = await cli('revoke', 'X1', '--reason', 'because', '--data-dir', D);
      expect(bad.code).toBe(2);
      expect(bad.text).toContain('keyCompromise');
    });

    it('certifies a revocation signer of the running registry serve (station function); revocation-signers lists it', async () => {
      serve = await startServe(D);
      expect(existsSync(join(D, SERVE_FILE))).toBe(true);
      const d = must(
        await delegateRevocationSigner({
          url: serve.url,
          registryCertificate: must(readRegistryCertificate(join(D, 'registry.pem'))),
          tlsCertificate: null,
          stationId: station.id,
          signer: station.signer,
          caSigner: station.caSigner,
          caChain: [station.ca, station.root],
          clock: systemClock,
          audit: () => undefined,
        }),
      );
      writeFileSync(join(work, 'signer.pem'), d.certificatePem);
      writeFileSync(join(work, 'ca-signer.pem'), toPem(station.ca, 'CERTIFICATE') + d.certificatePem);
      const l = await cli('revocation-signers', station.id, '--json', '--data-dir', D);
      expect(l.code, l.text).toBe(0);
      expect(JSON.parse(l.text)).toMatchObject([
        { stationId: station.id, state: 'active', requestId: d.requestId, certificateSha256: d.certificateSha256 },
      ]);
    });

    it('ingests records, revokes one: CRL (openssl crl, verify -crl_check) and OCSP via serve say revoked', async () => {
      const records = [];
      for (let i = 0; i < 3; i++) {
        const m = await makeRecord(station, systemClock, { serialNumber: `LCC-${backend}-${i}`, workOrder: WO });
        devices.push({ serial: m.record.board.serialNumber, pem: m.record.certificate.pem });
        records.push(m.jws);
      }
      const bundle = must(
        await createBundle({
          signer: station.signer,
          chain: station.chain,
          stationId: station.id,
          records,
          clock: systemClock,
        }),
      );
      writeFileSync(join(work, 'bundle.jws'), bundle.jws);
      const imp = await cli('import', join(work, 'bundle.jws'), '--data-dir', D, '--out', join(work, 'r.jws'));
      expect(imp.code, imp.text).toBe(0);
      expect(imp.text).toContain('3 accepted');

      const rv = await cli('revoke', devices[0]!.serial, '--reason', 'keyCompromise', '--data-dir', D);
      expect(rv.code, rv.text).toBe(0);
      expect(rv.text).toMatch(/revoked since/);
      expect((await cli('resume', devices[0]!.serial, '--data-dir', D)).text).toMatch(
        /LIFECYCLE_TRANSITION_INVALID[\s\S]*registry history/,
      );

      const crl = await cli('crl', '--station', station.id, '--out', join(work, 'crl.der'), '--data-dir', D);
      expect(crl.code, crl.text).toBe(0);
      writeFileSync(join(work, 'dev0.pem'), devices[0]!.pem);
      writeFileSync(join(work, 'dev1.pem'), devices[1]!.pem);
      const serial = /serial=([0-9A-F]+)/.exec(
        sh('openssl', ['x509', '-in', 'dev0.pem', '-noout', '-serial']).out,
      )![1]!;
      // Signed by the delegated signer (its certificate names the CA as subject): openssl crl checks it with that.
      const text = sh('openssl', [
        'crl',
        '-inform',
        'DER',
        '-in',
        'crl.der',
        '-noout',
        '-text',
        '-CAfile',
        'signer.pem',
      ]);
      expect(text.out).toContain(`Serial Number: ${serial}`);
      expect(text.out).toContain('Key Compromise');
      expect(text.out).toContain('verify OK');
      const pem = await cli('crl', '--station', station.id, '--out', join(work, 'crl.pem'), '--pem', '--data-dir', D);
      expect(pem.code).toBe(0);
      const verify = (f: string) =>
        sh('openssl', [
          'verify',
          '-crl_check',
          '-extended_crl',
          '-CAfile',
          'root.pem',
          '-untrusted',
          'ca-signer.pem',
          '-CRLfile',
          'crl.pem',
          f,
        ]);
      expect(verify('dev0.pem').out).toContain('certificate revoked');
      expect(verify('dev1.pem').out).toMatch(/dev1.pem: OK/);

      const ocsp = (f: string) =>
        sh('openssl', [
          'ocsp',
          '-issuer',
          'ca.pem',
          '-cert',
          f,
          '-url',
          `${serve!.url}/v1/ocsp`,
          '-CAfile',
          'root.pem',
        ]);
      const o0 = ocsp('dev0.pem');
      expect(o0.out).toMatch(/dev0.pem: revoked/);
      expect(o0.out).toContain('Response verify OK');
      expect(ocsp('dev1.pem').out).toMatch(/dev1.pem: good/);
    });

    it('history --json lists the transitions; batch revoke --dry-run changes nothing; verify-log OK', async () => {
      const h = await cli('history', devices[0]!.serial, '--json', '--data-dir', D);
      expect(h.code, h.text).toBe(0);
      const hist = JSON.parse(h.text) as { state: string; events: { type: string; reason?: string }[] };
      expect(hist.state).toBe('revoked');
      expect(hist.events.map((e) => e.type)).toEqual(['device.provisioned', 'device.revoke']);
      expect(hist.events[1]).toMatchObject({ reason: 'keyCompromise', actor: 'admin', from: 'provisioned' });

      const dry = await cli(
        'revoke',
        '--work-order',
        WO,
        '--reason',
        'superseded',
        '--dry-run',
        '--json',
        '--data-dir',
        D,
      );
      expect(dry.code, dry.text).toBe(0);
      expect(JSON.parse(dry.text)).toMatchObject({
        dryRun: true,
        changed: [devices[1]!.serial, devices[2]!.serial],
        skipped: [{ serialNumber: devices[0]!.serial, state: 'revoked' }],
      });
      const h1 = JSON.parse((await cli('history', devices[1]!.serial, '--json', '--data-dir', D)).text) as {
        state: string;
        events: unknown[];
      };
      expect(h1).toMatchObject({ state: 'provisioned' });
      expect(h1.events).toHaveLength(1);

      const range = await cli(
        'revoke',
        '--serial-range',
        `${devices[2]!.serial}..${devices[2]!.serial}`,
        '--reason',
        'cessationOfOperation',
        '--data-dir',
        D,
      );
      expect(range.code, range.text).toBe(0);
      expect(range.text).toContain('revoked 1 device(s)');

      // Incident hold over the work order: suspend needs a reason; the dry run lists, the real run holds.
      expect((await cli('suspend', '--work-order', WO, '--data-dir', D)).code).toBe(2);
      const sdry = await cli(
        'suspend',
        '--work-order',
        WO,
        '--reason',
        'incident',
        '--dry-run',
        '--json',
        '--data-dir',
        D,
      );
      expect(sdry.code, sdry.text).toBe(0);
      expect(JSON.parse(sdry.text)).toMatchObject({ dryRun: true, event: 'suspend', changed: [devices[1]!.serial] });
      const held = await cli('suspend', '--work-order', WO, '--reason', 'incident', '--data-dir', D);
      expect(held.text).toContain('suspended 1 device(s), 2 skipped');
      const back = await cli(
        'resume',
        '--serial-range',
        `${devices[1]!.serial}..${devices[1]!.serial}`,
        '--data-dir',
        D,
      );
      expect(back.text).toContain('resumed 1 device(s)');
      const h1b = JSON.parse((await cli('history', devices[1]!.serial, '--json', '--data-dir', D)).text) as {
        state: string;
        events: { type: string; actor?: string }[];
      };
      expect(h1b.state).toBe('activated');
      expect(h1b.events.map((e) => e.type).slice(-2)).toEqual(['device.suspend', 'device.resume']);

      const v = await cli('verify-log', '--data-dir', D);
      expect(v.code, v.text).toBe(0);
      expect(v.text).toMatch(/lifecycle log OK: \d+ events/);

      // Every stored record here went through the ingest transaction: reconcile finds nothing to repair.
      const rc = await cli('reconcile', '--dry-run', '--json', '--data-dir', D);
      expect(rc.code, rc.text).toBe(0);
      expect(JSON.parse(rc.text)).toMatchObject({ dryRun: true, pending: 0, applied: 0, records: [] });
    });

    it('stops serve on SIGTERM and removes serve.json', async () => {
      const code = await new Promise<number | null>((resolve) => {
        serve!.child.on('exit', (c) => resolve(c));
        serve!.child.kill('SIGTERM');
      });
      expect(code).toBe(0);
      expect(existsSync(join(D, SERVE_FILE))).toBe(false);
    });

    it('an older data dir gets its security officer token on first use; serve re-signs CRLs on schedule', async () => {
      const cfgFile = join(D, 'config.json');
      const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
      delete cfg['securityOfficerToken'];
      cfg['lifecycle'] = { crlIntervalS: 1 };
      writeFileSync(cfgFile, JSON.stringify(cfg));
      rmSync(join(D, 'secrets', 'security-officer.token'));
      serve = await startServe(D);
      const tokenFile = join(D, 'secrets', 'security-officer.token');
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      const so = readFileSync(tokenFile, 'utf8').trim();
      const v = await fetch(`${serve.url}/v1/lifecycle/verify`, { headers: { authorization: `Bearer ${so}` } });
      expect(v.status).toBe(200);
      expect(await v.json()).toMatchObject({ ok: true });
      const db = must(await openRegistryDb(cfg['db'] as string));
      try {
        const first = (await getCrlRow(db.sql, station.id))!;
        await new Promise((r) => setTimeout(r, 2500));
        const later = (await getCrlRow(db.sql, station.id))!;
        expect(later.crlNumber).toBeGreaterThanOrEqual(first.crlNumber + 2);
        expect(Date.parse(later.nextUpdate) - Date.parse(later.thisUpdate)).toBe(2000); // two intervals
      } finally {
        await db.close();
      }
      const code = await new Promise<number | null>((resolve) => {
        serve!.child.on('exit', (c) => resolve(c));
        serve!.child.kill('SIGTERM');
      });
      expect(code).toBe(0);
    });
  });
}

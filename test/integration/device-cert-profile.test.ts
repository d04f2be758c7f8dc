/**
 * The device certificate profile with real parts (docs/formats.md "Device certificate profile"): a development
 * station (SoftHSM2, simulator ptys, SQLite) enrolled at a real registry on loopback (HTTP on 127.0.0.1) with
 * `station enroll --revocation-signer`, so the registry publishes the CRL and answers OCSP with its delegated signer.
 *
 * - `station enroll --registry URL` writes the CRL and OCSP URLs; every device certificate carries them (read
 *   back with openssl), and it lives the profile's 10 years inside a 20-year issuing CA (station init);
 * - openssl fetches the CRL from the URL IN the certificate (`-crl_download`, and a plain HTTP fetch with
 *   `-CRLfile`) and asks the OCSP URL in its AIA: good before, revoked after `POST /v1/devices/S/revoke`;
 * - the registry policy's `revocationUrls` overrides the configured URLs for the runs after the pull.
 */
import 'reflect-metadata';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '../../core/pki/pem.js';
import { fixedClock } from '../../testkit/pki/test-util.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import type { RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { call } from '../../testkit/registry/harness.js';
import { main } from '../../station/cli/program.js';
import { openEngine } from '../../station/engine.js';
import { createWorld, type World } from '../harness.js';

const ADMIN = 'admin-token-cert-profile-0123456789';
const WO = 'WO-DEMO-1';
let w: World;
let reg: RunningRegistry;
let registryHsm: HsmAdmin;

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w?.logText().slice(-4000)}`);
  return r.value;
};
const cli = async (args: string[]) => {
  const out: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, text: out.join('\n') };
};
const openssl = (args: string[]) => {
  const r = spawnSync('openssl', args, { cwd: w.dir, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};
/** openssl that talks to the in-process registry (asynchronous, or the event loop would block the answer). */
const opensslAsync = (args: string[]): Promise<{ status: number | null; out: string }> =>
  new Promise((resolve) => {
    const p = spawn('openssl', args, { cwd: w.dir });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (status) => resolve({ status, out }));
  });

/** The board's device certificate (PEM, from its record) written to `<dir>/<name>`. */
function deviceCert(i: number, name: string): string {
  const rec = w.engine.store.findCurrentRecord(w.sim.state(i).chipId)!;
  const pem = (JSON.parse(rec.recordJson) as { certificate: { pem: string } }).certificate.pem;
  writeFileSync(join(w.dir, name), pem);
  return name;
}
/** The CRL distribution point and the OCSP URL of a certificate, as openssl reads them. */
function urlsOf(file: string): { crl: string; ocsp: string } {
  const r = openssl(['x509', '-in', file, '-noout', '-ext', 'crlDistributionPoints,authorityInfoAccess']);
  expect(r.status, r.out).toBe(0);
  return {
    crl: /Full Name:\s+URI:(\S+)/.exec(r.out)![1]!,
    ocsp: /OCSP - URI:(\S+)/.exec(r.out)![1]!,
  };
}
/**
 * The relying party's view: the station root trusted; the issuing CA and the registry's delegated CRL signer
 * (docs/lifecycle.md "What relying parties run") untrusted; -extended_crl for a CRL not signed with the CA key.
 */
const chain = ['-extended_crl', '-CAfile', 'root.pem', '-untrusted', 'untrusted.pem'];

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }] });
  const cfg = w.engine.config;
  const pin = readFileSync(join(w.dataDir, 'secrets', 'root-user.pin'), 'utf8').trim();
  // The registry token must live in the SoftHSM2 configuration the module was loaded with: the world's separate
  // "LS Offline Root" token stands in for it (as in lifecycle.test.ts).
  registryHsm = must(await openHsm({ module: cfg.config.hsm.module, tokenLabel: 'LS Offline Root', pin }));
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'registry-profile',
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
  const pki = join(w.dataDir, 'pki');
  const caChain = readFileSync(join(pki, 'ca-chain.pem'), 'utf8');
  writeFileSync(join(w.dir, 'ca.pem'), caChain.slice(0, caChain.indexOf('-----END CERTIFICATE-----') + 26));
  writeFileSync(join(w.dir, 'root.pem'), readFileSync(join(pki, 'root.pem'), 'utf8'));
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
  expect(r.code, r.text).toBe(0);
  expect(r.text).toContain(`device certificates: CRL ${reg.url}/v1/crl/${w.engine.station.id}.crl`);
  await w.reopen();
}, 120_000);

afterAll(async () => {
  await reg?.close();
  await registryHsm?.close();
  await w?.teardown();
});

describe('device certificate profile', () => {
  let serial0 = '';

  it('every device certificate names the registry CRL and OCSP URLs; 10 years inside a 20-year issuing CA', async () => {
    expect(must(await w.engine.provision({ port: w.sim.ports[0]!, workOrder: WO, operator: 'op-1' })).status).toBe(
      'provisioned',
    );
    const dev = deviceCert(0, 'dev0.pem');
    expect(urlsOf(dev)).toEqual({
      crl: `${reg.url}/v1/crl/${w.engine.station.id}.crl`,
      ocsp: `${reg.url}/v1/ocsp`,
    });
    const days = (f: string) => {
      const d = openssl(['x509', '-in', f, '-noout', '-dates']).out;
      return (Date.parse(/notAfter=(.+)/.exec(d)![1]!) - Date.parse(/notBefore=(.+)/.exec(d)![1]!)) / 86_400_000;
    };
    expect(Math.round(days('ca.pem'))).toBe(20 * 365);
    expect(Math.round(days('root.pem'))).toBe(30 * 365);
    expect(Math.floor(days(dev))).toBe(3650);
    must(await w.engine.sync!.syncOnce());
    serial0 = w.sim.state(0).serialNumber;
  });

  it('openssl checks the CRL at the URL in the certificate and asks its OCSP URL: good, then revoked', async () => {
    const dev = 'dev0.pem';
    const issued = w.engine.store.listAudit().find((a) => a.type === 'revocation-signer.issued')!;
    const signerPem = (issued.payload as { certificatePem: string }).certificatePem;
    writeFileSync(join(w.dir, 'untrusted.pem'), readFileSync(join(w.dir, 'ca.pem'), 'utf8') + signerPem);
    const { crl, ocsp } = urlsOf(dev);
    const fetchCrl = async () => {
      const r = await fetch(crl);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/pkix-crl');
      writeFileSync(join(w.dir, 'crl.der'), Buffer.from(await r.arrayBuffer()));
      expect(openssl(['crl', '-in', 'crl.der', '-inform', 'DER', '-out', 'crl.pem']).status).toBe(0);
    };
    const ask = () => opensslAsync(['ocsp', '-issuer', 'ca.pem', '-cert', dev, '-url', ocsp, '-CAfile', 'root.pem']);

    await fetchCrl();
    const v1 = openssl(['verify', '-crl_check', ...chain, '-CRLfile', 'crl.pem', dev]);
    expect(v1.out).toContain(`${dev}: OK`);
    // openssl downloads the CRL itself from the certificate's distribution point (http).
    const d1 = await opensslAsync(['verify', '-crl_check', '-crl_download', ...chain, dev]);
    expect(d1.out).toContain(`${dev}: OK`);
    const o1 = await ask();
    expect(o1.out).toContain(`${dev}: good`);
    expect(o1.out).toContain('Response verify OK');

    const rv = await call(reg.url, 'POST', `/v1/devices/${serial0}/revoke`, {
      bearer: ADMIN,
      body: { reason: 'keyCompromise' },
    });
    expect(rv.status, rv.text).toBe(200);
    await fetchCrl();
    const v2 = openssl(['verify', '-crl_check', ...chain, '-CRLfile', 'crl.pem', dev]);
    expect(v2.out).toContain('certificate revoked');
    expect(v2.status).not.toBe(0);
    const d2 = await opensslAsync(['verify', '-crl_check', '-crl_download', ...chain, dev]);
    expect(d2.out).toContain('certificate revoked');
    const o2 = await ask();
    expect(o2.out).toContain(`${dev}: revoked`);
    expect(o2.out).toContain('Response verify OK');
  });

  it("the policy's revocationUrls override the configured ones for runs after the pull", async () => {
    const set = await call(reg.url, 'POST', '/v1/admin/policy', {
      bearer: ADMIN,
      body: {
        revocationUrls: { crl: 'http://crl.example.com/{stationId}.crl', ocsp: 'http://ocsp.example.com/' },
      },
    });
    expect(set.status, set.text).toBe(200);
    must(await w.engine.lifecycle.pull());
    expect(w.engine.lifecycle.revocationUrls()).toEqual({
      crl: `http://crl.example.com/${w.engine.station.id}.crl`,
      ocsp: 'http://ocsp.example.com/',
    });
    expect(must(await w.engine.provision({ port: w.sim.ports[1]!, workOrder: WO, operator: 'op-1' })).status).toBe(
      'provisioned',
    );
    expect(urlsOf(deviceCert(1, 'dev1.pem'))).toEqual({
      crl: `http://crl.example.com/${w.engine.station.id}.crl`,
      ocsp: 'http://ocsp.example.com/',
    });
    const shown = await cli(['policy', '--data-dir', w.dataDir]);
    expect(shown.text).toContain(
      `device certificates: CRL http://crl.example.com/${w.engine.station.id}.crl, OCSP http://ocsp.example.com/`,
    );
  });

  it('a station 12 years into its 20-year issuing CA: the certificate ends with the CA, logged and audited', async () => {
    await w.engine.close();
    const later = new Date(Date.now() + 12 * 365 * 86_400_000);
    const eng = must(await openEngine({ dataDir: w.dataDir, logger: w.logger, clock: fixedClock(later) }));
    try {
      expect(w.logText()).toContain('device certificates are capped at the issuing CA expiry: plan a new issuing CA');
      const r = await eng.provision({ port: w.sim.ports[2]!, workOrder: WO, operator: 'op-1' });
      expect(r.ok ? r.value.status : `${r.error.code}: ${r.error.message}`).toBe('provisioned');
      const rec = eng.store.findCurrentRecord(w.sim.state(2).chipId)!;
      writeFileSync(
        join(w.dir, 'dev2.pem'),
        (JSON.parse(rec.recordJson) as { certificate: { pem: string } }).certificate.pem,
      );
      const end = (f: string) =>
        Date.parse(/notAfter=(.+)/.exec(openssl(['x509', '-in', f, '-noout', '-enddate']).out)![1]!);
      expect(end('dev2.pem')).toBe(end('ca.pem'));
      const audit = eng.store.listAudit().filter((a) => a.type === 'certificate.capped');
      expect(audit).toHaveLength(1);
      expect(audit[0]!.payload).toMatchObject({ certificateSerial: rec.certificateSerial, recordId: rec.recordId });
    } finally {
      await eng.close();
      await w.reopen();
    }
  });
});

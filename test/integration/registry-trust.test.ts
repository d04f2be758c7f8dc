/**
 * Attacks on the station <-> headquarters trust for CRL/OCSP signing (docs/lifecycle.md "Delegated revocation
 * signer", docs/sync.md "Transport"), with real parts: a development station (SoftHSM2, simulator ptys, SQLite),
 * the real registry on loopback (SoftHSM2 registry token), fake registries (node http/https servers on loopback
 * recording every byte they receive), a TLS terminator in front of the real registry, and openssl as the
 * independent checker.
 *
 * - a fake registry answering the delegation flow with its own signing key (even naming the real registry
 *   certificate in x5c): SYNC_REGISTRY_UNTRUSTED, nothing issued, the fake saw no admin token and no key
 *   material, config.json unchanged (not enrolled);
 * - a fake https registry with its own TLS certificate: SYNC_REGISTRY_UNTRUSTED at the handshake, no HTTP request
 *   reaches it;
 * - http:// to a non-loopback address: SYNC_INSECURE_URL at enroll, at engine open and at the HTTP client (no
 *   connection made);
 * - the real flow over https (pinned TLS certificate): delegation, devices provisioned and synced, one revoked at
 *   the registry; `openssl verify -crl_check -extended_crl` and `openssl ocsp` accept the delegate-signed CRL and
 *   OCSP answers against the station chain.
 */
import 'reflect-metadata';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { createCsr } from '../../core/pki/csr.js';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import {
  SIGNER_INSTALL_PATH,
  SIGNER_REQUEST_PATH,
  SIGNER_REQUEST_SCHEMA,
  SIGNER_REQUEST_TYP,
} from '../../core/hq/revocation-signer.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import { type RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { call } from '../../testkit/registry/harness.js';
import { main } from '../../station/cli/program.js';
import { CONFIG_FILE } from '../../station/config.js';
import { openEngine } from '../../station/engine.js';
import { RegistryRefusal, httpExchange } from '../../station/hq/transport.js';
import { createWorld, type World } from '../harness.js';

const ADMIN = 'admin-token-registry-trust-0123456789';
const WO = 'WO-DEMO-1';
let w: World;
let reg: RunningRegistry;
let registryHsm: HsmAdmin;
let regCertFile: string;

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w?.logText().slice(-4000)}`);
  return r.value;
};
const cli = async (args: string[]) => {
  const out: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, text: out.join('\n') };
};
const configText = () => readFileSync(join(w.dataDir, CONFIG_FILE), 'utf8');
const openssl = (args: string[]) => {
  const r = spawnSync('openssl', args, { cwd: w.dir, encoding: 'utf8', timeout: 20_000 });
  return `${r.stdout}${r.stderr}`;
};
/** A self-signed P-256 TLS certificate for 127.0.0.1 (PEM key and certificate). */
const tlsCert = (name: string): { key: string; cert: string; certFile: string } => {
  const key = join(w.dir, `${name}.key`);
  const certFile = join(w.dir, `${name}.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      certFile,
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '2',
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
};
const listen = (s: Server, host = '127.0.0.1'): Promise<number> =>
  new Promise((res) => s.listen(0, host, () => res((s.address() as AddressInfo).port)));

/** Everything a fake registry received. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: string;
  readonly body: string;
}

/**
 * A fake registry: answers the revocation signer request with a well-formed request for ITS OWN key, signed with
 * its own key (x5c: the real registry certificate, to look genuine); records every request.
 */
async function fakeRegistryHandler(realRegistryCert: Uint8Array, stationId: string) {
  const seen: Seen[] = [];
  const signer = await createTestSigner('P-256');
  const ownKey = await createTestSigner('P-256');
  const csr = must(await createCsr(ownKey, { commonName: 'revocation signer' }));
  const jws = must(
    await signJws({
      signer,
      payload: utf8(
        canonicalJson({
          schema: SIGNER_REQUEST_SCHEMA,
          registryId: 'registry-lc',
          stationId,
          requestId: globalThis.crypto.randomUUID(),
          csr: toBase64Url(csr),
          requestedAt: new Date().toISOString(),
        }),
      ),
      header: { typ: SIGNER_REQUEST_TYP, kid: 'registry-lc', x5c: [realRegistryCert] },
    }),
  );
  const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: JSON.stringify(req.headers),
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jws, requestId: 'x', repeated: false }));
    });
  };
  return { seen, handler };
}

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }] });
  const cfg = w.engine.config;
  // The registry token must live in the SoftHSM2 configuration the module was loaded with: the world's separate
  // "LS Offline Root" token stands in for it (as in test/integration/lifecycle.test.ts).
  const pin = readFileSync(join(w.dataDir, 'secrets', 'root-user.pin'), 'utf8').trim();
  registryHsm = must(await openHsm({ module: cfg.config.hsm.module, tokenLabel: 'LS Offline Root', pin }));
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'registry-lc',
    adminToken: ADMIN,
    lifecycle: { hsm: registryHsm, crlIntervalS: 600 },
  });
  regCertFile = join(w.dir, 'registry.pem');
  writeFileSync(regCertFile, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  must(
    await enrollStation(reg.context, {
      stationId: w.engine.station.id,
      chainPem: readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8'),
    }),
  );
}, 120_000);

afterAll(async () => {
  await reg?.close();
  await registryHsm?.close();
  await w?.teardown();
});

describe('registry trust: delegated revocation signer, pinning, transport', () => {
  it('a fake registry on loopback (its own key) gets nothing of value; the station stays not enrolled', async () => {
    const fake = await fakeRegistryHandler(reg.context.registryChain[0]!, w.engine.station.id);
    const server = createHttpServer(fake.handler);
    const port = await listen(server);
    const before = configText();
    const auditBefore = w.engine.store.listAudit().length;
    // The admin token is even in this process's environment (the old escrow read it from there): never sent.
    process.env['LINE_STATION_REGISTRY_ADMIN_TOKEN'] = ADMIN;
    try {
      const r = await cli([
        'enroll',
        '--data-dir',
        w.dataDir,
        '--registry',
        `http://127.0.0.1:${port}`,
        '--registry-cert',
        regCertFile,
        '--revocation-signer',
      ]);
      expect(r.code, r.text).toBe(3);
      expect(r.text).toMatch(/^SYNC_REGISTRY_UNTRUSTED: revocation signer request: .*registry certificate/m);
      expect(r.text).toContain('the station is NOT enrolled');
    } finally {
      delete process.env['LINE_STATION_REGISTRY_ADMIN_TOKEN'];
      await new Promise((res) => server.close(res));
    }
    // What the fake saw: one station-signed request with an empty body. No token, no key, no certificate.
    expect(fake.seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual([`POST ${SIGNER_REQUEST_PATH} {}`]);
    const everything = fake.seen.map((s) => `${s.headers}\n${s.body}`).join('\n');
    expect(everything).not.toContain(ADMIN);
    expect(everything).not.toMatch(/Bearer|PRIVATE KEY|BEGIN CERTIFICATE|wrappedKey|transportKey/);
    expect(fake.seen[0]!.headers).toMatch(/"authorization":"LS-Sig /);
    expect(fake.seen.some((s) => s.url === SIGNER_INSTALL_PATH)).toBe(false);
    console.log(
      `[figures] fake registry received ${fake.seen.length} request(s), ${Buffer.byteLength(everything)} bytes of headers+body (body: ${fake.seen[0]!.body.length} bytes)`,
    );
    // Not enrolled: config.json unchanged, nothing issued (audit), the engine has no registry.
    expect(configText()).toBe(before);
    await w.reopen();
    expect(w.engine.config.config.registry).toBeUndefined();
    const audit = w.engine.store.listAudit();
    expect(audit.length).toBe(auditBefore);
    expect(audit.some((a) => a.type.startsWith('revocation-signer.'))).toBe(false);
    expect((await cli(['sync', '--status', '--data-dir', w.dataDir])).text).toMatch(
      /registry \(none: offline\)|no registry/i,
    );
  });

  it('a fake https registry with another TLS certificate: refused at the handshake, no request reaches it', async () => {
    const pinned = tlsCert('pinned-tls');
    const other = tlsCert('fake-tls');
    const fake = await fakeRegistryHandler(reg.context.registryChain[0]!, w.engine.station.id);
    let handshakes = 0;
    const server = createHttpsServer({ key: other.key, cert: other.cert }, fake.handler);
    server.on('secureConnection', () => handshakes++);
    const port = await listen(server);
    const before = configText();
    try {
      const r = await cli([
        'enroll',
        '--data-dir',
        w.dataDir,
        '--registry',
        `https://127.0.0.1:${port}`,
        '--registry-cert',
        regCertFile,
        '--registry-tls-cert',
        pinned.certFile,
        '--revocation-signer',
      ]);
      expect(r.code, r.text).toBe(3);
      expect(r.text).toMatch(/^SYNC_REGISTRY_UNTRUSTED: the registry TLS certificate is not the pinned one/m);
    } finally {
      await new Promise((res) => server.close(res));
    }
    expect(fake.seen).toEqual([]);
    expect(handshakes).toBe(0); // the client aborted the handshake: not even a TLS session
    expect(configText()).toBe(before);
  });

  it('http:// to a non-loopback address is refused at enroll, at engine open and by the HTTP client', async () => {
    const before = configText();
    for (const url of ['http://192.0.2.10:8443', 'http://localhost:8443', 'http://10.0.0.1', 'https://192.0.2.10']) {
      const r = await cli(['enroll', '--data-dir', w.dataDir, '--registry', url, '--registry-cert', regCertFile]);
      expect([url, r.code]).toEqual([url, 3]);
      expect(r.text).toMatch(/^SYNC_INSECURE_URL: /m);
    }
    expect(configText()).toBe(before);

    // A config.json edited by hand: the engine refuses to open with it.
    const cfg = JSON.parse(before) as Record<string, unknown>;
    writeFileSync(
      join(w.dataDir, CONFIG_FILE),
      JSON.stringify({ ...cfg, registry: { url: 'http://192.0.2.10:8443', certificate: 'pki/registry.pem' } }),
    );
    writeFileSync(join(w.dataDir, 'pki', 'registry.pem'), readFileSync(regCertFile));
    await w.engine.close();
    try {
      const e = await openEngine({ dataDir: w.dataDir, logger: w.logger });
      expect(e.ok ? 'opened' : e.error.code).toBe('SYNC_INSECURE_URL');
    } finally {
      writeFileSync(join(w.dataDir, CONFIG_FILE), before);
      await w.reopen();
    }

    // Every call: the client refuses before connecting. A listener on this machine's own non-loopback address
    // (when it has one) sees no connection.
    const lan = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    let connections = 0;
    const server = createHttpServer(() => undefined);
    server.on('connection', () => connections++);
    const port = lan ? await listen(server, lan) : 9;
    try {
      const target = `http://${lan ?? '192.0.2.10'}:${port}/v1/health`;
      const e = await httpExchange(target, { method: 'GET', signal: AbortSignal.timeout(5000) }).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(RegistryRefusal);
      expect((e as RegistryRefusal).error.code).toBe('SYNC_INSECURE_URL');
      expect(connections).toBe(0);
    } finally {
      if (lan) await new Promise((res) => server.close(res));
    }
  });

  it('the real flow over pinned https: delegation, sync, revocation; openssl accepts the delegate CRL and OCSP', async () => {
    // TLS terminator in front of the registry (production runs it behind one: docs/registry-api.md).
    const tls = tlsCert('registry-tls');
    const proxy = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      const up = httpRequest(`${reg.url}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (u) => {
        res.writeHead(u.statusCode ?? 502, u.headers);
        u.pipe(res);
      });
      req.pipe(up);
    });
    const port = await listen(proxy);
    try {
      const t0 = performance.now();
      const r = await cli([
        'enroll',
        '--data-dir',
        w.dataDir,
        '--registry',
        `https://127.0.0.1:${port}`,
        '--registry-cert',
        regCertFile,
        '--registry-tls-cert',
        tls.certFile,
        '--revocation-signer',
      ]);
      const enrolMs = performance.now() - t0;
      expect(r.code, r.text).toBe(0);
      expect(r.text).toContain('revocation signer certified for registry registry-lc');
      console.log(`[figures] station enroll --revocation-signer over pinned https: ${enrolMs.toFixed(0)} ms`);
      await w.reopen();
      expect(w.engine.config.config.registry).toMatchObject({
        url: `https://127.0.0.1:${port}`,
        tlsCertificate: 'pki/registry-tls.pem',
      });
      const issued = w.engine.store.listAudit().find((a) => a.type === 'revocation-signer.issued')!;
      const signerPem = (issued.payload as { certificatePem: string }).certificatePem;

      // Devices provisioned and synced over https, then one revoked at the registry.
      for (let i = 0; i < 3; i++)
        must(await w.engine.provision({ port: w.sim.ports[i]!, workOrder: WO, operator: 'op-1' }));
      expect(must(await w.engine.sync!.syncOnce())).toMatchObject({ acknowledged: 3, pending: 0 });
      const recs = w.engine.store.listRecords();
      const certOf = (i: number) =>
        (JSON.parse(recs[i]!.recordJson) as { certificate: { pem: string } }).certificate.pem;
      const rv = await call(reg.url, 'POST', `/v1/devices/${recs[0]!.serialNumber}/revoke`, {
        bearer: ADMIN,
        body: { reason: 'keyCompromise' },
      });
      expect(rv.status, rv.text).toBe(200);

      // The station chain as a relying party has it, the delegated signer certificate, the CRL from the registry.
      const [caDer] = must(fromPemChain(readFileSync(join(w.dataDir, 'pki', 'ca-chain.pem'), 'utf8')));
      const caPem = toPem(caDer!, 'CERTIFICATE');
      const rootPem = readFileSync(join(w.dataDir, 'pki', 'root.pem'), 'utf8');
      writeFileSync(join(w.dir, 'root.pem'), rootPem);
      writeFileSync(join(w.dir, 'ca.pem'), caPem);
      writeFileSync(join(w.dir, 'signer.pem'), signerPem);
      writeFileSync(join(w.dir, 'untrusted.pem'), caPem + signerPem);
      const crl = await fetch(`${reg.url}/v1/crl/${w.engine.station.id}.crl`);
      expect(crl.status).toBe(200);
      writeFileSync(join(w.dir, 'crl.der'), Buffer.from(await crl.arrayBuffer()));
      openssl(['crl', '-in', 'crl.der', '-inform', 'DER', '-out', 'crl.pem']);
      const crlText = openssl(['crl', '-in', 'crl.pem', '-noout', '-text', '-CAfile', 'signer.pem']);
      expect(crlText).toContain('verify OK');
      expect(crlText).toContain('Key Compromise');
      // The CRL names the issuing CA as its issuer and is NOT signed with the CA key.
      expect(openssl(['crl', '-in', 'crl.pem', '-noout', '-CAfile', 'ca.pem'])).toMatch(/verify fail/);
      expect(openssl(['verify', '-CAfile', 'root.pem', '-untrusted', 'ca.pem', 'signer.pem'])).toContain(
        'signer.pem: OK',
      );

      const verify = (i: number, extended: boolean) => {
        writeFileSync(join(w.dir, `dev${i}.pem`), certOf(i));
        return openssl([
          'verify',
          '-crl_check',
          ...(extended ? ['-extended_crl'] : []),
          '-CAfile',
          'root.pem',
          '-untrusted',
          'untrusted.pem',
          '-CRLfile',
          'crl.pem',
          `dev${i}.pem`,
        ]);
      };
      expect(verify(0, true)).toContain('certificate revoked');
      expect(verify(1, true)).toContain('dev1.pem: OK');
      // Without -extended_crl openssl does not look for a CRL signer other than the CA: it finds no CRL.
      expect(verify(1, false)).toContain('unable to get certificate CRL');

      const ocsp = (i: number) =>
        new Promise<string>((res) =>
          execFile(
            'openssl',
            [
              'ocsp',
              '-issuer',
              'ca.pem',
              '-cert',
              `dev${i}.pem`,
              '-url',
              `${reg.url}/v1/ocsp`,
              '-CAfile',
              'root.pem',
              '-resp_text',
            ],
            { cwd: w.dir, timeout: 20_000 },
            (_e, out, err) => res(`${out}${err}`),
          ),
        );
      const o0 = await ocsp(0);
      expect(o0).toContain('Response verify OK');
      expect(o0).toMatch(/dev0.pem: revoked/);
      expect(o0).toContain('OCSP Signing'); // the delegated responder certificate travels in the response
      const o1 = await ocsp(1);
      expect(o1).toContain('Response verify OK');
      expect(o1).toMatch(/dev1.pem: good/);
    } finally {
      await new Promise((res) => proxy.close(res));
    }
  });
});

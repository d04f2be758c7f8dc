/**
 * Station commissioning at headquarters, through the real entry points: `registry init` (HQ CA key in the registry's
 * SoftHSM2 token), `registry commission-station` (codes, hand-carried requests), a real `registry serve` process
 * (POST /v1/stations/commission, GET /v1/hq/chain.pem, /v1/hq/ca.crl, OCSP), `registry revoke-station` and
 * `registry import`. Every certificate, CRL and OCSP property is checked with openssl. Attacks: stolen/replayed and
 * guessed enrolment codes (one generic refusal), a request tampered in transit, parallel use of one code, a crash
 * inside the commissioning transaction (nothing half-written), a backdated record of a revoked station.
 */
import 'reflect-metadata';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, toBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { DEFAULT_ORGANIZATION } from '../../core/hq/commission.js';
import { buildCommissionRequest, verifyCommissionAnswer } from '../../core/hq/commission-issue.js';
import { createBundle } from '../../core/hq/protocol.js';
import { systemClock } from '../../core/ports.js';
import { issueRevocationSignerCertificate } from '../../core/pki/ca.js';
import { createCrl } from '../../core/pki/crl.js';
import { fromPem, fromPemChain, toPem } from '../../core/pki/pem.js';
import { openRegistryDb } from '../../native/registry-store/index.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { main } from '../cli.js';
import { lifecycleSettings } from '../cli/open.js';
import { openRegistryKeys, readRegistryConfig } from '../setup/keys.js';
import { HQ_CA_KEY_LABEL } from '../setup/hq-ca.js';
import { startRegistry } from '../http/server.js';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { fixedClock, must } from '../../testkit/pki/test-util.js';
import { makeDevice, makeRecord, type TestStation } from '../../testkit/registry/fixtures.js';
import { delegateOverHttp } from '../../testkit/registry/lifecycle.js';
import {
  backends,
  call,
  createRegistryKeys,
  createTestDb,
  quietLogger,
  spawnServe,
} from '../../testkit/registry/harness.js';
import { issueEnrolmentCode } from './service.js';

const TOKEN = { manufacturer: 'SoftHSM project', model: 'SoftHSM v2', serial: 'test', label: 'station' };

async function cli(...args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await main(args, { log: (s) => lines.push(s), err: (s) => lines.push(s) });
  return { code, text: lines.join('\n') };
}

interface Candidate {
  readonly id: string;
  readonly caSigner: TestSigner;
  readonly stationSigner: TestSigner;
  readonly jws: string;
  readonly requestSha256: string;
  readonly requestId: string;
  readonly stationCertificate: Uint8Array;
}

/** A commissioned candidate as the registry fixtures' station (records, devices, bundles). */
function commissioned(c: Candidate, caDer: Uint8Array, hqChain: readonly Uint8Array[], workOrder: string): TestStation {
  const chain = [c.stationCertificate, caDer, ...hqChain];
  return { id: c.id, signer: c.stationSigner, caSigner: c.caSigner, chain, chainPem: '', workOrder };
}

/** A station's side of commissioning (keys in memory here; the station side in a token is station/commission). */
async function candidate(id: string): Promise<Candidate> {
  const caSigner = await createTestSigner('P-256');
  const stationSigner = await createTestSigner('P-256');
  const requestId = randomUUID();
  const b = must(
    await buildCommissionRequest({
      caSigner,
      stationSigner,
      stationId: id,
      organization: DEFAULT_ORGANIZATION,
      token: TOKEN,
      requestId,
      stationCertDays: 825,
      clock: systemClock,
    }),
  );
  return {
    id,
    caSigner,
    stationSigner,
    jws: b.jws,
    requestSha256: b.requestSha256,
    requestId,
    stationCertificate: b.stationCertificate,
  };
}

function opensslOk(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('commissioning against registry serve', () => {
  let D: string;
  let work: string;
  let serve: { child: ChildProcess; url: string; stderr(): string };
  let registryCert: Uint8Array;
  let hqRootSha256: string;
  const file = (name: string, content: string | Uint8Array) => {
    const p = join(work, name);
    writeFileSync(p, content);
    return p;
  };

  async function code(id: string, ...extra: string[]): Promise<string> {
    const r = await cli('commission-station', '--data-dir', D, '--id', id, '--json', ...extra);
    expect(r.code, r.text).toBe(0);
    return (JSON.parse(r.text) as { code: string }).code;
  }
  const post = (c: string, request: string) =>
    call(serve.url, 'POST', '/v1/stations/commission', { body: { code: c, request } });
  async function verified(c: Candidate, answer: string) {
    return verifyCommissionAnswer(answer, {
      pinnedSignerCert: registryCert,
      stationId: c.id,
      requestId: c.requestId,
      requestSha256: c.requestSha256,
      stationCertificate: c.stationCertificate,
      caPublicKeySpki: c.caSigner.publicKeySpki,
      hqRootSha256,
      now: new Date(),
    });
  }
  async function db<T>(fn: (x: RegistryDb) => Promise<T>) {
    const d = must(await openRegistryDb(`sqlite:${join(D, 'registry.db')}`));
    try {
      return await fn(d);
    } finally {
      await d.close();
    }
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ls-commission-'));
    D = join(work, 'registry');
    const init = await cli('init', '--data-dir', D, '--registry-id', 'hq-test');
    expect(init.code, init.text).toBe(0);
    expect(init.text).toContain('hq-root.pem');
    registryCert = must(fromPem(readFileSync(join(D, 'registry.pem'), 'utf8'), 'CERTIFICATE'));
    hqRootSha256 = await sha256Hex(must(fromPem(readFileSync(join(D, 'hq-root.pem'), 'utf8'), 'CERTIFICATE')));
    serve = await spawnServe(D);
  }, 60_000);

  afterAll(() => {
    serve?.child.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  });

  it('the HQ root is a CA certificate made in the token; GET /v1/hq/chain.pem serves the chain', async () => {
    const text = spawnSync('openssl', ['x509', '-in', join(D, 'hq-root.pem'), '-noout', '-text'], {
      encoding: 'utf8',
    }).stdout;
    expect(text).toMatch(/CA:TRUE/);
    expect(text).toContain('Subject: O = Line Station, CN = Line Station HQ CA hq-test');
    const r = await fetch(`${serve.url}/v1/hq/chain.pem`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe(readFileSync(join(D, 'hq-chain.pem'), 'utf8'));
  });

  it('a code is printed once and stored hashed (never in the database or the log)', async () => {
    const c = await code('line-code');
    expect(c).toMatch(/^LS(-[A-Z2-7]{4}){6}$/);
    const rows = await db((d) => d.sql.all('SELECT * FROM enrolment_codes WHERE station_id = ?', ['line-code']));
    expect(rows).toHaveLength(1);
    expect(rows[0]!['code_sha256']).toBe(await sha256Hex(c));
    expect(JSON.stringify(rows)).not.toContain(c);
    for (const f of readdirSync(join(D, 'logs'))) expect(readFileSync(join(D, 'logs', f), 'utf8')).not.toContain(c);
    expect(readFileSync(join(D, 'registry.db')).toString('latin1')).not.toContain(c);
  });

  describe('online, with a code', () => {
    let station: Candidate;
    let answer: string;
    let caDer: Uint8Array;
    let device: { der: Uint8Array };
    /** The station CRL signed with the station CA key itself, and one signed by a delegated revocation signer. */
    let stationCrl: Uint8Array;
    let delegatedCrl: Uint8Array;
    let signerDer: Uint8Array;

    beforeAll(async () => {
      station = await candidate('line-1');
      const c = await code('line-1', '--work-orders', 'WO-C1');
      const r = await post(c, station.jws);
      expect(r.status, r.text).toBe(201);
      answer = (r.json as { answer: string }).answer;
      // A retry after a lost answer (same request, same code): the stored answer, nothing new.
      const again = await post(c, station.jws);
      expect(again.status).toBe(200);
      expect((again.json as { answer: string }).answer).toBe(answer);
      const v = must(await verified(station, answer));
      caDer = v.caCertificate;
      expect(v.answer.workOrders).toEqual(['WO-C1']);
      // The station's first device certificate, and its station CRL signed by its delegated revocation signer.
      const ts = commissioned(station, caDer, v.hqChain, 'WO-C1');
      device = (await makeDevice(ts, systemClock)).cert;
      const rs = await createTestSigner('P-256');
      signerDer = must(
        await issueRevocationSignerCertificate({
          issuer: { signer: station.caSigner, certificate: caDer },
          subjectPublicKeySpki: rs.publicKeySpki,
          validityDays: 30,
          clock: systemClock,
        }),
      ).der;
      const now = new Date();
      stationCrl = must(
        await createCrl({
          signer: station.caSigner,
          issuerCertificate: caDer,
          thisUpdate: now,
          nextUpdate: new Date(now.getTime() + 3_600_000),
          crlNumber: 1,
          entries: [],
        }),
      );
      delegatedCrl = must(
        await createCrl({
          signer: rs,
          issuerCertificate: signerDer,
          thisUpdate: now,
          nextUpdate: new Date(now.getTime() + 3_600_000),
          crlNumber: 1,
          entries: [],
        }),
      );
    });

    const hqCrl = async () => {
      const r = await fetch(`${serve.url}/v1/hq/ca.crl`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/pkix-crl');
      return file('hq.crl.pem', toPem(new Uint8Array(await r.arrayBuffer()), 'X509 CRL'));
    };
    /** The whole path at once: -crl_check_all with the HQ CRL and a station CRL signed by the station CA key. */
    const verifyDevice = async () =>
      opensslOk([
        'verify',
        '-crl_check_all',
        '-extended_crl',
        '-CAfile',
        join(D, 'hq-root.pem'),
        '-untrusted',
        file('untrusted.pem', toPem(caDer, 'CERTIFICATE')),
        '-CRLfile',
        await hqCrl(),
        '-CRLfile',
        file('station.crl.pem', toPem(stationCrl, 'X509 CRL')),
        file('device.pem', toPem(device.der, 'CERTIFICATE')),
      ]);
    /**
     * With the registry's delegated station CRL (docs/lifecycle.md "What relying parties run"): the station CA
     * against the HQ CRL, then the device against the delegated CRL (-crl_check each: OpenSSL does not validate a
     * CRL signer's own CRL path recursively, so -crl_check_all cannot take a delegated CRL).
     */
    const verifyTwoSteps = async () => {
      const ca = opensslOk([
        'verify',
        '-crl_check',
        '-CAfile',
        join(D, 'hq-root.pem'),
        '-CRLfile',
        await hqCrl(),
        file('sca.pem', toPem(caDer, 'CERTIFICATE')),
      ]);
      const dev = opensslOk([
        'verify',
        '-crl_check',
        '-extended_crl',
        '-CAfile',
        join(D, 'hq-root.pem'),
        '-untrusted',
        file('ca-and-signer.pem', toPem(caDer, 'CERTIFICATE') + toPem(signerDer, 'CERTIFICATE')),
        '-CRLfile',
        file('delegated.crl.pem', toPem(delegatedCrl, 'X509 CRL')),
        file('device.pem', toPem(device.der, 'CERTIFICATE')),
      ]);
      return { ca, dev };
    };
    const ocspStationCa = () =>
      opensslOk([
        'ocsp',
        '-issuer',
        join(D, 'hq-root.pem'),
        '-cert',
        file('sca.pem', toPem(caDer, 'CERTIFICATE')),
        '-url',
        `${serve.url}/v1/ocsp`,
        '-CAfile',
        join(D, 'hq-root.pem'),
      ]);

    it('the station is enrolled with the full chain and shown HQ-certified', async () => {
      const r = await cli('stations', '--data-dir', D, '--json');
      const s = (
        JSON.parse(r.text) as {
          stations: Array<{ stationId: string; hqCertified: boolean; certificateSha256: string }>;
        }
      ).stations.find((x) => x.stationId === 'line-1')!;
      expect(s.hqCertified).toBe(true);
      expect(s.certificateSha256).toBe(await sha256Hex(station.stationCertificate));
      const rows = await db((d) => d.sql.all('SELECT * FROM station_cas WHERE station_id = ?', ['line-1']));
      expect(rows).toHaveLength(1);
      expect(must(fromPem(String(rows[0]!['certificate_pem']), 'CERTIFICATE'))).toEqual(caDer);
    });

    it('openssl -crl_check_all with the HQ root and the HQ CRL accepts the device; OCSP says good', async () => {
      const v = await verifyDevice();
      expect(v.status, v.out).toBe(0);
      const two = await verifyTwoSteps();
      expect(two.ca.status, two.ca.out).toBe(0);
      expect(two.dev.status, two.dev.out).toBe(0);
      const o = ocspStationCa();
      expect(o.status, o.out).toBe(0);
      expect(o.out).toMatch(/sca\.pem: good/);
      expect(o.out).toMatch(/Response verify OK/);
    });

    it('revoke-station revokes the station CA: the HQ CRL lists it, openssl rejects the device, OCSP says revoked, ingest refuses', async () => {
      const ts = commissioned(station, caDer, fromPemChainOf(D), 'WO-C1');
      const before = await makeRecord(ts, systemClock);
      const beforeTime = new Date();
      await new Promise((r) => setTimeout(r, 1100)); // revocation strictly after what was made before it
      const rv = await cli('revoke-station', '--data-dir', D, 'line-1', '--reason', 'keyCompromise');
      expect(rv.code, rv.text).toBe(0);
      const crlText = opensslOk(['crl', '-in', await hqCrl(), '-noout', '-text']).out;
      expect(crlText).toContain('Issuer: O = Line Station, CN = Line Station HQ CA hq-test');
      expect(crlText).toMatch(/X509v3 CRL Number:\s+2/);
      expect(crlText).toMatch(/Key Compromise/);
      const v = await verifyDevice();
      expect(v.status).not.toBe(0);
      expect(v.out).toMatch(/error 23 at 1 depth lookup: certificate revoked/);
      const two = await verifyTwoSteps();
      expect(two.ca.status).not.toBe(0);
      expect(two.ca.out).toMatch(/certificate revoked/);
      const o = ocspStationCa();
      expect(o.out).toMatch(/sca\.pem: revoked/);
      expect(o.out).toMatch(/Reason: keyCompromise/);
      expect(o.out).toMatch(/Response verify OK/);

      // Online: the revoked station is refused.
      const batch = await call(serve.url, 'POST', '/v1/batches', {
        body: { batchId: randomUUID(), records: [before.jws] },
        station: ts,
      });
      expect(batch.status).toBe(403);
      expect((batch.json as { error: { code: string } }).error.code).toBe('AUTH_STATION_REVOKED');
      // A bundle imported by the admin: the record made before is taken in; one completed after, and one that
      // claims an earlier completedAt but carries a device certificate issued after the revocation, are refused.
      const after = await makeRecord(ts, systemClock);
      const backdated = await makeRecord(ts, fixedClock(beforeTime), { device: await makeDevice(ts, systemClock) });
      const bundle = must(
        await createBundle({
          signer: station.stationSigner,
          chain: ts.chain,
          stationId: 'line-1',
          records: [before.jws, after.jws, backdated.jws],
          clock: systemClock,
        }),
      );
      const bf = file('line-1.bundle', bundle.jws);
      const imp = await cli('import', '--data-dir', D, bf, '--allow-revoked-station', '--json');
      expect(imp.code, imp.text).toBe(1);
      const res = (JSON.parse(imp.text) as { results: Array<{ recordId: string; status: string; reason?: string }> })
        .results;
      expect(res.find((x) => x.recordId === before.recordId)?.status).toBe('accepted');
      expect(res.find((x) => x.recordId === after.recordId)?.reason).toBe('STATION_REVOKED');
      expect(res.find((x) => x.recordId === backdated.recordId)?.reason).toBe('STATION_REVOKED');
    }, 60_000);
  });

  it('attack: guessed, replayed, expired and other-station codes get ONE generic refusal (no oracle)', async () => {
    const a = await candidate('line-a');
    const used = await code('line-a');
    expect((await post(used, a.jws)).status).toBe(201);
    const b = await candidate('line-b');
    const codeB = await code('line-b');
    const expired = await code('line-b');
    const expiredSha = await sha256Hex(expired);
    await db((d) =>
      d.sql.run('UPDATE enrolment_codes SET expires_at = ? WHERE code_sha256 = ?', [
        '2000-01-01T00:00:00.000Z',
        expiredSha,
      ]),
    );
    const other = await candidate('line-a2');
    const answers = [
      await post('LS-AAAA-BBBB-CCCC-DDDD-EEEE-FFFF', b.jws), // guessed
      await post(used, (await candidate('line-a')).jws), // stolen after use, another key pair
      await post(expired, b.jws), // expired
      await post(codeB, other.jws), // line-b's code for another station
      await post('not a code', b.jws),
    ];
    for (const r of answers) {
      expect(r.status).toBe(403);
      expect(r.json).toEqual(answers[0]!.json);
    }
    expect((answers[0]!.json as { error: { code: string } }).error.code).toBe('COMMISSION_REFUSED');
    // line-b's code still works for line-b.
    expect((await post(codeB, b.jws)).status).toBe(201);
  });

  it('attack: a request tampered in transit is refused and the code stays usable', async () => {
    const s = await candidate('line-t');
    const c = await code('line-t');
    const [h, p, sig] = s.jws.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = `${h}.${toBase64Url(utf8(canonicalJson({ ...payload, organization: 'Evil Corp' })))}.${sig}`;
    const r = await post(c, forged);
    expect(r.status).toBe(422);
    expect((r.json as { error: { code: string; message: string } }).error.message).toMatch(
      /COMMISSION_SIGNATURE_INVALID/,
    );
    const rows = await db(async (d) =>
      d.sql.all('SELECT used_at FROM enrolment_codes WHERE code_sha256 = ?', [await sha256Hex(c)]),
    );
    expect(rows[0]!['used_at']).toBeNull();
    expect((await post(c, s.jws)).status).toBe(201);
  });

  it('parallel requests with one code (real HTTP, different key pairs and the same request) give exactly one station', async () => {
    const c = await code('line-par');
    const many = await Promise.all(Array.from({ length: 6 }, () => candidate('line-par')));
    const first = many[0]!;
    const answers = await Promise.all([...many.map((m) => post(c, m.jws)), post(c, first.jws), post(c, first.jws)]);
    const won = answers.filter((r) => r.status === 201);
    expect(won).toHaveLength(1);
    for (const r of answers) expect([200, 201, 403]).toContain(r.status);
    const rows = await db((d) => d.sql.all('SELECT * FROM station_cas WHERE station_id = ?', ['line-par']));
    expect(rows).toHaveLength(1);
    // The one station enrolled is the winner's: its certificate is the one in the stored answer's request.
    const st = must(await db((d) => d.getStation('line-par')))!;
    const winner = [...many, first].find((m) => m.requestSha256 === String(rows[0]!['request_sha256']))!;
    expect(st.certificateSha256).toBe(await sha256Hex(winner.stationCertificate));
  });

  it('hand-carried: commission-station --request R --out A prints the request hash; a re-run gives the same answer', async () => {
    const s = await candidate('line-h');
    const req = file('line-h.request', s.jws);
    const out = join(work, 'line-h.answer');
    const r = await cli(
      'commission-station',
      '--data-dir',
      D,
      '--id',
      'line-h',
      '--request',
      req,
      '--out',
      out,
      '--work-orders',
      'WO-H',
    );
    expect(r.code, r.text).toBe(0);
    expect(r.text).toContain(`request sha256 ${s.requestSha256}`);
    const answer = readFileSync(out, 'utf8').trim();
    must(await verified(s, answer));
    const again = await cli('commission-station', '--data-dir', D, '--id', 'line-h', '--request', req, '--out', out);
    expect(again.code).toBe(0);
    expect(again.text).toContain('already commissioned with this request');
    expect(readFileSync(out, 'utf8').trim()).toBe(answer);
    // The request of another station id: refused.
    const wrong = await cli('commission-station', '--data-dir', D, '--id', 'line-x', '--request', req, '--out', out);
    expect(wrong.code).toBe(1);
    expect(wrong.text).toMatch(/COMMISSION_SUBJECT_MISMATCH/);
  });

  it('invariant: every station CA issued is in station_cas, one per commissioned station, each with its event', async () => {
    await db(async (d) => {
      const cas = await d.sql.all('SELECT station_id FROM station_cas ORDER BY station_id');
      const events = await d.sql.all(`SELECT payload FROM lifecycle_events WHERE type = 'station.commissioned'`);
      expect(events.length).toBe(cas.length);
      const used = await d.sql.all('SELECT station_id FROM enrolment_codes WHERE used_at IS NOT NULL');
      for (const u of used) expect(cas.map((c) => c['station_id'])).toContain(u['station_id']);
    });
  });
});

/** The HQ chain of a data dir (HQ CA first, root last). */
function fromPemChainOf(dir: string): Uint8Array[] {
  return must(fromPemChain(readFileSync(join(dir, 'hq-chain.pem'), 'utf8')));
}

for (const backend of backends()) {
  describe(`commissioning in one transaction (${backend})`, () => {
    it('a crash leaves nothing half-written; the same request then commissions; a revocation reaches the HQ CRL', async () => {
      const keys = await createRegistryKeys();
      const tdb = await createTestDb(backend);
      const cfg = must(readRegistryConfig(keys.dataDir));
      let crash = true;
      const lc = lifecycleSettings(cfg, keys).lifecycle;
      const reg = must(
        await startRegistry({
          db: tdb.url,
          port: 0,
          signer: keys.signer,
          registryChain: keys.chain,
          registryId: cfg.registryId,
          adminToken: keys.adminToken,
          clock: systemClock,
          logger: quietLogger,
          lifecycle: {
            ...lc,
            failpoint: (p) => {
              if (p === 'commission' && crash) throw new Error('crash at commission');
            },
          },
        }),
      );
      try {
        const c = must(
          await issueEnrolmentCode(reg.context, { stationId: 'line-crash', workOrders: ['WO-1'], validHours: 1 }),
        ).code;
        const s = await candidate('line-crash');
        const r = await call(reg.url, 'POST', '/v1/stations/commission', { body: { code: c, request: s.jws } });
        expect(r.status).toBe(503);
        const x = reg.db.sql;
        expect(await x.all('SELECT * FROM station_cas')).toHaveLength(0);
        expect(must(await reg.db.getStation('line-crash'))).toBeNull();
        expect((await x.all('SELECT used_at FROM enrolment_codes'))[0]!['used_at']).toBeNull();
        expect(await x.all(`SELECT * FROM lifecycle_events WHERE type = 'station.commissioned'`)).toHaveLength(0);
        crash = false;
        const ok2 = await call(reg.url, 'POST', '/v1/stations/commission', { body: { code: c, request: s.jws } });
        expect(ok2.status).toBe(201);
        const cas = await x.all('SELECT * FROM station_cas');
        expect(cas).toHaveLength(1);
        expect(must(await reg.db.getStation('line-crash'))!.workOrders).toEqual(['WO-1']);
        // The station certifies the registry's delegated revocation signer (the station's function), so the
        // registry signs its CRL; openssl -crl_check_all takes it with the HQ-certified CRL signer certificate.
        const hqChain = must(fromPemChain(readFileSync(join(keys.dataDir, 'hq-chain.pem'), 'utf8')));
        const caDer = must(fromPem(String(cas[0]!['certificate_pem']), 'CERTIFICATE'));
        const ts = commissioned(s, caDer, hqChain, 'WO-1');
        await delegateOverHttp(reg, { ...ts, caLabel: '', ca: caDer, root: hqChain[hqChain.length - 1]! });
        const device = (await makeDevice(ts, systemClock)).cert.der;
        const dir = mkdtempSync(join(tmpdir(), 'ls-hqcrl-'));
        const get = async (path: string) => {
          const res = await fetch(`${reg.url}${path}`);
          expect(res.status, path).toBe(200);
          return new Uint8Array(await res.arrayBuffer());
        };
        const verifyAll = async () => {
          writeFileSync(join(dir, 'hq.crl.pem'), toPem(await get('/v1/hq/ca.crl'), 'X509 CRL'));
          writeFileSync(join(dir, 'station.crl.pem'), toPem(await get('/v1/crl/line-crash.crl'), 'X509 CRL'));
          const signer = new TextDecoder().decode(await get('/v1/hq/crl-signer/line-crash.pem'));
          writeFileSync(join(dir, 'untrusted.pem'), toPem(caDer, 'CERTIFICATE') + signer);
          writeFileSync(join(dir, 'device.pem'), toPem(device, 'CERTIFICATE'));
          return opensslOk([
            'verify',
            '-crl_check_all',
            '-extended_crl',
            '-CAfile',
            join(keys.dataDir, 'hq-root.pem'),
            '-untrusted',
            join(dir, 'untrusted.pem'),
            '-CRLfile',
            join(dir, 'hq.crl.pem'),
            '-CRLfile',
            join(dir, 'station.crl.pem'),
            join(dir, 'device.pem'),
          ]);
        };
        const good = await verifyAll();
        expect(good.status, good.out).toBe(0);
        // The admin route revokes the station and its CA; the HQ CRL (openssl) lists the CA's serial.
        const rv = await call(reg.url, 'POST', '/v1/admin/stations/line-crash/revoke', {
          body: { reason: 'cessationOfOperation' },
          bearer: keys.adminToken,
        });
        expect(rv.status, rv.text).toBe(200);
        const revoked = await verifyAll();
        expect(revoked.status).not.toBe(0);
        expect(revoked.out).toMatch(/error 23 at 1 depth lookup: certificate revoked/);
        const crl = await get('/v1/hq/ca.crl');
        try {
          writeFileSync(join(dir, 'hq.crl'), crl);
          const text = opensslOk(['crl', '-inform', 'DER', '-in', join(dir, 'hq.crl'), '-noout', '-text']).out;
          expect(text.toLowerCase()).toContain(String(cas[0]!['serial']).toLowerCase());
          expect(text).toMatch(/Cessation Of Operation/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      } finally {
        await reg.close();
        await keys.cleanup();
        await tdb.cleanup();
      }
    }, 60_000);
  });
}

describe('the HQ CA of a data dir', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ls-hqca-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const sh = (args: string[]) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8', cwd: work });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  it('registry init makes the HQ CA key in the registry token: sensitive, not extractable', async () => {
    const D = join(work, 'attrs');
    expect((await cli('init', '--data-dir', D)).code).toBe(0);
    const keys = must(await openRegistryKeys(D, quietLogger));
    try {
      const k = must(await keys.hsm.findKey(HQ_CA_KEY_LABEL));
      expect(k).toMatchObject({ class: 'private', sensitive: true, extractable: false });
      expect(must(keys.hqCa).chain).toHaveLength(1);
    } finally {
      await keys.close();
    }
  }, 60_000);

  it('a data dir without one says what to run; hq-ca init makes it', async () => {
    const D = join(work, 'old');
    expect((await cli('init', '--data-dir', D)).code).toBe(0);
    rmSync(join(D, 'hq-chain.pem'));
    const s = await candidate('line-old');
    const req = join(work, 'old.request');
    writeFileSync(req, s.jws);
    const handCarried = () =>
      cli(
        'commission-station',
        '--data-dir',
        D,
        '--id',
        'line-old',
        '--request',
        req,
        '--out',
        join(work, 'old.answer'),
      );
    const r = await handCarried();
    expect(r.code).not.toBe(0);
    expect(r.text).toMatch(/HQ_CA_UNAVAILABLE/);
    expect(r.text).toMatch(/registry hq-ca init/);
    expect((await cli('hq-ca', 'init', '--data-dir', D)).code).toBe(0);
    expect(existsSync(join(D, 'hq-chain.pem'))).toBe(true);
    const ok2 = await handCarried();
    expect(ok2.code, ok2.text).toBe(0);
  }, 60_000);

  it('the offline-root ceremony: request, sign with openssl, install; stations chain to the offline root', async () => {
    const D = join(work, 'prod');
    expect((await cli('init', '--data-dir', D, '--registry-id', 'hq-prod')).code).toBe(0);
    const req = await cli('hq-ca', 'request', '--data-dir', D, '--out', join(work, 'hq-ca.csr'));
    expect(req.code, req.text).toBe(0);
    sh([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-subj',
      '/O=Line Station/CN=Offline Root',
      '-keyout',
      'root.key',
      '-out',
      'root.pem',
      '-days',
      '3650',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    writeFileSync(
      join(work, 'ext.cnf'),
      'basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    sh([
      'x509',
      '-req',
      '-in',
      'hq-ca.csr',
      '-CA',
      'root.pem',
      '-CAkey',
      'root.key',
      '-days',
      '1825',
      '-extfile',
      'ext.cnf',
      '-out',
      'hq-ca.pem',
    ]);
    // Another key's certificate (the same root): refused, nothing replaced.
    sh([
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=intruder',
      '-keyout',
      'x.key',
      '-out',
      'x.csr',
    ]);
    sh([
      'x509',
      '-req',
      '-in',
      'x.csr',
      '-CA',
      'root.pem',
      '-CAkey',
      'root.key',
      '-days',
      '10',
      '-extfile',
      'ext.cnf',
      '-out',
      'x.pem',
    ]);
    writeFileSync(
      join(work, 'bad-chain.pem'),
      readFileSync(join(work, 'x.pem'), 'utf8') + readFileSync(join(work, 'root.pem'), 'utf8'),
    );
    const devRoot = readFileSync(join(D, 'hq-root.pem'), 'utf8');
    const bad = await cli('hq-ca', 'install', '--data-dir', D, '--chain', join(work, 'bad-chain.pem'));
    expect(bad.code).toBe(1);
    expect(bad.text).toMatch(/not for the HQ CA key/);
    expect(readFileSync(join(D, 'hq-root.pem'), 'utf8')).toBe(devRoot);
    writeFileSync(
      join(work, 'chain.pem'),
      readFileSync(join(work, 'hq-ca.pem'), 'utf8') + readFileSync(join(work, 'root.pem'), 'utf8'),
    );
    const inst = await cli('hq-ca', 'install', '--data-dir', D, '--chain', join(work, 'chain.pem'));
    expect(inst.code, inst.text).toBe(0);
    expect(readFileSync(join(D, 'hq-root.pem'), 'utf8')).toBe(readFileSync(join(work, 'root.pem'), 'utf8'));
    // A station commissioned now chains station cert -> station CA -> HQ CA -> offline root (openssl).
    const s = await candidate('line-prod');
    writeFileSync(join(work, 'prod.request'), s.jws);
    const r = await cli(
      'commission-station',
      '--data-dir',
      D,
      '--id',
      'line-prod',
      '--request',
      join(work, 'prod.request'),
      '--out',
      join(work, 'prod.answer'),
    );
    expect(r.code, r.text).toBe(0);
    const v = must(
      await verifyCommissionAnswer(readFileSync(join(work, 'prod.answer'), 'utf8').trim(), {
        pinnedSignerCert: must(fromPem(readFileSync(join(D, 'registry.pem'), 'utf8'), 'CERTIFICATE')),
        stationId: 'line-prod',
        requestId: s.requestId,
        requestSha256: s.requestSha256,
        stationCertificate: s.stationCertificate,
        hqRootSha256: await sha256Hex(must(fromPem(readFileSync(join(work, 'root.pem'), 'utf8'), 'CERTIFICATE'))),
        now: new Date(),
      }),
    );
    expect(v.hqChain).toHaveLength(2);
    writeFileSync(
      join(work, 'untrusted.pem'),
      toPem(v.caCertificate, 'CERTIFICATE') + toPem(v.hqChain[0]!, 'CERTIFICATE'),
    );
    writeFileSync(join(work, 'station.pem'), toPem(s.stationCertificate, 'CERTIFICATE'));
    expect(sh(['verify', '-CAfile', 'root.pem', '-untrusted', 'untrusted.pem', 'station.pem'])).toMatch(
      /station\.pem: OK/,
    );
    // The registry takes the 4-certificate chain for ingest.
    const st = await cli('stations', '--data-dir', D, '--json');
    expect(st.text).toContain('"hqCertified": true');
  }, 90_000);
});

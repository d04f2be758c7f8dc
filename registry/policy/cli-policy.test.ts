/**
 * The registry lifecycle CLI's role flag and policy settings, per backend (SQLite; PostgreSQL with
 * LINE_STATION_TEST_PG_URL), in a temp data dir with its real SoftHSM2 registry token: `--as security-officer`
 * proven by its token (refused without it, with a wrong one, for admin-only commands, and for transitions the
 * table refuses, with the same codes as over HTTP), the acting role in the event log, `policy show/set` (firmware,
 * profile overrides, lifetimes, dry run, invalid input, --json), and short-lived certificates: a device re-enrols
 * over HTTP after `policy set --cert-lifetime 3h --rotate-before 1h` and openssl reads the lifetime back.
 */
import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url } from '../../core/bytes.js';
import { systemClock } from '../../core/ports.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner, type TestSigner } from '../../testkit/pki/test-signer.js';
import { must } from '../../testkit/pki/test-util.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { initToken, type SoftHsmEnv } from '../../native/softhsm-dev.js';
import { main } from '../cli.js';
import { openRegistryKeys, readRegistryConfig, type RegistryKeys } from '../setup/keys.js';
import { startRegistry, type RunningRegistry } from '../http/server.js';
import { makeRecord } from '../../testkit/registry/fixtures.js';
import { backends, call, createTestDb, quietLogger, type TestDb } from '../../testkit/registry/harness.js';
import { TOKEN_ENV } from '../cli/command.js';
import { verifyQuotas } from '../../core/hq/policy.js';
import { lifecycleSettings } from '../cli/open.js';
import { formatDuration, parseDuration } from './commands.js';
import { createHsmStation, delegateOverHttp, type HsmStation } from '../../testkit/registry/lifecycle.js';

const PIN = 'station-PIN-1357';
const WO = 'WO-POL-1';
const D1 = 'a'.repeat(64);
const D2 = 'b'.repeat(64);

async function cli(...args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await main(args, { log: (s) => lines.push(s), err: (s) => lines.push(s) });
  return { code, text: lines.join('\n') };
}

type PolicyJson = {
  version: number;
  policy: {
    version: number;
    firmware: Record<string, string[]>;
    profileOverrides: Record<string, unknown>;
    reenrollment: { certificateLifetimeSeconds: number; rotateBeforeSeconds: number };
  };
};

describe('DURATION', () => {
  it('parses <n>d / <n>h within 1h .. 100 years and prints the largest exact unit', () => {
    expect(parseDuration('3h')).toBe(10_800);
    expect(parseDuration('2d')).toBe(172_800);
    expect(parseDuration('36500d')).toBe(36_500 * 86_400);
    for (const bad of ['0h', '30m', '36501d', '1.5h', 'h', '-1d', '876001h', '']) expect(parseDuration(bad)).toBeNull();
    expect([formatDuration(86_400), formatDuration(7200), formatDuration(90)]).toEqual(['1d', '2h', '90s']);
  });
});

for (const backend of backends()) {
  describe(`registry CLI roles and policy (${backend})`, () => {
    let work: string;
    let D: string;
    let tdb: TestDb | null = null;
    let stationHsm: HsmAdmin;
    let station: HsmStation;
    let keys: RegistryKeys;
    let reg: RunningRegistry;
    let ADMIN: string;
    let OFFICER: string;
    const devices: { serial: string; key: TestSigner; pem: string }[] = [];
    const file = (name: string, body: string) => {
      writeFileSync(join(work, name), body);
      return join(work, name);
    };
    const history = async (serial: string) =>
      JSON.parse((await cli('history', serial, '--json', '--data-dir', D)).text) as {
        state: string;
        events: { type: string; actor?: string }[];
      };
    const show = async () => JSON.parse((await cli('policy', 'show', '--json', '--data-dir', D)).text) as PolicyJson;

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'ls-lc-pol-'));
      D = join(work, 'reg');
      const db: string[] = [];
      if (backend === 'postgres') {
        tdb = await createTestDb('postgres');
        db.push('--db', tdb.url);
      }
      expect((await cli('init', '--data-dir', D, '--registry-id', `reg-pol-${backend}`, ...db)).code).toBe(0);
      const cfg = must(readRegistryConfig(D));
      const env: SoftHsmEnv = {
        conf: join(D, 'hsm', 'softhsm2.conf'),
        tokenDir: join(D, 'hsm', 'tokens'),
        module: cfg.hsm.module,
      };
      process.env['SOFTHSM2_CONF'] = env.conf;
      must(await initToken(env, { label: 'station', soPin: 'so-pin-0000', pin: PIN }));
      stationHsm = must(await openHsm({ module: env.module, tokenLabel: 'station', pin: PIN }));
      station = await createHsmStation(stationHsm, `st-pol-${backend}`, { workOrder: WO });
      writeFileSync(join(work, 'chain.pem'), station.chainPem);
      writeFileSync(join(work, 'ca.pem'), toPem(station.ca, 'CERTIFICATE'));
      const e = await cli('enroll-station', '--data-dir', D, '--id', station.id, '--chain', join(work, 'chain.pem'));
      expect(e.code, e.text).toBe(0);
      // The serving registry of this data dir, in this process.
      keys = must(await openRegistryKeys(D, quietLogger));
      ADMIN = keys.adminToken;
      OFFICER = keys.securityOfficerToken;
      const lc = lifecycleSettings(cfg, keys);
      reg = must(
        await startRegistry({
          db: tdb?.url ?? cfg.db,
          port: 0,
          signer: keys.signer,
          registryChain: keys.chain,
          registryId: cfg.registryId,
          adminToken: ADMIN,
          clock: systemClock,
          logger: quietLogger,
          lifecycle: lc.lifecycle,
          crlRefreshS: lc.crlRefreshS,
        }),
      );
      await delegateOverHttp(reg, station);
      const records: string[] = [];
      for (let i = 0; i < 2; i++) {
        const key = await createTestSigner('P-256');
        const m = await makeRecord(station, systemClock, {
          serialNumber: `POL-${backend}-${i}`,
          workOrder: WO,
          deviceKey: key,
        });
        devices.push({ serial: m.record.board.serialNumber, key, pem: m.record.certificate.pem });
        records.push(m.jws);
      }
      const b = await call(reg.url, 'POST', '/v1/batches', {
        station,
        body: { batchId: globalThis.crypto.randomUUID(), records },
      });
      expect(b.status, b.text).toBe(200);
    });

    afterAll(async () => {
      delete process.env[TOKEN_ENV];
      await reg?.close();
      await keys?.close();
      await stationHsm?.close();
      await tdb?.cleanup();
      rmSync(work, { recursive: true, force: true });
    });

    it('--as security-officer needs its token; refusals carry the same codes as over HTTP; the log shows the role', async () => {
      const dev = devices[0]!.serial;
      const so = ['--as', 'security-officer', '--data-dir', D];
      delete process.env[TOKEN_ENV];
      const none = await cli('suspend', dev, '--reason', 'audit', ...so);
      expect(none.code).toBe(1);
      expect(none.text).toMatch(/AUTH_REQUIRED: acting as the security officer needs its token/);
      const wrong = await cli(
        'suspend',
        dev,
        '--reason',
        'audit',
        ...so,
        '--token-file',
        file('w.token', 'x'.repeat(43)),
      );
      expect(wrong.code).toBe(1);
      expect(wrong.text).toMatch(/AUTH_FORBIDDEN: .*not this registry's security officer token/);
      const admin = await cli('suspend', dev, '--reason', 'audit', ...so, '--token-file', file('a.token', ADMIN));
      expect(admin.code).toBe(1);
      expect(admin.text).toMatch(/AUTH_FORBIDDEN: that is the admin token/);
      expect((await cli('suspend', dev, '--reason', 'audit', '--as', 'boss', '--data-dir', D)).code).toBe(2);
      expect((await cli('stats', ...so, '--token-file', file('s.token', OFFICER))).code).toBe(1);
      expect((await history(dev)).state).toBe('provisioned'); // nothing changed so far

      // Allowed: token from the file, then from the environment.
      const sus = await cli('suspend', dev, '--reason', 'audit', ...so, '--token-file', join(work, 's.token'));
      expect(sus.code, sus.text).toBe(0);
      process.env[TOKEN_ENV] = OFFICER;
      try {
        const res = await cli('resume', dev, '--json', ...so);
        expect(res.code, res.text).toBe(0);
        expect(JSON.parse(res.text)).toMatchObject({ state: 'activated' });
        // A transition the table refuses: the same code from the CLI and over HTTP.
        const again = await cli('resume', dev, ...so);
        expect(again.code).toBe(1);
        const http = await call(reg.url, 'POST', `/v1/devices/${dev}/resume`, { bearer: OFFICER, body: {} });
        expect(http.status).toBe(409);
        const code = (http.json as { error: { code: string } }).error.code;
        expect(code).toBe('LIFECYCLE_TRANSITION_INVALID');
        expect(again.text).toContain(`error ${code}:`);
        // Admin-only over HTTP, refused to the security officer by the CLI with the same code and message.
        const pol = await cli('policy', 'set', '--cert-lifetime', '2d', ...so);
        expect(pol.code).toBe(1);
        const httpPol = await call(reg.url, 'POST', '/v1/admin/policy', { bearer: OFFICER, body: {} });
        expect(httpPol.status).toBe(403);
        const e = (httpPol.json as { error: { code: string; message: string } }).error;
        expect(pol.text).toContain(`error ${e.code}: ${e.message}`);
        expect((await cli('reconcile', '--dry-run', ...so)).text).toMatch(
          /AUTH_FORBIDDEN: reconcile needs the admin role/,
        );
        const q = await cli('quota', 'set', '--work-order', WO, '--station', station.id, '--quantity', '5', ...so);
        expect(q.code, q.text).toBe(0);
      } finally {
        delete process.env[TOKEN_ENV];
      }
      expect((await cli('suspend', dev, '--reason', 'admin hold', '--data-dir', D)).code).toBe(0); // default: admin
      const h = await history(dev);
      expect(h.events.map((x) => `${x.type}/${x.actor ?? '-'}`)).toEqual([
        'device.provisioned/-',
        'device.suspend/security-officer',
        'device.resume/security-officer',
        'device.suspend/admin',
      ]);
      const ev = await reg.db.sql.all(`SELECT payload FROM lifecycle_events WHERE type = 'quota.set'`);
      expect(JSON.parse(String(ev[0]!['payload']))).toMatchObject({ actor: 'security-officer', quantity: 5 });
    });

    it('work-order publish / list / withdraw: validated, versioned with the quotas, in the signed quotas, audited', async () => {
      const wo = JSON.parse(
        readFileSync(new URL('../../resources/work-orders/WO-DEMO-1.json', import.meta.url), 'utf8'),
      ) as Record<string, unknown>;
      const doc = { ...wo, id: WO, product: 'CLI published' };
      const bad = await cli('work-order', 'publish', '--file', file('bad-wo.json', '{"schema":1}'), '--data-dir', D);
      expect(bad.code).toBe(1);
      expect(bad.text).toMatch(/BODY_INVALID: .*bad-wo\.json: /);
      const pub = await cli('work-order', 'publish', '--file', file('wo.json', JSON.stringify(doc)), '--data-dir', D);
      expect(pub.code, pub.text).toBe(0);
      expect(pub.text).toMatch(new RegExp(`work order ${WO} published \\(sha256 [0-9a-f]{64}\\)`));
      const again = await cli('work-order', 'publish', '--file', join(work, 'wo.json'), '--data-dir', D, '--json');
      expect(JSON.parse(again.text)).toMatchObject({ changed: false, workOrder: { id: WO } });
      expect((await cli('work-order', 'list', '--data-dir', D)).text).toContain(`${WO}`);
      // In the signed quotas of a station with a quota for it (verified with the registry certificate).
      expect(
        (await cli('quota', 'set', '--work-order', WO, '--station', station.id, '--quantity', '3', '--data-dir', D))
          .code,
      ).toBe(0);
      const q = await call(reg.url, 'GET', '/v1/quotas', { station });
      expect(q.status, q.text).toBe(200);
      const v = await verifyQuotas((q.json as { jws: string }).jws, keys.chain[0]!, station.id);
      expect(v.ok && v.value.payload.workOrders?.map((x) => x.product)).toEqual(['CLI published']);
      const wd = await cli('work-order', 'withdraw', '--id', WO, '--data-dir', D);
      expect(wd.code, wd.text).toBe(0);
      expect((await cli('work-order', 'withdraw', '--id', WO, '--data-dir', D)).text).toMatch(/NOT_FOUND/);
      const q2 = await call(reg.url, 'GET', '/v1/quotas', { station });
      const v2 = await verifyQuotas((q2.json as { jws: string }).jws, keys.chain[0]!, station.id);
      expect(v2.ok && v2.value.payload.workOrders).toBeUndefined();
      const ev = await reg.db.sql.all(`SELECT type FROM lifecycle_events WHERE type LIKE 'work-order.%' ORDER BY seq`);
      expect(ev.map((r) => r['type'])).toEqual(['work-order.published', 'work-order.withdrawn']);
    });

    it('policy show / set: firmware, profile overrides, dry run, invalid input, versions, audited', async () => {
      const before = await show();
      expect(before.policy.reenrollment).toEqual({
        certificateLifetimeSeconds: 365 * 86_400,
        rotateBeforeSeconds: 30 * 86_400,
      });
      expect(before.policy.version).toBe(before.version);
      const text = await cli('policy', 'show', '--data-dir', D);
      expect(text.text).toMatch(
        /policy version \d+ .*\n {2}re-enrolment: certificates valid 365d, devices re-enrol 30d/,
      );

      const set = (...a: string[]) => cli('policy', 'set', ...a, '--data-dir', D);
      for (const bad of [
        ['--firmware', `${WO}=abc`],
        ['--firmware', `${WO}=${D1}`, '--firmware', `${WO}=${D2}`],
        ['--firmware', 'no equals'],
        ['--cert-lifetime', '30m'],
        ['--cert-lifetime', '36501d'],
        ['--cert-lifetime', '2h', '--rotate-before', '2h'],
        [],
      ])
        expect((await set(...bad)).code, bad.join(' ')).toBe(2);
      const long = await set('--rotate-before', '400d'); // the configured lifetime is 365 days
      expect(long.code).toBe(1);
      expect(long.text).toMatch(/BODY_INVALID: .*below the certificate lifetime[\s\S]*--rotate-before must be shorter/);
      const badProfile = await set('--profiles', file('bad.json', JSON.stringify({ 'board-a': { validityDays: 0 } })));
      expect(badProfile.code).toBe(1);
      expect(badProfile.text).toMatch(
        /INPUT_INVALID: .*bad\.json: not certificate profile overrides \(board-a\.validityDays: /,
      );
      const badKey = await set('--profiles', file('bad2.json', JSON.stringify({ Board_A: {} })));
      expect(badKey.text).toMatch(/\(Board_A: Invalid key/);
      // Over HTTP the same schema guards profileOverrides.
      const http = await call(reg.url, 'POST', '/v1/admin/policy', {
        bearer: ADMIN,
        body: { profileOverrides: { 'board-a': { validityDays: 0 } } },
      });
      expect(http.status).toBe(400);
      expect((http.json as { error: { message: string } }).error.message).toMatch(
        /profileOverrides\.board-a\.validityDays/,
      );
      expect((await show()).version).toBe(before.version);

      const profiles = { 'board-a': { validityDays: 90, organization: 'ACME Line 2' } };
      const pf = file('profiles.json', JSON.stringify(profiles));
      const dry = await set('--firmware', `${WO}=${D1},${D2.toUpperCase()}`, '--profiles', pf, '--dry-run', '--json');
      expect(dry.code, dry.text).toBe(0);
      const d = JSON.parse(dry.text) as { dryRun: boolean; changed: boolean } & PolicyJson;
      expect(d).toMatchObject({ dryRun: true, changed: true, version: before.version + 1 });
      expect(d.policy).toMatchObject({ firmware: { [WO]: [D1, D2] }, profileOverrides: profiles });
      const still = await show();
      expect(still.version).toBe(before.version);
      expect(still.policy.firmware).toEqual({});

      const real = await set(
        '--firmware',
        `${WO}=${D1},${D2}`,
        '--firmware',
        `WO-OTHER=${D2}`,
        '--profiles',
        pf,
        '--json',
      );
      expect(real.code, real.text).toBe(0);
      expect(JSON.parse(real.text)).toMatchObject({ dryRun: false, changed: true, version: before.version + 1 });
      const after = await show();
      expect(after.version).toBe(before.version + 1);
      expect(after.policy).toMatchObject({
        firmware: { [WO]: [D1, D2], 'WO-OTHER': [D2] },
        profileOverrides: profiles,
      });
      const same = JSON.parse((await set('--profiles', pf, '--json')).text) as { changed: boolean; version: number };
      expect(same).toMatchObject({ changed: false, version: before.version + 1 });
      const cleared = await set('--firmware', `${WO}=`);
      expect(cleared.code, cleared.text).toBe(0);
      expect(cleared.text).toMatch(/policy version \d+ \(stations get it/);
      const last = await show();
      expect(last.version).toBe(before.version + 2);
      expect(last.policy.firmware).toEqual({ 'WO-OTHER': [D2] }); // only that work order was replaced
      const ev = await reg.db.sql.all(
        `SELECT type, payload FROM lifecycle_events WHERE type LIKE 'policy.%' ORDER BY seq`,
      );
      expect(
        ev
          .filter((r) => r['type'] !== 'policy.signed')
          .map((r) => `${String(r['type'])}/${(JSON.parse(String(r['payload'])) as { actor: string }).actor}`),
      ).toEqual([
        'policy.firmware-set/admin',
        'policy.profiles-set/admin',
        'policy.profiles-set/admin',
        'policy.firmware-set/admin',
      ]);
      // Each version was signed once, in increasing order (the dry run and the unchanged set signed nothing).
      const signed = ev
        .filter((r) => r['type'] === 'policy.signed')
        .map((r) => (JSON.parse(String(r['payload'])) as { version: number }).version);
      expect(signed.slice(-2)).toEqual([before.version + 1, before.version + 2]);
      expect(new Set(signed).size).toBe(signed.length);
    });

    it('a policy version is signed once: the set, every pull and the CLI answer the same JWS; a change is a new version', async () => {
      const pull = async () => {
        const r = await call(reg.url, 'GET', '/v1/policy', { station });
        expect(r.status, r.text).toBe(200);
        return r.json as { version: number; jws: string };
      };
      const set = await call(reg.url, 'POST', '/v1/admin/policy', {
        bearer: ADMIN,
        body: { revocationUrls: { crl: 'http://pki.example/{stationId}.crl' } },
      });
      expect(set.status, set.text).toBe(200);
      const published = set.json as { version: number; jws: string };
      // Later pulls (a second apart: a re-signing would carry another issuedAt) answer the very same JWS.
      await new Promise((r) => setTimeout(r, 1100));
      expect(await pull()).toEqual(published);
      expect(await pull()).toEqual(published);
      const shown = JSON.parse((await cli('policy', 'show', '--json', '--data-dir', D)).text) as PolicyJson;
      expect(shown.version).toBe(published.version);
      const rows = await reg.db.sql.all('SELECT version, jws FROM policy_versions WHERE version = ?', [
        published.version,
      ]);
      expect(rows).toEqual([{ version: published.version, jws: published.jws }]);
      // A second payload under that number is refused by the database itself.
      await expect(
        reg.db.sql.run(
          'INSERT INTO policy_versions (version, content_sha256, payload_json, jws, signed_at) VALUES (?, ?, ?, ?, ?)',
          [published.version, 'x', '{}', 'x.y.z', new Date().toISOString()],
        ),
      ).rejects.toThrow();
      // The station revocation changes the content: a new version, signed once, listing it.
      const other = await createHsmStation(stationHsm, `st-pol-rev-${backend}`, { workOrder: WO });
      expect(
        (
          await call(reg.url, 'POST', '/v1/admin/stations', {
            bearer: ADMIN,
            body: { stationId: other.id, chainPem: other.chainPem },
          })
        ).status,
      ).toBe(201);
      expect((await call(reg.url, 'POST', `/v1/admin/stations/${other.id}/revoke`, { bearer: ADMIN })).status).toBe(
        200,
      );
      const next = await pull();
      expect(next.version).toBe(published.version + 1);
      const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(next.jws.split('.')[1]!))) as {
        revokedStations: { stationId: string }[];
        revocationUrls: unknown;
      };
      expect(payload.revokedStations.map((x) => x.stationId)).toContain(other.id);
      expect(payload.revocationUrls).toEqual({ crl: 'http://pki.example/{stationId}.crl' });
      expect(await pull()).toEqual(next);
      // The CLI merges --ocsp-url into the templates in force, '' removes one; a bad URL is refused.
      const urls = async (...a: string[]) => {
        const r = await cli('policy', 'set', ...a, '--json', '--data-dir', D);
        expect(r.code, r.text).toBe(0);
        return (JSON.parse(r.text) as { policy: { revocationUrls?: unknown } }).policy.revocationUrls;
      };
      expect(await urls('--ocsp-url', 'http://ocsp.example/')).toEqual({
        crl: 'http://pki.example/{stationId}.crl',
        ocsp: 'http://ocsp.example/',
      });
      const bad = await cli('policy', 'set', '--crl-url', 'ldap://x/crl', '--data-dir', D);
      expect(bad.code).toBe(1);
      expect(bad.text).toContain('revocationUrls.crl');
      expect(await urls('--crl-url', '')).toEqual({ ocsp: 'http://ocsp.example/' });
      // Remove the templates again (the later tests expect none): the policy no longer carries the field.
      expect(await urls('--ocsp-url', '')).toBeUndefined();
    });

    it('short-lived certificates: policy lifetimes reach the signed policy; the registry itself issues none', async () => {
      const set = await cli(
        'policy',
        'set',
        '--cert-lifetime',
        '3h',
        '--rotate-before',
        '1h',
        '--json',
        '--data-dir',
        D,
      );
      expect(set.code, set.text).toBe(0);
      const reenrollment = { certificateLifetimeSeconds: 10_800, rotateBeforeSeconds: 3600 };
      expect((JSON.parse(set.text) as PolicyJson).policy.reenrollment).toEqual(reenrollment);
      // What a station pulls (LS-Sig): the signed payload carries the effective values.
      const pulled = await call(reg.url, 'GET', '/v1/policy', { station });
      expect(pulled.status, pulled.text).toBe(200);
      const payload = JSON.parse(
        new TextDecoder().decode(fromBase64Url((pulled.json as { jws: string }).jws.split('.')[1]!)),
      ) as { reenrollment: unknown };
      expect(payload.reenrollment).toEqual(reenrollment);
      // rotate-before alone must stay below the policy lifetime; over HTTP the admin sets the same settings.
      expect((await cli('policy', 'set', '--rotate-before', '3h', '--data-dir', D)).code).toBe(1);
      const viaHttp = await call(reg.url, 'POST', '/v1/admin/policy', {
        bearer: ADMIN,
        body: { reenrollment: { rotateBeforeSeconds: 1800 } },
      });
      expect(viaHttp.status).toBe(400); // below 1 h
      expect(
        (
          await call(reg.url, 'POST', '/v1/admin/policy', {
            bearer: ADMIN,
            body: { reenrollment: { rotateBeforeSeconds: 7200 } },
          })
        ).status,
      ).toBe(200);
      expect((await show()).policy.reenrollment).toEqual({
        certificateLifetimeSeconds: 10_800,
        rotateBeforeSeconds: 7200,
      });
      expect((await cli('policy', 'set', '--rotate-before', '1h', '--data-dir', D)).code).toBe(0);

      // Headquarters holds no issuing CA key: re-enrolment there is refused (devices re-key at a station).
      const r = await call(reg.url, 'POST', '/v1/devices/reenroll', { body: {} });
      expect(r.status, r.text).toBe(501);
      expect(r.json).toMatchObject({ error: { code: 'REENROLL_UNAVAILABLE' } });
    });
  });
}

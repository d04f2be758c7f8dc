/**
 * The doctor's checks as functions over data: thresholds (disk, clock skew, sync backlog), the serial group and udev
 * rules, token stages (a module that does not load skips what needs it), and runDoctor's order and `ok` over ports
 * that hold no station at all.
 */
import { describe, expect, it } from 'vitest';
import { DOCTOR_CHECK_IDS } from '../../core/api.js';
import type { TokenReport } from '../../core/hsm/inspection.js';
import type { RequirementCheck } from '../../core/hsm/requirements.js';
import { fail } from '../../core/errors.js';
import { systemClock } from '../../core/ports.js';
import { parseBoardProfile, type BoardProfile } from '../../core/provisioning/profiles.js';
import { err, ok } from '../../core/result.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkBacklog, BACKLOG_FAIL_AGE_MS, BACKLOG_WARN_AGE_MS } from './checks/backlog.js';
import { checkLogin, checkModule, checkToken, tokenReady, type TokenOutcome } from './checks/hsm.js';
import { checkDiskSpace, DISK_FAIL_BELOW_BYTES, DISK_WARN_BELOW_BYTES } from './checks/local.js';
import { checkMechanisms, stationNeeds } from './checks/mechanisms.js';
import { CLOCK_SKEW_FAIL_MS, CLOCK_SKEW_WARN_MS, checkClockSkew } from './checks/registry.js';
import { checkSerialGroup, checkSerialPorts, checkUdevRules, UDEV_RULES_PATH } from './checks/serial.js';
import { splitFix } from './check.js';
import type { DoctorPorts, DoctorSerial, DoctorToken, StationUser, TokenStage } from './ports.js';
import { runDoctor } from './run.js';

const BOARDS = join(import.meta.dirname, '..', '..', 'resources', 'boards');
const profile = (f: string): BoardProfile => {
  const p = parseBoardProfile(JSON.parse(readFileSync(join(BOARDS, f), 'utf8')), f);
  if (!p.ok) throw new Error(p.error.message);
  return p.value;
};
const PROFILES = [profile('ls-sim-basic.json'), profile('ls-sim-se.json')];
const GROUP = PROFILES[0]!.udev.group;

function serial(o: Partial<DoctorSerial> & { u?: Partial<StationUser> } = {}): DoctorSerial {
  const user: StationUser = {
    name: 'line',
    uid: 1000,
    processGroups: ['line', GROUP],
    accountGroups: ['line', GROUP],
    ...o.u,
  };
  return {
    udevRulesPath: UDEV_RULES_PATH,
    user: () => user,
    udevRules: () => null,
    ports: async () => [],
    access: () => null,
    ...o,
  };
}

const ports = (o: Partial<DoctorPorts> = {}): DoctorPorts => ({
  dataDir: '/srv/line',
  clock: systemClock,
  config: fail('CONFIG_NOT_FOUND', 'no station configuration at /srv/line/config.json'),
  profiles: () => ok(PROFILES),
  permissions: () => ok(undefined),
  diskSpace: () => ({ availableBytes: 10 * DISK_WARN_BELOW_BYTES, totalBytes: 100 * DISK_WARN_BELOW_BYTES }),
  token: null,
  certificates: () => fail('CONFIG_INVALID', 'none'),
  serial: serial(),
  registry: null,
  backlog: () => ok({ pending: 0, sent: 0, failed: 0, oldestUnacknowledgedAt: null }),
  ...o,
});

describe('disk-space', () => {
  it('fails below DISK_FAIL_BELOW_BYTES, warns below DISK_WARN_BELOW_BYTES, else passes', () => {
    const at = (n: number) => checkDiskSpace(ports({ diskSpace: () => ({ availableBytes: n, totalBytes: 1e12 }) }));
    expect(at(DISK_FAIL_BELOW_BYTES - 1).status).toBe('fail');
    expect(at(DISK_FAIL_BELOW_BYTES).status).toBe('warn');
    expect(at(DISK_WARN_BELOW_BYTES - 1).status).toBe('warn');
    expect(at(DISK_WARN_BELOW_BYTES).status).toBe('pass');
    expect(at(0).action).toBe(
      "free space on that file system (see: df -h /srv/line; the station's logs are in /srv/line/logs)",
    );
  });
});

describe('clock-skew', () => {
  const at = (skewMs: number, rttMs = 20) => {
    const sentAt = new Date(1_800_000_000_000);
    const receivedAt = new Date(sentAt.getTime() + rttMs);
    const registry = new Date(sentAt.getTime() + rttMs / 2 - skewMs).toISOString();
    const health = {
      status: 'ok' as const,
      api: 'v1' as const,
      registryId: 'r',
      time: registry,
      audience: 'a'.repeat(64),
    };
    return checkClockSkew(ok({ health, sentAt, receivedAt }));
  };
  it('measures at the midpoint of the exchange; warns past CLOCK_SKEW_WARN_MS, fails past CLOCK_SKEW_FAIL_MS', () => {
    expect(at(0)).toMatchObject({ status: 'pass', details: { skewMs: 0, uncertaintyMs: 10 } });
    expect(at(CLOCK_SKEW_WARN_MS).status).toBe('pass');
    expect(at(CLOCK_SKEW_WARN_MS + 1).status).toBe('warn');
    expect(at(-(CLOCK_SKEW_FAIL_MS + 1))).toMatchObject({
      status: 'fail',
      details: { skewMs: -(CLOCK_SKEW_FAIL_MS + 1) },
    });
    expect(at(-(CLOCK_SKEW_FAIL_MS + 1)).summary).toContain('behind');
    expect(at(CLOCK_SKEW_FAIL_MS + 1).summary).toContain('ahead of');
    expect(at(CLOCK_SKEW_FAIL_MS + 1).action).toContain('timedatectl set-ntp true');
  });
  it('is skipped without a registry answer', () => {
    expect(checkClockSkew(null).status).toBe('skipped');
    expect(checkClockSkew(fail('SYNC_UNREACHABLE', 'down')).status).toBe('skipped');
  });
});

describe('sync-backlog', () => {
  const now = new Date('2027-01-10T00:00:00Z');
  const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();
  const online = {
    url: 'https://hq.example',
    certificate: ok(new Uint8Array()),
    health: async () => fail('INTERNAL', 'x'),
  };
  const b = (pending: number, oldest: string | null, failed = 0) =>
    ok({ pending, sent: 0, failed, oldestUnacknowledgedAt: oldest });
  it('warns past a day, fails past a week; the action syncs online or carries a bundle', () => {
    expect(checkBacklog(b(3, ago(BACKLOG_WARN_AGE_MS - 1000)), online, '/d', now).status).toBe('pass');
    const warn = checkBacklog(b(3, ago(BACKLOG_WARN_AGE_MS + 1000)), online, '/d', now);
    expect(warn).toMatchObject({ status: 'warn', action: 'station sync --data-dir /d' });
    expect(warn.summary).toBe('3 record(s) wait for the registry (3 pending, 0 sent), the oldest for 24 h');
    const stale = checkBacklog(b(1, ago(BACKLOG_FAIL_AGE_MS + 1000)), null, '/d', now);
    expect(stale.status).toBe('fail');
    expect(stale.action).toBe(
      'station export --data-dir /d --out bundle.jws, then at headquarters: registry import bundle.jws',
    );
  });
  it('records the registry refused warn even when nothing waits', () => {
    expect(checkBacklog(b(0, null, 2), online, '/d', now)).toMatchObject({
      status: 'warn',
      summary: 'no record waits for the registry; 2 refused by the registry',
    });
    expect(checkBacklog(b(0, null), online, '/d', now).status).toBe('pass');
  });
});

describe('serial', () => {
  it('serial-group: not in the group → usermod; added since login → log in again; root → pass', () => {
    const out = checkSerialGroup(serial({ u: { processGroups: ['line'], accountGroups: ['line'] } }), PROFILES);
    expect(out).toMatchObject({ status: 'fail', action: `sudo usermod -aG ${GROUP} line, then log out and in again` });
    const stale = checkSerialGroup(serial({ u: { processGroups: ['line'] } }), PROFILES);
    expect(stale.status).toBe('fail');
    expect(stale.action).toContain('log out and in again');
    expect(checkSerialGroup(serial({ u: { uid: 0, processGroups: [], accountGroups: [] } }), PROFILES).status).toBe(
      'pass',
    );
    expect(checkSerialGroup(serial(), PROFILES).status).toBe('pass');
  });
  it('udev-rules: missing → fail with the install command; a profile id without a rule → warn; the shipped file → pass', () => {
    const src = join(import.meta.dirname, '..', '..', 'resources', 'udev', '70-line-station.rules');
    const shipped = readFileSync(src, 'utf8');
    expect(checkUdevRules(serial(), PROFILES, src)).toMatchObject({
      status: 'fail',
      action: `sudo cp ${src} /etc/udev/rules.d/ && sudo udevadm control --reload && sudo udevadm trigger`,
    });
    expect(checkUdevRules(serial({ udevRules: () => shipped }), PROFILES, src).status).toBe('pass');
    const without = shipped
      .split('\n')
      .filter((l) => !l.includes('4c53'))
      .join('\n');
    const w = checkUdevRules(serial({ udevRules: () => without }), PROFILES, src);
    expect(w.status).toBe('warn');
    expect(w.details?.['missing']).toEqual([`1209:4c53:${GROUP}`]);
    // A rule for the id with another group does not give the profile's group access.
    const other = shipped.replaceAll(`GROUP="${GROUP}"`, 'GROUP="nobody"');
    expect(checkUdevRules(serial({ udevRules: () => other }), PROFILES, src).status).toBe('warn');
  });
  it('serial-ports: a node this user cannot open fails with its errno', async () => {
    const s = serial({
      ports: async () => [
        { path: '/dev/ttyACM0', source: 'serial' },
        { path: '/dev/ttyACM1', source: 'serial' },
      ],
      access: (p) => (p.endsWith('1') ? 'EACCES' : null),
    });
    const c = await checkSerialPorts(s, PROFILES);
    expect(c).toMatchObject({ status: 'fail', summary: '/dev/ttyACM1: EACCES' });
    expect(c.action).toContain('ls -l /dev/ttyACM1');
    expect((await checkSerialPorts(serial(), PROFILES)).status).toBe('skipped');
  });
});

describe('token stages', () => {
  const REQS: RequirementCheck[] = [
    { requirement: 'signing-key-p256', satisfied: true, missing: [], message: '' },
    { requirement: 'signing-key-p384', satisfied: true, missing: [], message: '' },
    {
      requirement: 'key-injection',
      satisfied: false,
      missing: ['RFC 5649 key wrap'],
      message: 'token X has no RFC 5649 key wrap: profiles with keyMode injected cannot run on it',
    },
  ];
  const MODULE = '/usr/lib/vendor/p11.so';
  function inspected(
    o: {
      module?: 'pass' | 'fail';
      token?: 'pass' | 'fail';
      pin?: Partial<NonNullable<TokenReport['token']['pin']>>;
    } = {},
  ): TokenReport {
    const moduleOk = (o.module ?? 'pass') === 'pass';
    const tokenOk = (o.token ?? 'pass') === 'pass';
    return {
      schema: 'line-station/token-report/v1',
      profile: { id: 'vendor', name: 'Vendor HSM' },
      module: moduleOk
        ? { status: 'pass', path: MODULE }
        : { status: 'fail', path: MODULE, error: { code: 'HSM_MODULE_LOAD_FAILED', message: 'cannot load it' } },
      token: !moduleOk
        ? { status: 'skip', label: 'LINE', tokensPresent: [] }
        : tokenOk
          ? {
              status: 'pass',
              label: 'LINE',
              slotId: '1',
              serial: 'S1',
              manufacturer: 'V',
              model: 'M',
              pin: { initialized: true, countLow: false, finalTry: false, locked: false, ...o.pin },
              tokensPresent: ['LINE'],
            }
          : {
              status: 'fail',
              label: 'LINE',
              tokensPresent: ['Other'],
              error: { code: 'HSM_TOKEN_ABSENT', message: 'no token labelled "LINE"' },
            },
      login: { status: 'skip' },
      mechanisms: { status: 'warn', listed: 20, checks: [] },
      requirements: REQS,
      keyProtectionEnforced: { status: 'pass', enforced: true, note: '' },
      keys: [],
      status: 'pass',
    };
  }
  const t: DoctorToken = {
    module: MODULE,
    tokenLabel: 'LINE',
    pinSource: { kind: 'env', name: 'LS_HSM_PIN' },
    inspect: async () => inspected(),
    open: async () => err({ stage: 'login', error: fail('INTERNAL', 'not called').error }),
  };
  const failed = (stage: TokenStage, code: Parameters<typeof fail>[0]): TokenOutcome =>
    err({ stage, error: fail(code, `${stage} failed`).error });

  it('a module that does not load fails hsm-module; token and login are skipped, no PIN is tried', () => {
    const r = inspected({ module: 'fail' });
    expect(checkModule(t, r)).toMatchObject({ status: 'fail', details: { code: 'HSM_MODULE_LOAD_FAILED' } });
    expect(checkModule(t, r).action).toContain(`ls -l ${MODULE}`);
    expect(checkToken(t, r).status).toBe('skipped');
    expect(checkLogin(t, r, null).status).toBe('skipped');
    expect(tokenReady(r)).toBe(false);
  });

  it('an absent token lists the tokens present; a user PIN one failure from locking warns, a locked one fails', () => {
    expect(checkToken(t, inspected({ token: 'fail' })).summary).toContain('(tokens present: "Other")');
    expect(checkToken(t, inspected({ pin: { finalTry: true } })).status).toBe('warn');
    expect(checkToken(t, inspected({ pin: { locked: true } })).status).toBe('fail');
    expect(checkToken(t, inspected()).status).toBe('pass');
  });

  it('a wrong PIN names the variable to set; a locked one the security officer', () => {
    const r = inspected();
    const lo = failed('login', 'HSM_PIN_INCORRECT');
    expect(checkLogin(t, r, lo)).toMatchObject({ status: 'fail', details: { pinSource: 'env', env: 'LS_HSM_PIN' } });
    expect(checkLogin(t, r, lo).action).toBe(
      "export LS_HSM_PIN=<the token's user PIN> in the station's environment; each wrong PIN counts towards the token's lock",
    );
    expect(checkLogin(t, r, failed('login', 'HSM_PIN_LOCKED')).action).toContain('security officer');
    expect(checkLogin(t, r, failed('pin', 'HSM_PIN_INCORRECT')).summary).toContain(
      'cannot read the PIN from environment variable LS_HSM_PIN',
    );
  });

  it('hsm-mechanisms: a requirement the token does not list refuses the profiles that need it', () => {
    const needs = stationNeeds(PROFILES);
    expect(needs).toEqual([
      { requirement: 'signing-key-p256', neededBy: [] },
      { requirement: 'key-injection', neededBy: ['ls-sim-basic'] },
    ]);
    const c = checkMechanisms(needs, REQS, null);
    expect(c.status).toBe('fail');
    expect(c.summary).toContain('board profiles refused on this token: ls-sim-basic');
    expect(c.action).toBe(
      'use a token with those mechanisms, or do not use ls-sim-basic on this station (docs/hsm.md "Key injection")',
    );
    // Without an injecting profile the same token passes (listed only: no session to try it).
    const onboard = checkMechanisms(stationNeeds([PROFILES[1]!]), REQS, null);
    expect(onboard.status).toBe('pass');
    expect(onboard.summary).toContain('not tried by use');
    // A listed mechanism that fails when tried fails too.
    const tried = checkMechanisms(stationNeeds([PROFILES[1]!]), REQS, [
      {
        id: 'ecdsa-sign',
        what: 'ECDSA signatures',
        mechanisms: ['CKM_ECDSA'],
        neededBy: [],
        present: false,
        error: 'CKR_FUNCTION_FAILED',
      },
    ]);
    expect(tried.status).toBe('fail');
    expect(tried.action).toContain('signs with CKM_ECDSA');
    expect(checkMechanisms(needs, null, null).status).toBe('skipped');
  });
});

describe('runDoctor', () => {
  it('without a configuration: every check in order, config fails with station init, what needs it is skipped', async () => {
    const r = await runDoctor(ports());
    expect(r.checks.map((c) => c.id)).toEqual([...DOCTOR_CHECK_IDS]);
    expect(r.ok).toBe(false);
    expect(r.checks[0]).toMatchObject({ id: 'config', status: 'fail', action: 'station init --data-dir /srv/line' });
    for (const id of [
      'hsm-module',
      'hsm-token',
      'hsm-login',
      'hsm-keys',
      'hsm-mechanisms',
      'certificates',
      'registry',
      'clock-skew',
      'sync-backlog',
    ])
      expect(r.checks.find((c) => c.id === id)!.summary, id).toBe('no valid configuration (see config)');
  });
  it('splitFix takes the command out of a permission finding', () => {
    expect(splitFix('/d/x has mode 0644: group or others can read it; fix: chmod 600 /d/x')).toEqual({
      finding: '/d/x has mode 0644: group or others can read it',
      fix: 'chmod 600 /d/x',
    });
  });
});

/**
 * Data dir permissions, attacked by a second local user (docs/architecture.md "Data directory permissions").
 *
 * The station and registry are created the way the product does it: `station init` and `station operator add`
 * through bin/station.mjs, and the demo (scripts/demo.ts: simulator, station, local registry with escrow, one
 * board provisioned), all started from this test process, whose umask is the permissive 022. Then a throwaway
 * system user (useradd; removed afterwards) tries to read station.db (the operators' PIN hashes), config.json,
 * the logs, the PIN files, the SoftHSM2 token directory and the registry's tokens and database with runuser: every
 * attempt fails, also when the data dir itself is opened for traversal (0711), because every file is 0600 and
 * every folder 0700 from its first write. A data dir (or station.db) made accessible by hand, or a file another
 * user owns, makes `station records` and `registry stats` refuse with CONFIG_INSECURE_PERMISSIONS and the fix.
 *
 * Creating a user needs root (CI runs as root on Debian); not root, the second-user tests skip themselves with
 * that reason; the refusal test runs everywhere.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const NOT_ROOT = 'needs root to create a throwaway local user (CI runs as root)';
const PIN = '482913';

const base = mkdtempSync(join(tmpdir(), 'ls-perm-'));
// The parent is world-traversable: only the data dir's own modes stand between the other user and its files.
chmodSync(base, 0o755);
const stationDir = join(base, 'station');
const demoDir = join(base, 'demo');
let user = '';
let uid = -1;

/** Run a CLI entry (bin/station.mjs, bin/registry.mjs) as the product runs it, in its own process. */
async function cli(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string }> {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.end();
  const code = await new Promise<number>((res) => child.on('exit', (c) => res(c ?? -1)));
  return { code, out };
}

const esc = (p: string) => p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * With `path` set to `mode` (by hand, as a careless admin would), the CLI run is refused for the data dir's
 * permissions: exit 3, the code and the fix in the output. The mode is restored afterwards.
 */
async function refusedWith(path: string, mode: number, bin: string, args: string[], fix: RegExp): Promise<void> {
  const before = statSync(path).mode & 0o777;
  chmodSync(path, mode);
  try {
    const r = await cli(bin, args);
    expect(r.code, r.out).toBe(3);
    expect(r.out).toMatch(/CONFIG_INSECURE_PERMISSIONS/);
    expect(r.out).toMatch(fix);
  } finally {
    chmodSync(path, before);
  }
}

/** `cmd` as the other user: exit status and stderr. */
function asOther(...cmd: string[]): { status: number | null; stderr: string } {
  const r = spawnSync('runuser', ['-u', user, '--', ...cmd], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr };
}

/** Every path under `dir` whose mode lets group or others in (with its mode); logs how many paths were looked at. */
function accessibleByOthers(dir: string): string[] {
  const out: string[] = [];
  let n = 0;
  const walk = (p: string) => {
    const st = statSync(p);
    n++;
    if (st.mode & 0o077) out.push(`${(st.mode & 0o777).toString(8)} ${p}`);
    if (st.isDirectory()) for (const c of readdirSync(p)) walk(join(p, c));
  };
  walk(dir);
  console.log(`[data-dir] ${dir}: ${n} files and folders, ${out.length} accessible to group or others`);
  return out;
}

/** What the other user tries to read in a station data dir: PIN hashes, configuration, logs, PIN file, tokens. */
const stationTargets = (dir: string): string[][] => [
  ['cat', join(dir, 'station.db')],
  ['cat', join(dir, 'config.json')],
  ['cat', join(dir, 'logs', 'station.log')],
  ['cat', join(dir, 'secrets', 'hsm-user.pin')],
  ['ls', join(dir, 'hsm', 'tokens')],
  ['ls', join(dir, 'logs')],
];

/**
 * The other user's attempts on `targets` fail with EACCES; and again with the data dirs `dirs` opened for traversal
 * (0711): defence in depth, the files and folders in them refuse on their own.
 */
function expectDenied(dirs: readonly string[], targets: readonly string[][]): void {
  const attempt = () => {
    for (const cmd of targets) {
      const r = asOther(...cmd);
      expect(r.status, `${cmd.join(' ')} as ${user} succeeded`).not.toBe(0);
      expect(r.stderr, cmd.join(' ')).toMatch(/Permission denied/);
    }
  };
  attempt();
  for (const d of dirs) chmodSync(d, 0o711);
  try {
    attempt();
  } finally {
    for (const d of dirs) chmodSync(d, 0o700);
  }
}

beforeAll(async () => {
  // A vendor attestation root for `station init` (any CA certificate will do for init), world-readable as such
  // files are: the station's copy must still be private.
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=Test Vendor Root', '-keyout', join(base, 'vendor.key'), '-out', join(base, 'vendor-root.pem'),
  ], { stdio: 'ignore' }); // prettier-ignore
  chmodSync(join(base, 'vendor-root.pem'), 0o644);
  const init = await cli('bin/station.mjs', [
    'init',
    '--data-dir',
    stationDir,
    '--station-id',
    'perm-station',
    '--attestation-root',
    join(base, 'vendor-root.pem'),
  ]);
  if (init.code !== 0) throw new Error(`station init: ${init.out}`);
  const add = await cli(
    'bin/station.mjs',
    ['operator', 'add', '--data-dir', stationDir, '--id', 'sup-1', '--name', 'Sam', '--role', 'supervisor'],
    { LINE_STATION_NEW_PIN: PIN },
  );
  if (add.code !== 0) throw new Error(`operator add: ${add.out}`);
  if (!ROOT) return;
  user = `ls-probe-${process.pid}`;
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user]);
  uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}, 120_000);

afterAll(() => {
  if (user) spawnSync('userdel', [user]);
  rmSync(base, { recursive: true, force: true });
});

describe('a second local user cannot read the station or the registry', () => {
  it('station init and operator add (bin/station.mjs): nothing readable by another user, even with the data dir opened for traversal', async (ctx) => {
    if (!ROOT) return ctx.skip(NOT_ROOT);
    const records = await cli('bin/station.mjs', ['records', '--data-dir', stationDir]);
    expect(records.code, records.out).toBe(0);

    expect(accessibleByOthers(stationDir)).toEqual([]);
    expect(statSync(stationDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(stationDir, 'station.db')).mode & 0o777).toBe(0o600);
    expect(statSync(join(stationDir, 'logs', 'station.log')).mode & 0o777).toBe(0o600);
    expectDenied([stationDir], stationTargets(stationDir));
  });

  it('the demo (station, simulator, registry with its tokens and database): nothing readable by another user', async (ctx) => {
    if (!ROOT) return ctx.skip(NOT_ROOT);
    // `npm run demo` without its set-up step: scripts/demo.ts through tsx, in its own process.
    const r = await cli('--import', [
      'tsx',
      'scripts/demo.ts',
      '--boards',
      '1',
      '--exit-when-done',
      '--data-dir',
      demoDir,
    ]);
    expect(r.code, r.out.slice(-3000)).toBe(0);
    expect(accessibleByOthers(demoDir)).toEqual([]);
    const reg = join(demoDir, 'registry');
    expectDenied(
      [demoDir, reg],
      [
        ...stationTargets(demoDir),
        ['cat', join(reg, 'secrets', 'admin.token')],
        ['cat', join(reg, 'registry.db')],
        ['cat', join(reg, 'config.json')],
        ['ls', join(reg, 'hsm', 'tokens')],
      ],
    );

    // The registry refuses a data dir, or a token file, made accessible by hand.
    const stats = ['stats', '--data-dir', reg];
    await refusedWith(reg, 0o755, 'bin/registry.mjs', stats, new RegExp(`chmod 700 ${esc(reg)}\\b`));
    const token = join(reg, 'secrets', 'admin.token');
    await refusedWith(token, 0o640, 'bin/registry.mjs', stats, new RegExp(`chmod 600 ${esc(token)}`));
    const fine = await cli('bin/registry.mjs', stats);
    expect(fine.code, fine.out).toBe(0);
  }, 240_000);
});

describe('a data dir others can read or write is refused', () => {
  it('station records refuses a data dir made 0755 by hand, a 0644 station.db, a group-readable token dir and a log another user owns', async () => {
    const records = ['records', '--data-dir', stationDir];
    const log = join(stationDir, 'logs', 'station.log');
    const logSize = statSync(log).size;
    await refusedWith(stationDir, 0o755, 'bin/station.mjs', records, new RegExp(`chmod 700 ${esc(stationDir)}\\b`));
    // Refused before anything was written to it (not even a log line).
    expect(statSync(log).size).toBe(logSize);

    const db = join(stationDir, 'station.db');
    await refusedWith(db, 0o644, 'bin/station.mjs', records, new RegExp(`chmod 600 ${esc(db)}`));
    const watch = ['watch', '--data-dir', stationDir, '--work-order', 'WO-DEMO-1'];
    await refusedWith(db, 0o644, 'bin/station.mjs', watch, /chmod 600/);
    const tokens = join(stationDir, 'hsm', 'tokens');
    await refusedWith(tokens, 0o750, 'bin/station.mjs', records, new RegExp(`chmod 700 ${esc(tokens)}`));

    if (ROOT) {
      chownSync(log, uid, -1);
      try {
        const r = await cli('bin/station.mjs', records);
        expect(r.code, r.out).toBe(3);
        expect(r.out).toMatch(new RegExp(`CONFIG_INSECURE_PERMISSIONS: ${esc(log)} is owned by uid ${uid}`));
      } finally {
        chownSync(log, 0, -1);
      }
    }

    const ok = await cli('bin/station.mjs', ['records', '--data-dir', stationDir]);
    expect(ok.code, ok.out).toBe(0);
  }, 120_000);
});

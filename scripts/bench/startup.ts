/**
 * Start-up and idle figures (issue 12), a part of `npm run bench` (scripts/bench.ts calls `benchStartup`):
 * - cold start of `station --help`, `station records --data-dir D` and `registry stations --data-dir R`: each run a
 *   fresh `node bin/...` process as a user starts it, wall clock from spawn to exit, median of N runs, with the
 *   process's CPU time (user + system, from /usr/bin/time where installed: steadier than wall time on a shared
 *   machine); for the bin's bundle with V8's code cache (what a bin runs: LINE_STATION_RUNTIME=dist; the warm-up run
 *   writes the cache), for the one-to-one compiled modules (LINE_STATION_RUNTIME=modules) and for the sources through
 *   tsx;
 * - the programs an idle `station watch` starts per minute (strace: every successful execve after its start).
 * Prints a Markdown table like the rest of the bench. Imports production code only (scripts/ may not import test
 * support): the station data dir comes from the caller, the registry is made here with `registry init`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const TIME = '/usr/bin/time';
const OPERATOR = { id: 'bench-startup', pin: '24680' };

/** One cold start: wall ms, and CPU ms when /usr/bin/time is there. */
function coldStart(args: readonly string[], env: NodeJS.ProcessEnv): { wallMs: number; cpuMs: number | null } {
  const timed = existsSync(TIME);
  const argv = timed ? ['-f', 'CPU %U %S', process.execPath, ...args] : [...args];
  const t = performance.now();
  const r = spawnSync(timed ? TIME : process.execPath, argv, { cwd: ROOT, env, encoding: 'utf8' });
  const wallMs = performance.now() - t;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const m = timed ? /CPU (\d+\.\d+) (\d+\.\d+)\s*$/.exec(r.stderr) : null;
  return { wallMs, cpuMs: m ? (Number(m[1]) + Number(m[2])) * 1000 : null };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Median wall and CPU ms of `runs` cold starts (one warm-up run first: the file system cache, not the code). */
function medianStart(args: readonly string[], env: NodeJS.ProcessEnv, runs: number): string {
  try {
    coldStart(args, env);
  } catch (e) {
    return `n/a (${(e as Error).message.trim().split('\n').pop()})`; // e.g. no current build for dist
  }
  const rs = Array.from({ length: runs }, () => coldStart(args, env));
  const cpu = rs.every((r) => r.cpuMs !== null) ? ` (CPU ${median(rs.map((r) => r.cpuMs!)).toFixed(0)})` : '';
  return `${median(rs.map((r) => r.wallMs)).toFixed(0)}${cpu}`;
}

/** Programs started per minute by an idle `station watch` on an empty glob directory, over `seconds`; null without strace. */
async function idleWatchSpawns(stationDir: string, env: NodeJS.ProcessEnv, seconds: number): Promise<number | null> {
  if (spawnSync('strace', ['-V'], { stdio: 'ignore' }).status !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'ls-bench-watch-'));
  const trace = join(dir, 'trace');
  mkdirSync(join(dir, 'ports'));
  const child = spawn(
    'strace',
    ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', trace, process.execPath, 'bin/station.mjs']
      .concat(['watch', '--data-dir', stationDir, '--work-order', 'WO-DEMO-1', '--operator', OPERATOR.id])
      .concat(['--port', join(dir, 'ports', 'board-*')]),
    { cwd: ROOT, env: { ...env, LINE_STATION_PIN: OPERATOR.pin }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  try {
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    for (const t0 = Date.now(); !out.includes('watching for boards'); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() - t0 > 60_000 || child.exitCode !== null) throw new Error(`station watch did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 2000)); // its start (the first enumerations) is not idle
    const count = () =>
      readFileSync(trace, 'utf8')
        .split('\n')
        .filter((l) => /execve\(.*= 0$/.test(l)).length;
    const before = count();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    return ((count() - before) * 60) / seconds;
  } finally {
    process.kill(-child.pid!, 'SIGKILL'); // strace and the station: their own process group
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `station` / `registry` with the caller's environment, checked (throws with its output on failure). */
function run(args: readonly string[], env: NodeJS.ProcessEnv): void {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stdout}${r.stderr}`);
}

/**
 * Print the start-up figures for an initialised station data dir (it gets an operator for the idle watch).
 * `runs`: cold starts per figure (default 9).
 */
export async function benchStartup(stationDir: string, runs = 9): Promise<void> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LINE_STATION_')));
  const { stationId } = JSON.parse(readFileSync(join(stationDir, 'config.json'), 'utf8')) as { stationId: string };
  const regDir = mkdtempSync(join(tmpdir(), 'ls-bench-registry-'));
  try {
    run(['bin/registry.mjs', 'init', '--data-dir', regDir], base);
    run(
      [
        'bin/registry.mjs',
        'enroll-station',
        '--id',
        stationId,
        '--chain',
        join(stationDir, 'pki', 'station-chain.pem'),
      ].concat(['--data-dir', regDir]),
      base,
    );
    run(
      ['bin/station.mjs', 'operator', 'add', '--data-dir', stationDir, '--id', OPERATOR.id].concat([
        '--name',
        'Bench',
        '--role',
        'operator',
      ]),
      { ...base, LINE_STATION_NEW_PIN: OPERATOR.pin },
    );

    const commands: Array<[string, string[]]> = [
      ['`station --help`', ['bin/station.mjs', '--help']],
      ['`station records --data-dir D`', ['bin/station.mjs', 'records', '--data-dir', stationDir]],
      ['`registry stations --data-dir R`', ['bin/registry.mjs', 'stations', '--data-dir', regDir]],
    ];
    console.log('');
    console.log(
      `| cold start, median of ${runs} (ms; CPU user+sys) | bundle + code cache (dist/node/bin) | one-to-one modules (dist/node) | sources through tsx |`,
    );
    console.log('| --- | --- | --- | --- |');
    for (const [name, args] of commands) {
      const [dist, modules, tsx] = (['dist', 'modules', 'tsx'] as const).map((mode) =>
        medianStart(args, { ...base, LINE_STATION_RUNTIME: mode }, runs),
      );
      console.log(`| ${name} | ${dist} | ${modules} | ${tsx} |`);
    }
    const spawns = await idleWatchSpawns(stationDir, base, 20);
    console.log(
      `| idle \`station watch\`: programs started per minute (strace, 20 s) | ${spawns === null ? 'n/a (no strace)' : spawns.toFixed(0)} | | |`,
    );
  } finally {
    rmSync(regDir, { recursive: true, force: true });
  }
}

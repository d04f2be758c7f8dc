/** Test support: the `station` CLI as its own process (node runs bin/station.mjs directly: the pid is the station's). */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { openStationDb, type StationDb } from '../native/store/index.js';
import { must } from '../testkit/pki/test-util.js';

const ROOT = join(import.meta.dirname, '..');

/** Start `station ARGS`, without the caller's LINE_STATION_* variables (`env` adds its own, e.g. the PIN). */
export function stationProcess(
  args: readonly string[],
  env: Record<string, string> = {},
): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['bin/station.mjs', ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LINE_STATION_'))),
      ...env,
    },
  });
}

/** The arguments of `station watch` on WO-DEMO-1 for `operator`, on exactly these ports, then `extra`. */
export function watchArgs(dataDir: string, operator: string, ports: readonly string[], extra: readonly string[] = []) {
  return [
    'watch',
    '--data-dir',
    dataDir,
    '--work-order',
    'WO-DEMO-1',
    '--operator',
    operator,
    ...ports.flatMap((p) => ['--port', p]),
    ...extra,
  ];
}

/**
 * Run `station ARGS` to its end (`env` as for stationProcess, e.g. the PINs): its exit code or signal and its output.
 * `killWhen` is polled every 2 ms and SIGKILLs the station (the real process: its pid is node's) once true.
 */
export function runStationProcess(
  args: readonly string[],
  env: Record<string, string> = {},
  killWhen?: () => boolean,
): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((res) => {
    const p = stationProcess(args, env);
    p.stdin.end();
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const poll = killWhen
      ? setInterval(() => {
          if (killWhen()) p.kill('SIGKILL');
        }, 2)
      : undefined;
    p.on('exit', (code, signal) => {
      if (poll) clearInterval(poll);
      res({ code, signal, out });
    });
  });
}

/** The station database `dbFile`, opened for one look (`fn`) and closed. */
export function withStationDb<T>(dbFile: string, fn: (db: StationDb) => T): T {
  const db = must(openStationDb(dbFile));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

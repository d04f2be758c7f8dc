/** Test support: the `station` CLI as its own process (node runs bin/station.mjs directly: the pid is the station's). */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';

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

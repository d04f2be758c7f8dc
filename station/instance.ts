/**
 * Which processes use a station data directory (`run/` in it). Engines (station serve, watch, provision, the
 * desktop engine host) register for as long as they are open; `station rotate-key` takes the directory for itself,
 * because an engine opened before the switch would go on signing with the key the rotation destroys.
 *
 * Each side writes its own marker FIRST and only then looks for the other, so of two processes starting at the
 * same time at least one sees the other and backs off (STATION_BUSY). Markers of processes that no longer run
 * (killed, power loss) are stale and removed. Processes are told apart by pid: several engines of one process
 * (tests, the CLI) do not block each other.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../core/errors.js';
import { ok, type Result } from '../core/result.js';

const RUN_DIR = 'run';
const ROTATION_LOCK = 'rotate-key.lock';
const ENGINE_RE = /^engine-(\d+)-[0-9a-f]{8}\.json$/;

/** Whether process `pid` is alive (EPERM: alive, owned by someone else). */
function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | null {
  try {
    const v = (JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid;
    return typeof v === 'number' ? v : null;
  } catch {
    return null;
  }
}

/** Live engines of OTHER processes in the data dir (stale markers are removed). */
function otherEngines(dir: string): number[] {
  const out: number[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const m = ENGINE_RE.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (!alive(pid)) rmSync(join(dir, n), { force: true });
    else if (pid !== process.pid) out.push(pid);
  }
  return out;
}

/** The pid holding the rotation lock when it is a live OTHER process (a stale lock is removed). */
function rotationHolder(dir: string): number | null {
  const file = join(dir, ROTATION_LOCK);
  const pid = readPid(file);
  if (pid === null) return null;
  if (!alive(pid)) {
    rmSync(file, { force: true });
    return null;
  }
  return pid === process.pid ? null : pid;
}

const marker = (what: string) =>
  JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), what, argv: process.argv.slice(2, 3) });

/** Register an engine; STATION_BUSY while another process rotates the station key. Returns the release function. */
export function registerEngine(dataDir: string): Result<() => void> {
  const dir = join(dataDir, RUN_DIR);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `engine-${process.pid}-${randomBytes(4).toString('hex')}.json`);
    writeFileSync(file, marker('engine'), { mode: 0o600 });
    const holder = rotationHolder(dir);
    if (holder !== null) {
      rmSync(file, { force: true });
      return fail('STATION_BUSY', `the station key is being rotated by process ${holder}: wait until it has finished`, {
        pid: holder,
      });
    }
    return ok(() => rmSync(file, { force: true }));
  } catch (e) {
    return fail('STORE_FAILED', `cannot register in ${dir}: ${(e as Error).message}`);
  }
}

/**
 * Take the data dir for a key rotation: STATION_BUSY while an engine of another process is open (or another
 * rotation runs). Returns the release function.
 */
export function lockForRotation(dataDir: string): Result<() => void> {
  const dir = join(dataDir, RUN_DIR);
  const file = join(dir, ROTATION_LOCK);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (let attempt = 0; ; attempt++) {
      try {
        writeFileSync(file, marker('rotate-key'), { flag: 'wx', mode: 0o600 });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
        const holder = readPid(file);
        if (holder !== null && alive(holder))
          return fail('STATION_BUSY', `another key rotation runs in process ${holder}`, { pid: holder });
        rmSync(file, { force: true }); // stale
      }
    }
    const engines = otherEngines(dir);
    if (engines.length) {
      rmSync(file, { force: true });
      return fail(
        'STATION_BUSY',
        `the station is open in process ${engines.join(', ')} (station serve, watch or the desktop app): stop it before rotating the key`,
        { pids: engines },
      );
    }
    return ok(() => rmSync(file, { force: true }));
  } catch (e) {
    return fail('STORE_FAILED', `cannot lock ${dir}: ${(e as Error).message}`);
  }
}

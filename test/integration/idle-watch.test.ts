/**
 * Issue 12: an idle `station watch` spawned `udevadm info -e` several times a second (serialport's list() on Linux,
 * driven by the discovery poll). The real `station watch` (bin/station.mjs) runs under strace, counting every
 * program it starts: idle with its glob directory empty, it starts nothing after the serial enumerations of its
 * start; then the simulator plugs a board into the watched directory and watch provisions it (found through
 * inotify on the directory, native/port-events.ts). Needs strace (scripts/setup.sh installs it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';

const ROOT = join(import.meta.dirname, '..', '..');
const OP_PIN = '2718';
const hasStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
let w: World;
let pgid: number | undefined;

beforeAll(async () => {
  if (!hasStrace) return;
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }] });
  await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: OP_PIN }]);
}, 120_000);

afterAll(async () => {
  if (pgid !== undefined) {
    try {
      process.kill(-pgid, 'SIGKILL'); // strace and the station it traces: their own process group
    } catch {
      // already gone
    }
  }
  await w?.teardown();
});

/** The programs a trace shows started (successful execve), each with its time (s since midnight) and argv[0..2]. */
function execs(trace: string): Array<{ at: number; what: string }> {
  const out: Array<{ at: number; what: string }> = [];
  for (const line of trace.split('\n')) {
    // `PID HH:MM:SS.ffffff execve("/usr/bin/udevadm", ["udevadm", "info", "-e"], ...) = 0`
    const m = /^\d+\s+(\d+):(\d+):(\d+\.\d+) execve\("([^"]+)", \[([^\]]*)\].*= 0$/.exec(line);
    if (m) out.push({ at: +m[1]! * 3600 + +m[2]! * 60 + +m[3]!, what: `${m[4]} ${m[5]}` });
  }
  return out;
}

describe('an idle station watch is event-driven', () => {
  it.skipIf(!hasStrace)(
    'starts no program while idle (only the serial enumerations of its start); a board plugged into the glob directory is provisioned',
    async () => {
      const port = w.sim.ports[0]!;
      await w.sim.unplug(0);
      const traceFile = join(w.dir, 'watch.trace');
      const env = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !k.startsWith('LINE_STATION_') || k === 'LINE_STATION_RUNTIME'),
      );
      const child = spawn(
        'strace',
        ['-f', '-qq', '-tt', '-e', 'trace=execve', '-e', 'signal=none', '-o', traceFile, process.execPath]
          .concat(['bin/station.mjs', 'watch', '--data-dir', w.dataDir, '--work-order', 'WO-DEMO-1'])
          .concat(['--operator', 'op-1', '--port', join(dirname(port), 'board-*'), '--count', '1']),
        { cwd: ROOT, env: { ...env, LINE_STATION_PIN: OP_PIN }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      );
      pgid = child.pid;
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      for (const t0 = Date.now(); !text.includes('watching for boards'); await new Promise((r) => setTimeout(r, 50)))
        if (Date.now() - t0 > 60_000) throw new Error(`watch did not start:\n${text}`);

      // Idle, nothing in the watched directory: 3 s for the start to settle, then 3 s in which nothing may start.
      await new Promise((r) => setTimeout(r, 3000));
      const settled = execs(readFileSync(traceFile, 'utf8')).length;
      await new Promise((r) => setTimeout(r, 3000));
      const idleTrace = readFileSync(traceFile, 'utf8');
      await w.sim.plug(0);
      const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 60_000))]);
      expect(code, text).toBe(0);
      expect(text).toContain(`[${port}] board attached`);
      expect(text).toMatch(new RegExp(`\\[${port.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\].*PASS`));

      // Everything the station process started until the board was plugged: node itself, then the serial
      // enumerations of its start (`udevadm info -e`: discovery's first look and watch's list()), and nothing in
      // the idle seconds after (the old poll started one every 250 ms).
      const all = execs(idleTrace);
      expect(all[0]?.what, idleTrace).toContain('node');
      const started = all.slice(1);
      expect(started.length, JSON.stringify(started)).toBeLessThanOrEqual(2);
      for (const e of started) expect(e.what).toContain('"info", "-e"');
      expect(all.length, JSON.stringify(all)).toBe(settled);
    },
    120_000,
  );
});

/**
 * One data dir, several processes: an engine of another process blocks `station rotate-key`, a rotation in
 * another process blocks opening an engine (STATION_BUSY), markers of dead processes are stale, and engines of
 * the same process never block each other. The "other process" is a real child process (tsx).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEngine } from './engine.js';
import { lockForRotation, registerEngine } from './instance.js';
import { createWorld, type World } from '../test/harness.js';

const INSTANCE = resolve(import.meta.dirname, 'instance.ts');

/** A child process holding `what` on `dir` until killed; resolves once it holds it. */
function holder(what: 'engine' | 'rotation', dir: string): Promise<ChildProcess> {
  const fn = what === 'engine' ? 'registerEngine' : 'lockForRotation';
  const code = `import { ${fn} } from ${JSON.stringify(INSTANCE)};
const r = ${fn}(${JSON.stringify(dir)});
console.log(r.ok ? 'HELD' : 'FAILED ' + r.error.code);
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((res, rej) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('HELD')) res(child);
      else if (out.includes('FAILED')) {
        child.kill('SIGKILL');
        rej(new Error(out));
      }
    });
    child.on('exit', (c) => rej(new Error(`holder exited ${String(c)}: ${out}`)));
  });
}

const killed = (c: ChildProcess) =>
  new Promise<void>((res) => {
    c.on('exit', () => res());
    c.kill('SIGKILL');
  });

describe('data dir instances', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ls-instance-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("another process's engine blocks a rotation until it is gone; its stale marker is removed", async () => {
    const child = await holder('engine', dir);
    const r = lockForRotation(dir);
    expect(r.ok ? 'ok' : r.error.code).toBe('STATION_BUSY');
    if (!r.ok) expect(r.error.message).toContain(String(child.pid));
    expect(existsSync(join(dir, 'run', 'rotate-key.lock'))).toBe(false); // backed off
    await killed(child); // SIGKILL: the marker stays behind, stale
    expect(readdirSync(join(dir, 'run')).some((n) => n.startsWith(`engine-${child.pid}-`))).toBe(true);
    const again = lockForRotation(dir);
    expect(again.ok).toBe(true);
    expect(readdirSync(join(dir, 'run')).some((n) => n.startsWith(`engine-${child.pid}-`))).toBe(false);
    // this process's own engines do not block, and a second rotation is refused while one runs here
    const mine = registerEngine(dir);
    expect(mine.ok).toBe(true);
    if (mine.ok) mine.value();
    const second = lockForRotation(dir);
    expect(second.ok ? 'ok' : second.error.code).toBe('STATION_BUSY');
    if (second.ok) second.value();
    expect(existsSync(join(dir, 'run', 'rotate-key.lock'))).toBe(true); // still held by `again`
    if (again.ok) again.value();
    expect(readdirSync(join(dir, 'run'))).toEqual([]);
  }, 30_000);

  it('a rotation in another process refuses engines; a dead rotation does not', async () => {
    const child = await holder('rotation', dir);
    const r = registerEngine(dir);
    expect(r.ok ? 'ok' : r.error.code).toBe('STATION_BUSY');
    const second = lockForRotation(dir);
    expect(second.ok ? 'ok' : second.error.code).toBe('STATION_BUSY');
    expect(readdirSync(join(dir, 'run')).filter((n) => n.startsWith('engine-'))).toEqual([]);
    await killed(child);
    const ok = registerEngine(dir);
    expect(ok.ok).toBe(true);
    if (ok.ok) ok.value();
  }, 30_000);
});

describe('openEngine and rotate-key across processes', () => {
  let w: World;
  beforeAll(async () => {
    w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }] });
  }, 60_000);
  afterAll(async () => w?.teardown());

  it('openEngine answers STATION_BUSY while another process rotates the station key', async () => {
    // While this process has the station open, another process cannot start a rotation.
    await expect(holder('rotation', w.dataDir)).rejects.toThrow(/STATION_BUSY/);
    await w.engine.close();
    const child = await holder('rotation', w.dataDir);
    try {
      const e = await openEngine({ dataDir: w.dataDir, logger: w.logger });
      expect(e.ok ? 'ok' : e.error.code).toBe('STATION_BUSY');
      if (e.ok) await e.value.close();
    } finally {
      await killed(child);
    }
    const e = await openEngine({ dataDir: w.dataDir, logger: w.logger });
    expect(e.ok, e.ok ? '' : e.error.message).toBe(true);
    if (e.ok) await e.value.close();
  }, 60_000);
});

/**
 * `station operator add` (PIN from the environment, hashed; supervisor PINs of 6+ digits) and `station serve --open`
 * as a real process: the bridge token is in the 0600 file it names and nowhere else (not on stdout or stderr, not in
 * the logs, not on the argv of the browser launcher or of any process `ps` shows); answers over HTTP with the
 * token, stops cleanly on SIGTERM and removes the file.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../test/harness.js';
import { main } from './cli/program.js';

let w: World;
beforeAll(async () => {
  w = await createWorld({ boards: [] });
}, 60_000);
afterAll(async () => {
  await w?.teardown();
});

describe('station operator / station serve', () => {
  it('adds an operator with a hashed PIN; serve signs them in over HTTP and stops on SIGTERM', async () => {
    const out: string[] = [];
    const o = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
    process.env['LINE_STATION_NEW_PIN'] = '739150';
    try {
      expect(
        await main(
          ['operator', 'add', '--data-dir', w.dataDir, '--id', 'op-9', '--name', 'Nia', '--role', 'supervisor'],
          o,
        ),
      ).toBe(0);
    } finally {
      delete process.env['LINE_STATION_NEW_PIN'];
    }
    expect(await main(['operator', 'add', '--data-dir', w.dataDir, '--id', 'bad id'], o)).toBe(2);
    // A supervisor PIN shorter than auth.supervisorPinMinLength (6) is refused; nothing stored.
    process.env['LINE_STATION_NEW_PIN'] = '73915';
    try {
      const add = ['operator', 'add', '--data-dir', w.dataDir, '--id', 'sup-4', '--name', 'Short', '--role'];
      expect(await main([...add, 'supervisor'], o)).toBe(2);
      expect(out.at(-1)).toMatch(/^AUTH_PIN_POLICY: a supervisor PIN must have at least 6 digits/);
      expect(await main([...add, 'operator'], o)).toBe(0); // operators: 4 digits and up
    } finally {
      delete process.env['LINE_STATION_NEW_PIN'];
    }
    expect(readFileSync(join(w.dataDir, 'station.db')).toString('latin1')).not.toContain('739150');

    await w.engine.close(); // serve opens its own engine (the HSM token allows one login at a time)
    // A stand-in browser launcher on PATH that records its argv and stays alive while `ps` is read.
    const bin = join(w.dir, 'bin');
    mkdirSync(bin, { recursive: true });
    const seenArgv = join(w.dir, 'xdg-open.argv');
    writeFileSync(
      join(bin, 'xdg-open'),
      `#!/bin/sh\nprintf '%s\\n' "$$" "$@" > '${seenArgv}.tmp'\nmv '${seenArgv}.tmp' '${seenArgv}'\nexec sleep 30\n`,
    );
    chmodSync(join(bin, 'xdg-open'), 0o755);
    const child = spawn(process.execPath, ['bin/station.mjs', 'serve', '--open', '--data-dir', w.dataDir], {
      cwd: join(import.meta.dirname, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    const urlFile = join(w.dataDir, 'secrets', 'ui-url.html');
    const t0 = Date.now();
    while (!stdout.includes(urlFile) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 100));
    if (!stdout.includes(urlFile)) throw new Error(`serve printed no URL file\n${stdout}\n${stderr}`);
    const url = /href="([^"]+)"/.exec(readFileSync(urlFile, 'utf8'))?.[1];
    if (!url) throw new Error(`no URL in ${urlFile}`);
    const u = new URL(url);
    const token = u.hash.replace('#token=', '');
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(statSync(urlFile).mode & 0o777).toBe(0o600);
    // The launcher got the file's path, not the URL; no process on the machine shows the token on its argv.
    while (!existsSync(seenArgv) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 100));
    const [launcherPid, ...launcherArgv] = readFileSync(seenArgv, 'utf8').trim().split('\n');
    expect(launcherArgv).toEqual([urlFile]);
    let procs = 0;
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let argv: string;
      try {
        argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      } catch {
        continue; // gone, or not ours to read
      }
      procs++;
      expect(argv, `pid ${pid}`).not.toContain(token);
    }
    expect(procs).toBeGreaterThan(2);
    process.kill(Number(launcherPid), 'SIGTERM'); // the stand-in launcher (the real process: it exec'd sleep)
    const r = await fetch(`${u.origin}/api/signIn`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'X-Client-Id': 't1' },
      body: JSON.stringify({ operatorId: 'op-9', pin: '739150' }),
    });
    expect(await r.json()).toMatchObject({ ok: true, value: { operatorId: 'op-9', role: 'supervisor' } });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Not on stdout or stderr, not in any log; the file is gone with the process.
    expect(stdout + stderr).not.toContain(token);
    for (const f of readdirSync(join(w.dataDir, 'logs')))
      expect(readFileSync(join(w.dataDir, 'logs', f), 'latin1'), f).not.toContain(token);
    expect(existsSync(urlFile)).toBe(false);
    await w.reopen();
  }, 90_000);
});

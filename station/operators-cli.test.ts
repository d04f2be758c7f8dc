/**
 * `station operator add` (PIN from the environment, hashed) and `station serve` as a real process:
 * prints the URL, answers over HTTP with the token, stops cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../test/harness.js';
import { main } from './cli.js';

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
    expect(readFileSync(join(w.dataDir, 'station.db')).toString('latin1')).not.toContain('739150');

    await w.engine.close(); // serve opens its own engine (the HSM token allows one login at a time)
    const child = spawn(process.execPath, ['bin/station.mjs', 'serve', '--data-dir', w.dataDir], {
      cwd: join(import.meta.dirname, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
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
    const r = await fetch(`${u.origin}/api/signIn`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'X-Client-Id': 't1' },
      body: JSON.stringify({ operatorId: 'op-9', pin: '739150' }),
    });
    expect(await r.json()).toMatchObject({ ok: true, value: { operatorId: 'op-9', role: 'supervisor' } });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await w.reopen();
  }, 90_000);
});

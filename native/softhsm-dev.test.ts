import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SOFTHSM_MODULE_CANDIDATES, createSoftHsmEnv, findSoftHsmModule, initToken } from './softhsm-dev.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'line-station-softhsm-'));
  dirs.push(d);
  return d;
}

describe('softhsm-dev', () => {
  it('createSoftHsmEnv writes the config, creates the token dir and sets SOFTHSM2_CONF', async () => {
    const dir = await tempDir();
    const env = await createSoftHsmEnv(dir);
    expect(env.conf).toBe(join(dir, 'softhsm2.conf'));
    expect(env.tokenDir).toBe(join(dir, 'tokens'));
    expect(process.env['SOFTHSM2_CONF']).toBe(env.conf);
    expect((await stat(env.tokenDir)).isDirectory()).toBe(true);
    const conf = await readFile(env.conf, 'utf8');
    expect(conf).toContain(`directories.tokendir = ${env.tokenDir}`);
    expect(conf).toContain('objectstore.backend = file');
    expect(conf).toContain('log.level = ERROR');
    expect(env.module).toBe(findSoftHsmModule());
  });

  it('initToken initialises tokens in free slots; softhsm2-util sees them in our directory only', async () => {
    const dir = await tempDir();
    const env = await createSoftHsmEnv(dir);
    const a = await initToken(env, { label: 'line-a', soPin: 'so-secret-1', pin: 'user-secret-1' });
    const b = await initToken(env, { label: 'line-b', soPin: 'so-secret-1', pin: 'user-secret-1' });
    expect(a.ok && b.ok).toBe(true);
    if (!a.ok || !b.ok) return;
    expect(a.value.slot).toMatch(/^\d+$/);
    expect(a.value.slot).not.toBe(b.value.slot);
    const slots = execFileSync('softhsm2-util', ['--show-slots'], {
      env: { ...process.env, SOFTHSM2_CONF: env.conf },
    }).toString();
    expect(slots).toContain('line-a');
    expect(slots).toContain('line-b');
    expect(slots).toContain(`Slot ${a.value.slot}`);
  });

  it('initToken rejects bad input without running the tool, and never echoes PINs', async () => {
    const env = await createSoftHsmEnv(await tempDir());
    const short = await initToken(env, { label: 'x', soPin: 'so-secret', pin: '12' });
    expect(short.ok ? null : short.error.code).toBe('INPUT_INVALID');
    const longLabel = await initToken(env, { label: 'l'.repeat(33), soPin: 'so-secret', pin: 'user-secret' });
    expect(longLabel.ok ? null : longLabel.error.code).toBe('INPUT_INVALID');
    // A tool failure (unwritable token dir) reports HSM_FAILED without the PINs.
    const broken = { ...env, conf: join(env.tokenDir, 'does-not-exist.conf') };
    const r = await initToken(broken, { label: 'x', soPin: 'so-SECRET-77', pin: 'user-SECRET-77' });
    expect(r.ok ? null : r.error.code).toBe('HSM_FAILED');
    expect(JSON.stringify(r)).not.toMatch(/SECRET-77/);
  });

  it('module discovery honours LINE_STATION_PKCS11_MODULE when the file exists', () => {
    const found = findSoftHsmModule({});
    expect(found === null || SOFTHSM_MODULE_CANDIDATES.includes(found)).toBe(true);
    const self = new URL(import.meta.url).pathname;
    expect(findSoftHsmModule({ LINE_STATION_PKCS11_MODULE: self })).toBe(self);
    expect(findSoftHsmModule({ LINE_STATION_PKCS11_MODULE: '/nonexistent/lib.so' })).toBe(found);
  });
});

/**
 * The shipped token catalogue (resources/tokens): every file valid, ids match file names, the committed JSON Schema
 * is the one the zod schema generates, and a station's token configuration resolves to library parameters.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { tokenProfileJsonSchema } from '../../core/hsm/token-profile.js';
import { DEFAULT_TOKEN_PROFILE_DIR, loadTokenProfiles, resolveTokenConfig, tokenProfileFor } from './index.js';

describe('shipped token profiles', () => {
  it('load, one per implementation, ids matching the file names', () => {
    const r = loadTokenProfiles();
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.map((p) => p.id)).toEqual(['nss-softoken', 'softhsm2', 'tpm2-pkcs11']);
    expect(r.value.filter((p) => p.measured.inCi).map((p) => p.id)).toEqual(['nss-softoken', 'softhsm2']);
  });

  it('the committed JSON Schema is generated from the zod schema', async () => {
    const file = join(DEFAULT_TOKEN_PROFILE_DIR, 'schema', 'token-profile.v1.schema.json');
    const want = await format(JSON.stringify(tokenProfileJsonSchema(), null, 2), {
      ...(await resolveConfig(file)),
      filepath: file,
    });
    expect(readFileSync(file, 'utf8')).toBe(want);
  });

  it('a bad file is refused with HSM_TOKEN_PROFILE_INVALID naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ls-token-profiles-'));
    try {
      writeFileSync(join(dir, 'x.json'), JSON.stringify({ schema: 'line-station/token-profile/v1', id: 'y' }));
      const r = loadTokenProfiles(dir);
      expect(r.ok ? null : r.error.code).toBe('HSM_TOKEN_PROFILE_INVALID');
      expect(r.ok ? '' : r.error.message).toContain('x.json');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('resolveTokenConfig', () => {
  it('NSS: the profile named or matched from the module, library parameters with the directory and label', () => {
    const r = resolveTokenConfig({
      module: '/usr/lib/x86_64-linux-gnu/libsoftokn3.so',
      tokenLabel: 'LS Station',
      tokenDir: '/data/tokens/nss',
    });
    expect(r.ok ? r.value.libraryParameters : null).toContain("configdir='sql:/data/tokens/nss'");
    expect(r.ok ? r.value.libraryParameters : null).toContain("dbTokenDescription='LS Station'");
    const noDir = resolveTokenConfig({ module: '/usr/lib/x86_64-linux-gnu/libsoftokn3.so', tokenLabel: 'L' });
    expect(noDir.ok ? null : noDir.error.code).toBe('CONFIG_INVALID');
    const unknown = resolveTokenConfig({ module: '/x.so', tokenLabel: 'L', profile: 'no-such' });
    expect(unknown.ok ? null : unknown.error.code).toBe('HSM_TOKEN_PROFILE_INVALID');
  });

  it('SoftHSM2 and unknown modules: no library parameters', () => {
    const s = resolveTokenConfig({ module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'L' });
    expect(s.ok ? s.value : null).toEqual({});
    const v = tokenProfileFor('/opt/vendor/libvendor-p11.so');
    expect(v.ok ? v.value : 'x').toBeNull();
  });
});

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PROFILE_DIR, loadProfilesFromDir } from './profiles-fs.js';

const tmp = mkdtempSync(join(tmpdir(), 'ls-prof-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const se = readFileSync(join(DEFAULT_PROFILE_DIR, 'ls-sim-se.json'), 'utf8');

function dirWith(name: string, files: Record<string, string>): string {
  const d = join(tmp, name);
  mkdirSync(d);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  return d;
}

describe('loadProfilesFromDir', () => {
  it('loads the shipped profiles', () => {
    const r = loadProfilesFromDir(DEFAULT_PROFILE_DIR);
    expect(r.ok && r.value.map((p) => p.id)).toEqual([
      'esp32-s3-devkitc',
      'ls-sim-basic',
      'ls-sim-se',
      'tpm2-ecc-ek',
      'tpm2-rsa-ek',
    ]);
  });

  it('reads only *.json and reports bad JSON, bad fields and duplicates with the file name', () => {
    const ok = loadProfilesFromDir(dirWith('ok', { 'a.json': se, 'README.md': '# not a profile' }));
    expect(ok.ok && ok.value).toHaveLength(1);

    const badJson = loadProfilesFromDir(dirWith('badjson', { 'a.json': se, 'b.json': '{ "schema": ' }));
    expect(badJson.ok).toBe(false);
    if (!badJson.ok) {
      expect(badJson.error.code).toBe('INPUT_INVALID');
      expect(badJson.error.message).toContain('b.json');
    }

    const badField = loadProfilesFromDir(dirWith('badfield', { 'a.json': se.replace('"0x4c53"', '"0xZZ53"') }));
    expect(!badField.ok && badField.error.details?.path).toBe('match.usb[0].productId');

    const dup = loadProfilesFromDir(dirWith('dup', { 'a.json': se, 'b.json': se }));
    expect(!dup.ok && dup.error.message).toMatch(/duplicate board profile id "ls-sim-se".*a\.json.*b\.json/);

    const huge = loadProfilesFromDir(dirWith('huge', { 'a.json': ' '.repeat(300 * 1024) + se }));
    expect(!huge.ok && huge.error.message).toContain('too large');
  });

  it('an empty or missing directory is an error, not an empty success', () => {
    const empty = loadProfilesFromDir(dirWith('empty', {}));
    expect(!empty.ok && empty.error.code).toBe('INPUT_INVALID');
    const missing = loadProfilesFromDir(join(tmp, 'missing'));
    expect(!missing.ok && missing.error.code).toBe('CONFIG_INVALID');
  });

  it('scripts/gen-udev.ts --check agrees that the committed rules are current', () => {
    const root = new URL('../', import.meta.url).pathname;
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'scripts/gen-udev.ts', '--check'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(out).toContain('up to date');
  });
});

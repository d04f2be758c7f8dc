import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkPrivateTree, createPrivateFile, preparePrivateDir } from './data-dir.js';
import { writeFileAtomic } from './atomic-file.js';

const tmp = mkdtempSync(join(tmpdir(), 'ls-datadir-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o777;

describe('private data dirs', () => {
  it('creates private files whatever the umask, and leaves an existing file as it is', () => {
    const old = process.umask(0o022);
    try {
      const db = join(tmp, 'a.db');
      createPrivateFile(db);
      expect(mode(db)).toBe(0o600);
      writeFileSync(db, 'x');
      createPrivateFile(db);
      expect(statSync(db).size).toBe(1);
      const f = join(tmp, 'atomic.json');
      writeFileAtomic(f, '{}');
      expect(mode(f)).toBe(0o600);
      // A stale temporary file of a crashed run (0644) does not pass its mode on.
      writeFileSync(`${f}.tmp-${process.pid}`, 'old', { mode: 0o644 });
      writeFileAtomic(f, '{"a":1}');
      expect(mode(f)).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it('refuses a dir, file or nested entry others can read or write, naming the fix; skips missing entries', () => {
    const d = join(tmp, 'station');
    mkdirSync(join(d, 'hsm', 'tokens', 'uuid'), { recursive: true, mode: 0o700 });
    writeFileSync(join(d, 'station.db'), '', { mode: 0o600 });
    writeFileSync(join(d, 'hsm', 'tokens', 'uuid', 'token.object'), '', { mode: 0o600 });
    const entries = [{ path: '' }, { path: 'station.db' }, { path: 'missing.db' }, { path: 'hsm', children: true }];
    expect(checkPrivateTree(d, entries).ok).toBe(true);

    chmodSync(d, 0o755);
    const r1 = checkPrivateTree(d, entries);
    expect(!r1.ok && r1.error).toMatchObject({ code: 'CONFIG_INSECURE_PERMISSIONS', details: { entry: '.' } });
    expect(!r1.ok && r1.error.message).toBe(`${d} has mode 0755: group or others can read it; fix: chmod 700 ${d}`);
    chmodSync(d, 0o700);

    chmodSync(join(d, 'station.db'), 0o666);
    const r2 = checkPrivateTree(d, entries);
    expect(!r2.ok && r2.error.message).toContain(`can write it; fix: chmod 600 ${join(d, 'station.db')}`);
    chmodSync(join(d, 'station.db'), 0o600);

    // Two levels below a folder with `children`: hsm/tokens/uuid is checked, its files are not.
    chmodSync(join(d, 'hsm', 'tokens', 'uuid'), 0o750);
    expect(checkPrivateTree(d, entries).ok).toBe(false);
    chmodSync(join(d, 'hsm', 'tokens', 'uuid'), 0o700);
    expect(checkPrivateTree(d, [{ path: join(d, 'hsm', 'tokens'), children: true }]).ok).toBe(true);
    chmodSync(join(d, 'hsm', 'tokens', 'uuid', 'token.object'), 0o644);
    expect(checkPrivateTree(d, [{ path: join(d, 'hsm', 'tokens'), children: true }]).ok).toBe(false);
  });

  it('init tightens a folder made by hand, creates a missing one nowhere else', () => {
    const d = join(tmp, 'by-hand');
    mkdirSync(d, { mode: 0o755 });
    chmodSync(d, 0o755);
    expect(preparePrivateDir(d).ok).toBe(true);
    expect(mode(d)).toBe(0o700);
    expect(preparePrivateDir(join(tmp, 'not-there')).ok).toBe(true);
  });
});

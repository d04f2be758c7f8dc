/**
 * Sign-in attempt accounting in SQLite (native/store/operators.ts, migration 5): admissions from four processes
 * racing on one subject never exceed the limit; the back-off doubles and is capped; a known badge's undo takes back
 * only its own attempt and lock; migration 5 carries a lock of the old operators columns over and clears unsalted
 * badge hashes; a badge enrolled for another operator is a typed refusal (duplicate-badge).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, MIGRATIONS } from './migrations.js';
import { createAttemptStore, createOperatorStore } from './operators.js';
import { isStoreError } from './store-error.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ls-attempts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const LIMIT = { maxAttempts: 5, lockMs: 300_000, maxLockMs: 3_600_000 };

function open(name: string, upTo = MIGRATIONS.length): Database.Database {
  const db = new Database(join(dir, name));
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  const m = migrate(db, MIGRATIONS.slice(0, upTo));
  if (!m.ok) throw new Error(m.message);
  return db;
}

function worker(file: string, startAt: number, tries: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, '../../testkit/workers/attempts-worker.ts'), file, String(startAt), String(tries)],
      { cwd: join(here, '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(err))));
  });
}

describe('auth_attempts', () => {
  it('four processes racing on one subject get at most the limit admitted in all', async () => {
    open('race.db').close();
    const startAt = Date.now() + 3000;
    const admitted = await Promise.all([1, 2, 3, 4].map(() => worker(join(dir, 'race.db'), startAt, 200)));
    expect(admitted.reduce((a, b) => a + b, 0)).toBe(LIMIT.maxAttempts);
    const db = open('race.db');
    expect(createAttemptStore(db).get('operator:race')).toMatchObject({ attempts: 5, lockouts: 1 });
    db.close();
  }, 60_000);

  it('locks double up to the cap; the back-off restarts after a long quiet spell; undo takes back its own lock', () => {
    const db = open('backoff.db');
    const a = createAttemptStore(db);
    let t = 1_000_000;
    const lengths: number[] = [];
    for (let lock = 0; lock < 6; lock++) {
      for (let i = 0; i < LIMIT.maxAttempts; i++) {
        const r = a.admit('operator:x', t, LIMIT);
        expect(r.ok).toBe(true);
      }
      const st = a.get('operator:x')!;
      expect(a.admit('operator:x', t + 1, LIMIT)).toEqual({ ok: false, lockedUntilMs: st.lockedUntilMs });
      lengths.push(st.lockedUntilMs! - t);
      t = st.lockedUntilMs! + 1;
    }
    expect(lengths).toEqual([300_000, 600_000, 1_200_000, 2_400_000, 3_600_000, 3_600_000]);
    // Quiet for longer than the cap: the next lock is the first length again.
    t += LIMIT.maxLockMs + 1;
    for (let i = 0; i < LIMIT.maxAttempts; i++) a.admit('operator:x', t, LIMIT);
    expect(a.get('operator:x')!.lockedUntilMs! - t).toBe(300_000);

    for (let i = 0; i < LIMIT.maxAttempts - 1; i++) a.admit('badge', t, LIMIT);
    const last = a.admit('badge', t, LIMIT);
    if (!last.ok) throw new Error('not admitted');
    expect(last.admission.lockedUntilMs).not.toBeNull();
    a.undo(last.admission, t);
    expect(a.get('badge')).toMatchObject({ attempts: LIMIT.maxAttempts - 1, lockouts: 0, lockedUntilMs: null });
    a.clear('operator:x', t);
    expect(a.get('operator:x')).toMatchObject({ attempts: 0, lockouts: 0, lockedUntilMs: null });
    db.close();
  });

  it('migration 5 keeps a lock of the old columns and clears unsalted badge hashes', () => {
    const db = open('legacy.db', 4);
    const until = new Date(Date.now() + 120_000).toISOString().replace(/\.\d+Z$/, '.000Z');
    db.prepare(
      `INSERT INTO operators (operator_id, name, role, pin_hash, badge_hash, revoked, failed_attempts, locked_until, created_at, updated_at)
       VALUES ('old-1', 'Old', 'operator', 'scrypt$x', ?, 0, 5, ?, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')`,
    ).run('a'.repeat(64), until);
    const m = migrate(db, MIGRATIONS);
    expect(m).toMatchObject({ ok: true, to: MIGRATIONS.length });
    expect(createAttemptStore(db).get('operator:old-1')).toMatchObject({
      attempts: 5,
      lockouts: 1,
      lockedUntilMs: Date.parse(until),
    });
    expect(createOperatorStore(db).get('old-1')).toMatchObject({ badgeHash: null, pinHash: 'scrypt$x' });
    db.close();
  });
});

describe('operators', () => {
  it('a badge enrolled for another operator is refused with the typed reason duplicate-badge', () => {
    const db = open('badge.db');
    const ops = createOperatorStore(db);
    const pinHash = 'scrypt$1$1$1$salt$hash';
    const now = '2026-01-01T00:00:00.000Z';
    ops.upsert({ operatorId: 'op-1', name: 'One', role: 'operator', pinHash, badgeHash: 'hmac-sha256$aa' }, now);
    // The same operator again with its own badge is an update, not a refusal.
    ops.upsert({ operatorId: 'op-1', name: 'One', role: 'supervisor', pinHash, badgeHash: 'hmac-sha256$aa' }, now);
    let thrown: unknown;
    try {
      ops.upsert({ operatorId: 'op-2', name: 'Two', role: 'operator', pinHash, badgeHash: 'hmac-sha256$aa' }, now);
    } catch (e) {
      thrown = e;
    }
    expect(isStoreError(thrown, 'duplicate-badge')).toBe(true);
    expect(ops.get('op-2')).toBeNull();
    expect(ops.get('op-1')).toMatchObject({ role: 'supervisor', badgeHash: 'hmac-sha256$aa' });
    db.close();
  });
});

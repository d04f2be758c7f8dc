/**
 * The group commit of `whenDurable` (durability.ts): concurrent callers share one fdatasync of the WAL, each
 * resolved only after a sync that started after its commit; a WAL restart between a commit and its sync keeps it
 * durable (a real process under strace, power cut rebuilt from what was synced: testkit/workers/wal-restart-worker.ts);
 * a WAL deleted and made anew (journal mode switch) falls back to the barrier; NORMAL resolves at once.
 */
import { existsSync, fdatasync, mkdtempSync, readFileSync, rmSync, statSync, fstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createDurability } from './durability.js';
import { openStationDb } from './index.js';
import { must } from '../../testkit/pki/test-util.js';
import { durableAt, isSyncOf, traced, writeMatching } from '../../testkit/strace.js';

const here = import.meta.dirname;
const root = join(here, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'ls-group-commit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fdatasyncP = promisify(fdatasync);

let n = 0;
/** A WAL database at `synchronous = level` with a table `t`; its durability, syncs observed by `datasync`. */
function open(level: 'FULL' | 'NORMAL', datasync?: (fd: number) => Promise<void>) {
  const file = join(dir, `db${++n}.sqlite`);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${level}`);
  db.exec('CREATE TABLE t (v INTEGER)');
  const wal = `${file}-wal`;
  const d = createDurability(db, level, datasync ? { path: wal, datasync } : { path: wal });
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  const commit = (v: number): void => void d.deferred(() => db.transaction(() => insert.run(v)).immediate());
  return { db, d, wal, commit };
}

const tick = () => new Promise((r) => setImmediate(r));
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await tick();
  expect(cond()).toBe(true);
}

describe('whenDurable: group commit', () => {
  it('closed while a sync runs: that sync still serves its callers, the ones queued after it and later calls are refused', async () => {
    const gates: (() => void)[] = [];
    const { db, d, commit } = open('FULL', async (fd) => {
      await new Promise<void>((r) => gates.push(r));
      await fdatasyncP(fd);
    });
    commit(1);
    const first = d.whenDurable();
    await until(() => gates.length === 1);
    commit(2);
    const queued = d.whenDurable();
    d.close();
    gates[0]!();
    await expect(first).resolves.toBeUndefined();
    await expect(queued).rejects.toThrow(/closed/);
    await expect(d.whenDurable()).rejects.toThrow(/closed/);
    expect(gates).toHaveLength(1); // no sync started after close
    db.close();
  });

  it('N waiters share fewer syncs; each resolves after a sync started after its commit', async () => {
    const events: string[] = [];
    const gates: (() => void)[] = [];
    const { db, d, commit } = open('FULL', async (fd) => {
      const k = gates.length + 1;
      events.push(`start ${k}`);
      await new Promise<void>((r) => gates.push(r));
      await fdatasyncP(fd);
      events.push(`end ${k}`);
    });
    const N = 8;
    const waiters: Promise<void>[] = [];
    for (let i = 1; i <= N; i++) {
      commit(i);
      events.push(`commit ${i}`);
      waiters.push(d.whenDurable().then(() => void events.push(`resolved ${i}`)));
      if (i === 1) await until(() => gates.length === 1); // the first sync runs while 2..N commit
    }
    gates[0]!();
    await waiters[0];
    await tick();
    expect(events.filter((e) => e.startsWith('resolved'))).toEqual(['resolved 1']); // 2..N committed after it started
    await until(() => gates.length === 2);
    gates[1]!();
    await Promise.all(waiters);
    expect(d.groupCommits).toEqual({ syncs: 2, fallbacks: 0, waiters: N });
    for (let i = 1; i <= N; i++) {
      const committed = events.indexOf(`commit ${i}`);
      const resolved = events.indexOf(`resolved ${i}`);
      const covering = events.findIndex((e, at) => {
        const m = /^start (\d+)$/.exec(e);
        return m !== null && at > committed && events.indexOf(`end ${m[1]}`) < resolved;
      });
      expect(covering, `waiter ${i}: ${events.join(', ')}`).toBeGreaterThan(committed);
    }
    d.close();
    db.close();
  });

  it('16 callers at once: one sync for all (real fdatasync)', async () => {
    const { db, d, commit } = open('FULL');
    const all: Promise<void>[] = [];
    for (let i = 0; i < 16; i++) {
      commit(i);
      all.push(d.whenDurable());
    }
    await Promise.all(all);
    expect(d.groupCommits.syncs).toBeLessThan(16);
    expect(d.groupCommits.fallbacks).toBe(0);
    d.close();
    db.close();
  });

  it('a WAL deleted and made anew (journal mode switch) falls back to the barrier, then syncs the new WAL', async () => {
    const synced: number[] = [];
    let wal = '';
    const {
      db,
      d,
      commit,
      wal: w,
    } = open('FULL', async (fd) => {
      synced.push(fstatSync(fd).ino);
      await fdatasyncP(fd);
    });
    wal = w;
    commit(1);
    await d.whenDurable();
    const before = statSync(wal).ino;
    expect(synced).toEqual([before]);
    db.pragma('journal_mode = DELETE'); // checkpoints and deletes the WAL
    expect(existsSync(wal)).toBe(false);
    db.pragma('journal_mode = WAL');
    commit(2); // a new WAL file
    const after = statSync(wal).ino;
    expect(after).not.toBe(before);
    await d.whenDurable();
    expect(d.groupCommits.fallbacks).toBe(1); // synced the old inode: not trusted, barrier instead
    commit(3);
    await d.whenDurable();
    expect(d.groupCommits.fallbacks).toBe(1);
    expect(synced.at(-1)).toBe(after); // opened anew on the WAL now at the path
    d.close();
    db.close();
  });

  it('resolves at once on a connection opened at NORMAL, without a sync', async () => {
    const { db, d, commit } = open('NORMAL', () => Promise.reject(new Error('no sync at NORMAL')));
    commit(1);
    await d.whenDurable();
    expect(d.groupCommits).toEqual({ syncs: 0, fallbacks: 0, waiters: 0 });
    d.close();
    db.close();
  });

  it('rejects with what the fallback barrier throws (the connection closed)', async () => {
    const { db, d, commit } = open('FULL', () => Promise.reject(new Error('EIO')));
    commit(1);
    db.close();
    await expect(d.whenDurable()).rejects.toThrow(/not open/);
    d.close();
  });
});

describe('whenDurable across a WAL restart (strace, power cut)', () => {
  it(
    'commits before a checkpoint and the WAL restart after it are durable once whenDurable resolves',
    { timeout: 60_000 },
    async () => {
      const db = join(dir, 'station.db');
      must(openStationDb(db)).close();
      const base = new Map<string, Buffer>();
      for (const f of [db, `${db}-wal`]) if (existsSync(f)) base.set(f, readFileSync(f));
      const r = await traced(
        process.execPath,
        ['--import', 'tsx', join(root, 'testkit/workers/wal-restart-worker.ts'), db],
        {
          log: join(dir, 'worker.strace'),
        },
      );
      expect(r.out, r.out).toMatch(/^durable$/m);
      const [, one, two, busy] = /^committed (\S+) (\S+) (-?\d+)$/m.exec(r.out)!;
      expect(busy).toBe('0'); // the checkpoint completed: the next commit restarts the WAL
      const calls = r.calls;
      const start = writeMatching(calls, /^start\n$/);
      const committed = writeMatching(calls, /^committed /);
      const durable = writeMatching(calls, /^durable\n$/);
      expect(0 < start && start < committed && committed < durable, r.out).toBe(true);
      const wal = `${db}-wal`;
      // The WAL restarted: board 2's frames written again from the file's start, after the checkpoint's syncs.
      const dbSynced = calls.findIndex((c, i) => i > start && isSyncOf(c, db));
      expect(dbSynced).toBeGreaterThan(start);
      const rewritten = calls.slice(dbSynced, committed).filter((c) => c.name === 'pwrite64' && c.path === wal);
      expect(rewritten[0]?.offset).toBe(0);
      expect(calls.slice(committed, durable).filter((c) => isSyncOf(c, wal)).length).toBeGreaterThan(0);

      const cut = (at: number, name: string) =>
        must(openStationDb(durableAt(calls, at, db, base, join(dir, name)), { readonly: true }));
      const early = cut(committed, 'cut-committed');
      try {
        // Board 1 is in the database file (the checkpoint synced it); board 2 only in the unsynced restarted WAL.
        expect(early.store.listRecords().map((x) => x.recordId)).toEqual([one]);
      } finally {
        early.close();
      }
      const kept = cut(durable, 'cut-durable');
      try {
        expect(
          kept.store
            .listRecords()
            .map((x) => x.recordId)
            .sort(),
        ).toEqual([one, two].sort());
        expect(kept.store.integrityCheck()).toEqual(['ok']);
        expect(kept.store.verifyAudit()).toMatchObject({ ok: true });
      } finally {
        kept.close();
      }
    },
  );
});

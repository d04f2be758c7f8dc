/**
 * When a commit of the station database reaches the disk (docs/audit.md "Power loss and crashes"). The connection
 * runs in WAL mode at `synchronous = FULL` (station-db.ts): a FULL commit fsyncs the WAL before it returns. A
 * commit made at `synchronous = NORMAL` is just as atomic and survives a crash of the process (SIGKILL): it is in
 * the WAL file (the OS page cache) the moment COMMIT returns; only a power loss or an OS crash can roll it back,
 * and then only together with every later commit, back to the last fsync of the WAL. The next FULL commit fsyncs
 * the whole WAL file and so makes every earlier commit durable with it.
 *
 * So the Store commits a step whose loss is the same as a crash just before it (the flow resumes from the last
 * checkpoint it finds) `deferred`, and commits durably what must not be lost once the station acts on it outside.
 * Two of those, the hot ones of every board (the checkpoint that logs an issued certificate, completeRun), are
 * committed deferred too and then awaited with `whenDurable` before the station acts (the certificate written to
 * the board; PASS, label, sync): an fdatasync of the WAL file run in the libuv pool, off the event loop, shared by
 * every caller waiting at that moment (group commit). A failure or refusal is committed FULL before it is reported.
 * Before anything leaves the station built from the chain as it is (the audit head and proof of a sync batch or
 * bundle) the exporter calls `barrier`.
 *
 * Why an fdatasync of `<db>-wal` is enough: every commit is in the WAL file (same inode, SQLite keeps it open) or,
 * after a checkpoint, in the database file, and a checkpoint fsyncs the WAL before it copies and the database
 * after (SQLite does so at NORMAL too); a WAL restart only reuses the file from its start once everything in it
 * was checkpointed. On Linux fdatasync flushes the file's dirty pages whoever wrote them, through any descriptor.
 * If the path no longer names the inode synced (the WAL deleted and made anew: a journal mode switch) or the sync
 * fails, `whenDurable` falls back to `barrier`.
 *
 * May import: better-sqlite3 types, node:fs.
 */
import { closeSync, fdatasync, fstat, openSync, stat } from 'node:fs';
import { promisify } from 'node:util';
import type Database from 'better-sqlite3';

/** The synchronous level a connection was opened with (station-db.ts). */
export type SyncLevel = 'FULL' | 'NORMAL';

/** Commit durability of one connection. */
export interface Durability {
  /**
   * Run `fn` (which opens and commits its own transaction) with its commit deferred: `synchronous = NORMAL` for
   * that commit only, back to the connection's level after. Atomic and crash-safe; durable at the next FULL
   * commit or barrier. Must not be called inside a transaction (SQLite ignores the pragma there).
   */
  deferred<T>(fn: () => T): T;
  /**
   * Make every commit so far durable, whichever connection or process made it: one FULL commit that rewrites the
   * database header's `user_version` with its own value (one page: SQLite fsyncs the WAL at its commit; the fsync
   * covers the whole WAL file, so every earlier commit with it). A no-op on a connection opened at NORMAL (which
   * opted out of durability: benchmarks, tests). Throws what better-sqlite3 throws (callers wrap it in a StoreError).
   */
  barrier(): void;
  /**
   * Resolves once every commit made before the call (by any connection) is on disk: after an fdatasync of the WAL
   * file that started after the call, in the libuv pool (group commit: callers arriving while a sync runs share
   * the next one). Falls back to `barrier` when the WAL file at the path is not the one synced or a sync fails.
   * Resolves at once on a connection opened at NORMAL. Rejects with what `barrier` throws.
   */
  whenDurable(): Promise<void>;
  /** WAL syncs run and fallbacks to `barrier` taken by `whenDurable` so far, and callers it served. */
  readonly groupCommits: { readonly syncs: number; readonly fallbacks: number; readonly waiters: number };
  /**
   * Close the WAL descriptor (once the sync running, if any, ends); callers still waiting for a later sync, and any
   * later call, are refused. The connection is closed by its owner.
   */
  close(): void;
}

/** How `whenDurable` reaches the WAL file. */
export interface WalSync {
  /** The WAL file: `<database file>-wal`. */
  readonly path: string;
  /** The fdatasync of a descriptor (default: node:fs fdatasync, in the libuv pool); tests observe syncs with it. */
  readonly datasync?: (fd: number) => Promise<void>;
}

const fdatasyncP = promisify(fdatasync);
const fstatP = promisify(fstat);
const statP = promisify(stat);

/** The durability of `db`, opened at `level`. */
export function createDurability(db: Database.Database, level: SyncLevel, wal?: WalSync): Durability {
  // Not prepared statements: SQLite applies `PRAGMA synchronous = X` when the statement is compiled, so a prepared one
  // would take effect once, at prepare time. exec compiles it anew every time (~20 µs).
  const setNormal = (): void => void db.exec('PRAGMA synchronous = NORMAL');
  const setLevel = (): void => void db.exec(`PRAGMA synchronous = ${level}`);
  const rewriteVersion = db.transaction(() => {
    const v = db.pragma('user_version', { simple: true }) as number;
    db.pragma(`user_version = ${Math.floor(v)}`);
  });
  const barrier = (): void => {
    if (level === 'NORMAL') return;
    rewriteVersion.immediate();
  };
  const group = wal && level === 'FULL' ? createGroupCommit(wal, barrier) : null;
  return {
    barrier,
    whenDurable: group ? group.whenDurable : () => Promise.resolve(),
    get groupCommits() {
      return group ? { ...group.stats } : { syncs: 0, fallbacks: 0, waiters: 0 };
    },
    close: () => group?.close(),
    deferred(fn) {
      if (level === 'NORMAL') return fn();
      setNormal();
      try {
        return fn();
      } finally {
        setLevel();
      }
    },
  };
}

/** Callers waiting for the same sync. */
interface Batch {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * The group commit of `whenDurable`: at most one WAL sync runs; callers arriving meanwhile wait in the next batch,
 * whose sync starts when the running one ends (so after their commits).
 */
function createGroupCommit(wal: WalSync, barrier: () => void) {
  const datasync = wal.datasync ?? ((fd: number) => fdatasyncP(fd));
  const stats = { syncs: 0, fallbacks: 0, waiters: 0 };
  let fd: number | null = null;
  let running = false;
  let closed = false;
  let next: Batch | null = null;

  const closeFd = (): void => {
    if (fd === null) return;
    try {
      closeSync(fd);
    } catch {
      // nothing to keep: the descriptor is gone either way
    }
    fd = null;
  };

  /** Sync the WAL through `fd` and check the path still names it; false when in doubt (then: barrier). */
  async function syncWal(): Promise<boolean> {
    try {
      // Opened on first use (the WAL exists once the connection wrote); read-only is enough for fdatasync on Linux.
      fd ??= openSync(wal.path, 'r');
      const mine = fd;
      await datasync(mine);
      stats.syncs++;
      const [a, b] = await Promise.all([fstatP(mine), statP(wal.path)]);
      if (a.ino === b.ino && a.dev === b.dev) return true;
    } catch {
      // no WAL file, or the sync failed: the barrier decides
    }
    closeFd(); // a WAL made anew is opened again next time
    return false;
  }

  /** After close: the descriptor closed, and callers still waiting for a sync that will not run are refused. */
  function stop(): void {
    closeFd();
    next?.reject(new Error('the station database is closed'));
    next = null;
  }

  function start(): void {
    const batch = next;
    if (!batch || running) return;
    next = null;
    running = true;
    void syncWal().then((synced) => {
      try {
        if (!synced) {
          stats.fallbacks++;
          barrier();
        }
        batch.resolve();
      } catch (e) {
        batch.reject(e);
      } finally {
        running = false;
        if (closed) stop();
        else start();
      }
    });
  }

  return {
    stats,
    whenDurable(): Promise<void> {
      if (closed) return Promise.reject(new Error('the station database is closed'));
      next ??= newBatch();
      stats.waiters++;
      const p = next.promise;
      start();
      return p;
    },
    close(): void {
      closed = true;
      if (!running) stop();
    },
  };
}

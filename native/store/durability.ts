/**
 * When a commit of the station database reaches the disk (docs/audit.md "Power loss and crashes"). The connection
 * runs in WAL mode at `synchronous = FULL` (station-db.ts): a FULL commit fsyncs the WAL before it returns. A
 * commit made at `synchronous = NORMAL` is just as atomic and survives a crash of the process (SIGKILL): it is in
 * the WAL file (the OS page cache) the moment COMMIT returns; only a power loss or an OS crash can roll it back,
 * and then only together with every later commit, back to the last fsync of the WAL. The next FULL commit fsyncs
 * the whole WAL file and so makes every earlier commit durable with it.
 *
 * So the Store commits a step whose loss is the same as a crash just before it (the flow resumes from the last
 * checkpoint it finds) `deferred`, and commits durably what must not be lost once the station acts on it outside:
 * the issued certificate before it is written to the board, the record before PASS, a failure or refusal before it
 * is reported. Before anything leaves the station built from the chain as it is (the audit head and proof of a
 * sync batch or bundle) the exporter calls `barrier`.
 *
 * May import: better-sqlite3 types.
 */
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
}

/** The durability of `db`, opened at `level`. */
export function createDurability(db: Database.Database, level: SyncLevel): Durability {
  // Not prepared statements: SQLite applies `PRAGMA synchronous = X` when the statement is compiled, so a prepared one
  // would take effect once, at prepare time. exec compiles it anew every time (~20 µs).
  const setNormal = (): void => void db.exec('PRAGMA synchronous = NORMAL');
  const setLevel = (): void => void db.exec(`PRAGMA synchronous = ${level}`);
  const rewriteVersion = db.transaction(() => {
    const v = db.pragma('user_version', { simple: true }) as number;
    db.pragma(`user_version = ${Math.floor(v)}`);
  });
  return {
    deferred(fn) {
      if (level === 'NORMAL') return fn();
      setNormal();
      try {
        return fn();
      } finally {
        setLevel();
      }
    },
    barrier() {
      if (level === 'NORMAL') return;
      rewriteVersion.immediate();
    },
  };
}

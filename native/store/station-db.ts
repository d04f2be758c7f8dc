/**
 * THE opener of the station database (`station.db`): one connection per process, its pragmas and migrations set
 * once, and every port of the database on that connection — the Store (core/provisioning/store.ts), the sync
 * outbox, the lifecycle tables, the supervisor queries, the operators and the sign-in attempts. The engine, each
 * CLI command, the bridge service and `station init` open it once and pass the ports on; readonly openers
 * (verification, tests) use the same function.
 *
 * Which module writes which table: native/store/index.ts.
 *
 * May import: core/, native/data-dir, better-sqlite3, the sibling modules of native/store.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { fail } from '../../core/errors.js';
import { systemClock, type Clock, type Logger } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { createPrivateFile } from '../data-dir.js';
import { createAuditWriter } from './audit-writer.js';
import { createDurability } from './durability.js';
import { createLifecycleDb, type LifecycleDb } from './lifecycle.js';
import { migrate, MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import { createAttemptStore, createOperatorStore, type AttemptStore, type OperatorStore } from './operators.js';
import { createOutbox, type Outbox } from './outbox.js';
import { createQueries, type StationQueries } from './queries.js';
import { createRevocationQueue } from './revocations.js';
import { createRefusalWriter } from './refusals.js';
import { createSqliteStore, type SqliteStore } from './sqlite-store.js';
import { errorMessage, sqliteCode } from './store-error.js';

/** How to open the station database. */
export interface OpenStationDbOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Open without writing (no migrations; mutations throw StoreError 'read-only'). */
  readonly readonly?: boolean;
  /**
   * SQLite synchronous level. FULL (default): every commit is fsynced before it returns except the Store's
   * deferred ones (durability.ts: steps whose loss equals a crash just before them, and the certify checkpoint and
   * completeRun, whose callers await `whenDurable`), which the next FULL commit, barrier or WAL sync makes durable.
   * NORMAL is only for benchmarks/tests: no commit, barrier or whenDurable fsyncs (a power loss may lose the last
   * commits, never corrupt).
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Milliseconds to wait for a lock held by another connection (default 5000). */
  readonly busyTimeoutMs?: number;
}

/** The options of openStore (the same as openStationDb's). */
export type OpenStoreOptions = OpenStationDbOptions;

/** The ports of the station database other than the Store, all on one connection (what the service needs). */
export interface StationPorts {
  readonly outbox: Outbox;
  readonly lifecycle: LifecycleDb;
  readonly queries: StationQueries;
  readonly operators: OperatorStore;
  /** Sign-in attempt accounting (schema version 5). */
  readonly attempts: AttemptStore;
}

/** The open station database: every port on one connection. */
export interface StationDb extends StationPorts {
  readonly path: string;
  readonly store: SqliteStore;
  /** Close the connection (idempotent); every port of this handle stops working. */
  close(): void;
}

/**
 * Open (creating if needed) the station database at `file`, apply pending migrations and return its ports.
 * Fails with STORE_FAILED when the file cannot be opened, is not a station database, has a schema newer than
 * this software knows, or (read-only) has not been migrated yet.
 */
export function openStationDb(file: string, opts: OpenStationDbOptions = {}): Result<StationDb> {
  const readonly = opts.readonly === true;
  let db: Database.Database;
  try {
    if (!readonly) createPrivateFile(file); // 0600, and so are the -wal and -shm files SQLite makes next to it
    db = new Database(file, { readonly, fileMustExist: readonly });
  } catch (e) {
    return fail('STORE_FAILED', `cannot open the station database ${file}: ${errorMessage(e)}`, {
      file,
      sqliteCode: sqliteCode(e),
    });
  }
  const prepared = prepare(db, file, opts);
  if (!prepared.ok) {
    closeQuietly(db);
    return prepared;
  }
  opts.logger?.log('debug', 'station database opened', { file, schemaVersion: SCHEMA_VERSION, readonly });
  return ok(createPorts(db, file, opts));
}

/** The Store port alone (its close() closes the connection): `openStationDb(file, opts)` then `.store`. */
export function openStore(file: string, opts: OpenStationDbOptions = {}): Result<SqliteStore> {
  const r = openStationDb(file, opts);
  return r.ok ? ok(r.value.store) : r;
}

/** Pragmas, then migrations (read-write) or the schema version check (readonly). */
function prepare(db: Database.Database, file: string, opts: OpenStationDbOptions): Result<void> {
  const readonly = opts.readonly === true;
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    if (!readonly) {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`cannot switch to WAL journal mode (got ${String(mode)})`);
    }
    db.pragma(`synchronous = ${opts.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
    db.pragma('foreign_keys = ON');
    return readonly ? checkVersion(db, file) : migrateOrFail(db, file, opts.logger);
  } catch (e) {
    return fail('STORE_FAILED', `cannot use the station database ${file}: ${errorMessage(e)}`, {
      file,
      sqliteCode: sqliteCode(e),
    });
  }
}

function checkVersion(db: Database.Database, file: string): Result<void> {
  const v = db.pragma('user_version', { simple: true }) as number;
  if (v === SCHEMA_VERSION) return ok(undefined);
  return fail(
    'STORE_FAILED',
    v > SCHEMA_VERSION
      ? `database schema version ${v} is newer than this station software supports (${SCHEMA_VERSION}); upgrade the station software`
      : `database schema version ${v} needs migration to ${SCHEMA_VERSION}; open it read-write once`,
    { file, userVersion: v, known: SCHEMA_VERSION },
  );
}

function migrateOrFail(db: Database.Database, file: string, logger: Logger | undefined): Result<void> {
  const m = migrate(db, MIGRATIONS, logger);
  return m.ok ? ok(undefined) : fail('STORE_FAILED', m.message, { file, userVersion: m.from, known: SCHEMA_VERSION });
}

function closeQuietly(db: Database.Database): void {
  try {
    db.close();
  } catch {
    // already failing; the open error is what matters
  }
}

/** Every port on the one connection; the audit chain, the revocation queue and the refusals each get their one writer. */
function createPorts(db: Database.Database, file: string, opts: OpenStationDbOptions): StationDb {
  const clock = opts.clock ?? systemClock;
  const now = (): string => clock.now().toISOString();
  const audit = createAuditWriter(db, now);
  // A readonly connection commits nothing: its whenDurable has nothing to wait for.
  const durability = createDurability(
    db,
    opts.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL',
    opts.readonly === true ? undefined : { path: `${file}-wal` },
  );
  const revocations = createRevocationQueue(db);
  const operators = createOperatorStore(db);
  const refusals = createRefusalWriter(db, { audit, newId: randomUUID });
  const store = createSqliteStore(db, file, {
    clock,
    logger: opts.logger,
    audit,
    revocations,
    refusals,
    durability,
  });
  return {
    path: file,
    store,
    outbox: createOutbox(db, file, { now, audit, durability }),
    lifecycle: createLifecycleDb(db, { now, revocations, operators }),
    queries: createQueries(db),
    operators,
    attempts: createAttemptStore(db),
    close: () => store.close(),
  };
}

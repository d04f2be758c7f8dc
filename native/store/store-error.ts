/**
 * Typed refusals of the station database: `StoreError` carries a machine-readable `reason` (callers switch on it,
 * never on message text) and the STORE_FAILED StationError to surface. `wrapStoreError` turns anything a SQLite
 * call threw into a StoreError by its SQLite result code; refusals that depend on WHICH statement failed (a quota
 * trigger, a unique badge) are classified at that statement by the port that runs it.
 *
 * May import: core/, better-sqlite3 (for its error class).
 */
import Database from 'better-sqlite3';
import { stationError, type StationError } from '../../core/errors.js';

/** Why a station database port refused or failed. */
export type StoreErrorReason =
  | 'active-run-exists' // createRun for a chip that already has an active run
  | 'quota-exhausted' // createRun past the work order's quota (the runs_quota_check trigger refused it)
  | 'duplicate-badge' // an operator's badge is already enrolled for another operator
  | 'run-not-found'
  | 'run-not-active' // checkpoint/completeRun/failRun on a done or failed run
  | 'invalid-argument' // caller data inconsistent (ids, hashes, paging)
  | 'supersede-failed' // rotation: the record to supersede is missing, of another chip, or already superseded
  | 'read-only' // mutation on a store opened read-only
  | 'corrupt' // a stored value cannot be decoded
  | 'sqlite'; // any other database error (constraint, I/O, busy)

/**
 * A refusal or failure of the station database (the ports are synchronous and value-returning). `error` is the
 * StationError (code STORE_FAILED) to surface; `reason` is the machine-readable cause.
 */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code = 'STORE_FAILED' as const;
  readonly error: StationError;
  constructor(
    readonly reason: StoreErrorReason,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.error = stationError('STORE_FAILED', message, { reason, ...details });
  }
}

/** True if `x` is a StoreError (optionally of the given reason). */
export function isStoreError(x: unknown, reason?: StoreErrorReason): x is StoreError {
  return x instanceof StoreError && (reason === undefined || x.reason === reason);
}

/** The SQLite result code of an error thrown by better-sqlite3 (e.g. SQLITE_CONSTRAINT_UNIQUE), if it is one. */
export function sqliteCode(e: unknown): string | undefined {
  return e instanceof Database.SqliteError ? e.code : undefined;
}

/** The message of anything thrown. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * A StoreError of `reason` for a SQLite error raised by operation `op`, keeping the database's own words in the
 * message (`op: message`) and its result code in the details.
 */
export function sqliteRefusal(reason: StoreErrorReason, e: unknown, op: string): StoreError {
  return new StoreError(reason, `${op}: ${errorMessage(e)}`, { op, sqliteCode: sqliteCode(e) }, { cause: e });
}

/** Re-throwable StoreError for anything a database call threw (StoreErrors pass through), by SQLite result code. */
export function wrapStoreError(e: unknown, op: string): StoreError {
  if (e instanceof StoreError) return e;
  if (sqliteCode(e) === 'SQLITE_READONLY')
    return new StoreError('read-only', `${op}: the store is read-only`, { op }, { cause: e });
  if (e instanceof TypeError) return new StoreError('invalid-argument', `${op}: ${e.message}`, { op }, { cause: e });
  return sqliteRefusal('sqlite', e, op);
}

/** Parse a stored JSON column; a value that does not parse is a 'corrupt' StoreError naming `what`. */
export function parseStoredJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (cause) {
    throw new StoreError('corrupt', `stored ${what} is not valid JSON`, { what }, { cause });
  }
}

/**
 * Transactions that return results: `transact` runs `fn` in ONE serialised lifecycle transaction
 * (core/hq/registry-db.ts SqlPort.transaction) and commits when it answers `ok`, rolls back when it answers an
 * error (or, with `rollback: true`, always: a dry run that answers what it would have done). A thrown database
 * error rolls back too and answers STORE_UNAVAILABLE. Imports core and ./errors.ts.
 */
import { ok, type Result } from '../../core/result.js';
import type { SqlExec, SqlPort } from '../../core/hq/registry-db.js';
import { guarded, type ApiError } from './errors.js';

/** Run `fn` in a transaction: commit on ok, roll back on an error result (or always, with `rollback`). */
export function transact<T>(
  sql: SqlPort,
  fn: (x: SqlExec) => Promise<Result<T, ApiError>>,
  o: { readonly rollback?: boolean } = {},
): Promise<Result<T, ApiError>> {
  return guarded(() => sql.transaction(fn, (r) => r.ok && o.rollback !== true));
}

/** A transaction that cannot fail but for the database: commit what `fn` answers. */
export function transactValue<T>(sql: SqlPort, fn: (x: SqlExec) => Promise<T>): Promise<Result<T, ApiError>> {
  return transact(sql, async (x) => ok(await fn(x)));
}

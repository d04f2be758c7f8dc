/** Registry database backends, chosen by a connection URL: `sqlite:<path>` or `postgres://...`. */
import { resolve } from 'node:path';
import { fail } from '../../core/errors.js';
import type { Result } from '../../core/result.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import { openSqliteRegistryDb } from './sqlite.js';

export { openSqliteRegistryDb } from './sqlite.js';

/** The default database URL of a data dir: `sqlite:<dataDir>/registry.db`. */
export function defaultDbUrl(dataDir: string): string {
  return `sqlite:${resolve(dataDir, 'registry.db')}`;
}

/**
 * Open a registry database from a URL: `sqlite:<path>` (relative paths resolve against the working directory)
 * or `postgres://` / `postgresql://`. Migrates the schema. CONFIG_INVALID for other schemes.
 */
export async function openRegistryDb(url: string): Promise<Result<RegistryDb>> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (!path) return fail('CONFIG_INVALID', 'sqlite database URL without a path (expected sqlite:<path>)');
    return openSqliteRegistryDb(path === ':memory:' ? path : resolve(path));
  }
  // pg loads only for a PostgreSQL URL (a SQLite registry's commands start without it: issue 12, cold start).
  const { openPostgresRegistryDb, redactUrl } = await import('./postgres.js');
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return openPostgresRegistryDb(url);
  return fail(
    'CONFIG_INVALID',
    `unsupported database URL ${redactUrl(url)} (expected sqlite:<path> or postgres://...)`,
  );
}

/** SQLite adapter for the Store port (see sqlite-store.ts) and its schema migrations. */
export {
  openStore,
  StoreError,
  isStoreError,
  sha256HexSync,
  auditEntryHashSync,
  type OpenStoreOptions,
  type SqliteStore,
  type StoreErrorReason,
} from './sqlite-store.js';
export { MIGRATIONS, SCHEMA_VERSION, migrate, type Migration, type MigrationOutcome } from './migrations.js';

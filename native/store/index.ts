/**
 * The station database (`station.db`, SQLite through better-sqlite3): ONE opener, `openStationDb` (station-db.ts),
 * returns one handle per process whose ports all run on one connection. Refusals come back as a `StoreError` with
 * a typed `reason` (store-error.ts); callers switch on the reason, never on message text.
 *
 * Modules (each a port or a piece of one; may import core/, native/data-dir and each other, nothing above native/):
 *   station-db.ts      the opener: pragmas, migrations or the readonly version check, the ports
 *   sqlite-store.ts    the Store port (core/provisioning/store.ts); store-rows.ts its rows; audit-verify.ts
 *                      the chain verification (Store.verifyAudit)
 *   audit-writer.ts    the audit chain's one writer (canonical payload, hash, prev, seq)
 *   outbox.ts          the sync outbox port (types in outbox-types.ts); audit-anchors.ts its anchor statements
 *   lifecycle.ts       the lifecycle port: signed documents, quotas, quota units, station revocation
 *   revocations.ts     the revocation request queue
 *   refusals.ts        boards refused before a run (schema version 10), coalesced
 *   queries.ts         the supervisor queries (read-only)
 *   operators.ts       the operators and sign-in attempts ports
 *   migrations.ts      the schema (forward-only migrations)
 *   store-error.ts     StoreError and its reasons
 *
 * One writer per table (the module that INSERTs/UPDATEs it; triggers named where the schema writes too):
 *   runs, issued_certificates, records  sqlite-store.ts
 *   audit_log, audit_head               audit-writer.ts (called by sqlite-store.ts and outbox.ts)
 *   outbox                              outbox.ts (rows queued by trigger records_enqueue_outbox)
 *   sync_receipts                       outbox.ts
 *   audit_anchors                       audit-anchors.ts (called by outbox.ts)
 *   lifecycle_documents, quotas         lifecycle.ts
 *   quota_units                         lifecycle.ts (markScrapped; reserve/commit/release by the triggers on runs)
 *   station_revocation                  lifecycle.ts
 *   revocation_requests                 revocations.ts (called by lifecycle.ts and by sqlite-store.ts failRun, which
 *                                       also queues a failed rework's scrap event;
 *                                       superseded rows by triggers records_queue_supersede, outbox_ack_supersede)
 *   refusals                            refusals.ts (called by sqlite-store.ts recordRefusal; with its audit entry)
 *   operators, auth_attempts            operators.ts (a policy's revocations through OperatorStore.revokeNamed)
 * Tests and testkit/ tamper with tables on connections of their own; production code does not.
 */
export {
  openStationDb,
  openStore,
  type OpenStationDbOptions,
  type OpenStoreOptions,
  type StationDb,
  type StationPorts,
} from './station-db.js';
export { StoreError, isStoreError, type StoreErrorReason } from './store-error.js';
export { sha256HexSync, auditEntryHashSync } from './audit-writer.js';
export type { SqliteStore } from './sqlite-store.js';
export { MIGRATIONS, SCHEMA_VERSION, migrate, type Migration, type MigrationOutcome } from './migrations.js';

/**
 * Schema migrations for the station database, tracked with `PRAGMA user_version`.
 *
 * Rules: forward-only; append new migrations at the end of MIGRATIONS, never edit a released one; each runs
 * in its own transaction together with the user_version bump, so a crash leaves the DB at a whole version.
 */
import type Database from 'better-sqlite3';
import type { Logger } from '../../core/ports.js';
import { GENESIS_HASH } from '../../core/provisioning/audit.js';

export interface Migration {
  /** 1-based; must equal the index in MIGRATIONS + 1. */
  readonly version: number;
  readonly name: string;
  readonly up: (db: Database.Database) => void;
}

const V1_SCHEMA = `
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  chip_id TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  port TEXT NOT NULL,
  work_order TEXT NOT NULL,
  operator TEXT NOT NULL,
  station_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('initial', 'rotation')),
  supersedes_record_id TEXT REFERENCES records(record_id),
  state TEXT NOT NULL CHECK (state IN ('active', 'done', 'failed')),
  step TEXT NOT NULL,
  data_json TEXT NOT NULL CHECK (json_valid(data_json)),
  error_json TEXT CHECK (error_json IS NULL OR json_valid(error_json)),
  started_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;
-- A chip has at most one active run.
CREATE UNIQUE INDEX runs_one_active_per_chip ON runs(chip_id) WHERE state = 'active';
CREATE INDEX runs_chip ON runs(chip_id, started_at);
CREATE INDEX runs_state ON runs(state, updated_at);

CREATE TABLE issued_certificates (
  serial TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL UNIQUE,
  chip_id TEXT NOT NULL,
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  der BLOB NOT NULL,
  not_before TEXT NOT NULL,
  not_after TEXT NOT NULL,
  issued_at TEXT NOT NULL
) STRICT;
CREATE INDEX issued_certificates_chip ON issued_certificates(chip_id, issued_at);
CREATE INDEX issued_certificates_run ON issued_certificates(run_id);

CREATE TABLE records (
  record_id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL UNIQUE REFERENCES runs(run_id),
  chip_id TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  work_order TEXT NOT NULL,
  operator TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('initial', 'rotation')),
  supersedes_record_id TEXT REFERENCES records(record_id),
  superseded_by TEXT REFERENCES records(record_id),
  outcome TEXT NOT NULL CHECK (outcome = 'provisioned'),
  certificate_serial TEXT NOT NULL REFERENCES issued_certificates(serial),
  created_at TEXT NOT NULL,
  record_json TEXT NOT NULL,
  jws TEXT NOT NULL,
  record_sha256 TEXT NOT NULL,
  audit_seq INTEGER NOT NULL UNIQUE
) STRICT;
-- A record is superseded at most once.
CREATE UNIQUE INDEX records_supersedes ON records(supersedes_record_id) WHERE supersedes_record_id IS NOT NULL;
CREATE INDEX records_created ON records(created_at DESC, record_id);
CREATE INDEX records_chip ON records(chip_id, created_at DESC, record_id);
CREATE INDEX records_serial ON records(serial_number, created_at DESC, record_id);
CREATE INDEX records_work_order ON records(work_order, created_at DESC, record_id);
CREATE INDEX records_current ON records(chip_id, audit_seq) WHERE superseded_by IS NULL;

CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY,
  ts TEXT NOT NULL,
  type TEXT NOT NULL,
  run_id TEXT,
  payload_json TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_run ON audit_log(run_id, seq);

-- The chain head, updated in the same transaction as every append (detects tail truncation).
CREATE TABLE audit_head (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '${GENESIS_HASH}');

-- Append-only guards. They stop casual edits (e.g. with the sqlite3 shell); an attacker who drops them is
-- caught by the hash chain and the head row (see docs/audit.md for the limits).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_append_at_head BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1)
  OR NEW.prev_hash IS NOT (SELECT hash FROM audit_head WHERE id = 1)
BEGIN SELECT RAISE(ABORT, 'audit_log entries must be appended at the head'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END;
CREATE TRIGGER audit_head_advance_only BEFORE UPDATE ON audit_head
WHEN NEW.id IS NOT OLD.id OR NEW.seq IS NOT OLD.seq + 1
  OR NEW.hash IS NOT (SELECT hash FROM audit_log WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'audit_head only advances to the newest audit entry'); END;

CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
CREATE TRIGGER records_no_update BEFORE UPDATE OF
  record_id, run_id, chip_id, serial_number, work_order, operator, kind, supersedes_record_id, outcome,
  certificate_serial, created_at, record_json, jws, record_sha256, audit_seq ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
-- The one permitted update: marking a record superseded, once.
CREATE TRIGGER records_supersede_once BEFORE UPDATE OF superseded_by ON records
WHEN OLD.superseded_by IS NOT NULL OR NEW.superseded_by IS NULL
BEGIN SELECT RAISE(ABORT, 'a record is superseded at most once'); END;
`;

// Version 2 (station/sync.ts, native/store/outbox.ts): the outbox of records to sync to the registry and the
// receipts it answered with. Every record gets its outbox row in the SAME transaction as the record (trigger);
// records committed before this migration are queued by it. See docs/sync.md.
const V2_OUTBOX = `
CREATE TABLE sync_receipts (
  receipt_id TEXT PRIMARY KEY,
  batch_id TEXT NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('online', 'import')),
  issued_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  accepted INTEGER NOT NULL,
  rejected INTEGER NOT NULL,
  marked INTEGER NOT NULL,
  jws TEXT NOT NULL
) STRICT;
CREATE INDEX sync_receipts_received ON sync_receipts(received_at);

CREATE TABLE outbox (
  record_id TEXT PRIMARY KEY REFERENCES records(record_id),
  seq INTEGER NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'acknowledged', 'failed')),
  batch_id TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  enqueued_at TEXT NOT NULL,
  sent_at TEXT,
  acknowledged_at TEXT,
  receipt_id TEXT REFERENCES sync_receipts(receipt_id),
  failure_reason TEXT,
  failure_message TEXT,
  conflict INTEGER NOT NULL DEFAULT 0 CHECK (conflict IN (0, 1)),
  export_id TEXT,
  exported_at TEXT,
  CHECK (state = 'pending' OR batch_id IS NOT NULL OR receipt_id IS NOT NULL)
) STRICT;
CREATE INDEX outbox_state ON outbox(state, seq);
CREATE INDEX outbox_batch ON outbox(batch_id, seq) WHERE batch_id IS NOT NULL;

CREATE TRIGGER records_enqueue_outbox AFTER INSERT ON records
BEGIN
  INSERT INTO outbox (record_id, seq, state, enqueued_at) VALUES (NEW.record_id, NEW.audit_seq, 'pending', NEW.created_at);
END;
CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox rows are kept'); END;
CREATE TRIGGER outbox_acknowledged_is_final BEFORE UPDATE ON outbox
WHEN OLD.state = 'acknowledged' AND (NEW.state IS NOT 'acknowledged' OR NEW.receipt_id IS NOT OLD.receipt_id)
BEGIN SELECT RAISE(ABORT, 'an acknowledged outbox row is final'); END;
CREATE TRIGGER sync_receipts_no_update BEFORE UPDATE ON sync_receipts
BEGIN SELECT RAISE(ABORT, 'receipts are append-only'); END;
CREATE TRIGGER sync_receipts_no_delete BEFORE DELETE ON sync_receipts
BEGIN SELECT RAISE(ABORT, 'receipts are append-only'); END;

INSERT INTO outbox (record_id, seq, state, enqueued_at) SELECT record_id, audit_seq, 'pending', created_at FROM records;
`;

// Version 3 (station/service, native/store/operators.ts, native/store/queries.ts): operators who sign in at the
// station (salted scrypt PIN hashes, hashed badge codes, lockout counters) and the indexes behind the supervisor's
// log and yield queries (keyset pagination over runs, newest first). See docs/station-api.md.
const V3_OPERATORS = `
CREATE TABLE operators (
  operator_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('operator', 'supervisor')),
  pin_hash TEXT NOT NULL CHECK (pin_hash LIKE 'scrypt$%'),
  badge_hash TEXT UNIQUE,
  revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  locked_until TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX runs_started ON runs(started_at, run_id);
CREATE INDEX runs_work_order_started ON runs(work_order, started_at, run_id);
CREATE INDEX runs_work_order_state ON runs(work_order, state, started_at, run_id);
CREATE INDEX runs_operator_started ON runs(operator, started_at, run_id);
CREATE INDEX runs_state_started ON runs(state, started_at, run_id);
CREATE INDEX runs_serial ON runs(serial_number, started_at);
`;

// Version 4 (station/lifecycle, native/store/lifecycle.ts, docs/lifecycle.md "Station side"): the registry's signed
// policy and quotas as last verified (never rolled back), the production-unit ledger per work order (one unit per
// initial run: reserved in the createRun transaction by a trigger, committed with the record, released when the run
// fails; a quota is enforced by a trigger too, so two ports can never both take the last unit), and the queue of
// revocation requests (rework: the superseded certificate, carried by the rotation record; scrap: a signed event).
const V4_LIFECYCLE = `
CREATE TABLE lifecycle_documents (
  kind TEXT PRIMARY KEY CHECK (kind IN ('policy', 'quotas')),
  version INTEGER NOT NULL CHECK (version >= 0),
  jws TEXT NOT NULL,
  payload_json TEXT NOT NULL CHECK (json_valid(payload_json)),
  issued_at TEXT NOT NULL,
  fetched_at TEXT NOT NULL
) STRICT;
CREATE TRIGGER lifecycle_documents_no_rollback BEFORE UPDATE ON lifecycle_documents
WHEN NEW.version < OLD.version
BEGIN SELECT RAISE(ABORT, 'lifecycle documents never roll back'); END;

CREATE TABLE quotas (
  work_order TEXT PRIMARY KEY,
  quantity INTEGER NOT NULL CHECK (quantity >= 0),
  version INTEGER NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE quota_units (
  run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
  work_order TEXT NOT NULL,
  chip_id TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'released')),
  scrapped_at TEXT,
  reserved_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX quota_units_work_order ON quota_units(work_order, state);

CREATE TRIGGER runs_quota_check BEFORE INSERT ON runs
WHEN NEW.kind = 'initial'
  -- (AND short-circuits: the count runs only for a work order that has a quota)
  AND EXISTS (SELECT 1 FROM quotas WHERE work_order = NEW.work_order)
  AND (SELECT count(*) FROM quota_units WHERE work_order = NEW.work_order AND state IN ('reserved', 'committed'))
      >= (SELECT quantity FROM quotas WHERE work_order = NEW.work_order)
BEGIN SELECT RAISE(ABORT, 'FLOW_QUOTA_EXHAUSTED: the quota of the work order is used up'); END;
CREATE TRIGGER runs_quota_reserve AFTER INSERT ON runs
WHEN NEW.kind = 'initial'
BEGIN
  INSERT INTO quota_units (run_id, work_order, chip_id, state, reserved_at, updated_at)
  VALUES (NEW.run_id, NEW.work_order, NEW.chip_id, 'reserved', NEW.started_at, NEW.started_at);
END;
CREATE TRIGGER runs_quota_commit AFTER UPDATE OF state ON runs
WHEN NEW.state = 'done' AND OLD.state = 'active'
BEGIN
  UPDATE quota_units SET state = 'committed', updated_at = NEW.updated_at WHERE run_id = NEW.run_id AND state = 'reserved';
END;
CREATE TRIGGER runs_quota_release AFTER UPDATE OF state ON runs
WHEN NEW.state = 'failed' AND OLD.state = 'active'
BEGIN
  UPDATE quota_units SET state = 'released', updated_at = NEW.updated_at WHERE run_id = NEW.run_id AND state = 'reserved';
END;
INSERT INTO quota_units (run_id, work_order, chip_id, state, reserved_at, updated_at)
  SELECT run_id, work_order, chip_id,
         CASE state WHEN 'done' THEN 'committed' WHEN 'failed' THEN 'released' ELSE 'reserved' END,
         started_at, updated_at
  FROM runs WHERE kind = 'initial';

CREATE TABLE revocation_requests (
  request_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('superseded', 'scrapped')),
  chip_id TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  certificate_serial TEXT NOT NULL,
  reason TEXT NOT NULL,
  -- superseded: the rotation record that carries the request to the registry (its outbox row)
  record_id TEXT REFERENCES records(record_id),
  -- scrapped: the signed scrap event (JWS, station key)
  jws TEXT,
  state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'acknowledged', 'failed')),
  detail TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  CHECK (record_id IS NOT NULL OR jws IS NOT NULL)
) STRICT;
CREATE INDEX revocation_requests_state ON revocation_requests(state, created_at);
CREATE TRIGGER revocation_requests_no_delete BEFORE DELETE ON revocation_requests
BEGIN SELECT RAISE(ABORT, 'revocation requests are kept'); END;
-- Rework: a rotation record queues the revocation (reason superseded) of the certificate it replaces.
CREATE TRIGGER records_queue_supersede AFTER INSERT ON records
WHEN NEW.kind = 'rotation' AND NEW.supersedes_record_id IS NOT NULL
BEGIN
  INSERT INTO revocation_requests (request_id, kind, chip_id, serial_number, certificate_serial, reason, record_id,
                                   state, created_at, updated_at)
  SELECT 'supersede:' || NEW.record_id, 'superseded', prev.chip_id, prev.serial_number, prev.certificate_serial,
         'superseded', NEW.record_id, 'queued', NEW.created_at, NEW.created_at
  FROM records prev WHERE prev.record_id = NEW.supersedes_record_id;
END;
-- ... and it is done when the registry acknowledges that record (the registry supersedes on ingest).
CREATE TRIGGER outbox_ack_supersede AFTER UPDATE OF state ON outbox
WHEN NEW.state IN ('sent', 'acknowledged', 'failed') AND OLD.state IS NOT NEW.state
BEGIN
  UPDATE revocation_requests SET state = NEW.state, updated_at = COALESCE(NEW.acknowledged_at, NEW.sent_at, updated_at)
  WHERE record_id = NEW.record_id AND kind = 'superseded';
END;
`;

// Version 5 (station/service/auth.ts, native/store/operators.ts, docs/ui.md "Sign-in attempts"): sign-in attempt
// accounting. One row per subject ('operator:<id>' for PIN sign-in and elevation, 'badge' for badge sign-in at this
// station): attempts counted before verification in the current window, consecutive lockouts (exponential back-off)
// and the lock end (ms since the epoch). The old per-operator counters move here and leave the operators table.
// Badge codes were stored as unsalted SHA-256: they cannot be re-keyed without the code, so they are cleared (badges
// are enrolled again with `station operator add --badge`, now keyed with the station's HMAC key).
const V5_AUTH_ATTEMPTS = `
CREATE TABLE auth_attempts (
  subject TEXT PRIMARY KEY,
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  lockouts INTEGER NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
  locked_until_ms INTEGER,
  updated_at TEXT NOT NULL
) STRICT;
INSERT INTO auth_attempts (subject, attempts, lockouts, locked_until_ms, updated_at)
  SELECT 'operator:' || operator_id, failed_attempts, CASE WHEN locked_until IS NULL THEN 0 ELSE 1 END,
         CAST(strftime('%s', locked_until) AS INTEGER) * 1000, updated_at
  FROM operators WHERE failed_attempts > 0 OR locked_until IS NOT NULL;
ALTER TABLE operators DROP COLUMN failed_attempts;
ALTER TABLE operators DROP COLUMN locked_until;
UPDATE operators SET badge_hash = NULL WHERE badge_hash IS NOT NULL AND badge_hash NOT LIKE 'hmac-sha256$%';
`;

/**
 * v6: audit chain anchoring (docs/audit.md "Anchoring at the registry"): the heads of this station's audit chain
 * that the registry confirmed (in a verified receipt) it holds. The newest one is where the next consistency proof
 * starts. Written by the outbox connection when it applies a receipt; rows are never changed or deleted.
 */
const V6_AUDIT_ANCHORS = `
CREATE TABLE audit_anchors (
  seq INTEGER PRIMARY KEY CHECK (seq >= 1),
  hash TEXT NOT NULL CHECK (length(hash) = 64),
  receipt_id TEXT NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('online', 'import')),
  anchored_at TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_anchors_no_update BEFORE UPDATE ON audit_anchors
BEGIN SELECT RAISE(ABORT, 'audit_anchors is append-only'); END;
CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE ON audit_anchors
BEGIN SELECT RAISE(ABORT, 'audit_anchors is append-only'); END;
`;

// Version 7 (native/store/sqlite-store.ts failRun, station/lifecycle, docs/lifecycle.md "Failed issuance"): every
// certificate issued for a run that ends without a record is revoked at once. The revocation request queue gets the
// kind 'failed-issuance' (one per certificate, request id `failed-issuance:<serial>`, written by failRun in the
// transaction that fails the run, with the exact event payload; the station key signs that payload afterwards), and
// a trigger refuses to mark a run failed while one of its certificates is in no record and has no such request.
// SQLite cannot alter a CHECK constraint: the table is rebuilt the documented way
// (https://sqlite.org/lang_altertable.html#otheralter), with the triggers that name it dropped first and recreated.
const V7_FAILED_ISSUANCE = `
DROP TRIGGER records_queue_supersede;
DROP TRIGGER outbox_ack_supersede;
DROP TRIGGER revocation_requests_no_delete;
DROP INDEX revocation_requests_state;
CREATE TABLE revocation_requests_v5 (
  request_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('superseded', 'scrapped', 'failed-issuance')),
  chip_id TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  certificate_serial TEXT NOT NULL,
  reason TEXT NOT NULL,
  record_id TEXT REFERENCES records(record_id),
  -- scrapped, failed-issuance: the signed event (JWS, station key); failed-issuance: NULL until signed
  jws TEXT,
  state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'acknowledged', 'failed')),
  detail TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  -- failed-issuance: the run that failed and the exact event payload (canonical JSON) the station key signs
  run_id TEXT REFERENCES runs(run_id),
  payload_json TEXT CHECK (payload_json IS NULL OR json_valid(payload_json)),
  CHECK (record_id IS NOT NULL OR jws IS NOT NULL OR payload_json IS NOT NULL),
  CHECK (kind <> 'failed-issuance' OR (run_id IS NOT NULL AND payload_json IS NOT NULL AND record_id IS NULL))
) STRICT;
INSERT INTO revocation_requests_v5 (request_id, kind, chip_id, serial_number, certificate_serial, reason, record_id,
                                    jws, state, detail, created_at, updated_at)
  SELECT request_id, kind, chip_id, serial_number, certificate_serial, reason, record_id, jws, state, detail,
         created_at, updated_at FROM revocation_requests;
DROP TABLE revocation_requests;
ALTER TABLE revocation_requests_v5 RENAME TO revocation_requests;
CREATE INDEX revocation_requests_state ON revocation_requests(state, created_at);
CREATE UNIQUE INDEX revocation_requests_failed_issuance ON revocation_requests(certificate_serial)
  WHERE kind = 'failed-issuance';
CREATE TRIGGER revocation_requests_no_delete BEFORE DELETE ON revocation_requests
BEGIN SELECT RAISE(ABORT, 'revocation requests are kept'); END;
-- The event payload of a failed issuance is fixed when it is queued; only the signature is added, once.
CREATE TRIGGER revocation_requests_payload_fixed BEFORE UPDATE OF payload_json, run_id, certificate_serial, kind
  ON revocation_requests
BEGIN SELECT RAISE(ABORT, 'a revocation request names its certificate once'); END;
CREATE TRIGGER revocation_requests_sign_once BEFORE UPDATE OF jws ON revocation_requests
WHEN OLD.jws IS NOT NULL AND NEW.jws IS NOT OLD.jws
BEGIN SELECT RAISE(ABORT, 'a signed revocation event is never replaced'); END;
CREATE TRIGGER records_queue_supersede AFTER INSERT ON records
WHEN NEW.kind = 'rotation' AND NEW.supersedes_record_id IS NOT NULL
BEGIN
  INSERT INTO revocation_requests (request_id, kind, chip_id, serial_number, certificate_serial, reason, record_id,
                                   state, created_at, updated_at)
  SELECT 'supersede:' || NEW.record_id, 'superseded', prev.chip_id, prev.serial_number, prev.certificate_serial,
         'superseded', NEW.record_id, 'queued', NEW.created_at, NEW.created_at
  FROM records prev WHERE prev.record_id = NEW.supersedes_record_id;
END;
CREATE TRIGGER outbox_ack_supersede AFTER UPDATE OF state ON outbox
WHEN NEW.state IN ('sent', 'acknowledged', 'failed') AND OLD.state IS NOT NEW.state
BEGIN
  UPDATE revocation_requests SET state = NEW.state, updated_at = COALESCE(NEW.acknowledged_at, NEW.sent_at, updated_at)
  WHERE record_id = NEW.record_id AND kind = 'superseded';
END;
-- Which record holds a certificate (failRun and the trigger below ask it for every certificate of a failing run).
CREATE INDEX records_certificate_serial ON records(certificate_serial);
-- Any path that fails a run: each certificate of the run that is in no record must have its failed-issuance request.
CREATE TRIGGER runs_failed_issuance_queued BEFORE UPDATE OF state ON runs
WHEN NEW.state = 'failed' AND EXISTS (
  SELECT 1 FROM issued_certificates c
  WHERE c.run_id = NEW.run_id
    AND NOT EXISTS (SELECT 1 FROM records r WHERE r.certificate_serial = c.serial)
    AND NOT EXISTS (SELECT 1 FROM revocation_requests q
                    WHERE q.kind = 'failed-issuance' AND q.certificate_serial = c.serial))
BEGIN SELECT RAISE(ABORT, 'a run with an issued certificate fails only with its failed-issuance revocation queued'); END;
`;

// Version 8 (station/lifecycle, docs/lifecycle.md "Revocation reaches the station"): this station's revocation as
// headquarters signed it (the registry's station-status answer to one of its requests), kept for good: a station
// revocation is terminal, so the row can be neither changed nor deleted (no answer un-revokes the station).
const V8_STATION_REVOCATION = `
CREATE TABLE station_revocation (
  station_id TEXT PRIMARY KEY,
  revoked_at TEXT NOT NULL,
  jws TEXT NOT NULL,
  recorded_at TEXT NOT NULL
) STRICT;
CREATE TRIGGER station_revocation_terminal_update BEFORE UPDATE ON station_revocation
BEGIN SELECT RAISE(ABORT, 'a station revocation is terminal'); END;
CREATE TRIGGER station_revocation_terminal_delete BEFORE DELETE ON station_revocation
BEGIN SELECT RAISE(ABORT, 'a station revocation is terminal'); END;
`;

// Version 9 (station/sync.ts, docs/sync.md "When the registry refuses a batch"): a batch the registry refused as a
// whole (authentication, clock skew, a receipt that does not verify) or could not be sent stays `sent` under its id
// and is retried with backoff; its rows keep the last refusal, when it happened and how many times the batch went
// out, so that `station sync --status` and the Sync view can say why the records do not move.
const V9_OUTBOX_FAILURES = `
ALTER TABLE outbox ADD COLUMN last_error_code TEXT;
ALTER TABLE outbox ADD COLUMN last_error_message TEXT;
ALTER TABLE outbox ADD COLUMN last_attempt_at TEXT;
`;

// Version 10 (native/store/refusals.ts, docs/audit.md "Refusals"): boards refused before a run exists (FLOW_BLOCKED,
// FLOW_QUOTA_EXHAUSTED, an unknown profile, a scan-in mismatch, ...). The runs table's state CHECK would need a
// rebuild, and a refusal is not a run (no identity, no unit, no certificate): a table of its own, written by
// refusals.ts only, each row created in the transaction of its `board.refused` audit entry (audit_seq). A repeat of a
// recent refusal on the same port is coalesced into its row: only `count` and `last_at` move, forward.
const V10_REFUSALS = `
CREATE TABLE refusals (
  refusal_id TEXT PRIMARY KEY,
  chip_id TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  model TEXT NOT NULL,
  port TEXT NOT NULL,
  work_order TEXT NOT NULL,
  operator TEXT NOT NULL,
  station_id TEXT NOT NULL,
  code TEXT NOT NULL,
  message TEXT NOT NULL,
  scanned TEXT,
  first_at TEXT NOT NULL,
  last_at TEXT NOT NULL,
  count INTEGER NOT NULL CHECK (count >= 1),
  audit_seq INTEGER NOT NULL UNIQUE REFERENCES audit_log(seq)
) STRICT;
CREATE INDEX refusals_first_at ON refusals(first_at, refusal_id);
CREATE INDEX refusals_port ON refusals(port, last_at);
CREATE INDEX refusals_chip ON refusals(chip_id, first_at);
CREATE TRIGGER refusals_no_delete BEFORE DELETE ON refusals
BEGIN SELECT RAISE(ABORT, 'refusals are kept'); END;
CREATE TRIGGER refusals_coalesce_only BEFORE UPDATE ON refusals
WHEN NEW.refusal_id IS NOT OLD.refusal_id OR NEW.chip_id IS NOT OLD.chip_id
  OR NEW.serial_number IS NOT OLD.serial_number OR NEW.model IS NOT OLD.model OR NEW.port IS NOT OLD.port
  OR NEW.work_order IS NOT OLD.work_order OR NEW.operator IS NOT OLD.operator OR NEW.station_id IS NOT OLD.station_id
  OR NEW.code IS NOT OLD.code OR NEW.message IS NOT OLD.message OR NEW.scanned IS NOT OLD.scanned
  OR NEW.first_at IS NOT OLD.first_at OR NEW.audit_seq IS NOT OLD.audit_seq
  OR NEW.count < OLD.count OR NEW.last_at < OLD.last_at
BEGIN SELECT RAISE(ABORT, 'a refusal only counts repeats'); END;
`;

// Version 11 (docs/benchmarks.md "Station store writes"): two indexes no query needs, written by every commit of every
// board. runs_state (state, updated_at): updated_at moves at every checkpoint, so its entry moved too; every lookup by
// state searches runs_state_started (state, started_at, run_id), which v3 added (SQLite chose runs_state only for the
// lifecycle's expired-runs query). audit_log_run (run_id, seq): a random run id put each audit entry on its own index
// page; the station reads the chain by seq only (a run's entries by run_id are still found, by a scan of audit_log).
const V11_DROP_UNUSED_INDEXES = `
DROP INDEX runs_state;
DROP INDEX audit_log_run;
`;

/** All migrations, in order. The schema version of a database is the number applied. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema: runs, issued certificates, records, audit log', up: (db) => db.exec(V1_SCHEMA) },
  { version: 2, name: 'sync outbox and registry receipts', up: (db) => db.exec(V2_OUTBOX) },
  { version: 3, name: 'operators; indexes for the supervisor queries', up: (db) => db.exec(V3_OPERATORS) },
  { version: 4, name: 'signed policy and quotas, quota units, revocation requests', up: (db) => db.exec(V4_LIFECYCLE) },
  { version: 5, name: 'sign-in attempt accounting; keyed badge hashes', up: (db) => db.exec(V5_AUTH_ATTEMPTS) },
  { version: 6, name: 'audit anchors confirmed by the registry', up: (db) => db.exec(V6_AUDIT_ANCHORS) },
  { version: 7, name: 'failed-issuance revocation requests', up: (db) => db.exec(V7_FAILED_ISSUANCE) },
  { version: 8, name: 'station revocation (signed, terminal)', up: (db) => db.exec(V8_STATION_REVOCATION) },
  { version: 9, name: 'the last refusal of a batch still to be sent', up: (db) => db.exec(V9_OUTBOX_FAILURES) },
  { version: 10, name: 'boards refused before a run (refusals)', up: (db) => db.exec(V10_REFUSALS) },
  {
    version: 11,
    name: 'drop the unused indexes runs_state and audit_log_run',
    up: (db) => db.exec(V11_DROP_UNUSED_INDEXES),
  },
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

export type MigrationOutcome =
  | { readonly ok: true; readonly from: number; readonly to: number }
  | { readonly ok: false; readonly from: number; readonly message: string };

/**
 * Bring `db` up to the last migration in `migrations`, each in its own transaction (with the user_version bump).
 * Refuses (without touching the DB) a user_version newer than the code knows. A failing migration is rolled
 * back and reported; earlier ones stay applied.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[], logger?: Logger): MigrationOutcome {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${m.name} has version ${m.version}, expected ${i + 1}`);
  });
  const from = db.pragma('user_version', { simple: true }) as number;
  const known = migrations.length;
  if (from > known) {
    return {
      ok: false,
      from,
      message: `database schema version ${from} is newer than this station software supports (${known}); upgrade the station software`,
    };
  }
  let current = from;
  for (const m of migrations.slice(from)) {
    try {
      db.transaction(() => {
        m.up(db);
        db.pragma(`user_version = ${m.version}`);
      }).immediate();
    } catch (cause) {
      return { ok: false, from, message: `migration ${m.version} (${m.name}) failed: ${String(cause)}` };
    }
    current = m.version;
    logger?.log('info', 'database migrated', { version: m.version, name: m.name });
  }
  return { ok: true, from, to: current };
}

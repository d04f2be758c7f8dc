/**
 * Registry schema migrations for SQLite and PostgreSQL (same tables, two dialects), tracked in
 * `schema_migrations`. Forward-only: append new versions at the end, never edit a released one.
 * Each migration runs in one transaction with its schema_migrations row.
 */

export interface RegistryMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  /**
   * SQLite only: the migration rebuilds a table that other tables reference, so it runs with
   * `PRAGMA foreign_keys = OFF` (the pragma is a no-op inside a transaction: the runner sets it around it) and
   * the runner checks `PRAGMA foreign_key_check` and `PRAGMA integrity_check` before committing.
   */
  readonly rebuildsTables?: boolean;
}

const SQLITE_V1 = `
CREATE TABLE stations (
  station_id TEXT PRIMARY KEY,
  chain_pem TEXT NOT NULL,
  cert_sha256 TEXT NOT NULL,
  ca_sha256 TEXT NOT NULL,
  root_sha256 TEXT NOT NULL,
  work_orders TEXT NOT NULL CHECK (json_valid(work_orders)),
  enrolled_at TEXT NOT NULL,
  revoked_at TEXT,
  last_sync_at TEXT
) STRICT;

CREATE TABLE nonces (
  station_id TEXT NOT NULL,
  nonce TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  PRIMARY KEY (station_id, nonce)
) STRICT;
CREATE INDEX nonces_expiry ON nonces(expires_at);

CREATE TABLE batches (
  station_id TEXT NOT NULL REFERENCES stations(station_id),
  batch_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('batch', 'bundle')),
  content_sha256 TEXT NOT NULL,
  received_at TEXT NOT NULL,
  response TEXT,
  PRIMARY KEY (station_id, batch_id)
) STRICT;

CREATE TABLE records (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  record_id TEXT NOT NULL UNIQUE,
  station_id TEXT NOT NULL REFERENCES stations(station_id),
  sha256 TEXT NOT NULL,
  chip_id TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  model TEXT NOT NULL,
  work_order TEXT NOT NULL,
  kind TEXT NOT NULL,
  supersedes_record_id TEXT,
  completed_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  record_json TEXT NOT NULL,
  jws TEXT NOT NULL
);
CREATE INDEX records_chip ON records(chip_id);
CREATE INDEX records_serial ON records(serial_number);
CREATE INDEX records_station ON records(station_id, seq);
CREATE INDEX records_work_order ON records(work_order, seq);
CREATE INDEX records_completed ON records(completed_at);

CREATE TABLE conflicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  record_id TEXT NOT NULL,
  station_id TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  stored_sha256 TEXT NOT NULL,
  offered_sha256 TEXT NOT NULL,
  offered_jws TEXT NOT NULL,
  detected_at TEXT NOT NULL
);
CREATE INDEX conflicts_station ON conflicts(station_id);
`;

const PG_V1 = `
CREATE TABLE stations (
  station_id TEXT PRIMARY KEY,
  chain_pem TEXT NOT NULL,
  cert_sha256 TEXT NOT NULL,
  ca_sha256 TEXT NOT NULL,
  root_sha256 TEXT NOT NULL,
  work_orders JSONB NOT NULL,
  enrolled_at TEXT NOT NULL,
  revoked_at TEXT,
  last_sync_at TEXT
);

CREATE TABLE nonces (
  station_id TEXT NOT NULL,
  nonce TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  PRIMARY KEY (station_id, nonce)
);
CREATE INDEX nonces_expiry ON nonces(expires_at);

CREATE TABLE batches (
  station_id TEXT NOT NULL REFERENCES stations(station_id),
  batch_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('batch', 'bundle')),
  content_sha256 TEXT NOT NULL,
  received_at TEXT NOT NULL,
  response TEXT,
  PRIMARY KEY (station_id, batch_id)
);

CREATE TABLE records (
  seq BIGSERIAL PRIMARY KEY,
  record_id TEXT NOT NULL UNIQUE,
  station_id TEXT NOT NULL REFERENCES stations(station_id),
  sha256 TEXT NOT NULL,
  chip_id TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  model TEXT NOT NULL,
  work_order TEXT NOT NULL,
  kind TEXT NOT NULL,
  supersedes_record_id TEXT,
  completed_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  record_json TEXT NOT NULL,
  jws TEXT NOT NULL
);
CREATE INDEX records_chip ON records(chip_id);
CREATE INDEX records_serial ON records(serial_number);
CREATE INDEX records_station ON records(station_id, seq);
CREATE INDEX records_work_order ON records(work_order, seq);
CREATE INDEX records_completed ON records(completed_at);

CREATE TABLE conflicts (
  id BIGSERIAL PRIMARY KEY,
  record_id TEXT NOT NULL,
  station_id TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  stored_sha256 TEXT NOT NULL,
  offered_sha256 TEXT NOT NULL,
  offered_jws TEXT NOT NULL,
  detected_at TEXT NOT NULL
);
CREATE INDEX conflicts_station ON conflicts(station_id);
`;

/** v2: device identity lifecycle (docs/lifecycle.md). Same DDL for both dialects except the BLOB/BYTEA-free types. */
const LIFECYCLE_V2 = `
CREATE TABLE devices (
  serial_number TEXT PRIMARY KEY,
  chip_id TEXT NOT NULL UNIQUE,
  station_id TEXT NOT NULL,
  model TEXT NOT NULL,
  work_order TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('provisioned', 'activated', 'suspended', 'revoked', 'decommissioned')),
  state_since TEXT NOT NULL,
  suspended_at TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX devices_work_order ON devices(work_order);
CREATE INDEX devices_station ON devices(station_id);

CREATE TABLE credentials (
  serial_number TEXT NOT NULL REFERENCES devices(serial_number),
  version INTEGER NOT NULL,
  cert_serial TEXT NOT NULL,
  station_id TEXT NOT NULL,
  sha256 TEXT,
  not_before TEXT,
  not_after TEXT,
  status TEXT NOT NULL CHECK (status IN ('active', 'pending', 'revoked', 'superseded')),
  reason TEXT,
  revoked_at TEXT,
  cert_pem TEXT,
  csr_sha256 TEXT,
  record_id TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (serial_number, version),
  UNIQUE (station_id, cert_serial)
);
CREATE UNIQUE INDEX credentials_one_active ON credentials(serial_number) WHERE status = 'active';
CREATE INDEX credentials_csr ON credentials(csr_sha256);
CREATE INDEX credentials_station_status ON credentials(station_id, status);

CREATE TABLE lifecycle_events (
  seq INTEGER PRIMARY KEY,
  ts TEXT NOT NULL,
  type TEXT NOT NULL,
  run_id TEXT,
  payload TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);

CREATE TABLE blocked_identifiers (
  kind TEXT NOT NULL CHECK (kind IN ('serial', 'chipId')),
  value TEXT NOT NULL,
  reason TEXT NOT NULL,
  blocked_at TEXT NOT NULL,
  released_at TEXT,
  PRIMARY KEY (kind, value)
);

CREATE TABLE ca_keys (
  station_id TEXT PRIMARY KEY,
  key_label TEXT NOT NULL,
  ca_sha256 TEXT NOT NULL,
  ca_pem TEXT NOT NULL,
  escrowed_at TEXT NOT NULL
);

CREATE TABLE crls (
  station_id TEXT PRIMARY KEY,
  crl_number INTEGER NOT NULL,
  this_update TEXT NOT NULL,
  next_update TEXT NOT NULL,
  der_b64 TEXT NOT NULL
);

CREATE TABLE revoked_operators (
  operator_id TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  revoked_at TEXT NOT NULL
);

CREATE TABLE quotas (
  work_order TEXT NOT NULL,
  station_id TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (work_order, station_id)
);

CREATE TABLE lifecycle_settings (
  k TEXT PRIMARY KEY,
  v TEXT NOT NULL
);

CREATE TABLE station_key_history (
  station_id TEXT NOT NULL,
  cert_sha256 TEXT NOT NULL,
  chain_pem TEXT NOT NULL,
  replaced_at TEXT NOT NULL,
  PRIMARY KEY (station_id, cert_sha256)
);
`;

/** The devices.state values allowed from v3 on (v2 had no 'rotated'). */
const DEVICE_STATE_CHECK = `state IN ('provisioned', 'activated', 'rotated', 'suspended', 'revoked', 'decommissioned')`;

/**
 * v3 (SQLite): the device state 'rotated'. SQLite cannot alter a CHECK constraint, so the devices table is
 * rebuilt the documented way (https://sqlite.org/lang_altertable.html#otheralter): new table, copy the rows,
 * drop the old one, rename, recreate its indexes. credentials.serial_number keeps referencing devices by name.
 */
const SQLITE_V3 = `
CREATE TABLE devices_v3 (
  serial_number TEXT PRIMARY KEY,
  chip_id TEXT NOT NULL UNIQUE,
  station_id TEXT NOT NULL,
  model TEXT NOT NULL,
  work_order TEXT NOT NULL,
  state TEXT NOT NULL CHECK (${DEVICE_STATE_CHECK}),
  state_since TEXT NOT NULL,
  suspended_at TEXT,
  created_at TEXT NOT NULL
);
INSERT INTO devices_v3 (serial_number, chip_id, station_id, model, work_order, state, state_since, suspended_at, created_at)
  SELECT serial_number, chip_id, station_id, model, work_order, state, state_since, suspended_at, created_at FROM devices;
DROP TABLE devices;
ALTER TABLE devices_v3 RENAME TO devices;
CREATE INDEX devices_work_order ON devices(work_order);
CREATE INDEX devices_station ON devices(station_id);
`;

/** v3 (PostgreSQL): the device state 'rotated' (the column constraint's default name is devices_state_check). */
const PG_V3 = `
ALTER TABLE devices DROP CONSTRAINT devices_state_check;
ALTER TABLE devices ADD CONSTRAINT devices_state_check CHECK (${DEVICE_STATE_CHECK});
`;

/**
 * v4 (both dialects): delegated revocation signers, replacing the escrow of station issuing CA keys (docs/
 * lifecycle.md). One row per certificate request of headquarters: `pending` (key generated in the registry
 * token, signed request sent to the station), `active` (the station's certificate installed; at most one per
 * station), `replaced` (a newer one became active). The v2 table ca_keys is no longer read or written.
 */
const SIGNERS_V4 = `
CREATE TABLE revocation_signers (
  request_id TEXT PRIMARY KEY,
  station_id TEXT NOT NULL,
  key_label TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'replaced')),
  request_jws TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  ca_pem TEXT,
  certificate_pem TEXT,
  certificate_sha256 TEXT,
  installed_jws TEXT,
  installed_at TEXT
);
CREATE UNIQUE INDEX revocation_signers_pending ON revocation_signers(station_id) WHERE state = 'pending';
CREATE UNIQUE INDEX revocation_signers_active ON revocation_signers(station_id) WHERE state = 'active';
`;

/**
 * v5: audit chain anchoring (docs/audit.md "Anchoring at the registry"), same DDL for both dialects: the hash of
 * every audit entry of a station that a verified consistency proof covered, the signed heads, and the findings
 * (rewritten or forked histories). Written by registry/audit/audit-anchor.ts only.
 */
const AUDIT_ANCHOR_V5 = `
CREATE TABLE audit_anchor_chain (
  station_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (station_id, seq)
);

CREATE TABLE audit_heads (
  station_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL,
  signed_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('batch', 'bundle')),
  batch_id TEXT NOT NULL,
  jws TEXT NOT NULL,
  PRIMARY KEY (station_id, seq)
);

CREATE TABLE audit_findings (
  finding_id TEXT PRIMARY KEY,
  station_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('rewritten', 'forked', 'proof-mismatch')),
  at_seq BIGINT NOT NULL,
  anchored_hash TEXT NOT NULL,
  presented_hash TEXT NOT NULL,
  head_seq BIGINT NOT NULL,
  head_hash TEXT NOT NULL,
  head_jws TEXT NOT NULL,
  source TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  detected_at TEXT NOT NULL,
  message TEXT NOT NULL,
  UNIQUE (station_id, kind, at_seq, presented_hash)
);
CREATE INDEX audit_findings_station ON audit_findings(station_id, detected_at);
`;

/**
 * v6 (both dialects): certificates a station issued for runs that ended without a record (failed-issuance events,
 * `POST /v1/revocations` or a bundle; docs/lifecycle.md "Failed issuance"). No device or credential exists for them,
 * so they are kept here, each revoked when it arrives: the station's CRL lists every row and OCSP answers revoked.
 * One row per (station, certificate serial); the request id is the idempotency key of the event.
 */
const FAILED_ISSUANCE_V6 = `
CREATE TABLE failed_issuances (
  station_id TEXT NOT NULL,
  cert_serial TEXT NOT NULL,
  request_id TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  cert_pem TEXT NOT NULL,
  chip_id TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  work_order TEXT NOT NULL,
  run_id TEXT NOT NULL,
  failure_code TEXT NOT NULL,
  failure_step TEXT NOT NULL,
  reason TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  failed_at TEXT NOT NULL,
  revoked_at TEXT NOT NULL,
  event_sha256 TEXT NOT NULL,
  via TEXT NOT NULL CHECK (via IN ('online', 'bundle')),
  PRIMARY KEY (station_id, cert_serial),
  UNIQUE (station_id, request_id)
);
`;

/**
 * v7 (both): every signed policy version, kept (registry/policy/policy.ts `publishPolicy`). A version number is
 * signed once: the primary key refuses a second payload under it, and a pull answers the stored JWS of the newest
 * version while the content is unchanged (no re-signing with a new issuedAt).
 */
const POLICY_VERSIONS_V7 = `
CREATE TABLE policy_versions (
  version INTEGER PRIMARY KEY,
  content_sha256 TEXT NOT NULL,
  payload_json TEXT NOT NULL,
  jws TEXT NOT NULL,
  signed_at TEXT NOT NULL
);
`;

/**
 * v8 (both): station commissioning (registry/commissioning; docs/formats.md "Commissioning"). `enrolment_codes`:
 * one-time codes, stored only as the SHA-256 of the normalised code, for one station and its work orders; `used_at`
 * with the request it was used for and the answer given (a retry of the SAME request gets that answer again).
 * `station_cas`: every station CA certificate the HQ CA issued (one per station id), the request and the answer it
 * was issued for, its revocation, and the HQ-certified certificate of its current CRL signer key.
 * `hq_crls`: the HQ CA's current CRL (one row).
 */
const COMMISSIONING_V8 = `
CREATE TABLE enrolment_codes (
  code_sha256 TEXT PRIMARY KEY,
  station_id TEXT NOT NULL,
  work_orders TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  request_sha256 TEXT,
  answer_jws TEXT
);
CREATE INDEX enrolment_codes_station ON enrolment_codes (station_id);

CREATE TABLE station_cas (
  serial TEXT PRIMARY KEY,
  station_id TEXT NOT NULL UNIQUE,
  sha256 TEXT NOT NULL,
  certificate_pem TEXT NOT NULL,
  request_sha256 TEXT NOT NULL,
  answer_jws TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  not_after TEXT NOT NULL,
  revoked_at TEXT,
  reason TEXT,
  crl_signer_pem TEXT
);

CREATE TABLE hq_crls (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  crl_number INTEGER NOT NULL,
  this_update TEXT NOT NULL,
  next_update TEXT NOT NULL,
  der_b64 TEXT NOT NULL
);
`;

/**
 * v9 (both): queries at a million records (docs/benchmarks.md "Registry queries"). `registry_counts` holds the
 * number of records and of distinct chip ids, kept by a trigger on every insert into records (records are never
 * updated or deleted), so `GET /v1/stats` reads two rows instead of counting the table; records of one station and
 * work order, and of one station in a time range, get their own indexes. The counts of an existing registry are
 * computed once, here.
 */
const COUNTS_V9_COMMON = `
CREATE INDEX records_station_work_order ON records(station_id, work_order, seq);
CREATE INDEX records_station_completed ON records(station_id, completed_at);
CREATE TABLE registry_counts (
  name TEXT PRIMARY KEY CHECK (name IN ('records', 'devices')),
  n BIGINT NOT NULL CHECK (n >= 0)
);
INSERT INTO registry_counts (name, n) VALUES
  ('records', (SELECT COUNT(*) FROM records)),
  ('devices', (SELECT COUNT(DISTINCT chip_id) FROM records));
`;
const SQLITE_COUNTS_V9 = `${COUNTS_V9_COMMON}
CREATE TRIGGER records_counted AFTER INSERT ON records BEGIN
  UPDATE registry_counts SET n = n + 1 WHERE name = 'records';
  UPDATE registry_counts SET n = n + 1 WHERE name = 'devices'
    AND NOT EXISTS (SELECT 1 FROM records WHERE chip_id = NEW.chip_id AND seq <> NEW.seq);
END;
`;
/**
 * PostgreSQL: one statement-level trigger per INSERT (ingest inserts a batch in one statement). It locks the counts
 * row first, so under READ COMMITTED its queries see every batch committed before it: two batches of the same new
 * chip count it once.
 */
const PG_COUNTS_V9 = `${COUNTS_V9_COMMON}
CREATE FUNCTION registry_count_records() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  added BIGINT;
  fresh BIGINT;
BEGIN
  PERFORM 1 FROM registry_counts WHERE name = 'records' FOR UPDATE;
  SELECT COUNT(*) INTO added FROM new_records;
  SELECT COUNT(*) INTO fresh FROM (SELECT chip_id, COUNT(*) AS c FROM new_records GROUP BY chip_id) n
    WHERE (SELECT COUNT(*) FROM records r WHERE r.chip_id = n.chip_id) = n.c;
  UPDATE registry_counts SET n = n + added WHERE name = 'records';
  UPDATE registry_counts SET n = n + fresh WHERE name = 'devices';
  RETURN NULL;
END
$$;
CREATE TRIGGER records_counted AFTER INSERT ON records REFERENCING NEW TABLE AS new_records
  FOR EACH STATEMENT EXECUTE FUNCTION registry_count_records();
`;

/**
 * v10 (PostgreSQL): the signed record texts stored without compression (`STORAGE EXTERNAL`: still moved out of the
 * row into the table's TOAST relation, never compressed). A record JWS is ~12 KB of base64url that pglz cannot shrink
 * by the 25 % it requires, so under the default `EXTENDED` every insert paid a compression attempt (~0.17 ms of
 * server CPU a record, about half the INSERT's) and stored the text uncompressed anyway (docs/benchmarks.md
 * "PostgreSQL ingest"). Only the column's storage attribute changes: no table rewrite, rows already stored stay as
 * they are and read as before. SQLite has nothing to change (v10 is recorded there without a statement, so both
 * backends keep one version sequence).
 */
const PG_RECORD_STORAGE_V10 = `
ALTER TABLE records ALTER COLUMN jws SET STORAGE EXTERNAL;
ALTER TABLE conflicts ALTER COLUMN offered_jws SET STORAGE EXTERNAL;
`;

export const SQLITE_MIGRATIONS: readonly RegistryMigration[] = [
  { version: 1, name: 'initial schema', sql: SQLITE_V1 },
  { version: 2, name: 'identity lifecycle', sql: LIFECYCLE_V2 },
  { version: 3, name: 'device state rotated', sql: SQLITE_V3, rebuildsTables: true },
  { version: 4, name: 'delegated revocation signers', sql: SIGNERS_V4 },
  { version: 5, name: 'audit chain anchoring', sql: AUDIT_ANCHOR_V5 },
  { version: 6, name: 'failed issuances', sql: FAILED_ISSUANCE_V6 },
  { version: 7, name: 'signed policy versions', sql: POLICY_VERSIONS_V7 },
  { version: 8, name: 'station commissioning', sql: COMMISSIONING_V8 },
  { version: 9, name: 'record counts and the station/work order index', sql: SQLITE_COUNTS_V9 },
  { version: 10, name: 'record texts stored uncompressed (PostgreSQL only)', sql: '' },
];
export const PG_MIGRATIONS: readonly RegistryMigration[] = [
  { version: 1, name: 'initial schema', sql: PG_V1 },
  { version: 2, name: 'identity lifecycle', sql: LIFECYCLE_V2 },
  { version: 3, name: 'device state rotated', sql: PG_V3 },
  { version: 4, name: 'delegated revocation signers', sql: SIGNERS_V4 },
  { version: 5, name: 'audit chain anchoring', sql: AUDIT_ANCHOR_V5 },
  { version: 6, name: 'failed issuances', sql: FAILED_ISSUANCE_V6 },
  { version: 7, name: 'signed policy versions', sql: POLICY_VERSIONS_V7 },
  { version: 8, name: 'station commissioning', sql: COMMISSIONING_V8 },
  { version: 9, name: 'record counts and the station/work order index', sql: PG_COUNTS_V9 },
  { version: 10, name: 'record texts stored uncompressed', sql: PG_RECORD_STORAGE_V10 },
];

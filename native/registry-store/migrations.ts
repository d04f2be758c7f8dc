/**
 * Registry schema migrations for SQLite and PostgreSQL (same tables, two dialects), tracked in
 * `schema_migrations`. Forward-only: append new versions at the end, never edit a released one.
 * Each migration runs in one transaction with its schema_migrations row.
 */

export interface RegistryMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
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

export const SQLITE_MIGRATIONS: readonly RegistryMigration[] = [{ version: 1, name: 'initial schema', sql: SQLITE_V1 }];
export const PG_MIGRATIONS: readonly RegistryMigration[] = [{ version: 1, name: 'initial schema', sql: PG_V1 }];

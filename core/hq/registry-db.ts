/**
 * RegistryDb: the registry's durable state behind one async interface, implemented for SQLite
 * (better-sqlite3) and PostgreSQL (pg) in native/registry-store/. Every method returns a typed Result
 * (STORE_FAILED when the database fails); `ingest` is ONE transaction per batch.
 */
import type { Result } from '../result.js';

export interface StationRow {
  readonly stationId: string;
  /** PEM: station certificate, issuing CA, root. */
  readonly chainPem: string;
  readonly certificateSha256: string;
  readonly issuingCaSha256: string;
  readonly rootSha256: string;
  /** Allowed work orders; empty = any. */
  readonly workOrders: readonly string[];
  readonly enrolledAt: string;
  readonly revokedAt: string | null;
  readonly lastSyncAt: string | null;
}

export type NewStation = Omit<StationRow, 'revokedAt' | 'lastSyncAt'>;

/** A record that passed verification, ready to be stored. */
export interface IngestRecord {
  /** Position in the batch / bundle. */
  readonly index: number;
  readonly recordId: string;
  /** SHA-256 (hex) of the signed payload: the idempotency key's content hash. */
  readonly sha256: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly model: string;
  readonly workOrder: string;
  readonly kind: string;
  readonly supersedesRecordId: string | null;
  readonly completedAt: string;
  /**
   * The signed JSON payload, verbatim; RECORD_JSON_IN_JWS ('') when only `jws` carries it (records verified by ingest,
   * whose `parsed` holds what the lifecycle reads): recordJsonOf gives the text either way. Not stored (the payload
   * is kept once, in `jws`).
   */
  readonly recordJson: string;
  readonly jws: string;
  /**
   * `jws` as UTF-8 bytes, when the caller has them (records from the verification workers, whose `jws` is then read
   * from these bytes only when asked for): a store may write these instead of encoding `jws` again.
   */
  readonly jwsUtf8?: Uint8Array;
  /**
   * What verification already read from the record (set by ingest, absent for records read back from the store):
   * the operator and the device certificate (serial lower-case hex without leading zeros, ISO validity), so the
   * lifecycle does not parse the record and its certificate again.
   */
  readonly parsed?: IngestRecordParsed;
}

/** Facts of a verified record (IngestRecord.parsed). */
export interface IngestRecordParsed {
  readonly operator: string;
  readonly certificate: {
    readonly serial: string;
    readonly sha256: string;
    readonly pem: string;
    readonly notBefore: string;
    readonly notAfter: string;
  };
}

export interface IngestInput {
  readonly stationId: string;
  readonly batchId: string;
  readonly kind: 'batch' | 'bundle';
  /** SHA-256 (hex) over the submitted record list (same batchId with other content is a BATCH_CONFLICT). */
  readonly contentSha256: string;
  readonly receivedAt: string;
  readonly records: readonly IngestRecord[];
}

export type IngestStatus = 'accepted' | 'duplicate' | 'conflict';

/**
 * A step run inside the ingest transaction after the records are inserted (the device lifecycle:
 * registry/transitions/ingest-hooks.ts applyRecords). `tx` is the transaction's connection; throwing rolls back.
 */
export type IngestApply = (tx: SqlExec, stored: readonly IngestRecord[]) => Promise<void>;

export type IngestOutcome =
  | { readonly kind: 'done'; readonly statuses: ReadonlyMap<number, IngestStatus> }
  /** The batchId is already stored with different content: nothing was written. */
  | { readonly kind: 'batch-conflict' };

export interface BatchRow {
  readonly stationId: string;
  readonly batchId: string;
  readonly kind: 'batch' | 'bundle';
  readonly contentSha256: string;
  readonly receivedAt: string;
  /** The JSON response (with the signed receipt), once it was produced. */
  readonly response: string | null;
}

export interface StoredRecordRow {
  readonly seq: number;
  readonly recordId: string;
  readonly stationId: string;
  readonly sha256: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly model: string;
  readonly workOrder: string;
  readonly kind: string;
  readonly supersedesRecordId: string | null;
  readonly completedAt: string;
  readonly receivedAt: string;
  readonly batchId: string;
  readonly recordJson: string;
  readonly jws: string;
  /**
   * `jws` as UTF-8 bytes, when the caller has them (records from the verification workers, whose `jws` is then read
   * from these bytes only when asked for): a store may write these instead of encoding `jws` again.
   */
  readonly jwsUtf8?: Uint8Array;
}

/**
 * `records.record_json` of a row stored by ingest since the record is kept once (docs/registry-api.md "Storage"):
 * the record's JSON is its JWS payload, read from `jws` (rows stored before keep their copy of the text).
 */
export const RECORD_JSON_IN_JWS = '';

/** The record's JSON text of a `records` row: `record_json`, or the payload of `jws` when it is RECORD_JSON_IN_JWS. */
export function recordJsonOf(recordJson: string, jws: string): string {
  if (recordJson !== RECORD_JSON_IN_JWS) return recordJson;
  const dot = jws.indexOf('.');
  return Buffer.from(jws.slice(dot + 1, jws.indexOf('.', dot + 1)), 'base64url').toString('utf8');
}

/** A `records` row (either backend, column names as in the schema) as a StoredRecordRow. */
export function recordFrom(r: Readonly<Record<string, unknown>>): StoredRecordRow {
  return {
    seq: Number(r['seq']),
    recordId: r['record_id'] as string,
    stationId: r['station_id'] as string,
    sha256: r['sha256'] as string,
    chipId: r['chip_id'] as string,
    serialNumber: r['serial_number'] as string,
    model: r['model'] as string,
    workOrder: r['work_order'] as string,
    kind: r['kind'] as string,
    supersedesRecordId: (r['supersedes_record_id'] as string | null) ?? null,
    completedAt: r['completed_at'] as string,
    receivedAt: r['received_at'] as string,
    batchId: r['batch_id'] as string,
    recordJson: recordJsonOf(r['record_json'] as string, r['jws'] as string),
    jws: r['jws'] as string,
  };
}

export interface RecordFilter {
  readonly stationId?: string;
  readonly workOrder?: string;
  /** Inclusive lower bound on completedAt (ISO). */
  readonly from?: string;
  /** Exclusive upper bound on completedAt (ISO). */
  readonly to?: string;
  /** Only records with seq greater than this (keyset pagination). */
  readonly afterSeq?: number;
  readonly limit: number;
}

export interface StationStats extends StationRow {
  readonly records: number;
  readonly conflicts: number;
}

export interface RegistryCounts {
  readonly stations: number;
  readonly devices: number;
  readonly records: number;
  readonly conflicts: number;
  readonly batches: number;
  readonly nonces: number;
}

export interface ConflictRow {
  readonly recordId: string;
  readonly stationId: string;
  readonly batchId: string;
  readonly storedSha256: string;
  readonly offeredSha256: string;
  readonly detectedAt: string;
}

export type SqlRow = Record<string, unknown>;

/** Plain SQL with `?` placeholders (the PostgreSQL backend rewrites them to $n). Throws on database errors. */
export interface SqlExec {
  all(sql: string, args?: readonly unknown[]): Promise<SqlRow[]>;
  /** Number of rows changed. */
  run(sql: string, args?: readonly unknown[]): Promise<number>;
}

/**
 * Portable SQL access for the lifecycle tables (registry/store/lifecycle.ts). `transaction` runs `fn` in ONE
 * serialised transaction (SQLite: BEGIN IMMEDIATE with every other database call waiting; PostgreSQL: a
 * transaction-scoped advisory lock); it commits unless `commit` (given `fn`'s answer) says false, then it rolls
 * back and still answers it (registry/common/tx.ts `transact`: results, not exceptions). A throw rolls back too.
 */
export interface SqlPort extends SqlExec {
  readonly dialect: 'sqlite' | 'postgres';
  transaction<T>(fn: (tx: SqlExec) => Promise<T>, commit?: (value: T) => boolean): Promise<T>;
}

export interface RegistryDb {
  readonly backend: 'sqlite' | 'postgres';
  /** Lifecycle tables (schema v2): portable SQL access. */
  readonly sql: SqlPort;
  getStation(stationId: string): Promise<Result<StationRow | null>>;
  /** Insert a station; `created: false` when the same id already exists (nothing changed). */
  insertStation(s: NewStation): Promise<Result<{ created: boolean }>>;
  /** Set revokedAt (first revocation wins); false when the station is unknown. */
  revokeStation(stationId: string, at: string): Promise<Result<boolean>>;
  listStations(): Promise<Result<StationStats[]>>;
  /** Remember a request nonce until `expiresAt`; false if it was seen before (a replay). Purges expired nonces. */
  useNonce(stationId: string, nonce: string, expiresAt: string, now: string): Promise<Result<boolean>>;
  getBatch(stationId: string, batchId: string): Promise<Result<BatchRow | null>>;
  /**
   * One transaction: the batch row, new records, conflicts, the station's lastSyncAt, and `apply`
   * with the records newly accepted in this call (not duplicates or conflicts; not called when there are none).
   * A throw in `apply` rolls the whole batch back (no batch row, no records) and answers STORE_FAILED.
   */
  ingest(input: IngestInput, apply: IngestApply): Promise<Result<IngestOutcome>>;
  /** Store the response of a batch unless one is stored already; returns the stored one (first wins). */
  saveBatchResponse(stationId: string, batchId: string, response: string): Promise<Result<string>>;
  /** Records of a device, by chip id or serial number, oldest first. */
  deviceRecords(serialOrChipId: string): Promise<Result<StoredRecordRow[]>>;
  listRecords(f: RecordFilter): Promise<Result<StoredRecordRow[]>>;
  listConflicts(stationId?: string): Promise<Result<ConflictRow[]>>;
  counts(): Promise<Result<RegistryCounts>>;
  close(): Promise<void>;
}

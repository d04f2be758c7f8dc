/**
 * The Store port: durable state of the station (runs, issued certificates, signed records) and the
 * append-only, hash-chained audit trail. Every mutating method is ONE transaction that also appends
 * its audit entry, so a power loss at any instant leaves either the whole change or none of it.
 *
 * Durable (on disk before the method returns): failRun, recordRefusal, appendAudit, createRun of a rotation and a
 * rework's erase intent (checkpoint `zeroizing: true`). Durable once `whenDurable()` resolves, which the caller
 * awaits before it acts outside the station: a checkpoint that logs an issued certificate (before the certificate
 * is written to the board) and completeRun (before PASS, the label, the sync). The other commits (createRun of an
 * initial run, the other checkpoints) survive a crash of the process but may be undone by a power loss until the
 * next durable commit: only commits whose loss equals a crash just before them (docs/audit.md "Power loss and
 * crashes").
 *
 * Synchronous by design (better-sqlite3), but for `whenDurable`; the engine runs off the UI thread.
 */
import type { ErrorParams } from '../errors.js';
import type { StepName } from '../model.js';
import type { CertificateProfileOverride } from '../pki/device-cert.js';
import type { AttestationEvidenceRecord } from './record.js';

export type RunKind = 'initial' | 'rotation';
export type RunState = 'active' | 'done' | 'failed';

/**
 * The policy a run was started under (run data `policy`, persisted with the identify checkpoint): a resumed run
 * issues its certificate with the same override even when a newer policy arrived meanwhile.
 */
export interface RunPolicySnapshot {
  readonly version: number | null;
  readonly sha256: string | null;
  readonly override: CertificateProfileOverride | null;
}

/** Checkpoint data accumulated by a run; JSON-serialisable; binary as base64url. Never secrets. */
export interface RunData {
  readonly profileId?: string;
  readonly identity?: Readonly<Record<string, unknown>>;
  readonly nonce?: string;
  readonly attestation?: {
    readonly leafSha256: string;
    readonly verifiedAt: string;
    /** The evidence of the last verified attestation, as the record carries it (absent in runs from before). */
    readonly evidence?: AttestationEvidenceRecord;
  };
  readonly key?: {
    readonly mode: 'onboard' | 'injected';
    readonly curve: string;
    readonly publicKeySpki: string;
    readonly csr: string;
  };
  readonly certificate?: {
    readonly serialNumber: string;
    readonly der: string;
    readonly chain: readonly string[];
    readonly sha256: string;
  };
  readonly installed?: { readonly certificateSha256: string };
  readonly manifest?: {
    readonly jws: string;
    readonly pass: boolean;
    /** measurementsDigest() of the measurements the manifest holds, and the baseline policy it was checked against. */
    readonly measurementsSha256?: string;
    readonly policySha256?: string;
  };
  readonly locked?: boolean;
  readonly timings?: Readonly<Record<string, number>>;
  /** The registry policy in force when the run started (absent for a run from before policy snapshots). */
  readonly policy?: RunPolicySnapshot;
  /** SHA-256 (hex) of the canonical JSON of the effective certificate profile, set with `certificate`. */
  readonly certificateProfile?: { readonly sha256: string };
  /** What the run's board driver checkpointed (core/provisioning/driver.ts), merged step by step; the `ls` driver keeps none. */
  readonly driver?: Readonly<Record<string, unknown>>;
  readonly [k: string]: unknown;
}

export interface RunRow {
  readonly runId: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly port: string;
  readonly workOrder: string;
  readonly operator: string;
  readonly stationId: string;
  readonly kind: RunKind;
  readonly supersedesRecordId: string | null;
  readonly state: RunState;
  /** Last step whose checkpoint was committed. */
  readonly step: StepName;
  readonly data: RunData;
  readonly error: { readonly code: string; readonly message: string; readonly step: StepName } | null;
  readonly startedAt: string;
  readonly updatedAt: string;
}

/** A run's identify checkpoint, committed with the run (`Store.createRun`). */
export interface FirstCheckpoint {
  readonly patch: Partial<RunData>;
  readonly audit: Readonly<Record<string, unknown>>;
}

export interface NewRun {
  readonly runId: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly port: string;
  readonly workOrder: string;
  readonly operator: string;
  readonly stationId: string;
  readonly kind: RunKind;
  readonly supersedesRecordId: string | null;
  readonly startedAt: string;
}

/** A certificate issued by the station CA, logged BEFORE it is written to the board (so it can be revoked). */
export interface IssuedCertificate {
  readonly serialNumber: string; // hex
  readonly sha256: string; // hex of DER
  readonly chipId: string;
  readonly runId: string;
  readonly der: Uint8Array;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuedAt: string;
}

export interface StoredRecord {
  readonly recordId: string;
  readonly runId: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly workOrder: string;
  readonly operator: string;
  readonly kind: RunKind;
  readonly supersedesRecordId: string | null;
  readonly outcome: 'provisioned';
  readonly certificateSerial: string;
  readonly createdAt: string;
  /** The exact JSON bytes that were signed (the JWS payload), as a string. */
  readonly recordJson: string;
  /** JWS compact serialization of recordJson, signed by the station key. */
  readonly jws: string;
  /** SHA-256 (hex) of recordJson. */
  readonly recordSha256: string;
}

export interface AuditEntry {
  readonly seq: number;
  readonly ts: string;
  readonly type: string;
  readonly runId: string | null;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly prevHash: string;
  readonly hash: string;
}

export type AuditVerification =
  | {
      readonly ok: true;
      readonly entries: number;
      readonly records: number;
      /** Refusals cross-checked with their `board.refused` entries (schema version 10). */
      readonly refusals?: number;
      readonly headHash: string;
    }
  | {
      readonly ok: false;
      readonly entries: number;
      /** First audit sequence number (or record id) at which verification failed. */
      readonly at: string;
      readonly reason:
        | 'hash-mismatch'
        | 'broken-link'
        | 'sequence-gap'
        | 'record-mismatch'
        | 'record-missing'
        | 'record-unaudited'
        | 'refusal-missing'
        | 'refusal-mismatch'
        | 'refusal-unaudited'
        | 'truncated';
      readonly message: string;
    };

export interface RecordQuery {
  readonly limit?: number;
  readonly offset?: number;
  readonly chipId?: string;
  readonly serialNumber?: string;
  readonly workOrder?: string;
  /** Records created at or after this time (ISO 8601 UTC as the store writes it, e.g. `Date#toISOString()`). */
  readonly since?: string;
  /** Records created before this time (same form). A listing read page by page pins it, so pages do not shift. */
  readonly before?: string;
}

/**
 * A board refused before a run exists (docs/audit.md "Refusals"): FLOW_BLOCKED, FLOW_QUOTA_EXHAUSTED, an unknown
 * profile, a scan-in mismatch, ... No identity is created: the claim the board made is recorded with the reason.
 */
export interface NewRefusal {
  readonly chipId: string;
  readonly serialNumber: string;
  readonly model: string;
  readonly port: string;
  readonly workOrder: string;
  readonly operator: string;
  readonly stationId: string;
  readonly code: string;
  readonly message: string;
  /** The values of the code's text placeholders (StationError `params`), kept for the Log view; absent: none. */
  readonly params?: ErrorParams;
  /** The serial number scanned for the port, if any. */
  readonly scanned: string | null;
}

/** What `recordRefusal` did: a new refusal (with its audit entry) or a repeat coalesced into an earlier one. */
export interface RecordedRefusal {
  readonly refusalId: string;
  readonly coalesced: boolean;
  /** Refused attempts the row now stands for (1 for a new one). */
  readonly count: number;
}

/** What failing a run queued besides its failed-issuance events. */
export interface FailedRun {
  /** A rework that erased its board: the queued revocation of the superseded record's certificate, else null. */
  readonly reworkRevocation: { readonly requestId: string; readonly certificateSerial: string } | null;
}

export interface Store {
  /** The current (not superseded) provisioning record of a board, if any. */
  findCurrentRecord(chipId: string): StoredRecord | null;
  /** The active (unfinished) run of a board, if any. */
  findActiveRun(chipId: string): RunRow | null;
  getRun(runId: string): RunRow | null;
  /**
   * Create a run (state active, step identify) and audit `run.started`; with `identify`, its identify checkpoint
   * in the same transaction (the run's first data, audited `step.identify` after `run.started`): one commit where
   * `createRun` then `checkpoint(runId, 'identify', ...)` would make two.
   */
  createRun(run: NewRun, identify?: FirstCheckpoint): RunRow;
  /**
   * Commit a step: merge `patch` into the run data, set `step`, audit `step.<name>` with `audit`,
   * and (certify step) log the issued certificate, all in one transaction. With `issued`: durable once
   * `whenDurable()` resolves (await it before writing the certificate to the board); with `zeroizing: true` in
   * `patch`: durable on return.
   */
  checkpoint(
    runId: string,
    step: StepName,
    patch: Partial<RunData>,
    audit: Readonly<Record<string, unknown>>,
    issued?: IssuedCertificate,
  ): RunRow;
  /**
   * Insert the signed record, mark the run done, supersede the previous record (rotation), audit `record.committed`.
   * Durable once `whenDurable()` resolves: await it before reporting or using the record outside.
   */
  completeRun(runId: string, record: Omit<StoredRecord, 'createdAt'> & { readonly createdAt?: string }): StoredRecord;
  /**
   * Record a board refused before a run exists, in one transaction with its `board.refused` audit entry; a repeat
   * of a recent refusal on the same port is coalesced into it (no new row, no new entry: docs/audit.md "Refusals").
   */
  recordRefusal(r: NewRefusal): RecordedRefusal;
  /**
   * Mark the run failed with a code and audit `run.failed`. A failed run can be resumed by a new run. In the same
   * transaction: the failed-issuance events of its certificates in no record, and (a rework that erased its board)
   * the revocation of the superseded record's certificate (docs/lifecycle.md "Failed rework").
   */
  failRun(
    runId: string,
    error: {
      readonly code: string;
      readonly message: string;
      readonly step: StepName;
      /** The code's text placeholders (StationError `params`): kept in the run's error for the Log view. */
      readonly params?: ErrorParams;
    },
  ): FailedRun;
  listRecords(q?: RecordQuery): StoredRecord[];
  countRecords(q?: Omit<RecordQuery, 'limit' | 'offset'>): number;
  listIssuedCertificates(chipId?: string): IssuedCertificate[];
  /** Append a free-standing audit entry (e.g. station.init, override.approved). */
  appendAudit(type: string, payload: Readonly<Record<string, unknown>>, runId?: string | null): AuditEntry;
  listAudit(fromSeq?: number, limit?: number): AuditEntry[];
  /** Walk the chain and cross-check every record against its audit entry. */
  verifyAudit(): AuditVerification;
  /**
   * Resolves once every commit made before the call is on disk (a sync that started after the call; concurrent
   * callers share one). Rejects with a StoreError when it cannot make them durable. Resolves at once on a store
   * that opted out of durability (benchmarks, tests) or keeps nothing on disk.
   */
  whenDurable(): Promise<void>;
  close(): void;
}

/**
 * Test fixtures for the SQLite store: drive a run through the Store port the way the engine does
 * (createRun, 6 checkpoints with the issued certificate at certify, completeRun). Used by the tests and by
 * the crash worker (crash-worker.ts). Not part of the station runtime.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { canonicalJson } from '../core/canonical.js';
import type { StepName } from '../core/model.js';
import type { IssuedCertificate, NewRun, RunData, RunRow, Store, StoredRecord } from '../core/provisioning/store.js';
import Database from 'better-sqlite3';
import { auditEntryHashSync, sha256HexSync } from '../native/store/index.js';

export interface BoardFixture {
  readonly chipId: string;
  readonly serialNumber: string;
  readonly workOrder: string;
}

/** A board with a random chip id. */
export function board(i: number, workOrder = 'WO-1'): BoardFixture {
  return { chipId: `c0ffee${i.toString(16).padStart(10, '0')}`, serialNumber: `SN-${i}`, workOrder };
}

/** The new run of `b` (rotation if `supersedes` is given), with a random run id. */
export function newRun(b: BoardFixture, supersedes: string | null = null, ts = new Date()): NewRun {
  return {
    runId: randomUUID(),
    chipId: b.chipId,
    serialNumber: b.serialNumber,
    port: '/dev/ttyACM0',
    workOrder: b.workOrder,
    operator: 'op-7',
    stationId: 'ST-01',
    kind: supersedes ? 'rotation' : 'initial',
    supersedesRecordId: supersedes,
    startedAt: ts.toISOString(),
  };
}

/** Start a run for `b` (rotation if `supersedes` is given). */
export function startRun(store: Store, b: BoardFixture, supersedes: string | null = null, ts = new Date()): RunRow {
  return store.createRun(newRun(b, supersedes, ts));
}

/** A fake issued certificate for a run (the store does not parse DER, it checks the sha256). */
export function fakeCertificate(run: RunRow): IssuedCertificate {
  const der = new Uint8Array(randomBytes(300));
  return {
    serialNumber: randomBytes(16).toString('hex'),
    sha256: sha256HexSync(der),
    chipId: run.chipId,
    runId: run.runId,
    der,
    notBefore: '2025-01-01T00:00:00.000Z',
    notAfter: '2045-01-01T00:00:00.000Z',
    issuedAt: new Date().toISOString(),
  };
}

/** The checkpoint sequence of a run (6 checkpoints), in order. */
export const CHECKPOINT_STEPS: readonly StepName[] = ['identify', 'attest', 'key', 'certify', 'baseline', 'record'];

/** Commit the checkpoint for `step`: the data the engine would store at that step. */
export function doCheckpoint(store: Store, run: RunRow, step: StepName): RunRow {
  const patch: Partial<RunData> = {};
  let issued: IssuedCertificate | undefined;
  switch (step) {
    case 'identify':
      Object.assign(patch, {
        profileId: 'demo-board',
        identity: { chipId: run.chipId, serialNumber: run.serialNumber },
      });
      break;
    case 'attest':
      Object.assign(patch, {
        nonce: randomBytes(32).toString('base64url'),
        attestation: { leafSha256: randomBytes(32).toString('hex'), verifiedAt: new Date().toISOString() },
      });
      break;
    case 'key':
      Object.assign(patch, {
        key: { mode: 'onboard', curve: 'P-256', publicKeySpki: randomBytes(91).toString('base64url'), csr: 'csr' },
      });
      break;
    case 'certify': {
      issued = fakeCertificate(run);
      Object.assign(patch, {
        certificate: {
          serialNumber: issued.serialNumber,
          der: Buffer.from(issued.der).toString('base64url'),
          chain: [],
          sha256: issued.sha256,
        },
      });
      break;
    }
    case 'baseline':
      Object.assign(patch, { manifest: { jws: 'eyJ.manifest.sig', pass: true } });
      break;
    case 'record':
      Object.assign(patch, { locked: true });
      break;
    default:
      break;
  }
  return store.checkpoint(run.runId, step, patch, { step, n: CHECKPOINT_STEPS.indexOf(step) }, issued);
}

/** Complete a run whose certify checkpoint is done: build and store a (fake-signed) record. */
export function complete(store: Store, run: RunRow, createdAt?: string): StoredRecord {
  const cert = run.data.certificate;
  if (!cert) throw new Error('run has no certificate');
  const recordId = randomUUID();
  const recordJson = canonicalJson({
    schema: 'line-station/provisioning-record/v1',
    recordId,
    runId: run.runId,
    chipId: run.chipId,
    serialNumber: run.serialNumber,
    certificateSerial: cert.serialNumber,
    certificate: { serialNumber: cert.serialNumber, sha256: cert.sha256 },
    supersedesRecordId: run.supersedesRecordId,
  });
  return store.completeRun(run.runId, {
    recordId,
    runId: run.runId,
    chipId: run.chipId,
    serialNumber: run.serialNumber,
    workOrder: run.workOrder,
    operator: run.operator,
    kind: run.kind,
    supersedesRecordId: run.supersedesRecordId,
    outcome: 'provisioned',
    certificateSerial: cert.serialNumber,
    ...(createdAt ? { createdAt } : {}),
    recordJson,
    jws: `eyJhbGciOiJFUzI1NiJ9.${Buffer.from(recordJson).toString('base64url')}.c2ln`,
    recordSha256: sha256HexSync(recordJson),
  });
}

/** Continue a run from its last committed step to the end (resume after a crash), or run it fully. */
export function finishRun(store: Store, run: RunRow, createdAt?: string): StoredRecord {
  let r = run;
  // A freshly created run is at 'identify' without its identify data; resume from the first missing checkpoint.
  const from = r.data.profileId === undefined ? 0 : CHECKPOINT_STEPS.indexOf(r.step) + 1;
  for (const step of CHECKPOINT_STEPS.slice(from)) r = doCheckpoint(store, r, step);
  return complete(store, r, createdAt);
}

/** One full run: createRun, 6 checkpoints, completeRun. */
export function fullRun(
  store: Store,
  b: BoardFixture,
  supersedes: string | null = null,
  createdAt?: string,
): StoredRecord {
  return finishRun(store, startRun(store, b, supersedes), createdAt);
}

/**
 * The audit-rewrite attack (docs/audit.md): with its own sqlite connection on station.db, drop the audit tables'
 * append-only triggers, rewrite entry `seq` (its payload gets `patch`), recompute every later hash and the head row,
 * exactly as the station would have written them. Returns the number of entries rewritten.
 */
export function rewriteAuditHistory(dbFile: string, seq: number, patch: Record<string, unknown>): number {
  const db = new Database(dbFile);
  try {
    const audit = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('audit_log', 'audit_head')";
    for (const t of db.prepare(audit).pluck().all() as string[]) db.exec(`DROP TRIGGER "${t}"`);
    const rows = db.prepare('SELECT * FROM audit_log WHERE seq >= ? ORDER BY seq').all(seq) as {
      seq: number;
      ts: string;
      type: string;
      run_id: string | null;
      payload_json: string;
      prev_hash: string;
    }[];
    const upd = db.prepare('UPDATE audit_log SET payload_json = ?, prev_hash = ?, hash = ? WHERE seq = ?');
    let prev = rows[0]!.prev_hash;
    db.transaction(() => {
      for (const r of rows) {
        const payload = JSON.parse(r.payload_json) as Record<string, unknown>;
        const p = r.seq === seq ? { ...payload, ...patch } : payload;
        const hash = auditEntryHashSync(prev, { seq: r.seq, ts: r.ts, type: r.type, runId: r.run_id, payload: p });
        upd.run(canonicalJson(p), prev, hash, r.seq);
        prev = hash;
      }
      db.prepare('UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1').run(rows[rows.length - 1]!.seq, prev);
    })();
    return rows.length;
  } finally {
    db.close();
  }
}

/** Read-only look at a station database: the audit head seq and the first entry of a type (tests). */
export function auditFacts(dbFile: string, type: string): { headSeq: number; firstOfType: number | null } {
  const db = new Database(dbFile, { readonly: true });
  try {
    return {
      headSeq: db.prepare('SELECT seq FROM audit_head WHERE id = 1').pluck().get() as number,
      firstOfType:
        (db.prepare('SELECT MIN(seq) FROM audit_log WHERE type = ?').pluck().get(type) as number | null) ?? null,
    };
  } finally {
    db.close();
  }
}

/**
 * Run one SQL statement on station.db through a connection of the test's own (not the station's): how a test plays
 * someone editing the database by hand. Throws what SQLite throws (e.g. a trigger's refusal).
 */
export function runRawSql(dbFile: string, sql: string, ...params: unknown[]): number {
  const db = new Database(dbFile);
  try {
    return db.prepare(sql).run(...params).changes;
  } finally {
    db.close();
  }
}

/** Read one column of the rows of a query on station.db, read-only, through a connection of the test's own. */
export function readColumn(dbFile: string, sql: string, ...params: unknown[]): unknown[] {
  const db = new Database(dbFile, { readonly: true });
  try {
    return db
      .prepare(sql)
      .pluck()
      .all(...params);
  } finally {
    db.close();
  }
}

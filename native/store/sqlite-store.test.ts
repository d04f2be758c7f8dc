import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auditEntryHash, auditEntryPreimage, GENESIS_HASH, verifyChain } from '../../core/provisioning/audit.js';
import type { Logger } from '../../core/ports.js';
import { auditEntryHashSync, isStoreError, openStore, StoreError, type SqliteStore } from './index.js';
import { storedPreimage } from './audit-verify.js';
import { MIGRATIONS, migrate, SCHEMA_VERSION, type Migration } from './migrations.js';
import {
  board,
  complete,
  doCheckpoint,
  fakeCertificate,
  finishRun,
  fullRun,
  newRun,
  startRun,
  CHECKPOINT_STEPS,
} from '../../testkit/store-fixtures.js';

let dir: string;
let file: string;
let stores: SqliteStore[] = [];

function open(f = file): SqliteStore {
  const r = openStore(f);
  if (!r.ok) throw new Error(`open failed: ${r.error.message}`);
  stores.push(r.value);
  return r.value;
}

function expectStoreError(fn: () => unknown, reason: string): StoreError {
  try {
    fn();
  } catch (e) {
    expect(isStoreError(e)).toBe(true);
    const se = e as StoreError;
    expect(se.reason).toBe(reason);
    expect(se.error.code).toBe('STORE_FAILED');
    return se;
  }
  throw new Error(`expected StoreError ${reason}`);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ls-store-'));
  file = join(dir, 'station.db');
  stores = [];
});
afterEach(() => {
  for (const s of stores) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('openStore and migrations', () => {
  it('creates a fresh database at the current schema version with WAL, FULL sync and foreign keys', () => {
    const s = open();
    expect(s.path).toBe(file);
    expect(s.integrityCheck()).toEqual(['ok']);
    s.close();
    const raw = new Database(file);
    expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    const tables = (
      raw.prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").all() as { name: string }[]
    ).map((t) => t.name);
    expect(tables).toEqual(
      expect.arrayContaining(['audit_head', 'audit_log', 'issued_certificates', 'records', 'runs']),
    );
    raw.close();
  });

  it('re-opens an existing database without re-running migrations and keeps the data', () => {
    const logs: string[] = [];
    const logger: Logger = { log: (_l, msg, ctx) => logs.push(`${msg} ${JSON.stringify(ctx)}`), child: () => logger };
    const r1 = openStore(file, { logger });
    if (!r1.ok) throw new Error(r1.error.message);
    const rec = fullRun(r1.value, board(1));
    r1.value.close();
    expect(logs.filter((l) => l.startsWith('database migrated'))).toHaveLength(SCHEMA_VERSION);
    logs.length = 0;
    const s2 = openStore(file, { logger });
    if (!s2.ok) throw new Error(s2.error.message);
    stores.push(s2.value);
    expect(logs.filter((l) => l.startsWith('database migrated'))).toHaveLength(0);
    expect(s2.value.findCurrentRecord(board(1).chipId)?.recordId).toBe(rec.recordId);
    expect(s2.value.verifyAudit().ok).toBe(true);
  });

  it('refuses a database with a newer schema version than it knows', () => {
    open().close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const r = openStore(file);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('STORE_FAILED');
    expect(r.error.message).toMatch(/newer than this station software supports/);
    expect(r.error.details).toMatchObject({ userVersion: SCHEMA_VERSION + 1, known: SCHEMA_VERSION });
    // Untouched.
    const raw2 = new Database(file);
    expect(raw2.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
    raw2.close();
  });

  it('applies only pending migrations, each in a transaction; a failing one is rolled back', () => {
    const db = new Database(file);
    expect(migrate(db, MIGRATIONS)).toEqual({ ok: true, from: 0, to: SCHEMA_VERSION });
    const v2: Migration = {
      version: SCHEMA_VERSION + 1,
      name: 'add t',
      up: (d) => d.exec('CREATE TABLE t (x INTEGER)'),
    };
    const bad: Migration = {
      version: SCHEMA_VERSION + 2,
      name: 'broken',
      up: (d) => {
        d.exec('CREATE TABLE u (x INTEGER)');
        d.exec('THIS IS NOT SQL');
      },
    };
    const r = migrate(db, [...MIGRATIONS, v2, bad]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(/migration \d+ \(broken\) failed/);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
    const names = (
      db.prepare("SELECT name FROM sqlite_master WHERE name IN ('t','u')").all() as { name: string }[]
    ).map((x) => x.name);
    expect(names).toEqual(['t']);
    db.close();
  });

  it('version 11 drops runs_state and audit_log_run from a version 10 database with runs; lookups by state keep an index', () => {
    const old = new Database(file);
    expect(migrate(old, MIGRATIONS.slice(0, 10))).toEqual({ ok: true, from: 0, to: 10 });
    old.close();
    const index = (d: Database.Database) =>
      (d.prepare("SELECT name FROM sqlite_master WHERE type = 'index'").pluck().all() as string[]).sort();
    const before = new Database(file);
    expect(index(before)).toEqual(expect.arrayContaining(['runs_state', 'audit_log_run']));
    before.close();
    const s = open();
    const done = fullRun(s, board(60));
    const active = startRun(s, board(61));
    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(11);
    const names = index(raw);
    expect(names).not.toContain('runs_state');
    expect(names).not.toContain('audit_log_run');
    expect(names).toContain('runs_state_started');
    // Every lookup by state still searches an index (runs_state_started), none scans the runs table.
    for (const q of [
      "SELECT run_id FROM runs WHERE state = 'active'",
      "SELECT COUNT(*) FROM runs WHERE state = 'done' AND started_at >= '2000'",
      `SELECT r.run_id FROM runs r JOIN issued_certificates c ON c.run_id = r.run_id WHERE r.state = 'active'`,
    ]) {
      const plan = (raw.prepare(`EXPLAIN QUERY PLAN ${q}`).all() as { detail: string }[]).map((p) => p.detail);
      expect(plan.join('\n'), q).toMatch(/SEARCH r(uns)? USING (COVERING )?INDEX runs_state_started/);
    }
    // A run's audit entries are still found by run id (a scan).
    const types = raw.prepare('SELECT type FROM audit_log WHERE run_id = ? ORDER BY seq').pluck().all(done.runId);
    expect(types).toHaveLength(9);
    expect([types[0], types.at(-1)]).toEqual(['run.started', 'record.committed']);
    expect(raw.prepare('SELECT COUNT(*) FROM audit_log WHERE run_id = ?').pluck().get(active.runId)).toBe(1);
    raw.close();
    expect(s.verifyAudit()).toMatchObject({ ok: true });
  });

  it('fails with a typed error on a file that is not a database, and on a missing file read-only', () => {
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'this is definitely not an sqlite database file, just some text padding'.repeat(20));
    const r = openStore(junk);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('STORE_FAILED');
    const r2 = openStore(join(dir, 'missing.db'), { readonly: true });
    expect(r2.ok).toBe(false);
    if (!r2.ok) expect(r2.error.code).toBe('STORE_FAILED');
  });

  it('read-only mode reads but refuses mutations with a StoreError', () => {
    const s = open();
    fullRun(s, board(1));
    s.close();
    const r = openStore(file, { readonly: true });
    if (!r.ok) throw new Error(r.error.message);
    stores.push(r.value);
    expect(r.value.countRecords()).toBe(1);
    expect(r.value.verifyAudit().ok).toBe(true);
    expectStoreError(() => r.value.appendAudit('x.y', {}), 'read-only');
  });
});

describe('run lifecycle', () => {
  it('createRun -> 6 checkpoints (certificate logged at certify) -> completeRun, all audited', () => {
    const s = open();
    const b = board(1);
    let run = startRun(s, b);
    expect(run).toMatchObject({ chipId: b.chipId, state: 'active', step: 'identify', kind: 'initial', error: null });
    expect(s.findActiveRun(b.chipId)?.runId).toBe(run.runId);
    for (const step of CHECKPOINT_STEPS) {
      run = doCheckpoint(s, run, step);
      expect(run.step).toBe(step);
      expect(s.getRun(run.runId)?.step).toBe(step);
    }
    expect(run.data.key?.curve).toBe('P-256');
    expect(run.data.profileId).toBe('demo-board'); // merged, not replaced
    const certs = s.listIssuedCertificates(b.chipId);
    expect(certs).toHaveLength(1);
    expect(certs[0]!.serialNumber).toBe(run.data.certificate?.serialNumber);
    expect(Buffer.from(certs[0]!.der).toString('base64url')).toBe(run.data.certificate?.der);

    const rec = complete(s, run, '2025-06-01T10:00:00.000Z');
    expect(rec.createdAt).toBe('2025-06-01T10:00:00.000Z');
    expect(s.getRun(run.runId)?.state).toBe('done');
    expect(s.findActiveRun(b.chipId)).toBeNull();
    expect(s.findCurrentRecord(b.chipId)).toEqual(rec);

    const types = s.listAudit().map((e) => e.type);
    expect(types).toEqual([
      'run.started',
      'step.identify',
      'step.attest',
      'step.key',
      'cert.issued',
      'step.certify',
      'step.baseline',
      'step.record',
      'record.committed',
    ]);
    const committed = s.listAudit().at(-1)!;
    expect(committed.payload).toMatchObject({
      recordId: rec.recordId,
      recordSha256: rec.recordSha256,
      certificateSerial: rec.certificateSerial,
    });
    const certEntry = s.listAudit().find((e) => e.type === 'cert.issued')!;
    expect(certEntry.payload).toMatchObject({ serialNumber: certs[0]!.serialNumber, sha256: certs[0]!.sha256 });
    const raw = new Database(file, { readonly: true });
    expect(raw.prepare('SELECT audit_seq FROM records WHERE record_id = ?').pluck().get(rec.recordId)).toBe(
      committed.seq,
    );
    raw.close();
    expect(s.verifyAudit()).toEqual({ ok: true, entries: 9, records: 1, refusals: 0, headHash: committed.hash });
  });

  it('rotation supersedes the previous record; findCurrentRecord returns the newest', () => {
    const s = open();
    const b = board(2);
    const first = fullRun(s, b);
    const second = fullRun(s, b, first.recordId);
    expect(second.kind).toBe('rotation');
    expect(second.supersedesRecordId).toBe(first.recordId);
    expect(s.findCurrentRecord(b.chipId)?.recordId).toBe(second.recordId);
    const third = fullRun(s, b, second.recordId);
    expect(s.findCurrentRecord(b.chipId)?.recordId).toBe(third.recordId);
    expect(s.countRecords({ chipId: b.chipId })).toBe(3);
    // A record cannot be superseded twice: the rotation fails and nothing of completeRun persists.
    const again = startRun(s, { ...b }, first.recordId);
    let r = again;
    for (const step of CHECKPOINT_STEPS) r = doCheckpoint(s, r, step);
    const before = s.listAudit(1, 10_000).length;
    expectStoreError(() => complete(s, r), 'supersede-failed');
    expect(s.listAudit(1, 10_000).length).toBe(before);
    expect(s.getRun(r.runId)?.state).toBe('active');
    expect(s.findCurrentRecord(b.chipId)?.recordId).toBe(third.recordId);
    expect(s.verifyAudit().ok).toBe(true);
  });

  it('failRun marks the run failed with its error, audits it, and a new run can start', () => {
    const s = open();
    const b = board(3);
    let run = startRun(s, b);
    run = doCheckpoint(s, run, 'identify');
    s.failRun(run.runId, { code: 'ATTEST_SIGNATURE_INVALID', message: 'bad signature', step: 'attest' });
    const failed = s.getRun(run.runId)!;
    expect(failed.state).toBe('failed');
    expect(failed.error).toEqual({ code: 'ATTEST_SIGNATURE_INVALID', message: 'bad signature', step: 'attest' });
    expect(s.findActiveRun(b.chipId)).toBeNull();
    const last = s.listAudit().at(-1)!;
    expect(last).toMatchObject({ type: 'run.failed', runId: run.runId, payload: { code: 'ATTEST_SIGNATURE_INVALID' } });
    expectStoreError(() => s.failRun(run.runId, { code: 'X', message: 'again', step: 'attest' }), 'run-not-active');
    expectStoreError(() => doCheckpoint(s, failed, 'attest'), 'run-not-active');
    const rec = fullRun(s, b);
    expect(s.findCurrentRecord(b.chipId)?.recordId).toBe(rec.recordId);
  });

  it('createRun with its identify checkpoint: one commit, the same run, data and audit entries as the two calls', () => {
    const s = open();
    const patch = {
      profileId: 'demo-board',
      identity: { chipId: 'x', model: 'M' },
      policy: { version: null, sha256: null, override: null },
    };
    const audit = { profileId: 'demo-board', model: 'M' };
    const two = startRun(s, board(50));
    const twoRun = s.checkpoint(two.runId, 'identify', patch, audit);
    const one = s.createRun({ ...newRun(board(51)), runId: 'run-one' }, { patch, audit });
    expect(one).toMatchObject({ step: 'identify', state: 'active', data: twoRun.data });
    expect(s.getRun('run-one')).toEqual(one);
    // One transaction: the two entries, in the order the two calls write them, with the same payloads.
    const entries = s.listAudit().filter((e) => e.runId === 'run-one');
    expect(entries.map((e) => e.type)).toEqual(['run.started', 'step.identify']);
    expect(entries[1]!.payload).toEqual(
      s.listAudit().find((e) => e.runId === two.runId && e.type === 'step.identify')!.payload,
    );
    // The run resumes and completes like any other.
    expect(finishRun(s, one).runId).toBe('run-one');
    expect(s.verifyAudit()).toMatchObject({ ok: true });
  });

  it('createRun with its identify checkpoint is refused whole (no run, no entry) past the quota', () => {
    const s = open();
    const raw = new Database(file);
    raw.prepare("INSERT INTO quotas (work_order, quantity, version, updated_at) VALUES ('WO-Q1', 0, 1, 't')").run();
    raw.close();
    const n = s.listAudit().length;
    const b = board(52, 'WO-Q1');
    expectStoreError(
      () =>
        s.createRun(
          { ...newRun(b), runId: 'run-q' },
          { patch: { profileId: 'demo-board' }, audit: { profileId: 'demo-board' } },
        ),
      'quota-exhausted',
    );
    expect(s.getRun('run-q')).toBeNull();
    expect(s.listAudit().length).toBe(n);
  });

  it('refuses a run past the work order quota with the typed reason quota-exhausted, atomically', () => {
    const s = open();
    const raw = new Database(file);
    raw.prepare("INSERT INTO quotas (work_order, quantity, version, updated_at) VALUES ('WO-Q', 1, 1, 't')").run();
    raw.close();
    startRun(s, board(40, 'WO-Q'));
    const n = s.listAudit().length;
    // The runs_quota_check trigger refuses the second unit (what two ports racing for the last unit meet).
    const e = expectStoreError(() => startRun(s, board(41, 'WO-Q')), 'quota-exhausted');
    expect(e.message).toMatch(/^createRun: FLOW_QUOTA_EXHAUSTED/);
    expect(s.listAudit().length).toBe(n);
  });

  it('refuses a second active run for the same chip (typed StoreError), atomically', () => {
    const s = open();
    const b = board(4);
    const run = startRun(s, b);
    const n = s.listAudit().length;
    const e = expectStoreError(() => startRun(s, b), 'active-run-exists');
    expect(e.error.details).toMatchObject({ chipId: b.chipId, activeRunId: run.runId });
    expect(s.listAudit().length).toBe(n);
    // The partial unique index is the backstop even without the pre-check.
    const raw = new Database(file);
    expect(() =>
      raw
        .prepare(
          `INSERT INTO runs (run_id, chip_id, serial_number, port, work_order, operator, station_id, kind, state, step,
             data_json, started_at, updated_at) VALUES ('x', ?, 's', 'p', 'w', 'o', 'st', 'initial', 'active', 'identify', '{}', 't', 't')`,
        )
        .run(b.chipId),
    ).toThrow(/UNIQUE/);
    raw.close();
  });

  it('rejects inconsistent inputs without writing anything', () => {
    const s = open();
    const b = board(5);
    let run = startRun(s, b);
    for (const step of CHECKPOINT_STEPS.slice(0, 3)) run = doCheckpoint(s, run, step);
    const n = s.listAudit().length;
    const cert = fakeCertificate(run);
    expectStoreError(
      () => s.checkpoint(run.runId, 'certify', {}, {}, { ...cert, sha256: 'ab'.repeat(32) }),
      'invalid-argument',
    );
    expectStoreError(
      () => s.checkpoint(run.runId, 'certify', {}, {}, { ...cert, chipId: 'other' }),
      'invalid-argument',
    );
    expectStoreError(() => s.checkpoint('nope', 'attest', {}, {}), 'run-not-found');
    expectStoreError(
      () => complete(s, { ...run, data: { ...run.data, certificate: { ...cert, der: '', chain: [] } } }),
      'sqlite',
    );
    expectStoreError(() => s.listRecords({ limit: -1 }), 'invalid-argument');
    expectStoreError(() => s.appendAudit('bad type with spaces', {}), 'invalid-argument');
    expectStoreError(() => s.appendAudit('x.y', { bad: Number.NaN }), 'invalid-argument');
    expectStoreError(() => s.checkpoint(run.runId, 'attest', {}, { bytes: new Uint8Array(2) }), 'invalid-argument');
    expect(s.listAudit().length).toBe(n);
    expect(s.listIssuedCertificates()).toHaveLength(0);
    expect(s.getRun(run.runId)?.state).toBe('active');
    expect(s.verifyAudit().ok).toBe(true);
  });

  it('appendAudit chains free-standing entries; hashes equal the pure WebCrypto computation', async () => {
    const s = open();
    const a = s.appendAudit('station.init', {
      stationId: 'ST-01',
      nested: { b: 2, a: [1, 'x', null] },
      skip: undefined,
    });
    const b = s.appendAudit('override.approved', { by: 'supervisor', note: 'ünïcødé ✓' }, null);
    expect(a.seq).toBe(1);
    expect(a.prevHash).toBe(GENESIS_HASH);
    expect(b.prevHash).toBe(a.hash);
    expect(a.payload).toEqual({ stationId: 'ST-01', nested: { b: 2, a: [1, 'x', null] } });
    for (const e of [a, b]) {
      expect(await auditEntryHash(e.prevHash, e)).toBe(e.hash);
      expect(auditEntryHashSync(e.prevHash, e)).toBe(e.hash);
    }
    fullRun(s, board(6));
    s.appendAudit('x.escapes', {
      q: 'quote " backslash \\ nl \n tab \t nul \u0000 emoji 😀',
      n: -1.5e-7,
      big: 2 ** 53,
    });
    // The verifier's fast path (hashing the stored canonical text) builds the same preimage as core/provisioning/audit.ts.
    const raw = new Database(file, { readonly: true });
    const rows = raw.prepare('SELECT * FROM audit_log ORDER BY seq').all() as Parameters<typeof storedPreimage>[0][];
    raw.close();
    const entries = s.listAudit();
    expect(rows).toHaveLength(entries.length);
    rows.forEach((row, i) => expect(storedPreimage(row)).toBe(auditEntryPreimage(row.prev_hash, entries[i]!)));
    expect(s.verifyAudit().ok).toBe(true);
    const all = s.listAudit();
    expect(await verifyChain(all)).toMatchObject({ ok: true, entries: all.length, head: { hash: all.at(-1)!.hash } });
    expect(s.listAudit(3, 2).map((e) => e.seq)).toEqual([3, 4]);
  });
});

describe('queries', () => {
  it('listRecords / countRecords filter and page in created_at DESC, record_id order', () => {
    const s = open();
    const recs = [];
    for (let i = 0; i < 12; i++) {
      const b = board(100 + i, i % 3 === 0 ? 'WO-A' : 'WO-B');
      recs.push(fullRun(s, b, null, `2025-01-01T00:00:${String(i % 6).padStart(2, '0')}.000Z`));
    }
    const expected = [...recs].sort((x, y) =>
      x.createdAt === y.createdAt ? (x.recordId < y.recordId ? -1 : 1) : x.createdAt < y.createdAt ? 1 : -1,
    );
    expect(s.listRecords().map((r) => r.recordId)).toEqual(expected.map((r) => r.recordId));
    expect(s.listRecords({ limit: 5, offset: 5 }).map((r) => r.recordId)).toEqual(
      expected.slice(5, 10).map((r) => r.recordId),
    );
    expect(s.countRecords()).toBe(12);
    expect(s.countRecords({ workOrder: 'WO-A' })).toBe(4);
    expect(s.listRecords({ workOrder: 'WO-A' }).every((r) => r.workOrder === 'WO-A')).toBe(true);
    expect(s.listRecords({ serialNumber: 'SN-103' }).map((r) => r.chipId)).toEqual([board(103).chipId]);
    expect(s.listRecords({ chipId: board(104).chipId, workOrder: 'WO-A' })).toEqual([]);
    expect(s.countRecords({ chipId: board(104).chipId })).toBe(1);
    expect(s.listIssuedCertificates()).toHaveLength(12);
  });
});

describe('append-only triggers', () => {
  it('refuse UPDATE/DELETE of audit_log and records, and out-of-head inserts, from another connection', () => {
    const s = open();
    const rec = fullRun(s, board(7));
    const raw = new Database(file);
    raw.pragma('foreign_keys = OFF');
    expect(() => raw.prepare("UPDATE audit_log SET payload_json = '{}' WHERE seq = 1").run()).toThrow(/append-only/);
    expect(() => raw.prepare('DELETE FROM audit_log WHERE seq = 1').run()).toThrow(/append-only/);
    expect(() => raw.prepare("UPDATE records SET record_json = '{}'").run()).toThrow(/append-only/);
    expect(() => raw.prepare('DELETE FROM records').run()).toThrow(/append-only/);
    expect(() =>
      raw.prepare("UPDATE records SET superseded_by = 'x' WHERE record_id = ?").run(rec.recordId),
    ).not.toThrow();
    expect(() => raw.prepare("UPDATE records SET superseded_by = 'y' WHERE record_id = ?").run(rec.recordId)).toThrow(
      /at most once/,
    );
    expect(() =>
      raw.prepare("INSERT INTO audit_log VALUES (100, 't', 'x', NULL, '{}', ?, ?)").run(GENESIS_HASH, GENESIS_HASH),
    ).toThrow(/appended at the head/);
    expect(() => raw.prepare('UPDATE audit_head SET seq = seq - 1').run()).toThrow(/only advances/);
    expect(() => raw.prepare('DELETE FROM audit_head').run()).toThrow(/cannot be deleted/);
    raw.close();
  });
});

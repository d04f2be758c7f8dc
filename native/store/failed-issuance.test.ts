/**
 * Failed issuance at the store (schema v5): failRun queues the failed-issuance event of every certificate of the run
 * that no record holds, in the SAME transaction as the failure and its audit entries; any other path that marks a
 * run failed is refused by a trigger; the queued payload is fixed and its signature is added once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FailedIssuancePayloadSchema } from '../../core/failed-issuance.js';
import { assertIssuanceInvariant, checkIssuanceInvariant } from '../../testkit/issuance-invariant.js';
import type { LifecycleDb } from './lifecycle.js';
import { isStoreError, openStationDb, sha256HexSync, type SqliteStore, type StationDb } from './index.js';
import { board, doCheckpoint, fullRun, startRun } from '../../testkit/store-fixtures.js';

let dir: string;
let file: string;
let store: SqliteStore;
let lc: LifecycleDb;
let sdb: StationDb;
let raw: Database.Database;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ls-fi-'));
  file = join(dir, 'station.db');
  const s = openStationDb(file);
  if (!s.ok) throw new Error(s.error.message);
  sdb = s.value;
  store = sdb.store;
  lc = sdb.lifecycle;
  raw = new Database(file); // tampering goes through a connection of the test's own
});
afterEach(() => {
  raw.close();
  sdb.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A run that got its certificate (certify checkpoint), then fails at `step`. */
function certifiedRun(i: number) {
  let run = startRun(store, board(i));
  for (const s of ['identify', 'attest', 'key', 'certify'] as const) run = doCheckpoint(store, run, s);
  return run;
}

describe('failRun with an issued certificate', () => {
  it('queues the failed-issuance event with the certificate, audited, in the same transaction', async () => {
    const run = certifiedRun(1);
    const cert = store.listIssuedCertificates(run.chipId)[0]!;
    const before = store.listAudit().length;
    store.failRun(run.runId, {
      code: 'BOARD_CERT_REFUSED',
      message: 'certificate refused by board policy',
      step: 'certify',
    });

    const q = lc.revocations({ kind: 'failed-issuance' });
    expect(q).toHaveLength(1);
    expect(q[0]).toMatchObject({
      requestId: `failed-issuance:${cert.serialNumber}`,
      certificateSerial: cert.serialNumber,
      chipId: run.chipId,
      runId: run.runId,
      state: 'queued',
      jws: null,
      reason: 'cessationOfOperation',
    });
    const payload = FailedIssuancePayloadSchema.parse(JSON.parse(q[0]!.payloadJson!));
    expect(payload).toMatchObject({
      schema: 'line-station/failed-issuance/v1',
      stationId: 'ST-01',
      runId: run.runId,
      serialNumber: run.serialNumber,
      workOrder: run.workOrder,
      certificateSha256: cert.sha256,
      failure: { code: 'BOARD_CERT_REFUSED', step: 'certify' },
    });
    expect(Buffer.from(payload.certificate, 'base64url').equals(Buffer.from(cert.der))).toBe(true);

    const added = store.listAudit(before + 1);
    expect(added.map((a) => a.type)).toEqual(['cert.failed-issuance', 'run.failed']);
    expect(added[0]!.payload).toMatchObject({
      requestId: q[0]!.requestId,
      certificateSerial: cert.serialNumber,
      sha256: cert.sha256,
      payloadSha256: sha256HexSync(q[0]!.payloadJson!),
    });
    expect(store.verifyAudit().ok).toBe(true);
    const inv = await assertIssuanceInvariant({ dbFile: file });
    expect(inv).toMatchObject({ certificates: 1, failedIssuance: 1, inRecord: 0, activeRun: 0, signed: 0 });
  });

  it('a run without a certificate, and a completed run, queue nothing', () => {
    const run = startRun(store, board(2));
    store.failRun(run.runId, { code: 'ATTEST_SIGNATURE_INVALID', message: 'x', step: 'attest' });
    fullRun(store, board(3));
    expect(lc.revocations({ kind: 'failed-issuance' })).toEqual([]);
  });

  it('all or nothing: when the event cannot be queued the run stays active and nothing is audited', () => {
    const run = certifiedRun(4);
    const cert = store.listIssuedCertificates(run.chipId)[0]!;
    // Occupy the event's request id (another path), so failRun's insert fails inside its transaction.
    raw
      .prepare(
        `INSERT INTO revocation_requests (request_id, kind, chip_id, serial_number, certificate_serial, reason, jws,
           state, created_at, updated_at) VALUES (?, 'scrapped', ?, 'SN', 'ff', 'x', 'a.b.c', 'queued', 't', 't')`,
      )
      .run(`failed-issuance:${cert.serialNumber}`, run.chipId);
    const head = store.listAudit().length;
    let threw: unknown;
    try {
      store.failRun(run.runId, { code: 'BOARD_CERT_REFUSED', message: 'x', step: 'certify' });
    } catch (e) {
      threw = e;
    }
    expect(isStoreError(threw)).toBe(true);
    expect(store.getRun(run.runId)!.state).toBe('active');
    expect(store.listAudit().length).toBe(head);
  });

  it('any other path that marks the run failed is refused while its certificate has no event (trigger)', async () => {
    const run = certifiedRun(5);
    const raw = new Database(file);
    try {
      expect(() =>
        raw.prepare("UPDATE runs SET state = 'failed', error_json = '{}' WHERE run_id = ?").run(run.runId),
      ).toThrow(/failed-issuance revocation queued/);
    } finally {
      raw.close();
    }
    expect(store.getRun(run.runId)!.state).toBe('active');
    // The documented exception: an active (resumable) run's certificate is in no record and on no CRL yet.
    expect(await assertIssuanceInvariant({ dbFile: file })).toMatchObject({ activeRun: 1 });
  });

  it('the queued payload is fixed; the signature is added once', async () => {
    const run = certifiedRun(6);
    store.failRun(run.runId, { code: 'CERT_INSTALL_MISMATCH', message: 'read-back', step: 'certify' });
    const q = lc.revocations({ kind: 'failed-issuance' })[0]!;
    expect(() =>
      raw.prepare("UPDATE revocation_requests SET payload_json = '{}' WHERE request_id = ?").run(q.requestId),
    ).toThrow(/names its certificate once/);
    const jws = `eyJhbGciOiJFUzI1NiJ9.${Buffer.from(q.payloadJson!).toString('base64url')}.c2ln`;
    expect(lc.setRevocationJws(q.requestId, jws)).toBe(true);
    expect(lc.setRevocationJws(q.requestId, jws)).toBe(false);
    expect(() =>
      raw.prepare("UPDATE revocation_requests SET jws = 'x.y.z' WHERE request_id = ?").run(q.requestId),
    ).toThrow(/never replaced/);
    expect(await assertIssuanceInvariant({ dbFile: file })).toMatchObject({ failedIssuance: 1, signed: 1 });
  });

  it('the checker reports a certificate that escaped (run failed behind the station’s back, trigger dropped)', async () => {
    const run = certifiedRun(7);
    const raw = new Database(file);
    try {
      raw.exec('DROP TRIGGER runs_failed_issuance_queued');
      raw.prepare("UPDATE runs SET state = 'failed', error_json = '{}' WHERE run_id = ?").run(run.runId);
    } finally {
      raw.close();
    }
    const r = await checkIssuanceInvariant({ dbFile: file });
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatch(/in no record, has no failed-issuance event/);
  });
});

/**
 * Refusals at the store (schema v10, docs/audit.md "Refusals"): a refusal is one row plus its `board.refused` audit
 * entry in one transaction; repeats on a port are coalesced (same refusal within the window; at most the port budget
 * of new rows per window), so a port that refuses boards in a loop cannot flood the database; verifyAudit
 * cross-checks rows and entries (an edited, deleted or forged row is found); the log and the yield count them.
 * Also the failed rework: failRun of a rotation run that erased its board (or started to: `zeroizing`) queues the old
 * credential's scrap event once per run and per certificate, in its transaction, audited `cert.rework-revocation`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScrapPayloadSchema } from '../../core/hq/scrap.js';
import type { Clock } from '../../core/ports.js';
import type { NewRefusal } from '../../core/provisioning/store.js';
import { board, finishRun, fullRun, startRun } from '../../testkit/store-fixtures.js';
import { openStationDb, sha256HexSync, type SqliteStore, type StationDb } from './index.js';
import { REFUSAL_COALESCE_MS, REFUSAL_PORT_BUDGET } from './refusals.js';

let dir: string;
let file: string;
let sdb: StationDb;
let store: SqliteStore;
let now = Date.parse('2026-12-06T08:00:00.000Z');
const clock: Clock = { now: () => new Date(now), monotonicMs: () => now };

beforeEach(() => {
  now = Date.parse('2026-12-06T08:00:00.000Z');
  dir = mkdtempSync(join(tmpdir(), 'ls-refusals-'));
  file = join(dir, 'station.db');
  const s = openStationDb(file, { clock });
  if (!s.ok) throw new Error(s.error.message);
  sdb = s.value;
  store = sdb.store;
});
afterEach(() => {
  sdb.close();
  rmSync(dir, { recursive: true, force: true });
});

const refusal = (i: number, o: Partial<NewRefusal> = {}): NewRefusal => ({
  chipId: `c0ffee${i.toString(16).padStart(10, '0')}`,
  serialNumber: `SN-${i}`,
  model: 'LS-SIM-SE',
  port: '/dev/ttyACM0',
  workOrder: 'WO-1',
  operator: 'op-1',
  stationId: 'ST-01',
  code: 'FLOW_BLOCKED',
  message: `board SN-${i} is blocked`,
  scanned: null,
  ...o,
});
const refusedEntries = () => store.listAudit(1, 10_000).filter((e) => e.type === 'board.refused');
const rows = () => new Database(file, { readonly: true }).prepare('SELECT * FROM refusals ORDER BY first_at').all();

describe('refusals', () => {
  it('a refusal is a row and its board.refused audit entry; verifyAudit cross-checks them', () => {
    const r = store.recordRefusal(refusal(1, { scanned: 'SN-9' }));
    expect(r).toMatchObject({ coalesced: false, count: 1 });
    const [e] = refusedEntries();
    expect(e).toMatchObject({
      runId: null,
      payload: { refusalId: r.refusalId, code: 'FLOW_BLOCKED', chipId: refusal(1).chipId, scanned: 'SN-9' },
    });
    expect(store.verifyAudit()).toMatchObject({ ok: true, refusals: 1 });
    // No identity: no run, no record, no certificate.
    expect(store.findActiveRun(refusal(1).chipId)).toBeNull();
    expect(store.countRecords()).toBe(0);
    expect(store.listIssuedCertificates()).toHaveLength(0);
  });

  it('repeats are coalesced; a port gets at most the budget of new rows per window, however many chips it shows', () => {
    const first = store.recordRefusal(refusal(1));
    for (let i = 0; i < 50; i++) {
      now += 1000;
      expect(store.recordRefusal(refusal(1))).toMatchObject({ refusalId: first.refusalId, coalesced: true });
    }
    expect(refusedEntries()).toHaveLength(1);
    expect(rows()).toMatchObject([{ count: 51 }]);
    // A rogue board re-enumerating with a new chip id each time: new rows up to the budget, then coalesced.
    for (let i = 2; i < 200; i++) store.recordRefusal(refusal(i));
    expect(refusedEntries()).toHaveLength(REFUSAL_PORT_BUDGET);
    expect(rows()).toHaveLength(REFUSAL_PORT_BUDGET);
    const total = (rows() as { count: number }[]).reduce((n, x) => n + x.count, 0);
    expect(total).toBe(51 + 198); // every attempt counted, in 20 rows
    // Another port has its own budget; after the window the port records again.
    expect(store.recordRefusal(refusal(500, { port: '/dev/ttyACM1' })).coalesced).toBe(false);
    now += REFUSAL_COALESCE_MS + 1;
    expect(store.recordRefusal(refusal(1)).coalesced).toBe(false);
    expect(store.verifyAudit()).toMatchObject({ ok: true, refusals: REFUSAL_PORT_BUDGET + 2 });
  });

  it('tampering: an edited, deleted or forged refusal is found; the triggers refuse casual edits', () => {
    const a = store.recordRefusal(refusal(1));
    store.recordRefusal(refusal(2, { port: '/dev/ttyACM1' }));
    const raw = new Database(file);
    try {
      expect(() => raw.prepare("UPDATE refusals SET code = 'X' WHERE refusal_id = ?").run(a.refusalId)).toThrow(
        /only counts repeats/,
      );
      expect(() => raw.prepare('DELETE FROM refusals').run()).toThrow(/kept/);
      raw.exec('DROP TRIGGER refusals_coalesce_only; DROP TRIGGER refusals_no_delete');
      raw.prepare("UPDATE refusals SET code = 'FLOW_OK' WHERE refusal_id = ?").run(a.refusalId);
      expect(store.verifyAudit()).toMatchObject({ ok: false, reason: 'refusal-mismatch', at: a.refusalId });
      raw.prepare("UPDATE refusals SET code = 'FLOW_BLOCKED' WHERE refusal_id = ?").run(a.refusalId);
      expect(store.verifyAudit()).toMatchObject({ ok: true });
      raw.prepare('DELETE FROM refusals WHERE refusal_id = ?').run(a.refusalId);
      expect(store.verifyAudit()).toMatchObject({ ok: false, reason: 'refusal-missing', at: a.refusalId });
    } finally {
      raw.close();
    }
  });

  it('a refusal row pointing at another entry is refusal-unaudited', () => {
    store.appendAudit('station.note', { n: 1 });
    store.recordRefusal(refusal(1));
    const raw = new Database(file);
    try {
      raw.exec('DROP TRIGGER refusals_coalesce_only');
      raw.prepare('UPDATE refusals SET audit_seq = 1').run();
      expect(store.verifyAudit()).toMatchObject({ ok: false, reason: 'refusal-unaudited' });
    } finally {
      raw.close();
    }
  });

  it('the log pages runs and refusals in one order; outcome filters; the yield counts refused boards', () => {
    const b1 = board(1);
    // Started on the test's clock (not the real one): the log orders by time, and the refusals are on this clock.
    finishRun(store, startRun(store, b1, null, clock.now())); // provisioned first time
    now += 1000;
    store.recordRefusal(refusal(2, { code: 'FLOW_PROFILE_UNKNOWN' }));
    now += 1000;
    store.recordRefusal(refusal(3, { code: 'FLOW_SCAN_MISMATCH', port: '/dev/ttyACM1' }));
    const q = sdb.queries;
    const all = q.queryLog({}, { limit: 2 });
    if (!all.ok) throw new Error(all.error.message);
    expect(all.value.total).toBe(3);
    expect(all.value.items.map((r) => r.outcome)).toEqual(['refused', 'refused']);
    expect(all.value.items[0]).toMatchObject({ errorCode: 'FLOW_SCAN_MISMATCH', step: 'identify', attempts: 1 });
    const next = q.queryLog({}, { limit: 2, cursor: all.value.nextCursor! });
    if (!next.ok) throw new Error(next.error.message);
    expect(next.value.items.map((r) => r.outcome)).toEqual(['provisioned']);
    expect(next.value.nextCursor).toBeNull();
    const refusedOnly = q.queryLog({ outcome: 'refused' }, { limit: 10 });
    expect(refusedOnly.ok && refusedOnly.value.items.length).toBe(2);
    const provisioned = q.queryLog({ outcome: 'provisioned' }, { limit: 10 });
    expect(provisioned.ok && provisioned.value.total).toBe(1);
    const bySerial = q.queryLog({ text: 'SN-3' }, { limit: 10 });
    expect(bySerial.ok && bySerial.value.items.map((r) => r.serialNumber)).toEqual(['SN-3']);
    expect(q.logEntry(all.value.items[0]!.runId)).toMatchObject({ outcome: 'refused' });

    const y = q.yieldFigures({ workOrder: 'WO-1' });
    expect(y).toMatchObject({ boards: 3, passedFirstTime: 1, refused: 2, provisioned: 1 });
    expect(y.failuresByCause).toEqual([
      { code: 'FLOW_PROFILE_UNKNOWN', count: 1 },
      { code: 'FLOW_SCAN_MISMATCH', count: 1 },
    ]);
    // A board refused first and provisioned later did not pass first time.
    now += 1000;
    finishRun(store, startRun(store, board(2), null, new Date(now)));
    expect(q.yieldFigures({ workOrder: 'WO-1' })).toMatchObject({ boards: 3, passedFirstTime: 1, provisioned: 2 });
  });

  it("the log carries an error's params: a refusal's from its audit entry, a failed run's from its error", () => {
    const r = store.recordRefusal(
      refusal(1, { code: 'BOARD_CERT_MISSING', params: { recordId: 'rec-7', chipId: 'c0ffee' } }),
    );
    expect(refusedEntries()[0]?.payload['params']).toEqual({ recordId: 'rec-7', chipId: 'c0ffee' });
    expect(store.verifyAudit().ok).toBe(true);
    now += 1000;
    store.recordRefusal(refusal(2, { code: 'FLOW_PROFILE_UNKNOWN', port: '/dev/ttyACM1' })); // no params
    now += 1000;
    const run = startRun(store, board(3), null, new Date(now));
    store.failRun(run.runId, { code: 'LINK_OPEN_FAILED', message: 'x', step: 'detect', params: { path: '/dev/x' } });
    const q = sdb.queries;
    const page = q.queryLog({}, { limit: 10 });
    if (!page.ok) throw new Error(page.error.message);
    expect(page.value.items.map((i) => [i.errorCode, i.errorParams])).toEqual([
      ['LINK_OPEN_FAILED', { path: '/dev/x' }],
      ['FLOW_PROFILE_UNKNOWN', null],
      ['BOARD_CERT_MISSING', { recordId: 'rec-7', chipId: 'c0ffee' }],
    ]);
    expect(q.logEntry(r.refusalId)?.errorParams).toEqual({ recordId: 'rec-7', chipId: 'c0ffee' });
    expect(q.logEntry(run.runId)?.errorParams).toEqual({ path: '/dev/x' });
  });
});

describe('a failed rework queues the revocation of the credential the board lost', () => {
  it('failRun of a rotation run that zeroized its board queues one scrap event for the old certificate, audited', () => {
    const b = board(7);
    const first = fullRun(store, b);
    const run = startRun(store, b, first.recordId);
    store.checkpoint(run.runId, 'identify', { zeroized: true, supervisor: 'sup-1' }, { zeroized: true });
    store.failRun(run.runId, { code: 'BOARD_CERT_REFUSED', message: 'refused by board policy', step: 'certify' });
    const qs = sdb.lifecycle.revocations({ kind: 'scrapped' });
    expect(qs).toHaveLength(1);
    const q = qs[0]!;
    expect(q).toMatchObject({
      requestId: `rework-failed:${run.runId}`,
      certificateSerial: first.certificateSerial,
      reason: 'rework-failed',
      state: 'queued',
      jws: null,
      runId: run.runId,
    });
    const payload = ScrapPayloadSchema.parse(JSON.parse(q.payloadJson!));
    expect(payload).toMatchObject({
      recordId: first.recordId,
      chipId: b.chipId,
      supervisor: 'sup-1',
      operator: 'op-7',
      reason: 'cessationOfOperation',
    });
    expect(payload.note).toContain('BOARD_CERT_REFUSED at certify');
    const audit = store.listAudit(1, 1000).filter((e) => e.runId === run.runId);
    const types = audit.map((e) => e.type);
    expect(types.slice(-2)).toEqual(['cert.rework-revocation', 'run.failed']);
    expect(audit.at(-2)!.payload).toMatchObject({ payloadSha256: sha256HexSync(q.payloadJson!) });
    // Signed once; the old record stays current (the rework made no record).
    expect(sdb.lifecycle.setRevocationJws(q.requestId, 'a.b.c')).toBe(true);
    expect(sdb.lifecycle.setRevocationJws(q.requestId, 'd.e.f')).toBe(false);
    expect(store.findCurrentRecord(b.chipId)?.recordId).toBe(first.recordId);
    // A rework that did not erase the board (or an initial run) queues nothing.
    const again = startRun(store, b, first.recordId);
    store.failRun(again.runId, { code: 'BOARD_LOCKED', message: 'x', step: 'key' });
    expect(sdb.lifecycle.revocations({ kind: 'scrapped' })).toHaveLength(1);
    expect(store.verifyAudit()).toMatchObject({ ok: true });
  });

  it('a rework that started its erase (zeroizing) and failed revokes once per certificate; a board seen keeping it does not', () => {
    const b = board(8);
    const first = fullRun(store, b);
    // Crashed between the board's zeroize and its checkpoint: only the durable intent is in the run.
    const run = startRun(store, b, first.recordId);
    store.checkpoint(run.runId, 'identify', { zeroizing: true }, { zeroizing: true });
    const failed = store.failRun(run.runId, { code: 'BOARD_CERT_REFUSED', message: 'refused', step: 'certify' });
    expect(failed.reworkRevocation).toEqual({
      requestId: `rework-failed:${run.runId}`,
      certificateSerial: first.certificateSerial,
    });
    const rework = () => sdb.lifecycle.revocations({ kind: 'scrapped' }).filter((q) => q.chipId === b.chipId);
    expect(rework()).toHaveLength(1);
    // A second rework of the same record that fails (its board already erased, found so on resume) queues no second
    // revocation of the same certificate.
    const second = startRun(store, b, first.recordId);
    store.checkpoint(second.runId, 'identify', { zeroized: true }, { zeroized: true, found: 'erased' });
    expect(store.failRun(second.runId, { code: 'POLICY_VIOLATION', message: 'x', step: 'baseline' })).toMatchObject({
      reworkRevocation: null,
    });
    expect(rework()).toHaveLength(1);
    const entries = store.listAudit(1, 10_000).filter((e) => e.type === 'cert.rework-revocation');
    expect(entries.map((e) => e.runId)).toEqual([run.runId]);

    // A board that refused its zeroize and was read back holding the old certificate (zeroizing: false) keeps it.
    const c = board(9);
    const kept = fullRun(store, c);
    const r3 = startRun(store, c, kept.recordId);
    store.checkpoint(r3.runId, 'identify', { zeroizing: true }, { zeroizing: true });
    store.checkpoint(r3.runId, 'identify', { zeroizing: false }, { zeroizing: false, kept: true });
    expect(store.failRun(r3.runId, { code: 'BOARD_ERROR', message: 'no', step: 'key' }).reworkRevocation).toBeNull();
    expect(sdb.lifecycle.revocations({ kind: 'scrapped' }).filter((q) => q.chipId === c.chipId)).toHaveLength(0);
    expect(store.verifyAudit()).toMatchObject({ ok: true });
  });
});

/**
 * Tamper detection: an attacker edits the database file with their OWN connection (raw SQL), dropping the
 * append-only triggers first; verifyAudit must report the first failure with the right reason.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditVerification, StoredRecord } from '../../core/provisioning/store.js';
import { auditEntryHashSync, openStore, type SqliteStore } from './index.js';
import { board, fullRun } from '../../testkit/store-fixtures.js';

let dir: string;
let file: string;
let recs: StoredRecord[];
let entries: number;

function open(): SqliteStore {
  const r = openStore(file);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

/** Attacker: a separate connection, FKs off, triggers dropped, then raw SQL. */
function attack(fn: (db: Database.Database) => void): void {
  const db = new Database(file);
  db.pragma('foreign_keys = OFF');
  const triggers = db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").pluck().all() as string[];
  for (const t of triggers) db.exec(`DROP TRIGGER "${t}"`);
  fn(db);
  db.close();
}

function verify(): AuditVerification {
  const s = open();
  try {
    return s.verifyAudit();
  } finally {
    s.close();
  }
}

function expectFailure(v: AuditVerification, reason: string, at: string | number): void {
  expect(v.ok).toBe(false);
  if (v.ok) return;
  expect({ reason: v.reason, at: v.at }).toEqual({ reason, at: String(at) });
  expect(v.message.length).toBeGreaterThan(10);
}

interface Row {
  seq: number;
  ts: string;
  type: string;
  run_id: string | null;
  payload_json: string;
  prev_hash: string;
  hash: string;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ls-tamper-'));
  file = join(dir, 'station.db');
  const s = open();
  s.appendAudit('station.init', { stationId: 'ST-01' }); // seq 1
  recs = [fullRun(s, board(1)), fullRun(s, board(2))]; // seq 2..10, 11..19
  recs.push(fullRun(s, board(1), recs[0]!.recordId)); // rotation: 20..28
  s.appendAudit('station.note', { note: 'shift end' }); // 29
  const v = s.verifyAudit();
  expect(v).toMatchObject({ ok: true, entries: 29, records: 3 });
  entries = 29;
  s.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('verifyAudit detects tampering', () => {
  it('(a) a modified audit payload -> hash-mismatch at that entry', () => {
    attack((db) => db.prepare('UPDATE audit_log SET payload_json = ? WHERE seq = 4').run('{"n":99,"step":"attest"}'));
    expectFailure(verify(), 'hash-mismatch', 4);
  });

  it('(a2) a modified payload whose own hash was recomputed -> broken-link at the next entry', () => {
    attack((db) => {
      const r = db.prepare('SELECT * FROM audit_log WHERE seq = 4').get() as Row;
      const payload = { n: 99, step: 'attest' };
      const hash = auditEntryHashSync(r.prev_hash, { seq: 4, ts: r.ts, type: r.type, runId: r.run_id, payload });
      db.prepare('UPDATE audit_log SET payload_json = ?, hash = ? WHERE seq = 4').run(JSON.stringify(payload), hash);
    });
    expectFailure(verify(), 'broken-link', 5);
  });

  it('(a3) a modified timestamp or type -> hash-mismatch', () => {
    attack((db) => db.prepare("UPDATE audit_log SET ts = '2020-01-01T00:00:00.000Z' WHERE seq = 7").run());
    expectFailure(verify(), 'hash-mismatch', 7);
  });

  it('(a4) a payload re-serialized with the same meaning (whitespace, key order) -> hash-mismatch', () => {
    attack((db) => db.prepare('UPDATE audit_log SET payload_json = ? WHERE seq = 1').run('{ "stationId": "ST-01" }'));
    expectFailure(verify(), 'hash-mismatch', 1);
  });

  it('(b) an audit row deleted in the middle -> sequence-gap at the missing seq', () => {
    attack((db) => db.prepare('DELETE FROM audit_log WHERE seq = 12').run());
    expectFailure(verify(), 'sequence-gap', 12);
  });

  it('(c) two rows reordered (seq swapped) -> broken-link at the first', () => {
    attack((db) => {
      db.prepare('UPDATE audit_log SET seq = -1 WHERE seq = 5').run();
      db.prepare('UPDATE audit_log SET seq = 5 WHERE seq = 6').run();
      db.prepare('UPDATE audit_log SET seq = 6 WHERE seq = -1').run();
    });
    expectFailure(verify(), 'broken-link', 5);
  });

  it("(d) a record's record_json modified (even with its record_sha256 updated) -> record-mismatch", () => {
    const target = recs[1]!;
    const forged = target.recordJson.replace(target.serialNumber, 'SN-FORGED');
    expect(forged).not.toBe(target.recordJson);
    attack((db) =>
      db
        .prepare('UPDATE records SET record_json = ?, record_sha256 = ? WHERE record_id = ?')
        .run(forged, '00'.repeat(32), target.recordId),
    );
    expectFailure(verify(), 'record-mismatch', target.recordId);
  });

  it("(d2) a record's indexed columns changed (chip id) -> record-mismatch", () => {
    const target = recs[1]!;
    attack((db) => db.prepare("UPDATE records SET chip_id = 'deadbeef' WHERE record_id = ?").run(target.recordId));
    expectFailure(verify(), 'record-mismatch', target.recordId);
  });

  it('(e) a record row deleted -> record-missing', () => {
    const target = recs[2]!;
    attack((db) => db.prepare('DELETE FROM records WHERE record_id = ?').run(target.recordId));
    expectFailure(verify(), 'record-missing', target.recordId);
  });

  it('(f) tail audit rows deleted -> truncated (the head row still records the old head)', () => {
    attack((db) => db.prepare('DELETE FROM audit_log WHERE seq > ?').run(entries - 3));
    expectFailure(verify(), 'truncated', entries - 2);
  });

  it('(f2) tail deleted AND head row forged: a dropped record.committed leaves its record unaudited', () => {
    attack((db) => {
      db.prepare('DELETE FROM audit_log WHERE seq > 22').run(); // drops the rotation's record.committed (28)
      const h = db.prepare('SELECT hash FROM audit_log WHERE seq = 22').pluck().get() as string;
      db.prepare('UPDATE audit_head SET seq = 22, hash = ?').run(h);
    });
    expectFailure(verify(), 'record-unaudited', recs[2]!.recordId);
  });

  it('(f3) documented limit: tail of non-record entries deleted AND head row forged is not detected here', () => {
    attack((db) => {
      db.prepare('DELETE FROM audit_log WHERE seq = ?').run(entries);
      const h = db
        .prepare('SELECT hash FROM audit_log WHERE seq = ?')
        .pluck()
        .get(entries - 1) as string;
      db.prepare('UPDATE audit_head SET seq = ?, hash = ?').run(entries - 1, h);
    });
    // Only the registry (which has synced the head) can catch this; see docs/audit.md.
    expect(verify()).toMatchObject({ ok: true, entries: entries - 1 });
  });

  it('(g) a forged entry appended with a bogus hash -> hash-mismatch', () => {
    attack((db) => {
      const head = db.prepare('SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1').get() as Row;
      db.prepare('INSERT INTO audit_log VALUES (?, ?, ?, NULL, ?, ?, ?)').run(
        head.seq + 1,
        new Date().toISOString(),
        'override.approved',
        '{"by":"mallory"}',
        head.hash,
        'ab'.repeat(32),
      );
    });
    expectFailure(verify(), 'hash-mismatch', entries + 1);
  });

  it('(g2) a forged entry appended with a correct hash -> caught by the head row (broken-link)', () => {
    attack((db) => {
      const head = db.prepare('SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1').get() as Row;
      const e = {
        seq: head.seq + 1,
        ts: new Date().toISOString(),
        type: 'override.approved',
        runId: null,
        payload: { by: 'mallory' },
      };
      db.prepare('INSERT INTO audit_log VALUES (?, ?, ?, NULL, ?, ?, ?)').run(
        e.seq,
        e.ts,
        e.type,
        JSON.stringify(e.payload),
        head.hash,
        auditEntryHashSync(head.hash, e),
      );
    });
    expectFailure(verify(), 'broken-link', entries + 1);
  });

  it('(g3) a forged entry inserted in the middle (later rows renumbered) -> broken-link after it', () => {
    attack((db) => {
      db.prepare('UPDATE audit_log SET seq = -seq WHERE seq >= 5').run();
      db.prepare('UPDATE audit_log SET seq = -seq + 1 WHERE seq < 0').run();
      const prev = db.prepare('SELECT * FROM audit_log WHERE seq = 4').get() as Row;
      const e = { seq: 5, ts: prev.ts, type: 'override.approved', runId: null, payload: { by: 'mallory' } };
      db.prepare('INSERT INTO audit_log VALUES (?, ?, ?, NULL, ?, ?, ?)').run(
        5,
        e.ts,
        e.type,
        JSON.stringify(e.payload),
        prev.hash,
        auditEntryHashSync(prev.hash, e),
      );
    });
    expectFailure(verify(), 'broken-link', 6);
  });

  it('a forged record row without an audit entry -> record-unaudited', () => {
    attack((db) =>
      db.exec(`INSERT INTO records (record_id, run_id, chip_id, serial_number, work_order, operator, kind, outcome,
        certificate_serial, created_at, record_json, jws, record_sha256, audit_seq)
        SELECT 'forged', 'forged-run', chip_id, serial_number, work_order, operator, 'initial', outcome,
        certificate_serial, created_at, record_json, jws, record_sha256, 9999 FROM records LIMIT 1`),
    );
    expectFailure(verify(), 'record-unaudited', 'forged');
  });

  it('a casual edit with the triggers in place is refused outright', () => {
    const db = new Database(file);
    expect(() => db.prepare("UPDATE audit_log SET payload_json = '{}' WHERE seq = 2").run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM records').run()).toThrow(/append-only/);
    db.close();
    expect(verify().ok).toBe(true);
  });

  it('an empty audit log verifies with the genesis head', () => {
    const f2 = join(dir, 'empty.db');
    const r = openStore(f2);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.verifyAudit()).toEqual({ ok: true, entries: 0, records: 0, refusals: 0, headHash: '0'.repeat(64) });
    r.value.close();
  });
});

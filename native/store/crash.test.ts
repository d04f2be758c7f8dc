/**
 * Crash consistency at the store level: a child process loops doing full runs and is SIGKILLed at random
 * instants; after every kill the database must be intact, the audit chain valid, and the run/record state
 * consistent (every commit is all-or-nothing). Finally every active run is resumed to completion.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { STEPS } from '../../core/model.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';
import { openStore, type SqliteStore } from './index.js';
import { finishRun } from '../../testkit/store-fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'ls-crash-'));
const file = join(dir, 'station.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Spawn the worker, wait for "ready", let it work `ms` milliseconds, SIGKILL it. */
function runAndKill(ms: number): Promise<{ stderr: string; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    // `node --import tsx` (what `npx tsx` runs) so that the killed process IS the worker: the tsx CLI wrapper
    // would forward signals to a grandchild, and SIGKILL of the wrapper leaves the worker running briefly.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, '../../testkit/workers/crash-worker.ts'), file],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      if (!timer && d.toString().includes('ready')) timer = setTimeout(() => child.kill('SIGKILL'), ms);
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      resolve({ stderr, signal });
    });
  });
}

function checkConsistent(store: SqliteStore): { active: number; records: number; entries: number } {
  expect(store.integrityCheck()).toEqual(['ok']);
  const v = store.verifyAudit();
  if (!v.ok) throw new Error(`audit verification failed: ${v.reason} at ${v.at}: ${v.message}`);
  const raw = new Database(file, { readonly: true });
  try {
    const n = (sql: string): number => raw.prepare(sql).pluck().get() as number;
    expect(
      n(
        "SELECT COUNT(*) FROM runs r WHERE state = 'done' AND NOT EXISTS (SELECT 1 FROM records WHERE run_id = r.run_id)",
      ),
    ).toBe(0);
    expect(
      n(
        "SELECT COUNT(*) FROM records x WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = x.run_id AND state = 'done')",
      ),
    ).toBe(0);
    expect(n("SELECT COUNT(*) FROM runs WHERE state = 'failed' AND error_json IS NULL")).toBe(0);
    // Every run's start is audited, every record's certificate was logged.
    expect(
      n(
        "SELECT COUNT(*) FROM runs r WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE run_id = r.run_id AND type = 'run.started')",
      ),
    ).toBe(0);
    expect(
      n(
        'SELECT COUNT(*) FROM records x WHERE NOT EXISTS (SELECT 1 FROM issued_certificates WHERE serial = x.certificate_serial)',
      ),
    ).toBe(0);
    // A chip has at most one current record.
    expect(
      n(
        'SELECT COUNT(*) FROM (SELECT chip_id FROM records WHERE superseded_by IS NULL GROUP BY chip_id HAVING COUNT(*) > 1)',
      ),
    ).toBe(0);
    const active = raw.prepare("SELECT run_id FROM runs WHERE state = 'active'").pluck().all() as string[];
    for (const id of active) {
      const run = store.getRun(id);
      expect(run).not.toBeNull();
      if (!run) continue;
      expect(STEPS).toContain(run.step);
      const certs = raw.prepare('SELECT serial FROM issued_certificates WHERE run_id = ?').pluck().all(id) as string[];
      const certified = ['certify', 'baseline', 'record'].includes(run.step);
      // The certificate log and the certify checkpoint are one commit.
      expect(certs).toEqual(certified ? [run.data.certificate?.serialNumber] : []);
      if (run.data.profileId !== undefined || run.step !== 'identify') expect(run.data.identity).toBeDefined();
      if (certified) expect(run.data.key?.publicKeySpki).toBeDefined();
    }
    return { active: active.length, records: v.records, entries: v.entries };
  } finally {
    raw.close();
  }
}

describe('crash consistency (SIGKILL during full runs)', () => {
  it('survives 20 random kills with an intact, verifiable, resumable database', async () => {
    let lastEntries = 0;
    let grew = 0;
    let sawActive = 0;
    let failedIssuances = 0;
    for (let i = 0; i < 20; i++) {
      const ms = 20 + Math.floor(Math.random() * 181);
      const { stderr, signal } = await runAndKill(ms);
      expect(stderr).toBe('');
      expect(signal).toBe('SIGKILL');
      const r = openStore(file);
      if (!r.ok) throw new Error(r.error.message);
      try {
        const c = checkConsistent(r.value);
        // Every issued certificate: in a record, with its failed-issuance event queued, or of an active run.
        const inv = await assertIssuanceInvariant({ dbFile: file });
        failedIssuances = inv.failedIssuance;
        if (c.entries > lastEntries) grew++;
        if (c.active > 0) sawActive++;
        lastEntries = c.entries;
      } finally {
        r.value.close();
      }
    }
    expect(grew).toBeGreaterThanOrEqual(15); // the worker did real work between kills
    console.log(
      `crash test: ${lastEntries} audit entries after 20 kills; ${sawActive} kills left an active run; ${failedIssuances} failed issuances queued`,
    );
    expect(failedIssuances).toBeGreaterThan(0);

    // Resume every interrupted run to completion.
    const r = openStore(file);
    if (!r.ok) throw new Error(r.error.message);
    const store = r.value;
    const raw = new Database(file, { readonly: true });
    const active = raw.prepare("SELECT run_id FROM runs WHERE state = 'active'").pluck().all() as string[];
    raw.close();
    for (const id of active) {
      const rec = finishRun(store, store.getRun(id)!);
      expect(store.findCurrentRecord(rec.chipId)?.recordId).toBe(rec.recordId);
    }
    expect(checkConsistent(store).active).toBe(0);
    store.close();
    expect(await assertIssuanceInvariant({ dbFile: file })).toMatchObject({ activeRun: 0 });
  }, 180_000);
});

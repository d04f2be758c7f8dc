/**
 * Power-loss test: the station process is killed with SIGKILL at random instants while it
 * provisions boards; after every kill the database must be consistent and the board resumable, and
 * a clean re-run must finish the board with exactly one current record that matches what the board holds.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../native/store/index.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'station.mjs');
const BOARDS = 6;
/** Kill attempts per board; a board that finishes before its kill moves the test on to the next board. */
const KILLS_PER_BOARD = 6;
/** The operator's PIN reaches `station provision` through the environment, never argv. */
const CRASH_PIN = '602813';

let w: World;
beforeAll(async () => {
  w = await createWorld({
    boards: Array.from({ length: BOARDS }, (_, i) => ({
      model: i % 2 === 0 ? ('LS-SIM-SE' as const) : ('LS-SIM-BASIC' as const),
      latency: { keygen: 150, flash: 100, other: 15 },
    })),
  });
  await addOperators(w.dataDir, [{ id: 'crash-test', role: 'operator', pin: CRASH_PIN }]);
  await w.engine.close(); // the station runs in child processes from here on
});
afterAll(async () => {
  await w?.teardown();
});

function runStation(
  args: string[],
  killAfterMs?: number,
): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LINE_STATION_PIN: CRASH_PIN },
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let timer: NodeJS.Timeout | undefined;
    if (killAfterMs !== undefined) {
      // Kill relative to the first progress line, so the kill lands inside provisioning, not in start-up.
      p.stdout.once('data', () => {
        timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
      });
    }
    p.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      res({ code, signal, out });
    });
  });
}

/** Checks the invariants after a kill; returns where the board's run was interrupted. */
async function checkConsistency(chipId?: string): Promise<string> {
  // Every issued certificate is in a record, revoked (failed-issuance event queued) or of the active run that
  // resumes; every record is in the audit chain (testkit/issuance-invariant.ts; no registry here).
  await assertIssuanceInvariant({ dbFile: join(w.dataDir, 'station.db') });
  const s = openStore(join(w.dataDir, 'station.db'));
  if (!s.ok) throw new Error(s.error.message);
  try {
    const active = chipId ? s.value.findActiveRun(chipId) : null;
    const where = active
      ? `active:${active.step}`
      : chipId && s.value.findCurrentRecord(chipId)
        ? 'done'
        : 'not-started';
    expect(s.value.integrityCheck()).toEqual(['ok']);
    const v = s.value.verifyAudit();
    expect(v).toMatchObject({ ok: true });
    for (const rec of s.value.listRecords({ limit: 1000 })) {
      const run = s.value.getRun(rec.runId);
      expect(run?.state).toBe('done');
      expect(JSON.parse(rec.recordJson)).toMatchObject({ outcome: 'provisioned', board: { chipId: rec.chipId } });
    }
    // An interrupted run is resumable: its checkpoints are self-consistent.
    if (active?.data.certificate) expect(active.data.key).toBeDefined();
    if (active?.data.installed) expect(active.data.installed.certificateSha256).toBe(active.data.certificate?.sha256);
    return where;
  } finally {
    s.value.close();
  }
}

describe('power loss (SIGKILL) at random instants', () => {
  // Each run is a fresh `station provision` process that also signs its operator in (one scrypt): ~40 runs.
  it('leaves the database consistent and every board resumable', { timeout: 420_000 }, async () => {
    let kills = 0;
    const interruptedAt = new Map<string, number>();
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let b = 0; b < BOARDS; b++) {
      const args = [
        'provision',
        '--data-dir',
        w.dataDir,
        '--port',
        w.sim.ports[b]!,
        '--work-order',
        'WO-DEMO-1',
        '--operator',
        'crash-test',
      ];
      for (let k = 0; k < KILLS_PER_BOARD; k++) {
        const r = await runStation(args, Math.floor(rnd() * 450));
        if (r.signal === 'SIGKILL') kills++;
        const where = await checkConsistency(w.sim.boards[b]!.chipId);
        if (r.signal === 'SIGKILL') interruptedAt.set(where, (interruptedAt.get(where) ?? 0) + 1);
        if (r.code === 0) break; // finished before the kill
      }
      const fin = await runStation(args);
      expect(fin.out, fin.out).toMatch(/PASS/);
      expect(fin.code).toBe(0);
      await checkConsistency();
      // Exactly one current record for the board, matching the certificate the board holds.
      const s = openStore(join(w.dataDir, 'station.db'));
      if (!s.ok) throw new Error(s.error.message);
      const cur = s.value.findCurrentRecord(w.sim.boards[b]!.chipId);
      expect(cur).not.toBeNull();
      expect(s.value.listRecords({ chipId: w.sim.boards[b]!.chipId })).toHaveLength(1);
      const rec = JSON.parse(cur!.recordJson) as { certificate: { sha256: string } };
      expect(w.sim.state(b).certSha256).toBe(rec.certificate.sha256);
      expect(w.sim.state(b).locked).toBe(true);
      s.value.close();
    }
    // The kills must actually have interrupted work for this test to mean anything.
    console.log(`kills: ${kills}; interrupted at: ${JSON.stringify(Object.fromEntries(interruptedAt))}`);
    expect(kills).toBeGreaterThanOrEqual(BOARDS * 1.5);
    // ...and have landed inside at least three different steps of the flow.
    expect([...interruptedAt.keys()].filter((k) => k.startsWith('active:')).length).toBeGreaterThanOrEqual(3);
  });
});

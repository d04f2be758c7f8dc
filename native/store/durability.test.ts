/**
 * Deferred commits and the durability barrier (durability.ts), on a real process under strace
 * (testkit/workers/barrier-worker.ts): a run's createRun and checkpoints are written to the WAL without an fsync,
 * so a power cut right after them loses them (the database rebuilt from what was synced has no run); the outbox's
 * audit proof (what a sync batch or bundle sends) fsyncs first, so a power cut once the proof is read keeps every
 * entry it holds, with the same head hash (the barrier is a FULL commit: it syncs only if the deferred commits set
 * the connection back to FULL).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStationDb } from './index.js';
import { must } from '../../testkit/pki/test-util.js';
import { durableAt, isSyncOf, traced, writeMatching } from '../../testkit/strace.js';

const here = import.meta.dirname;
const root = join(here, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'ls-durable-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('deferred commits and the barrier before an export', () => {
  it('a deferred run is lost in a power cut before the proof, kept after it', { timeout: 60_000 }, async () => {
    const db = join(dir, 'station.db');
    must(openStationDb(db)).close(); // migrated, checkpointed, closed: the base is on disk
    const base = new Map<string, Buffer>();
    for (const f of [db, `${db}-wal`]) if (existsSync(f)) base.set(f, readFileSync(f));
    const r = await traced(process.execPath, ['--import', 'tsx', join(root, 'testkit/workers/barrier-worker.ts'), db], {
      log: join(dir, 'worker.strace'),
    });
    expect(r.out, r.out).toMatch(/^proof /m);
    const chipId = /^deferred (\S+)$/m.exec(r.out)![1]!;
    const [, seq, hash] = /^proof (\d+) (\S+)$/m.exec(r.out)!;
    const calls = r.calls;
    const start = writeMatching(calls, /^start\n$/);
    const deferred = writeMatching(calls, /^deferred \S+\n$/);
    const proof = writeMatching(calls, /^proof \d+ \S+\n$/);
    expect([start, deferred, proof], r.out).toEqual([start, deferred, proof].sort((a, b) => a - b));
    expect(start).toBeGreaterThan(0);
    const wal = `${db}-wal`;
    const walWrites = calls.slice(start, deferred).filter((c) => c.name === 'pwrite64' && c.path === wal);
    expect(walWrites.length).toBeGreaterThan(0);
    // The deferred commits: written, never synced.
    expect(calls.slice(start, deferred).filter((c) => isSyncOf(c, wal) || isSyncOf(c, db))).toEqual([]);
    expect(calls.slice(deferred, proof).filter((c) => isSyncOf(c, wal)).length).toBeGreaterThan(0);

    const lost = must(
      openStationDb(durableAt(calls, deferred, db, base, join(dir, 'cut-deferred')), { readonly: true }),
    );
    try {
      expect(lost.store.findActiveRun(chipId)).toBeNull();
      expect(lost.store.verifyAudit()).toMatchObject({ ok: true });
    } finally {
      lost.close();
    }
    const kept = must(openStationDb(durableAt(calls, proof, db, base, join(dir, 'cut-proof')), { readonly: true }));
    try {
      expect(kept.store.findActiveRun(chipId)?.step).toBe('attest');
      const v = kept.store.verifyAudit();
      expect(v).toMatchObject({ ok: true, headHash: hash });
      expect(kept.store.listAudit(Number(seq), 1)[0]?.hash).toBe(hash);
    } finally {
      kept.close();
    }
  });
});

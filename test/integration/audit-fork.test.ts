/**
 * A forked audit history (docs/audit.md "Anchoring at the registry"): the station data dir restored from an old
 * backup, then more boards provisioned by the real engine on the simulator. The restored station verifies on its
 * own; `station verify-log --against-registry` fails (exit 4) and, after the next `station sync` to `registry serve`
 * on loopback, `registry verify-station` reports the fork at the first entry where the histories part.
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { auditFacts } from '../../testkit/store-fixtures.js';
import { afterAll, describe, expect, it } from 'vitest';
import { closeLines, line, provision, registry, st, verifyStation } from './anchor-fixture.js';

afterAll(closeLines);

describe('audit chain anchored at the registry', () => {
  it('a data dir restored from an old backup and grown again is reported as a fork', async () => {
    const l = await line(4);
    await provision(l, 0);
    expect((await st(l.w, 'sync')).code).toBe(0);
    // Backup of the whole data dir (engine closed: the database files are quiescent).
    await l.w.engine.close();
    const backup = join(l.w.dir, 'backup');
    cpSync(l.w.dataDir, backup, { recursive: true });
    await l.w.reopen();
    await provision(l, 1);
    await provision(l, 2);
    expect((await st(l.w, 'sync')).code).toBe(0);
    const before = await verifyStation(l);
    expect(before.json.ok).toBe(true);
    const anchoredSeq = before.json.latest!.seq;

    // Restore the old backup, then provision another board on it.
    await l.w.engine.close();
    rmSync(l.w.dataDir, { recursive: true, force: true });
    cpSync(backup, l.w.dataDir, { recursive: true });
    const restoredHead = auditFacts(join(l.w.dataDir, 'station.db'), 'run.started').headSeq;
    await l.w.reopen();
    expect(restoredHead).toBeLessThan(anchoredSeq);
    await provision(l, 3);
    expect((await st(l.w, 'verify-log')).code).toBe(0); // consistent on its own
    const vr = await st(l.w, 'verify-log', '--against-registry');
    expect(vr.code, vr.out).toBe(4);
    expect(vr.out).toContain('STORE_AUDIT_NOT_ANCHORED');

    const sy = await st(l.w, 'sync', '--json');
    expect(sy.code, sy.out).toBe(0);
    const v = await verifyStation(l);
    expect(v.code).toBe(1);
    expect(v.json.findings).toHaveLength(1);
    // The first entry after the backup is where the two histories part.
    expect(v.json.findings[0]).toMatchObject({ kind: 'forked', atSeq: restoredHead + 1 });
    expect(v.json.latest!.seq).toBe(anchoredSeq);
    expect(JSON.parse((await registry(l.reg, 'stats', '--json')).out)).toMatchObject({ records: 4 });
  }, 240_000);
});

/**
 * A rewritten audit history, attacked through the real path (docs/audit.md "Anchoring at the registry"): boards
 * provisioned by the real engine on the simulator (SoftHSM2 station key), synced by `station sync` to `registry
 * serve` (own process, own token) on loopback; then the attacker opens station.db with sqlite, rewrites an old
 * audit entry and recomputes every later hash and the head. `station verify-log` still passes (the attack),
 * `station verify-log --against-registry` fails (exit 4, STORE_AUDIT_NOT_ANCHORED), and the next `station sync` makes
 * `registry verify-station` report the rewrite; the batch's records are still ingested.
 */
import { join } from 'node:path';
import { auditFacts, rewriteAuditHistory } from '../../testkit/store-fixtures.js';
import { afterAll, describe, expect, it } from 'vitest';
import { openStationDb } from '../../native/store/index.js';
import { closeLines, line, provision, registry, st, verifyStation } from './anchor-fixture.js';

afterAll(closeLines);

describe('audit chain anchored at the registry', () => {
  it('a rewritten history passes verify-log alone but not against the registry, and the registry reports it', async () => {
    const l = await line(3);
    await provision(l, 0);
    await provision(l, 1);
    // Figures: what the proof adds to a batch for boards provisioned by the real engine.
    const ob = openStationDb(join(l.w.dataDir, 'station.db'));
    if (!ob.ok) throw new Error(ob.error.message);
    const proof = ob.value.outbox.auditProof(64 * 1024 * 1024);
    ob.value.close();
    const perBoard = proof.entries.filter((e) => e.type === 'record.committed').length;
    console.log(
      `audit proof figures: ${proof.entries.length} entries, ${proof.bytes} bytes of JSON for ${perBoard} boards ` +
        `(${Math.round(proof.bytes / perBoard)} bytes/board, ${Math.round(proof.bytes / proof.entries.length)} bytes/entry)`,
    );
    const sy = await st(l.w, 'sync', '--json');
    expect(sy.code, sy.out).toBe(0);
    let v = await verifyStation(l);
    expect(v.code).toBe(0);
    expect(v.json.ok).toBe(true);
    expect(v.json.heads.length).toBeGreaterThanOrEqual(1);
    const anchoredSeq = v.json.latest!.seq;
    // The registry's anchored head is the station's own chain at that seq.
    expect(l.w.engine.store.listAudit(anchoredSeq, 1)[0]!.hash).toBe(v.json.latest!.hash);
    let vr = await st(l.w, 'verify-log', '--against-registry');
    expect(vr.code, vr.out).toBe(0);
    expect(vr.out).toContain('registry anchors OK');

    // --- the attacker rewrites board 0's run.started (who provisioned it) and recomputes the chain.
    await l.w.engine.close();
    const target = auditFacts(join(l.w.dataDir, 'station.db'), 'run.started').firstOfType!;
    expect(target).toBeLessThan(anchoredSeq);
    expect(rewriteAuditHistory(join(l.w.dataDir, 'station.db'), target, { operator: 'someone-else' })).toBeGreaterThan(
      5,
    );

    // The attack works against the station alone: the chain and the records verify.
    const local = await st(l.w, 'verify-log');
    expect(local.code, local.out).toBe(0);
    expect(local.out).toContain('audit chain OK');
    // ... but not against the registry's anchored heads (signed answer, checked with registry.pem).
    vr = await st(l.w, 'verify-log', '--against-registry', '--json');
    expect(vr.code, vr.out).toBe(4);
    const j = JSON.parse(vr.out) as { ok: boolean; audit: { ok: boolean }; registry: { error: { code: string } } };
    expect(j).toMatchObject({
      ok: false,
      audit: { ok: true },
      registry: { error: { code: 'STORE_AUDIT_NOT_ANCHORED' } },
    });
    vr = await st(l.w, 'verify-log', '--against-registry');
    expect(vr.out).toMatch(/STORE_AUDIT_NOT_ANCHORED: local audit entry \d+ hashes to/);

    // The next sync: the records are still ingested (signed on their own), the registry records the rewrite.
    await l.w.reopen();
    await provision(l, 2);
    const sy2 = await st(l.w, 'sync', '--json');
    expect(sy2.code, sy2.out).toBe(0);
    expect(JSON.parse(sy2.out)).toMatchObject({ pending: 0, acknowledged: 3, failed: 0 });
    expect(JSON.parse((await registry(l.reg, 'stats', '--json')).out)).toMatchObject({ records: 3 });
    v = await verifyStation(l);
    expect(v.code).toBe(1);
    expect(v.json.ok).toBe(false);
    expect(v.json.findings).toHaveLength(1);
    expect(v.json.findings[0]).toMatchObject({ kind: 'rewritten', atSeq: anchoredSeq });
    // Nothing from the rewritten chain was anchored: the registry still holds the genuine head.
    expect(v.json.latest!.seq).toBe(anchoredSeq);
    const text = await registry(l.reg, 'verify-station', 'test-station');
    expect(text.code).toBe(1);
    expect(text.out).toMatch(/FINDING rewritten at entry \d+/);
    expect(text.out).toContain('FLAGGED');
  }, 240_000);
});

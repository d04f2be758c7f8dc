/**
 * A crash between signing the audit head and sending it (docs/audit.md "Anchoring at the registry"): a station
 * process (real engine, SoftHSM2 station key, records provisioned on the simulator) is killed with SIGKILL at the
 * `audit-head-signed` failpoint, twice; then `station sync` runs again. The registry (on loopback) accepts every
 * record exactly once, anchors heads that are the station's own chain, and `registry verify-station`-level checks and
 * `station verify-log --against-registry` pass; every entry up to the newest head has an anchored hash.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPem } from '../../core/pki/pem.js';
import { systemClock } from '../../core/ports.js';
import { openStationDb } from '../../native/store/index.js';
import { verifyStationAudit } from '../../registry/audit/audit-anchor.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import type { RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { main as station } from '../../station/cli/program.js';
import { createWorld, type World } from '../harness.js';

const root = join(import.meta.dirname, '..', '..');
let w: World;
let reg: RunningRegistry;

const counts = async () => {
  const c = await reg.db.counts();
  if (!c.ok) throw new Error(c.error.message);
  return c.value;
};
const st = async (...args: string[]) => {
  const out: string[] = [];
  const code = await station([...args, '--data-dir', w.dataDir], { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, out: out.join('\n') };
};

/** Run the worker; SIGKILL it when it reports the failpoint. Resolves with how it ended. */
function crashAtHeadSigned(): Promise<{ signal: NodeJS.Signals | null; seq: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    // `node --import tsx` so that the killed process IS the worker (a tsx wrapper would survive the kill).
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'anchor-crash-worker.ts'), w.dataDir],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let seq: number | null = null;
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    createInterface({ input: child.stdout }).on('line', (l) => {
      out += `${l}\n`;
      const m = /^audit-head-signed (\d+)$/.exec(l);
      if (m) {
        seq = Number(m[1]);
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (_c, signal) => {
      clearTimeout(guard);
      resolve({ signal, seq, out });
    });
  });
}

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-BASIC' }] });
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'hq-crash',
    adminToken: 'a'.repeat(32),
  });
  const en = await enrollStation(reg.context, {
    stationId: 'test-station',
    chainPem: readFileSync(join(w.dataDir, 'pki/station-chain.pem'), 'utf8'),
  });
  expect(en.ok).toBe(true);
  const pem = join(w.dir, 'registry.pem');
  writeFileSync(pem, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  const e = await st('enroll', '--registry', reg.url, '--registry-cert', pem);
  expect(e.code, e.out).toBe(0);
  await w.reopen();
}, 120_000);
afterAll(async () => {
  await reg?.close();
  await w?.teardown();
});

describe('crash between signing the audit head and sending it', () => {
  it(
    'SIGKILL at audit-head-signed, then sync again: records once, heads consistent',
    { timeout: 240_000 },
    async () => {
      for (const i of [0, 1]) {
        const r = await w.engine.provision({ port: w.sim.ports[i]!, workOrder: 'WO-DEMO-1', operator: 'op-1' });
        if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
      }
      await w.engine.close();
      const signedSeqs: number[] = [];
      for (let k = 0; k < 2; k++) {
        const c = await crashAtHeadSigned();
        expect(c.signal, c.out).toBe('SIGKILL');
        expect(c.seq).not.toBeNull();
        signedSeqs.push(c.seq!);
        // Nothing reached the registry: no record, no head.
        expect((await counts()).records).toBe(0);
        const a = await verifyStationAudit(reg.context, 'test-station');
        expect(a.ok && a.value.heads.length).toBe(0);
      }
      // The batch was claimed before the head was signed: it is `sent`, and is re-sent with the same id.
      const ob = openStationDb(join(w.dataDir, 'station.db'), { clock: systemClock });
      if (!ob.ok) throw new Error(ob.error.message);
      expect(ob.value.outbox.counts()).toMatchObject({ pending: 0, sent: 2, acknowledged: 0 });
      expect(ob.value.outbox.sentBatchIds()).toHaveLength(1);
      expect(ob.value.outbox.auditAnchors()).toEqual([]);
      ob.value.close();

      const sy = await st('sync', '--json');
      expect(sy.code, sy.out).toBe(0);
      expect(JSON.parse(sy.out)).toMatchObject({ pending: 0, sent: 0, acknowledged: 2, failed: 0 });
      expect(await counts()).toMatchObject({ records: 2, batches: 1 });

      // One more board and one more sync: the second head extends the first.
      const eng = await w.reopen();
      const r = await eng.provision({ port: w.sim.ports[2]!, workOrder: 'WO-DEMO-1', operator: 'op-1' });
      if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
      expect((await st('sync')).code).toBe(0);
      expect(await counts()).toMatchObject({ records: 3, batches: 2 });

      const a = await verifyStationAudit(reg.context, 'test-station');
      if (!a.ok) throw new Error(a.error.message);
      expect(a.value).toMatchObject({ ok: true, findings: [], problems: [] });
      expect(a.value.heads).toHaveLength(2);
      // Every entry 1..latest has exactly one anchored hash, and the heads are the station's own chain.
      expect(a.value.anchoredEntries).toBe(a.value.latest!.seq);
      expect(a.value.heads[0]!.seq).toBeGreaterThanOrEqual(Math.max(...signedSeqs));
      for (const h of a.value.heads) expect(eng.store.listAudit(h.seq, 1)[0]!.hash).toBe(h.hash);
      console.log(`audit head figures: signed head JWS ${a.value.heads[0]!.jws.length} chars (x5c: 3 certificates)`);
      // The station recorded what the registry confirmed.
      const ob2 = openStationDb(join(w.dataDir, 'station.db'), { clock: systemClock });
      if (!ob2.ok) throw new Error(ob2.error.message);
      expect(ob2.value.outbox.auditAnchors().map((x) => x.seq)).toEqual(a.value.heads.map((h) => h.seq));
      ob2.value.close();
      const vr = await st('verify-log', '--against-registry');
      expect(vr.code, vr.out).toBe(0);
      expect(eng.store.verifyAudit()).toMatchObject({ ok: true });
    },
  );
});

/**
 * Attack (review finding): `station watch` signed its operator in once and ran on, so after `station operator revoke`
 * it kept provisioning new boards under the revoked operator. A real `station watch` process provisions simulated
 * boards (socat ptys, SoftHSM2, SQLite); a real `station operator revoke` from another process revokes its operator
 * while a slow board is in progress; then a new board is presented. The board in progress finishes, the new board
 * is never started, watch says AUTH_REVOKED and exits 1.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../test/harness.js';
import { addOperators } from '../test/operators-fixture.js';
import { stationProcess, watchArgs } from '../test/station-process.js';

const OP_PIN = '3141';
let w: World;
let watch: ChildProcessWithoutNullStreams | null = null;

async function until(what: string, pred: () => boolean, ms: number, text: () => string): Promise<void> {
  for (const t0 = Date.now(); !pred(); await new Promise((r) => setTimeout(r, 50)))
    if (Date.now() - t0 > ms) throw new Error(`timeout waiting for ${what}\n${text()}`);
}

beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE' },
      // Slow: still in progress when the operator is revoked.
      { model: 'LS-SIM-SE', latency: { keygen: 4000, flash: 4000 } },
      { model: 'LS-SIM-SE' },
    ],
  });
  await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: OP_PIN }]);
}, 120_000);

afterAll(async () => {
  if (watch && watch.exitCode === null && watch.signalCode === null) watch.kill('SIGKILL');
  await w?.teardown();
});

describe('station watch and a revocation from another process', () => {
  it('finishes the board in progress, starts no new board (AUTH_REVOKED) and exits 1', async () => {
    const [p0, p1, p2] = w.sim.ports as [string, string, string];
    const [b0, b1, b2] = [w.sim.boards[0]!, w.sim.boards[1]!, w.sim.boards[2]!];
    await w.sim.unplug(2); // presented only after the revocation
    watch = stationProcess(watchArgs(w.dataDir, 'op-1', [p0, p1, p2]), { LINE_STATION_PIN: OP_PIN });
    let text = '';
    watch.stdout.on('data', (d: Buffer) => (text += d.toString()));
    watch.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const exited = new Promise<number | null>((r) => watch!.once('exit', (c) => r(c)));
    const log = () => text;

    await until('board 0 PASS', () => new RegExp(`\\[${p0}\\].*PASS`).test(text), 60_000, log);
    await until('board 1 in progress', () => text.includes(`[${p1}] board attached`), 30_000, log);
    expect(text).not.toMatch(new RegExp(`\\[${p1}\\].*PASS`));

    // Revoked from another process while board 1 is in progress.
    const rev = stationProcess(['operator', 'revoke', '--data-dir', w.dataDir, '--id', 'op-1']);
    let revText = '';
    rev.stdout.on('data', (d: Buffer) => (revText += d.toString()));
    rev.stderr.on('data', (d: Buffer) => (revText += d.toString()));
    expect(await new Promise<number | null>((r) => rev.once('exit', (c) => r(c))), revText).toBe(0);
    expect(revText).toContain('operator op-1 revoked');
    expect(text).not.toMatch(new RegExp(`\\[${p1}\\].*PASS`)); // the revocation came while board 1 was running

    // A new board is presented after the revocation.
    await w.sim.plug(2);
    const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 60_000))]);
    expect(code, text).toBe(1);
    expect(text).toContain('AUTH_REVOKED');
    expect(text).toContain('operator op-1 has been revoked');
    // The board in progress finished (recorded); the board presented after the revocation was never started.
    expect(text).toMatch(new RegExp(`\\[${p1}\\].*PASS`));
    expect(text).not.toMatch(new RegExp(`\\[${p2}\\] board attached`));
    const records = w.engine.store.listRecords({ limit: 100 });
    expect(records.map((r) => r.chipId).sort()).toEqual([b0.chipId, b1.chipId].sort());
    expect(records.every((r) => r.operator === 'op-1')).toBe(true);
    expect(w.engine.store.findActiveRun(b2.chipId)).toBeNull();
    expect(w.sim.state(2).hasKey).toBe(false);
    expect(w.engine.store.verifyAudit().ok).toBe(true);
    expect(text).not.toContain(OP_PIN);
  }, 180_000);
});

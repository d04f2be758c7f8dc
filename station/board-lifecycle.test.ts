/**
 * One board lifecycle in the UI service and in `station watch` (core/boards/lifecycle.ts): the same board behaviour
 * ends the same way in both, and the way the flow left the run. Real parts: simulated boards on socat ptys,
 * SoftHSM2, SQLite; the UI service's slot manager in process, `station watch` as its own process.
 *
 * Two behaviours, each mid-run at the attest step (the board is slowed so the fault lands while it works):
 * - the board goes silent (all its bytes dropped): PROTOCOL_TIMEOUT after the client's retries. The flow keeps the
 *   run active; the UI slot is `interrupted` (Retry offered, never restarted by itself) and watch prints PAUSED and
 *   does not count it. Re-seating the board resumes the same run to PASS. (Before, both reported FAIL while the
 *   flow had kept the run.)
 * - the board answers garbage (every frame corrupted): PROTOCOL_CRC. The flow fails the run; the slot is `fail` and
 *   watch prints FAIL and counts it.
 * And a cable that drops and is back at once (discovery may never see it go): watch resumes it by itself after a
 * moment, as the UI slots always did (before, watch left such a board unstarted until it saw a detach).
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiResult, SlotView, StationEvent } from '../core/api.js';
import { createLogger } from '../native/logger.js';
import { createWorld, type World } from '../test/harness.js';
import { addOperators } from '../test/operators-fixture.js';
import { stationProcess, watchArgs } from '../test/station-process.js';
import type { Faults } from '../test/sim/simulator.js';
import { call, createLogTap, createStationService, type StationService } from './service/index.js';

const OP_PIN = '2718';
/** Every request but keygen and flash writes takes this long on the slowed boards (the window for the fault). */
const SLOW_MS = 1500;
const SILENT: Faults = { dropBytes: 1 };
const GARBLED: Faults = { corruptBytes: 1 };

let w: World;
let svc: StationService | null = null;
let watch: ChildProcessWithoutNullStreams | null = null;
const events: StationEvent[] = [];

function must<T>(r: ApiResult<T>): T {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w.logText().slice(-4000)}`);
  return r.value;
}

async function until<T>(what: string, get: () => T | null | undefined | false, ms: number, log: () => string) {
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 50))) {
    const v = get();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timeout waiting for ${what}\n${log().slice(-5000)}`);
  }
}

const lastSlot = (port: string): SlotView | undefined =>
  [...events]
    .reverse()
    .find((e): e is Extract<StationEvent, { type: 'slot' }> => e.type === 'slot' && e.slot.port === port)?.slot;

beforeAll(async () => {
  w = await createWorld({
    boards: [
      // 0, 1: the UI service (silent, garbled); 2, 3: station watch (silent, garbled)
      ...[0, 1, 2, 3].map(() => ({ model: 'LS-SIM-SE' as const, latency: { other: SLOW_MS } })),
      // 4: station watch, a cable that drops during keygen and is back at once (discovery may never see it go)
      { model: 'LS-SIM-SE' as const, faults: { disconnectOn: 'keygen' as const, replugAfterMs: 0 } },
      // 5: the UI service, a TPM board (real swtpm): its driver's notes reach the slot
      { model: 'LS-SIM-TPM-ECC' as const },
    ],
  });
  await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: OP_PIN }]);
}, 120_000);

afterAll(async () => {
  if (watch && watch.exitCode === null && watch.signalCode === null) watch.kill('SIGKILL');
  await svc?.stop();
  await w?.teardown();
});

describe('the UI slots', () => {
  it('a board silent mid-step is interrupted (run active, not restarted), resumes on re-seat; garbage fails it', async () => {
    const [p0, p1] = w.sim.ports as [string, string];
    const [b0, b1] = [w.sim.boards[0]!, w.sim.boards[1]!];
    const hub = createLogTap();
    const logger = createLogger({ tap: hub.tap, level: 'debug', file: join(w.dir, 'service.log') });
    svc = createStationService({ engine: w.engine, logger, logTap: hub, extraPorts: [p0, p1] });
    const faulted = new Set<string>();
    // The fault lands when the attest step begins (the event comes before the board is asked).
    svc.subscribe((e) => {
      if (e.type !== 'slot' || e.slot.state !== 'running' || e.slot.currentStep !== 'attest') return;
      if (faulted.has(e.slot.port)) return;
      faulted.add(e.slot.port);
      w.sim.setFaults(e.slot.port === p0 ? 0 : 1, e.slot.port === p0 ? SILENT : GARBLED);
    });
    svc.subscribe((e) => events.push(e));
    await svc.start();
    must(await call(svc, 'c1', 'signIn', { operatorId: 'op-1', pin: OP_PIN }));
    must(await call(svc, 'c1', 'selectWorkOrder', { id: 'WO-DEMO-1' }));

    // Silent: interrupted, the run kept active.
    const runId = (
      await until('run of board 0', () => faulted.has(p0) && w.engine.store.findActiveRun(b0.chipId), 60_000, w.logText)
    ).runId;
    const s0 = await until(
      'slot 0 interrupted',
      () => lastSlot(p0)?.state === 'interrupted' && lastSlot(p0),
      60_000,
      w.logText,
    );
    expect(s0.error).toMatchObject({ code: 'PROTOCOL_TIMEOUT', action: 'reseat' });
    expect(s0.canRetry).toBe(true);
    // The model came with the identify progress (the slot no longer reads the store mid-run).
    expect(s0).toMatchObject({ chipId: b0.chipId, serialNumber: b0.serialNumber, model: 'LS-SIM-SE' });
    expect(w.engine.store.getRun(runId)?.state).toBe('active');

    // Garbage: fail, the run failed.
    const s1 = await until('slot 1 failed', () => lastSlot(p1)?.state === 'fail' && lastSlot(p1), 60_000, w.logText);
    expect(s1.error?.code).toBe('PROTOCOL_CRC');
    expect(w.engine.store.findActiveRun(b1.chipId)).toBeNull();

    // Not restarted by itself (a silent board would be asked again and again).
    const seen = events.length;
    await new Promise((r) => setTimeout(r, 2500));
    expect(events.slice(seen).filter((e) => e.type === 'slot' && e.slot.port === p0)).toEqual([]);

    // Re-seat: the same run resumes to PASS.
    w.sim.setFaults(0, {});
    await w.sim.unplug(0);
    await until('slot 0 disconnected', () => lastSlot(p0)?.state === 'disconnected', 10_000, w.logText);
    await w.sim.plug(0);
    const pass = await until('slot 0 pass', () => lastSlot(p0)?.state === 'pass' && lastSlot(p0), 60_000, w.logText);
    expect(w.engine.store.findCurrentRecord(b0.chipId)?.runId).toBe(runId);
    expect(pass.recordId).toBe(w.engine.store.findCurrentRecord(b0.chipId)?.recordId);
    await svc.stop();
    svc = null;
  }, 180_000);
});

describe('the UI slots and a driver that notes finer steps', () => {
  it("a TPM board's notes are the slot's note while its step runs; cleared when it ends; the model from progress", async () => {
    const p5 = w.sim.ports[5]!;
    const hub = createLogTap();
    const logger = createLogger({ tap: hub.tap, level: 'debug', file: join(w.dir, 'service-tpm.log') });
    svc = createStationService({ engine: w.engine, logger, logTap: hub, extraPorts: [p5] });
    const seen: SlotView[] = [];
    svc.subscribe((e) => {
      if (e.type === 'slot' && e.slot.port === p5) seen.push(e.slot);
    });
    await svc.start();
    must(await call(svc, 'c5', 'signIn', { operatorId: 'op-1', pin: OP_PIN }));
    must(await call(svc, 'c5', 'selectWorkOrder', { id: 'WO-DEMO-TPM-1' }));
    const pass = await until('slot 5 pass', () => seen.find((s) => s.state === 'pass'), 120_000, w.logText);
    expect(pass).toMatchObject({ model: 'LS-SIM-TPM-ECC', serialNumber: w.sim.boards[5]!.serialNumber });
    expect(pass.note).toBeUndefined();
    const noted = seen.filter((s) => s.note !== undefined);
    // Every note is shown while its step runs, under that step.
    for (const s of noted) expect(s).toMatchObject({ state: 'running', currentStep: expect.any(String) });
    const notes = noted.map((s) => `${s.currentStep}: ${s.note}`);
    // The driver's finer steps, each under the step it belongs to.
    for (const n of ['baseline: credential activated', 'attest: TPM2_Certify', 'certify: device certificate written'])
      expect(
        notes.some((x) => x.startsWith(n)),
        `${n}\n${notes.join('\n')}`,
      ).toBe(true);
    // A step that starts begins without the previous step's note.
    const firstOfStep = seen.filter((s, i) => i > 0 && s.currentStep !== seen[i - 1]!.currentStep);
    for (const s of firstOfStep) expect(s.note, `${s.currentStep}`).toBeUndefined();
    await svc.stop();
    svc = null;
  }, 180_000);
});

describe('station watch', () => {
  it('the same boards: PAUSED (not counted) and resumed on re-seat; FAIL counted; exit 1 for the failure', async () => {
    const [, , p2, p3] = w.sim.ports as [string, string, string, string];
    const [b2, b3] = [w.sim.boards[2]!, w.sim.boards[3]!];
    watch = stationProcess(watchArgs(w.dataDir, 'op-1', [p2, p3], ['--count', '2', '--json']), {
      LINE_STATION_PIN: OP_PIN,
    });
    let text = '';
    const faulted = new Set<string>();
    // The fault lands when watch reports the attest step running (the board then takes SLOW_MS to answer).
    const onLine = (line: string) => {
      if (!line.startsWith('{')) return;
      const e = JSON.parse(line) as { port?: string; step?: string; status?: string };
      if (e.step !== 'attest' || e.status !== 'running' || !e.port || faulted.has(e.port)) return;
      faulted.add(e.port);
      w.sim.setFaults(e.port === p2 ? 2 : 3, e.port === p2 ? SILENT : GARBLED);
    };
    let partial = '';
    watch.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      lines.forEach(onLine);
    });
    watch.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const exited = new Promise<number | null>((r) => watch!.once('exit', (c) => r(c)));
    const log = () => text;

    const paused = new RegExp(
      `\\[${p2}\\] PAUSED  PROTOCOL_TIMEOUT: attest: .*\\n.*\\n  -> the run stays open: re-seating the board resumes it`,
    );
    await until('board 2 paused', () => paused.test(text), 90_000, log);
    await until('board 3 failed', () => new RegExp(`\\[${p3}\\] FAIL .*PROTOCOL_CRC`).test(text), 90_000, log);
    const run = w.engine.store.findActiveRun(b2.chipId);
    expect(run).not.toBeNull();
    expect(w.engine.store.findActiveRun(b3.chipId)).toBeNull();
    expect(text).not.toMatch(new RegExp(`\\[${p2}\\] FAIL`));
    // One board failed, one paused: --count 2 is not reached, watch keeps watching.
    await new Promise((r) => setTimeout(r, 2500));
    expect(watch.exitCode).toBeNull();
    expect(text.split(`[${p2}] board attached`).length - 1).toBe(1); // not restarted by itself

    // Re-seat: the same run resumes to PASS; now 2 boards are done.
    w.sim.setFaults(2, {});
    await w.sim.unplug(2);
    await until('board 2 detached', () => text.includes(`[${p2}] board detached`), 10_000, log);
    await w.sim.plug(2);
    const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 90_000))]);
    expect(code, text).toBe(1);
    expect(text).toMatch(new RegExp(`\\[${p2}\\] PASS  ${b2.serialNumber} provisioned \\(resumed\\)`));
    expect(w.engine.store.findCurrentRecord(b2.chipId)?.runId).toBe(run!.runId);
    expect(text).toContain('1 boards passed, 1 failed');
    expect(w.engine.store.verifyAudit().ok).toBe(true);
  }, 240_000);

  it('a link that drops and is back at once resumes by itself (as in the UI slots): PAUSED, then PASS (resumed)', async () => {
    const p4 = w.sim.ports[4]!;
    const b4 = w.sim.boards[4]!;
    watch = stationProcess(watchArgs(w.dataDir, 'op-1', [p4], ['--count', '1']), { LINE_STATION_PIN: OP_PIN });
    let text = '';
    watch.stdout.on('data', (d: Buffer) => (text += d.toString()));
    watch.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const exited = new Promise<number | null>((r) => watch!.once('exit', (c) => r(c)));
    const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 90_000))]);
    expect(code, text).toBe(0);
    expect(text).toMatch(
      new RegExp(`\\[${p4}\\] PAUSED  LINK_DISCONNECTED: .*\\n.*\\n  -> the run stays open: re-plugging`),
    );
    expect(text).toMatch(new RegExp(`\\[${p4}\\] PASS  ${b4.serialNumber} provisioned \\(resumed\\)`));
    expect(text).toContain('1 boards passed, 0 failed');
    expect(w.engine.store.listRecords({}).filter((r) => r.chipId === b4.chipId)).toHaveLength(1);
  }, 120_000);
});

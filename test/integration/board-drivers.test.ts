/**
 * The flow and its board drivers, with real parts (simulator boards on ptys, SoftHSM2, SQLite):
 * - a driver's checkpoints are merged into `run.data.driver` in the step's own transaction (the audit trail has
 *   the same entries as a plain run), every call sees the run's data as last committed, `note` is the step's
 *   progress, and the identify `done` progress names the model;
 * - the profile's timeouts are what the board calls wait (a profile keygenMs below the board's keygen time fails
 *   the run resumably with PROTOCOL_TIMEOUT; with the shipped profile the board then resumes to one identity);
 * - an LS board matched to a tpm2 profile is refused at identify (BOARD_UNSUPPORTED: no TPM relay), nothing written.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driverFor } from '../../core/boards/index.js';
import { lsDriver } from '../../core/boards/ls/index.js';
import type { BoardDriver, DriverContext } from '../../core/boards/driver.js';
import type { ProgressEvent } from '../../core/model.js';
import { provisionBoard, type FlowOutcome } from '../../core/provisioning/flow.js';
import type { RunData } from '../../core/provisioning/store.js';
import type { Result } from '../../core/result.js';
import { connectBoard } from '../../core/protocol/client.js';
import { serialOpener } from '../../native/serial.js';
import { updateStationConfig } from '../../station/config.js';
import { fromPem } from '../sim/pki.js';
import { createWorld, type World } from '../harness.js';

let w: World;
/** 0: slow keygen (timeouts); 1: its profile names tpm2; 2, 3: driver checkpoints; 4: a plain run to compare with. */
beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE', latency: { keygen: 1500 } },
      { model: 'LS-SIM-BASIC' },
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE' },
    ],
  });
}, 120_000);
afterAll(async () => {
  await w?.teardown();
});

const codeOf = (r: Result<FlowOutcome>): string => (r.ok ? r.value.status : r.error.code);

/** The flow itself (as the engine calls it) on board i, with the given driver registry. */
async function provisionWith(
  i: number,
  registry: typeof driverFor,
  opts: { signal?: AbortSignal; onProgress?: (e: ProgressEvent) => void } = {},
): Promise<Result<FlowOutcome>> {
  const link = await serialOpener().open(w.sim.ports[i]!);
  if (!link.ok) throw new Error(link.error.message);
  const board = await connectBoard(link.value, { logger: w.logger });
  if (!board.ok) throw new Error(board.error.message);
  const wo = w.engine.workOrder('WO-DEMO-1');
  if (!wo.ok) throw new Error(wo.error.message);
  try {
    return await provisionBoard(
      {
        board: board.value,
        hsm: w.engine.hsm,
        store: w.engine.store,
        clock: w.engine.clock,
        logger: w.logger,
        station: w.engine.station,
        attestationRoots: [fromPem(w.sim.vendorRootPem, 'CERTIFICATE')],
        profiles: w.engine.profiles,
        driverFor: registry,
        workOrder: wo.value,
        operator: 'drivers-test',
        port: { path: w.sim.ports[i]!, source: 'configured' },
        random: (n) => new Uint8Array(randomBytes(n)),
        newId: () => randomUUID(),
      },
      opts,
    );
  } finally {
    await board.value.close();
  }
}

/** The Line Station driver, checkpointing a counter at measure, key and attest and recording what it was given. */
function spyDriver(): { driver: BoardDriver; seen: Array<{ step: string; runData: RunData; timeoutMs?: number }> } {
  const seen: Array<{ step: string; runData: RunData; timeoutMs?: number }> = [];
  const saw = (step: string, ctx: DriverContext) =>
    seen.push({ step, runData: ctx.runData, ...(ctx.call.timeoutMs ? { timeoutMs: ctx.call.timeoutMs } : {}) });
  const driver: BoardDriver = {
    ...lsDriver,
    async measure(ctx, identity) {
      saw('measure', ctx);
      ctx.note('spy: measuring');
      const r = await lsDriver.measure(ctx, identity);
      return r.ok ? { ...r, value: { ...r.value, checkpoint: { measured: seen.length } } } : r;
    },
    async key(ctx, identity) {
      saw('key', ctx);
      const r = await lsDriver.key(ctx, identity);
      return r.ok ? { ...r, value: { ...r.value, checkpoint: { keyed: true } } } : r;
    },
    async attest(ctx, input) {
      saw('attest', ctx);
      const r = await lsDriver.attest(ctx, input);
      return r.ok ? { ...r, value: { ...r.value, checkpoint: { attested: input.bound.role } } } : r;
    },
    install(ctx, identity, chain) {
      saw('install', ctx);
      return lsDriver.install(ctx, identity, chain);
    },
  };
  return { driver, seen };
}

const auditOf = (runId: string) => w.engine.store.listAudit(0, 100_000).filter((e) => e.runId === runId);

describe('driver checkpoints and context', () => {
  it("are merged into run.data.driver in the step's transaction; each call sees the run's data so far", async () => {
    const spy = spyDriver();
    const progress: ProgressEvent[] = [];
    const out = await provisionWith(2, (p) => (p.driver === 'ls' ? { ok: true, value: spy.driver } : driverFor(p)), {
      onProgress: (e) => progress.push(e),
    });
    if (!out.ok) throw new Error(`${out.error.code}: ${out.error.message}\n${w.logText().slice(-3000)}`);
    expect(out.value.status).toBe('provisioned');
    const run = out.value.status === 'provisioned' ? w.engine.store.getRun(out.value.record.runId)! : null;
    expect(run?.data.driver).toEqual({ measured: 1, keyed: true, attested: 'device' });

    // Every call saw what the earlier steps committed, and the profile's default timeout (ls-sim-se: 3000 ms).
    expect(spy.seen.map((s) => [s.step, s.runData.driver ?? {}, s.timeoutMs])).toEqual([
      ['measure', {}, 3000],
      ['key', { measured: 1 }, 3000],
      ['attest', { measured: 1, keyed: true }, 3000],
      ['install', { measured: 1, keyed: true, attested: 'device' }, 3000],
    ]);
    expect(spy.seen[3]!.runData.attestation?.evidence?.mode).toBe('key-bound-v2');

    // Same audit entries as a plain Line Station run: the checkpoints rode in the steps' own transactions.
    const plain = await provisionWith(4, driverFor);
    if (!plain.ok || plain.value.status !== 'provisioned') throw new Error(codeOf(plain));
    const types = (runId: string) => auditOf(runId).map((e) => e.type);
    expect(types(run!.runId)).toEqual(types(plain.value.record.runId));
    expect(w.engine.store.getRun(plain.value.record.runId)!.data.driver).toBeUndefined();

    expect(progress).toContainEqual(
      expect.objectContaining({ step: 'baseline', status: 'running', message: 'spy: measuring' }),
    );
    expect(progress).toContainEqual(
      expect.objectContaining({
        step: 'identify',
        status: 'done',
        model: 'LS-SIM-SE',
        chipId: w.sim.boards[2]!.chipId,
      }),
    );
  });

  it('a driver that turns the claim into another board is a bug: the flow throws before anything is written', async () => {
    const before = w.engine.store.listAudit(0, 100_000).length;
    const other: BoardDriver = {
      ...lsDriver,
      identify: (_ctx, claimed) =>
        Promise.resolve({ ok: true, value: { identity: { ...claimed, chipId: 'ff'.repeat(16) } } }),
    };
    await expect(provisionWith(4, () => ({ ok: true, value: other }))).rejects.toThrow(/another identity/);
    expect(w.engine.store.listAudit(0, 100_000)).toHaveLength(before);
  });

  it('a resumed run whose baseline manifest stands commits a driver checkpoint on its own (audit: its keys)', async () => {
    const first = spyDriver();
    const ac = new AbortController();
    const cancelled = await provisionWith(3, () => ({ ok: true, value: first.driver }), {
      signal: ac.signal,
      onProgress: (e) => {
        if (e.step === 'baseline' && e.status === 'done') ac.abort();
      },
    });
    expect(codeOf(cancelled)).toBe('FLOW_CANCELLED');
    const active = w.engine.store.findActiveRun(w.sim.boards[3]!.chipId)!;
    expect(active.data.driver).toEqual({ measured: 1 });

    const second = spyDriver();
    const out = await provisionWith(3, () => ({ ok: true, value: second.driver }));
    if (!out.ok) throw new Error(`${out.error.code}: ${out.error.message}`);
    expect(second.seen[0]).toMatchObject({ step: 'measure', runData: { driver: { measured: 1 } } });
    const baselines = auditOf(active.runId).filter((e) => e.type === 'step.baseline');
    expect(baselines.map((e) => e.payload['driver'] ?? 'manifest')).toEqual(['manifest', ['measured']]);
    expect(w.engine.store.getRun(active.runId)!.data.driver).toEqual({ measured: 1, keyed: true, attested: 'device' });
  });
});

describe('board profiles choose the driver and the timeouts', () => {
  it("keygenMs below the board's keygen time: PROTOCOL_TIMEOUT, resumable; an LS board under a tpm2 profile: BOARD_UNSUPPORTED", async () => {
    // A copy of the shipped profiles: ls-sim-se waits 300 ms for a key, ls-sim-basic names the tpm2 driver.
    const dir = join(w.dir, 'profiles');
    cpSync(join(import.meta.dirname, '..', '..', 'resources', 'boards'), dir, { recursive: true });
    const edit = (file: string, f: (p: Record<string, unknown>) => Record<string, unknown>) =>
      writeFileSync(join(dir, file), JSON.stringify(f(JSON.parse(readFileSync(join(dir, file), 'utf8')))));
    edit('ls-sim-se.json', (p) => ({ ...p, timeouts: { ...(p['timeouts'] as object), keygenMs: 300 } }));
    // ls-sim-basic names the tpm2 driver (with the tpm block a tpm2 profile needs): an LS board has no TPM relay.
    const tpm2 = JSON.parse(readFileSync(join(dir, 'tpm2-ecc-ek.json'), 'utf8')) as Record<string, unknown>;
    edit('ls-sim-basic.json', (p) => ({ ...p, driver: 'tpm2', keyMode: 'onboard', tpm: tpm2['tpm'] }));
    const u = updateStationConfig(w.dataDir, (raw) => ({
      ...raw,
      paths: { ...(raw['paths'] as object), profilesDir: dir },
    }));
    expect(u.ok).toBe(true);
    await w.reopen();

    const chip = w.sim.boards[0]!.chipId;
    const t0 = performance.now();
    const slow = await w.engine.provision({ port: w.sim.ports[0]!, workOrder: 'WO-DEMO-1', operator: 'op' });
    expect(slow.ok ? slow.value.status : slow.error).toMatchObject({
      code: 'PROTOCOL_TIMEOUT',
      details: { op: 'keygen', timeoutMs: 300 },
    });
    expect(performance.now() - t0).toBeLessThan(20_000);
    const active = w.engine.store.findActiveRun(chip);
    expect(active?.step).toBe('baseline'); // resumable: the timeout left the run active, no key checkpointed
    expect(w.engine.store.listIssuedCertificates(chip)).toEqual([]);

    const progress: ProgressEvent[] = [];
    const unknown = await w.engine.provision({
      port: w.sim.ports[1]!,
      workOrder: 'WO-DEMO-1',
      operator: 'op',
      onProgress: (e) => progress.push(e),
    });
    expect(unknown.ok ? unknown.value.status : unknown.error).toMatchObject({ code: 'BOARD_UNSUPPORTED' });
    expect(progress.at(-1)).toMatchObject({ step: 'identify', status: 'failed' });
    const basic = w.sim.boards[1]!.chipId;
    // No identity was created: the board's only trace is the refusal itself (issue 13: refusals are recorded).
    expect(
      w.engine.store
        .listAudit(0, 100_000)
        .filter((e) => e.payload['chipId'] === basic)
        .map((e) => e.type),
    ).toEqual(['board.refused']);
    expect(w.sim.state(1)).toMatchObject({ hasKey: false, locked: false });

    // The shipped keygenMs (30 s): the board resumes its run and ends with one identity.
    edit('ls-sim-se.json', (p) => ({ ...p, timeouts: { ...(p['timeouts'] as object), keygenMs: 30_000 } }));
    await w.reopen();
    // The board finishes the abandoned key generation first (until then it answers BUSY).
    for (let i = 0; i < 50 && !w.sim.state(0).hasKey; i++) await new Promise((r) => setTimeout(r, 100));
    const resumed = await w.engine.provision({ port: w.sim.ports[0]!, workOrder: 'WO-DEMO-1', operator: 'op' });
    if (!resumed.ok) throw new Error(`${resumed.error.code}: ${resumed.error.message}`);
    expect(resumed.value).toMatchObject({ status: 'provisioned', resumed: true });
    expect(w.engine.store.listIssuedCertificates(chip)).toHaveLength(1);
    expect(w.engine.store.listRecords({ chipId: chip })).toHaveLength(1);
  }, 60_000);
});

/**
 * A rework whose station dies right after the board erased its identity still revokes the old credential when it
 * fails, with real parts: the `station` CLI in child processes (bin/station.mjs), SoftHSM2, the simulator on ptys,
 * SQLite. The board answers nothing after its zeroize (it is unplugged right after executing it), and the station is
 * killed (SIGKILL) the moment the board is erased: nothing after the zeroize reached the database, only the run's
 * erase intent committed before it. The station restarts, the board is plugged back, the rework resumes on the
 * erased board and fails (the board refuses the new certificate): the old certificate's revocation is queued exactly
 * once (`cert.rework-revocation`, a scrap event `rework-failed:<runId>`), a further failing rework queues none, the
 * issuance invariant holds and the audit chain verifies (docs/lifecycle.md "Failed rework").
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScrapPayloadSchema } from '../../core/hq/scrap.js';
import { type StationDb } from '../../native/store/index.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';
import { provisionArgs } from '../../testkit/station-cli.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';
import { runStationProcess, withStationDb } from '../station-process.js';

const WO = 'WO-DEMO-1';
const PINS = { LINE_STATION_PIN: '480213', LINE_STATION_SUPERVISOR_PIN: '135790' };

let w: World;
let dbFile: string;

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-BASIC' }] });
  await addOperators(w.dataDir, [
    { id: 'op-1', role: 'operator', pin: PINS.LINE_STATION_PIN },
    { id: 'sup-1', role: 'supervisor', pin: PINS.LINE_STATION_SUPERVISOR_PIN },
  ]);
  await w.engine.close(); // the station runs in child processes from here on
  dbFile = join(w.dataDir, 'station.db');
}, 120_000);
afterAll(async () => {
  await w?.teardown();
});

/** `station provision` of board i in a child process; `killWhen` is polled and SIGKILLs the station once true. */
const station = (i: number, more: readonly string[], killWhen?: () => boolean) =>
  runStationProcess([...provisionArgs(w.dataDir, w.sim.ports[i]!, WO), ...more], PINS, killWhen);
const rework = (i: number, killWhen?: () => boolean) =>
  station(i, ['--reprovision', '--supervisor', 'sup-1'], killWhen);
const scrapEvents = (chipId: string) =>
  withDb((db) => db.lifecycle.revocations({ kind: 'scrapped' })).filter((q) => q.chipId === chipId);

/** The station database, opened for one look. */
const withDb = <T>(fn: (db: StationDb) => T): T => withStationDb(dbFile, fn);

describe('a rework killed between the board erase and its checkpoint', () => {
  it('resumes on the erased board as zeroized; its failure queues the old credential revocation once', async () => {
    const first = await station(0, []);
    expect(first.code, first.out).toBe(0);
    const chipId = w.sim.state(0).chipId;
    const old = withDb((db) => db.store.findCurrentRecord(chipId)!);
    expect(w.sim.state(0).locked).toBe(true);

    // The board executes the zeroize and is unplugged before answering; the station dies the moment it is erased.
    w.sim.setFaults(0, { disconnectOn: 'zeroize' });
    const killed = await rework(0, () => !w.sim.state(0).locked);
    expect(killed.signal, killed.out).toBe('SIGKILL');
    expect(w.sim.state(0).locked).toBe(false);
    const active = withDb((db) => db.store.findActiveRun(chipId));
    expect(active).toMatchObject({ kind: 'rotation', supersedesRecordId: old.recordId });
    // Only the erase intent is in the run; nothing is queued yet.
    expect(active!.data['zeroizing']).toBe(true);
    expect(active!.data['zeroized']).toBeUndefined();
    expect(scrapEvents(chipId)).toEqual([]);

    // Restarted, the board plugged back in and refusing the new certificate: the rework resumes and fails.
    await w.sim.plug(0);
    w.sim.setFaults(0, { refuseCert: true });
    await sleep(100);
    const resumed = await rework(0);
    expect(resumed.code, resumed.out).toBe(1);
    expect(resumed.out).toContain('BOARD_CERT_REFUSED');
    expect(resumed.out).toContain(`previous certificate ${old.certificateSerial} is queued for revocation`);

    const seen = withDb((db) => ({
      requests: db.lifecycle.revocations({ kind: 'scrapped' }).filter((q) => q.chipId === chipId),
      audit: db.store.listAudit(1, 100_000).filter((e) => e.runId === active!.runId),
      run: db.store.getRun(active!.runId),
      current: db.store.findCurrentRecord(chipId),
      verified: db.store.verifyAudit(),
    }));
    expect(seen.run?.state).toBe('failed');
    expect(seen.requests).toHaveLength(1);
    expect(seen.requests[0]).toMatchObject({
      requestId: `rework-failed:${active!.runId}`,
      reason: 'rework-failed',
      certificateSerial: old.certificateSerial,
      runId: active!.runId,
    });
    const p = ScrapPayloadSchema.parse(JSON.parse(seen.requests[0]!.payloadJson!));
    expect(p).toMatchObject({ recordId: old.recordId, supervisor: 'sup-1', operator: 'op-1' });
    expect(p.note).toContain('BOARD_CERT_REFUSED');
    // The resume found the board erased and said so; one revocation entry, right before run.failed.
    const types = seen.audit.map((e) => e.type);
    expect(seen.audit.find((e) => e.type === 'step.identify' && e.payload['found'] === 'erased')).toBeDefined();
    expect(types.filter((t) => t === 'cert.rework-revocation')).toHaveLength(1);
    expect(types.slice(-2)).toEqual(['cert.rework-revocation', 'run.failed']);
    expect(seen.current?.recordId).toBe(old.recordId);
    expect(seen.verified).toMatchObject({ ok: true });

    // A further failing rework of the erased board queues no second revocation of the same certificate.
    const again = await rework(0);
    expect(again.code, again.out).toBe(1);
    expect(scrapEvents(chipId)).toHaveLength(1);
    // Every issued certificate is in a record or has its failed-issuance event queued (both refused ones).
    const inv = await assertIssuanceInvariant({ dbFile });
    expect(inv.failedIssuance).toBe(2);
    expect(inv.activeRun).toBe(0);
  }, 180_000);

  it('a board that refuses its zeroize and still holds the old certificate keeps it: nothing is revoked', async () => {
    expect((await station(1, [])).code).toBe(0);
    const chipId = w.sim.state(1).chipId;
    const old = withDb((db) => db.store.findCurrentRecord(chipId)!);
    const held = w.sim.state(1);
    w.sim.setFaults(1, { refuseZeroize: true });
    const r = await rework(1);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain('BOARD_UNSUPPORTED');
    expect(r.out).not.toContain('queued for revocation');
    // The board kept its identity (read back after the refusal): the run says so, no revocation is queued.
    expect(held.certSha256).not.toBeNull();
    expect(w.sim.state(1)).toMatchObject({ locked: true, hasKey: true, certSha256: held.certSha256 });
    const run = withDb((db) => db.store.listAudit(1, 100_000)).filter(
      (e) => e.type === 'step.identify' && e.payload['kept'] === true,
    );
    expect(run).toHaveLength(1);
    expect(scrapEvents(chipId)).toEqual([]);
    expect(withDb((db) => db.store.findCurrentRecord(chipId))?.recordId).toBe(old.recordId);
    await assertIssuanceInvariant({ dbFile });
  }, 120_000);
});

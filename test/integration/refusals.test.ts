/**
 * Refusals and scan-in through the real path: the `station` CLI (in-process `main`), a development station
 * (SoftHSM2, SQLite), the simulator on ptys. A board refused at identify (a scanned barcode that is not the board on
 * the port, an unknown profile, a work order without quota, a scan-in work order without a scan) writes no run and
 * nothing to the board, and is recorded: `station report log` lists it, `station report yield` counts it,
 * `station verify-log` verifies it against its audit entry. A board left on a refusing port adds one row however
 * often it is refused. `station watch` refuses a scan-in work order (it cannot pair scans with ports).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionArgs, runStationCli } from '../../testkit/station-cli.js';
import { updateStationConfig } from '../../station/config.js';
import { useWorkOrders } from '../../testkit/work-orders.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';

const OP_PIN = '480213';
const WO = 'WO-DEMO-1';
const WO_SCAN = 'WO-SCAN-1';
let w: World;
/** The report's CSV lines as cells (no cell of these reports holds a comma or a quote; the count line is not CSV). */
const parseCsv = (text: string): string[][] =>
  text
    .trim()
    .split('\n')
    .filter((l) => l.includes(','))
    .map((l) => l.split(','));

const cli = (args: string[]) => runStationCli(args, { LINE_STATION_PIN: OP_PIN });
const provision = (i: number, wo: string, ...more: string[]) =>
  cli([...provisionArgs(w.dataDir, w.sim.ports[i]!, wo), ...more]);
const chip = (i: number) => w.sim.state(i).chipId;
const serial = (i: number) => w.sim.state(i).serialNumber;
/** Nothing of a run for board i: no run, no certificate, no record; the board holds no key. */
function noRun(i: number) {
  expect(w.engine.store.findActiveRun(chip(i))).toBeNull();
  expect(w.engine.store.listIssuedCertificates(chip(i))).toHaveLength(0);
  expect(w.engine.store.findCurrentRecord(chip(i))).toBeNull();
  const runs = w.engine.db.queries.queryLog({ text: chip(i) }, { limit: 50 });
  expect(runs.ok && runs.value.items.filter((r) => r.outcome !== 'refused')).toEqual([]);
  expect(w.sim.state(i).hasKey).toBe(false);
}
const refusalsOf = (i: number) => {
  const r = w.engine.db.queries.queryLog({ text: chip(i), outcome: 'refused' }, { limit: 50 });
  if (!r.ok) throw new Error(r.error.message);
  return r.value.items;
};

beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE' }, // 0: scan-in mismatch, then the right scan
      { model: 'LS-SIM-SE', faults: { identity: { model: 'LS-ROGUE-9' } } }, // 1: no profile matches
      { model: 'LS-SIM-BASIC' }, // 2: scan-in work order
      { model: 'LS-SIM-SE' }, // 3: no quota
    ],
  });
  await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: OP_PIN }]);
  // The repository's demo work order and one that requires scan-in, in a work-order dir of this station.
  useWorkOrders(w.dataDir, join(w.dir, 'work-orders'), [{ id: WO_SCAN, requireScanIn: true }]);
  await w.reopen();
}, 120_000);

afterAll(async () => {
  await w?.teardown();
});

describe('boards refused at identify are recorded; scan-in is checked against identify', () => {
  it('a scanned barcode that is not the board on the port: FAIL before anything is written, recorded; the right one passes', async () => {
    const wrong = await provision(0, WO, '--expect-serial', 'SN-NOT-THIS-ONE');
    expect(wrong.code).toBe(1);
    expect(wrong.text).toContain('FLOW_SCAN_MISMATCH');
    expect(wrong.text).toContain(serial(0));
    noRun(0);
    expect(refusalsOf(0)).toMatchObject([{ errorCode: 'FLOW_SCAN_MISMATCH', serialNumber: serial(0), attempts: 1 }]);
    const right = await provision(0, WO, '--expect-serial', serial(0));
    expect(right.code).toBe(0);
    expect(right.text).toContain('PASS');
    expect(w.engine.store.findCurrentRecord(chip(0))).not.toBeNull();
    // A malformed scan is a usage error before anything happens.
    expect((await provision(0, WO, '--expect-serial', 'two words')).code).toBe(2);
  });

  it('an unknown profile is recorded under the identity the board claimed; repeats on the port add no row', async () => {
    const r = await provision(1, WO);
    expect(r.code).toBe(1);
    expect(r.text).toContain('FLOW_PROFILE_UNKNOWN');
    noRun(1);
    const entriesBefore = w.engine.store.listAudit(1, 100_000).length;
    // Left on the port and refused again and again (as a loop of watch attempts would): one row, counted.
    for (let k = 0; k < 12; k++) {
      const again = await w.engine.provision({ port: w.sim.ports[1]!, workOrder: WO, operator: 'op-1' });
      expect(again.ok ? 'ok' : again.error.code).toBe('FLOW_PROFILE_UNKNOWN');
    }
    expect(w.engine.store.listAudit(1, 100_000).length).toBe(entriesBefore);
    expect(refusalsOf(1)).toMatchObject([{ errorCode: 'FLOW_PROFILE_UNKNOWN', attempts: 13, step: 'identify' }]);
  });

  it('a scan-in work order: without a scan FLOW_SCAN_REQUIRED (recorded), with it PASS; watch refuses it', async () => {
    const none = await provision(2, WO_SCAN);
    expect(none.code).toBe(1);
    expect(none.text).toContain('FLOW_SCAN_REQUIRED');
    noRun(2);
    expect(refusalsOf(2)).toMatchObject([{ errorCode: 'FLOW_SCAN_REQUIRED', workOrder: WO_SCAN }]);
    const watch = await cli(['watch', '--data-dir', w.dataDir, '--work-order', WO_SCAN, '--operator', 'op-1']);
    expect(watch.code).toBe(2);
    expect(watch.text).toContain('requires scan-in');
    const ok = await provision(2, WO_SCAN, '--expect-serial', serial(2));
    expect(ok.code).toBe(0);
  });

  it('a work order without quota (requireQuota): FLOW_QUOTA_EXHAUSTED, recorded', async () => {
    const u = updateStationConfig(w.dataDir, (raw) => ({
      ...raw,
      lifecycle: { ...((raw['lifecycle'] as object | undefined) ?? {}), requireQuota: true },
    }));
    if (!u.ok) throw new Error(u.error.message);
    await w.reopen();
    const r = await provision(3, WO);
    expect(r.code).toBe(1);
    expect(r.text).toContain('FLOW_QUOTA_EXHAUSTED');
    noRun(3);
    expect(refusalsOf(3)).toMatchObject([{ errorCode: 'FLOW_QUOTA_EXHAUSTED' }]);
  });

  it('station report log lists them, report yield counts them, verify-log verifies them with the audit chain', async () => {
    const log = await cli(['report', 'log', '--data-dir', w.dataDir]);
    expect(log.code).toBe(0);
    const rows = parseCsv(log.text + '\n');
    const head = rows[0]!;
    const col = (name: string) => head.indexOf(name);
    const refused = rows.slice(1).filter((r) => r[col('outcome')] === 'refused');
    expect(refused.map((r) => r[col('errorCode')]).sort()).toEqual([
      'FLOW_PROFILE_UNKNOWN',
      'FLOW_QUOTA_EXHAUSTED',
      'FLOW_SCAN_MISMATCH',
      'FLOW_SCAN_REQUIRED',
    ]);
    expect(refused.find((r) => r[col('errorCode')] === 'FLOW_PROFILE_UNKNOWN')![col('attempts')]).toBe('13');
    const only = await cli(['report', 'log', '--data-dir', w.dataDir, '--outcome', 'refused']);
    expect(parseCsv(only.text), only.text).toHaveLength(5);

    const y = await cli(['report', 'yield', '--data-dir', w.dataDir]);
    expect(y.code).toBe(0);
    const yr = parseCsv(y.text + '\n');
    const all = yr.find((r) => r[0] === '(all)')!;
    const yc = (name: string) => all[yr[0]!.indexOf(name)];
    // Four boards were seen; two passed first time (0 was refused first, 2 and 3 were refused, 1 never passed).
    expect(yc('boards')).toBe('4');
    expect(yc('refused')).toBe('4');
    expect(yc('passedFirstTime')).toBe('0');
    expect(yc('topFailure')).toMatch(/^FLOW_/);

    const v = await cli(['verify-log', '--data-dir', w.dataDir]);
    expect(v.code).toBe(0);
    expect(w.engine.store.verifyAudit()).toMatchObject({ ok: true, refusals: 4 });
  });
});

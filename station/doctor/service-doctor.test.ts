/**
 * The StationApi `doctor` operation on a running station (SoftHSM2 token, simulator boards on socat ptys, SQLite),
 * through the HTTP bridge as the browser UI calls it: a supervisor gets every check (the engine's token session,
 * the ports the service watches), an operator is refused, and the engine's token stays usable after the checks.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCTOR_CHECK_IDS, DoctorReportSchema, type ApiResult, type DoctorReport } from '../../core/api.js';
import { createLogger } from '../../native/logger.js';
import { openStationDb } from '../../native/store/index.js';
import { createWorld, type World } from '../../test/harness.js';
import { startBridge, type Bridge } from '../bridge/bridge.js';
import { hashPin, createStationService, type StationService } from '../service/index.js';

let w: World;
let svc: StationService;
let bridge: Bridge;

async function post(op: string, args: unknown, client: string): Promise<ApiResult<unknown>> {
  const res = await fetch(`http://127.0.0.1:${bridge.port}/api/${op}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${bridge.token}`, 'Content-Type': 'application/json', 'X-Client-Id': client },
    body: JSON.stringify(args),
  });
  return (await res.json()) as ApiResult<unknown>;
}

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-BASIC' }, { model: 'LS-SIM-SE' }] });
  const db = openStationDb(join(w.dataDir, 'station.db'));
  if (!db.ok) throw new Error(db.error.message);
  const now = new Date().toISOString();
  db.value.operators.upsert(
    { operatorId: 'op-1', name: 'Olga', role: 'operator', pinHash: await hashPin('4321'), badgeHash: null },
    now,
  );
  db.value.operators.upsert(
    { operatorId: 'sup-1', name: 'Sam', role: 'supervisor', pinHash: await hashPin('654321'), badgeHash: null },
    now,
  );
  db.value.close();
  svc = createStationService({ engine: w.engine, logger: createLogger({}), extraPorts: w.sim.ports });
  await svc.start();
  bridge = await startBridge({ service: svc, staticDir: join(w.dir, 'www') });
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  await svc?.stop();
  await w?.teardown();
});

describe('StationApi doctor', () => {
  it('an operator is refused (supervisor only)', async () => {
    expect((await post('signIn', { operatorId: 'op-1', pin: '4321' }, 'op')).ok).toBe(true);
    const r = await post('doctor', {}, 'op');
    expect(r.ok ? null : r.error.code).toBe('AUTH_FORBIDDEN');
  });

  it('a supervisor gets every check over the running engine; its token session stays open', async () => {
    expect((await post('signIn', { operatorId: 'sup-1', pin: '654321' }, 'sup')).ok).toBe(true);
    const r = await post('doctor', {}, 'sup');
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
    const report: DoctorReport = DoctorReportSchema.parse(r.value);
    expect(report.checks.map((c) => c.id)).toEqual([...DOCTOR_CHECK_IDS]);
    const status = Object.fromEntries(report.checks.map((c) => [c.id, c.status]));
    expect(status).toMatchObject({
      config: 'pass',
      permissions: 'pass',
      'hsm-module': 'pass',
      'hsm-token': 'pass',
      'hsm-login': 'pass',
      'hsm-keys': 'pass',
      'hsm-mechanisms': 'pass',
      certificates: 'pass',
      'serial-ports': 'pass',
      'sync-backlog': 'pass',
    });
    // The ports the service watches (the simulator's ptys) were opened for reading and writing.
    const ports = report.checks.find((c) => c.id === 'serial-ports')!.details?.['ports'] as string[];
    expect([...ports].sort()).toEqual([...w.sim.ports].sort());
    const hsm = await post('getHsm', {}, 'sup');
    expect(hsm.ok && (hsm.value as { loggedIn: boolean }).loggedIn).toBe(true);
  }, 60_000);
});

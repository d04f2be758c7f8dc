/**
 * A vendor module with no token profile (here SoftHSM2 behind another file name, as a vendor's .so would be): the
 * station asks for the PKCS#11 3.0 RFC 5649 wrap (CKM_AES_KEY_WRAP_KWP), the token does not list it, so the engine
 * refuses the injected-key board profile at start-up and a work order naming it before any board is touched.
 */
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorld, type World } from '../harness.js';

let w: World;

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-BASIC' }] });
  const cfgFile = join(w.dataDir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { hsm: { module: string } };
  const vendor = join(w.dir, 'libvendor-p11.so');
  symlinkSync(cfg.hsm.module, vendor);
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, hsm: { ...cfg.hsm, module: vendor } }, null, 2));
  await w.reopen();
}, 60_000);
afterAll(async () => {
  await w?.teardown();
});

it('refuses the injected-key profile and the work order naming it, with what the token lacks', async () => {
  // every shipped injected-key profile (ls-sim-basic, esp32-s3-devkitc), none of the on-board ones
  expect(w.engine.refusedProfiles.map((u) => [u.profileId, u.requirement]).sort()).toEqual([
    ['esp32-s3-devkitc', 'key-injection'],
    ['ls-sim-basic', 'key-injection'],
  ]);
  const message =
    'board profile ls-sim-basic refused: token SoftHSM v2 "LS Station" has no CKM_AES_KEY_WRAP_KWP: profiles with keyMode injected cannot run on it';
  expect(w.logText()).toContain(JSON.stringify(message)); // the log line (JSON)
  const wo = w.engine.workOrder('WO-DEMO-1');
  expect(wo.ok ? null : [wo.error.code, wo.error.message]).toEqual(['HSM_TOKEN_LACKS_MECHANISM', message]);
  const before = w.sim.state(0);
  const r = await w.engine.provision({ port: w.sim.ports[0]!, workOrder: 'WO-DEMO-1', operator: 'op-7' });
  expect(r.ok ? null : r.error.code).toBe('HSM_TOKEN_LACKS_MECHANISM');
  // the board was not touched: no key, no certificate, not locked; nothing issued or recorded
  expect(w.sim.state(0)).toEqual(before);
  expect(w.engine.store.listRecords({})).toEqual([]);
});

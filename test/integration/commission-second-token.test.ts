/**
 * "Done means" of issue 15 on the second PKCS#11 implementation, NSS softoken (the SoftHSM2 variant and the fault
 * tests: commission.test.ts): an NSS key database whose user PIN was set through PKCS#11 (testkit/nss-token.ts),
 * `station commission` as a process against a real `registry serve` process (enrolment code from the environment,
 * PIN from stdin, the token profile and key database directory on the command line), then an on-board-key and an
 * injected-key board provisioned through the simulator's ptys, their certificates checked by openssl against the HQ
 * root with the HQ CRL and the station CRL, and after `registry revoke-station` a certificate the offline station
 * makes afterwards rejected by openssl (its station CA is on the HQ CRL).
 */
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../native/logger.js';
import type { Engine } from '../../station/engine.js';
import type { KindToken } from '../../testkit/tokens.js';
import type { SimulatorHandle } from '../sim/simulator.js';
import {
  commissionArgs,
  openStation,
  opensslCheckDevice,
  registryCli,
  stationCli,
  stationEnv,
  createCommissionWorld,
  provisionBoard,
  type CommissionWorld,
  type Hq,
} from './commission-world.js';

const PIN = 'nss-PIN-9917';
const S = 'line-nss-station';

let world: CommissionWorld;
let work: string;
let hq: Hq;
let tok: KindToken;
let sim: SimulatorHandle;
let engine: Engine | null = null;
const D = () => join(work, 'station');

beforeAll(async () => {
  world = await createCommissionWorld({
    kind: 'nss-softoken',
    tokenLabel: 'LS Station NSS',
    pin: PIN,
    registryId: 'hq-nss-test',
  });
  ({ work, hq, tok, sim } = world);
}, 120_000);

afterAll(async () => {
  world.engine = engine;
  await world?.teardown();
});

it('commissions online on the NSS token; says the token does not enforce key protection', () => {
  const r = stationCli(
    [
      ...commissionArgs({ dataDir: D(), stationId: S, tok, attestationRoot: sim.vendorRootPath }),
      '--registry',
      hq.url,
      '--registry-cert',
      hq.registryPem,
    ],
    stationEnv(tok, { LINE_STATION_ENROLMENT_CODE: hq.code(S) }),
    `${PIN}\n`,
  );
  expect(r.status, r.out).toBe(0);
  expect(r.out).toMatch(new RegExp(`station ${S} commissioned`));
  expect(r.out).toMatch(/token profile nss-softoken does not enforce key protection: for development and tests only/);
  // NSS softoken has RFC 5649 wrap (CKM_AES_KEY_WRAP_KWP): no board profile is refused on it
  expect(r.out).not.toMatch(/HSM_TOKEN_LACKS_MECHANISM/);
  expect(existsSync(join(D(), 'commission-state.json'))).toBe(false);
  const cfg = JSON.parse(readFileSync(join(D(), 'config.json'), 'utf8')) as Record<string, unknown>;
  expect(cfg['hsm']).toMatchObject({
    module: tok.module,
    tokenLabel: 'LS Station NSS',
    profile: 'nss-softoken',
    tokenDir: join(tok.dir, 'nssdb'),
    pin: { env: 'LINE_STATION_HSM_PIN' },
  });
  expect(readFileSync(join(D(), 'config.json')).includes(Buffer.from(PIN))).toBe(false);
}, 90_000);

it('provisions an on-board-key and an injected-key board; openssl accepts them; after revoke-station it rejects a new one', async () => {
  process.env['LINE_STATION_HSM_PIN'] = PIN;
  engine = await openStation(D(), createLogger({ file: join(work, 'engine.log'), level: 'debug' }));
  expect(engine.refusedProfiles).toEqual([]);
  const seen = new Set<string>();
  const provision = (i: number) => provisionBoard(engine!, sim.ports[i]!, seen);
  const modes: string[] = [];
  for (const i of [0, 1]) {
    const rec = await provision(i);
    modes.push(rec.keyMode);
    const v = await opensslCheckDevice({
      work,
      hq,
      stationId: S,
      dataDir: D(),
      devicePem: rec.pem,
      name: `n${i}`,
    });
    expect(v.stationCa.out).toMatch(/station-ca.pem: OK/);
    expect(v.device.out).toMatch(/dev.pem: OK/);
    expect(v.all.status, v.all.out).toBe(0);
  }
  expect(modes.sort()).toEqual(['injected', 'onboard']);
  const rv = registryCli(hq.dir, 'revoke-station', S, '--reason', 'keyCompromise');
  expect(rv.status, rv.out).toBe(0);
  const after = await provision(2);
  const v = await opensslCheckDevice({
    work,
    hq,
    stationId: S,
    dataDir: D(),
    devicePem: after.pem,
    name: 'after',
  });
  expect(v.stationCa.status).not.toBe(0);
  expect(v.stationCa.out).toMatch(/certificate revoked/);
  expect(v.all.status).not.toBe(0);
  expect(v.all.out).toMatch(/certificate revoked/);
}, 180_000);

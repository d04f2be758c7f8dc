/**
 * Station side of the identity lifecycle with real parts: a development station (SoftHSM2, simulator ptys,
 * SQLite) and a real registry (HTTP on 127.0.0.1, a SoftHSM2 registry token for its delegated revocation signer).
 * The signer certified through `station enroll --revocation-signer`; the signed policy pulled, verified and applied (revoked operator,
 * blocked serial, firmware override; tampered and older policies refused); quotas (reserve / commit / release,
 * FLOW_QUOTA_EXHAUSTED offline); rework revocation synced and visible in the registry CRL; scrap queued as a
 * signed event; a decommissioned serial refused after the policy sync.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from '../../core/bytes.js';
import { verifyJws } from '../../core/pki/jws.js';
import { fromPemChain, toPem } from '../../core/pki/pem.js';
import { systemClock } from '../../core/ports.js';
import { openHsm, type HsmAdmin } from '../../native/hsm/index.js';
import { type RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { call } from '../../testkit/registry/harness.js';
import { main } from '../../station/cli/program.js';
import { createWorld, type World } from '../harness.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import { assertIssuanceInvariant } from '../../testkit/issuance-invariant.js';

const ADMIN = 'admin-token-lifecycle-0123456789';
const WO = 'WO-DEMO-1';
let w: World;
let reg: RunningRegistry;
let registryHsm: HsmAdmin;
let regCertFile: string;
let closed = false;

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w?.logText().slice(-4000)}`);
  return r.value;
};
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);
const provision = (i: number, o: { operator?: string; reprovision?: boolean } = {}) =>
  w.engine.provision({
    port: w.sim.ports[i]!,
    workOrder: WO,
    operator: o.operator ?? 'op-1',
    ...(o.reprovision ? { reprovision: true } : {}),
  });
const admin = (method: string, path: string, body?: unknown) =>
  call(reg.url, method, path, { bearer: ADMIN, ...(body !== undefined ? { body } : {}) });
const cli = async (args: string[]) => {
  const out: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, text: out.join('\n') };
};

beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE' },
    ],
  });
  // The registry token must live in the SoftHSM2 configuration the module was loaded with (one per process, and
  // tokens created later are not seen): the world's separate "LS Offline Root" token stands in for it.
  const cfg = w.engine.config;
  const pin = readFileSync(join(w.dataDir, 'secrets', 'root-user.pin'), 'utf8').trim();
  registryHsm = must(await openHsm({ module: cfg.config.hsm.module, tokenLabel: 'LS Offline Root', pin }));
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'registry-lc',
    adminToken: ADMIN,
    lifecycle: { hsm: registryHsm, crlIntervalS: 600 },
  });
  regCertFile = join(w.dir, 'registry.pem');
  writeFileSync(regCertFile, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  must(
    await enrollStation(reg.context, {
      stationId: w.engine.station.id,
      chainPem: readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8'),
    }),
  );
}, 120_000);

afterAll(async () => {
  if (!closed) await reg?.close();
  await registryHsm?.close();
  await w?.teardown();
});

function crlText(): string {
  const der = join(w.dir, 'crl.der');
  return spawnSync('openssl', ['crl', '-in', der, '-inform', 'DER', '-noout', '-text'], { encoding: 'utf8' }).stdout;
}

describe('station identity lifecycle', () => {
  let policyV1 = '';
  const serial = (i: number) => w.sim.state(i).serialNumber;

  it('certifies the registry revocation signer through station enroll --revocation-signer (then a CRL exists)', async () => {
    const r = await cli([
      'enroll',
      '--data-dir',
      w.dataDir,
      '--registry',
      reg.url,
      '--registry-cert',
      regCertFile,
      '--revocation-signer',
    ]);
    expect(r.text).toContain('revocation signer certified for registry registry-lc');
    expect(r.code).toBe(0);
    await w.reopen();
    const crl = await fetch(`${reg.url}/v1/crl/${w.engine.station.id}.crl`);
    expect(crl.status).toBe(200);
    const audit = w.engine.store.listAudit().map((a) => a.type);
    expect(audit).toEqual(expect.arrayContaining(['revocation-signer.issued', 'revocation-signer.installed']));
  });

  it('pulls, verifies and applies the policy; tampered and older policies are refused', async () => {
    must(await provision(0));
    must(await w.engine.sync!.syncOnce());
    const first = must(await w.engine.lifecycle.pull());
    expect(first.policy.outcome).toBe('stored');
    policyV1 = w.engine.lifecycle.db.document('policy')!.jws;
    const v1 = first.policy.version;

    expect((await admin('POST', '/v1/admin/operators/op-bad/revoke', { reason: 'left the company' })).status).toBe(200);
    const block = await admin('POST', '/v1/lifecycle/blocks', { kind: 'serial', value: serial(1), reason: 'stolen' });
    expect(block.status).toBe(200);
    const second = must(await w.engine.lifecycle.pull());
    expect(second.policy.version).toBeGreaterThan(v1);
    expect(w.engine.lifecycle.status().policyVersion).toBe(second.policy.version);

    // Blocked serial refused at identify; revoked operator refused before anything touches a board.
    expect(codeOf(await provision(1))).toBe('FLOW_BLOCKED');
    expect(codeOf(await provision(2, { operator: 'op-bad' }))).toBe('AUTH_REVOKED');
    expect(w.engine.store.findActiveRun(w.sim.state(1).chipId)).toBeNull();

    // Tampered payload: refused, version in force unchanged.
    const jws = w.engine.lifecycle.db.document('policy')!.jws;
    const [h, p, s] = jws.split('.') as [string, string, string];
    const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(p))) as { blocked: { serials: string[] } };
    payload.blocked.serials = [];
    const forged = `${h}.${toBase64Url(new TextEncoder().encode(JSON.stringify(payload)))}.${s}`;
    expect(codeOf(await w.engine.lifecycle.applyPolicy(forged))).toBe('INPUT_INVALID');
    // An older (validly signed) policy is ignored: never rolled back.
    expect(must(await w.engine.lifecycle.applyPolicy(policyV1)).outcome).toBe('older');
    expect(w.engine.lifecycle.status().policyVersion).toBe(second.policy.version);
    expect(codeOf(await provision(1))).toBe('FLOW_BLOCKED');

    const shown = await cli(['policy', '--data-dir', w.dataDir, '--json']);
    expect(JSON.parse(shown.text.slice(shown.text.indexOf('{'))).policyVersion).toBe(second.policy.version);
  });

  it('quotas: a failed run releases its unit; N boards pass, the next is refused', async () => {
    // Quota 3 for the work order (board 0 already used one).
    const q = await admin('POST', '/v1/admin/quotas', { workOrder: WO, stationId: w.engine.station.id, quantity: 3 });
    expect(q.status).toBe(200);
    // Policy firmware override that no board matches: board 2 fails its baseline (for good) -> unit released.
    const bad = await admin('POST', '/v1/admin/policy', { firmware: { [WO]: ['0'.repeat(64)] } });
    expect(bad.status).toBe(200);
    must(await w.engine.lifecycle.pull());
    expect(w.engine.lifecycle.db.usage(WO)).toMatchObject({ quantity: 3, committed: 1, reserved: 0 });
    expect(codeOf(await provision(2))).toBe('POLICY_VIOLATION');
    expect(w.engine.lifecycle.db.usage(WO)).toMatchObject({ committed: 1, reserved: 0, released: 1, remaining: 2 });

    // The work order file's digests again (policy firmware = the file's allowed digests).
    const fileWo = w.engine.workOrder(WO);
    const digests = Object.values(must(fileWo).baseline.firmware).flat();
    expect((await admin('POST', '/v1/admin/policy', { firmware: { [WO]: digests } })).status).toBe(200);
    must(await w.engine.lifecycle.pull());
    expect(must(await provision(2)).status).toBe('provisioned');
    expect(must(await provision(3)).status).toBe('provisioned');
    expect(w.engine.lifecycle.db.usage(WO)).toMatchObject({ committed: 3, remaining: 0 });

    const r = await provision(4);
    expect(codeOf(r)).toBe('FLOW_QUOTA_EXHAUSTED');
    if (!r.ok) expect(r.error.guidance).toContain("the work order's quota is used up");
    expect(w.engine.store.findActiveRun(w.sim.state(4).chipId)).toBeNull();
  });

  it('rework: the superseded certificate is queued, synced, and revoked in the registry CRL', async () => {
    const old = w.engine.store.findCurrentRecord(w.sim.state(0).chipId)!;
    const r = must(await provision(0, { reprovision: true }));
    expect(r.status).toBe('provisioned');
    const queued = w.engine.lifecycle.db.revocations({ kind: 'superseded' });
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({
      certificateSerial: old.certificateSerial,
      state: 'queued',
      reason: 'superseded',
    });
    must(await w.engine.sync!.syncOnce());
    expect(w.engine.lifecycle.db.revocations({ kind: 'superseded' })[0]!.state).toBe('acknowledged');
    const crl = await fetch(`${reg.url}/v1/crl/${w.engine.station.id}.crl`);
    writeFileSync(join(w.dir, 'crl.der'), Buffer.from(await crl.arrayBuffer()));
    const text = crlText().toUpperCase();
    expect(text).toContain(old.certificateSerial.toUpperCase().replace(/^0+/, ''));
    expect(text).toContain('SUPERSEDED');
  });

  it('scrap: a signed scrap event is synced and revokes at the registry (the unit stays used, marked scrapped)', async () => {
    const st3 = w.sim.state(3);
    const q = must(
      await w.engine.lifecycle.scrap({
        chipId: st3.chipId,
        serialNumber: st3.serialNumber,
        reason: 'cracked housing',
        supervisor: 'sup-1',
        operator: 'op-1',
      }),
    );
    expect(q).not.toBeNull();
    const root = fromPemChain(readFileSync(join(w.dataDir, 'pki', 'root.pem'), 'utf8'));
    const v = must(await verifyJws(q!.jws!, { trustAnchors: must(root), clock: systemClock }));
    expect(JSON.parse(new TextDecoder().decode(v.payload))).toMatchObject({
      schema: 'line-station/scrap/v1',
      serialNumber: st3.serialNumber,
      reason: 'cessationOfOperation',
    });
    expect(w.engine.lifecycle.db.usage(WO)).toMatchObject({ committed: 3, scrapped: 1, remaining: 0 });
    // On sync the registry revokes the scrapped board's certificate (POST /v1/revocations).
    // (with the failed-issuance event of board 2's certificate if its baseline failed after certify, see quotas)
    const failedIssuances = w.engine.lifecycle.db.revocations({ kind: 'failed-issuance', state: 'queued' }).length;
    const sent = must(await w.engine.lifecycle.sendRevocations());
    expect(sent).toMatchObject({ sent: 1 + failedIssuances, unsupported: false });
    expect(w.engine.lifecycle.db.revocations({ kind: 'scrapped' })[0]!.state).toBe('acknowledged');
    // Every issued certificate is in a record or on the registry's CRL (fetched, read with openssl).
    await assertIssuanceInvariant({
      dbFile: join(w.dataDir, 'station.db'),
      registry: { url: reg.url, stationId: w.engine.station.id },
    });
  });

  it('a decommissioned serial cannot be provisioned again after the policy sync', async () => {
    const d = await call(reg.url, 'POST', `/v1/devices/${serial(2)}/decommission`, {
      bearer: ADMIN,
      body: { reason: 'returned' },
    });
    expect(d.status).toBe(200);
    must(await w.engine.lifecycle.pull());
    expect(codeOf(await provision(2, { reprovision: true }))).toBe('FLOW_BLOCKED');
  });

  it('offline: the signed quota in force still refuses the N+1th board', async () => {
    await reg.close();
    closed = true;
    expect(codeOf(await w.engine.lifecycle.pull())).toBe('SYNC_UNREACHABLE');
    expect(codeOf(await provision(4))).toBe('FLOW_QUOTA_EXHAUSTED');
    expect(w.engine.lifecycle.status().quotaVersion).not.toBeNull();
  });
});

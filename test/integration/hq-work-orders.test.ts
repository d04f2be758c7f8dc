/**
 * Work orders from headquarters (docs/lifecycle.md "Work orders from headquarters"), with real parts: a development
 * station (SoftHSM2, simulator ptys, SQLite) enrolled at a real registry on loopback (HTTP, SQLite, its receipt key).
 *
 * - an officer publishes a work order (`POST /v1/admin/work-orders`) and gives the station a quota for it; the
 *   station's own pull (`station policy --pull`) brings it, signed with the quotas; the station provisions a board
 *   for a work order it has no file for, and the manifest's baseline reference is the published document's;
 * - a published work order with the id of a local file takes its place (its firmware digests refuse a board the
 *   local file accepts: POLICY_VIOLATION);
 * - a work order nobody published, or a document that does not validate, is refused by the registry; a quota
 *   document whose work order was altered after signing is refused by the station and the one in force stays.
 */
import 'reflect-metadata';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, toBase64Url, fromBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { toPem } from '../../core/pki/pem.js';
import { baselineSha256, parseWorkOrder } from '../../core/provisioning/work-order.js';
import { jwsHeaderOf, recordManifestJws } from '../../core/provisioning/record-manifest.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import type { RunningRegistry } from '../../registry/http/server.js';
import { enrollStation } from '../../registry/stations/service.js';
import { call } from '../../testkit/registry/harness.js';
import { runStationCli } from '../../testkit/station-cli.js';
import { REPO_ROOT } from '../../station/commission/init.js';
import { readColumn } from '../../testkit/store-fixtures.js';
import { createWorld, type World } from '../harness.js';

const ADMIN = 'admin-token-work-orders-0123456789';
let w: World;
let reg: RunningRegistry;

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w?.logText().slice(-4000)}`);
  return r.value;
};
const cli = (args: string[]) => runStationCli(args);
const localWorkOrder = () =>
  JSON.parse(readFileSync(join(REPO_ROOT, 'resources', 'work-orders', 'WO-DEMO-1.json'), 'utf8')) as Record<
    string,
    unknown
  > & { baseline: { firmware: Record<string, string[]> } };
const admin = (path: string, body: unknown) => call(reg.url, 'POST', path, { bearer: ADMIN, body });
const pull = async () => {
  const r = await cli(['policy', '--data-dir', w.dataDir, '--pull']);
  expect(r.code, r.text).toBe(0);
  return r.text;
};

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }, { model: 'LS-SIM-SE' }] });
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'registry-wo',
    adminToken: ADMIN,
  });
  const regCertFile = join(w.dir, 'registry.pem');
  writeFileSync(regCertFile, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  must(
    await enrollStation(reg.context, {
      stationId: w.engine.station.id,
      chainPem: readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8'),
    }),
  );
  const r = await cli(['enroll', '--data-dir', w.dataDir, '--registry', reg.url, '--registry-cert', regCertFile]);
  expect(r.code, r.text).toBe(0);
  await w.reopen();
}, 120_000);

afterAll(async () => {
  await reg?.close();
  await w?.teardown();
});

describe('work orders from headquarters', () => {
  const published = { ...localWorkOrder(), id: 'WO-HQ-1', product: 'Published at headquarters', quantity: 50 };

  it('the registry refuses a document that is not a valid work order, with the field', async () => {
    const r = await admin('/v1/admin/work-orders', { workOrder: { ...published, quantity: -1 } });
    expect(r.status).toBe(400);
    expect(r.text).toMatch(/BODY_INVALID/);
    expect(r.text).toMatch(/quantity/);
    const anon = await call(reg.url, 'POST', '/v1/admin/work-orders', { body: { workOrder: published } });
    expect(anon.status).toBe(401);
  });

  it('a published work order reaches the station signed with its quotas, and boards are provisioned for it', async () => {
    expect(w.engine.workOrder('WO-HQ-1').ok).toBe(false); // no local file of that id
    const p = await admin('/v1/admin/work-orders', { workOrder: published });
    expect(p.status, p.text).toBe(200);
    expect((p.json as { changed: boolean }).changed).toBe(true);
    const q = await admin('/v1/admin/quotas', { workOrder: 'WO-HQ-1', stationId: w.engine.station.id, quantity: 5 });
    expect(q.status, q.text).toBe(200);
    await pull();
    const wo = must(w.engine.workOrder('WO-HQ-1'));
    expect(wo.product).toBe('Published at headquarters');
    expect(w.engine.listWorkOrders().map((x) => x.id)).toContain('WO-HQ-1');
    const out = must(await w.engine.provision({ port: w.sim.ports[0]!, workOrder: 'WO-HQ-1', operator: 'op-1' }));
    expect(out.status).toBe('provisioned');
    const stored = w.engine.store.findCurrentRecord(w.sim.state(0).chipId)!;
    const rec = JSON.parse(stored.recordJson) as { workOrder: string };
    expect(rec.workOrder).toBe('WO-HQ-1');
    const mjws = recordManifestJws(rec, jwsHeaderOf(stored.jws));
    if (!mjws.ok) throw new Error(mjws.error);
    const manifest = JSON.parse(new TextDecoder().decode(fromBase64Url(mjws.value.split('.')[1]!))) as {
      policyRef: { workOrder: string; sha256: string };
    };
    expect(manifest.policyRef).toEqual({
      workOrder: 'WO-HQ-1',
      sha256: await baselineSha256(must(parseWorkOrder(published, 'published'))),
    });
    // The station audited the signed work order it applied (id and hash of the published document).
    const audit = (
      readColumn(
        join(w.dataDir, 'station.db'),
        "SELECT payload_json FROM audit_log WHERE type = 'quotas.applied' ORDER BY seq",
      ) as string[]
    ).map((j) => JSON.parse(j) as { workOrders?: { id: string; sha256: string }[] });
    expect(audit.at(-1)?.workOrders).toEqual([
      { id: 'WO-HQ-1', sha256: await sha256Hex(canonicalJson(must(parseWorkOrder(published, 'p')))) },
    ]);
  });

  it('a published work order takes the place of the local file with the same id', async () => {
    // Board 1 matches the local WO-DEMO-1; headquarters publishes WO-DEMO-1 allowing other firmware only.
    const hqDemo = localWorkOrder();
    hqDemo.baseline.firmware = Object.fromEntries(
      Object.keys(hqDemo.baseline.firmware).map((slot) => [slot, ['f'.repeat(64)]]),
    );
    expect((await admin('/v1/admin/work-orders', { workOrder: hqDemo })).status).toBe(200);
    expect(
      (await admin('/v1/admin/quotas', { workOrder: 'WO-DEMO-1', stationId: w.engine.station.id, quantity: 5 })).status,
    ).toBe(200);
    await pull();
    expect(must(w.engine.workOrder('WO-DEMO-1')).baseline.firmware).toEqual(hqDemo.baseline.firmware);
    const r = await w.engine.provision({ port: w.sim.ports[1]!, workOrder: 'WO-DEMO-1', operator: 'op-1' });
    expect(r.ok ? r.value.status : r.error.code).toBe('POLICY_VIOLATION');
    expect(w.engine.store.findCurrentRecord(w.sim.state(1).chipId)).toBeNull();
  });

  it('a quota document altered after signing is refused; the work orders in force stay', async () => {
    // Take the station's stored quota JWS (as the registry signed it) and alter the published work order.
    expect(w.engine.lifecycle.status().quotaVersion).not.toBeNull();
    const [jws] = readColumn(
      join(w.dataDir, 'station.db'),
      "SELECT jws FROM lifecycle_documents WHERE kind = 'quotas'",
    ) as [string];
    const [h, p, s] = jws.split('.') as [string, string, string];
    const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(p))) as {
      version: number;
      workOrders: { id: string; product: string }[];
    };
    payload.version += 1; // a newer version, or the station would ignore it as not newer
    payload.workOrders[0]!.product = 'Altered on the way';
    const forged = `${h}.${toBase64Url(utf8(JSON.stringify(payload)))}.${s}`;
    const f = join(w.dir, 'forged-quotas.jws');
    writeFileSync(f, forged);
    const r = await cli(['policy', '--data-dir', w.dataDir, '--quotas-file', f]);
    expect(r.code).not.toBe(0);
    expect(r.text).toMatch(/quotas: .*signature/i);
    expect(must(w.engine.workOrder('WO-HQ-1')).product).toBe('Published at headquarters');
  });
});

/**
 * Revocation reaches the station (docs/lifecycle.md "Revocation reaches the station"), with real parts: a
 * development station (SoftHSM2, simulator ptys, SQLite) whose registry URL is a man-in-the-middle on loopback in
 * front of a real registry (HTTP on 127.0.0.1). The middle passes everything through unless a test tells it to
 * forge: it holds its own key (a fake registry) but never the registry's.
 *
 * - an active station's pull gets the registry's signed "active" answer, bound to its request;
 * - revoked between the status answer and the policy pull: the policy's 403 makes the station ask again, signed;
 * - a fake registry that signs "revoked" with its own key, or answers an unsigned 403 AUTH_STATION_REVOKED (to the
 *   policy, the status and a sync batch), or replays another station's genuine revocation, revokes nothing (the
 *   sync's 403 triggers the signed check);
 * - after `revoke-station` at the registry, the station's own pull (GET /v1/policy answers 403) gets the signed
 *   revocation: a run in flight stops before its certificate, new and resumed runs FLOW_STATION_REVOKED,
 *   `station provision` / `watch` exit 3, `station policy` and the UI status show it, kept across a restart; a fake registry cannot un-revoke it (a replayed genuine "active" answer, a forged one, a forged
 *   policy);
 * - the record the station made between the revocation and learning it is rejected at ingest (STATION_REVOKED)
 *   when headquarters imports its bundle; the one from before is accepted.
 */
import 'reflect-metadata';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { signJws } from '../../core/pki/jws.js';
import { createRootCertificate } from '../../core/pki/ca.js';
import { toPem } from '../../core/pki/pem.js';
import { createTestSigner } from '../../testkit/pki/test-signer.js';
import { systemClock, type BoardClient, type Signer } from '../../core/ports.js';
import { startLifecycleRegistry } from '../../testkit/registry/lifecycle.js';
import {
  requestClaimsOf,
  signRequest,
  STATION_STATUS_SCHEMA,
  STATION_STATUS_TYP,
  type StationStatusPayload,
} from '../../core/hq/protocol.js';
import type { RunningRegistry } from '../../registry/http/server.js';
import { audienceOf } from '../../registry/common/context.js';
import { enrollStation } from '../../registry/stations/service.js';
import { createTestStation, type TestStation } from '../../testkit/registry/fixtures.js';
import { call } from '../../testkit/registry/harness.js';
import { main } from '../../station/cli/program.js';
import { openLifecycle } from '../../station/lifecycle/index.js';
import { POLICY_SCHEMA, POLICY_TYP } from '../../core/hq/policy.js';
import { openStationDb } from '../../native/store/index.js';
import { runRawSql } from '../../testkit/store-fixtures.js';
import { createStationService } from '../../station/service/index.js';
import { quiet } from './sync-fixture.js';
import { createWorld, type World } from '../harness.js';
import { addOperators } from '../operators-fixture.js';

const ADMIN = 'admin-token-revocation-0123456789';
const WO = 'WO-DEMO-1';
let w: World;
let reg: RunningRegistry;
let mitm: Mitm;
let other: TestStation;
let fakeSigner: Signer;
let fakeCert: Uint8Array;

const must = <T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T => {
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}\n${w?.logText().slice(-4000)}`);
  return r.value;
};
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);
const provision = (i: number) => w.engine.provision({ port: w.sim.ports[i]!, workOrder: WO, operator: 'op-1' });
const cli = async (args: string[]) => {
  const out: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, text: out.join('\n') };
};
const waitFor = async (cond: () => boolean, ms = 5000) => {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
};

/** What the middle does with a request: pass it on, or answer itself. */
type Answer = { status: number; body: unknown } | 'pass';
interface Mitm {
  readonly url: string;
  /** Paths seen, in order. */
  readonly seen: string[];
  /** null: pass everything through. */
  forge: ((req: IncomingMessage, path: string) => Promise<Answer>) | null;
  close(): Promise<void>;
}

/** A man-in-the-middle on loopback in front of the registry (it has its own key, not the registry's). */
async function startMitm(upstream: string): Promise<Mitm> {
  const m: Mitm = {
    url: '',
    seen: [],
    forge: null,
    close: () => new Promise((r) => server.close(() => r())),
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const path = req.url ?? '/';
        m.seen.push(`${req.method} ${path}`);
        const a = m.forge ? await m.forge(req, path) : 'pass';
        if (a !== 'pass') {
          res.writeHead(a.status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(a.body));
          return;
        }
        const headers: Record<string, string> = {};
        for (const k of ['authorization', 'content-type'])
          if (typeof req.headers[k] === 'string') headers[k] = req.headers[k];
        const body = Buffer.concat(chunks);
        const up = await fetch(upstream + path, {
          method: req.method ?? 'GET',
          headers,
          ...(body.length ? { body } : {}),
        });
        const buf = Buffer.from(await up.arrayBuffer());
        res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/octet-stream' });
        res.end(buf);
      })().catch((e: unknown) => {
        res.writeHead(502);
        res.end(String(e));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  (m as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return m;
}

/** A station-status answer signed with the FAKE registry's key (same registry id, same CN). */
async function forgedStatus(req: IncomingMessage, over: Partial<StationStatusPayload>) {
  const c = requestClaimsOf(String(req.headers.authorization ?? ''))!;
  const payload: StationStatusPayload = {
    schema: STATION_STATUS_SCHEMA,
    registryId: 'registry-rev',
    stationId: w.engine.station.id,
    status: 'revoked',
    revokedAt: new Date().toISOString(),
    requestNonce: c.nonce,
    requestTs: c.ts,
    issuedAt: new Date().toISOString(),
    ...over,
  };
  const jws = must(
    await signJws({
      signer: fakeSigner,
      payload: utf8(canonicalJson(payload)),
      header: { typ: STATION_STATUS_TYP, kid: 'registry-rev', x5c: [fakeCert] },
    }),
  );
  return { status: 200, body: { jws } };
}

const unsigned403 = { status: 403, body: { error: { code: 'AUTH_STATION_REVOKED', message: 'station revoked' } } };

beforeAll(async () => {
  w = await createWorld({
    boards: [
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE' },
      { model: 'LS-SIM-SE', faults: { disconnectOn: 'keygen', replugAfterMs: 300 } },
      { model: 'LS-SIM-SE' },
    ],
  });
  reg = await startLifecycleRegistry(`sqlite:${join(w.dir, 'registry.db')}`, {
    registryId: 'registry-rev',
    adminToken: ADMIN,
  });
  mitm = await startMitm(reg.url);
  const regCertFile = join(w.dir, 'registry.pem');
  writeFileSync(regCertFile, toPem(reg.context.registryChain[0]!, 'CERTIFICATE'));
  must(
    await enrollStation(reg.context, {
      stationId: w.engine.station.id,
      chainPem: readFileSync(join(w.dataDir, 'pki', 'station-chain.pem'), 'utf8'),
    }),
  );
  // Another station, enrolled and revoked: its genuine revocation answer is replayed to ours below.
  other = await createTestStation('other-station', systemClock, WO);
  must(await enrollStation(reg.context, { stationId: other.id, chainPem: other.chainPem }));
  fakeSigner = await createTestSigner('P-256');
  fakeCert = must(
    await createRootCertificate({
      signer: fakeSigner,
      subject: { commonName: 'Registry registry-rev' },
      validityDays: 30,
      clock: systemClock,
    }),
  );
  const r = await cli(['enroll', '--data-dir', w.dataDir, '--registry', mitm.url, '--registry-cert', regCertFile]);
  expect(r.code, r.text).toBe(0);
  await w.reopen();
}, 120_000);

afterAll(async () => {
  await mitm?.close();
  await reg?.close();
  await w?.teardown();
});

describe('revocation reaches the station', () => {
  let recordBefore = '';
  let ownActiveJws = '';

  it('an active station: the pull gets the registry signed "active", bound to its request', async () => {
    const r = must(await provision(0));
    expect(r.status).toBe('provisioned');
    recordBefore = w.engine.store.findCurrentRecord(w.sim.state(0).chipId)!.recordId;
    must(await w.engine.sync!.syncOnce());
    const from = mitm.seen.length;
    must(await w.engine.lifecycle.pull());
    expect(mitm.seen.slice(from)).toEqual(['GET /v1/station-status', 'GET /v1/policy', 'GET /v1/quotas']);
    // A genuine "active" answer to another request of this station: replayed after the revocation below.
    const own = await stationGet('/v1/station-status');
    expect(own.status, own.text).toBe(200);
    ownActiveJws = (own.json as { jws: string }).jws;
    const st = w.engine.lifecycle.status();
    expect(st).toMatchObject({ stationRevoked: false, stationRevokedBy: null });
    expect(st.registryConfirmedActiveAt).not.toBeNull();
    // Board 2's run is interrupted (disconnect at keygen): resumed after the revocation below.
    expect(codeOf(await provision(2))).toBe('LINK_DISCONNECTED');
    expect(w.engine.store.findActiveRun(w.sim.state(2).chipId)).not.toBeNull();
  });

  it('a fake registry signing "revoked" with its own key revokes nothing', async () => {
    mitm.forge = async (req, path) => (path === '/v1/station-status' ? forgedStatus(req, {}) : 'pass');
    const r = await w.engine.lifecycle.pull();
    expect(codeOf(r)).toBe('INPUT_INVALID');
    if (!r.ok) expect(r.error.message).toContain('registry certificate');
    expect(w.engine.lifecycle.status().stationRevoked).toBe(false);
    expect(w.engine.lifecycle.db.stationRevocation(w.engine.station.id)).toBeNull();
  });

  it('a replayed genuine revocation of another station, or of another request, revokes nothing', async () => {
    expect((await call(reg.url, 'POST', `/v1/admin/stations/${other.id}/revoke`, { bearer: ADMIN })).status).toBe(200);
    const genuine = await call(reg.url, 'GET', '/v1/station-status', { station: other });
    expect(genuine.status, genuine.text).toBe(200);
    const otherJws = (genuine.json as { jws: string }).jws;
    mitm.forge = async (_req, path) =>
      path === '/v1/station-status' ? { status: 200, body: { jws: otherJws } } : 'pass';
    const r = await w.engine.lifecycle.pull();
    expect(codeOf(r)).toBe('INPUT_INVALID');
    if (!r.ok) expect(r.error.message).toContain(`issued for station ${other.id}`);
    expect(w.engine.lifecycle.status().stationRevoked).toBe(false);
  });

  it('revoked between the status answer and the policy pull: the 403 triggers the signed check', async () => {
    // A second station (test signer, its own database), pulling through the same middle.
    const race = await createTestStation('race-station', systemClock, WO);
    must(await enrollStation(reg.context, { stationId: race.id, chainPem: race.chainPem }));
    const dbFile = join(w.dir, 'race.db');
    const sdb = must(openStationDb(dbFile));
    const store = sdb.store;
    const lc = must(
      openLifecycle({
        db: sdb.lifecycle,
        stationId: race.id,
        signer: race.signer,
        chain: race.chain,
        registryUrl: mitm.url,
        registryCertificate: reg.context.registryChain[0]!,
        store,
        logger: quiet,
      }),
    );
    try {
      // The registry revokes the station right after it answered "active", before the policy request.
      mitm.forge = async (_req, path) => {
        if (path === '/v1/policy')
          expect((await call(reg.url, 'POST', `/v1/admin/stations/${race.id}/revoke`, { bearer: ADMIN })).status).toBe(
            200,
          );
        return 'pass';
      };
      const from = mitm.seen.length;
      const r = await lc.pull();
      expect(codeOf(r)).toBe('FLOW_STATION_REVOKED');
      expect(mitm.seen.slice(from)).toEqual(['GET /v1/station-status', 'GET /v1/policy', 'GET /v1/station-status']);
      expect(lc.status()).toMatchObject({ stationRevoked: true, stationRevokedBy: 'station-status' });
    } finally {
      mitm.forge = null;
      lc.close();
      sdb.close();
    }
  });

  it('an unsigned 403 AUTH_STATION_REVOKED (policy, status, sync batch) revokes nothing; the sync 403 triggers the signed check', async () => {
    expect(must(await provision(3)).status).toBe('provisioned');
    // The genuine status answers "active", the policy gets an unsigned 403: asked again, still active.
    mitm.forge = async (_req, path) => (path === '/v1/policy' ? unsigned403 : 'pass');
    const from = mitm.seen.length;
    expect(codeOf(await w.engine.lifecycle.pull())).toBe('SYNC_REJECTED');
    expect(mitm.seen.slice(from)).toEqual(['GET /v1/station-status', 'GET /v1/policy', 'GET /v1/station-status']);
    expect(w.engine.lifecycle.status().stationRevoked).toBe(false);
    mitm.forge = async (_req, path) => (path === '/v1/health' ? 'pass' : unsigned403);
    const before = mitm.seen.length;
    expect(codeOf(await w.engine.lifecycle.pull())).toBe('SYNC_REJECTED');
    const sync = await w.engine.sync!.syncOnce();
    expect(!sync.ok && sync.error.message).toContain('AUTH_STATION_REVOKED');
    // The batch's 403 made the station ask for the signed status (and the unsigned answer changed nothing).
    await waitFor(() => mitm.seen.slice(before).filter((s) => s === 'GET /v1/station-status').length >= 2);
    expect(mitm.seen.slice(before)).toContain('POST /v1/batches');
    expect(w.engine.lifecycle.status().stationRevoked).toBe(false);
    expect(w.engine.lifecycle.checkStation().ok).toBe(true);
    mitm.forge = null;
    must(await w.engine.sync!.syncOnce());
    expect(w.engine.sync!.status().pending).toBe(0);
  });

  it('after revoke-station, the pull (policy 403) gets the signed revocation: new and resumed runs refused, CLI exit 3', async () => {
    const rv = await call(reg.url, 'POST', `/v1/admin/stations/${w.engine.station.id}/revoke`, { bearer: ADMIN });
    expect(rv.status, rv.text).toBe(200);
    const revokedAt = (rv.json as { station: { revokedAt: string } }).station.revokedAt;
    // The registry refuses the revoked station's policy pull (unsigned 403): that alone proves nothing.
    const pol = await stationGet('/v1/policy');
    expect(pol.status).toBe(403);

    // Between the revocation and the pull the station does not know yet: board 1 is provisioned (its record is
    // made after the revocation time, and headquarters rejects it at ingest below).
    expect(must(await provision(1)).status).toBe('provisioned');

    // The pull lands while a run is in flight (board 3, reworked): it stops before its certificate (trust-attest checks before key and before certify).
    const chip3 = w.sim.state(3).chipId;
    const issued3 = w.engine.store.listIssuedCertificates(chip3).length;
    let pulled: Awaited<ReturnType<typeof w.engine.lifecycle.pull>> | null = null;
    const inFlight = await w.engine.provision({
      port: w.sim.ports[3]!,
      workOrder: WO,
      operator: 'op-1',
      reprovision: true,
      instrumentBoard: (b) =>
        new Proxy(b, {
          get(t, k, recv) {
            if (k === 'attest')
              return async (...a: Parameters<BoardClient['attest']>) => {
                pulled = await w.engine.lifecycle.pull();
                return t.attest(...a);
              };
            const v = Reflect.get(t, k, recv) as unknown;
            return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(t) : v;
          },
        }),
    });
    expect(codeOf(inFlight)).toBe('FLOW_STATION_REVOKED');
    expect(w.engine.store.listIssuedCertificates(chip3)).toHaveLength(issued3);
    expect(w.engine.store.findActiveRun(chip3)).toBeNull(); // failed for good

    const r = pulled!;
    expect(codeOf(r), r.ok ? '' : r.error.message).toBe('FLOW_STATION_REVOKED');
    const st = w.engine.lifecycle.status();
    expect(st).toMatchObject({ stationRevoked: true, stationRevokedAt: revokedAt, stationRevokedBy: 'station-status' });
    expect(w.engine.store.listAudit().some((a) => a.type === 'station.revoked')).toBe(true);

    // A new run: refused before any board I/O.
    w.sim.setFaults(2, {});
    const n = await w.engine.provision({ port: w.sim.ports[3]!, workOrder: WO, operator: 'op-1', reprovision: true });
    expect(codeOf(n)).toBe('FLOW_STATION_REVOKED');
    expect(w.engine.store.listIssuedCertificates(chip3)).toHaveLength(issued3);
    // The interrupted run of board 2 is not resumed: nothing issued.
    await waitFor(() => existsSync(w.sim.ports[2]!));
    const chip2 = w.sim.state(2).chipId;
    const res = await provision(2);
    expect(codeOf(res)).toBe('FLOW_STATION_REVOKED');
    if (!res.ok) expect(res.error.message).toContain(revokedAt);
    expect(w.engine.store.listIssuedCertificates(chip2)).toHaveLength(0);
    expect(w.engine.store.findActiveRun(chip2)).not.toBeNull();

    // The command line signs a registered operator in first (PIN from the environment), then meets the revocation.
    await addOperators(w.dataDir, [{ id: 'op-1', role: 'operator', pin: '480213' }]);
    process.env['LINE_STATION_PIN'] = '480213';
    try {
      const as = ['--data-dir', w.dataDir, '--work-order', WO, '--operator', 'op-1'];
      const prov = await cli(['provision', ...as, '--port', w.sim.ports[2]!]);
      expect(prov.code, prov.text).toBe(3);
      expect(prov.text).toContain('FLOW_STATION_REVOKED');
      const watch = await cli(['watch', ...as, '--exit-when-done']);
      expect(watch.code, watch.text).toBe(3);
    } finally {
      delete process.env['LINE_STATION_PIN'];
    }
    const shown = await cli(['policy', '--data-dir', w.dataDir]);
    expect(shown.text).toContain(`REVOKED: this station has been revoked by headquarters at ${revokedAt}`);

    // The UI's status: the revocation time for the red banner (no policy version: the registry's signed answer).
    const svc = createStationService({ engine: w.engine, logger: quiet });
    const status = await svc.invoke('c1', 'getStatus', {});
    expect(status).toMatchObject({ ok: true, value: { stationRevoked: { revokedAt, policyVersion: null } } });
    await svc.stop();
  });

  it('the revocation is kept across a restart, and a fake registry cannot un-revoke it', async () => {
    await w.reopen();
    expect(w.engine.lifecycle.status()).toMatchObject({ stationRevoked: true, stationRevokedBy: 'station-status' });
    expect(codeOf(await provision(2))).toBe('FLOW_STATION_REVOKED');

    // "Active" forged with the right nonce; our own genuine "active" from before, replayed (another request).
    for (const forge of [
      async (req: IncomingMessage) => forgedStatus(req, { status: 'active', revokedAt: null }),
      async () => ({ status: 200, body: { jws: ownActiveJws } }),
    ]) {
      mitm.forge = async (req, path) => {
        if (path === '/v1/station-status') return forge(req);
        if (path === '/v1/policy') return { status: 200, body: { version: 999, jws: await forgedPolicy() } };
        return 'pass';
      };
      expect(codeOf(await w.engine.lifecycle.pull())).toBe('INPUT_INVALID');
      const applied = await w.engine.lifecycle.applyPolicy(await forgedPolicy());
      expect(codeOf(applied)).toBe('INPUT_INVALID');
      expect(w.engine.lifecycle.status()).toMatchObject({ stationRevoked: true, stationRevokedBy: 'station-status' });
      expect(codeOf(await provision(2))).toBe('FLOW_STATION_REVOKED');
    }
    mitm.forge = null;
    // The row itself is terminal: the database refuses to change or drop it.
    const file = join(w.dataDir, 'station.db');
    expect(() => runRawSql(file, 'DELETE FROM station_revocation')).toThrow(/terminal/);
    expect(() => runRawSql(file, "UPDATE station_revocation SET revoked_at = '2999-01-01T00:00:00.000Z'")).toThrow(
      /terminal/,
    );
  });

  it('the record made after the revocation time is rejected at ingest; the one from before is accepted', async () => {
    const out = join(w.dir, 'bundle.json');
    const exp = await cli(['export', '--data-dir', w.dataDir, '--out', out]);
    expect(exp.code, exp.text).toBe(0);
    await w.reopen();
    const bundle = readFileSync(out, 'utf8');
    // Without the admin's deliberate flag a revoked station's bundle is refused as a whole.
    const refused = await call(reg.url, 'POST', '/v1/bundles', { bearer: ADMIN, body: { bundle } });
    expect(refused.status).toBe(403);
    const imp = await call(reg.url, 'POST', '/v1/bundles', {
      bearer: ADMIN,
      body: { bundle, allowRevokedStation: true },
    });
    expect(imp.status, imp.text).toBe(200);
    const receipt = imp.json as {
      results: { recordId: string; status: string; reason?: string }[];
    };
    const after = w.engine.store.findCurrentRecord(w.sim.state(1).chipId)!.recordId;
    const byId = new Map(receipt.results.map((x) => [x.recordId, x]));
    expect(byId.get(after)).toMatchObject({ status: 'rejected', reason: 'STATION_REVOKED' });
    // The record from before the revocation was already synced (board 0): accepted then, not in this bundle.
    expect(byId.has(recordBefore)).toBe(false);
  });
});

/** A GET signed (LS-Sig) by the station's own HSM key, straight to the registry. */
async function stationGet(path: string) {
  const auth = must(
    await signRequest(
      w.engine.station.signer,
      w.engine.station.id,
      'GET',
      path,
      '',
      systemClock,
      audienceOf(reg.context),
    ),
  );
  return call(reg.url, 'GET', path, { authorization: auth });
}

/** A policy that lists nothing, version 999, signed with the FAKE registry key. */
async function forgedPolicy(): Promise<string> {
  const payload = {
    schema: POLICY_SCHEMA,
    registryId: 'registry-rev',
    version: 999,
    issuedAt: new Date().toISOString(),
    revokedStations: [],
    revokedOperators: [],
    blocked: { serials: [], chipIds: [] },
    firmware: {},
    profileOverrides: {},
  };
  return must(
    await signJws({
      signer: fakeSigner,
      payload: utf8(canonicalJson(payload)),
      header: { typ: POLICY_TYP, kid: 'registry-rev', x5c: [fakeCert] },
    }),
  );
}

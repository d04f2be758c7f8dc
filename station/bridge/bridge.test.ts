/**
 * The HTTP bridge over real HTTP on 127.0.0.1 with the real service (simulated board, SoftHSM2, SQLite):
 * token and Host/Origin checks, security headers, SSE slot events, static files and path traversal.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StationEvent } from '../../core/api.js';
import { openStationDb } from '../../native/store/index.js';
import { createWorld, type World } from '../../test/harness.js';
import { CSP, startBridge, type Bridge } from './bridge.js';
import { createLogger } from '../../native/logger.js';
import { createStationService, hashPin, type StationService } from '../service/index.js';

let w: World;
let svc: StationService;
let bridge: Bridge;
let base: string;
let staticDir: string;

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Raw HTTP (no URL normalisation, any Host header). */
function raw(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: bridge.port, method, path, headers: { Host: `127.0.0.1:${bridge.port}`, ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const auth = () => ({
  Authorization: `Bearer ${bridge.token}`,
  'Content-Type': 'application/json',
  'X-Client-Id': 'tab-1',
});
const post = (op: string, args: unknown, h: Record<string, string> = auth()) =>
  raw('POST', `/api/${op}`, h, JSON.stringify(args));

beforeAll(async () => {
  w = await createWorld({ boards: [{ model: 'LS-SIM-SE' }] });
  const db = openStationDb(join(w.dataDir, 'station.db'));
  if (!db.ok) throw new Error(db.error.message);
  db.value.operators.upsert(
    { operatorId: 'op-1', name: 'Olga', role: 'operator', pinHash: await hashPin('4321'), badgeHash: null },
    new Date().toISOString(),
  );
  db.value.close();
  svc = createStationService({ engine: w.engine, logger: createLogger({}), extraPorts: w.sim.ports });
  await svc.start();
  staticDir = join(w.dir, 'www');
  mkdirSync(join(staticDir, 'assets'), { recursive: true });
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Line Station</title>');
  writeFileSync(join(staticDir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(w.dir, 'secret.txt'), 'TOP-SECRET');
  bridge = await startBridge({ service: svc, staticDir, heartbeatMs: 200 });
  base = `http://127.0.0.1:${bridge.port}`;
}, 120_000);

afterAll(async () => {
  await bridge?.close();
  await svc?.stop();
  await w?.teardown();
});

describe('bridge', () => {
  it('gives the URL with the token in the fragment and refuses non-loopback hosts', async () => {
    expect(bridge.url).toBe(`${base}/#token=${bridge.token}`);
    expect(Buffer.from(bridge.token, 'base64url')).toHaveLength(32);
    await expect(startBridge({ service: svc, host: '0.0.0.0' })).rejects.toThrow(/loopback/);
  });

  it('401 without or with a wrong token; 403 for a foreign Host or Origin', async () => {
    expect((await post('getStatus', {}, { 'Content-Type': 'application/json' })).status).toBe(401);
    expect((await post('getStatus', {}, { ...auth(), Authorization: `Bearer ${'x'.repeat(43)}` })).status).toBe(401);
    expect((await post('getStatus', {}, { ...auth(), Host: 'evil.example:80' })).status).toBe(403);
    expect((await post('getStatus', {}, { ...auth(), Host: `attacker.test:${bridge.port}` })).status).toBe(403);
    expect((await post('getStatus', {}, { ...auth(), Origin: 'http://evil.example' })).status).toBe(403);
    const ok = await post('getStatus', {}, { ...auth(), Origin: base });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ ok: true, value: { stationId: 'test-station', session: null } });
  });

  it('invalid arguments and bad JSON answer INPUT_INVALID with the path', async () => {
    const r = JSON.parse((await post('signIn', { operatorId: 'op-1', pin: 'abcd' })).body) as {
      ok: boolean;
      error: { code: string; details: { path: string } };
    };
    expect(r.ok).toBe(false);
    expect(r.error.code).toBe('INPUT_INVALID');
    expect(r.error.details.path).toBe('pin');
    const bad = await raw('POST', '/api/signIn', auth(), '{not json');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.code).toBe('INPUT_INVALID');
    expect((await post('noSuchOp', {})).status).toBe(404);
  });

  it('serves the renderer with the CSP and security headers; refuses path traversal', async () => {
    const index = await raw('GET', '/');
    expect(index.status).toBe(200);
    expect(index.body).toContain('Line Station');
    expect(index.headers['content-security-policy']).toBe(CSP);
    expect(index.headers['x-content-type-options']).toBe('nosniff');
    expect(index.headers['referrer-policy']).toBe('no-referrer');
    expect(index.headers['cache-control']).toBe('no-store');
    const js = await raw('GET', '/assets/app.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/..%5csecret.txt']) {
      const r = await raw('GET', p);
      expect([400, 403, 404]).toContain(r.status);
      expect(r.body).not.toContain('TOP-SECRET');
    }
  });

  it('SSE delivers slot events of a board provisioned through the API', async () => {
    const ac = new AbortController();
    const unauth = await fetch(`${base}/api/events`, { signal: ac.signal });
    expect(unauth.status).toBe(401);
    const res = await fetch(`${base}/api/events`, { headers: auth(), signal: ac.signal });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    const seen: StationEvent[] = [];
    let text = '';
    let heartbeats = 0;
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
        let i: number;
        while ((i = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, i);
          text = text.slice(i + 2);
          if (block.includes(': heartbeat')) heartbeats++;
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (data) seen.push(JSON.parse(data.slice(6)) as StationEvent);
        }
      }
    })().catch(() => {});
    const s = JSON.parse((await post('signIn', { operatorId: 'op-1', pin: '4321' })).body);
    expect(s.ok).toBe(true);
    expect(JSON.parse((await post('selectWorkOrder', { id: 'WO-DEMO-1' })).body).ok).toBe(true);
    const t0 = Date.now();
    while (!seen.some((e) => e.type === 'slot' && e.slot.state === 'pass') && Date.now() - t0 < 30_000)
      await new Promise((r) => setTimeout(r, 50));
    expect(seen.some((e) => e.type === 'session' && e.session?.operatorId === 'op-1')).toBe(true);
    expect(seen.find((e) => e.type === 'slot' && e.slot.state === 'pass')).toBeDefined();
    // Heartbeats keep idle streams alive: wait for one (the interval is short in this test).
    const t1 = Date.now();
    while (heartbeats === 0 && Date.now() - t1 < 5_000) await new Promise((r) => setTimeout(r, 25));
    expect(heartbeats).toBeGreaterThan(0);
    // another tab (other client id) does not see this tab's session
    const other = JSON.parse((await post('getStatus', {}, { ...auth(), 'X-Client-Id': 'tab-2' })).body);
    expect(other.value.session).toBeNull();
    ac.abort();
    await pump;
  }, 60_000);
});

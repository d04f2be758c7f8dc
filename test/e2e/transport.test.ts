/**
 * The renderer's transports against real HTTP on 127.0.0.1 and a fake preload: results and events
 * are validated (malformed ones become typed errors or are dropped), headers carry the token and the
 * client id, and the event stream reconnects after the server drops it. Every string a view receives has its
 * control and bidi characters made visible (core/display-text.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StationEvent, SyncView } from '../../core/api.js';
import { createBridgeApi, splitSse } from '../../renderer/src/api/bridge.js';
import { createIpcApi } from '../../renderer/src/api/ipc.js';

const SYNC: SyncView = {
  registryUrl: null,
  reachable: null,
  pending: 2,
  sent: 0,
  acknowledged: 0,
  failed: 0,
  lastReceipt: null,
  lastError: null,
  nextAttemptAt: null,
  failingBatches: [],
};

let server: Server;
let base = '';
const seen: { op: string; auth?: string; client?: string; body: string }[] = [];
let streams = 0;

function reply(res: ServerResponse, body: unknown) {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const op = (req.url ?? '').replace('/api/', '');
    if (op === 'events') {
      streams += 1;
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      const n = streams;
      // Valid, invalid (dropped), split across chunks; the first stream is closed to force a reconnect.
      res.write(`data: ${JSON.stringify({ type: 'sync', sync: { ...SYNC, pending: n } })}\n\n`);
      res.write(`data: ${JSON.stringify({ type: 'sync', sync: { pending: 'x' } })}\n\n`);
      res.write('data: not json\n\n');
      const ev = JSON.stringify({ type: 'slotRemoved', port: `/dev/p${n}` });
      res.write(`data: ${ev.slice(0, 10)}`);
      setTimeout(() => {
        res.write(`${ev.slice(10)}\r\n\r\n`);
        if (n === 1) res.end();
      }, 20);
      return;
    }
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ op, auth: req.headers.authorization, client: req.headers['x-client-id'] as string, body });
      if (op === 'getSync') return reply(res, { ok: true, value: SYNC });
      if (op === 'getStatus') return reply(res, { ok: true, value: { stationId: 7 } });
      if (op === 'signIn')
        return reply(res, {
          ok: false,
          error: { code: 'AUTH_INVALID_CREDENTIALS', message: 'no', kind: 'user', action: 'retry', guidance: 'g' },
        });
      res.writeHead(500);
      res.end('<html>oops</html>');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('bridge transport', () => {
  it('sends token and client id, validates results and errors', async () => {
    const api = createBridgeApi({ baseUrl: base, token: 'tok-1', clientId: 'c1' });
    const sync = await api.getSync({});
    expect(sync).toEqual({ ok: true, value: SYNC });
    expect(seen.at(-1)).toMatchObject({ op: 'getSync', auth: 'Bearer tok-1', client: 'c1', body: '{}' });

    const bad = await api.getStatus({});
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.code).toBe('INTERNAL');

    const denied = await api.signIn({ operatorId: 'op', pin: '1234' });
    expect(denied.ok).toBe(false);
    if (!denied.ok) expect(denied.error.code).toBe('AUTH_INVALID_CREDENTIALS');
    expect(JSON.parse(seen.at(-1)?.body ?? '')).toEqual({ operatorId: 'op', pin: '1234' });

    const notJson = await api.getYield({});
    expect(notJson.ok).toBe(false);

    const down = createBridgeApi({ baseUrl: 'http://127.0.0.1:1', token: 't' });
    const r = await down.getSync({});
    expect(r.ok).toBe(false);
  });

  it('reads the event stream, drops invalid events and reconnects with backoff', async () => {
    const conn: boolean[] = [];
    const api = createBridgeApi({
      baseUrl: base,
      token: 'tok-2',
      backoffMs: 50,
      onConnection: (o) => conn.push(o),
    });
    const events: StationEvent[] = [];
    const off = api.subscribe((e) => events.push(e));
    const deadline = Date.now() + 5000;
    while (events.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    off();
    expect(events.slice(0, 4)).toEqual([
      { type: 'sync', sync: { ...SYNC, pending: 1 } },
      { type: 'slotRemoved', port: '/dev/p1' },
      { type: 'sync', sync: { ...SYNC, pending: 2 } },
      { type: 'slotRemoved', port: '/dev/p2' },
    ]);
    expect(conn.slice(0, 3)).toEqual([true, false, true]);
  });

  it('splits SSE blocks with multi-line data and comments', () => {
    expect(splitSse(': ping\n\ndata: a\ndata: b\n\ndata: c')).toEqual({ data: ['a\nb'], rest: 'data: c' });
  });
});

describe('ipc transport', () => {
  it('validates the preload answers and events', async () => {
    let push: ((e: unknown) => void) | null = null;
    const api = createIpcApi({
      getSync: async () => ({ ok: true, value: SYNC }),
      getStatus: async () => ({ ok: true, value: null }),
      signOut: async () => {
        throw new Error('ipc closed');
      },
      subscribe: (cb) => {
        push = cb;
        return () => (push = null);
      },
    });
    expect(await api.getSync({})).toEqual({ ok: true, value: SYNC });
    expect((await api.getStatus({})).ok).toBe(false);
    expect((await api.signOut({})).ok).toBe(false);
    expect((await api.getHsm({})).ok).toBe(false);
    const got: StationEvent[] = [];
    const off = api.subscribe((e) => got.push(e));
    push!({ type: 'slotRemoved', port: 'a' });
    push!({ type: 'slotRemoved' });
    push!({ type: 'bogus' });
    off();
    expect(got).toEqual([{ type: 'slotRemoved', port: 'a' }]);
  });

  it('hands the views results, errors and events with control and bidi characters made visible', async () => {
    const rogue = 'LS0000BEEF\x1b[32m PASS\x9b0m\u202eDESAP\u2066\r\n';
    const shown = 'LS0000BEEF\\u001b[32m PASS\\u009b0m\\u202eDESAP\\u2066\\u000d\n';
    let push: ((e: unknown) => void) | null = null;
    const api = createIpcApi({
      getSync: async () => ({ ok: true, value: { ...SYNC, lastError: rogue } }),
      signIn: async () => ({
        ok: false,
        error: { code: 'BOARD_IDENTITY_INVALID', message: rogue, kind: 'user', action: 'set-aside', guidance: 'g' },
      }),
      subscribe: (cb) => {
        push = cb;
        return () => (push = null);
      },
    });
    expect(await api.getSync({})).toEqual({ ok: true, value: { ...SYNC, lastError: shown } });
    const e = await api.signIn({ operatorId: 'op', pin: '1234' });
    expect(!e.ok && e.error.message).toBe(shown);
    const got: StationEvent[] = [];
    const off = api.subscribe((ev) => got.push(ev));
    push!({ type: 'slotRemoved', port: rogue });
    off();
    expect(got).toEqual([{ type: 'slotRemoved', port: shown }]);
  });
});

/**
 * Main's engine-host client with scripted fake children: requests wait for `ready`, answers are
 * matched by id, a dying child fails its pending requests with a typed error, its exit is logged
 * with the code/signal, and it is restarted with exponential backoff. (host.test.ts does the same
 * against a real child process.)
 */
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../core/ports.js';
import { createEngineClient, type HostChild } from '../../electron/main/engine-client.js';
import type { HostRequest } from '../../electron/shared/ipc.js';

function fakeChild(pid: number) {
  const sent: HostRequest[] = [];
  let onMsg: (m: unknown) => void = () => {};
  let onExit: (c: number | null, s: string | null) => void = () => {};
  const child: HostChild = {
    pid,
    postMessage: (m) => void sent.push(m),
    onMessage: (cb) => void (onMsg = cb),
    onExit: (cb) => void (onExit = cb),
    kill: () => onExit(null, 'SIGTERM'),
  };
  return { child, sent, say: (m: unknown) => onMsg(m), exit: (c: number | null, s: string | null) => onExit(c, s) };
}

function memoryLogger() {
  const lines: { level: string; msg: string; ctx?: Record<string, unknown> }[] = [];
  const l: Logger = {
    log: (level, msg, ctx) => void lines.push({ level, msg, ...(ctx ? { ctx: { ...ctx } } : {}) }),
    child: () => l,
  };
  return { l, lines };
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('createEngineClient', () => {
  it('queues until ready, matches answers by id, forwards events and logs', async () => {
    const kids = [fakeChild(100)];
    const events: unknown[] = [];
    const logs: unknown[] = [];
    const { l } = memoryLogger();
    const c = createEngineClient({
      spawn: () => kids[0]!.child,
      logger: l,
      onEvent: (id, e) => events.push([id, e]),
      onLog: (x) => logs.push(x),
    });
    const p1 = c.invoke('electron:1', 'getStatus', {});
    const p2 = c.invoke('electron:1', 'getSync', {});
    await tick();
    expect(kids[0]!.sent).toEqual([]); // not before ready
    kids[0]!.say({ type: 'ready', pid: 100 });
    expect(kids[0]!.sent.map((m) => m.type === 'invoke' && m.op)).toEqual(['getStatus', 'getSync']);
    const [a, b] = kids[0]!.sent as Extract<HostRequest, { type: 'invoke' }>[];
    kids[0]!.say({ type: 'result', id: b!.id, result: { ok: true, value: 'sync' } });
    kids[0]!.say({ type: 'result', id: a!.id, result: { ok: true, value: 'status' } });
    expect(await p1).toEqual({ ok: true, value: 'status' });
    expect(await p2).toEqual({ ok: true, value: 'sync' });
    kids[0]!.say({ type: 'event', clientId: 'electron:1', event: { type: 'slotRemoved', port: 'p' } });
    kids[0]!.say({ type: 'log', line: { ts: 't', level: 'info', subsystem: '[hsm]', msg: 'hi' } });
    kids[0]!.say({ type: 'nonsense' }); // ignored (logged)
    expect(events).toEqual([['electron:1', { type: 'slotRemoved', port: 'p' }]]);
    expect(logs).toHaveLength(1);
    const stop = c.stop(50);
    kids[0]!.exit(0, null);
    await stop;
  });

  it('fails pending requests when the child dies, logs why, restarts with backoff', async () => {
    const kids: ReturnType<typeof fakeChild>[] = [];
    const { l, lines } = memoryLogger();
    const c = createEngineClient({
      spawn: () => {
        const k = fakeChild(200 + kids.length);
        kids.push(k);
        return k.child;
      },
      logger: l,
      backoff: { initialMs: 20, maxMs: 80 },
    });
    kids[0]!.say({ type: 'ready', pid: 200 });
    const pending = c.invoke('electron:1', 'getStatus', {});
    kids[0]!.exit(null, 'SIGKILL');
    const r = await pending;
    expect(r.ok === false && r.error.code).toBe('INTERNAL');
    expect(r.ok === false && r.error.message).toMatch(/signal SIGKILL/);
    expect(lines.find((x) => x.msg === 'engine host died (signal SIGKILL)')?.level).toBe('error');
    await tick(40);
    expect(kids).toHaveLength(2);
    kids[1]!.exit(3, null); // crash again at once: the next delay doubles
    expect(lines.filter((x) => x.msg === 'restarting the engine host').map((x) => x.ctx?.inMs)).toEqual([20, 40]);
    expect(lines.some((x) => x.msg === 'engine host died (exit code 3)')).toBe(true);
    await tick(70);
    expect(kids).toHaveLength(3);
    expect(c.starts).toBe(3);
    kids[2]!.say({ type: 'ready', pid: 202 });
    const again = c.invoke('electron:1', 'getStatus', {});
    const req = kids[2]!.sent[0] as Extract<HostRequest, { type: 'invoke' }>;
    kids[2]!.say({ type: 'result', id: req.id, result: { ok: true, value: 1 } });
    expect(await again).toEqual({ ok: true, value: 1 });
    const stop = c.stop(50);
    expect(kids[2]!.sent.at(-1)).toEqual({ type: 'stop' });
    await stop; // the fake does not exit on 'stop': killed after the grace period
    await tick(60);
    expect(kids).toHaveLength(3); // no restart after stop
    expect(await c.invoke('electron:1', 'getStatus', {})).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
  });

  it('times out a request the host never answers', async () => {
    const k = fakeChild(300);
    const { l } = memoryLogger();
    const c = createEngineClient({ spawn: () => k.child, logger: l, requestTimeoutMs: 30 });
    k.say({ type: 'ready', pid: 300 });
    const r = await c.invoke('electron:1', 'getStatus', {});
    expect(r.ok === false && r.error.message).toMatch(/did not answer getStatus within 30 ms/);
    const stop = c.stop(10);
    await stop;
  });
});

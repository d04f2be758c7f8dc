/**
 * The privileged IPC surface: sender validation (trusted webContents, main frame, app origin), then
 * payload validation, then the engine — and nothing reaches the engine when a check fails.
 * The `electron` module is mocked with a recording ipcMain (the binary is not needed).
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ApiResult, OperationName, StationEvent } from '../../core/api.js';
import { nullLogger } from '../../native/logger.js';

type Handler = (e: unknown, raw: unknown) => Promise<unknown>;
const recorded = vi.hoisted(() => ({ handlers: new Map<string, Handler>() }));
vi.mock('electron', () => ({
  ipcMain: {
    handle: (ch: string, h: Handler) => {
      if (recorded.handlers.has(ch)) throw new Error(`second handler for ${ch}`);
      recorded.handlers.set(ch, h);
    },
    removeHandler: (ch: string) => void recorded.handlers.delete(ch),
  },
}));

const { clientIdFor, handleInvoke, isTrustedSender, parseInvoke, registerIpcHandlers, senderInfoOf } =
  await import('../../electron/main/ipc.js');
const { EVENT_CHANNEL, INVOKE_CHANNEL } = await import('../../electron/shared/ipc.js');

const trusted = new Set([7]);
const good = { webContentsId: 7, isMainFrame: true, url: 'app://station/index.html' };

describe('isTrustedSender', () => {
  it('accepts the main frame of our window on the app origin', () => {
    expect(isTrustedSender(good, trusted).ok).toBe(true);
  });
  it.each([
    ['an unknown webContents', { ...good, webContentsId: 8 }, /not a window of this app/],
    ['a subframe', { ...good, isMainFrame: false }, /subframe/],
    ['another origin', { ...good, url: 'https://evil.example/' }, /not the app origin \(https:\/\/evil.example\)/],
    ['a file:// page', { ...good, url: 'file:///tmp/x.html' }, /not the app origin/],
    ['another app host', { ...good, url: 'app://other/index.html' }, /not the app origin/],
    ['a destroyed frame', { ...good, isMainFrame: false, url: '' }, /subframe/],
    ['a NaN id', { ...good, webContentsId: Number.NaN }, /not a window/],
  ])('refuses %s', (_name, sender, reason) => {
    const r = isTrustedSender(sender, trusted);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });
});

describe('parseInvoke', () => {
  it('accepts {op, args} for a known operation', () => {
    expect(parseInvoke({ op: 'getStatus', args: {} })).toEqual({ ok: true, value: { op: 'getStatus', args: {} } });
  });
  it.each([
    ['an unknown operation', { op: 'deleteEverything', args: {} }, /op: unknown operation/],
    ['a prototype key', { op: '__proto__', args: {} }, /unknown operation/],
    ['a missing op', { args: {} }, /op/],
    ['extra keys', { op: 'getStatus', args: {}, channel: 'x' }, /Unrecognized key/],
    ['a string', 'getStatus', /payload|expected object/],
    ['null', null, /expected object/],
    ['a function-free but unserialisable value', { op: 'getStatus', args: { n: 1n } }, /not plain data/],
    ['an oversized payload', { op: 'importReceipt', args: { content: 'x'.repeat(18 * 1024 * 1024) } }, /too large/],
  ])('refuses %s', (_name, raw, reason) => {
    const r = parseInvoke(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });
});

/** An engine that records what reached it. */
function recordingEngine() {
  const calls: { clientId: string; op: OperationName; args: unknown }[] = [];
  return {
    calls,
    invoke: async (clientId: string, op: OperationName, args: unknown): Promise<ApiResult<unknown>> => {
      calls.push({ clientId, op, args });
      return { ok: true, value: { echoed: op } };
    },
  };
}

describe('handleInvoke', () => {
  it('forwards a valid request with the window client id', async () => {
    const engine = recordingEngine();
    const r = await handleInvoke(
      good,
      { op: 'signIn', args: { operatorId: 'op1', pin: '1234' } },
      {
        trusted,
        engine,
        logger: nullLogger,
      },
    );
    expect(r).toEqual({ ok: true, value: { echoed: 'signIn' } });
    expect(engine.calls).toEqual([{ clientId: 'electron:7', op: 'signIn', args: { operatorId: 'op1', pin: '1234' } }]);
  });

  it('checks the sender before the payload, and refusals never reach the engine', async () => {
    const engine = recordingEngine();
    const o = { trusted, engine, logger: nullLogger };
    const untrusted = await handleInvoke({ ...good, isMainFrame: false }, 'garbage', o);
    expect(untrusted.ok === false && untrusted.error.code).toBe('AUTH_FORBIDDEN');
    const bad = await handleInvoke(good, { op: 'nope', args: {} }, o);
    expect(bad.ok === false && bad.error).toMatchObject({ code: 'INPUT_INVALID', kind: 'user' });
    expect(engine.calls).toEqual([]);
  });

  it('does not log the arguments of refused requests (they may carry a PIN)', async () => {
    const lines: string[] = [];
    const logger = {
      log: (_l: string, msg: string, ctx?: object) => lines.push(msg + JSON.stringify(ctx)),
      child: () => logger,
    };
    await handleInvoke(
      { ...good, webContentsId: 99 },
      { op: 'signIn', args: { operatorId: 'a', pin: '987654' } },
      {
        trusted,
        engine: recordingEngine(),
        logger,
      },
    );
    await handleInvoke(
      good,
      { op: 'signIn', args: { pin: '987654' }, x: 1 },
      { trusted, engine: recordingEngine(), logger },
    );
    expect(lines.length).toBe(2);
    expect(lines.join('\n')).not.toContain('987654');
  });
});

describe('senderInfoOf', () => {
  const mainFrame = { url: 'app://station/index.html', isDestroyed: () => false, parent: null, top: null as unknown };
  mainFrame.top = mainFrame;
  const sub = { url: 'app://station/index.html', isDestroyed: () => false, parent: mainFrame, top: mainFrame };
  const ev = (senderFrame: unknown) =>
    ({ sender: { id: 7, mainFrame }, senderFrame }) as unknown as Parameters<typeof senderInfoOf>[0];
  it('reads id, main-frame-ness and URL; a gone frame reads as untrusted', () => {
    expect(senderInfoOf(ev(mainFrame))).toEqual(good);
    expect(senderInfoOf(ev(sub)).isMainFrame).toBe(false);
    expect(senderInfoOf(ev(null))).toEqual({ webContentsId: 7, isMainFrame: false, url: '' });
    expect(senderInfoOf(ev({ ...mainFrame, isDestroyed: () => true })).url).toBe('');
  });
});

describe('registerIpcHandlers', () => {
  beforeEach(() => recorded.handlers.clear());

  it('registers exactly one invoke handler that answers envelopes and never throws', async () => {
    const engine = {
      invoke: async (): Promise<ApiResult<unknown>> => {
        throw new Error('engine blew up');
      },
    };
    const reg = registerIpcHandlers({ trusted, engine, logger: nullLogger, targets: () => [] });
    expect([...recorded.handlers.keys()]).toEqual([INVOKE_CHANNEL]);
    const h = recorded.handlers.get(INVOKE_CHANNEL)!;
    const mainFrame = { url: good.url, isDestroyed: () => false, parent: null, top: null };
    const r = await h({ sender: { id: 7, mainFrame }, senderFrame: mainFrame }, { op: 'getStatus', args: {} });
    expect(r).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    const refused = await h({ sender: { id: 3, mainFrame }, senderFrame: mainFrame }, { op: 'getStatus', args: {} });
    expect(refused).toMatchObject({ ok: false, error: { code: 'AUTH_FORBIDDEN' } });
    reg.dispose();
    expect(recorded.handlers.size).toBe(0);
  });

  it("delivers a client's events only to its live trusted window", () => {
    const sent: [number, string, unknown][] = [];
    const target = (id: number, destroyed = false) => ({
      id,
      isDestroyed: () => destroyed,
      send: (ch: string, p: unknown) => sent.push([id, ch, p]),
    });
    const reg = registerIpcHandlers({
      trusted,
      engine: recordingEngine(),
      logger: nullLogger,
      targets: () => [target(7), target(8), target(7, true), target(9)],
    });
    const ev: StationEvent = { type: 'slotRemoved', port: '/dev/ttyACM0' };
    reg.deliver('electron:7', ev);
    reg.deliver('electron:8', ev); // not a trusted window
    reg.deliver('electron:1', ev); // no such window
    expect(sent).toEqual([[7, EVENT_CHANNEL, ev]]);
    expect(clientIdFor(7)).toBe('electron:7');
    reg.dispose();
  });
});

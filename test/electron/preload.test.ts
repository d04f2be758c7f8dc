/**
 * The preload exposes one function per StationApi operation and `subscribe`, never the transport;
 * the bundle is one CommonJS file that requires only `electron` (a sandboxed preload can load
 * nothing else). The bundle is built with the real build options and run in a vm with a fake
 * `electron` (contextBridge + ipcRenderer).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { OPERATION_NAMES } from '../../core/api.js';
import { bundleOptions } from '../../electron/build.js';
import { buildStationApi, type RendererIpc } from '../../electron/preload/api.js';
import { EVENT_CHANNEL, INVOKE_CHANNEL } from '../../electron/shared/ipc.js';

/** A fake ipcRenderer that records invokes and keeps real listener lists. */
function fakeIpc() {
  const invokes: [string, unknown][] = [];
  const listeners = new Map<string, Set<(e: unknown, p: unknown) => void>>();
  const ipc: RendererIpc & { emit(ch: string, p: unknown): void; count(ch: string): number } = {
    invoke: async (ch, p) => {
      invokes.push([ch, p]);
      return { ok: true, value: null };
    },
    on: (ch, l) => {
      if (!listeners.has(ch)) listeners.set(ch, new Set());
      listeners.get(ch)!.add(l);
    },
    removeListener: (ch, l) => void listeners.get(ch)?.delete(l),
    emit: (ch, p) => {
      for (const l of listeners.get(ch) ?? []) l({ sender: 'ipc-event-object', ports: [] }, p);
    },
    count: (ch) => listeners.get(ch)?.size ?? 0,
  };
  return { ipc, invokes };
}

describe('buildStationApi', () => {
  it('has exactly one function per operation plus subscribe, and nothing else', () => {
    const api = buildStationApi(fakeIpc().ipc, OPERATION_NAMES);
    expect(Object.keys(api).sort()).toEqual([...OPERATION_NAMES, 'subscribe'].sort());
    for (const k of Object.keys(api)) expect(typeof (api as Record<string, unknown>)[k]).toBe('function');
    expect(Object.isFrozen(api)).toBe(true);
  });

  it('sends {op, args} on station:invoke', async () => {
    const { ipc, invokes } = fakeIpc();
    const api = buildStationApi(ipc, OPERATION_NAMES);
    await api.selectWorkOrder!({ id: 'WO-1' });
    await api.getStatus!();
    expect(invokes).toEqual([
      [INVOKE_CHANNEL, { op: 'selectWorkOrder', args: { id: 'WO-1' } }],
      [INVOKE_CHANNEL, { op: 'getStatus', args: {} }],
    ]);
  });

  it('subscribe passes only the payload and its unsubscribe closure removes exactly its listener', () => {
    const { ipc } = fakeIpc();
    const api = buildStationApi(ipc, OPERATION_NAMES);
    const a: unknown[] = [];
    const b: unknown[] = [];
    const offA = api.subscribe((e) => a.push(e));
    api.subscribe((e) => b.push(e));
    ipc.emit(EVENT_CHANNEL, { type: 'slotRemoved', port: 'p1' });
    offA();
    offA(); // idempotent
    ipc.emit(EVENT_CHANNEL, { type: 'slotRemoved', port: 'p2' });
    expect(a).toEqual([{ type: 'slotRemoved', port: 'p1' }]);
    expect(b).toHaveLength(2);
    expect(ipc.count(EVENT_CHANNEL)).toBe(1);
  });
});

describe('the preload bundle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ls-preload-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is one CommonJS file requiring only electron, exposing stationApi built from OPERATION_NAMES', async () => {
    const o = bundleOptions(dir).preload!;
    await build({ ...o, sourcemap: false });
    const code = readFileSync(join(dir, 'preload.cjs'), 'utf8');
    const requires = [...code.matchAll(/\brequire\(\s*["'`]([^"'`]+)["'`]\s*\)/g)].map((m) => m[1]);
    expect([...new Set(requires)]).toEqual(['electron']);
    expect(code.length).toBeLessThan(20_000); // no zod, no schemas in the sandboxed preload

    const exposed: [string, unknown][] = [];
    const { ipc, invokes } = fakeIpc();
    const electron = {
      contextBridge: { exposeInMainWorld: (k: string, v: unknown) => exposed.push([k, v]) },
      ipcRenderer: ipc,
    };
    const module = { exports: {} };
    runInNewContext(code, {
      module,
      exports: module.exports,
      require: (id: string) => {
        if (id !== 'electron') throw new Error(`preload required ${id}`);
        return electron;
      },
    });
    expect(exposed.map(([k]) => k)).toEqual(['stationApi']);
    const api = exposed[0]![1] as Record<string, (a?: unknown) => Promise<unknown>>;
    expect(Object.keys(api).sort()).toEqual([...OPERATION_NAMES, 'subscribe'].sort());
    expect(Object.values(api).includes(ipc as never)).toBe(false);
    await api.getYield!({});
    expect(invokes).toEqual([[INVOKE_CHANNEL, { op: 'getYield', args: {} }]]);
  });
});

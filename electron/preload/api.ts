/**
 * The object the preload exposes as `window.stationApi`: one function per StationApi operation
 * and `subscribe`. The transport itself is never exposed.
 *
 * The operation names come from core/api.ts's OPERATION_NAMES: electron/build.ts computes them at
 * build time and injects them (`__STATION_OPERATIONS__`), so the sandboxed preload bundle carries
 * neither zod nor the schemas. Built over a minimal IPC interface so it is tested in plain Node.
 */
import { EVENT_CHANNEL, INVOKE_CHANNEL } from '../shared/channels.js';

/** The part of ipcRenderer the preload uses. */
export interface RendererIpc {
  invoke(channel: string, payload: unknown): Promise<unknown>;
  on(channel: string, listener: (event: unknown, payload: unknown) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, payload: unknown) => void): unknown;
}

export type ExposedStationApi = Readonly<Record<string, (args?: unknown) => Promise<unknown>>> & {
  readonly subscribe: (cb: (event: unknown) => void) => () => void;
};

/** Build the exposed API. Only the payload of an event reaches the page, never the IPC event object. */
export function buildStationApi(ipc: RendererIpc, operations: readonly string[]): ExposedStationApi {
  const api: Record<string, unknown> = {};
  for (const op of operations) {
    if (op === 'subscribe') throw new Error('"subscribe" cannot be an operation name');
    api[op] = (args?: unknown) => ipc.invoke(INVOKE_CHANNEL, { op, args: args ?? {} });
  }
  api.subscribe = (cb: (event: unknown) => void) => {
    if (typeof cb !== 'function') throw new TypeError('subscribe needs a function');
    // The listener is made here, in the preload: contextBridge gives the page a proxy of `cb`, so an
    // unsubscribe by `cb` identity would silently fail. The closure removes exactly this listener.
    const listener = (_event: unknown, payload: unknown) => cb(payload);
    ipc.on(EVENT_CHANNEL, listener);
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      ipc.removeListener(EVENT_CHANNEL, listener);
    };
  };
  return Object.freeze(api) as ExposedStationApi;
}

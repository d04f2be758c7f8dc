/**
 * Electron transport: `window.stationApi` exposed by the preload (one function per operation plus
 * `subscribe`). The preload is trusted code, but its answers are still validated like any input.
 */
import { OPERATION_NAMES, type OperationName, type OpArgs, type StationApi } from '../../../core/api.js';
import { clientError, parseEvent, parseResult } from './validate.js';

type RawPreload = Partial<Record<OperationName, (args: unknown) => Promise<unknown>>> & {
  subscribe?: (cb: (e: unknown) => void) => () => void;
};

/** True when this page runs inside the Electron shell (the preload exposed `window.stationApi`). */
export function ipcAvailable(): boolean {
  return typeof (globalThis as { stationApi?: unknown }).stationApi === 'object';
}

/** Creates the StationApi over the preload bridge (window.stationApi). */
export function createIpcApi(raw?: RawPreload): StationApi {
  const pre: RawPreload = raw ?? (globalThis as unknown as { stationApi: RawPreload }).stationApi;
  const api: Record<string, unknown> = {
    subscribe(cb: Parameters<StationApi['subscribe']>[0]) {
      if (!pre.subscribe) return () => undefined;
      return pre.subscribe((e) => {
        const ev = parseEvent(e);
        if (ev) cb(ev);
      });
    },
  };
  for (const op of OPERATION_NAMES) {
    api[op] = async (args: OpArgs<typeof op>) => {
      const fn = pre[op];
      if (!fn) return { ok: false, error: clientError('INTERNAL', `preload lacks ${op}`) };
      try {
        return parseResult(op, await fn(args ?? {}));
      } catch (e) {
        return { ok: false, error: clientError('INTERNAL', `${op}: ${(e as Error).message}`) };
      }
    };
  }
  return api as StationApi;
}

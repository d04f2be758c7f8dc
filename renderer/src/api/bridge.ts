/**
 * Browser transport: the station's localhost HTTP bridge (`station serve`).
 *
 * Operations are `POST /api/<op>` with JSON arguments; events come from `GET /api/events`
 * (text/event-stream) read with fetch + ReadableStream so the bearer token can be sent as a header.
 * The stream reconnects with exponential backoff. DOM-free (fetch, AbortController, TextDecoder)
 * so it also runs under Node in tests.
 */
import {
  OPERATION_NAMES,
  type OperationName,
  type OpArgs,
  type ApiResult,
  type OpResult,
  type StationApi,
  type StationEvent,
} from '../../../core/api.js';
import { clientError, parseEvent, parseResult } from './validate.js';

export interface BridgeOptions {
  readonly baseUrl: string;
  readonly token: string;
  /** Random per tab; sessions on the bridge are bound to it. */
  readonly clientId?: string;
  /** First reconnect delay (doubles up to maxBackoffMs). */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Told whenever the event stream connects or drops. */
  readonly onConnection?: (online: boolean) => void;
}

/** A random client id (hex, 128 bits). */
export function randomClientId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Splits a text/event-stream buffer into complete events' data; returns the rest. */
export function splitSse(buffer: string): { data: string[]; rest: string } {
  const data: string[] = [];
  const norm = buffer.replace(/\r\n?/g, '\n');
  const blocks = norm.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    const lines = block.split('\n').filter((l) => l.startsWith('data:'));
    if (lines.length === 0) continue;
    data.push(lines.map((l) => l.slice(5).replace(/^ /, '')).join('\n'));
  }
  return { data, rest };
}

/** Creates the StationApi over the bridge. */
export function createBridgeApi(opts: BridgeOptions): StationApi {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const clientId = opts.clientId ?? randomClientId();
  const headers = { Authorization: `Bearer ${opts.token}`, 'X-Client-Id': clientId };

  async function call<O extends OperationName>(op: O, args: OpArgs<O>): Promise<ApiResult<OpResult<O>>> {
    let res: Response;
    try {
      res = await fetch(`${base}/api/${op}`, {
        method: 'POST',
        headers: { ...headers, 'Content-Type': 'application/json' },
        body: JSON.stringify(args ?? {}),
      });
    } catch (e) {
      return { ok: false, error: clientError('INTERNAL', `station unreachable: ${(e as Error).message}`) };
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      return { ok: false, error: clientError('INTERNAL', `invalid answer to ${op}: HTTP ${res.status}, not JSON`) };
    }
    return parseResult(op, body);
  }

  const listeners = new Set<(e: StationEvent) => void>();
  let abort: AbortController | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let delay = opts.backoffMs ?? 500;
  const maxDelay = opts.maxBackoffMs ?? 10_000;

  async function stream(ctrl: AbortController): Promise<void> {
    const res = await fetch(`${base}/api/events`, {
      headers: { ...headers, Accept: 'text/event-stream' },
      signal: ctrl.signal,
    });
    if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
    opts.onConnection?.(true);
    delay = opts.backoffMs ?? 500;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      if (buf.length > 4 * 1024 * 1024) throw new Error('events: oversized event');
      const { data, rest } = splitSse(buf);
      buf = rest;
      for (const d of data) {
        let raw: unknown;
        try {
          raw = JSON.parse(d);
        } catch {
          continue;
        }
        const ev = parseEvent(raw);
        if (ev) for (const l of [...listeners]) l(ev);
      }
    }
  }

  function connect(): void {
    const ctrl = new AbortController();
    abort = ctrl;
    stream(ctrl)
      .catch(() => undefined)
      .finally(() => {
        if (abort !== ctrl || ctrl.signal.aborted) return;
        opts.onConnection?.(false);
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, maxDelay);
      });
  }

  function subscribe(cb: (e: StationEvent) => void): () => void {
    listeners.add(cb);
    if (listeners.size === 1) connect();
    return () => {
      listeners.delete(cb);
      if (listeners.size === 0) {
        if (timer) clearTimeout(timer);
        timer = null;
        const a = abort;
        abort = null;
        a?.abort();
      }
    };
  }

  const api: Record<string, unknown> = { subscribe };
  for (const op of OPERATION_NAMES) api[op] = (args: OpArgs<typeof op>) => call(op, args);
  return api as StationApi;
}

/**
 * Main's side of the engine host: starts the child (an Electron utilityProcess in the app, a
 * `child_process.fork` in tests), matches invoke requests to responses by id, forwards events and
 * log lines, logs why the child died (exit code / signal) and restarts it with exponential backoff.
 *
 * Transport-agnostic: it only sees `HostChild` (post a message, receive messages, exit, kill).
 */
import type { ApiError, ApiResult, OperationName } from '../../core/api.js';
import { stationError } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import { HostMessageSchema, type HostMessage, type HostRequest } from '../shared/ipc.js';

/** One running engine host process, whatever started it. */
export interface HostChild {
  readonly pid: number | undefined;
  postMessage(msg: HostRequest): void;
  onMessage(cb: (msg: unknown) => void): void;
  /** Called once when the process is gone. */
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  kill(): void;
}

export interface EngineClientOptions {
  readonly spawn: () => HostChild;
  readonly logger: Logger;
  /** Events pushed by the engine for one client (the payload is forwarded as is). */
  readonly onEvent?: (clientId: string, event: unknown) => void;
  /** Log lines from the host, re-emitted into main's one sink. */
  readonly onLog?: (line: Extract<HostMessage, { type: 'log' }>['line']) => void;
  /** Restart backoff: first delay, doubled per consecutive crash up to max. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** A child that lived this long resets the backoff. */
  readonly stableMs?: number;
  /** Requests not answered within this time fail with INTERNAL. */
  readonly requestTimeoutMs?: number;
}

export interface EngineClient {
  invoke(clientId: string, op: OperationName, args: unknown): Promise<ApiResult<unknown>>;
  /** A window is gone: the host ends its session and event subscription. */
  detach(clientId: string): void;
  /** Resolves when a host has said `ready` (after a start or restart). */
  ready(): Promise<void>;
  /** Number of times the child was (re)started. */
  readonly starts: number;
  readonly pid: number | undefined;
  /** Stop the child for good (asks it to stop, then kills it after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

interface Pending {
  resolve(r: ApiResult<unknown>): void;
  timer: NodeJS.Timeout;
}

/** Start the engine host and keep it running. */
export function createEngineClient(o: EngineClientOptions): EngineClient {
  const log = o.logger;
  const backoff = o.backoff ?? { initialMs: 250, maxMs: 10_000 };
  const stableMs = o.stableMs ?? 30_000;
  const timeoutMs = o.requestTimeoutMs ?? 60_000;
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let child: HostChild | null = null;
  let isReady = false;
  let waiters: (() => void)[] = [];
  let queue: HostRequest[] = [];
  let stopping = false;
  let starts = 0;
  let failures = 0;
  let restartTimer: NodeJS.Timeout | null = null;
  let stopped: (() => void) | null = null;

  const failAll = (error: ApiError) => {
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.resolve({ ok: false, error });
    }
    pending.clear();
  };

  const start = () => {
    restartTimer = null;
    isReady = false;
    starts++;
    const startedAt = Date.now();
    let c: HostChild;
    try {
      c = o.spawn();
    } catch (e) {
      log.log('error', 'engine host could not be started', { error: String(e) });
      scheduleRestart();
      return;
    }
    child = c;
    log.log('info', 'engine host started', { pid: c.pid, start: starts });
    c.onMessage((raw) => {
      const m = HostMessageSchema.safeParse(raw);
      if (!m.success) {
        log.log('error', 'malformed message from the engine host', { issue: m.error.issues[0]?.message });
        return;
      }
      onMessage(m.data);
    });
    c.onExit((code, signal) => {
      if (child === c) child = null;
      isReady = false;
      const lived = Date.now() - startedAt;
      const why = signal ? `signal ${signal}` : `exit code ${code}`;
      failAll(toApi(`the engine host stopped (${why}) before answering`));
      if (stopping) {
        log.log('info', 'engine host stopped', { code, signal });
        stopped?.();
        return;
      }
      log.log('error', `engine host died (${why})`, { pid: c.pid, code, signal, livedMs: lived });
      if (lived >= stableMs) failures = 0;
      scheduleRestart();
    });
  };

  const scheduleRestart = () => {
    if (stopping) return;
    const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** failures);
    failures++;
    log.log('warn', 'restarting the engine host', { inMs: delay, attempt: failures });
    restartTimer = setTimeout(start, delay);
  };

  const onMessage = (m: HostMessage) => {
    switch (m.type) {
      case 'ready': {
        isReady = true;
        const q = queue;
        queue = [];
        for (const r of q) child?.postMessage(r);
        const w = waiters;
        waiters = [];
        for (const f of w) f();
        return;
      }
      case 'result': {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        clearTimeout(p.timer);
        p.resolve(m.result as ApiResult<unknown>);
        return;
      }
      case 'event':
        o.onEvent?.(m.clientId, m.event);
        return;
      case 'log':
        o.onLog?.(m.line);
        return;
      case 'stopped':
        return;
    }
  };

  start();

  return {
    get starts() {
      return starts;
    },
    get pid() {
      return child?.pid;
    },
    ready: () => (isReady ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
    invoke(clientId, op, args) {
      if (stopping) return Promise.resolve({ ok: false, error: toApi('the station is shutting down') });
      const id = nextId++;
      return new Promise<ApiResult<unknown>>((resolve) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          resolve({ ok: false, error: toApi(`the engine host did not answer ${op} within ${timeoutMs} ms`) });
        }, timeoutMs);
        pending.set(id, { resolve, timer });
        const msg: HostRequest = { type: 'invoke', id, clientId, op, args };
        if (child && isReady) child.postMessage(msg);
        else queue.push(msg);
      });
    },
    detach(clientId) {
      if (stopping) return;
      const msg: HostRequest = { type: 'detach', clientId };
      if (child && isReady) child.postMessage(msg);
      else queue.push(msg);
    },
    async stop(graceMs = 3000) {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      queue = [];
      const c = child;
      if (!c) {
        failAll(toApi('the station is shutting down'));
        return;
      }
      const gone = new Promise<void>((r) => (stopped = r));
      try {
        c.postMessage({ type: 'stop' });
      } catch {
        /* channel already closed */
      }
      const t = setTimeout(() => c.kill(), graceMs);
      await gone;
      clearTimeout(t);
    },
  };
}

function toApi(message: string): ApiError {
  const e = stationError('INTERNAL', message);
  return { code: e.code, message: e.message, kind: e.kind, action: e.action, guidance: e.guidance };
}

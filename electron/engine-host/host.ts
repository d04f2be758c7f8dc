/**
 * The engine host: the station engine (core + native adapters; pkcs11js and better-sqlite3 block)
 * and the station service, running in their own process, off Electron's UI thread.
 *
 * Transport-agnostic: `createHost` takes a `send` function and returns `handle(msg)`; the entry
 * (engine-host/main.ts) binds it to Electron's `process.parentPort` or Node's `process.send`.
 * Every request is validated (HostRequestSchema) and every answer is an ApiResult envelope.
 */
import type { ApiError, ApiResult, OperationName, StationEvent } from '../../core/api.js';
import { stationError, type StationError } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import { openEngine, type Engine } from '../../station/engine.js';
import { createLogger, type LogLine } from '../../native/logger.js';
import { createStationService } from '../../station/service/index.js';
import { createLogTap, type LogTap } from '../../station/service/log-tap.js';
import { HostRequestSchema, type HostMessage } from '../shared/ipc.js';

/** What the host needs from the station service (station/service: createStationService). */
export interface HostedService {
  invoke(clientId: string, op: OperationName, rawArgs: unknown): Promise<ApiResult<unknown>>;
  /** Events for one client: its own session events, log lines only while it has supervisor rights. */
  subscribe(cb: (event: StationEvent) => void, opts: { clientId: string }): () => void;
  start(): unknown;
  stop(): unknown;
}

export interface ServiceDeps {
  readonly engine: Engine;
  readonly logger: Logger;
  /** The host's log lines (the UI's live log view). */
  readonly logTap: LogTap;
}

export interface HostOptions {
  readonly dataDir: string;
  /** Post one message to main. */
  readonly send: (msg: HostMessage) => void;
  readonly level?: 'debug' | 'info' | 'warn' | 'error';
  /** Defaults to the station service; tests may pass another. */
  readonly createService?: (deps: ServiceDeps) => HostedService;
  /** Defaults to openEngine. */
  readonly open?: typeof openEngine;
}

export interface Host {
  /** Handle one raw message from main. Never throws. */
  handle(raw: unknown): Promise<void>;
  /** Stop the service and close the engine (idempotent). */
  close(): Promise<void>;
}

type Running = { readonly engine: Engine; readonly service: HostedService };

/** Create the host. The engine opens on the first request; a failed open is retried on the next. */
export function createHost(o: HostOptions): Host {
  const logTap = createLogTap();
  const logger = createLogger(
    {
      level: o.level ?? 'info',
      tap: (line: LogLine) => {
        // Main writes every line to the one log sink; the service keeps the recent ones for the UI.
        safeSend({ type: 'log', line: { ...line, ...(line.ctx ? { ctx: { ...line.ctx } } : {}) } });
        logTap.tap(line);
      },
    },
    '',
  );
  const hostLog = logger.child('[host]');
  const factory = o.createService ?? ((d: ServiceDeps) => createStationService(d) as HostedService);
  let running: Promise<ApiResult<Running>> | null = null;
  /** One event subscription per client, made on its first request. */
  const clients = new Map<string, () => void>();
  let closed = false;

  function safeSend(m: HostMessage): void {
    try {
      o.send(m);
    } catch {
      /* main is gone; the process is about to end */
    }
  }

  const ensure = (): Promise<ApiResult<Running>> => {
    if (!running)
      running = (async (): Promise<ApiResult<Running>> => {
        const eng = await (o.open ?? openEngine)({ dataDir: o.dataDir, logger });
        if (!eng.ok) {
          hostLog.log('error', 'the station engine could not be opened', { code: eng.error.code });
          running = null; // retry on the next request (e.g. after the HSM is plugged in)
          return { ok: false, error: toApiError(eng.error) };
        }
        try {
          const service = factory({ engine: eng.value, logger, logTap });
          await service.start();
          hostLog.log('info', 'station engine open', { stationId: eng.value.station.id });
          return { ok: true, value: { engine: eng.value, service } };
        } catch (e) {
          await eng.value.close();
          running = null;
          hostLog.log('error', 'the station service failed to start', { error: String(e) });
          return { ok: false, error: toApiError(stationError('INTERNAL', 'the station service failed to start')) };
        }
      })();
    return running;
  };

  return {
    async handle(raw) {
      const m = HostRequestSchema.safeParse(raw);
      if (!m.success) {
        hostLog.log('error', 'malformed request from main', { issue: m.error.issues[0]?.message });
        const id = (raw as { id?: unknown } | null)?.id;
        if (typeof id === 'number' && Number.isInteger(id) && id >= 0)
          safeSend({ type: 'result', id, result: { ok: false, error: internal('malformed request') } });
        return;
      }
      const req = m.data;
      if (req.type === 'detach') {
        clients.get(req.clientId)?.();
        clients.delete(req.clientId);
        const r = running ? await running : null;
        if (r?.ok) await r.value.service.invoke(req.clientId, 'signOut', {});
        return;
      }
      if (req.type === 'stop') {
        await this.close();
        safeSend({ type: 'stopped' });
        return;
      }
      if (closed) {
        safeSend({ type: 'result', id: req.id, result: { ok: false, error: internal('the engine host is stopping') } });
        return;
      }
      let result: ApiResult<unknown>;
      try {
        const r = await ensure();
        if (r.ok && !clients.has(req.clientId)) {
          const clientId = req.clientId;
          clients.set(
            clientId,
            r.value.service.subscribe((event) => safeSend({ type: 'event', clientId, event }), { clientId }),
          );
        }
        result = r.ok ? await r.value.service.invoke(req.clientId, req.op, req.args) : r;
      } catch (e) {
        hostLog.log('error', 'operation failed unexpectedly', { op: req.op, error: String(e) });
        result = { ok: false, error: internal(`${req.op} failed unexpectedly`) };
      }
      safeSend({ type: 'result', id: req.id, result });
    },
    async close() {
      if (closed) return;
      closed = true;
      const r = running ? await running : null;
      for (const off of clients.values()) off();
      clients.clear();
      if (r?.ok) {
        try {
          await r.value.service.stop();
        } finally {
          await r.value.engine.close();
        }
      }
    },
  };
}

function toApiError(e: StationError): ApiError {
  return {
    code: e.code,
    message: e.message,
    kind: e.kind,
    action: e.action,
    guidance: e.guidance,
    ...(e.details ? { details: { ...e.details } } : {}),
  };
}

function internal(message: string): ApiError {
  return toApiError(stationError('INTERNAL', message));
}

/**
 * The registry HTTP service (node:http): JSON API under /v1 (docs/registry-api.md), every route of
 * core/hq/routes.ts mounted by name on the features' handlers (./compose.ts, ./dispatch.ts). Every request goes
 * through the front door (./front-door.ts): callers authenticated from the headers before any body byte is read,
 * bodies streamed under per-route caps, zod-validated; every failure is `{error: {code, message}}` with its HTTP
 * status, never a stack trace (and, to callers not authenticated, never a reason beyond the generic one).
 * Imports core, native/registry-store, registry/common, registry/revocation (CRL schedule) and ./.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fail } from '../../core/errors.js';
import type { Clock, Logger, Signer } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { defaultDbUrl, openRegistryDb } from '../../native/registry-store/index.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
import type { LifecycleConfig, RegistryContext } from '../common/context.js';
import { apiError } from '../common/errors.js';
import { scheduleCrls } from '../revocation/crl.js';
import { scheduleCrlRegeneration } from '../revocation/crl-schedule.js';
import { REGISTRY_ROUTES } from './compose.js';
import { dispatch, findRoute, mountRoutes } from './dispatch.js';
import { createFrontDoor, refusal, type FrontDoorLimits } from './front-door.js';

export interface RegistryOptions {
  /** Data dir: the default database is `sqlite:<dataDir>/registry.db`. */
  readonly dataDir?: string;
  /** An open database, or a URL (`sqlite:<path>`, `postgres://...`). Overrides dataDir's default. */
  readonly db?: RegistryDb | string;
  /** 0 = an ephemeral port. */
  readonly port: number;
  readonly host?: string;
  /** Receipt signing key. */
  readonly signer: Signer;
  /** Registry certificate chain (DER, leaf first). */
  readonly registryChain: readonly Uint8Array[];
  readonly registryId?: string;
  /** The admin token (bearer); without it, admin endpoints answer 403. */
  readonly adminToken?: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Identity lifecycle: registry HSM (revocation signers), CRL interval, security officer token. */
  readonly lifecycle?: LifecycleConfig;
  /** Re-sign the CRLs of stations with a revocation signer this often (s; default lifecycle.crlIntervalS, the CRL validity). */
  readonly crlRefreshS?: number;
  /** Front door limits and timeouts (config.json `http`; docs/registry-api.md, "Front door"). */
  readonly http?: RegistryHttpOptions;
}

/** Front door limits and the connection timeouts (slow clients). */
export interface RegistryHttpOptions extends FrontDoorLimits {
  /** All request headers must arrive within this time of the connection / previous request (default 10 s). */
  readonly headersTimeoutMs?: number;
  /**
   * The whole request, body included, must arrive within this time (default 120 s). Processing after it is not
   * limited (a 64 MiB bundle takes long to verify on a busy machine).
   */
  readonly requestTimeoutMs?: number;
}

export const DEFAULT_HTTP_TIMEOUTS = { headersTimeoutMs: 10_000, requestTimeoutMs: 120_000 };

export interface RunningRegistry {
  readonly url: string;
  readonly port: number;
  readonly db: RegistryDb;
  readonly context: RegistryContext;
  /** Stop listening, drop open connections, close the database if this server opened it. */
  close(): Promise<void>;
}

/** Build the request handler of a registry context (exported for tests that want their own server). */
export function createHandler(
  ctx: RegistryContext,
  limits: FrontDoorLimits = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const door = createFrontDoor(ctx, limits);
  const routes = mountRoutes(REGISTRY_ROUTES);
  return (req, res) => {
    const started = performance.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://registry.invalid');
    } catch {
      door.refuse(req, res, '(invalid)', refusal(apiError('BODY_INVALID', 'invalid request target')));
      return;
    }
    if ((req.method === 'GET' || req.method === 'HEAD') && hasBody(req)) {
      // No GET route reads a body: refuse it (and close) rather than let node drain it after the answer.
      door.refuse(req, res, url.pathname, refusal(apiError('BODY_TOO_LARGE', `a ${req.method} request has no body`)));
      return;
    }
    const route = findRoute(routes, req.method ?? 'GET', url.pathname);
    if (!route.ok) {
      door.refuse(req, res, url.pathname, route.error);
      return;
    }
    dispatch(ctx, door, route.value, req, res, url)
      .then(
        (r) => (r.ok ? undefined : door.refuse(req, res, url.pathname, r.error)),
        (e: unknown) => door.crash(req, res, url.pathname, e),
      )
      .finally(() =>
        ctx.logger.log('debug', 'request', {
          method: req.method,
          path: url.pathname,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
        }),
      );
  };
}

const hasBody = (req: IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';

/** Start the registry on `host:port` (default 127.0.0.1). CONFIG_INVALID / STORE_FAILED when it cannot start. */
export async function startRegistry(o: RegistryOptions): Promise<Result<RunningRegistry>> {
  let db: RegistryDb;
  let ownsDb = false;
  if (o.db !== undefined && typeof o.db !== 'string') db = o.db;
  else {
    const url = typeof o.db === 'string' ? o.db : o.dataDir ? defaultDbUrl(o.dataDir) : null;
    if (!url) return fail('CONFIG_INVALID', 'startRegistry: give dataDir or db');
    const r = await openRegistryDb(url);
    if (!r.ok) return r;
    db = r.value;
    ownsDb = true;
  }
  const logger = o.logger.child('[registry]');
  const context: RegistryContext = {
    db,
    signer: o.signer,
    registryChain: o.registryChain,
    registryId: o.registryId ?? 'registry',
    clock: o.clock,
    logger,
    ...(o.adminToken ? { adminTokenSha256: createHash('sha256').update(o.adminToken).digest() } : {}),
    ...(o.lifecycle ? { lifecycle: o.lifecycle } : {}),
  };
  const stopCrls = !o.lifecycle?.hsm
    ? () => undefined
    : o.crlRefreshS
      ? scheduleCrlRegeneration(context, o.crlRefreshS)
      : scheduleCrls(context);
  const t = { ...DEFAULT_HTTP_TIMEOUTS, ...o.http };
  const handler = createHandler(context, o.http);
  const server: Server = createServer(
    // Timeouts are checked this often (node's default, 30 s, would let a slow header live 40 s).
    { connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(t.headersTimeoutMs / 4))) },
    handler,
  );
  // `Expect: 100-continue`: the front door sends 100 Continue only when it is about to read the body.
  server.on('checkContinue', handler);
  server.headersTimeout = t.headersTimeoutMs;
  server.requestTimeout = Math.max(t.requestTimeoutMs, t.headersTimeoutMs);
  server.keepAliveTimeout = 5_000;
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (e: NodeJS.ErrnoException, socket) => {
    const timedOut = e.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    logger.log('info', 'connection refused by the HTTP parser', {
      code: e.code,
      bytesRead: (socket as Socket).bytesRead,
    });
    // Answer if the socket still takes bytes, then close it: nothing more is read from this connection.
    if (!socket.writable) socket.destroy();
    else
      socket.end(
        `HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
        () => socket.destroy(),
      );
  });
  const host = o.host ?? '127.0.0.1';
  const listening = await new Promise<Result<number>>((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      resolve(fail('CONFIG_INVALID', `cannot listen on ${host}:${o.port}: ${e.code ?? e.message}`)),
    );
    server.listen(o.port, host, () => resolve(ok((server.address() as AddressInfo).port)));
  });
  if (!listening.ok) {
    stopCrls();
    if (ownsDb) await db.close();
    return listening;
  }
  const port = listening.value;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.log('info', 'registry listening', { url, backend: db.backend, registryId: context.registryId });
  let closed = false;
  return ok({
    url,
    port,
    db,
    context,
    async close() {
      if (closed) return;
      closed = true;
      stopCrls();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      if (ownsDb) await db.close();
    },
  });
}

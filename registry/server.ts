/**
 * The registry HTTP service (node:http): JSON API under /v1 (docs/registry-api.md). Every body is size-limited
 * and zod-validated; every failure is `{error: {code, message}}` with its HTTP status, never a stack trace.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { fail } from '../core/errors.js';
import type { Clock, Logger, Signer } from '../core/ports.js';
import { ok, type Result } from '../core/result.js';
import { defaultDbUrl, openRegistryDb } from '../native/registry-store/index.js';
import type { RegistryDb } from './db.js';
import {
  API_VERSION,
  BatchRequestSchema,
  BundleRequestSchema,
  EnrollStationRequestSchema,
  MAX_BATCH_BYTES,
  MAX_BUNDLE_BYTES,
  MAX_SMALL_BODY_BYTES,
  zodMessage,
  type Health,
} from './protocol.js';
import {
  apiError,
  authenticateStation,
  checkAdmin,
  enrollStation,
  getDevice,
  importBundle,
  ingestRecords,
  listStations,
  queryRecords,
  revokeStation,
  stats,
  type ApiError,
  type Caller,
  type RegistryContext,
} from './service.js';
import type { z } from 'zod';
// --- identity lifecycle (registry/lifecycle/, docs/lifecycle.md)
import { createLifecycleHandler } from './lifecycle/routes.js';
import { scheduleCrls, type LifecycleConfig } from './lifecycle/service.js';
import { scheduleCrlRegeneration } from './lifecycle/schedule.js';

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
}

export interface RunningRegistry {
  readonly url: string;
  readonly port: number;
  readonly db: RegistryDb;
  readonly context: RegistryContext;
  /** Stop listening, drop open connections, close the database if this server opened it. */
  close(): Promise<void>;
}

class HttpFailure extends Error {
  constructor(readonly apiError: ApiError) {
    super(apiError.message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError): void {
  send(res, e.status, { error: { code: e.code, message: e.message } }, e.status === 413 ? { connection: 'close' } : {});
}

/** Read the body up to `limit` bytes; 413 (and stop reading) above it. */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      reject(new HttpFailure(apiError('BODY_TOO_LARGE', `the body is larger than ${limit} bytes`)));
      return;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      n += c.length;
      if (n > limit) {
        done = true;
        reject(new HttpFailure(apiError('BODY_TOO_LARGE', `the body is larger than ${limit} bytes`)));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) {
        done = true;
        resolve(new Uint8Array(Buffer.concat(chunks)));
      }
    });
    req.on('error', (e) => {
      if (!done) {
        done = true;
        reject(e);
      }
    });
    req.on('aborted', () => {
      if (!done) {
        done = true;
        reject(new Error('request aborted'));
      }
    });
  });
}

function parseJsonBody<S extends z.ZodType>(req: IncomingMessage, body: Uint8Array, schema: S): z.infer<S> {
  const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (ct !== 'application/json')
    throw new HttpFailure(apiError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json'));
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new HttpFailure(apiError('BODY_INVALID', 'the body is not valid UTF-8 JSON'));
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new HttpFailure(apiError('BODY_INVALID', zodMessage(r.error)));
  return r.data;
}

function unwrap<T>(r: Result<T, ApiError>): T {
  if (!r.ok) throw new HttpFailure(r.error);
  return r.value;
}

type Handler = (req: IncomingMessage, params: string[], url: URL) => Promise<{ status?: number; body: unknown }>;
interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  readonly handler: Handler;
}

/** Build the request handler of a registry context (exported for tests that want their own server). */
export function createHandler(ctx: RegistryContext): (req: IncomingMessage, res: ServerResponse) => void {
  const admin = (req: IncomingMessage): Caller => unwrap(checkAdmin(ctx, req.headers.authorization));
  const target = (req: IncomingMessage) => req.url ?? '/';
  const lifecycle = createLifecycleHandler(ctx); // identity lifecycle routes, tried first
  const routes: Route[] = [
    {
      method: 'GET',
      pattern: /^\/v1\/health$/,
      handler: async () => {
        const h: Health = {
          status: 'ok',
          api: API_VERSION,
          registryId: ctx.registryId,
          time: ctx.clock.now().toISOString(),
        };
        return { body: h };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/batches$/,
      handler: async (req) => {
        const body = await readBody(req, MAX_BATCH_BYTES);
        const caller = unwrap(await authenticateStation(ctx, req.headers.authorization, 'POST', target(req), body));
        const b = parseJsonBody(req, body, BatchRequestSchema);
        return { body: unwrap(await ingestRecords(ctx, caller.trust, b.batchId, b.records, 'batch')) };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/bundles$/,
      handler: async (req) => {
        const body = await readBody(req, MAX_BUNDLE_BYTES);
        const auth = req.headers.authorization ?? '';
        const caller: Caller = auth.startsWith('Bearer ')
          ? admin(req)
          : unwrap(await authenticateStation(ctx, req.headers.authorization, 'POST', target(req), body));
        const b = parseJsonBody(req, body, BundleRequestSchema);
        if (b.allowRevokedStation && caller.kind !== 'admin')
          throw new HttpFailure(apiError('AUTH_FORBIDDEN', 'allowRevokedStation needs the admin token'));
        const who: Caller =
          caller.kind === 'admin' ? { kind: 'admin', allowRevokedStation: b.allowRevokedStation === true } : caller;
        return { body: unwrap(await importBundle(ctx, who, b.bundle)) };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/admin\/stations$/,
      handler: async (req) => {
        const body = await readBody(req, MAX_SMALL_BODY_BYTES);
        admin(req);
        const b = parseJsonBody(req, body, EnrollStationRequestSchema);
        const r = unwrap(await enrollStation(ctx, b));
        return { status: r.created ? 201 : 200, body: r };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/admin\/stations\/([A-Za-z0-9._-]{1,64})\/revoke$/,
      handler: async (req, [id]) => {
        await readBody(req, MAX_SMALL_BODY_BYTES);
        admin(req);
        return { body: { station: unwrap(await revokeStation(ctx, id!)) } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/stations$/,
      handler: async (req) => {
        admin(req);
        return { body: { stations: unwrap(await listStations(ctx)) } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/stats$/,
      handler: async (req) => {
        admin(req);
        return { body: unwrap(await stats(ctx)) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/devices\/([^/]+)$/,
      handler: async (req, [key]) => {
        admin(req);
        let k: string;
        try {
          k = decodeURIComponent(key!);
        } catch {
          throw new HttpFailure(apiError('BODY_INVALID', 'invalid device key'));
        }
        return { body: unwrap(await getDevice(ctx, k)) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/records$/,
      handler: async (req, _p, url) => {
        admin(req);
        const allowed = new Set(['station', 'workOrder', 'from', 'to', 'limit', 'cursor']);
        for (const k of url.searchParams.keys())
          if (!allowed.has(k)) throw new HttpFailure(apiError('BODY_INVALID', `unknown query parameter ${k}`));
        const g = (k: string) => url.searchParams.get(k) ?? undefined;
        const limit = g('limit');
        if (limit !== undefined && !/^[0-9]{1,4}$/.test(limit))
          throw new HttpFailure(apiError('BODY_INVALID', 'limit must be an integer in 1..1000'));
        const q = {
          ...(g('station') !== undefined ? { station: g('station')! } : {}),
          ...(g('workOrder') !== undefined ? { workOrder: g('workOrder')! } : {}),
          ...(g('from') !== undefined ? { from: g('from')! } : {}),
          ...(g('to') !== undefined ? { to: g('to')! } : {}),
          ...(limit !== undefined ? { limit: Number(limit) } : {}),
          ...(g('cursor') !== undefined ? { cursor: g('cursor')! } : {}),
        };
        return { body: unwrap(await queryRecords(ctx, q)) };
      },
    },
  ];

  return (req, res) => {
    const started = performance.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://registry.invalid');
    } catch {
      sendError(res, apiError('BODY_INVALID', 'invalid request target'));
      return;
    }
    if (lifecycle(req, res, url)) return;
    const matching = routes.filter((r) => r.pattern.test(url.pathname));
    const route = matching.find((r) => r.method === req.method);
    if (!route) {
      req.resume();
      sendError(
        res,
        matching.length
          ? apiError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`)
          : apiError('NOT_FOUND', `no such endpoint ${url.pathname}`),
      );
      return;
    }
    const params = route.pattern.exec(url.pathname)!.slice(1);
    route
      .handler(req, params, url)
      .then(
        (r) => send(res, r.status ?? 200, r.body),
        (e: unknown) => {
          if (e instanceof HttpFailure) {
            if (e.apiError.status >= 500)
              ctx.logger.log('error', 'request failed', {
                path: url.pathname,
                code: e.apiError.code,
                message: e.apiError.message,
              });
            else
              ctx.logger.log('info', 'request refused', {
                path: url.pathname,
                code: e.apiError.code,
                message: e.apiError.message,
              });
            sendError(res, e.apiError);
            req.resume(); // drain what the client still sends (connection: close follows a 413)
          } else {
            ctx.logger.log('error', 'unexpected error', {
              path: url.pathname,
              error: e instanceof Error ? e.message : String(e),
            });
            sendError(res, apiError('INTERNAL', 'internal error (see the registry log)'));
          }
        },
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
  const server: Server = createServer(createHandler(context));
  server.requestTimeout = 120_000;
  server.headersTimeout = 20_000;
  server.keepAliveTimeout = 5_000;
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
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

/** The files of a registry data dir. */
export const REGISTRY_FILES = {
  config: 'config.json',
  certificate: 'registry.pem',
  adminToken: join('secrets', 'admin.token'),
  securityOfficerToken: join('secrets', 'security-officer.token'),
  hsmPin: join('secrets', 'hsm-user.pin'),
  hsmSoPin: join('secrets', 'hsm-so.pin'),
} as const;

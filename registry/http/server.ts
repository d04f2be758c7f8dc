/**
 * The registry HTTP service (node:http): JSON API under /v1 (docs/registry-api.md). Every request goes through the
 * front door (registry/front-door.ts): callers authenticated from the headers before any body byte is read, bodies
 * streamed under per-route caps, zod-validated; every failure is `{error: {code, message}}` with its HTTP status,
 * never a stack trace (and, to callers not authenticated, never a reason beyond the generic one).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { fail } from '../../core/errors.js';
import type { Clock, Logger, Signer } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { defaultDbUrl, openRegistryDb } from '../../native/registry-store/index.js';
import type { RegistryDb } from '../../core/hq/registry-db.js';
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
} from '../../core/hq/protocol.js';
import { createFrontDoor, must, Refusal, sendJson, type FrontDoorLimits } from './front-door.js';
import { apiError } from '../common/errors.js';
import { audienceOf, type Caller, type RegistryContext } from '../common/context.js';
import { checkAdmin } from '../common/roles.js';
import { enrollStation, revokeStation } from '../stations/service.js';
import { getDevice, listStations, queryRecords, stats } from '../stations/queries.js';
import { importBundle, ingestRecords } from './compose.js';
import type { z } from 'zod';
// --- identity lifecycle (registry/lifecycle/, docs/lifecycle.md)
import { createLifecycleHandler } from './lifecycle-routes.js';
// --- audit chain anchoring (registry/audit-anchor.ts, docs/audit.md)
import { signedAnchoredHeads, stationAudit } from '../audit/audit-anchor.js';
import { scheduleCrls } from '../revocation/crl.js';
import { type LifecycleConfig } from '../common/context.js';
import { scheduleCrlRegeneration } from '../revocation/crl-schedule.js';

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

function parseJsonBody<S extends z.ZodType>(req: IncomingMessage, body: Uint8Array, schema: S): z.infer<S> {
  const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (ct !== 'application/json')
    throw new Refusal(apiError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json'));
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new Refusal(apiError('BODY_INVALID', 'the body is not valid UTF-8 JSON'));
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new Refusal(apiError('BODY_INVALID', zodMessage(r.error)));
  return r.data;
}

type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  params: string[],
  url: URL,
) => Promise<{ status?: number; body: unknown }>;
interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  readonly handler: Handler;
}

/** Build the request handler of a registry context (exported for tests that want their own server). */
export function createHandler(
  ctx: RegistryContext,
  limits: FrontDoorLimits = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const admin = (req: IncomingMessage): Caller => must(checkAdmin(ctx, req.headers.authorization));
  const door = createFrontDoor(ctx, limits);
  const lifecycle = createLifecycleHandler(ctx, door); // identity lifecycle routes, tried first
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
          audience: audienceOf(ctx),
        };
        return { body: h };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/batches$/,
      handler: async (req, res) => {
        const { caller, body } = await door.station(req, res, MAX_BATCH_BYTES);
        const b = parseJsonBody(req, body, BatchRequestSchema);
        return {
          body: must(await ingestRecords(ctx, caller.trust, b.batchId, b.records, 'batch', undefined, b.auditHead)),
        };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/bundles$/,
      handler: async (req, res) => {
        const { caller, body } = (req.headers.authorization ?? '').startsWith('Bearer ')
          ? { caller: admin(req), body: await door.body(req, res, MAX_BUNDLE_BYTES) }
          : await door.station(req, res, MAX_BUNDLE_BYTES);
        const b = parseJsonBody(req, body, BundleRequestSchema);
        if (b.allowRevokedStation && caller.kind !== 'admin')
          throw new Refusal(apiError('AUTH_FORBIDDEN', 'allowRevokedStation needs the admin token'));
        const who: Caller =
          caller.kind === 'admin' ? { kind: 'admin', allowRevokedStation: b.allowRevokedStation === true } : caller;
        return { body: must(await importBundle(ctx, who, b.bundle)) };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/admin\/stations$/,
      handler: async (req, res) => {
        admin(req);
        const b = parseJsonBody(req, await door.body(req, res, MAX_SMALL_BODY_BYTES), EnrollStationRequestSchema);
        const r = must(await enrollStation(ctx, b));
        return { status: r.created ? 201 : 200, body: r };
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/admin\/stations\/([A-Za-z0-9._-]{1,64})\/revoke$/,
      handler: async (req, res, [id]) => {
        admin(req);
        await door.body(req, res, MAX_SMALL_BODY_BYTES);
        return { body: { station: must(await revokeStation(ctx, id!)) } };
      },
    },
    {
      // The station's anchored audit heads, signed (station/sync.ts anchoredHeads, `station verify-log --against-registry`).
      method: 'GET',
      pattern: /^\/v1\/audit-heads$/,
      handler: async (req, res, _p, url) => {
        const { caller } = await door.station(req, res, 0);
        const challenge = url.searchParams.get('challenge') ?? '';
        if (!/^[A-Za-z0-9_-]{22}$/.test(challenge) || [...url.searchParams.keys()].length !== 1)
          throw new Refusal(apiError('BODY_INVALID', 'expected exactly ?challenge=<16 random bytes, base64url>'));
        return { body: { jws: must(await signedAnchoredHeads(ctx, caller.trust.row.stationId, challenge)) } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/stations\/([A-Za-z0-9._-]{1,64})\/audit$/,
      handler: async (req, _res, [id]) => {
        admin(req);
        return { body: must(await stationAudit(ctx, id!)) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/stations$/,
      handler: async (req) => {
        admin(req);
        return { body: { stations: must(await listStations(ctx)) } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/stats$/,
      handler: async (req) => {
        admin(req);
        return { body: must(await stats(ctx)) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/devices\/([^/]+)$/,
      handler: async (req, _res, [key]) => {
        admin(req);
        let k: string;
        try {
          k = decodeURIComponent(key!);
        } catch {
          throw new Refusal(apiError('BODY_INVALID', 'invalid device key'));
        }
        return { body: must(await getDevice(ctx, k)) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/records$/,
      handler: async (req, _res, _p, url) => {
        admin(req);
        const allowed = new Set(['station', 'workOrder', 'from', 'to', 'limit', 'cursor']);
        for (const k of url.searchParams.keys())
          if (!allowed.has(k)) throw new Refusal(apiError('BODY_INVALID', `unknown query parameter ${k}`));
        const g = (k: string) => url.searchParams.get(k) ?? undefined;
        const limit = g('limit');
        if (limit !== undefined && !/^[0-9]{1,4}$/.test(limit))
          throw new Refusal(apiError('BODY_INVALID', 'limit must be an integer in 1..1000'));
        const q = {
          ...(g('station') !== undefined ? { station: g('station')! } : {}),
          ...(g('workOrder') !== undefined ? { workOrder: g('workOrder')! } : {}),
          ...(g('from') !== undefined ? { from: g('from')! } : {}),
          ...(g('to') !== undefined ? { to: g('to')! } : {}),
          ...(limit !== undefined ? { limit: Number(limit) } : {}),
          ...(g('cursor') !== undefined ? { cursor: g('cursor')! } : {}),
        };
        return { body: must(await queryRecords(ctx, q)) };
      },
    },
  ];

  return (req, res) => {
    const started = performance.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://registry.invalid');
    } catch {
      door.refuse(req, res, '(invalid)', new Refusal(apiError('BODY_INVALID', 'invalid request target')));
      return;
    }
    if ((req.method === 'GET' || req.method === 'HEAD') && hasBody(req)) {
      // No GET route reads a body: refuse it (and close) rather than let node drain it after the answer.
      door.refuse(
        req,
        res,
        url.pathname,
        new Refusal(apiError('BODY_TOO_LARGE', `a ${req.method} request has no body`)),
      );
      return;
    }
    if (lifecycle(req, res, url)) return;
    const matching = routes.filter((r) => r.pattern.test(url.pathname));
    const route = matching.find((r) => r.method === req.method);
    if (!route) {
      const e = matching.length
        ? apiError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`)
        : apiError('NOT_FOUND', `no such endpoint ${url.pathname}`);
      door.refuse(req, res, url.pathname, new Refusal(e));
      return;
    }
    const params = route.pattern.exec(url.pathname)!.slice(1);
    route
      .handler(req, res, params, url)
      .then(
        (r) => sendJson(res, r.status ?? 200, r.body),
        (e: unknown) => door.refuse(req, res, url.pathname, e),
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

/** The files of a registry data dir. */
export const REGISTRY_FILES = {
  config: 'config.json',
  certificate: 'registry.pem',
  adminToken: join('secrets', 'admin.token'),
  securityOfficerToken: join('secrets', 'security-officer.token'),
  hsmPin: join('secrets', 'hsm-user.pin'),
  hsmSoPin: join('secrets', 'hsm-so.pin'),
} as const;

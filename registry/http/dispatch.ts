/**
 * The registry's HTTP dispatch, built once from core/hq/routes.ts and the features' handlers (by route name):
 * the request path is matched against every route's pattern (a route with fewer path parameters wins over one
 * with more: `/v1/devices/reenroll` is the re-enrolment route, not a device called "reenroll"); no route =
 * NOT_FOUND, a route for another method = METHOD_NOT_ALLOWED. Then the route's `auth` is checked from the HEADERS
 * (before any body byte is read), the body is read under the route's `maxBody` (registry/http/front-door.ts), and
 * the handler's Result is sent (JSON, or a DER object), or its ApiError as `{error}` (./front-door.ts `refuse`).
 * Refusals are results here too; a thrown error is a bug (the server answers it INTERNAL). Imports core,
 * registry/common and ./front-door.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ROUTES, routeParams, routePattern, type RouteName, type RouteSpec } from '../../core/hq/routes.js';
import type { RegistryContext } from '../common/context.js';
import { apiError } from '../common/errors.js';
import { checkAdmin, checkRole } from '../common/roles.js';
import type { RouteCaller, RouteHandler, RouteHandlers, RouteRequest } from '../common/route.js';
import { ok, type Result } from '../../core/result.js';
import { refuse, refusedBy, sendJson, type FrontDoor, type Refusal } from './front-door.js';

/** A route of the table with its handler and its compiled pattern. */
export interface Mounted {
  readonly name: RouteName;
  readonly spec: RouteSpec;
  readonly pattern: RegExp;
  readonly params: readonly string[];
  readonly handler: RouteHandler;
}

/** Mount every route of core/hq/routes.ts on its handler; a route without one is a bug (thrown at start). */
export function mountRoutes(handlers: RouteHandlers): readonly Mounted[] {
  return (Object.keys(ROUTES) as RouteName[]).map((name) => {
    const spec = ROUTES[name];
    const handler = handlers[name];
    if (!handler) throw new Error(`no handler for route ${name} (${spec.method} ${spec.path})`);
    return { name, spec, pattern: routePattern(spec), params: routeParams(spec), handler };
  });
}

/** The route for this method and path, or the refusal (NOT_FOUND / METHOD_NOT_ALLOWED). */
export function findRoute(routes: readonly Mounted[], method: string, path: string): Result<Mounted, Refusal> {
  const matching = routes.filter((r) => r.pattern.test(path));
  const fewest = Math.min(...matching.map((r) => r.params.length));
  const route = matching.find((r) => r.params.length === fewest && r.spec.method === method);
  if (route) return ok(route);
  return refuse(
    matching.length
      ? apiError('METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`)
      : apiError('NOT_FOUND', `no such endpoint ${path}`),
  );
}

type Admitted = Result<{ caller: RouteCaller; body: Uint8Array }, Refusal>;

/**
 * The caller by the route's `auth`, from the headers, and then the body under `maxBody` (station requests: the
 * signature's body digest after it).
 */
async function admit(
  ctx: RegistryContext,
  door: FrontDoor,
  route: Mounted,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<Admitted> {
  const cap = route.spec.maxBody;
  const withBody = async (caller: RouteCaller, anonymous = false): Promise<Admitted> => {
    if (cap === 0) return ok({ caller, body: new Uint8Array() });
    const body = await door.body(req, res, cap, anonymous);
    return body.ok ? ok({ caller, body: body.value }) : body;
  };
  const station = async (): Promise<Admitted> => {
    const o = route.handler.allowRevokedStation ? { allowRevoked: true } : {};
    const s = await door.station(req, res, cap, o);
    return s.ok ? ok({ caller: { ...s.value.caller, claims: s.value.claims }, body: s.value.body }) : s;
  };
  const admin = async (): Promise<Admitted> => {
    const a = refusedBy(checkAdmin(ctx, req.headers.authorization));
    return a.ok ? withBody({ kind: 'admin' }) : a;
  };
  switch (route.spec.auth) {
    case 'public':
      return withBody({ kind: 'public' }, true);
    case 'station':
      return station();
    case 'admin':
      return admin();
    case 'officer': {
      const role = refusedBy(checkRole(ctx, req.headers.authorization));
      return role.ok ? withBody({ kind: 'officer', role: role.value }) : role;
    }
    case 'station-or-admin':
      return (req.headers.authorization ?? '').startsWith('Bearer ') ? admin() : station();
  }
}

function sendDer(res: ServerResponse, type: string, der: Uint8Array, maxAgeS: number): void {
  res.writeHead(200, {
    'content-type': type,
    'content-length': der.length,
    'cache-control': `max-age=${Math.max(0, Math.floor(maxAgeS))}`,
  });
  res.end(Buffer.from(der));
}

/** Answer one routed request: admit, handle, send; or the refusal (the caller sends it). */
export async function dispatch(
  ctx: RegistryContext,
  door: FrontDoor,
  route: Mounted,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<Result<void, Refusal>> {
  const admitted = await admit(ctx, door, route, req, res);
  if (!admitted.ok) return admitted;
  const m = route.pattern.exec(url.pathname)!;
  const params = Object.fromEntries(route.params.map((p, i) => [p, m[i + 1]!]));
  const r: RouteRequest = { ctx, req, url, params, ...admitted.value };
  const a = await route.handler.handle(r);
  if (!a.ok) return refusedBy(a);
  if ('der' in a.value) sendDer(res, a.value.type, a.value.der, a.value.maxAgeS);
  else sendJson(res, a.value.status ?? 200, a.value.json);
  return ok(undefined);
}

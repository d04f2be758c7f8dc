/**
 * The registry's HTTP dispatch, built once from core/hq/routes.ts and the features' handlers (by route name):
 * the request path is matched against every route's pattern (a route with fewer path parameters wins over one
 * with more: `/v1/devices/reenroll` is the re-enrolment route, not a device called "reenroll"); no route =
 * NOT_FOUND, a route for another method = METHOD_NOT_ALLOWED. Then the route's `auth` is checked from the HEADERS
 * (before any body byte is read), the body is read under the route's `maxBody` (registry/http/front-door.ts), and
 * the handler's Result is sent (JSON, or a DER object), or its ApiError as `{error}`. Imports core,
 * registry/common and ./front-door.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ROUTES, routeParams, routePattern, type RouteName, type RouteSpec } from '../../core/hq/routes.js';
import type { RegistryContext } from '../common/context.js';
import { apiError } from '../common/errors.js';
import { checkAdmin, checkRole } from '../common/roles.js';
import type { RouteCaller, RouteHandler, RouteHandlers, RouteRequest } from '../common/route.js';
import { must, Refusal, sendJson, type FrontDoor } from './front-door.js';

interface Mounted {
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
function findRoute(routes: readonly Mounted[], method: string, path: string): Mounted | Refusal {
  const matching = routes.filter((r) => r.pattern.test(path));
  const fewest = Math.min(...matching.map((r) => r.params.length));
  const route = matching.find((r) => r.params.length === fewest && r.spec.method === method);
  if (route) return route;
  return new Refusal(
    matching.length
      ? apiError('METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`)
      : apiError('NOT_FOUND', `no such endpoint ${path}`),
  );
}

/**
 * The caller by the route's `auth`, from the headers, and then the body under `maxBody` (station requests: the
 * signature's body digest after it). Throws the front door's Refusal.
 */
async function admit(
  ctx: RegistryContext,
  door: FrontDoor,
  route: Mounted,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<{ caller: RouteCaller; body: Uint8Array }> {
  const cap = route.spec.maxBody;
  const read = (anonymous = false) =>
    cap > 0 ? door.body(req, res, cap, anonymous) : Promise.resolve(new Uint8Array());
  const station = async (): Promise<{ caller: RouteCaller; body: Uint8Array }> => {
    const o = route.handler.allowRevokedStation ? { allowRevoked: true } : {};
    const s = await door.station(req, res, cap, o);
    return { caller: { ...s.caller, claims: s.claims }, body: s.body };
  };
  const admin = async (): Promise<{ caller: RouteCaller; body: Uint8Array }> => {
    const caller = must(checkAdmin(ctx, req.headers.authorization));
    return { caller: caller.kind === 'admin' ? caller : { kind: 'admin' }, body: await read() };
  };
  switch (route.spec.auth) {
    case 'public':
      return { caller: { kind: 'public' }, body: await read(true) };
    case 'station':
      return station();
    case 'admin':
      return admin();
    case 'officer': {
      const role = must(checkRole(ctx, req.headers.authorization));
      return { caller: { kind: 'officer', role }, body: await read() };
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

/** Answer one routed request: admit, handle, send (or refuse). */
export async function dispatch(
  ctx: RegistryContext,
  door: FrontDoor,
  route: Mounted,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const { caller, body } = await admit(ctx, door, route, req, res);
  const m = route.pattern.exec(url.pathname)!;
  const params = Object.fromEntries(route.params.map((p, i) => [p, m[i + 1]!]));
  const r: RouteRequest = { ctx, req, url, params, caller, body };
  const a = await route.handler.handle(r);
  if (!a.ok) throw new Refusal(a.error);
  if ('der' in a.value) sendDer(res, a.value.type, a.value.der, a.value.maxAgeS);
  else sendJson(res, a.value.status ?? 200, a.value.json);
}

export { findRoute };
export type { Mounted };

/**
 * What a feature's HTTP handler is (the dispatch itself lives in registry/http/dispatch.ts): it is mounted by
 * route NAME from core/hq/routes.ts, gets the request with its caller already authenticated and its body already
 * read under the route's cap, and answers a Result (JSON or a DER object) that the dispatch sends, or an
 * ApiError it sends as `{error}`. Also the two JSON body readers the routes use. Imports core and ./.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { err, ok, type Result } from '../../core/result.js';
import type { LifecycleRole } from '../../core/lifecycle.js';
import { zodMessage, type RequestClaims } from '../../core/hq/protocol.js';
import type { ParamName, RouteName } from '../../core/hq/routes.js';
import type { Caller, RegistryContext } from './context.js';
import { apiError, type ApiError } from './errors.js';

/** Who called, as the route's `auth` established it (core/hq/routes.ts RouteAuth). */
export type RouteCaller =
  | { readonly kind: 'public' }
  | { readonly kind: 'officer'; readonly role: LifecycleRole }
  | Extract<Caller, { kind: 'admin' }>
  | (Extract<Caller, { kind: 'station' }> & { readonly claims: RequestClaims });

/** A request as a handler sees it. */
export interface RouteRequest {
  readonly ctx: RegistryContext;
  readonly req: IncomingMessage;
  readonly url: URL;
  /** The path parameters (raw, as matched by PARAM_PATTERNS). */
  readonly params: Readonly<Partial<Record<ParamName, string>>>;
  readonly caller: RouteCaller;
  /** The body, read under the route's maxBody (empty when maxBody is 0). */
  readonly body: Uint8Array;
}

/** What a handler answers: JSON (status 200 unless given) or a DER object with its max-age. */
export type RouteAnswer =
  | { readonly json: unknown; readonly status?: number }
  | { readonly der: Uint8Array; readonly type: string; readonly maxAgeS: number };

/** A feature's handler of one route. */
export interface RouteHandler {
  handle(r: RouteRequest): Promise<Result<RouteAnswer, ApiError>>;
  /** A `station` route also answered to a revoked station (only GET /v1/station-status). */
  readonly allowRevokedStation?: boolean;
}

/** A feature's handlers, by route name. */
export type RouteHandlers = Partial<Record<RouteName, RouteHandler>>;

/** A JSON answer of a result (status 200 unless given). */
export function json<T>(r: Result<T, ApiError>, status?: (v: T) => number): Result<RouteAnswer, ApiError> {
  return r.ok ? ok({ json: r.value, ...(status ? { status: status(r.value) } : {}) }) : r;
}

/** The caller of a station route (a bug when the route is not one). */
export function stationCaller(r: RouteRequest): Extract<RouteCaller, { kind: 'station' }> {
  if (r.caller.kind !== 'station') throw new Error(`expected a station caller, got ${r.caller.kind}`);
  return r.caller;
}

/** The role of an officer route (a bug when the route is not one). */
export function officerRole(r: RouteRequest): LifecycleRole {
  if (r.caller.kind !== 'officer') throw new Error(`expected an officer caller, got ${r.caller.kind}`);
  return r.caller.role;
}

/** A path parameter the route's path has (a bug when it has not). */
export function param(r: RouteRequest, name: ParamName): string {
  const v = r.params[name];
  if (v === undefined) throw new Error(`the route has no :${name}`);
  return v;
}

/**
 * An `application/json` body (UNSUPPORTED_MEDIA_TYPE otherwise), UTF-8 JSON, valid for `schema` (BODY_INVALID):
 * the batch, bundle and enrolment routes.
 */
export function strictJsonBody<S extends z.ZodType>(r: RouteRequest, schema: S): Result<z.infer<S>, ApiError> {
  if (!jsonContent(r)) return err(apiError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json'));
  return parseJson(r.body, schema, false);
}

/** Whether the request says its body is `application/json` (what strictJsonBody requires). */
export function jsonContent(r: RouteRequest): boolean {
  return (r.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() === 'application/json';
}

/** A JSON body valid for `schema`, any content type, an empty body read as `{}`: the lifecycle routes. */
export function jsonBody<S extends z.ZodType>(r: RouteRequest, schema: S): Result<z.infer<S>, ApiError> {
  return parseJson(r.body, schema, true);
}

function parseJson<S extends z.ZodType>(
  body: Uint8Array,
  schema: S,
  emptyIsObject: boolean,
): Result<z.infer<S>, ApiError> {
  let v: unknown;
  try {
    v = emptyIsObject && !body.length ? {} : JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return err(apiError('BODY_INVALID', 'the body is not valid UTF-8 JSON'));
  }
  const p = schema.safeParse(v);
  return p.success ? ok(p.data) : err(apiError('BODY_INVALID', zodMessage(p.error)));
}

/** A free-text reason in a lifecycle request body. */
export const ReasonSchema = z.string().min(1).max(256);
/** A body with an optional reason (transitions, releases, operator revocations). */
export const ReasonBodySchema = z.object({ reason: ReasonSchema.optional() }).strict();

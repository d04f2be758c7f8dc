/**
 * The station↔headquarters route table: every HTTP endpoint of the registry, once. The station's registry client
 * builds its URLs from it (`routePath`); the registry server mounts its handlers on it (`routePattern`), so neither
 * side spells a path of its own. `auth` says who may call (checked from the headers before a body is read):
 * `station` = an LS-Sig signed request (core/hq/protocol.ts `signRequest`), `admin` = the admin bearer token,
 * `officer` = admin or security-officer bearer token, `public` = anyone (signed objects: CRL, OCSP, health).
 * `maxBody` is the body cap in bytes (0: no body). docs/registry.md and docs/lifecycle.md describe each route.
 */
import { MAX_BATCH_BYTES, MAX_BUNDLE_BYTES, MAX_OCSP_REQUEST_BYTES, MAX_SMALL_BODY_BYTES } from './limits.js';

export type RouteAuth = 'public' | 'station' | 'admin' | 'officer' | 'station-or-admin';
export type HttpMethod = 'GET' | 'POST';

/** Path parameters: `:name` in a path takes a value matching PARAM_PATTERNS[name]. */
export const PARAM_PATTERNS = {
  stationId: '[A-Za-z0-9._-]{1,64}',
  serial: '[A-Za-z0-9._:-]{1,128}',
  operator: '[A-Za-z0-9._@-]{1,128}',
  transition: 'activate|suspend|resume|revoke|decommission',
  batchAction: 'revoke|suspend|resume',
  identifier: '[^/]+',
  ocspRequest: '.+',
} as const;
export type ParamName = keyof typeof PARAM_PATTERNS;

export interface RouteSpec {
  readonly method: HttpMethod;
  /** Path with `:param` segments (names from PARAM_PATTERNS); a literal `.crl` suffix is allowed after a param. */
  readonly path: string;
  readonly auth: RouteAuth;
  readonly maxBody: number;
}

const route = (method: HttpMethod, path: string, auth: RouteAuth, maxBody = 0): RouteSpec => ({
  method,
  path,
  auth,
  maxBody,
});

/** Every registry endpoint, by feature. */
export const ROUTES = {
  // health and ingest (registry/ingest)
  health: route('GET', '/v1/health', 'public'),
  batches: route('POST', '/v1/batches', 'station', MAX_BATCH_BYTES),
  bundles: route('POST', '/v1/bundles', 'station-or-admin', MAX_BUNDLE_BYTES),
  auditHeads: route('GET', '/v1/audit-heads', 'station'),
  // stations (enrolment, revocation, views)
  enrollStation: route('POST', '/v1/admin/stations', 'admin', MAX_SMALL_BODY_BYTES),
  revokeStation: route('POST', '/v1/admin/stations/:stationId/revoke', 'admin', MAX_SMALL_BODY_BYTES),
  stationAudit: route('GET', '/v1/stations/:stationId/audit', 'admin'),
  stations: route('GET', '/v1/stations', 'admin'),
  stats: route('GET', '/v1/stats', 'admin'),
  device: route('GET', '/v1/devices/:identifier', 'admin'),
  records: route('GET', '/v1/records', 'admin'),
  stationStatus: route('GET', '/v1/station-status', 'station'),
  // device transitions (registry/transitions)
  deviceTransition: route('POST', '/v1/devices/:serial/:transition', 'officer', MAX_SMALL_BODY_BYTES),
  deviceRelease: route('POST', '/v1/devices/:serial/release', 'officer', MAX_SMALL_BODY_BYTES),
  deviceHistory: route('GET', '/v1/devices/:serial/history', 'officer'),
  batchTransition: route('POST', '/v1/lifecycle/:batchAction', 'officer', MAX_SMALL_BODY_BYTES),
  blocks: route('POST', '/v1/lifecycle/blocks', 'officer', MAX_SMALL_BODY_BYTES),
  verifyLifecycle: route('GET', '/v1/lifecycle/verify', 'officer'),
  // station keys and station/operator revocation (registry/station-keys)
  adminRotateStationKey: route('POST', '/v1/admin/stations/:stationId/rotate-key', 'officer', MAX_SMALL_BODY_BYTES),
  lifecycleRevokeStation: route(
    'POST',
    '/v1/admin/stations/:stationId/lifecycle-revoke',
    'officer',
    MAX_SMALL_BODY_BYTES,
  ),
  revokeOperator: route('POST', '/v1/admin/operators/:operator/revoke', 'officer', MAX_SMALL_BODY_BYTES),
  stationKeyRotation: route('POST', '/v1/stations/key-rotation', 'station', MAX_SMALL_BODY_BYTES),
  // policy and quotas (registry/policy)
  setQuotas: route('POST', '/v1/admin/quotas', 'officer', MAX_SMALL_BODY_BYTES),
  setPolicy: route('POST', '/v1/admin/policy', 'officer', MAX_SMALL_BODY_BYTES),
  publishWorkOrder: route('POST', '/v1/admin/work-orders', 'officer', MAX_SMALL_BODY_BYTES),
  policy: route('GET', '/v1/policy', 'station'),
  quotas: route('GET', '/v1/quotas', 'station'),
  // scrap and failed-issuance revocations, delegated revocation signer, CRL, OCSP (registry/revocation)
  revocations: route('POST', '/v1/revocations', 'station', MAX_BATCH_BYTES),
  revocationSignerRequest: route('POST', '/v1/stations/revocation-signer/request', 'station', MAX_SMALL_BODY_BYTES),
  revocationSignerInstall: route('POST', '/v1/stations/revocation-signer/certificate', 'station', MAX_SMALL_BODY_BYTES),
  crl: route('GET', '/v1/crl/:stationId.crl', 'public'),
  ocspPost: route('POST', '/v1/ocsp', 'public', MAX_OCSP_REQUEST_BYTES),
  ocspGet: route('GET', '/v1/ocsp/:ocspRequest', 'public'),
  // station commissioning and the HQ CA (registry/commissioning): anonymous, the one-time enrolment code authorises
  commission: route('POST', '/v1/stations/commission', 'public', MAX_SMALL_BODY_BYTES),
  hqChain: route('GET', '/v1/hq/chain.pem', 'public'),
  hqCrl: route('GET', '/v1/hq/ca.crl', 'public'),
  hqCrlSigner: route('GET', '/v1/hq/crl-signer/:stationId.pem', 'public'),
  // re-enrolment (registry/reenrolment): refused to everyone (REENROLL_UNAVAILABLE) from the request line alone,
  // no caller checked and no body byte read (headquarters holds no issuing CA key).
  reenroll: route('POST', '/v1/devices/reenroll', 'public'),
} as const satisfies Record<string, RouteSpec>;

export type RouteName = keyof typeof ROUTES;

const PARAM = /:([A-Za-z]+)/g;

/** The parameter names of a route's path, in order. */
export function routeParams(spec: RouteSpec): ParamName[] {
  return [...spec.path.matchAll(PARAM)].map((m) => m[1] as ParamName);
}

/**
 * The anchored RegExp a server matches a request path with; capture groups are the parameters in path order.
 * Literal characters are escaped.
 */
export function routePattern(spec: RouteSpec): RegExp {
  let out = '';
  let last = 0;
  for (const m of spec.path.matchAll(PARAM)) {
    out += escapeRe(spec.path.slice(last, m.index)) + `(${PARAM_PATTERNS[m[1] as ParamName]})`;
    last = m.index + m[0].length;
  }
  out += escapeRe(spec.path.slice(last));
  return new RegExp(`^${out}$`);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * Where the registry serves station `stationId`'s CRL (DER, public): ROUTES.crl with the id as given (not checked
 * against its pattern: for the URLs written into device certificates).
 */
export const crlPath = (stationId: string): string => ROUTES.crl.path.replace(':stationId', stationId);
/** The registry's OCSP responder (POST, or GET /v1/ocsp/<base64 request>; public). */
export const OCSP_PATH = ROUTES.ocspPost.path;

/**
 * The request path for a route with its parameters filled in (URL-encoded). Throws on a missing parameter or a
 * value the route's pattern does not accept (a bug in the caller: values come from validated state).
 */
export function routePath(spec: RouteSpec, params: Partial<Record<ParamName, string>> = {}): string {
  const path = spec.path.replace(PARAM, (_, name: string) => {
    const v = params[name as ParamName];
    if (v === undefined) throw new Error(`routePath ${spec.path}: missing :${name}`);
    if (!new RegExp(`^(?:${PARAM_PATTERNS[name as ParamName]})$`).test(v))
      throw new Error(`routePath ${spec.path}: :${name} does not match its pattern`);
    return encodeURIComponent(v);
  });
  return path;
}

/**
 * The station's registry client (docs/sync.md "Transport", docs/registry-api.md): one typed method per station
 * route of the route table (core/hq/routes.ts). Every method builds its path with `routePath`, signs the request
 * (LS-Sig, core/hq/protocol.ts `signRequest`, audience = the pinned registry certificate's), sends it through the
 * transport (station/hq/transport.ts: URL policy, pinned TLS, capped answers, timeout), reads the registry's error
 * body of a refusal and parses the answer with its core/hq schema.
 *
 * It does not verify signed documents: the caller does, with the core/hq function of that document (receipts,
 * policy, quotas, station status, anchored heads, key-rotation and revocation-signer answers), because each checks
 * something of its own request (batch id, challenge, LS-Sig nonce, request id). Methods that answer a document
 * bound to the request return what the check needs (`challenge`, `claims`).
 *
 * May import: core/ (hq contract, errors, result, ports, bytes), station/hq/transport.ts and failure.ts.
 */
import { toBase64Url } from '../../core/bytes.js';
import { fail, stationError } from '../../core/errors.js';
import type { Clock, Signer } from '../../core/ports.js';
import { ok, type Result } from '../../core/result.js';
import { KeyRotationResponseSchema, type KeyRotationBodySchema } from '../../core/hq/key-rotation.js';
import {
  BatchResponseSchema,
  HealthSchema,
  MAX_HEALTH_RESPONSE_BYTES,
  registryAudience,
  requestClaimsOf,
  RevocationsResponseSchema,
  signRequest,
  SignedDocumentAnswerSchema,
  zodMessage,
  type BatchRequest,
  type BatchResponse,
  type Health,
  type RequestClaims,
  type RevocationResult,
  type RevocationsRequest,
} from '../../core/hq/protocol.js';
import { SignedAnswerSchema, type InstallBody } from '../../core/hq/revocation-signer.js';
import { CommissionResponseSchema, type CommissionBody } from '../../core/hq/commission.js';
import { ROUTES, routePath, type RouteSpec } from '../../core/hq/routes.js';
import { exchangeError, httpExchange, RegistryRefusal } from './transport.js';
import {
  failure,
  parseJson,
  refused,
  registryErrorOf,
  type RegistryAnswer,
  type RegistryFailure,
  type RegistryResult,
} from './failure.js';

export type { RegistryFailure, RegistryResult };
import type { z } from 'zod';

export interface RegistryClientOptions {
  /** Base URL of the registry (trailing slashes ignored); the transport checks its policy on every call. */
  readonly url: string;
  /** The pinned registry TLS certificate (DER): required for an https URL. */
  readonly tlsCertificate: Uint8Array | null;
  /** The pinned registry certificate (DER of registry.pem): its SHA-256 is the audience of every signed request. */
  readonly registryCertificate: Uint8Array | null;
  readonly stationId: string;
  /** The key that signs the requests (LS-Sig): the station signing key. */
  readonly signer: Signer;
  readonly clock: Clock;
  /** Timeout of every call (the health check: min(this, 5 s)). */
  readonly timeoutMs: number;
}

/** A signed document the registry answered to this request, with the claims of the request's LS-Sig. */
export interface SignedDocument {
  readonly jws: string;
  readonly claims: RequestClaims;
}

export interface RegistryClient {
  /** The registry base URL (no trailing slash). */
  readonly url: string;
  /** `GET /v1/health` (public): true when the registry answers a valid health document. */
  health(signal?: AbortSignal): Promise<boolean>;
  /** `GET /v1/health` (public): the health document (its `time` and `audience`: `station doctor`), or why not. */
  healthAnswer(signal?: AbortSignal): Promise<RegistryResult<Health>>;
  /** `POST /v1/batches`: the batch response (its receipt still to verify). */
  sendBatch(body: BatchRequest, signal?: AbortSignal): Promise<RegistryResult<BatchResponse>>;
  /** `GET /v1/audit-heads?challenge=`: the anchored heads JWS and the fresh challenge it must echo. */
  auditHeads(signal?: AbortSignal): Promise<RegistryResult<{ jws: string; challenge: string }>>;
  /** `GET /v1/station-status`: the signed answer about this station, bound to this request's claims. */
  stationStatus(signal?: AbortSignal): Promise<RegistryResult<SignedDocument>>;
  /** `GET /v1/policy`: the signed policy. */
  policy(signal?: AbortSignal): Promise<RegistryResult<SignedDocument>>;
  /** `GET /v1/quotas`: this station's signed quotas. */
  quotas(signal?: AbortSignal): Promise<RegistryResult<SignedDocument>>;
  /** `POST /v1/revocations`: the per-event results (none when the answer holds none: nothing is acknowledged). */
  sendRevocations(body: RevocationsRequest, signal?: AbortSignal): Promise<RegistryResult<RevocationResult[]>>;
  /** `POST /v1/stations/key-rotation`: the signed answer, and whether the request had been applied before. */
  rotateKey(
    body: z.infer<typeof KeyRotationBodySchema>,
  ): Promise<RegistryResult<{ answer: string; repeated: boolean }>>;
  /** `POST /v1/stations/revocation-signer/request`: the signed signer request (JWS). */
  revocationSignerRequest(): Promise<RegistryResult<string>>;
  /** `POST /v1/stations/revocation-signer/certificate`: the signed confirmation (JWS). */
  revocationSignerInstall(body: InstallBody): Promise<RegistryResult<string>>;
  /**
   * `POST /v1/stations/commission` (anonymous: the one-time enrolment code authorises): the commissioning answer
   * (JWS), for the caller to verify with the pinned registry certificate (station/commission/documents.ts).
   */
  commission(body: CommissionBody, signal?: AbortSignal): Promise<RegistryResult<string>>;
}

const NO_REGISTRY_CERT = 'no registry certificate is configured: run station enroll --registry-cert FILE';

/** The audience of this station's signed requests: the pinned registry certificate's (`registryAudience`). */
export function pinnedAudience(registryCertificate: Uint8Array | null): Promise<Result<string>> {
  return registryCertificate
    ? registryAudience(registryCertificate).then(ok)
    : Promise.resolve(fail('CONFIG_INVALID', NO_REGISTRY_CERT));
}

const abortable = (signal: AbortSignal | undefined, ms: number): AbortSignal =>
  signal ? AbortSignal.any([signal, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);

/** How messages name a route: `<METHOD> <path>` (paths without parameters), e.g. `GET /v1/health`. */
export function routeLabel(route: RouteSpec): string {
  return `${route.method} ${routePath(route)}`;
}

/** The registry settings of a station service (sync, lifecycle), as their options name them. */
export interface StationRegistrySettings {
  /** Base URL; null = offline only. */
  readonly registryUrl: string | null;
  readonly registryTlsCertificate?: Uint8Array | null | undefined;
  readonly registryCertificate: Uint8Array | null;
  readonly stationId: string;
  readonly signer: Signer;
}

/** The client of a station service's registry settings, or null when no registry URL is configured. */
export function registryClientFor(s: StationRegistrySettings, clock: Clock, timeoutMs: number): RegistryClient | null {
  return s.registryUrl
    ? createRegistryClient({
        url: s.registryUrl,
        tlsCertificate: s.registryTlsCertificate ?? null,
        registryCertificate: s.registryCertificate,
        stationId: s.stationId,
        signer: s.signer,
        clock,
        timeoutMs,
      })
    : null;
}

/** Create the client (no connection is made until a method is called). */
export function createRegistryClient(o: RegistryClientOptions): RegistryClient {
  const base = o.url.replace(/\/+$/, '');

  /** One exchange on `route` (path with its query), signed unless the route is public. */
  async function exchange(x: {
    route: RouteSpec;
    path: string;
    what: string;
    body?: string;
    signal?: AbortSignal | undefined;
    timeoutMs?: number;
    maxResponseBytes?: number;
    /** Name the timeout in the message of a call that timed out ("no answer within N ms"). */
    sayTimeout?: boolean;
    details?: Record<string, unknown>;
  }): Promise<RegistryResult<RegistryAnswer>> {
    const timeoutMs = x.timeoutMs ?? o.timeoutMs;
    const headers: Record<string, string> = {};
    if (x.body !== undefined) headers['content-type'] = 'application/json';
    let authorization: string | null = null;
    if (x.route.auth !== 'public') {
      const audience = await pinnedAudience(o.registryCertificate);
      if (!audience.ok) return failure('unsent', audience.error);
      const auth = await signRequest(
        o.signer,
        o.stationId,
        x.route.method,
        x.path,
        x.body ?? '',
        o.clock,
        audience.value,
      );
      if (!auth.ok) return failure('unsent', auth.error);
      authorization = auth.value;
      headers['authorization'] = authorization;
    }
    try {
      const res = await httpExchange(`${base}${x.path}`, {
        method: x.route.method,
        tls: o.tlsCertificate,
        headers,
        ...(x.body !== undefined ? { body: x.body } : {}),
        signal: abortable(x.signal, timeoutMs),
        ...(x.maxResponseBytes !== undefined ? { maxResponseBytes: x.maxResponseBytes } : {}),
      });
      return ok({ ...res, authorization });
    } catch (e) {
      const error = exchangeError(e, x.what, x.sayTimeout ? timeoutMs : undefined, x.details);
      return failure(e instanceof RegistryRefusal ? 'unsent' : 'unreachable', error);
    }
  }

  /** A station GET of one signed document (`{jws}`), with the claims of the request it answers. */
  async function document(route: RouteSpec, signal?: AbortSignal): Promise<RegistryResult<SignedDocument>> {
    const path = routePath(route);
    const what = routeLabel(route);
    const r = await exchange({ route, path, what, signal });
    if (!r.ok) return r;
    const res = r.value;
    if (res.status !== 200) return refused(res, what, { maxRaw: 200, details: (status, code) => ({ status, code }) });
    const claims = requestClaimsOf(res.authorization ?? '');
    if (!claims) return failure('unsent', stationError('INTERNAL', 'the request signature just made has no claims'));
    const json = parseJson(res.text);
    const a = json.ok ? SignedDocumentAnswerSchema.safeParse(json.value) : null;
    if (!a?.success) return failure('invalid', stationError('INPUT_INVALID', `${what}: the answer is not {jws}`));
    return ok({ jws: a.data.jws, claims });
  }

  /** A revocation-signer POST: the `{jws}` of the answer. */
  async function signerPost(route: RouteSpec, body: string): Promise<RegistryResult<string>> {
    const path = routePath(route);
    const what = routeLabel(route);
    const r = await exchange({ route, path, what, body });
    if (!r.ok) return r;
    if (r.value.status !== 200) return refused(r.value, what, { maxRaw: 300 });
    const json = parseJson(r.value.text);
    if (!json.ok) return failure('invalid', stationError('SYNC_REGISTRY_UNTRUSTED', `${what}: the answer is not JSON`));
    const a = SignedAnswerSchema.safeParse(json.value);
    return a.success
      ? ok(a.data.jws)
      : failure('invalid', stationError('SYNC_REGISTRY_UNTRUSTED', `${what}: the answer holds no signed JWS`));
  }

  /** `GET /v1/health`: the health document, or why not. */
  async function healthAnswer(signal?: AbortSignal): Promise<RegistryResult<Health>> {
    const route = ROUTES.health;
    const what = routeLabel(route);
    const r = await exchange({
      route,
      path: routePath(route),
      what,
      signal,
      timeoutMs: Math.min(o.timeoutMs, 5000),
      maxResponseBytes: MAX_HEALTH_RESPONSE_BYTES,
      sayTimeout: true,
    });
    if (!r.ok) return r;
    if (r.value.status !== 200) return refused(r.value, what, { maxRaw: 200 });
    const json = parseJson(r.value.text);
    const h = json.ok ? HealthSchema.safeParse(json.value) : null;
    return h?.success
      ? ok(h.data)
      : failure('invalid', stationError('SYNC_REGISTRY_UNTRUSTED', `${what}: the answer is not a health document`));
  }

  return {
    url: base,

    health: async (signal) => (await healthAnswer(signal)).ok,
    healthAnswer,

    async sendBatch(body, signal) {
      const { batchId } = body;
      const what = `batch ${batchId}`;
      const route = ROUTES.batches;
      const r = await exchange({
        route,
        path: routePath(route),
        what,
        body: JSON.stringify(body),
        signal,
        sayTimeout: true,
        details: { batchId },
      });
      if (!r.ok) return r;
      const res = r.value;
      if (res.status !== 200)
        return refused(res, what, {
          maxRaw: 200,
          transient: (s) => s >= 500 || s === 429,
          details: (status, code) => ({ batchId, status, code }),
        });
      const notBatch = (why: string) =>
        failure('invalid', stationError('SYNC_RECEIPT_INVALID', `${what}: the answer is not a batch response: ${why}`));
      const json = parseJson(res.text);
      if (!json.ok) return notBatch(json.error);
      const parsed = BatchResponseSchema.safeParse(json.value);
      return parsed.success ? ok(parsed.data) : notBatch(String(new Error(zodMessage(parsed.error))));
    },

    async auditHeads(signal) {
      const route = ROUTES.auditHeads;
      const challenge = toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(16)));
      const what = routeLabel(route);
      const r = await exchange({ route, path: `${routePath(route)}?challenge=${challenge}`, what, signal });
      if (!r.ok) return r;
      if (r.value.status !== 200) return refused(r.value, what, { maxRaw: 200 });
      const json = parseJson(r.value.text);
      const a = json.ok ? SignedDocumentAnswerSchema.safeParse(json.value) : null;
      if (!a?.success)
        return failure('invalid', stationError('SYNC_RECEIPT_INVALID', `${what}: the answer is not {jws}`));
      return ok({ jws: a.data.jws, challenge });
    },

    stationStatus: (signal) => document(ROUTES.stationStatus, signal),
    policy: (signal) => document(ROUTES.policy, signal),
    quotas: (signal) => document(ROUTES.quotas, signal),

    async sendRevocations(body, signal) {
      const route = ROUTES.revocations;
      const path = routePath(route);
      const what = routeLabel(route);
      const r = await exchange({ route, path, what, body: JSON.stringify(body), signal });
      if (!r.ok) return r;
      const res = r.value;
      if (res.status !== 200)
        return failure(
          'refused',
          stationError(
            res.status >= 500 ? 'SYNC_UNREACHABLE' : 'SYNC_REJECTED',
            `${what}: ${res.status} ${res.text.slice(0, 200)}`,
          ),
          res.status,
          registryErrorOf(res).code,
        );
      // An answer without results acknowledges nothing: every event stays queued (the caller notes "no result").
      const json = parseJson(res.text);
      const parsed = json.ok ? RevocationsResponseSchema.safeParse(json.value) : null;
      return ok(parsed?.success ? parsed.data.results : []);
    },

    async rotateKey(body) {
      const route = ROUTES.stationKeyRotation;
      const path = routePath(route);
      const what = routeLabel(route);
      const r = await exchange({ route, path, what, body: JSON.stringify(body) });
      if (!r.ok) return r;
      if (r.value.status !== 200) return refused(r.value, what, { maxRaw: 300 });
      const json = parseJson(r.value.text);
      const a = json.ok ? KeyRotationResponseSchema.safeParse(json.value) : null;
      if (!a?.success)
        return failure(
          'invalid',
          stationError('SYNC_REJECTED', `${what}: the registry's answer holds no signed answer`),
        );
      return ok({ answer: a.data.answer, repeated: a.data.repeated === true });
    },

    revocationSignerRequest: () => signerPost(ROUTES.revocationSignerRequest, '{}'),
    revocationSignerInstall: (body) => signerPost(ROUTES.revocationSignerInstall, JSON.stringify(body)),

    async commission(body, signal) {
      const route = ROUTES.commission;
      const what = routeLabel(route);
      const r = await exchange({
        route,
        path: routePath(route),
        what,
        body: JSON.stringify(body),
        signal,
        sayTimeout: true,
      });
      if (!r.ok) return r;
      // 201: commissioned now; 200: the same request again, its stored answer.
      if (r.value.status !== 200 && r.value.status !== 201)
        return refused(r.value, what, { maxRaw: 300, details: (status, code) => ({ status, code }) });
      const json = parseJson(r.value.text);
      const a = json.ok ? CommissionResponseSchema.safeParse(json.value) : null;
      return a?.success
        ? ok(a.data.answer)
        : failure('invalid', stationError('SYNC_REGISTRY_UNTRUSTED', `${what}: the answer is not {answer}`));
    },
  };
}

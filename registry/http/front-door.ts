/**
 * The registry's front door: how every route reads its request (docs/registry-api.md, "Front door").
 *
 * 1. The caller is authenticated from the HEADERS alone (a station's LS-Sig, or a bearer token checked by the route)
 *    before the body is read; a refusal closes the connection without reading on (what arrived in the same socket
 *    read as the headers, at most 64 KiB, is all the registry ever reads of it).
 * 2. The body is streamed under the route's cap: a Content-Length above the cap is refused at once (413), a chunked
 *    body is counted as it arrives and reading stops (413, connection closed) at the first chunk over the cap.
 *    Bodies above MAX_SMALL_BODY_BYTES take a slot of a small semaphore (maxLargeBodies), bodies of callers that
 *    are not authenticated (OCSP requests) a slot of another (maxAnonymousBodies); without a free slot:
 *    503 REGISTRY_BUSY with Retry-After, nothing read.
 * 3. Then the station signature's body digest (step 2 of the authentication; the nonce was used in step 1).
 *
 * Answers to callers the registry could not authenticate are generic: an unknown station, a malformed header and a
 * bad signature are the same `401 AUTH_SIGNATURE_INVALID`, and no 5xx answer carries database text. The reasons go
 * to the registry log (with the bytes read from the connection).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../core/ports.js';
import { err, ok, type Result } from '../../core/result.js';
import { MAX_SMALL_BODY_BYTES, type RegistryErrorCode, type RequestClaims } from '../../core/hq/protocol.js';
import { apiError, type ApiError } from '../common/errors.js';
import { authenticateStationBody, authenticateStationHeaders } from './station-auth.js';
import { type Caller, type RegistryContext } from '../common/context.js';

/** Limits of the front door (`config.json` `http`, RegistryOptions.http). */
export interface FrontDoorLimits {
  /** Bodies larger than MAX_SMALL_BODY_BYTES read and processed at the same time (default 4). */
  readonly maxLargeBodies?: number;
  /** Bodies of callers not authenticated (OCSP requests) read at the same time (default 16). */
  readonly maxAnonymousBodies?: number;
  /** Retry-After (seconds) of a 503 REGISTRY_BUSY (default 2). */
  readonly retryAfterS?: number;
}

export const DEFAULT_FRONT_DOOR_LIMITS = { maxLargeBodies: 4, maxAnonymousBodies: 16, retryAfterS: 2 } as const;

/** What the route was told about the caller when it failed: drives how much the answer may say. */
type Audience = 'authenticated' | 'unauthenticated';

/** A refusal of a request (a wire error); `caller` says whether the caller had been authenticated. */
export interface Refusal {
  readonly apiError: ApiError;
  readonly caller: Audience;
}

/** A refusal of `e` (to an authenticated caller unless told otherwise). */
export function refusal(e: ApiError, caller: Audience = 'authenticated'): Refusal {
  return { apiError: e, caller };
}

/** A failed result of a refusal. */
export function refuse<T = never>(e: ApiError, caller: Audience = 'authenticated'): Result<T, Refusal> {
  return err(refusal(e, caller));
}

/** A Result of an operation (ApiError) as a Result of the front door (a refusal to an authenticated caller). */
export function refusedBy<T>(r: Result<T, ApiError>, caller: Audience = 'authenticated'): Result<T, Refusal> {
  return r.ok ? r : refuse(r.error, caller);
}

/** The same answer to every unauthenticated station request, whatever the reason (the log has it). */
const GENERIC_AUTH = apiError(
  'AUTH_SIGNATURE_INVALID',
  'the request is not signed by an enrolled station (the registry log has the reason)',
);
/** Header-step reasons that would tell an outsider which station ids exist or how far its header got. */
const HIDDEN_AUTH: ReadonlySet<RegistryErrorCode> = new Set([
  'AUTH_MALFORMED',
  'AUTH_UNKNOWN_STATION',
  'AUTH_SIGNATURE_INVALID',
]);
const GENERIC_5XX: Partial<Record<RegistryErrorCode, string>> = {
  INTERNAL: 'internal error (the registry log has the reason)',
  STORE_UNAVAILABLE: 'the registry database is unavailable: retry later',
};

/** The wire answer of a refusal: generic for unauthenticated callers' hidden reasons and for every 5xx. */
export function publicError(r: Refusal): ApiError {
  const e = r.apiError;
  if (r.caller === 'unauthenticated' && HIDDEN_AUTH.has(e.code)) return GENERIC_AUTH;
  const generic = GENERIC_5XX[e.code];
  return generic === undefined ? e : { ...e, message: generic };
}

/** A counting semaphore that never waits: `take()` answers a release function, or null when all slots are used. */
class Slots {
  private used = 0;
  constructor(private readonly max: number) {}
  take(): (() => void) | null {
    if (this.used >= this.max) return null;
    this.used++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.used--;
      }
    };
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
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

export interface FrontDoor {
  /**
   * A station request: the LS-Sig header checked from the headers alone, then the body read under `cap`, then its
   * digest and nonce.
   */
  station(
    req: IncomingMessage,
    res: ServerResponse,
    cap: number,
    /** allowRevoked: a revoked station passes too (only `GET /v1/station-status`, whose signed answer says so). */
    o?: { readonly allowRevoked?: boolean },
  ): Promise<Result<{ caller: Caller & { kind: 'station' }; body: Uint8Array; claims: RequestClaims }, Refusal>>;
  /**
   * Read the body under `cap` (Refusal 413 above it). Call it AFTER the route checked the caller's headers (bearer
   * token); `anonymous` = the caller is only authenticated by the body (or not at all).
   */
  body(
    req: IncomingMessage,
    res: ServerResponse,
    cap: number,
    anonymous?: boolean,
  ): Promise<Result<Uint8Array, Refusal>>;
  /** Answer a refused request and log it; closes the connection when the body was not read. */
  refuse(req: IncomingMessage, res: ServerResponse, path: string, r: Refusal): void;
  /** Answer a request a bug failed (INTERNAL, generic) and log the stack. */
  crash(req: IncomingMessage, res: ServerResponse, path: string, e: unknown): void;
}

/** The front door of one server (its semaphores are per server). */
export function createFrontDoor(ctx: RegistryContext, limits: FrontDoorLimits = {}): FrontDoor {
  const l = { ...DEFAULT_FRONT_DOOR_LIMITS, ...limits };
  const large = new Slots(l.maxLargeBodies);
  const anonymous = new Slots(l.maxAnonymousBodies);
  const log: Logger = ctx.logger;

  async function body(
    req: IncomingMessage,
    res: ServerResponse,
    cap: number,
    anon = false,
  ): Promise<Result<Uint8Array, Refusal>> {
    const d = declaredLength(req);
    if (!d.ok) return d;
    const declared = d.value;
    if (declared !== null && declared > cap) return tooLarge(cap);
    const slots = anon ? anonymous : cap > MAX_SMALL_BODY_BYTES ? large : null;
    if (slots && (declared ?? 1) > 0) {
      const release = slots.take();
      if (!release)
        return refuse(
          apiError(
            'REGISTRY_BUSY',
            `the registry is reading as many large requests as it may: retry in ${l.retryAfterS} s`,
          ),
        );
      res.once('close', release); // held until the answer is sent: processing a large body costs memory too
    }
    return readCapped(req, res, cap, declared);
  }

  return {
    body,
    async station(req, res, cap, o = {}) {
      const h = await authenticateStationHeaders(
        ctx,
        req.headers.authorization,
        req.method ?? 'GET',
        req.url ?? '/',
        o,
      );
      if (!h.ok) return refuse(h.error, 'unauthenticated');
      const b = await body(req, res, cap);
      if (!b.ok) return b;
      const caller = await authenticateStationBody(ctx, h.value, b.value);
      if (!caller.ok) return refuse(caller.error, 'unauthenticated');
      return ok({ caller: caller.value, body: b.value, claims: h.value.claims });
    },
    refuse(req, res, path, r) {
      answer(req, res, path, r);
    },
    crash(req, res, path, e) {
      answer(req, res, path, refusal(apiError('INTERNAL', e instanceof Error ? e.message : String(e))), e);
    },
  };

  /** Log and send a refusal (`bug`: the error of a crash, logged with its stack). */
  function answer(req: IncomingMessage, res: ServerResponse, path: string, refusal: Refusal, bug?: unknown): void {
    {
      const detail = {
        method: req.method,
        path,
        code: refusal.apiError.code,
        message: refusal.apiError.message,
        bytesRead: req.socket.bytesRead,
        bodyRead: req.complete,
      };
      if (bug !== undefined)
        log.log('error', 'unexpected error', { ...detail, stack: bug instanceof Error ? bug.stack : undefined });
      else if (refusal.apiError.status >= 500) log.log('error', 'request failed', detail);
      else log.log('info', 'request refused', detail);
      if (res.headersSent || res.destroyed) return; // a route that failed after answering: nothing more to send
      const w = publicError(refusal);
      const headers: Record<string, string | number> = {};
      if (w.code === 'REGISTRY_BUSY') headers['retry-after'] = l.retryAfterS;
      // A body not (fully) read is never read on; an unauthenticated caller's connection is not kept either way
      // (so whether its body had arrived does not show either).
      const close = !req.complete || refusal.caller === 'unauthenticated';
      if (close) {
        headers['connection'] = 'close';
        closeWithoutReading(req, log);
      }
      sendJson(res, w.status, { error: { code: w.code, message: w.message } }, headers);
    }
  }
}

/** How long a refused connection stays open, unread, after its answer (so the client can read the answer). */
export const LINGER_MS = 2000;

/**
 * Close the connection of a refused request without reading more of it. Node ends a `connection: close` answer with
 * `destroySoon` (destroy once written), which, with the client's unread body bytes in the kernel, is a TCP reset that
 * can discard the answer at the client before it reads it (seen in the tests: EPIPE, no answer); and it resumes
 * reading to drain the request. Instead: stop reading, send FIN after the answer, destroy the socket after LINGER_MS.
 */
function closeWithoutReading(req: IncomingMessage, log: Logger): void {
  const socket = req.socket;
  socket.destroySoon = () => {
    socket.pause();
    // node resumes the socket of an unread (dumped) request on the next tick to drain it: keep this one paused.
    socket.resume = () => socket;
    socket.end();
    const t = setTimeout(() => {
      log.log('debug', 'refused connection closed', { bytesRead: socket.bytesRead });
      socket.destroy();
    }, LINGER_MS);
    t.unref();
    socket.once('close', () => clearTimeout(t));
  };
}

function tooLarge(cap: number): Result<never, Refusal> {
  return refuse(apiError('BODY_TOO_LARGE', `the body is larger than ${cap} bytes`));
}

/** The Content-Length, or null for a chunked body (node refuses a request with both, and malformed lengths). */
function declaredLength(req: IncomingMessage): Result<number | null, Refusal> {
  const v = req.headers['content-length'];
  if (v === undefined) return ok(req.headers['transfer-encoding'] === undefined ? 0 : null);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) return refuse(apiError('BODY_INVALID', 'invalid Content-Length'));
  return ok(n);
}

/**
 * Stream the body into memory, at most `cap` bytes: one buffer of the declared length, or chunks counted as they
 * arrive; at the first chunk over the cap reading stops (the caller's refusal closes the connection).
 */
function readCapped(
  req: IncomingMessage,
  res: ServerResponse,
  cap: number,
  declared: number | null,
): Promise<Result<Uint8Array, Refusal>> {
  if (declared === 0 || req.readableEnded) return Promise.resolve(ok(new Uint8Array()));
  if (/\b100-continue\b/i.test(req.headers.expect ?? '')) res.writeContinue();
  return new Promise((resolve) => {
    const whole = declared !== null ? Buffer.allocUnsafe(declared) : null;
    const chunks: Buffer[] = [];
    let n = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (c: Buffer) => {
      if (n + c.length > cap || (whole && n + c.length > whole.length)) {
        stop();
        req.pause();
        resolve(tooLarge(cap));
        return;
      }
      if (whole) c.copy(whole, n);
      else chunks.push(c);
      n += c.length;
    };
    const onEnd = () => {
      stop();
      const b = whole ?? Buffer.concat(chunks, n);
      resolve(ok(new Uint8Array(b.buffer, b.byteOffset, n)));
    };
    const onError = (e: Error) => {
      stop();
      resolve(refuse(apiError('BODY_INVALID', `the request body could not be read: ${e.message}`)));
    };
    const onClose = () => {
      if (req.complete) return;
      stop();
      resolve(refuse(apiError('BODY_INVALID', 'the request body was cut off')));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/**
 * How a registry call of the station fails (station/hq/client.ts): the typed failure, the registry's error body of a
 * refusal, and the station error each route has always reported for it.
 *
 * May import: core/ (errors, result, hq protocol).
 */
import { stationError, type StationError } from '../../core/errors.js';
import { err, ok, type Err, type Result } from '../../core/result.js';
import { ErrorBodySchema } from '../../core/hq/protocol.js';

/**
 * Why a call failed. `unsent`: nothing went out (no registry certificate, the request could not be signed, the URL
 * policy or the TLS pin refused the registry); `unreachable`: no complete answer (network, timeout, cut off, larger
 * than the cap); `refused`: the registry answered another status than 200; `invalid`: a 200 answer that is not what
 * the route answers.
 */
export interface RegistryFailure {
  readonly kind: 'unsent' | 'unreachable' | 'refused' | 'invalid';
  /** The HTTP status of a refusal (else null). */
  readonly status: number | null;
  /** The registry's error code of a refusal (`HTTP <status>` when the body is not an error body; else null). */
  readonly code: string | null;
  /** The station error, as the station reports it. */
  readonly error: StationError;
}
export type RegistryResult<T> = Result<T, RegistryFailure>;

/**
 * The registry's `{error: {code, message}}` of a failed answer; when the body is not one, `HTTP <status>` and the
 * first `maxRaw` characters of the body.
 */
export function registryErrorOf(
  res: { status: number; text: string },
  maxRaw = 200,
): { readonly code: string; readonly message: string } {
  try {
    const e = ErrorBodySchema.parse(JSON.parse(res.text));
    return { code: e.error.code, message: e.error.message };
  } catch {
    return { code: `HTTP ${res.status}`, message: res.text.slice(0, maxRaw) };
  }
}

/** A failed call of `kind`. */
export const failure = (
  kind: RegistryFailure['kind'],
  error: StationError,
  status: number | null = null,
  code: string | null = null,
): Err<RegistryFailure> => err({ kind, status, code, error });

/** The registry's answer to one exchange. */
export interface RegistryAnswer {
  readonly status: number;
  readonly text: string;
  /** The LS-Sig header value sent (null: unsigned). */
  readonly authorization: string | null;
}

/** How a route reports the registry's refusal (kept as each caller has always worded it). */
export interface RefusalStyle {
  /** Characters of a body that is not an error body quoted in the message. */
  readonly maxRaw: number;
  /** Whether a refusal with this status is transient (SYNC_UNREACHABLE) rather than final (SYNC_REJECTED). */
  readonly transient?: (status: number) => boolean;
  /** Details of the station error. */
  readonly details?: (status: number, code: string) => Record<string, unknown>;
}

/** `<what>: registry answered <status> <code>: <message>`. */
export function refused(res: RegistryAnswer, what: string, style: RefusalStyle): Err<RegistryFailure> {
  const { code, message } = registryErrorOf(res, style.maxRaw);
  const transient = style.transient ?? ((s: number) => s >= 500);
  return failure(
    'refused',
    stationError(
      transient(res.status) ? 'SYNC_UNREACHABLE' : 'SYNC_REJECTED',
      `${what}: registry answered ${res.status} ${code}: ${message}`,
      style.details?.(res.status, code),
    ),
    res.status,
    code,
  );
}

/** JSON.parse as a result (the error: `String(e)`). */
export const parseJson = (text: string): Result<unknown, string> => {
  try {
    return ok(JSON.parse(text) as unknown);
  } catch (e) {
    return err(String(e));
  }
};

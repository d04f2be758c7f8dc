/**
 * Validation of everything that reaches the UI from a transport: results and events are untrusted
 * input and are checked against the StationApi schemas before any view sees them. Every string in them
 * then has its control and bidi characters made visible (core/display-text.ts): React escapes HTML, not
 * a bidi override that reverses what follows or a C1 control, and board-chosen text (serial numbers,
 * models, firmware names, board error messages) reaches the views through here only.
 */
import {
  ApiErrorSchema,
  OPERATIONS,
  StationEventSchema,
  type ApiError,
  type ApiResult,
  type OperationName,
  type OpResult,
  type StationEvent,
} from '../../../core/api.js';
import { stationError, type ErrorCode } from '../../../core/errors.js';
import { escapeStringsDeep } from '../../../core/display-text.js';

/** An ApiError made on the UI side (transport down, invalid answer). */
export function clientError(code: ErrorCode, message: string): ApiError {
  const e = stationError(code, message);
  return { code: e.code, message: e.message, kind: e.kind, action: e.action, guidance: e.guidance };
}

/** Checks a raw `{ok,value}|{ok,error}` envelope for operation `op`; anything malformed becomes a typed error. */
export function parseResult<O extends OperationName>(op: O, raw: unknown): ApiResult<OpResult<O>> {
  if (typeof raw !== 'object' || raw === null || !('ok' in raw)) {
    return { ok: false, error: clientError('INTERNAL', `invalid answer to ${op}: not a result envelope`) };
  }
  const env = raw as { ok: unknown; value?: unknown; error?: unknown };
  if (env.ok === true) {
    const parsed = OPERATIONS[op].result.safeParse(env.value);
    if (!parsed.success) {
      return {
        ok: false,
        error: clientError('INTERNAL', `invalid answer to ${op}: ${parsed.error.issues[0]?.message}`),
      };
    }
    return { ok: true, value: escapeStringsDeep(parsed.data) as OpResult<O> };
  }
  if (env.ok === false) {
    const parsed = ApiErrorSchema.safeParse(env.error);
    if (parsed.success) return { ok: false, error: escapeStringsDeep(parsed.data) };
  }
  return { ok: false, error: clientError('INTERNAL', `invalid answer to ${op}: malformed error`) };
}

/** A pushed event, or null when it does not match the schema (dropped, never shown). */
export function parseEvent(raw: unknown): StationEvent | null {
  const parsed = StationEventSchema.safeParse(raw);
  return parsed.success ? escapeStringsDeep(parsed.data) : null;
}

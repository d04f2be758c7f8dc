/**
 * Mapping of PKCS#11 return values (CKR_*) to station error codes. Messages carry the CKR name and the
 * Cryptoki function, never arguments (so never a PIN), and never the native stack.
 */
import { stationError, type ErrorCode, type StationError } from '../../core/errors.js';

/** CKR names that mean "the session (or its login) is gone"; the adapter re-opens and re-logs in once. */
export const SESSION_LOST_CKR: ReadonlySet<string> = new Set([
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
]);

/** CKR names that mean a cached object handle is stale (object deleted, or handles dropped on logout). */
export const HANDLE_STALE_CKR: ReadonlySet<string> = new Set(['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);

const CODE_BY_CKR: Readonly<Record<string, ErrorCode>> = {
  CKR_PIN_INCORRECT: 'HSM_PIN_INCORRECT',
  CKR_PIN_LOCKED: 'HSM_PIN_LOCKED',
  CKR_TOKEN_NOT_PRESENT: 'HSM_TOKEN_ABSENT',
  CKR_DEVICE_REMOVED: 'HSM_TOKEN_ABSENT',
  CKR_SLOT_ID_INVALID: 'HSM_TOKEN_ABSENT',
  CKR_SESSION_HANDLE_INVALID: 'HSM_SESSION_LOST',
  CKR_SESSION_CLOSED: 'HSM_SESSION_LOST',
  CKR_USER_NOT_LOGGED_IN: 'HSM_SESSION_LOST',
  CKR_MECHANISM_INVALID: 'HSM_MECHANISM_UNSUPPORTED',
};

/** The station error code for a CKR name (HSM_FAILED for anything not mapped explicitly). */
export function codeForCkr(ckr: string): ErrorCode {
  return CODE_BY_CKR[ckr] ?? 'HSM_FAILED';
}

/** The CKR name carried by a pkcs11js error (Pkcs11Error.message is the name), or null for non-Cryptoki errors. */
export function ckrOf(e: unknown): string | null {
  if (e instanceof Error) {
    const m = /^(CKR_[A-Z0-9_]+)/.exec(e.message);
    if (m) return m[1]!;
  }
  return null;
}

/** Translate anything a pkcs11js call threw into a StationError. `op` names the operation, e.g. 'C_Sign'. */
export function mapPkcs11Error(e: unknown, op: string): StationError {
  const ckr = ckrOf(e);
  if (ckr) {
    const code = codeForCkr(ckr);
    const what: Partial<Record<ErrorCode, string>> = {
      HSM_PIN_INCORRECT: 'the HSM rejected the user PIN',
      HSM_PIN_LOCKED: 'the HSM user PIN is locked',
      HSM_TOKEN_ABSENT: 'the HSM token is not present',
      HSM_SESSION_LOST: 'the HSM session was lost',
      HSM_MECHANISM_UNSUPPORTED: 'the HSM does not support the requested mechanism',
    };
    return stationError(code, `${op}: ${what[code] ?? 'HSM call failed'} (${ckr})`, { op, ckr });
  }
  // Native (non-Cryptoki) errors: wrong argument types are adapter bugs. Only the first line, no stack.
  const first = e instanceof Error ? (e.message.split('\n')[0] ?? '').slice(0, 200) : String(e).slice(0, 200);
  return stationError('HSM_FAILED', `${op}: ${first}`, { op });
}

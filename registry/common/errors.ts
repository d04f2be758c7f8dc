/**
 * The registry's one error catalogue: every failure of a registry operation is an `ApiError`, a wire code of
 * core/hq/protocol.ts REGISTRY_ERRORS (docs/registry-api.md) with its HTTP status and a message for people.
 * Operations return them as `Result<T, ApiError>`; exceptions are bugs (and database failures, turned into
 * STORE_UNAVAILABLE by `guarded`). Imports core only.
 */
import { err, type Result } from '../../core/result.js';
import { REGISTRY_ERRORS, type RegistryErrorCode } from '../../core/hq/registry-errors.js';

/** A registry failure: wire code, its HTTP status, a message. */
export interface ApiError {
  readonly status: number;
  readonly code: RegistryErrorCode;
  readonly message: string;
}

/** Build an ApiError (status from the code). */
export function apiError(code: RegistryErrorCode, message: string): ApiError {
  return { status: REGISTRY_ERRORS[code], code, message };
}

/** A failed result with an ApiError. */
export function apiFail<T = never>(code: RegistryErrorCode, message: string): Result<T, ApiError> {
  return err(apiError(code, message));
}

/** STORE_UNAVAILABLE with a database port's message as it is. */
export function storeError(e: { readonly message: string }): ApiError {
  return apiError('STORE_UNAVAILABLE', e.message);
}

/** STORE_UNAVAILABLE for a thrown database error (or a message), prefixed `registry database:`. */
export function storeFail(e: unknown): Result<never, ApiError> {
  return apiFail('STORE_UNAVAILABLE', `registry database: ${e instanceof Error ? e.message : String(e)}`);
}

/** Run `fn` and turn a thrown database error into STORE_UNAVAILABLE. */
export async function guarded<T>(fn: () => Promise<Result<T, ApiError>>): Promise<Result<T, ApiError>> {
  try {
    return await fn();
  } catch (e) {
    return storeFail(e);
  }
}

/**
 * The error codes of the registry API and their HTTP status (re-exported by core/hq/protocol.ts). Their own module so
 * that the registry's services (registry/common/errors.ts), which every registry command loads, do not load the
 * protocol's schemas and the X.509 stack (issue 12, cold start). No imports.
 */

/** HTTP error codes of the registry API (wire codes, distinct from the station's ERROR_CATALOGUE). */
export const REGISTRY_ERRORS = {
  AUTH_REQUIRED: 401,
  AUTH_MALFORMED: 401,
  AUTH_UNKNOWN_STATION: 401,
  AUTH_SIGNATURE_INVALID: 401,
  AUTH_REQUEST_MISMATCH: 401,
  AUTH_CLOCK_SKEW: 401,
  AUTH_REPLAY: 401,
  AUTH_AUDIENCE_MISMATCH: 401,
  AUTH_STATION_REVOKED: 403,
  AUTH_FORBIDDEN: 403,
  BODY_TOO_LARGE: 413,
  BODY_INVALID: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  BATCH_CONFLICT: 409,
  STATION_CONFLICT: 409,
  LIFECYCLE_TRANSITION_INVALID: 409,
  BUNDLE_INVALID: 422,
  STORE_UNAVAILABLE: 503,
  /** POST /v1/devices/reenroll: headquarters holds no issuing CA key (docs/lifecycle.md). */
  REENROLL_UNAVAILABLE: 501,
  /** POST /v1/stations/commission: the enrolment code is unknown, expired, used or for another station (one answer). */
  COMMISSION_REFUSED: 403,
  /** The commissioning request fails a check (core/hq/commission-issue.ts; the message names the check). */
  COMMISSION_REQUEST_INVALID: 422,
  /** This registry has no HQ CA (data dir made before commissioning; `registry hq-ca init` or the ceremony). */
  HQ_CA_UNAVAILABLE: 503,
  REGISTRY_BUSY: 503,
  INTERNAL: 500,
} as const;
export type RegistryErrorCode = keyof typeof REGISTRY_ERRORS;

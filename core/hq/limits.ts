/**
 * The body size limits of the station <-> headquarters protocol (re-exported by core/hq/protocol.ts). Their own
 * module so that the route table (core/hq/routes.ts), which the station configuration reads, does not load the
 * protocol's schemas and the X.509 stack (issue 12, cold start). No imports.
 */

/** A sync batch (`POST /v1/batches`). */
export const MAX_BATCH_BYTES = 8 * 1024 * 1024;
/** A bundle (`registry import`, `POST /v1/bundles`). */
export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;
/** Other bodies (admin and officer requests, re-enrolment, key rotation). */
export const MAX_SMALL_BODY_BYTES = 256 * 1024;
/** `POST /v1/ocsp` request bodies. */
export const MAX_OCSP_REQUEST_BYTES = 64 * 1024;

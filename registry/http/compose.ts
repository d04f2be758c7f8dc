/**
 * The registry put together: the device lifecycle given to ingest as its hooks (registry/ingest/hooks.ts),
 * ingest's entry points with them bound (for the CLI and tests), and every feature's HTTP handlers by route name
 * (for registry/http/server.ts). Imports the feature folders.
 */
import type { Result } from '../../core/result.js';
import type { BatchResponse, BundleResponse } from '../../core/hq/protocol.js';
import type { ApiError } from '../common/errors.js';
import type { IngestHooks } from '../ingest/hooks.js';
import * as ingest from '../ingest/service.js';
import { refreshCrl } from '../revocation/crl.js';
import { stationScrapRevocations } from '../revocation/scrap.js';
import { lifecycleApplyRecords, lifecyclePrecheck } from '../transitions/ingest-hooks.js';
import type { RouteHandlers } from '../common/route.js';
import { auditRoutes } from '../audit/routes.js';
import { commissioningRoutes } from '../commissioning/routes.js';
import { ingestRoutes } from '../ingest/routes.js';
import { policyRoutes } from '../policy/routes.js';
import { reenrolmentRoutes } from '../reenrolment/routes.js';
import { revocationRoutes } from '../revocation/routes.js';
import { stationKeyRoutes } from '../station-keys/routes.js';
import { stationRoutes } from '../stations/routes.js';
import { transitionRoutes } from '../transitions/routes.js';
import { healthRoutes } from './health.js';

/** The identity lifecycle's part in ingest: prechecks, devices and credentials, CRLs, a bundle's revocations. */
export const lifecycleIngestHooks: IngestHooks = {
  precheck: lifecyclePrecheck,
  apply: async (ctx, tx, stationId, stored) => ({
    credentialsChanged: (await lifecycleApplyRecords(ctx, tx, stationId, stored)).crlChanged,
  }),
  credentialsChanged: async (ctx, stationId) => {
    await refreshCrl(ctx, stationId);
  },
  revocations: (ctx, trust, events) => stationScrapRevocations(ctx, trust, events, 'bundle'),
};

/** The parameters of an ingest entry point without its hooks (the second one). */
type WithoutHooks<A extends unknown[]> = A extends [infer C, IngestHooks, ...infer R] ? [C, ...R] : never;

/** Ingest records of a station with the lifecycle hooks (registry/ingest/service.ts `ingestRecords`). */
export function ingestRecords(
  ...[ctx, ...rest]: WithoutHooks<Parameters<typeof ingest.ingestRecords>>
): Promise<Result<BatchResponse, ApiError>> {
  return ingest.ingestRecords(ctx, lifecycleIngestHooks, ...rest);
}

/** Verify and ingest a bundle with the lifecycle hooks (registry/ingest/service.ts `importBundle`). */
export function importBundle(
  ...[ctx, ...rest]: WithoutHooks<Parameters<typeof ingest.importBundle>>
): Promise<Result<BundleResponse, ApiError>> {
  return ingest.importBundle(ctx, lifecycleIngestHooks, ...rest);
}

/** Every route's handler, by route name (core/hq/routes.ts): what registry/http/server.ts mounts. */
export const REGISTRY_ROUTES: RouteHandlers = {
  ...healthRoutes,
  ...ingestRoutes(lifecycleIngestHooks),
  ...auditRoutes,
  ...stationRoutes,
  ...transitionRoutes,
  ...stationKeyRoutes,
  ...policyRoutes,
  ...revocationRoutes,
  ...reenrolmentRoutes,
  ...commissioningRoutes,
};

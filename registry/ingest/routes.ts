/**
 * HTTP handlers of ingest: a station's batch (its records parsed by the verification workers: ./batch-body.ts), and
 * a bundle from its station or the admin (`allowRevokedStation` only with the admin token; a v2 bundle object's records
 * parsed by the verification workers: ./bundle-body.ts). Built with the
 * lifecycle's IngestHooks (registry/http/compose.ts). Imports core, registry/common, registry/trust and ./.
 */
import { BatchRequestSchema, BundleRequestSchema } from '../../core/hq/protocol.js';
import type { Caller } from '../common/context.js';
import { apiFail } from '../common/errors.js';
import {
  json,
  jsonContent,
  stationCaller,
  strictJsonBody,
  type RouteHandlers,
  type RouteRequest,
} from '../common/route.js';
import { verifyPool } from '../trust/pool.js';
import { splitBatchBody } from './batch-body.js';
import { splitBundleBody } from './bundle-body.js';
import type { IngestHooks } from './hooks.js';
import { checkRecordsText, importBundle, importBundleText, ingestChecked, ingestRecords } from './service.js';

/** The ingest handlers, with the lifecycle's hooks. */
export function ingestRoutes(hooks: IngestHooks): RouteHandlers {
  return {
    batches: {
      async handle(r) {
        // The records parsed and validated by the verification workers, when the body splits (./batch-body.ts).
        const text = jsonContent(r) ? splitBatchBody(r.body) : null;
        if (text && verifyPool().parallel(text.records.starts.length)) {
          const { trust } = stationCaller(r);
          const v = text.envelope;
          const checked = await checkRecordsText(r.ctx, trust, text.records, v.certificates);
          if (checked !== 'malformed')
            return json(await ingestChecked(r.ctx, hooks, trust, v.batchId, checked, 'batch', undefined, v.auditHead));
          // A share is not what the scan found: the body read whole says what is wrong.
        }
        const b = strictJsonBody(r, BatchRequestSchema);
        if (!b.ok) return b;
        const { trust } = stationCaller(r);
        const v = b.value;
        return json(
          await ingestRecords(
            r.ctx,
            hooks,
            trust,
            v.batchId,
            v.records,
            'batch',
            undefined,
            v.auditHead,
            undefined,
            v.certificates,
          ),
        );
      },
    },
    bundles: {
      async handle(r) {
        // A v2 bundle object's records parsed and validated by the verification workers, when the body splits
        // (./bundle-body.ts). Any refusal before they were read: the body read whole answers, as it always did.
        const text = jsonContent(r) ? splitBundleBody(r.body) : null;
        if (
          text &&
          verifyPool().parallel(text.records.starts.length) &&
          (text.allowRevokedStation !== true || r.caller.kind === 'admin')
        ) {
          const answer = await importBundleText(
            r.ctx,
            hooks,
            bundleCaller(r, text.allowRevokedStation),
            text.bundle,
            text.records,
          );
          if (answer !== 'unread') return json(answer);
        }
        const b = strictJsonBody(r, BundleRequestSchema);
        if (!b.ok) return b;
        if (b.value.allowRevokedStation && r.caller.kind !== 'admin')
          return apiFail('AUTH_FORBIDDEN', 'allowRevokedStation needs the admin token');
        return json(await importBundle(r.ctx, hooks, bundleCaller(r, b.value.allowRevokedStation), b.value.bundle));
      },
    },
  };
}

/** Who imports a bundle: the admin (with `allowRevokedStation` as the body says), or the calling station. */
function bundleCaller(r: RouteRequest, allowRevokedStation: boolean | undefined): Caller {
  return r.caller.kind === 'admin'
    ? { kind: 'admin', allowRevokedStation: allowRevokedStation === true }
    : stationCaller(r);
}

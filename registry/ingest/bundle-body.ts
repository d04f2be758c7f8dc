/**
 * A bundle request body read once (docs/registry-api.md "Bundles", docs/architecture.md "Registry ingest"), as a
 * batch body is (./batch-body.ts): for `{"bundle": {v2 object}, "allowRevokedStation"?}` the main thread parses and
 * validates everything but the bundle's records (the request with `bundle.records` replaced by `[]`, checked with
 * BundleRequestSchema) and FINDS the records (./body-scan.ts), whose JSON text the verification workers parse and
 * validate (registry/trust/pool.ts `verifyText`). A bundle sent as a string (a v1 JWS, or a v2 file's text) is not
 * split: the scan finds no object at `bundle`. Whenever the scan is not sure (not UTF-8, a key with an escape,
 * `bundle` or `records` twice, `records` not an array, 0 or more than MAX_BUNDLE_RECORDS records, the rest invalid),
 * this answers null and the route reads the body whole as before (`strictJsonBody`), which says what is wrong in the
 * same words; so does the route when a worker cannot read its share, or the import is refused before the records
 * were read (./service.ts `importBundleText`). Imports core, registry/trust and ./body-scan.ts.
 */
import { BundleRequestSchema, MAX_BUNDLE_RECORDS } from '../../core/hq/protocol.js';
import type { BundleFileV2Head } from '../trust/bundles.js';
import type { RecordsText } from '../trust/pool.js';
import { splitBody } from './body-scan.js';

/** A bundle body split: the request without the bundle's records parsed and valid, the records found, not parsed. */
export interface BundleText {
  readonly bundle: BundleFileV2Head;
  readonly allowRevokedStation?: boolean;
  readonly records: RecordsText;
}

/**
 * Split a bundle body (the route's bytes): the request checked with BundleRequestSchema (the bundle's records stood
 * in for by `[]`; their count was checked by the scan), the records found. Null: read the body whole
 * (`strictJsonBody`), which answers what is wrong.
 */
export function splitBundleBody(body: Uint8Array): BundleText | null {
  const s = splitBody(body, ['bundle', 'records'], MAX_BUNDLE_RECORDS, '[]');
  if (!s) return null;
  const p = BundleRequestSchema.safeParse(s.envelope);
  if (!p.success || typeof p.data.bundle === 'string') return null;
  const { records: _standIn, ...bundle } = p.data.bundle;
  return {
    bundle,
    ...(p.data.allowRevokedStation !== undefined ? { allowRevokedStation: p.data.allowRevokedStation } : {}),
    records: { body: s.body, starts: s.found.starts, ends: s.found.ends },
  };
}

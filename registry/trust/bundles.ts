/**
 * Verification of a station's bundle against what was ENROLLED for it, in both formats (docs/formats.md "Bundles"):
 * v1 (one compact JWS holding every record) and v2 (a JSON file: certificate table, packed records, audit head,
 * revocation events, and a small signed manifest that binds them by digest). The whole-bundle checks are here; the
 * records are rebuilt and verified by the caller (./pool.ts), which then checks `recordsSha256` with
 * `bundleRecordsMatch`. INPUT_INVALID with a message that says what is wrong (truncated, modified, incomplete).
 * Imports core and ./records.ts, ./verify.ts.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../core/canonical.js';
import { fail } from '../../core/errors.js';
import { ok, type Result } from '../../core/result.js';
import type { AuditHeadSubmission } from '../../core/hq/audit-head.js';
import { parseCompactJws } from '../../core/hq/jws.js';
import type { PackedRecord } from '../../core/hq/pack.js';
import {
  BUNDLE_TYP,
  BundleFileV2Schema,
  BundleManifestV2Schema,
  BundlePayloadSchema,
  MAX_BUNDLE_BYTES,
  zodMessage,
  type BundleFileV2,
} from '../../core/hq/protocol.js';
import { recordsDigestSync } from './records.js';
import { madeBeforeRotation, signerKeyOf, verifyWithStationKey, type StationTrust } from './verify.js';

/** A bundle as it arrives: the file's text (v1 or v2), or a v2 bundle already parsed from a JSON body. */
export type BundleInput = string | BundleFileV2;

/**
 * A v2 bundle file without its records: what the main thread parses of a bundle body whose records the verification
 * workers read (registry/ingest/bundle-body.ts).
 */
export type BundleFileV2Head = Omit<BundleFileV2, 'records'>;

/** A bundle whose signature and manifest verified; its records still to rebuild and verify. */
export interface VerifiedBundle extends VerifiedBundleHead {
  readonly records: readonly PackedRecord[];
}

/** A verified bundle but for its records (`verifyBundleHead`: their count checked, their text not yet read). */
export interface VerifiedBundleHead {
  readonly format: 'v1' | 'v2';
  readonly bundleId: string;
  readonly stationId: string;
  readonly certificates: readonly string[];
  /** The digest the rebuilt records must have (`recordsSha256` of the signed payload or manifest). */
  readonly recordsSha256: string;
  readonly auditHead?: AuditHeadSubmission;
  readonly revocations?: readonly string[];
}

const TRUNCATED = 'the bundle is truncated or corrupted and was rejected as a whole';

type Parsed<V2> = { readonly v1: string } | { readonly v2: V2 } | { readonly error: string };

/** Tell the formats apart: a v2 file is a JSON object, a v1 file a compact JWS. */
function parseBundle<V2 extends BundleFileV2Head>(input: string | V2): Parsed<V2 | BundleFileV2> {
  if (typeof input !== 'string') return { v2: input };
  const text = input.trim();
  if (!text.startsWith('{')) return { v1: text };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { error: `${TRUNCATED} (not valid JSON)` };
  }
  const f = BundleFileV2Schema.safeParse(json);
  return f.success ? { v2: f.data } : { error: `${TRUNCATED} (${zodMessage(f.error)})` };
}

/** The station id a bundle claims (header kid, before verification): to look up the enrolled station. */
export function bundleStationId(input: BundleInput | BundleFileV2Head): string | null {
  const b = parseBundle(input);
  if ('error' in b) return null;
  const p = parseCompactJws('v1' in b ? b.v1 : b.v2.signed, 'bundle', MAX_BUNDLE_BYTES);
  if (!p.ok) return null;
  return typeof p.value.header.kid === 'string' ? p.value.header.kid : null;
}

/**
 * The signed part of a bundle (v1: the whole bundle; v2: the manifest): typ line-station-bundle+jws, x5c leaf = an
 * enrolled certificate of the station, signature, payload JSON; returns the payload and the key that signed it.
 */
function verifySigned(
  trust: StationTrust,
  jws: string,
): Result<{ json: unknown; signer: NonNullable<ReturnType<typeof signerKeyOf>> }> {
  const p = parseCompactJws(jws, 'bundle', MAX_BUNDLE_BYTES);
  if (!p.ok) return fail('INPUT_INVALID', `${TRUNCATED} (${p.error.message})`);
  if (p.value.header.typ !== BUNDLE_TYP) return fail('INPUT_INVALID', `bundle: typ is not ${BUNDLE_TYP}`);
  const signer = signerKeyOf(trust, p.value);
  if (!signer)
    return fail(
      'INPUT_INVALID',
      `bundle: the x5c leaf is not the enrolled certificate of station ${trust.row.stationId}`,
    );
  const sig = verifyWithStationKey(signer, p.value, 'bundle');
  if (!sig.ok)
    return fail(
      'INPUT_INVALID',
      `bundle: the signature does not verify with the key of station ${trust.row.stationId}: the file was modified or truncated; rejected as a whole`,
    );
  try {
    return ok({ json: JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.value.payload)), signer });
  } catch {
    return fail('INPUT_INVALID', 'bundle: the payload is not JSON');
  }
}

/** What both formats check on the signed payload: the station, the key rotation, the count. */
function checkSignedFacts(
  trust: StationTrust,
  signer: NonNullable<ReturnType<typeof signerKeyOf>>,
  facts: { stationId: string; createdAt: string; count: number },
  records: number,
): Result<true> {
  if (facts.stationId !== trust.row.stationId)
    return fail('INPUT_INVALID', `bundle: made by station ${facts.stationId}, signed by ${trust.row.stationId}`);
  if (!madeBeforeRotation(signer, facts.createdAt))
    return fail(
      'INPUT_INVALID',
      `bundle: signed with the station key replaced at ${signer.replacedAt} (key rotation) but created at ${facts.createdAt}, after the rotation: export it again`,
    );
  if (facts.count !== records)
    return fail('INPUT_INVALID', `bundle is incomplete: it declares ${facts.count} records but holds ${records}`);
  return ok(true);
}

const sha256Of = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * Verify a bundle as a whole against its enrolled station. v1: JWS (typ, x5c leaf = the enrolled certificate,
 * signature by the enrolled key), payload schema, stationId, count. v2: the same on the signed manifest, then the
 * digests of the certificate table, the audit head and the revocation events. Both: `recordsSha256` is checked by
 * `bundleRecordsMatch` once the records are rebuilt.
 */
export function verifyBundle(trust: StationTrust, input: BundleInput): Result<VerifiedBundle> {
  const parsed = parseBundle(input);
  if ('error' in parsed) return fail('INPUT_INVALID', parsed.error);
  if ('v1' in parsed) {
    const s = verifySigned(trust, parsed.v1);
    if (!s.ok) return s;
    const b = BundlePayloadSchema.safeParse(s.value.json);
    if (!b.success) return fail('INPUT_INVALID', `bundle: ${zodMessage(b.error)}`);
    const facts = checkSignedFacts(trust, s.value.signer, b.data, b.data.records.length);
    if (!facts.ok) return facts;
    return ok({
      format: 'v1',
      bundleId: b.data.bundleId,
      stationId: b.data.stationId,
      records: b.data.records,
      certificates: [],
      recordsSha256: b.data.recordsSha256,
      ...(b.data.auditHead ? { auditHead: b.data.auditHead } : {}),
      ...(b.data.revocations ? { revocations: b.data.revocations } : {}),
    });
  }
  const head = verifyBundleHead(trust, parsed.v2, parsed.v2.records.length);
  return head.ok ? ok({ ...head.value, records: parsed.v2.records }) : head;
}

/**
 * verifyBundle of a v2 bundle file whose `count` records the caller has found but not read
 * (registry/ingest/bundle-body.ts; verifyBundle's own v2 path): the signed manifest, the station, the key rotation,
 * the count, at least one record or event, the digests of the certificate table, the audit head and the revocation
 * events. `recordsSha256` is checked by `bundleRecordsMatch` once the records are rebuilt.
 */
export function verifyBundleHead(
  trust: StationTrust,
  file: BundleFileV2Head,
  count: number,
): Result<VerifiedBundleHead> {
  const s = verifySigned(trust, file.signed);
  if (!s.ok) return s;
  const m = BundleManifestV2Schema.safeParse(s.value.json);
  if (!m.success) return fail('INPUT_INVALID', `bundle: ${zodMessage(m.error)}`);
  const man = m.data;
  const facts = checkSignedFacts(trust, s.value.signer, man, count);
  if (!facts.ok) return facts;
  if (count === 0 && !file.revocations)
    return fail('INPUT_INVALID', 'bundle: a bundle holds at least one record or revocation event');
  const altered = (what: string) =>
    fail('INPUT_INVALID', `bundle is incomplete or altered: ${what} does not match the signed manifest`);
  if (sha256Of(canonicalJson(file.certificates)) !== man.certificatesSha256) return altered('the certificate table');
  if ((file.auditHead ? sha256Of(canonicalJson(file.auditHead)) : undefined) !== man.auditHeadSha256)
    return altered('the audit head');
  if ((file.revocations ? recordsDigestSync(file.revocations) : undefined) !== man.revocationsSha256)
    return altered('the revocation events');
  return ok({
    format: 'v2',
    bundleId: man.bundleId,
    stationId: man.stationId,
    certificates: file.certificates,
    recordsSha256: man.recordsSha256,
    ...(file.auditHead ? { auditHead: file.auditHead } : {}),
    ...(file.revocations ? { revocations: file.revocations } : {}),
  });
}

/**
 * Whether the rebuilt records are exactly the ones the bundle's signature covers: `digest`, their recordsDigestSync
 * (pool.ts `checkedDigest`), is its `recordsSha256`.
 */
export function bundleRecordsMatch(b: VerifiedBundleHead, digest: string): Result<true> {
  return digest === b.recordsSha256
    ? ok(true)
    : fail('INPUT_INVALID', 'bundle is incomplete or altered: recordsSha256 does not match its records');
}

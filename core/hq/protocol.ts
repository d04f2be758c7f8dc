/**
 * The registry wire protocol (docs/registry-api.md): types and zod schemas of every HTTP body and file
 * format, and the helpers the station side uses (request signatures, bundles, receipt verification).
 * Pure: only core/ and WebCrypto, so the station (and a browser) can import it.
 */
import { z } from 'zod';
import { concatBytes, fromBase64Url, sha256Hex, toBase64Url, utf8 } from '../bytes.js';
import { canonicalJson } from '../canonical.js';
import { fail } from '../errors.js';
import type { Clock, Signer } from '../ports.js';
import { ok, type Result } from '../result.js';
import { parseCertificate } from '../pki/chain.js';
import { signJws } from '../pki/jws.js';
import { ProvisioningRecordSchema, RECORD_SCHEMA, RECORD_TYP } from '../provisioning/record.js';
import { importJwsKey, parseCompactJws, verifyParsedJws } from './jws.js';
import { packRecords, type PackedJws, type PackedRecord } from './pack.js';
import { zodMessage } from '../zod-message.js';
import { AuditAnchorOutcomeSchema, AuditHeadSubmissionSchema, type AuditHeadSubmission } from './audit-head.js';

export { ProvisioningRecordSchema, RECORD_SCHEMA, RECORD_TYP };
export {
  FAILED_ISSUANCE_REASON,
  FAILED_ISSUANCE_SCHEMA,
  FAILED_ISSUANCE_TYP,
  FailedIssuancePayloadSchema,
  type FailedIssuancePayload,
} from '../failed-issuance.js';

// ---------------------------------------------------------------- constants

export { zodMessage };

export const API_VERSION = 'v1';
export const REQUEST_TYP = 'line-station-request+jws';
export const RECEIPT_TYP = 'line-station-receipt+jws';
export const BUNDLE_TYP = 'line-station-bundle+jws';
export const RECEIPT_SCHEMA = 'line-station/receipt/v1';
export const BUNDLE_SCHEMA = 'line-station/bundle/v1';
/** Bundle format v2 (docs/formats.md "Bundle v2"): certificates once, records packed, a small signed manifest. */
export const BUNDLE_SCHEMA_V2 = 'line-station/bundle/v2';
/** Authorization scheme of station requests: `Authorization: LS-Sig <compact JWS>`. */
export const AUTH_SCHEME = 'LS-Sig';

export const MAX_BATCH_RECORDS = 500;
/**
 * A record with its certificate, chain and manifest is ~13 KiB as a compact JWS, ~17 KiB once base64url-encoded in a
 * v1 bundle JWS, ~3.3 KiB packed in a v2 bundle: 2,000 records stay well inside MAX_BUNDLE_BYTES (and the body
 * limit) either way. A station with more exports several bundles.
 */
export const MAX_BUNDLE_RECORDS = 2000;
// The body size limits live in ./limits.ts (the route table reads them without this module's schemas).
export { MAX_BATCH_BYTES, MAX_BUNDLE_BYTES, MAX_OCSP_REQUEST_BYTES, MAX_SMALL_BODY_BYTES } from './limits.js';
import { MAX_BUNDLE_BYTES } from './limits.js';
/**
 * Station side: the largest registry answer a station reads (batch responses, policy and quota documents, key
 * rotation answers); above it the station stops reading and fails with SYNC_RESPONSE_TOO_LARGE.
 */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Station side: the largest `GET /v1/health` answer a station reads. */
export const MAX_HEALTH_RESPONSE_BYTES = 16 * 1024;
/** Maximum size of one record JWS. */
export const MAX_RECORD_CHARS = 64 * 1024;
/** Most certificates in the table of one v2 batch or bundle (a record adds its own device certificate and a few). */
export const MAX_TABLE_CERTIFICATES = 16 * MAX_BUNDLE_RECORDS;
/** Longest certificate of a table (standard base64 DER). */
export const MAX_TABLE_CERTIFICATE_CHARS = 16 * 1024;
/** Accepted clock difference between a request's `ts` and the registry clock. */
export const MAX_CLOCK_SKEW_S = 300;

// ---------------------------------------------------------------- common pieces

const HEX64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
const ISO = z.iso.datetime({ offset: false });
/** Station ids: what `station init` puts in the station certificate CN. */
export const StationIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected 1..64 of A-Z a-z 0-9 . _ -');
export const WorkOrderSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected 1..64 of A-Z a-z 0-9 . _ -');
/** Record ids (uuids in practice; any 1..128 safe characters are accepted). */
export const RecordIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'expected 1..128 of A-Z a-z 0-9 . _ : -');

// ---------------------------------------------------------------- errors

// The error codes live in ./registry-errors.ts (the registry's services read them without this module's schemas).
export { REGISTRY_ERRORS, type RegistryErrorCode } from './registry-errors.js';
import { REGISTRY_ERRORS, type RegistryErrorCode } from './registry-errors.js';

export const ErrorBodySchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(REGISTRY_ERRORS) as [RegistryErrorCode, ...RegistryErrorCode[]]),
      message: z.string(),
    }),
  })
  .strict();
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

// ---------------------------------------------------------------- request authentication

/** Payload of the `LS-Sig` JWS (canonical JSON). */
export const RequestClaimsSchema = z
  .object({
    method: z.enum(['GET', 'POST', 'PUT', 'DELETE']),
    /** Request target as sent: path plus query string, e.g. `/v1/batches`. */
    path: z.string().min(1).max(2048).startsWith('/'),
    /** SHA-256 (hex) of the exact body bytes (of the empty string for GET). */
    bodySha256: HEX64,
    ts: ISO,
    /** 16 random bytes, base64url (22 characters). */
    nonce: z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'expected 16 bytes base64url'),
    /** Audience: `registryAudience` of the registry certificate the station pinned (registry.pem). */
    aud: HEX64,
  })
  .strict();
export type RequestClaims = z.infer<typeof RequestClaimsSchema>;

/**
 * The audience a station names in its signed requests: the SHA-256 (hex) of the registry certificate (DER) it
 * pinned (`registry.pem`). A registry refuses requests for another audience (AUTH_AUDIENCE_MISMATCH), so a request
 * captured at one registry cannot be replayed to another.
 */
export function registryAudience(registryCertificate: Uint8Array): Promise<string> {
  return sha256Hex(registryCertificate);
}

/**
 * Sign a station request: returns the `Authorization` header value `LS-Sig <compact JWS>` whose protected header is
 * {alg, typ: "line-station-request+jws", kid: stationId} and whose payload is the canonical JSON of
 * {aud, bodySha256, method, nonce, path, ts}; `audience` is `registryAudience(pinned registry certificate)`.
 * Sign a fresh header for every attempt (nonces are single use).
 */
export async function signRequest(
  signer: Signer,
  stationId: string,
  method: string,
  path: string,
  body: Uint8Array | string,
  clock: Clock,
  audience: string,
): Promise<Result<string>> {
  if (!/^[0-9a-f]{64}$/.test(audience))
    return fail('CONFIG_INVALID', 'signRequest: the audience must be the SHA-256 (hex) of the registry certificate');
  const claims: RequestClaims = {
    method: method.toUpperCase() as RequestClaims['method'],
    path,
    bodySha256: await sha256Hex(typeof body === 'string' ? utf8(body) : body),
    ts: clock.now().toISOString(),
    nonce: toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(16))),
    aud: audience,
  };
  const jws = await signJws({
    signer,
    payload: utf8(canonicalJson(claims)),
    header: { typ: REQUEST_TYP, kid: stationId },
  });
  return jws.ok ? ok(`${AUTH_SCHEME} ${jws.value}`) : jws;
}

// ---------------------------------------------------------------- provisioning records (what the registry checks)

/** The record payload the registry validates: core/provisioning/record.ts `ProvisioningRecordSchema` (strict). */
export type RecordPayload = z.infer<typeof ProvisioningRecordSchema>;

/** Why a record was not accepted (per-record `reason` in results and receipts). */
export const REJECT_REASONS = [
  'malformed', // not a compact JWS (truncated, bad base64url, header not JSON)
  'header-invalid', // alg, typ or x5c not acceptable
  'signer-mismatch', // x5c leaf is not the enrolled station certificate
  'signature-invalid', // the record signature does not verify with the enrolled station key
  'payload-invalid', // the payload is not a valid provisioning record
  'station-mismatch', // record.station is not the authenticated station (or its certificate)
  'work-order-not-allowed', // the station is not enrolled for this work order
  'certificate-invalid', // the device certificate does not parse, has the wrong hash/serial or does not chain to the station CA
  'key-mismatch', // the device certificate key is not record.key.publicKeySpki
  'manifest-invalid', // the baseline manifest is not signed by the station key
  'conflict', // a record with this id and a DIFFERENT content is already stored
  // identity lifecycle (docs/lifecycle.md)
  'DEVICE_DECOMMISSIONED', // the device was decommissioned: it cannot be provisioned again (unless released)
  'DEVICE_BLOCKED', // the serial number or chip id is blocked at headquarters
  'STATION_REVOKED', // the record was completed after the station's revocation time
  'OPERATOR_REVOKED', // the record was completed after the operator's revocation time
  // the record's certificate was revoked as a failed issuance (on the CRL for good): a record for it would present
  // a revoked identity as provisioned
  'certificate-revoked-failed-issuance',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

// ---------------------------------------------------------------- station revocation events

/** Most events in one `POST /v1/revocations` (and in one bundle). */
export const MAX_REVOCATION_EVENTS = 500;
/** Longest event JWS (a failed-issuance event carries its certificate). */
export const MAX_REVOCATION_EVENT_CHARS = 64 * 1024;

/** Why the registry refused a scrap or failed-issuance event (per-event `reason`). */
export const REVOCATION_REJECT_REASONS = [
  'malformed', // not a compact JWS
  'header-invalid', // typ (scrap or failed-issuance), alg or x5c not acceptable
  'signer-mismatch', // x5c leaf is not a (current or, for events made before a rotation, replaced) station certificate
  'signature-invalid',
  'payload-invalid', // the payload does not match its schema
  'station-mismatch', // the event names another station than the caller
  // scrap events
  'unknown-credential', // the certificate is not a credential of a device of this station
  'device-mismatch', // the credential belongs to another board than the event names
  'credential-not-active',
  'transition-invalid',
  // failed-issuance events
  'certificate-invalid', // does not parse, hash or serial differ from the event, or not issued by the station's issuing CA
  'certificate-in-record', // the registry holds a record with this certificate: it was not a failed issuance
] as const;
export type RevocationRejectReason = (typeof REVOCATION_REJECT_REASONS)[number];

export const RevocationResultSchema = z
  .object({
    /** The event's requestId (null when the JWS could not be read far enough to know it). */
    requestId: z.string().nullable(),
    status: z.enum(['revoked', 'duplicate', 'rejected']),
    reason: z.enum(REVOCATION_REJECT_REASONS).optional(),
    message: z.string().optional(),
  })
  .strict();
export type RevocationResult = z.infer<typeof RevocationResultSchema>;

/** `POST /v1/revocations` body: scrap and failed-issuance events, each a station-signed compact JWS. */
export const RevocationsRequestSchema = z
  .object({
    requests: z.array(z.string().min(1).max(MAX_REVOCATION_EVENT_CHARS)).min(1).max(MAX_REVOCATION_EVENTS),
  })
  .strict();
export type RevocationsRequest = z.infer<typeof RevocationsRequestSchema>;

export const RevocationsResponseSchema = z.object({ results: z.array(RevocationResultSchema) }).strict();
export type RevocationsResponse = z.infer<typeof RevocationsResponseSchema>;

// ---------------------------------------------------------------- batches

/** A packed record (core/hq/pack.ts, docs/formats.md "Packed JWS"); its payload is checked when it is rebuilt. */
export const PackedJwsSchema: z.ZodType<PackedJws> = z
  .object({
    alg: z.enum(['ES256', 'ES384']),
    typ: z.string().max(256).optional(),
    kid: z.string().max(256).optional(),
    x5c: z.array(z.number().int().min(0)).min(1).max(8).optional(),
    payload: z.unknown(),
    signature: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, 'expected base64url'),
  })
  .strict() as z.ZodType<PackedJws>;

/** A record of a batch or bundle: a compact JWS (format v1 and v2), or packed (v2). */
export const BatchRecordSchema: z.ZodType<PackedRecord> = z.union([z.string().max(MAX_RECORD_CHARS), PackedJwsSchema]);

/** The certificate table of a v2 batch or bundle: standard base64 DER, each once. */
export const CertificateTableSchema = z
  .array(
    z
      .string()
      .min(4)
      .max(MAX_TABLE_CERTIFICATE_CHARS)
      .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'expected base64 DER'),
  )
  .max(MAX_TABLE_CERTIFICATES);

export const BatchRequestSchema = z
  .object({
    batchId: z.uuid(),
    /** Format v1: compact JWS only. Format v2: packed records whose certificates are in `certificates`. */
    records: z.array(BatchRecordSchema).min(1).max(MAX_BATCH_RECORDS),
    certificates: CertificateTableSchema.optional(),
    /** The station's signed audit head and consistency proof (core/hq/audit-head.ts, docs/audit.md). */
    auditHead: AuditHeadSubmissionSchema.optional(),
  })
  .strict();
export type BatchRequest = z.infer<typeof BatchRequestSchema>;

export const RecordResultSchema = z
  .object({
    /** Position in the submitted list. */
    index: z.number().int().min(0),
    /** Null when the record could not be parsed far enough to read its id. */
    recordId: z.string().nullable(),
    status: z.enum(['accepted', 'duplicate', 'conflict', 'rejected']),
    /** SHA-256 (hex) of the record payload (the signed JSON), when it could be read. */
    sha256: HEX64.nullable(),
    reason: z.enum(REJECT_REASONS).nullable(),
    message: z.string().nullable(),
  })
  .strict();
export type RecordResult = z.infer<typeof RecordResultSchema>;

export const ReceiptPayloadSchema = z
  .object({
    schema: z.literal(RECEIPT_SCHEMA),
    receiptId: z.uuid(),
    registryId: z.string().min(1).max(128),
    stationId: StationIdSchema,
    /** The batchId, or the bundleId for bundles. */
    batchId: z.uuid(),
    issuedAt: ISO,
    /** Stored records (newly accepted and duplicates): the station may mark them synced. */
    accepted: z.array(z.object({ recordId: z.string(), sha256: HEX64 }).strict()),
    /** Not stored (rejected or conflict). */
    rejected: z.array(
      z
        .object({ index: z.number().int().min(0), recordId: z.string().nullable(), reason: z.enum(REJECT_REASONS) })
        .strict(),
    ),
    /** The verdict on the audit head sent with the batch or bundle (absent when none was sent). */
    auditHead: AuditAnchorOutcomeSchema.optional(),
    /** Bundles with revocation events only: the answer per event (as `POST /v1/revocations` gives it). */
    revocations: z.array(RevocationResultSchema).optional(),
  })
  .strict();
export type ReceiptPayload = z.infer<typeof ReceiptPayloadSchema>;

export const IngestSummarySchema = z
  .object({
    accepted: z.number().int(),
    duplicate: z.number().int(),
    conflict: z.number().int(),
    rejected: z.number().int(),
  })
  .strict();
export type IngestSummary = z.infer<typeof IngestSummarySchema>;

export const BatchResponseSchema = z
  .object({
    batchId: z.uuid(),
    stationId: StationIdSchema,
    /** True when this batchId had been processed before and the stored answer is returned. */
    repeated: z.boolean(),
    summary: IngestSummarySchema,
    results: z.array(RecordResultSchema),
    /** The signed receipt (compact JWS, typ line-station-receipt+jws). */
    receipt: z.string(),
  })
  .strict();
export type BatchResponse = z.infer<typeof BatchResponseSchema>;

// ---------------------------------------------------------------- bundles

export const BundlePayloadSchema = z
  .object({
    schema: z.literal(BUNDLE_SCHEMA),
    bundleId: z.uuid(),
    stationId: StationIdSchema,
    createdAt: ISO,
    /** At least one record, unless the bundle carries revocation events. */
    records: z.array(z.string().max(MAX_RECORD_CHARS)).max(MAX_BUNDLE_RECORDS),
    count: z.number().int().min(0).max(MAX_BUNDLE_RECORDS),
    /** SHA-256 (hex) over the concatenation of the record JWS strings (UTF-8), in order. */
    recordsSha256: HEX64,
    /** The station's signed audit head and consistency proof (core/hq/audit-head.ts, docs/audit.md). */
    auditHead: AuditHeadSubmissionSchema.optional(),
    /** Scrap and failed-issuance events (each a station-signed compact JWS), as `POST /v1/revocations` takes them. */
    revocations: z
      .array(z.string().min(1).max(MAX_REVOCATION_EVENT_CHARS))
      .min(1)
      .max(MAX_REVOCATION_EVENTS)
      .optional(),
  })
  .strict()
  .refine((b) => b.records.length > 0 || (b.revocations?.length ?? 0) > 0, {
    message: 'a bundle holds at least one record or revocation event',
    path: ['records'],
  });
export type BundlePayload = z.infer<typeof BundlePayloadSchema>;

/**
 * The signed manifest of a v2 bundle (the payload of its `signed` JWS): the bundle's identity and the digests that
 * bind everything else in the file.
 */
export const BundleManifestV2Schema = z
  .object({
    schema: z.literal(BUNDLE_SCHEMA_V2),
    bundleId: z.uuid(),
    stationId: StationIdSchema,
    createdAt: ISO,
    count: z.number().int().min(0).max(MAX_BUNDLE_RECORDS),
    /** SHA-256 (hex) over the concatenation of the REBUILT record JWS strings (UTF-8), in order: as in v1. */
    recordsSha256: HEX64,
    /** SHA-256 (hex) of the canonical JSON of the file's `certificates` array. */
    certificatesSha256: HEX64,
    /** SHA-256 (hex) of the canonical JSON of the file's `auditHead`, when it has one. */
    auditHeadSha256: HEX64.optional(),
    /** SHA-256 (hex) over the concatenation of the file's `revocations` JWS strings, when it has any. */
    revocationsSha256: HEX64.optional(),
  })
  .strict();
export type BundleManifestV2 = z.infer<typeof BundleManifestV2Schema>;

/** A v2 bundle file (one JSON object). */
export const BundleFileV2Schema = z
  .object({
    schema: z.literal(BUNDLE_SCHEMA_V2),
    /** Compact JWS (typ line-station-bundle+jws, x5c = station chain), payload = BundleManifestV2 canonical JSON. */
    signed: z
      .string()
      .min(1)
      .max(64 * 1024),
    certificates: CertificateTableSchema,
    records: z.array(BatchRecordSchema).max(MAX_BUNDLE_RECORDS),
    auditHead: AuditHeadSubmissionSchema.optional(),
    revocations: z
      .array(z.string().min(1).max(MAX_REVOCATION_EVENT_CHARS))
      .min(1)
      .max(MAX_REVOCATION_EVENTS)
      .optional(),
  })
  .strict();
export type BundleFileV2 = z.infer<typeof BundleFileV2Schema>;

export const BundleRequestSchema = z
  .object({
    /** The bundle file's text (v1: the compact JWS; v2: the JSON object's text), or a v2 bundle as JSON. */
    bundle: z.union([z.string().min(1).max(MAX_BUNDLE_BYTES), BundleFileV2Schema]),
    /** Admin only: import a revoked station's bundle (records completed before the revocation are accepted). */
    allowRevokedStation: z.boolean().optional(),
  })
  .strict();
export type BundleRequest = z.infer<typeof BundleRequestSchema>;

export const BundleResponseSchema = BatchResponseSchema.extend({ bundleId: z.uuid() }).strict();
export type BundleResponse = z.infer<typeof BundleResponseSchema>;

/** SHA-256 (hex) over the concatenation of the record JWS strings: the bundle's `recordsSha256`. */
export async function recordsDigest(records: readonly string[]): Promise<string> {
  return sha256Hex(concatBytes(...records.map((r) => utf8(r))));
}

/** What a bundle is made of (both formats). */
export interface BundleContents {
  signer: Signer;
  chain: readonly Uint8Array[];
  stationId: string;
  records: readonly string[];
  /** Scrap and failed-issuance events (signed JWS) to carry too. */
  revocations?: readonly string[];
  clock: Clock;
  bundleId?: string;
  auditHead?: AuditHeadSubmission;
}

/** The bundle's events, after checking the counts of records and events. */
function bundleEvents(p: BundleContents): Result<readonly string[]> {
  const revocations = p.revocations ?? [];
  if (revocations.length > MAX_REVOCATION_EVENTS)
    return fail('INPUT_INVALID', `a bundle holds at most ${MAX_REVOCATION_EVENTS} revocation events`);
  if ((p.records.length === 0 && revocations.length === 0) || p.records.length > MAX_BUNDLE_RECORDS)
    return fail(
      'INPUT_INVALID',
      `a bundle holds 1..${MAX_BUNDLE_RECORDS} records (or none with revocation events), got ${p.records.length}`,
    );
  return ok(revocations);
}

/**
 * Build a bundle file in format v1 (`line-station/bundle/v1`, what older stations export; the tests of the old
 * format use it): a compact JWS signed by the station key with typ "line-station-bundle+jws", kid = stationId and
 * x5c = the station chain (DER, leaf first).
 */
export async function createBundle(p: BundleContents): Promise<Result<{ bundleId: string; jws: string }>> {
  const events = bundleEvents(p);
  if (!events.ok) return events;
  const revocations = events.value;
  const bundleId = p.bundleId ?? globalThis.crypto.randomUUID();
  const payload: BundlePayload = {
    schema: BUNDLE_SCHEMA,
    bundleId,
    stationId: p.stationId,
    createdAt: p.clock.now().toISOString(),
    records: [...p.records],
    count: p.records.length,
    recordsSha256: await recordsDigest(p.records),
    ...(p.auditHead ? { auditHead: p.auditHead } : {}),
    ...(revocations.length ? { revocations: [...revocations] } : {}),
  };
  const jws = await signJws({
    signer: p.signer,
    payload: utf8(canonicalJson(payload)),
    header: { typ: BUNDLE_TYP, kid: p.stationId, x5c: p.chain },
  });
  return jws.ok ? ok({ bundleId, jws: jws.value }) : jws;
}

/**
 * Build a v2 bundle file (`line-station/bundle/v2`, docs/formats.md "Bundle v2"): the records packed against one
 * certificate table, the audit head and revocation events as they are, and a small compact JWS signed by the station
 * key (typ line-station-bundle+jws, kid = stationId, x5c = the station chain) over the manifest that binds them.
 * `content` is the file's text (one line of JSON).
 */
export async function createBundleV2(p: BundleContents): Promise<Result<{ bundleId: string; content: string }>> {
  const events = bundleEvents(p);
  if (!events.ok) return events;
  const revocations = events.value;
  const bundleId = p.bundleId ?? globalThis.crypto.randomUUID();
  const packed = packRecords(p.records);
  const manifest: BundleManifestV2 = {
    schema: BUNDLE_SCHEMA_V2,
    bundleId,
    stationId: p.stationId,
    createdAt: p.clock.now().toISOString(),
    count: p.records.length,
    recordsSha256: await recordsDigest(p.records),
    certificatesSha256: await sha256Hex(canonicalJson(packed.certificates)),
    ...(p.auditHead ? { auditHeadSha256: await sha256Hex(canonicalJson(p.auditHead)) } : {}),
    ...(revocations.length ? { revocationsSha256: await recordsDigest(revocations) } : {}),
  };
  const signed = await signJws({
    signer: p.signer,
    payload: utf8(canonicalJson(manifest)),
    header: { typ: BUNDLE_TYP, kid: p.stationId, x5c: p.chain },
  });
  if (!signed.ok) return signed;
  const file: BundleFileV2 = {
    schema: BUNDLE_SCHEMA_V2,
    signed: signed.value,
    certificates: packed.certificates,
    records: packed.records,
    ...(p.auditHead ? { auditHead: p.auditHead } : {}),
    ...(revocations.length ? { revocations: [...revocations] } : {}),
  };
  return ok({ bundleId, content: JSON.stringify(file) });
}

// ---------------------------------------------------------------- receipts (station side)

/**
 * Verify a receipt with the registry certificate (DER, from `<data-dir>/registry.pem`): signature, typ, schema,
 * and optionally the expected station and batch. INPUT_INVALID with the reason on any failure.
 */
export async function verifyReceipt(
  receipt: string,
  registryCertificate: Uint8Array,
  expected: { stationId?: string; batchId?: string } = {},
): Promise<Result<ReceiptPayload>> {
  const cert = parseCertificate(registryCertificate, 'registry certificate');
  if (!cert.ok) return fail('INPUT_INVALID', cert.error);
  const key = await importJwsKey(new Uint8Array(cert.value.publicKey.rawData));
  if (!key) return fail('INPUT_INVALID', 'the registry certificate key is not an EC P-256/P-384 key');
  const parsed = parseCompactJws(receipt.trim(), 'receipt');
  if (!parsed.ok) return fail('INPUT_INVALID', parsed.error.message);
  if (parsed.value.header.typ !== RECEIPT_TYP) return fail('INPUT_INVALID', `receipt: typ is not ${RECEIPT_TYP}`);
  const v = await verifyParsedJws(parsed.value, key, 'receipt');
  if (!v.ok) return fail('INPUT_INVALID', v.error.message);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(parsed.value.payload));
  } catch {
    return fail('INPUT_INVALID', 'receipt: the payload is not JSON');
  }
  const p = ReceiptPayloadSchema.safeParse(json);
  if (!p.success) return fail('INPUT_INVALID', `receipt: ${zodMessage(p.error)}`);
  if (expected.stationId !== undefined && p.data.stationId !== expected.stationId)
    return fail('INPUT_INVALID', `receipt is for station ${p.data.stationId}, not ${expected.stationId}`);
  if (expected.batchId !== undefined && p.data.batchId !== expected.batchId)
    return fail('INPUT_INVALID', `receipt is for batch ${p.data.batchId}, not ${expected.batchId}`);
  return ok(p.data);
}

// ---------------------------------------------------------------- admin and query bodies

export const EnrollStationRequestSchema = z
  .object({
    stationId: StationIdSchema,
    /** PEM: station certificate, issuing CA, root (the station's pki/station-chain.pem). */
    chainPem: z
      .string()
      .min(1)
      .max(64 * 1024),
    /** Work orders the station may submit records for; empty or absent = any. */
    workOrders: z.array(WorkOrderSchema).max(1000).optional(),
  })
  .strict();
export type EnrollStationRequest = z.infer<typeof EnrollStationRequestSchema>;

export const StationSummarySchema = z
  .object({
    stationId: StationIdSchema,
    certificateSha256: HEX64,
    issuingCaSha256: HEX64,
    rootSha256: HEX64,
    workOrders: z.array(z.string()),
    enrolledAt: ISO,
    revokedAt: ISO.nullable(),
    lastSyncAt: ISO.nullable(),
    records: z.number().int(),
    conflicts: z.number().int(),
    /** Commissioned: its issuing CA was certified by the HQ CA (station_cas), not a station-rooted legacy chain. */
    hqCertified: z.boolean(),
  })
  .strict();
export type StationSummary = z.infer<typeof StationSummarySchema>;

export const StatsSchema = z
  .object({
    stations: z.number().int(),
    devices: z.number().int(),
    records: z.number().int(),
    conflicts: z.number().int(),
  })
  .strict();
export type Stats = z.infer<typeof StatsSchema>;

export const HealthSchema = z
  .object({
    status: z.literal('ok'),
    api: z.literal(API_VERSION),
    registryId: z.string(),
    time: ISO,
    /** Informational: this registry's request audience. Stations sign with the one of their pinned certificate. */
    audience: HEX64,
  })
  .strict();
export type Health = z.infer<typeof HealthSchema>;

/**
 * The answer of a route that serves one signed document (`GET /v1/policy`, `/v1/quotas`, `/v1/station-status`,
 * `/v1/audit-heads`): `{jws, ...}`; the reader verifies the JWS with the pinned registry certificate.
 */
export const SignedDocumentAnswerSchema = z.object({ jws: z.string() });
export type SignedDocumentAnswer = z.infer<typeof SignedDocumentAnswerSchema>;

// ---------------------------------------------------------------- station status (revocation reaches the station)

export const STATION_STATUS_TYP = 'line-station-status+jws';
export const STATION_STATUS_SCHEMA = 'line-station/station-status/v1';
/** `GET /v1/station-status` (LS-Sig; answered also to a REVOKED station): `{jws}`, payload StationStatusPayload. */
export const STATION_STATUS_PATH = '/v1/station-status';

/**
 * The registry's signed answer about one station (docs/lifecycle.md "Revocation reaches the station"): signed with
 * the registry receipt key, it names the station, whether it is revoked and since when, and echoes the `nonce` and
 * `ts` of the LS-Sig request it answers, so it is bound to that one request (never replayable to another station
 * or as a later answer).
 */
export const StationStatusPayloadSchema = z
  .object({
    schema: z.literal(STATION_STATUS_SCHEMA),
    registryId: z.string().min(1).max(128),
    stationId: StationIdSchema,
    status: z.enum(['active', 'revoked']),
    /** When the registry revoked the station (null while active). */
    revokedAt: ISO.nullable(),
    /** The nonce and ts of the request's LS-Sig claims. */
    requestNonce: RequestClaimsSchema.shape.nonce,
    requestTs: ISO,
    issuedAt: ISO,
  })
  .strict()
  .refine((p) => (p.status === 'revoked') === (p.revokedAt !== null), 'revokedAt is set exactly when revoked');
export type StationStatusPayload = z.infer<typeof StationStatusPayloadSchema>;

/** The claims of an `LS-Sig <JWS>` header value this side signed (signRequest): its nonce and ts. */
export function requestClaimsOf(authorization: string): RequestClaims | null {
  const payload = authorization.slice(AUTH_SCHEME.length + 1).split('.')[1];
  try {
    const c = RequestClaimsSchema.safeParse(JSON.parse(new TextDecoder().decode(fromBase64Url(payload ?? ''))));
    return c.success ? c.data : null;
  } catch {
    return null;
  }
}

/** One stored record as the query API returns it. */
export interface RecordView {
  readonly recordId: string;
  readonly stationId: string;
  readonly chipId: string;
  readonly serialNumber: string;
  readonly workOrder: string;
  readonly kind: string;
  readonly supersedesRecordId: string | null;
  readonly completedAt: string;
  readonly receivedAt: string;
  readonly batchId: string;
  readonly sha256: string;
  /** The signed record as JSON. */
  readonly record: unknown;
  /** The record JWS as received. */
  readonly jws: string;
}

export interface DeviceView {
  readonly chipId: string;
  readonly serialNumber: string;
  readonly model: string;
  /** The newest record that no other stored record supersedes. */
  readonly currentRecordId: string | null;
  readonly records: readonly RecordView[];
}

export interface RecordsPage {
  readonly records: readonly RecordView[];
  /** Pass as `cursor` for the next page; null at the end. */
  readonly nextCursor: string | null;
}

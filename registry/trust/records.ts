/**
 * Verification of the records and bundles a station sends, against what was ENROLLED for it (never against keys or
 * certificates taken from the message): provisioning records with their certificates and manifests, bundles.
 * Imports core and ./verify.ts.
 */
import 'reflect-metadata';
import { createHash, verify as nodeVerify, X509Certificate as NativeX509 } from 'node:crypto';
import { bytesEqual, fromBase64Url, utf8 } from '../../core/bytes.js';
import { canonicalJson } from '../../core/canonical.js';
import { err, ok, type Result } from '../../core/result.js';
import { MANIFEST_TYP, ManifestSchema } from '../../core/provisioning/baseline.js';
import { fromPem } from '../../core/pki/pem.js';
import { RECORD_JSON_IN_JWS, type IngestRecord } from '../../core/hq/registry-db.js';
import { parseCompactJws, type JwsHeader, type ParsedJws } from '../../core/hq/jws.js';
import { manifestHeaderB64, rebuildManifest, RECORD_SCHEMA_V3 } from '../../core/provisioning/record-manifest.js';
import {
  MAX_RECORD_CHARS,
  ProvisioningRecordSchema,
  RECORD_SCHEMA,
  RECORD_TYP,
  zodMessage,
  type RecordPayload,
  type RecordResult,
  type RejectReason,
} from '../../core/hq/protocol.js';
import { unpackJwsParsed, type PackedRecord, type RebuildFacts, type UnpackedJws } from '../../core/hq/pack.js';
import { acceptOrParse, compileAccept } from '../../core/zod-accept.js';
import { certificateParts, certificateSpki, type CertificateParts } from './der.js';
import { madeBeforeRotation, signerKeyOf, verifyWithStationKey, type StationKey, type StationTrust } from './verify.js';

export type RecordCheck =
  { readonly ok: true; readonly record: IngestRecord } | { readonly ok: false; readonly result: RecordResult };

const decoder = new TextDecoder('utf-8', { fatal: true });
const sha256Sync = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The record and manifest schemas compiled to accept-only tests (core/zod-accept.ts): zod words every refusal. */
const acceptRecord = compileAccept(ProvisioningRecordSchema);
const acceptManifest = compileAccept(ManifestSchema);

function readJson(b: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(b));
  } catch {
    return undefined;
  }
}

/**
 * Verify one record JWS of `trust`'s station (see docs/registry-api.md, "Record checks"): compact JWS with
 * typ line-station-record+jws and x5c leaf = the enrolled station certificate, signature by the enrolled key,
 * payload schema, station id and certificate hash, allowed work order, device certificate issued by the
 * station's issuing CA for record.key, manifest signed by the station key for the same board. Record format v3
 * (docs/formats.md "Provisioning record"): the manifest JWS is rebuilt from the record's header, and x5c must be
 * exactly the chain the signing key was enrolled with (it is the device certificate's issuing chain).
 */
export async function verifyRecordJws(
  trust: StationTrust,
  jws: string,
  index: number,
  now: Date,
): Promise<RecordCheck> {
  return verifyRecord(trust, jws, index, now);
}

/**
 * The signer of a station-signed JWS by its x5c leaf, looked up once per distinct leaf text in a batch (`seen`):
 * the station chain is checked once per batch, not once per record.
 */
export type SignerCache = Map<string, StationKey | null>;

function cachedSigner(trust: StationTrust, jws: ParsedJws, seen: SignerCache | undefined): StationKey | null {
  const leaf = jws.header.x5c?.[0];
  if (leaf === undefined || !seen) return signerKeyOf(trust, jws);
  let k = seen.get(leaf);
  if (k === undefined) seen.set(leaf, (k = signerKeyOf(trust, jws)));
  return k;
}

/** verifyRecordJws, synchronously (every check is CPU work); `seen` caches the x5c leaf lookups of one batch. */
export function verifyRecord(
  trust: StationTrust,
  jws: string,
  index: number,
  now: Date,
  seen?: SignerCache,
): RecordCheck {
  const parsed = parseCompactJws(jws, 'record');
  if (!parsed.ok)
    return {
      ok: false,
      result: {
        index,
        recordId: null,
        status: 'rejected',
        sha256: null,
        reason: parsed.error.kind === 'malformed' ? 'malformed' : 'header-invalid',
        message: parsed.error.message,
      },
    };
  return verifyParsedRecord(trust, jws, parsed.value, index, now, seen, null);
}

/**
 * verifyRecord on `jws` already parsed (`p`: what parseCompactJws returns for it). `facts`: what the one-pass
 * rebuild of a packed record learnt (core/hq/pack.ts RebuildFacts), used in place of computing it again.
 */
function verifyParsedRecord(
  trust: StationTrust,
  jws: string,
  p: ParsedJws,
  index: number,
  now: Date,
  seen: SignerCache | undefined,
  facts: RebuildFacts | null,
): RecordCheck {
  let recordId: string | null = null;
  const sha256 = sha256Sync(p.payload);
  const reject = (reason: RejectReason, message: string): RecordCheck => ({
    ok: false,
    result: { index, recordId, status: 'rejected', sha256, reason, message },
  });
  const json = facts ? facts.value : readJson(p.payload);
  if (json && typeof json === 'object' && typeof (json as { recordId?: unknown }).recordId === 'string') {
    const id = (json as { recordId: string }).recordId;
    if (/^[A-Za-z0-9._:-]{1,128}$/.test(id)) recordId = id;
  }
  if (p.header.typ !== RECORD_TYP)
    return reject('header-invalid', `record: typ is ${String(p.header.typ)}, expected ${RECORD_TYP}`);
  // The enrolled key, or a key replaced by a rotation (only for records completed before it: checked below).
  const signer = cachedSigner(trust, p, seen);
  if (!signer) return reject('signer-mismatch', 'record: the x5c leaf is not the enrolled certificate of this station');
  const sig = verifyWithStationKey(signer, p, 'record');
  if (!sig.ok)
    return reject(sig.error.kind === 'signature' ? 'signature-invalid' : 'header-invalid', sig.error.message);
  if (json === undefined) return reject('payload-invalid', 'record: the payload is not UTF-8 JSON');
  const r = acceptOrParse(ProvisioningRecordSchema, acceptRecord, json);
  if (!r.success) return reject('payload-invalid', `record: ${zodMessage(r.error)}`);
  const rec = r.data;
  if (rec.station.id !== trust.row.stationId)
    return reject('station-mismatch', `record: made by station ${rec.station.id}, submitted by ${trust.row.stationId}`);
  if (rec.station.certificateSha256 !== signer.certificateSha256)
    return reject('station-mismatch', 'record: station.certificateSha256 is not the certificate that signed it');
  if (trust.row.workOrders.length > 0 && !trust.row.workOrders.includes(rec.workOrder))
    return reject(
      'work-order-not-allowed',
      `record: station ${trust.row.stationId} is not enrolled for work order ${rec.workOrder}`,
    );
  const completedAt = new Date(rec.completedAt);
  if (completedAt.getTime() > now.getTime() + 300_000)
    return reject('payload-invalid', 'record: completedAt is in the future');
  if (!madeBeforeRotation(signer, rec.completedAt))
    return reject(
      'signer-mismatch',
      `record: signed with the station key replaced at ${signer.replacedAt} (key rotation) but completed at ${rec.completedAt}, after the rotation: only records completed before it may carry the old key`,
    );

  // v3: the record's x5c is also its device certificate's issuing chain: it must be the chain the key was enrolled with.
  if (rec.schema === RECORD_SCHEMA_V3 && !sameStrings(p.header.x5c, signer.x5c))
    return reject(
      'certificate-invalid',
      "record: x5c (the device certificate's issuing chain after the station certificate) is not the station's enrolled chain",
    );

  // Device certificate: issued by this station's issuing CA, for the record's key.
  const known = facts?.pemDer.get(rec.certificate.pem);
  const der = known ? ok(known) : fromPem(rec.certificate.pem, 'CERTIFICATE');
  if (!der.ok) return reject('certificate-invalid', `record: certificate.pem: ${der.error.message}`);
  if (sha256Sync(der.value) !== rec.certificate.sha256)
    return reject('certificate-invalid', 'record: certificate.sha256 is not the hash of certificate.pem');
  const dc = checkDeviceCertificate(trust, der.value, completedAt);
  if (!dc.ok) return reject('certificate-invalid', `record: device certificate: ${dc.error}`);
  if (dc.value.serialNumber.replace(/^0+/, '') !== rec.certificate.serialNumber.replace(/^0+/, ''))
    return reject('certificate-invalid', 'record: certificate.serialNumber is not the serial of certificate.pem');
  let spki: Uint8Array;
  try {
    spki = fromBase64Url(rec.key.publicKeySpki);
  } catch {
    return reject('payload-invalid', 'record: key.publicKeySpki is not base64url');
  }
  if (!bytesEqual(dc.value.spki, spki))
    return reject('key-mismatch', 'record: the device certificate key is not key.publicKeySpki');

  // Baseline manifest: signed by the same station key, for the same board (v3: rebuilt with the record's header).
  const embedded = manifestOf(rec, p, facts);
  if (!embedded.ok) return reject('manifest-invalid', embedded.error);
  const m = embedded.value;
  if (m.parsed.header.typ !== MANIFEST_TYP) return reject('manifest-invalid', `manifest: typ is not ${MANIFEST_TYP}`);
  if (m.parsed.header.x5c && cachedSigner(trust, m.parsed, seen) !== signer)
    return reject('manifest-invalid', 'manifest: the x5c leaf is not the station certificate that signed the record');
  const ms = verifyWithStationKey(signer, m.parsed, 'manifest');
  if (!ms.ok) return reject('manifest-invalid', ms.error.message);
  const mj = acceptOrParse(ManifestSchema, acceptManifest, m.value);
  if (!mj.success) return reject('manifest-invalid', `manifest: ${zodMessage(mj.error)}`);
  if (mj.data.board.chipId !== rec.board.chipId || mj.data.board.serialNumber !== rec.board.serialNumber)
    return reject('manifest-invalid', 'manifest: made for a different board');
  if (!mj.data.verdict.pass) return reject('manifest-invalid', 'manifest: the baseline verdict is not a pass');
  // A key-bound (or TPM) attestation names the measurements the board reported: they are the manifest's. The
  // canonical JSON of the manifest's LS measurements is exactly core/pki/attestation.ts measurementsJson.
  if (
    rec.schema === RECORD_SCHEMA &&
    (rec.attestation.mode === 'key-bound-v2' || rec.attestation.mode === 'tpm2') &&
    sha256Sync(utf8(canonicalJson(mj.data.measurements))) !== rec.attestation.measurementsSha256
  )
    return reject('manifest-invalid', 'manifest: its measurements are not the ones the board attested');

  return {
    ok: true,
    record: {
      index,
      recordId: rec.recordId,
      sha256,
      chipId: rec.board.chipId,
      serialNumber: rec.board.serialNumber,
      model: rec.board.model,
      workOrder: rec.workOrder,
      kind: rec.kind,
      supersedesRecordId: rec.supersedesRecordId,
      completedAt: completedAt.toISOString(),
      recordJson: RECORD_JSON_IN_JWS, // kept once, in the JWS (the registry stores no second copy)
      jws,
      parsed: {
        operator: rec.operator,
        certificate: {
          serial: rec.certificate.serialNumber,
          sha256: rec.certificate.sha256,
          pem: rec.certificate.pem,
          notBefore: dc.value.notBefore,
          notAfter: dc.value.notAfter,
        },
      },
    },
  };
}

/** A record's manifest JWS, parsed (as parseCompactJws parses it) and its payload as JSON (undefined: not JSON). */
interface RecordManifest {
  readonly parsed: ParsedJws;
  readonly value: unknown;
}

/** The manifest protected header of each record header seen (packed records of a table share the header object). */
const manifestHeaders = new WeakMap<object, string>();

/**
 * The manifest of a record: v1/v2 its `manifest.jws` parsed (or what the rebuild of a packed record learnt); v3 the
 * manifest JWS rebuilt from `manifest.payload`, `manifest.signature` and the record's own protected header
 * (core/provisioning/record-manifest.ts rebuildManifest), its parse made from the parts. The message says why not.
 */
function manifestOf(rec: RecordPayload, p: ParsedJws, facts: RebuildFacts | null): Result<RecordManifest, string> {
  if (rec.schema !== RECORD_SCHEMA_V3) {
    const nested = facts?.nested.get(rec.manifest.jws);
    if (nested) return ok({ parsed: nested.parsed, value: nested.value });
    const m = parseCompactJws(rec.manifest.jws, 'manifest');
    return m.ok ? ok({ parsed: m.value, value: readJson(m.value.payload) }) : err(m.error.message);
  }
  let h64 = manifestHeaders.get(p.header);
  if (h64 === undefined && p.header.x5c) manifestHeaders.set(p.header, (h64 = manifestHeaderB64(p.header)));
  const r = rebuildManifest(p.header, rec.manifest, h64);
  if (!r.ok) return err(`manifest: ${r.error}`);
  const sig = Buffer.from(rec.manifest.signature, 'base64url');
  if (sig.toString('base64url') !== rec.manifest.signature)
    return err('manifest: manifest.signature is not canonical base64url');
  const header: JwsHeader = { alg: p.header.alg, typ: MANIFEST_TYP, x5c: p.header.x5c! };
  return ok({
    parsed: {
      header,
      payload: r.value.payload,
      signingInput: latin1(`${r.value.h64}.${r.value.p64}`),
      signature: new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength),
    },
    value: rec.manifest.payload,
  });
}

const sameStrings = (a: readonly string[] | undefined, b: readonly string[]): boolean =>
  a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);

/** The bytes of an ASCII string (a JWS signing input). */
function latin1(s: string): Uint8Array {
  const b = Buffer.from(s, 'latin1');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** What a device certificate check found. */
export interface DeviceCertificateFacts {
  readonly serialNumber: string;
  readonly spki: Uint8Array;
  readonly notBefore: string;
  readonly notAfter: string;
}

const caParts = new WeakMap<NativeX509, CertificateParts | null>();
const ECDSA_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');
const ECDSA_SHA384 = Buffer.from('300a06082a8648ce3d040303', 'hex');

/**
 * The device certificate checks on the certificate's DER parts (./der.ts) and one node:crypto signature
 * verification: issuer name = the CA's subject (same bytes), authority key id = the CA's subject key id (when both
 * are present), signature algorithm ECDSA with SHA-256/384 (the same inside and outside tbsCertificate), the
 * signature verifies with the CA key, not a CA, it and the CA valid at `at`. Only answers when every check passes;
 * undefined otherwise, and node:crypto's parser decides and words the refusal.
 */
function checkDeviceCertificateFast(
  trust: StationTrust,
  der: Uint8Array,
  t: number,
): DeviceCertificateFacts | undefined {
  let ca = caParts.get(trust.ca.cert);
  if (ca === undefined) caParts.set(trust.ca.cert, (ca = certificateParts(trust.issuingCa)));
  const c = certificateParts(der);
  if (!ca || !c || c.isCa || !bytesEqual(c.issuer, ca.subject)) return undefined;
  if (c.authorityKeyId && ca.subjectKeyId && !bytesEqual(c.authorityKeyId, ca.subjectKeyId)) return undefined;
  const sha256 = bytesEqual(c.algorithm, ECDSA_SHA256);
  if ((!sha256 && !bytesEqual(c.algorithm, ECDSA_SHA384)) || !bytesEqual(c.algorithm, c.tbsAlgorithm)) return undefined;
  if (!(t >= c.notBefore && t <= c.notAfter && t >= trust.ca.notBefore && t <= trust.ca.notAfter)) return undefined;
  let valid = false;
  try {
    valid = nodeVerify(sha256 ? 'sha256' : 'sha384', c.tbs, { key: trust.ca.key, dsaEncoding: 'der' }, c.signature);
  } catch {
    valid = false;
  }
  if (!valid) return undefined;
  return {
    serialNumber: c.serial,
    spki: c.spki,
    notBefore: new Date(c.notBefore).toISOString(),
    notAfter: new Date(c.notAfter).toISOString(),
  };
}

/**
 * A device certificate of `trust`'s station: parses (DER), is issued by the station's issuing CA (name and key
 * identifiers match, signature verifies with the CA key), is not a CA, and it and the CA are valid at `at`.
 * The common case is decided on the DER parts with one signature verification (checkDeviceCertificateFast);
 * anything else by node:crypto's X.509 parser (the pure @peculiar parser costs ~5 ms per certificate).
 */
export function checkDeviceCertificate(
  trust: StationTrust,
  der: Uint8Array,
  at: Date,
): Result<DeviceCertificateFacts, string> {
  const fast = checkDeviceCertificateFast(trust, der, at.getTime());
  if (fast) return ok(fast);
  let c: NativeX509;
  try {
    c = new NativeX509(der);
  } catch (e) {
    return err(`not a valid DER certificate (${(e as Error).message})`);
  }
  const t = at.getTime();
  try {
    if (!c.checkIssued(trust.ca.cert))
      return err(`issued by ${c.issuer.replace(/\n/g, ', ')}, not by this station's issuing CA`);
    if (!c.verify(trust.ca.key)) return err("the signature does not verify with the station's issuing CA key");
    if (c.ca) return err('is a CA certificate');
    const nb = Date.parse(c.validFrom);
    const na = Date.parse(c.validTo);
    if (!(t >= nb && t <= na)) return err(`not valid at ${at.toISOString()} (valid ${c.validFrom} .. ${c.validTo})`);
    if (!(t >= trust.ca.notBefore && t <= trust.ca.notAfter))
      return err(`the issuing CA is not valid at ${at.toISOString()}`);
    const spki = certificateSpki(der);
    if (!spki) return err('its subjectPublicKeyInfo cannot be read');
    return ok({
      serialNumber: c.serialNumber.toLowerCase(),
      spki,
      notBefore: new Date(nb).toISOString(),
      notAfter: new Date(na).toISOString(),
    });
  } catch (e) {
    return err(`cannot be checked (${(e as Error).message})`);
  }
}

/** A record of a batch or bundle after rebuilding: its compact JWS and the verdict on it. */
export interface CheckedRecord {
  /** The rebuilt compact JWS (for a record that cannot be rebuilt: its packed JSON, only to fingerprint the batch). */
  readonly jws: string;
  readonly check: RecordCheck;
}

/**
 * Rebuild one record of a batch or bundle (format v2: packed against `certificates`; a compact JWS as it is) and
 * verify it. A packed record that cannot be rebuilt, or is longer than MAX_RECORD_CHARS rebuilt, is `malformed`.
 */
export function checkBatchRecord(
  trust: StationTrust,
  rec: PackedRecord,
  certificates: readonly string[],
  index: number,
  now: Date,
  seen?: SignerCache,
): CheckedRecord {
  const u: Result<UnpackedJws, string> =
    typeof rec === 'string' ? ok({ jws: rec, parsed: null, facts: null }) : unpackJwsParsed(rec, certificates);
  const malformed = (message: string): CheckedRecord => ({
    jws: typeof rec === 'string' ? rec : JSON.stringify(rec),
    check: {
      ok: false,
      result: { index, recordId: null, status: 'rejected', sha256: null, reason: 'malformed', message },
    },
  });
  if (!u.ok) return malformed(`record: ${u.error}`);
  const { jws, parsed, facts } = u.value;
  if (jws.length > MAX_RECORD_CHARS) return malformed(`record: longer than ${MAX_RECORD_CHARS} characters`);
  return {
    jws,
    check: parsed
      ? verifyParsedRecord(trust, jws, parsed, index, now, seen, facts)
      : verifyRecord(trust, jws, index, now, seen),
  };
}

/** SHA-256 (hex) over the concatenation of JWS strings (core/hq/protocol.ts recordsDigest, with node:crypto). */
export function recordsDigestSync(records: readonly string[]): string {
  const h = createHash('sha256');
  for (const r of records) h.update(r, 'utf8');
  return h.digest('hex');
}

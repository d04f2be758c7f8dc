/**
 * Verification of what a station sends, against what was ENROLLED for it (never against keys or
 * certificates taken from the message): station trust material, provisioning records, manifests, bundles.
 */
import 'reflect-metadata';
import { createHash, verify as nodeVerify, X509Certificate as NativeX509, type KeyObject } from 'node:crypto';
import { bytesEqual, fromBase64Url, utf8 } from '../../core/bytes.js';
import { measurementsJson } from '../../core/pki/attestation.js';
import { fail } from '../../core/errors.js';
import { err, ok, type Result } from '../../core/result.js';
import { MANIFEST_TYP, ManifestSchema } from '../../core/provisioning/baseline.js';
import { parseCertificate, verifyCertificateChain } from '../../core/pki/chain.js';
import { fromPem, fromPemChain } from '../../core/pki/pem.js';
import type { IngestRecord, SqlExec, StationRow } from '../../core/hq/registry-db.js';
import { importJwsKey, parseCompactJws, type JwsFailure, type ParsedJws, type VerifyKey } from '../../core/hq/jws.js';
import {
  BUNDLE_TYP,
  BundlePayloadSchema,
  MAX_BUNDLE_BYTES,
  ProvisioningRecordSchema,
  RECORD_SCHEMA,
  RECORD_TYP,
  recordsDigest,
  zodMessage,
  type BundlePayload,
  type RecordResult,
  type RejectReason,
} from '../../core/hq/protocol.js';

/**
 * A station signing key: the enrolled one (`replacedAt` null) or one replaced by a rotation (station_key_history),
 * valid only for what was made before `replacedAt`.
 */
export interface StationKey {
  readonly certificateSha256: string;
  readonly stationCert: Uint8Array;
  readonly curve: 'P-256' | 'P-384';
  readonly keyObject: KeyObject;
  /** ISO time of the rotation that replaced it; null for the enrolled key. */
  readonly replacedAt: string | null;
}

/** A row of station_key_history. */
export interface StationKeyHistoryRow {
  readonly certSha256: string;
  readonly chainPem: string;
  readonly replacedAt: string;
}

/** The replaced keys of a station (station_key_history), oldest first. Throws on database errors. */
export async function stationKeyHistoryRows(x: SqlExec, stationId: string): Promise<StationKeyHistoryRow[]> {
  const rows = await x.all(
    'SELECT cert_sha256, chain_pem, replaced_at FROM station_key_history WHERE station_id = ? ORDER BY replaced_at',
    [stationId],
  );
  return rows.map((r) => ({
    certSha256: String(r['cert_sha256']),
    chainPem: String(r['chain_pem']),
    replacedAt: String(r['replaced_at']),
  }));
}

/** An enrolled station's trust material, parsed once. */
export interface StationTrust {
  readonly row: StationRow;
  readonly stationCert: Uint8Array;
  readonly issuingCa: Uint8Array;
  readonly root: Uint8Array;
  readonly stationKey: VerifyKey;
  /** The same key for node:crypto (synchronous verification of many records). */
  readonly currentKey: StationKey;
  /** Keys replaced by rotations: records and bundles completed before the rotation still verify with them. */
  readonly previousKeys: readonly StationKey[];
  /** The issuing CA parsed natively (device certificate checks run thousands of times per batch). */
  readonly ca: {
    readonly cert: NativeX509;
    readonly key: KeyObject;
    readonly notBefore: number;
    readonly notAfter: number;
  };
}

/**
 * Parse and check an enrolment chain: exactly [station certificate, issuing CA, root], the station certificate
 * chains through the issuing CA to the root (valid at `at`), its CN is the station id, its key is EC P-256/P-384.
 * INPUT_INVALID with the reason otherwise.
 */
export async function checkStationChain(
  stationId: string,
  chainPem: string,
  at: Date,
): Promise<Result<{ stationCert: Uint8Array; issuingCa: Uint8Array; root: Uint8Array }>> {
  const chain = fromPemChain(chainPem);
  if (!chain.ok) return fail('INPUT_INVALID', `station chain: ${chain.error.message}`);
  if (chain.value.length !== 3)
    return fail(
      'INPUT_INVALID',
      `station chain: expected 3 certificates (station, issuing CA, root), found ${chain.value.length}`,
    );
  const [stationCert, issuingCa, root] = chain.value as [Uint8Array, Uint8Array, Uint8Array];
  const path = await verifyCertificateChain([stationCert, issuingCa], [root], at);
  if (!path.ok) return fail('INPUT_INVALID', `station chain: ${path.error}`);
  if (path.value.path.length !== 3)
    return fail('INPUT_INVALID', 'station chain: the station certificate must be issued by the issuing CA');
  const leaf = path.value.leaf;
  const cn = leaf.subjectName.getField('CN')[0];
  if (cn !== stationId)
    return fail(
      'INPUT_INVALID',
      `station chain: the station certificate is for ${JSON.stringify(cn)}, not ${stationId}`,
    );
  const key = await importJwsKey(new Uint8Array(leaf.publicKey.rawData));
  if (!key) return fail('INPUT_INVALID', 'station chain: the station key is not an EC P-256/P-384 key');
  // The issuing CA signs device certificates: it must verify as a CA on its own (anchor = root).
  const ca = await verifyCertificateChain([issuingCa], [root], at);
  if (!ca.ok) return fail('INPUT_INVALID', `station chain: issuing CA: ${ca.error}`);
  return ok({ stationCert, issuingCa, root });
}

/**
 * Build the trust material of an enrolled station row (its chain was checked at enrolment) and of its replaced
 * keys (`history`: station_key_history rows; unreadable ones are skipped).
 */
export async function loadStationTrust(
  row: StationRow,
  history: readonly StationKeyHistoryRow[] = [],
): Promise<Result<StationTrust>> {
  const chain = fromPemChain(row.chainPem);
  if (!chain.ok || chain.value.length !== 3)
    return fail('STORE_FAILED', `stored chain of station ${row.stationId} is unreadable`);
  const [stationCert, issuingCa, root] = chain.value as [Uint8Array, Uint8Array, Uint8Array];
  const cert = parseCertificate(stationCert, 'station certificate');
  if (!cert.ok) return fail('STORE_FAILED', `stored certificate of station ${row.stationId}: ${cert.error}`);
  const key = await importJwsKey(new Uint8Array(cert.value.publicKey.rawData));
  if (!key) return fail('STORE_FAILED', `stored certificate of station ${row.stationId} has an unsupported key`);
  let ca: StationTrust['ca'];
  try {
    const c = new NativeX509(issuingCa);
    ca = { cert: c, key: c.publicKey, notBefore: Date.parse(c.validFrom), notAfter: Date.parse(c.validTo) };
  } catch (e) {
    return fail('STORE_FAILED', `stored issuing CA of station ${row.stationId}: ${(e as Error).message}`);
  }
  const currentKey = stationKeyOf(row.certificateSha256, stationCert, null);
  if (!currentKey) return fail('STORE_FAILED', `stored certificate of station ${row.stationId} has an unsupported key`);
  const previousKeys: StationKey[] = [];
  for (const h of history) {
    const c = fromPemChain(h.chainPem);
    const k = c.ok && c.value[0] ? stationKeyOf(h.certSha256, c.value[0], h.replacedAt) : null;
    if (k) previousKeys.push(k); // unreadable history rows are skipped
  }
  return ok({ row, stationCert, issuingCa, root, stationKey: key, currentKey, ca, previousKeys });
}

/** A station certificate's key for node:crypto verification; null if unreadable or not P-256/P-384. */
function stationKeyOf(certificateSha256: string, der: Uint8Array, replacedAt: string | null): StationKey | null {
  try {
    const keyObject = new NativeX509(der).publicKey;
    const named = keyObject.asymmetricKeyDetails?.namedCurve;
    const curve = named === 'prime256v1' ? 'P-256' : named === 'secp384r1' ? 'P-384' : null;
    return curve ? { certificateSha256, stationCert: der, curve, keyObject, replacedAt } : null;
  } catch {
    return null;
  }
}

/** The key that signed `jws` (its x5c leaf): the enrolled one, or a replaced one (with its replacement time). */
function signerKeyOf(trust: StationTrust, jws: ParsedJws): StationKey | null {
  if (x5cLeafIs(jws, trust.currentKey.stationCert)) return trust.currentKey;
  return trust.previousKeys.find((k) => x5cLeafIs(jws, k.stationCert)) ?? null;
}

/** Whether something `signer` signed at `madeAt` (ISO) may carry that key: always for the enrolled key. */
const madeBeforeRotation = (signer: StationKey, madeAt: string): boolean =>
  signer.replacedAt === null || Date.parse(madeAt) < Date.parse(signer.replacedAt);

/**
 * Verify a station-signed JWS that says when it was made (`signedAt`, e.g. a scrap event's scrappedAt): signed by
 * the enrolled key, or by a key replaced by a rotation AFTER `signedAt` (so documents made before a rotation and
 * delivered after it still verify). `signer-mismatch` / `signature-invalid` / `header-invalid` with the reason.
 */
export function verifyStationSigned(
  trust: StationTrust,
  jws: ParsedJws,
  what: string,
  signedAt: string,
): Result<true, { reason: 'signer-mismatch' | 'signature-invalid' | 'header-invalid'; message: string }> {
  const signer = signerKeyOf(trust, jws);
  if (!signer)
    return err({
      reason: 'signer-mismatch',
      message: `${what}: the x5c leaf is not a certificate of station ${trust.row.stationId}`,
    });
  if (!madeBeforeRotation(signer, signedAt))
    return err({
      reason: 'signer-mismatch',
      message: `${what}: signed with the station key replaced at ${signer.replacedAt} (key rotation) but made at ${signedAt}, after the rotation`,
    });
  const v = verifyWithStationKey(signer, jws, what);
  if (!v.ok)
    return err({
      reason: v.error.kind === 'signature' ? 'signature-invalid' : 'header-invalid',
      message: `${v.error.message} (station ${trust.row.stationId})`,
    });
  return ok(true);
}

export type RecordCheck =
  { readonly ok: true; readonly record: IngestRecord } | { readonly ok: false; readonly result: RecordResult };

const decoder = new TextDecoder('utf-8', { fatal: true });
const sha256Sync = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function readJson(b: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(b));
  } catch {
    return undefined;
  }
}

/** Verify a parsed JWS with a station key (node:crypto, synchronous: same result as verifyParsedJws, faster). */
function verifyWithStationKey(
  key: Pick<StationKey, 'curve' | 'keyObject'>,
  jws: ParsedJws,
  what: string,
): Result<true, JwsFailure> {
  const expected = key.curve === 'P-256' ? 'ES256' : 'ES384';
  if (jws.header.alg !== expected)
    return err({
      kind: 'header',
      message: `${what}: alg ${jws.header.alg} does not match the ${key.curve} station key`,
    });
  if (jws.signature.length !== (expected === 'ES256' ? 64 : 96))
    return err({ kind: 'signature', message: `${what}: the signature has the wrong length` });
  let valid = false;
  try {
    valid = nodeVerify(
      expected === 'ES256' ? 'sha256' : 'sha384',
      jws.signingInput,
      { key: key.keyObject, dsaEncoding: 'ieee-p1363' },
      jws.signature,
    );
  } catch {
    valid = false;
  }
  return valid
    ? ok(true)
    : err({ kind: 'signature', message: `${what}: the signature does not verify with the enrolled station key` });
}

function x5cLeafIs(jws: ParsedJws, der: Uint8Array): boolean {
  const x = jws.header.x5c?.[0];
  if (x === undefined) return false;
  return bytesEqual(new Uint8Array(Buffer.from(x, 'base64')), der);
}

/**
 * Verify one record JWS of `trust`'s station (see docs/registry-api.md, "Record checks"): compact JWS with
 * typ line-station-record+jws and x5c leaf = the enrolled station certificate, signature by the enrolled key,
 * payload schema, station id and certificate hash, allowed work order, device certificate issued by the
 * station's issuing CA for record.key, manifest signed by the station key for the same board.
 */
export async function verifyRecordJws(
  trust: StationTrust,
  jws: string,
  index: number,
  now: Date,
): Promise<RecordCheck> {
  let recordId: string | null = null;
  let sha256: string | null = null;
  const reject = (reason: RejectReason, message: string): RecordCheck => ({
    ok: false,
    result: { index, recordId, status: 'rejected', sha256, reason, message },
  });
  const parsed = parseCompactJws(jws, 'record');
  if (!parsed.ok)
    return reject(parsed.error.kind === 'malformed' ? 'malformed' : 'header-invalid', parsed.error.message);
  const p = parsed.value;
  sha256 = sha256Sync(p.payload);
  const json = readJson(p.payload);
  if (json && typeof json === 'object' && typeof (json as { recordId?: unknown }).recordId === 'string') {
    const id = (json as { recordId: string }).recordId;
    if (/^[A-Za-z0-9._:-]{1,128}$/.test(id)) recordId = id;
  }
  if (p.header.typ !== RECORD_TYP)
    return reject('header-invalid', `record: typ is ${String(p.header.typ)}, expected ${RECORD_TYP}`);
  // The enrolled key, or a key replaced by a rotation (only for records completed before it: checked below).
  const signer = signerKeyOf(trust, p);
  if (!signer) return reject('signer-mismatch', 'record: the x5c leaf is not the enrolled certificate of this station');
  const sig = verifyWithStationKey(signer, p, 'record');
  if (!sig.ok)
    return reject(sig.error.kind === 'signature' ? 'signature-invalid' : 'header-invalid', sig.error.message);
  if (json === undefined) return reject('payload-invalid', 'record: the payload is not UTF-8 JSON');
  const r = ProvisioningRecordSchema.safeParse(json);
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

  // Device certificate: issued by this station's issuing CA, for the record's key.
  const der = fromPem(rec.certificate.pem, 'CERTIFICATE');
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

  // Baseline manifest: signed by the same station key, for the same board.
  const m = parseCompactJws(rec.manifest.jws, 'manifest');
  if (!m.ok) return reject('manifest-invalid', m.error.message);
  if (m.value.header.typ !== MANIFEST_TYP) return reject('manifest-invalid', `manifest: typ is not ${MANIFEST_TYP}`);
  if (m.value.header.x5c && !x5cLeafIs(m.value, signer.stationCert))
    return reject('manifest-invalid', 'manifest: the x5c leaf is not the station certificate that signed the record');
  const ms = verifyWithStationKey(signer, m.value, 'manifest');
  if (!ms.ok) return reject('manifest-invalid', ms.error.message);
  const mj = ManifestSchema.safeParse(readJson(m.value.payload));
  if (!mj.success) return reject('manifest-invalid', `manifest: ${zodMessage(mj.error)}`);
  if (mj.data.board.chipId !== rec.board.chipId || mj.data.board.serialNumber !== rec.board.serialNumber)
    return reject('manifest-invalid', 'manifest: made for a different board');
  if (!mj.data.verdict.pass) return reject('manifest-invalid', 'manifest: the baseline verdict is not a pass');
  // A key-bound attestation names the measurements the board reported: they are the manifest's.
  if (
    rec.schema === RECORD_SCHEMA &&
    rec.attestation.mode === 'key-bound-v2' &&
    sha256Sync(utf8(measurementsJson(mj.data.measurements))) !== rec.attestation.measurementsSha256
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
      recordJson: decoder.decode(p.payload),
      jws,
    },
  };
}

/**
 * A device certificate of `trust`'s station: parses (DER), is issued by the station's issuing CA (name and key
 * identifiers match, signature verifies with the CA key), is not a CA, and it and the CA are valid at `at`.
 * Uses node:crypto's native X.509 parser (the pure parser costs ~5 ms per certificate).
 */
export function checkDeviceCertificate(
  trust: StationTrust,
  der: Uint8Array,
  at: Date,
): Result<{ serialNumber: string; spki: Uint8Array }, string> {
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
    const spki = new Uint8Array(c.publicKey.export({ type: 'spki', format: 'der' }));
    return ok({ serialNumber: c.serialNumber.toLowerCase(), spki });
  } catch (e) {
    return err(`cannot be checked (${(e as Error).message})`);
  }
}

/** Read the station id a bundle claims (header kid, before verification): to look up the enrolled station. */
export function bundleStationId(bundle: string): string | null {
  const p = parseCompactJws(bundle, 'bundle', MAX_BUNDLE_BYTES);
  if (!p.ok) return null;
  return typeof p.value.header.kid === 'string' ? p.value.header.kid : null;
}

/**
 * Verify a bundle file against its enrolled station: JWS (typ line-station-bundle+jws, x5c leaf = the enrolled
 * certificate, signature by the enrolled key), payload schema, stationId, count and recordsSha256.
 * INPUT_INVALID with a message that says what is wrong (truncated, modified, incomplete).
 */
export async function verifyBundle(trust: StationTrust, bundle: string): Promise<Result<BundlePayload>> {
  const p = parseCompactJws(bundle.trim(), 'bundle', MAX_BUNDLE_BYTES);
  if (!p.ok)
    return fail(
      'INPUT_INVALID',
      `the bundle is truncated or corrupted and was rejected as a whole (${p.error.message})`,
    );
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
  const json = readJson(p.value.payload);
  if (json === undefined) return fail('INPUT_INVALID', 'bundle: the payload is not JSON');
  const b = BundlePayloadSchema.safeParse(json);
  if (!b.success) return fail('INPUT_INVALID', `bundle: ${zodMessage(b.error)}`);
  if (b.data.stationId !== trust.row.stationId)
    return fail('INPUT_INVALID', `bundle: made by station ${b.data.stationId}, signed by ${trust.row.stationId}`);
  if (!madeBeforeRotation(signer, b.data.createdAt))
    return fail(
      'INPUT_INVALID',
      `bundle: signed with the station key replaced at ${signer.replacedAt} (key rotation) but created at ${b.data.createdAt}, after the rotation: export it again`,
    );
  if (b.data.count !== b.data.records.length)
    return fail(
      'INPUT_INVALID',
      `bundle is incomplete: it declares ${b.data.count} records but holds ${b.data.records.length}`,
    );
  if ((await recordsDigest(b.data.records)) !== b.data.recordsSha256)
    return fail('INPUT_INVALID', 'bundle is incomplete or altered: recordsSha256 does not match its records');
  return ok(b.data);
}
